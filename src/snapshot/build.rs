//! Building signed snapshots and deltas from revocation lists (origin side).

use super::delta::{encode_delta, DeltaContent, DeltaHeader};
use super::error::SnapshotError;
use super::filter::RevocationFilter;
use super::format::{
    encode_snapshot, parse_snapshot_content, Envelope, FileKind, SnapshotContent, SnapshotHeader,
};
use super::ids::{HashedId, IdHasher, IdKind};
use super::keys::{SigningKey, DEFAULT_MAX_BYTES};
use super::revocations::{Revocation, RevocationTarget};
use super::table::{IdSet, NotBeforeTable};

/// Default target false-positive rate of the Bloom filter.
pub const DEFAULT_FP_RATE: f64 = 0.001;
/// Default time a plugin may trust a snapshot, in seconds.
pub const DEFAULT_MAX_AGE_SECS: u64 = 300;
/// Highest generation the origin tools publish (2^53, exact in a JSON number / IEEE double).
/// Plugins refuse anything not newer than what they hold, so a generation near `u64::MAX`
/// would lock every gateway out of all later updates.
pub const MAX_GENERATION: u64 = 1 << 53;
/// Largest step from one generation to the next the tools take without `--force`: a typo
/// (an extra digit) would otherwise burn through the generation space.
pub const MAX_GENERATION_STEP: u64 = 1_000_000;
/// How far in the future a build time may be (clock skew allowance), in seconds. A snapshot
/// built "in the future" looks fresh for longer than it should.
pub const MAX_FUTURE_SKEW_SECS: u64 = 300;

/// Parameters of a full snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildOptions {
    /// Must increase with every published snapshot or delta.
    pub generation: u64,
    /// Build time (Unix seconds); entries whose `exp` is earlier are dropped.
    pub built_at: u64,
    pub max_age_secs: u64,
    /// Target false-positive rate of the Bloom filter.
    pub fp_rate: f64,
    /// Fresh random bytes for every build: keys the id hashes and derives the filter seed.
    pub salt: [u8; 32],
}

/// Parameters of a delta; the base generation and salt come from the base snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaOptions {
    pub generation: u64,
    pub built_at: u64,
    pub max_age_secs: u64,
}

/// The Bloom seed of a snapshot: `SHA-256("revguard bloom seed v1" || 0x00 || salt)`.
pub fn bloom_seed(salt: &[u8; 32]) -> [u8; 32] {
    let mut h = hmac_sha256::Hash::new();
    h.update(b"revguard bloom seed v1\0");
    h.update(salt);
    h.finalize()
}

/// The hashed content of a revocation list, in the tables the formats store.
struct Hashed {
    jti: IdSet,
    sid: IdSet,
    subjects: NotBeforeTable,
    tenants: NotBeforeTable,
}

fn hash_entries(entries: &[Revocation], salt: &[u8; 32], now: u64) -> Hashed {
    let hasher = IdHasher::new(salt);
    let (mut jti, mut sid, mut subjects, mut tenants) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in entries.iter().filter(|e| e.is_live(now)) {
        match &entry.target {
            RevocationTarget::Jti(v) => jti.push(hasher.hash(IdKind::Jti, v)),
            RevocationTarget::Sid(v) => sid.push(hasher.hash(IdKind::Sid, v)),
            RevocationTarget::Subject { sub, not_before } => {
                subjects.push((hasher.hash(IdKind::Subject, sub), *not_before))
            }
            RevocationTarget::Tenant { tenant, not_before } => {
                tenants.push((hasher.hash(IdKind::Tenant, tenant), *not_before))
            }
        }
    }
    Hashed {
        jti: IdSet::from_unsorted(jti),
        sid: IdSet::from_unsorted(sid),
        subjects: NotBeforeTable::from_unsorted(subjects),
        tenants: NotBeforeTable::from_unsorted(tenants),
    }
}

fn check_common(max_age_secs: u64) -> Result<(), SnapshotError> {
    if max_age_secs == 0 {
        return Err(SnapshotError::InvalidOption(
            "max age must be at least one second",
        ));
    }
    Ok(())
}

fn count_u32(n: usize, what: &'static str) -> Result<u32, SnapshotError> {
    u32::try_from(n).map_err(|_| SnapshotError::TooManyEntries(what))
}

fn check_size(bytes: Vec<u8>) -> Result<Vec<u8>, SnapshotError> {
    if bytes.len() > DEFAULT_MAX_BYTES {
        return Err(SnapshotError::TooLarge {
            size: bytes.len(),
            limit: DEFAULT_MAX_BYTES,
        });
    }
    Ok(bytes)
}

/// Builds and signs a full snapshot of `entries` (expired ones dropped).
pub fn build_snapshot(
    entries: &[Revocation],
    opts: &BuildOptions,
    key: &SigningKey,
) -> Result<Vec<u8>, SnapshotError> {
    check_common(opts.max_age_secs)?;
    let hashed = hash_entries(entries, &opts.salt, opts.built_at);
    let jti_count = count_u32(hashed.jti.len(), "more than 2^32 jti entries")?;
    let sid_count = count_u32(hashed.sid.len(), "more than 2^32 sid entries")?;
    let mut items: Vec<HashedId> =
        Vec::with_capacity(hashed.jti.len().saturating_add(hashed.sid.len()));
    items.extend(hashed.jti.iter());
    items.extend(hashed.sid.iter());
    let filter = RevocationFilter::build(&items, opts.fp_rate, &bloom_seed(&opts.salt))?;
    let content = SnapshotContent {
        header: SnapshotHeader {
            key_id: key.key_id(),
            generation: opts.generation,
            built_at: opts.built_at,
            max_age_secs: opts.max_age_secs,
            salt: opts.salt,
            jti_count,
            sid_count,
        },
        filter: filter.parts()?,
        subjects: hashed.subjects,
        tenants: hashed.tenants,
    };
    check_size(encode_snapshot(&content, key)?)
}

/// Reads the generation and salt of a base snapshot (structure only: the origin builds
/// deltas against its own files, whichever key signed them).
pub fn snapshot_header(bytes: &[u8]) -> Result<SnapshotHeader, SnapshotError> {
    let envelope = Envelope::open(bytes, FileKind::Snapshot, DEFAULT_MAX_BYTES)?;
    Ok(parse_snapshot_content(envelope)?.header)
}

/// Builds and signs the delta holding `added` (everything revoked since the base snapshot,
/// expired entries dropped) for the snapshot `base`.
pub fn build_delta(
    base: &[u8],
    added: &[Revocation],
    opts: &DeltaOptions,
    key: &SigningKey,
) -> Result<Vec<u8>, SnapshotError> {
    check_common(opts.max_age_secs)?;
    let base = snapshot_header(base)?;
    if opts.generation <= base.generation {
        return Err(SnapshotError::InvalidOption(
            "delta generation must be greater than the base snapshot's",
        ));
    }
    let hashed = hash_entries(added, &base.salt, opts.built_at);
    let content = DeltaContent {
        header: DeltaHeader {
            key_id: key.key_id(),
            base_generation: base.generation,
            generation: opts.generation,
            built_at: opts.built_at,
            max_age_secs: opts.max_age_secs,
            base_salt: base.salt,
        },
        jti: hashed.jti,
        sid: hashed.sid,
        subjects: hashed.subjects,
        tenants: hashed.tenants,
    };
    check_size(encode_delta(&content, key)?)
}

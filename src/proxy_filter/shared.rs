//! Coordination between the worker VMs of one proxy through shared data, so the origin sees
//! about one fetch per interval per proxy rather than one per worker.
//!
//! Per fetched resource (`<kind>` = `keys.<n>`, `snapshot`, `delta`; `<src>` = 8 hex digits
//! of SHA-256 of upstream and path, so two filter configurations never mix their data):
//! - `<prefix><kind>/<src>/lease`: `<holder>:<taken_at>`, taken with compare-and-swap. A worker
//!   whose fetch falls due skips it while another holder's lease is younger than the lease TTL
//!   (the refresh interval plus the fetch timeout and one second; for key sets only the
//!   timeout and one second, so a worker that saw an unknown kid refetches at once), so a dead holder blocks nobody for longer than that.
//! - `<prefix><kind>/<src>/data`: the last verified body the holder loaded, with its sequence
//!   number, ETag and fetch time.
//! - `<prefix><kind>/<src>/version`: the same header without the body: workers read this small
//!   key every tick and copy the body only when the sequence number changed.
//!
//! Every body is verified again by each worker's engine (signature, rollback), so shared data
//! is an optimisation, never a source of trust. An entry that is missing (never written, or
//! evicted by Kong's shm zone) only makes a worker fetch for itself.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::host;
use super::metrics::Metrics;
use crate::config::Policy;
use crate::engine::{Engine, FetchKind};

const MAGIC: &[u8; 4] = b"RGS1";
/// MAGIC, sequence, fetch time, ETag length.
const HEADER_LEN: usize = 4 + 8 + 8 + 2;
const MAX_ETAG: usize = 256;

/// One resource's published header.
struct Published<'a> {
    seq: u64,
    fetched_at: u64,
    etag: &'a str,
    body: &'a [u8],
}

fn encode(seq: u64, fetched_at: u64, etag: &str, body: &[u8]) -> Vec<u8> {
    let etag = if etag.len() <= MAX_ETAG { etag } else { "" };
    let mut out = Vec::with_capacity(
        HEADER_LEN
            .saturating_add(etag.len())
            .saturating_add(body.len()),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&fetched_at.to_be_bytes());
    out.extend_from_slice(&u16::try_from(etag.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(etag.as_bytes());
    out.extend_from_slice(body);
    out
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}

fn decode(bytes: &[u8]) -> Option<Published<'_>> {
    if bytes.get(..4)? != MAGIC {
        return None;
    }
    let seq = be_u64(bytes, 4)?;
    let fetched_at = be_u64(bytes, 12)?;
    let raw: [u8; 2] = bytes.get(20..22)?.try_into().ok()?;
    let etag_end = HEADER_LEN.checked_add(usize::from(u16::from_be_bytes(raw)))?;
    let etag = std::str::from_utf8(bytes.get(HEADER_LEN..etag_end)?).ok()?;
    Some(Published {
        seq,
        fetched_at,
        etag,
        body: bytes.get(etag_end..)?,
    })
}

/// What a worker should do with a fetch that fell due.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Fetch it (this worker holds the lease now).
    Fetch,
    /// Another worker holds a live lease: it will fetch and publish.
    Skip,
    /// Skip, but check again soon: the holder's first fetch is still in flight.
    SkipForNow,
}

struct Resource {
    key: String,
    lease_ttl: u64,
    /// How long a fresh lease means "the holder's fetch is still in flight".
    in_flight_secs: u64,
}

/// Why a worker cannot take `kind` from shared data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// Nothing published yet (or the version evicted) and this worker has no data.
    Unpublished,
    /// A version was published but its data is gone (evicted) or unreadable.
    DataLost,
}

pub struct Coordinator {
    holder: String,
    resources: HashMap<FetchKind, Resource>,
    /// Sequence number of the published body each kind was last synced with.
    synced_seq: HashMap<FetchKind, u64>,
    /// Kinds whose published data could not be read: fetch them regardless of the lease.
    missing: HashMap<FetchKind, Missing>,
    /// ETag of the data the engine holds, per kind (for conditional requests).
    etags: HashMap<FetchKind, String>,
}

fn source_id(upstream: &str, path: &str) -> String {
    let mut h = hmac_sha256::Hash::new();
    h.update(upstream.as_bytes());
    h.update([0u8]);
    h.update(path.as_bytes());
    h.finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn timeout_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl Coordinator {
    /// `prefix` namespaces every key (`revguard/` on Envoy, `<zone>/` on Kong).
    pub fn new(policy: &Policy, prefix: &str) -> Coordinator {
        let mut resources = HashMap::new();
        let mut add = |kind: FetchKind, upstream: &str, path: &str, ttl: u64, timeout_ms: u64| {
            let key = format!("{prefix}{}/{}/", kind.label(), source_id(upstream, path));
            resources.insert(
                kind,
                Resource {
                    key,
                    lease_ttl: ttl,
                    in_flight_secs: timeout_secs(timeout_ms).saturating_add(2),
                },
            );
        };
        for (i, issuer) in policy.config.issuers.iter().enumerate() {
            if let Some(up) = &issuer.jwks_upstream {
                // Only while the holder's fetch is in flight: workers fall due together at
                // the interval, so they still skip; a worker that saw an unknown kid does not.
                let ttl = timeout_secs(up.timeout_ms).saturating_add(1);
                add(
                    FetchKind::Keys(i),
                    &up.upstream,
                    &up.path,
                    ttl,
                    up.timeout_ms,
                );
            }
        }
        if let Some(r) = &policy.config.revocation {
            let ttl = r
                .refresh_interval_secs
                .saturating_add(timeout_secs(r.timeout_ms))
                .saturating_add(1);
            add(FetchKind::Snapshot, &r.upstream, &r.path, ttl, r.timeout_ms);
            if let Some(delta) = &r.delta_path {
                add(FetchKind::Delta, &r.upstream, delta, ttl, r.timeout_ms);
            }
        }
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(host::now_millis());
        Coordinator {
            holder: format!("{:016x}", hasher.finish()),
            resources,
            synced_seq: HashMap::new(),
            missing: HashMap::new(),
            etags: HashMap::new(),
        }
    }

    fn key(&self, kind: FetchKind, what: &str) -> Option<String> {
        self.resources
            .get(&kind)
            .map(|r| format!("{}{what}", r.key))
    }

    /// The ETag of the data in force for `kind`, if known.
    pub fn etag(&self, kind: FetchKind) -> Option<&str> {
        self.etags.get(&kind).map(String::as_str)
    }

    /// Decides whether this worker fetches `kind` now, taking the lease if so.
    pub fn claim(&mut self, kind: FetchKind, now: u64) -> Claim {
        let (Some(key), Some((ttl, in_flight))) = (
            self.key(kind, "lease"),
            self.resources
                .get(&kind)
                .map(|r| (r.lease_ttl, r.in_flight_secs)),
        ) else {
            return Claim::Fetch;
        };
        let current = host::get_shared_data(&key);
        let cas = current.as_ref().map_or(0, |(_, cas)| *cas);
        let other_taken_at = current.as_ref().and_then(|(value, _)| {
            let text = std::str::from_utf8(value).unwrap_or("");
            let (holder, taken) = text.split_once(':').unwrap_or(("", "0"));
            let taken: u64 = taken.parse().unwrap_or(0);
            (holder != self.holder && now < taken.saturating_add(ttl)).then_some(taken)
        });
        // Respect another holder's lease unless what it publishes cannot reach this worker.
        let respect = other_taken_at.is_some_and(|taken| match self.missing.get(&kind) {
            None => true,
            Some(Missing::Unpublished) => now < taken.saturating_add(in_flight),
            Some(Missing::DataLost) => false,
        });
        if respect {
            return if self.missing.contains_key(&kind) {
                Claim::SkipForNow
            } else {
                Claim::Skip
            };
        }
        let value = format!("{}:{now}", self.holder);
        match host::set_shared_data(&key, value.as_bytes(), cas) {
            // Someone else took it between our read and write: it fetches.
            Err(_) if current.is_some() && !self.missing.contains_key(&kind) => Claim::Skip,
            _ => Claim::Fetch,
        }
    }

    /// Publishes a body this worker fetched and its engine accepted.
    pub fn publish(
        &mut self,
        kind: FetchKind,
        body: &[u8],
        etag: Option<&str>,
        fetched_at: u64,
        metrics: &mut Metrics,
    ) {
        let etag = etag.unwrap_or("");
        self.etags.insert(kind, etag.to_string());
        let (Some(version_key), Some(data_key)) =
            (self.key(kind, "version"), self.key(kind, "data"))
        else {
            return;
        };
        for _ in 0..2 {
            let current = host::get_shared_data(&version_key);
            let cas = current.as_ref().map_or(0, |(_, cas)| *cas);
            let seq = current
                .as_ref()
                .and_then(|(value, _)| decode(value))
                .map_or(1, |p| p.seq.saturating_add(1));
            // The data first: a version without its data makes readers fetch for themselves.
            if host::set_shared_data(&data_key, &encode(seq, fetched_at, etag, body), 0).is_err() {
                metrics.count("revguard.shared.publish_failed");
            }
            if host::set_shared_data(&version_key, &encode(seq, fetched_at, etag, &[]), cas).is_ok()
            {
                self.synced_seq.insert(kind, seq);
                self.missing.remove(&kind);
                return;
            }
        }
        metrics.count("revguard.shared.publish_failed");
    }

    /// Records the ETag of data this worker fetched that did not change its engine.
    pub fn note_etag(&mut self, kind: FetchKind, etag: Option<&str>) {
        if let Some(etag) = etag.filter(|e| e.len() <= MAX_ETAG) {
            self.etags.insert(kind, etag.to_string());
        }
    }

    /// Loads whatever other workers published since the last call. Cheap when nothing
    /// changed: only the small version keys are read.
    pub fn sync(&mut self, engine: &mut Engine, now: u64, metrics: &mut Metrics) {
        let mut kinds: Vec<FetchKind> = self.resources.keys().copied().collect();
        // Key sets first, then the snapshot before its delta.
        kinds.sort_by_key(|k| match k {
            FetchKind::Keys(i) => (0, *i),
            FetchKind::Snapshot => (1, 0),
            FetchKind::Delta => (2, 0),
        });
        for kind in kinds {
            self.sync_one(kind, engine, now, metrics);
        }
    }

    fn sync_one(&mut self, kind: FetchKind, engine: &mut Engine, now: u64, metrics: &mut Metrics) {
        let (Some(version_key), Some(data_key)) =
            (self.key(kind, "version"), self.key(kind, "data"))
        else {
            return;
        };
        let version = host::get_shared_data(&version_key);
        let Some(seq) = version.as_ref().and_then(|(v, _)| decode(v)).map(|p| p.seq) else {
            // Nothing published (or evicted): fine if this worker has the data already.
            let have = match kind {
                FetchKind::Keys(i) => engine
                    .status(now)
                    .key_set_age_secs
                    .get(i)
                    .is_some_and(Option::is_some),
                FetchKind::Snapshot => engine.snapshot_generation().is_some(),
                FetchKind::Delta => true,
            };
            self.set_missing(kind, (!have).then_some(Missing::Unpublished));
            return;
        };
        if self.synced_seq.get(&kind) == Some(&seq) {
            self.set_missing(kind, None);
            return;
        }
        let data = host::get_shared_data(&data_key);
        let Some(published) = data
            .as_ref()
            .and_then(|(v, _)| decode(v))
            .filter(|p| p.seq == seq)
        else {
            self.set_missing(kind, Some(Missing::DataLost));
            return;
        };
        let loaded = match kind {
            FetchKind::Keys(i) => {
                let fetched_at = published.fetched_at.min(now);
                engine.load_keys(i, published.body, fetched_at).map(|_| {
                    let interval = engine.refresh_interval(kind);
                    engine.defer_fetch(kind, fetched_at.saturating_add(interval));
                })
            }
            FetchKind::Snapshot => engine.load_snapshot(published.body).map(|_| ()),
            FetchKind::Delta => engine.load_delta(published.body).map(|_| ()),
        };
        let label = kind.label();
        match loaded {
            Ok(()) => {
                metrics.count(&format!("revguard.shared.{label}.loaded"));
                self.etags.insert(kind, published.etag.to_string());
            }
            // Already newer, or refused: either way there is nothing more to take from it.
            Err(_) => metrics.count(&format!("revguard.shared.{label}.not_loaded")),
        }
        self.synced_seq.insert(kind, seq);
        self.set_missing(kind, None);
    }

    fn set_missing(&mut self, kind: FetchKind, missing: Option<Missing>) {
        match missing {
            Some(why) => self.missing.insert(kind, why),
            None => self.missing.remove(&kind),
        };
    }
}

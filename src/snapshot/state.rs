//! What a plugin keeps: one verified snapshot and at most one verified delta for it, and
//! the revocation check of a token's ids against them.
//!
//! Every update is all-or-nothing: a new snapshot or delta is fully decoded and verified
//! into a fresh value before anything in `self` changes.

use serde::Serialize;

use super::delta::{decode_delta, DeltaContent};
use super::error::SnapshotError;
use super::filter::RevocationFilter;
use super::format::decode_snapshot;
use super::ids::{HashedId, IdHasher, IdKind};
use super::keys::SnapshotKeys;
use super::table::{IdSet, NotBeforeTable};

/// The identifiers of a verified token that revocation can match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenIds<'a> {
    pub jti: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub issued_at: Option<u64>,
}

/// A token's ids hashed with one snapshot's salt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashedIds {
    jti: Option<HashedId>,
    sid: Option<HashedId>,
    sub: Option<HashedId>,
    tenant: Option<HashedId>,
    issued_at: Option<u64>,
}

/// The outcome of a revocation check.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Clear,
    /// A Bloom filter hit on the `jti` or `sid`: confirm by introspection.
    MaybeRevoked(IdKind),
    /// Certainly revoked: a delta's exact `jti`/`sid`, or issued before a subject's or
    /// tenant's not-before time (a token without `iat` counts as issued before).
    Revoked(IdKind),
}

/// What an update changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub previous_generation: u64,
    pub generation: u64,
}

#[derive(Clone, Debug)]
struct Snapshot {
    generation: u64,
    built_at: u64,
    max_age_secs: u64,
    salt: [u8; 32],
    hasher: IdHasher,
    filter: RevocationFilter,
    subjects: NotBeforeTable,
    tenants: NotBeforeTable,
}

#[derive(Clone, Debug)]
struct Delta {
    generation: u64,
    built_at: u64,
    max_age_secs: u64,
    jti: IdSet,
    sid: IdSet,
    subjects: NotBeforeTable,
    tenants: NotBeforeTable,
}

/// One verified snapshot plus at most one verified delta for it.
#[derive(Clone, Debug)]
pub struct RevocationState {
    snapshot: Snapshot,
    delta: Option<Delta>,
}

fn load_snapshot(bytes: &[u8], keys: &SnapshotKeys) -> Result<Snapshot, SnapshotError> {
    let content = decode_snapshot(bytes, keys)?;
    let filter = RevocationFilter::from_parts(&content.filter)?;
    let h = content.header;
    Ok(Snapshot {
        generation: h.generation,
        built_at: h.built_at,
        max_age_secs: h.max_age_secs,
        salt: h.salt,
        hasher: IdHasher::new(&h.salt),
        filter,
        subjects: content.subjects,
        tenants: content.tenants,
    })
}

impl RevocationState {
    pub fn from_snapshot(bytes: &[u8], keys: &SnapshotKeys) -> Result<Self, SnapshotError> {
        Ok(RevocationState {
            snapshot: load_snapshot(bytes, keys)?,
            delta: None,
        })
    }

    /// Replaces the state with a newer full snapshot. An older or equal generation (than
    /// the snapshot's, or the applied delta's) is refused; `self` is unchanged on any error.
    pub fn apply_snapshot(
        &mut self,
        bytes: &[u8],
        keys: &SnapshotKeys,
    ) -> Result<Applied, SnapshotError> {
        let current = self.generation();
        let next = load_snapshot(bytes, keys)?;
        if next.generation <= current {
            return Err(SnapshotError::Rollback {
                current,
                offered: next.generation,
            });
        }
        let applied = Applied {
            previous_generation: current,
            generation: next.generation,
        };
        self.snapshot = next;
        self.delta = None;
        Ok(applied)
    }

    /// Applies a delta for the current snapshot. Refused unless its base is the snapshot's
    /// generation, its salt the snapshot's, and its generation newer than what is applied;
    /// `self` is unchanged on any error.
    pub fn apply_delta(
        &mut self,
        bytes: &[u8],
        keys: &SnapshotKeys,
    ) -> Result<Applied, SnapshotError> {
        let content: DeltaContent = decode_delta(bytes, keys)?;
        let h = content.header;
        if h.base_generation != self.snapshot.generation {
            return Err(SnapshotError::DeltaBaseMismatch {
                snapshot: self.snapshot.generation,
                delta_base: h.base_generation,
            });
        }
        if h.base_salt != self.snapshot.salt {
            return Err(SnapshotError::DeltaSaltMismatch);
        }
        let current = self.generation();
        if h.generation <= current {
            return Err(SnapshotError::Rollback {
                current,
                offered: h.generation,
            });
        }
        self.delta = Some(Delta {
            generation: h.generation,
            built_at: h.built_at,
            max_age_secs: h.max_age_secs,
            jti: content.jti,
            sid: content.sid,
            subjects: content.subjects,
            tenants: content.tenants,
        });
        Ok(Applied {
            previous_generation: current,
            generation: h.generation,
        })
    }

    /// The applied delta's generation if there is one, else the snapshot's.
    pub fn generation(&self) -> u64 {
        self.delta
            .as_ref()
            .map_or(self.snapshot.generation, |d| d.generation)
    }

    /// The generation of the full snapshot.
    pub fn snapshot_generation(&self) -> u64 {
        self.snapshot.generation
    }

    /// The newest build time of the snapshot and the delta.
    pub fn built_at(&self) -> u64 {
        self.delta.as_ref().map_or(self.snapshot.built_at, |d| {
            d.built_at.max(self.snapshot.built_at)
        })
    }

    /// How long the newest data may be trusted: the delta's if one is applied.
    pub fn max_age_secs(&self) -> u64 {
        self.delta
            .as_ref()
            .map_or(self.snapshot.max_age_secs, |d| d.max_age_secs)
    }

    /// Whether the data is older than `min(own max age, max_staleness_secs)` at `now`, or
    /// dated more than `skew_secs` in the future. A future date is not freshness: trusting it
    /// would let one file built with a wrong clock (or a stolen key) switch staleness off
    /// for as long as it claims, so it is stale until a correctly dated file replaces it.
    pub fn is_stale(&self, now: u64, max_staleness_secs: u64, skew_secs: u64) -> bool {
        let built_at = self.built_at();
        if built_at > now.saturating_add(skew_secs) {
            return true;
        }
        let age = now.saturating_sub(built_at);
        age > self.max_age_secs().min(max_staleness_secs)
    }

    /// The salt ids are hashed with: hashed ids stay valid while it does not change.
    pub fn salt(&self) -> &[u8; 32] {
        &self.snapshot.salt
    }

    /// Hashes a token's ids with this snapshot's salt (the costly part of a check; callers may
    /// keep the result for the same token while [`RevocationState::salt`] is unchanged).
    pub fn hash_ids(&self, ids: &TokenIds<'_>) -> HashedIds {
        let hasher = &self.snapshot.hasher;
        HashedIds {
            jti: ids.jti.map(|v| hasher.hash(IdKind::Jti, v)),
            sid: ids.sid.map(|v| hasher.hash(IdKind::Sid, v)),
            sub: ids.sub.map(|v| hasher.hash(IdKind::Subject, v)),
            tenant: ids.tenant.map(|v| hasher.hash(IdKind::Tenant, v)),
            issued_at: ids.issued_at,
        }
    }

    /// Checks a token's ids: exact subject and tenant tables first, then the delta's exact
    /// sets, then the Bloom filter.
    pub fn check(&self, ids: &TokenIds<'_>) -> Verdict {
        self.check_hashed(&self.hash_ids(ids))
    }

    /// [`RevocationState::check`] with ids already hashed by [`RevocationState::hash_ids`].
    pub fn check_hashed(&self, ids: &HashedIds) -> Verdict {
        let delta = self.delta.as_ref();
        let exact = [
            (
                IdKind::Subject,
                ids.sub,
                &self.snapshot.subjects,
                delta.map(|d| &d.subjects),
            ),
            (
                IdKind::Tenant,
                ids.tenant,
                &self.snapshot.tenants,
                delta.map(|d| &d.tenants),
            ),
        ];
        for (kind, id, table, delta_table) in exact {
            let Some(id) = id else { continue };
            let not_before = [Some(table), delta_table]
                .into_iter()
                .flatten()
                .filter_map(|t| t.not_before(&id))
                .max();
            if let Some(not_before) = not_before {
                if ids.issued_at.is_none_or(|iat| iat < not_before) {
                    return Verdict::Revoked(kind);
                }
            }
        }
        if let Some(d) = delta {
            if ids.jti.is_some_and(|id| d.jti.contains(&id)) {
                return Verdict::Revoked(IdKind::Jti);
            }
            if ids.sid.is_some_and(|id| d.sid.contains(&id)) {
                return Verdict::Revoked(IdKind::Sid);
            }
        }
        if ids.jti.is_some_and(|id| self.snapshot.filter.contains(&id)) {
            return Verdict::MaybeRevoked(IdKind::Jti);
        }
        if ids.sid.is_some_and(|id| self.snapshot.filter.contains(&id)) {
            return Verdict::MaybeRevoked(IdKind::Sid);
        }
        Verdict::Clear
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{
        build_delta, build_snapshot, BuildOptions, DeltaOptions, Revocation, RevocationTarget,
        SigningKey,
    };

    const T0: u64 = 1_700_000_000;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32]).unwrap()
    }

    fn keys_for(k: &[&SigningKey]) -> SnapshotKeys {
        SnapshotKeys::parse(&k.iter().map(|k| k.public_key_text()).collect::<Vec<_>>()).unwrap()
    }

    fn opts(generation: u64, salt: u8) -> BuildOptions {
        BuildOptions {
            generation,
            built_at: T0,
            max_age_secs: 300,
            fp_rate: 0.001,
            salt: [salt; 32],
        }
    }

    fn rev(target: RevocationTarget) -> Revocation {
        Revocation { target, exp: None }
    }

    fn base_entries() -> Vec<Revocation> {
        vec![
            rev(RevocationTarget::Jti("tok-1".into())),
            rev(RevocationTarget::Sid("sess-1".into())),
            rev(RevocationTarget::Subject {
                sub: "alice".into(),
                not_before: T0 - 100,
            }),
            rev(RevocationTarget::Tenant {
                tenant: "acme".into(),
                not_before: T0 - 50,
            }),
            Revocation {
                target: RevocationTarget::Jti("expired".into()),
                exp: Some(T0 - 1),
            },
        ]
    }

    fn ids<'a>(
        jti: &'a str,
        sid: &'a str,
        sub: &'a str,
        tenant: &'a str,
        iat: Option<u64>,
    ) -> TokenIds<'a> {
        TokenIds {
            jti: Some(jti),
            sid: Some(sid),
            sub: Some(sub),
            tenant: Some(tenant),
            issued_at: iat,
        }
    }

    #[test]
    fn snapshot_verdicts() {
        let k = key(1);
        let bytes = build_snapshot(&base_entries(), &opts(5, 9), &k).unwrap();
        let state = RevocationState::from_snapshot(&bytes, &keys_for(&[&k])).unwrap();
        assert_eq!(state.generation(), 5);
        let iat = Some(T0);
        assert_eq!(
            state.check(&ids("tok-1", "s", "bob", "other", iat)),
            Verdict::MaybeRevoked(IdKind::Jti)
        );
        assert_eq!(
            state.check(&ids("t", "sess-1", "bob", "other", iat)),
            Verdict::MaybeRevoked(IdKind::Sid)
        );
        // A jti value never matches as a sid and vice versa.
        assert_eq!(
            state.check(&ids("sess-1", "tok-1", "bob", "other", iat)),
            Verdict::Clear
        );
        assert_eq!(
            state.check(&ids("expired", "s", "bob", "other", iat)),
            Verdict::Clear
        );
        // Subject: revoked before not_before, clear at and after it, revoked without iat.
        assert_eq!(
            state.check(&ids("t", "s", "alice", "other", Some(T0 - 101))),
            Verdict::Revoked(IdKind::Subject)
        );
        assert_eq!(
            state.check(&ids("t", "s", "alice", "other", Some(T0 - 100))),
            Verdict::Clear
        );
        assert_eq!(
            state.check(&ids("t", "s", "alice", "other", None)),
            Verdict::Revoked(IdKind::Subject)
        );
        assert_eq!(
            state.check(&ids("t", "s", "bob", "acme", Some(T0 - 51))),
            Verdict::Revoked(IdKind::Tenant)
        );
        assert_eq!(
            state.check(&ids("t", "s", "bob", "acme", Some(T0 - 50))),
            Verdict::Clear
        );
        // Exact tables come before the filter.
        assert_eq!(
            state.check(&ids("tok-1", "s", "alice", "other", None)),
            Verdict::Revoked(IdKind::Subject)
        );
        assert_eq!(state.check(&TokenIds::default()), Verdict::Clear);
    }

    #[test]
    fn delta_adds_exact_entries_and_guards_its_base() {
        let k = key(1);
        let keys = keys_for(&[&k]);
        let base = build_snapshot(&base_entries(), &opts(5, 9), &k).unwrap();
        let mut state = RevocationState::from_snapshot(&base, &keys).unwrap();
        let added = vec![
            rev(RevocationTarget::Jti("tok-2".into())),
            rev(RevocationTarget::Sid("sess-2".into())),
            rev(RevocationTarget::Subject {
                sub: "alice".into(),
                not_before: T0 + 10,
            }),
            rev(RevocationTarget::Tenant {
                tenant: "globex".into(),
                not_before: T0,
            }),
        ];
        let dopts = |generation| DeltaOptions {
            generation,
            built_at: T0 + 60,
            max_age_secs: 120,
        };
        let delta7 = build_delta(&base, &added, &dopts(7), &k).unwrap();
        let delta6 = build_delta(&base, &added[..1], &dopts(6), &k).unwrap();
        assert_eq!(
            state.check(&ids("tok-2", "s", "bob", "x", Some(T0))),
            Verdict::Clear
        );
        assert_eq!(
            state.apply_delta(&delta7, &keys).unwrap(),
            Applied {
                previous_generation: 5,
                generation: 7
            }
        );
        assert_eq!((state.generation(), state.snapshot_generation()), (7, 5));
        assert_eq!((state.built_at(), state.max_age_secs()), (T0 + 60, 120));
        assert_eq!(
            state.check(&ids("tok-2", "s", "bob", "x", Some(T0))),
            Verdict::Revoked(IdKind::Jti)
        );
        assert_eq!(
            state.check(&ids("t", "sess-2", "bob", "x", Some(T0))),
            Verdict::Revoked(IdKind::Sid)
        );
        assert_eq!(
            state.check(&ids("t", "s", "alice", "x", Some(T0))),
            Verdict::Revoked(IdKind::Subject)
        );
        assert_eq!(
            state.check(&ids("t", "s", "alice", "x", Some(T0 + 10))),
            Verdict::Clear
        );
        assert_eq!(
            state.check(&ids("t", "s", "bob", "globex", Some(T0 - 1))),
            Verdict::Revoked(IdKind::Tenant)
        );
        assert_eq!(
            state.check(&ids("tok-1", "s", "bob", "x", Some(T0))),
            Verdict::MaybeRevoked(IdKind::Jti)
        );
        // An older delta (or the same again) is a rollback and changes nothing.
        assert_eq!(
            state.apply_delta(&delta6, &keys),
            Err(SnapshotError::Rollback {
                current: 7,
                offered: 6
            })
        );
        assert_eq!(
            state.apply_delta(&delta7, &keys),
            Err(SnapshotError::Rollback {
                current: 7,
                offered: 7
            })
        );
        assert_eq!(
            state.check(&ids("tok-2", "s", "bob", "x", Some(T0))),
            Verdict::Revoked(IdKind::Jti)
        );
        // A delta for another snapshot generation, or another snapshot's salt.
        let other_gen = build_snapshot(&base_entries(), &opts(4, 9), &k).unwrap();
        let wrong_base = build_delta(&other_gen, &added, &dopts(8), &k).unwrap();
        assert_eq!(
            state.apply_delta(&wrong_base, &keys),
            Err(SnapshotError::DeltaBaseMismatch {
                snapshot: 5,
                delta_base: 4
            })
        );
        let other_salt = build_snapshot(&base_entries(), &opts(5, 10), &k).unwrap();
        let wrong_salt = build_delta(&other_salt, &added, &dopts(8), &k).unwrap();
        assert_eq!(
            state.apply_delta(&wrong_salt, &keys),
            Err(SnapshotError::DeltaSaltMismatch)
        );
        // A new snapshot must beat the delta's generation, and drops the delta.
        let snap7 = build_snapshot(&base_entries(), &opts(7, 11), &k).unwrap();
        assert_eq!(
            state.apply_snapshot(&snap7, &keys),
            Err(SnapshotError::Rollback {
                current: 7,
                offered: 7
            })
        );
        let snap8 = build_snapshot(&base_entries(), &opts(8, 11), &k).unwrap();
        assert_eq!(
            state.apply_snapshot(&snap8, &keys).unwrap(),
            Applied {
                previous_generation: 7,
                generation: 8
            }
        );
        // The delta's exact entry is gone (the tiny filter may still answer "maybe").
        assert_ne!(
            state.check(&ids("tok-2", "s", "bob", "x", Some(T0))),
            Verdict::Revoked(IdKind::Jti)
        );
        assert_eq!(
            state.check(&ids("t", "s", "alice", "x", Some(T0))),
            Verdict::Clear
        );
        assert_eq!(
            state.apply_delta(&delta7, &keys),
            Err(SnapshotError::DeltaBaseMismatch {
                snapshot: 8,
                delta_base: 5
            })
        );
    }

    #[test]
    fn keys_are_checked_and_rotation_works() {
        let (old, new, stranger) = (key(1), key(2), key(3));
        let keys = keys_for(&[&old, &new]);
        let s1 = build_snapshot(&base_entries(), &opts(1, 1), &old).unwrap();
        let s2 = build_snapshot(&base_entries(), &opts(2, 1), &new).unwrap();
        let mut state = RevocationState::from_snapshot(&s1, &keys).unwrap();
        state.apply_snapshot(&s2, &keys).unwrap();
        let s3 = build_snapshot(&base_entries(), &opts(3, 1), &stranger).unwrap();
        assert_eq!(
            state.apply_snapshot(&s3, &keys).unwrap_err(),
            SnapshotError::UnknownKey {
                key_id: stranger.key_id()
            }
        );
        let mut forged = build_snapshot(&base_entries(), &opts(3, 1), &new).unwrap();
        let last = forged.len() - 100;
        forged[last] ^= 1;
        assert_eq!(
            state.apply_snapshot(&forged, &keys).unwrap_err(),
            SnapshotError::BadSignature
        );
        assert_eq!(state.generation(), 2);
    }

    #[test]
    fn staleness_uses_the_smaller_bound() {
        let k = key(1);
        let bytes = build_snapshot(&[], &opts(1, 1), &k).unwrap();
        let state = RevocationState::from_snapshot(&bytes, &keys_for(&[&k])).unwrap();
        assert!(!state.is_stale(T0 + 300, 1000, 0));
        assert!(state.is_stale(T0 + 301, 1000, 0));
        assert!(!state.is_stale(T0 + 60, 60, 0));
        assert!(state.is_stale(T0 + 61, 60, 0));
        assert!(!state.is_stale(T0 - 30, 60, 30), "within the clock skew");
        assert!(state.is_stale(T0 - 31, 60, 30), "dated in the future");
        assert!(state.is_stale(T0 - 1000, 0, 30));
        assert_eq!(state.check(&ids("a", "b", "c", "d", None)), Verdict::Clear);
    }

    #[test]
    fn every_truncation_and_byte_flip_is_refused_without_panic() {
        let k = key(1);
        let keys = keys_for(&[&k]);
        let base = build_snapshot(&base_entries(), &opts(5, 9), &k).unwrap();
        let delta = build_delta(
            &base,
            &base_entries(),
            &DeltaOptions {
                generation: 6,
                built_at: T0,
                max_age_secs: 60,
            },
            &k,
        )
        .unwrap();
        let mut state = RevocationState::from_snapshot(&base, &keys).unwrap();
        for cut in 0..base.len() {
            assert!(
                RevocationState::from_snapshot(&base[..cut], &keys).is_err(),
                "cut {cut}"
            );
        }
        for cut in 0..delta.len() {
            assert!(
                state.apply_delta(&delta[..cut], &keys).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..base.len() {
            let mut bad = base.clone();
            bad[i] ^= 0x40;
            assert!(
                RevocationState::from_snapshot(&bad, &keys).is_err(),
                "flip {i}"
            );
        }
        for i in 0..delta.len() {
            let mut bad = delta.clone();
            bad[i] ^= 0x40;
            assert!(state.apply_delta(&bad, &keys).is_err(), "flip {i}");
        }
        let mut long = base.clone();
        long.push(0);
        assert!(RevocationState::from_snapshot(&long, &keys).is_err());
        // Structure errors that precede the signature check are named.
        assert_eq!(
            RevocationState::from_snapshot(&delta, &keys).unwrap_err(),
            SnapshotError::BadMagic
        );
        let mut v2 = base.clone();
        v2[5] = 2;
        assert_eq!(
            RevocationState::from_snapshot(&v2, &keys).unwrap_err(),
            SnapshotError::UnsupportedVersion(2)
        );
        let small = keys.clone().with_max_bytes(base.len() - 1);
        assert_eq!(
            RevocationState::from_snapshot(&base, &small).unwrap_err(),
            SnapshotError::TooLarge {
                size: base.len(),
                limit: base.len() - 1
            }
        );
        assert_eq!(state.apply_delta(&delta, &keys).unwrap().generation, 6);
    }
}

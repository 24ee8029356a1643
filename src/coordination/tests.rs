//! The lease and publish protocol against an in-memory store that can evict (Kong's shm LRU),
//! lose writes and race, with two or more coordinators sharing it.

use std::cell::Cell;
use std::collections::HashMap;

use super::*;
use crate::jwks::test_fixtures::{jwks, Signer};
use crate::snapshot::SigningKey;

const T: u64 = 1_000_000;

/// Envoy's CAS semantics (`cas == 0` unconditional; a stale non-zero `cas` fails; a missing
/// key is written whatever the `cas`), with an optional byte capacity evicting the least
/// recently used entries, writes that are lost, and a racing writer.
#[derive(Default)]
pub(super) struct MemStore {
    pub(super) entries: HashMap<String, (Vec<u8>, u32, u64)>,
    next_cas: u32,
    clock: Cell<u64>,
    pub(super) capacity: Option<usize>,
    /// Writes to keys ending in these succeed but are dropped.
    lose: Vec<String>,
    /// Writes to keys ending in these are refused.
    refuse: Vec<String>,
    /// Before the next write to this key, another worker writes it (bumping its CAS).
    race: Option<(String, Vec<u8>)>,
    /// Values larger than this are refused (a host's per-value limit).
    max_value: Option<usize>,
    /// Kong's CAS rule: a write succeeds only with the stored CAS (0 for a missing key); `cas
    /// == 0` is not "unconditionally".
    pub(super) kong_cas: bool,
    pub(super) reads: Cell<u32>,
}

impl MemStore {
    fn put(&mut self, key: &str, value: &[u8]) {
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.clock.set(self.clock.get() + 1);
        self.entries.insert(
            key.to_string(),
            (value.to_vec(), self.next_cas, self.clock.get()),
        );
        while let Some(limit) = self.capacity {
            let size: usize = self.entries.iter().map(|(k, v)| k.len() + v.0.len()).sum();
            if size <= limit {
                break;
            }
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .min_by_key(|(_, v)| v.2)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }

    fn evict(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub(super) fn raw(&mut self, key: &str, value: &[u8]) {
        self.put(key, value);
    }
}

impl SharedStore for MemStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.reads.set(self.reads.get() + 1);
        self.entries.get(key).map(|(v, cas, _)| (v.clone(), *cas))
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        if let Some((racing, other)) = self.race.take() {
            if racing == key {
                self.put(key, &other);
            } else {
                self.race = Some((racing, other));
            }
        }
        if self.refuse.iter().any(|s| key.ends_with(s.as_str()))
            || self.max_value.is_some_and(|max| value.len() > max)
        {
            return Err(StoreError::Other);
        }
        let current = self.entries.get(key).map(|(_, cas, _)| *cas);
        let matches = match current {
            _ if self.kong_cas => cas == current.unwrap_or(0),
            Some(current) => cas == 0 || cas == current,
            None => true,
        };
        if !matches {
            return Err(StoreError::CasMismatch);
        }
        if self.lose.iter().any(|s| key.ends_with(s.as_str())) {
            return Ok(());
        }
        self.put(key, value);
        Ok(())
    }
}

/// One issuer (keys every 300 s, 2 s timeout) and a snapshot every 10 s (1 s timeout).
fn policy() -> std::rc::Rc<Policy> {
    policy_on(serde_json::json!("envoy"), "idp", "origin")
}

/// [`policy`] on `host` (`"envoy"` or a `{"kong": ...}` section) with these upstreams.
fn policy_on(host: serde_json::Value, idp: &str, origin_upstream: &str) -> std::rc::Rc<Policy> {
    let origin = SigningKey::from_seed([7; 32]).unwrap().public_key_text();
    let config = serde_json::json!({
        "host": host,
        "issuers": [{"issuer": "https://idp", "audiences": ["api"], "algorithms": ["ES256"],
                     "jwks_upstream": {"upstream": idp, "path": "/jwks", "timeout_ms": 2000,
                                       "refresh_interval_secs": 300}}],
        "revocation": {"upstream": origin_upstream, "path": "/current.snap", "timeout_ms": 1000,
                       "refresh_interval_secs": 10, "public_keys": [origin]}
    });
    let engine = Engine::from_config_json(&serde_json::to_vec(&config).unwrap()).unwrap();
    engine.policy().clone()
}

fn worker(name: &str) -> (Coordinator, Engine) {
    let policy = policy();
    (
        Coordinator::new(&policy, "revguard/", name.to_string()),
        Engine::new(policy),
    )
}

fn keys_body() -> Vec<u8> {
    jwks(&[Signer::generate("ES256", "k1").public_jwk()])
}

const SNAP: FetchKind = FetchKind::Snapshot;
const KEYS: FetchKind = FetchKind::Keys(0);
/// The revocation lease expires this long after its last renewal; in flight: timeout 1 + 2.
const SNAP_TTL: u64 = REVOCATION_LEASE_SECS;

#[test]
fn keys_and_source_ids_are_the_shipped_ones() {
    let (a, _) = worker("a");
    let snap = format!(
        "revguard/snapshot/{}/",
        source_id("origin", "/current.snap")
    );
    assert_eq!(a.key(SNAP, "lease"), Some(format!("{snap}lease")));
    assert_eq!(a.key(SNAP, "data"), Some(format!("{snap}data")));
    assert_eq!(
        a.key(KEYS, "version"),
        Some(format!(
            "revguard/keys.0/{}/version",
            source_id("idp", "/jwks")
        ))
    );
    assert_eq!(source_id("origin", "/current.snap"), "b9d4e6fe");
    assert_eq!(source_id("idp", "/jwks"), "e80606cb");
    assert_eq!(a.key(FetchKind::Delta, "lease"), None);
}

#[test]
fn one_worker_fetches_the_others_recheck_the_revocation_lease() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, _) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    assert!(a.holds(SNAP));
    // A renewed lease is looked at again soon (not an interval later): see the TTL tests.
    assert_eq!(
        b.claim(&mut store, SNAP, T),
        Claim::Defer {
            until: T + RECHECK_SECS
        }
    );
    // The holder keeps its own lease.
    assert_eq!(a.claim(&mut store, SNAP, T + 1), Claim::Fetch);
    assert_eq!(
        b.claim(&mut store, SNAP, T + 2),
        Claim::Defer {
            until: T + 2 + RECHECK_SECS
        }
    );
    assert!(!b.holds(SNAP));
}

#[test]
fn a_dead_holders_lease_expires_after_its_ttl() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, _) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    // `a` dies without publishing or renewing (a configuration reload: all VMs are new).
    assert_eq!(
        b.claim(&mut store, SNAP, T + SNAP_TTL - 1),
        Claim::Defer {
            until: T + SNAP_TTL - 1 + RECHECK_SECS
        }
    );
    assert_eq!(b.claim(&mut store, SNAP, T + SNAP_TTL), Claim::Fetch);
    // And `b` holds it now; `a`, if it comes back, stops renewing.
    assert_eq!(
        a.claim(&mut store, SNAP, T + SNAP_TTL),
        Claim::Defer {
            until: T + SNAP_TTL + RECHECK_SECS
        }
    );
    assert!(!a.holds(SNAP) && b.holds(SNAP));
}

#[test]
fn a_living_holder_renews_its_lease_through_a_held_call() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, _) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    let key = a.key(SNAP, "lease").unwrap();
    // A held call lasts up to 27 s: the holder's ticks keep the lease, once a second.
    for t in 1..=30 {
        a.renew(&mut store, T + t);
        a.renew(&mut store, T + t); // a second tick in the same second writes nothing
        assert_eq!(
            b.claim(&mut store, SNAP, T + t),
            Claim::Defer {
                until: T + t + RECHECK_SECS
            },
            "second {t}"
        );
    }
    assert_eq!(
        store.get(&key).unwrap().0,
        format!("a:{}", T + 30).into_bytes()
    );
    // Renewals stop (the VM is gone): replaced one TTL after the last one.
    assert!(matches!(
        b.claim(&mut store, SNAP, T + 30 + SNAP_TTL - 1),
        Claim::Defer { .. }
    ));
    assert_eq!(b.claim(&mut store, SNAP, T + 30 + SNAP_TTL), Claim::Fetch);
    // The old holder notices at its next renewal and lets go.
    a.renew(&mut store, T + 30 + SNAP_TTL + 1);
    assert!(!a.holds(SNAP));
    assert_eq!(
        store.get(&key).unwrap().0,
        format!("b:{}", T + 30 + SNAP_TTL).into_bytes()
    );
    // An evicted lease is let go too (claimed again when a fetch falls due).
    b.renew(&mut store, T + 40);
    assert!(b.holds(SNAP));
    store.evict(&key);
    b.renew(&mut store, T + 41);
    assert!(!b.holds(SNAP));
}

#[test]
fn the_snapshot_and_its_delta_share_one_lease() {
    let origin = SigningKey::from_seed([7; 32]).unwrap().public_key_text();
    let config = serde_json::json!({
        "issuers": [{"issuer": "https://idp", "audiences": ["api"], "algorithms": ["ES256"],
                     "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
        "revocation": {"upstream": "origin", "path": "/current.snap", "delta_path": "/d",
                       "public_keys": [origin]}
    });
    let engine = Engine::from_config_json(&serde_json::to_vec(&config).unwrap()).unwrap();
    let mut a = Coordinator::new(engine.policy(), "revguard/", "a".into());
    let mut b = Coordinator::new(engine.policy(), "revguard/", "b".into());
    let lease = a.key(SNAP, "lease");
    assert_eq!(a.key(FetchKind::Delta, "lease"), lease);
    assert_ne!(a.key(FetchKind::Delta, "data"), a.key(SNAP, "data"));
    let mut store = MemStore::default();
    // Whoever holds the delta request also fetches the snapshot its answer asks for.
    assert_eq!(a.claim(&mut store, FetchKind::Delta, T), Claim::Fetch);
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    assert!(matches!(b.claim(&mut store, SNAP, T), Claim::Defer { .. }));
    assert!(matches!(
        b.claim(&mut store, FetchKind::Delta, T),
        Claim::Defer { .. }
    ));
}

#[test]
fn a_key_set_lease_lasts_only_while_its_fetch_is_in_flight() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, _) = worker("b");
    assert_eq!(a.claim(&mut store, KEYS, T), Claim::Fetch);
    assert_eq!(
        b.claim(&mut store, KEYS, T + 2),
        Claim::Defer { until: T + 302 }
    );
    // Timeout 2 s + 1: a worker that saw an unknown kid gets through at once after that.
    assert_eq!(b.claim(&mut store, KEYS, T + 3), Claim::Fetch);
}

#[test]
fn a_cas_conflict_between_read_and_write_leaves_the_lease_to_the_winner() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, _) = worker("b");
    let (mut c, _) = worker("c");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    // Expired: `b` and `c` race for it; `c` writes between `b`'s read and write.
    let key = b.key(SNAP, "lease").unwrap();
    store.race = Some((key.clone(), format!("c:{}", T + SNAP_TTL).into_bytes()));
    assert_eq!(
        b.claim(&mut store, SNAP, T + SNAP_TTL),
        Claim::Defer {
            until: T + SNAP_TTL + RECHECK_SECS
        }
    );
    assert_eq!(
        store.get(&key).unwrap().0,
        format!("c:{}", T + SNAP_TTL).into_bytes()
    );
    assert_eq!(c.claim(&mut store, SNAP, T + SNAP_TTL), Claim::Fetch);
}

#[test]
fn a_worker_without_data_fetches_if_it_lost_a_race_for_a_missing_lease() {
    let mut store = MemStore::default();
    let (mut a, mut engine) = worker("a");
    assert!(a.sync(&store, &mut engine, T).is_empty()); // nothing published, no data: missing
    let key = a.key(SNAP, "lease").unwrap();
    store.raw(&key, format!("z:{}", T - SNAP_TTL).as_bytes()); // an expired lease
    store.race = Some((key, format!("b:{T}").into_bytes()));
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
}

#[test]
fn a_worker_without_data_rechecks_while_the_holders_first_fetch_is_in_flight() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    assert!(b.sync(&store, &mut engine_b, T).is_empty());
    assert_eq!(
        b.claim(&mut store, SNAP, T),
        Claim::Defer {
            until: T + RECHECK_SECS
        }
    );
    assert_eq!(
        b.claim(&mut store, SNAP, T + 2),
        Claim::Defer {
            until: T + 2 + RECHECK_SECS
        }
    );
    // Timeout 1 s + 2: the holder is presumed stuck, `b` fetches for itself.
    assert_eq!(b.claim(&mut store, SNAP, T + 3), Claim::Fetch);
}

#[test]
fn a_published_key_set_reaches_the_other_workers_once() {
    let mut store = MemStore::default();
    let (mut a, mut engine_a) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    let body = keys_body();
    assert_eq!(a.claim(&mut store, KEYS, T), Claim::Fetch);
    engine_a.load_keys(0, &body, T).unwrap();
    assert_eq!(a.publish(&mut store, KEYS, &body, Some("\"k1\""), T), 0);
    assert!(
        a.sync(&store, &mut engine_a, T).is_empty(),
        "its own publication"
    );

    let synced = b.sync(&store, &mut engine_b, T + 4);
    assert_eq!(
        synced,
        vec![Synced {
            kind: KEYS,
            loaded: true
        }]
    );
    assert_eq!(engine_b.status(T + 4).key_set_age_secs, vec![Some(4)]);
    assert_eq!(b.etag(KEYS), Some("\"k1\""));
    // Due one interval after `a` fetched it, not after `b` loaded it.
    engine_b.defer_fetch(SNAP, T + 1000);
    assert!(engine_b.due_fetches(T + 299).is_empty());
    assert_eq!(engine_b.due_fetches(T + 300).len(), 1);
    // Unchanged: only the version key is read.
    let reads = b.reads_for(&store, &mut engine_b, T + 5);
    assert_eq!(reads, 2, "the keys and snapshot versions");
}

impl Coordinator {
    fn reads_for(&mut self, store: &MemStore, engine: &mut Engine, now: u64) -> u32 {
        let before = store.reads.get();
        assert!(self.sync(store, engine, now).is_empty());
        store.reads.get() - before
    }
}

#[test]
fn conditional_requests_use_the_etag_of_the_data_in_force() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (_, mut engine) = worker("b");
    a.publish(&mut store, SNAP, b"not a snapshot", Some("\"s1\""), T);
    let fetch = engine
        .due_fetches(T)
        .into_iter()
        .find(|f| f.kind == SNAP)
        .unwrap();
    let fetch = a.conditional(fetch);
    assert_eq!(fetch.request.header("if-none-match"), Some("\"s1\""));
    a.note_etag(SNAP, Some(""));
    let fetch = engine
        .due_fetches(T + 100)
        .into_iter()
        .find(|f| f.kind == SNAP)
        .unwrap();
    assert_eq!(a.conditional(fetch).request.header("if-none-match"), None);
}

#[test]
fn a_refused_body_is_counted_not_loaded_and_not_read_again() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, mut engine) = worker("b");
    a.publish(&mut store, SNAP, b"forged", Some("\"x\""), T);
    assert_eq!(
        b.sync(&store, &mut engine, T),
        vec![Synced {
            kind: SNAP,
            loaded: false
        }]
    );
    assert_eq!(engine.snapshot_generation(), None);
    assert_eq!(b.etag(SNAP), None, "never the ETag of data not in force");
    assert!(b.sync(&store, &mut engine, T + 1).is_empty());
}

#[test]
fn sequence_numbers_grow_across_publishers_and_a_cas_conflict_is_retried() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, _) = worker("b");
    let version = a.key(SNAP, "version").unwrap();
    let seq = |store: &MemStore| decode(&store.get(&version).unwrap().0).unwrap().seq;
    assert_eq!(a.publish(&mut store, SNAP, b"1", None, T), 0);
    assert_eq!(seq(&store), 1);
    assert_eq!(b.publish(&mut store, SNAP, b"2", None, T + 1), 0);
    assert_eq!(seq(&store), 2);
    // `b` publishes between `a`'s read of the version and its swap: `a` tries again.
    store.race = Some((version.clone(), encode(3, T + 2, "", b"")));
    assert_eq!(a.publish(&mut store, SNAP, b"4", None, T + 3), 0);
    assert_eq!(seq(&store), 4);
    let data = store.get(&a.key(SNAP, "data").unwrap()).unwrap().0;
    assert_eq!(decode(&data).unwrap().body, b"4");
}

#[test]
fn failed_writes_are_reported() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    store.refuse = vec!["/data".into()];
    assert_eq!(a.publish(&mut store, SNAP, b"1", None, T), 1);
    store.refuse = vec!["/data".into(), "/version".into()];
    assert_eq!(a.publish(&mut store, SNAP, b"1", None, T), 3);
    // Not configured: nothing to publish, nothing failed.
    assert_eq!(a.publish(&mut store, FetchKind::Delta, b"1", None, T), 0);
}

#[test]
fn evicted_data_under_a_live_version_makes_a_worker_ignore_the_lease() {
    let mut store = MemStore::default();
    let (mut a, mut engine_a) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    let body = keys_body();
    engine_a.load_keys(0, &body, T).unwrap();
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    a.publish(&mut store, SNAP, b"snapshot", None, T);
    store.evict(&a.key(SNAP, "data").unwrap());
    assert!(b
        .sync(&store, &mut engine_b, T + 1)
        .iter()
        .all(|s| s.kind != SNAP));
    assert_eq!(
        b.claim(&mut store, SNAP, T + 1),
        Claim::Fetch,
        "DataLost: the lease does not bind"
    );
    // Its own publication repairs the zone for everyone.
    b.publish(&mut store, SNAP, b"snapshot2", None, T + 1);
    assert!(a
        .sync(&store, &mut engine_a, T + 2)
        .iter()
        .any(|s| s.kind == SNAP));
}

#[test]
fn a_lost_data_write_is_seen_as_data_lost() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    store.lose = vec!["/data".into()];
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    assert_eq!(a.publish(&mut store, SNAP, b"snapshot", None, T), 0);
    assert!(b.sync(&store, &mut engine_b, T).is_empty());
    assert_eq!(b.claim(&mut store, SNAP, T), Claim::Fetch);
}

#[test]
fn corrupt_or_truncated_entries_count_as_missing() {
    let mut store = MemStore::default();
    let (mut a, _) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    a.publish(&mut store, SNAP, b"snapshot", None, T);
    let data = a.key(SNAP, "data").unwrap();
    let good = store.get(&data).unwrap().0;
    store.raw(&data, &good[..15]);
    assert!(b.sync(&store, &mut engine_b, T).is_empty());
    assert_eq!(b.claim(&mut store, SNAP, T), Claim::Fetch, "truncated data");
    // A corrupt version: nothing published, and `b` has no snapshot.
    let (mut c, mut engine_c) = worker("c");
    store.raw(&a.key(SNAP, "version").unwrap(), b"RGS0garbage");
    store.raw(&a.key(SNAP, "lease").unwrap(), format!("a:{T}").as_bytes());
    assert!(c.sync(&store, &mut engine_c, T).is_empty());
    assert_eq!(
        c.claim(&mut store, SNAP, T),
        Claim::Defer {
            until: T + RECHECK_SECS
        }
    );
    // A corrupt lease binds nobody.
    store.raw(&a.key(SNAP, "lease").unwrap(), b"\xff\xfe");
    assert_eq!(c.claim(&mut store, SNAP, T), Claim::Fetch);
}

#[test]
fn an_lru_zone_evicting_lease_and_version_lets_a_worker_fetch() {
    let mut store = MemStore {
        capacity: Some(200),
        ..MemStore::default()
    };
    let (mut a, _) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    // A big body pushes the older lease and then everything else out.
    a.publish(&mut store, SNAP, &[0u8; 150], None, T);
    assert!(store.get(&a.key(SNAP, "version").unwrap()).is_some());
    a.publish(&mut store, KEYS, &[1u8; 170], None, T);
    assert!(
        store.get(&a.key(SNAP, "version").unwrap()).is_none(),
        "evicted"
    );
    assert!(b
        .sync(&store, &mut engine_b, T)
        .iter()
        .all(|s| s.kind != SNAP));
    assert_eq!(
        b.claim(&mut store, SNAP, T),
        Claim::Fetch,
        "the lease was evicted too"
    );
}

#[test]
fn the_workers_of_one_proxy_share_one_node_id() {
    let mut store = MemStore::default();
    let first = shared_node_id(&mut store, "revguard/", "rg-1");
    let second = shared_node_id(&mut store, "revguard/", "rg-2");
    assert_eq!((first.as_str(), second.as_str()), ("rg-1", "rg-1"));
    // Another filter configuration (Kong zone) has its own.
    assert_eq!(shared_node_id(&mut store, "zone/", "rg-3"), "rg-3");
    // Evicted: the next worker names the proxy again.
    store.evict("revguard/node");
    assert_eq!(shared_node_id(&mut store, "revguard/", "rg-4"), "rg-4");
    // Garbage in the entry is not sent to the origin.
    store.raw("revguard/node", b"bad id\n");
    assert_eq!(shared_node_id(&mut store, "revguard/", "rg-5"), "rg-5");
    // A store that refuses the write: the worker keeps its own id.
    let mut full = MemStore {
        refuse: vec!["node".to_string()],
        ..MemStore::default()
    };
    assert_eq!(shared_node_id(&mut full, "revguard/", "rg-6"), "rg-6");
}

/// A signed snapshot of generation `generation` with `subjects` exact subject entries (about 24
/// bytes each): large enough to be split.
fn large_snapshot(generation: u64, subjects: usize) -> Vec<u8> {
    use crate::snapshot::{build_snapshot, BuildOptions, Revocation, RevocationTarget};
    let entries: Vec<Revocation> = (0..subjects)
        .map(|i| Revocation {
            target: RevocationTarget::Subject {
                sub: format!("user-{i}"),
                not_before: T - 10,
            },
            exp: None,
        })
        .collect();
    let opts = BuildOptions {
        generation,
        built_at: T,
        max_age_secs: 300,
        fp_rate: 0.001,
        salt: [generation as u8; 32],
    };
    build_snapshot(&entries, &opts, &SigningKey::from_seed([7; 32]).unwrap()).unwrap()
}

/// A host that refuses values over 64 KiB.
fn limited_store() -> MemStore {
    MemStore {
        max_value: Some(64 * 1024),
        ..MemStore::default()
    }
}

#[test]
fn a_snapshot_over_64_kib_is_published_in_pieces_within_the_limit() {
    let mut store = limited_store();
    let (mut a, mut engine_a) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    let body = large_snapshot(1, 8000);
    assert!(body.len() > 180_000, "{}", body.len());
    engine_a.load_snapshot(&body).unwrap();
    assert_eq!(a.publish(&mut store, SNAP, &body, Some("\"g1\""), T), 0);
    assert!(store.entries.values().all(|(v, _, _)| v.len() <= 64 * 1024));
    let data = a.key(SNAP, "data").unwrap();
    assert!(
        store.get(&data).is_none(),
        "the whole-body key is left alone"
    );
    assert!(store.get(&format!("{data}/2")).is_some());
    assert_eq!(
        b.sync(&store, &mut engine_b, T),
        vec![Synced {
            kind: SNAP,
            loaded: true
        }]
    );
    assert_eq!(engine_b.snapshot_generation(), Some(1));
    assert_eq!(b.etag(SNAP), Some("\"g1\""));
    // Before: the whole body in one value, refused; the others answered 503 until their own
    // first fetch. The failure is still reported when a piece is refused.
    store.max_value = Some(10_000);
    assert_eq!(a.publish(&mut store, SNAP, &body, None, T + 1), 1);
}

#[test]
fn a_reader_never_mixes_the_pieces_of_two_publications() {
    let mut store = limited_store();
    let (mut a, _) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    let first = large_snapshot(1, 8000);
    let second = large_snapshot(2, 8000);
    a.publish(&mut store, SNAP, &first, None, T);
    let data = a.key(SNAP, "data").unwrap();
    let version = a.key(SNAP, "version").unwrap();
    // A writer half-way through publication 2: one piece overwritten, the version still 1.
    let piece = second.get(CHUNK_BYTES..2 * CHUNK_BYTES).unwrap();
    store.raw(&format!("{data}/1"), &encode(2, T + 1, "", piece));
    assert!(b.sync(&store, &mut engine_b, T + 1).is_empty());
    assert_eq!(engine_b.snapshot_generation(), None);
    assert_eq!(b.claim(&mut store, SNAP, T + 1), Claim::Fetch, "data lost");
    // Two writers that both read version 1 write pieces numbered 2: the digest tells.
    let (mut c, _) = worker("c");
    c.publish(&mut store, SNAP, &second, None, T + 2);
    let seq = decode(&store.get(&version).unwrap().0).unwrap().seq;
    let foreign = first.get(..CHUNK_BYTES).unwrap();
    store.raw(&format!("{data}/0"), &encode(seq, T + 2, "", foreign));
    assert!(b.sync(&store, &mut engine_b, T + 2).is_empty());
    assert_eq!(engine_b.snapshot_generation(), None);
    // The next whole publication is taken.
    c.publish(&mut store, SNAP, &second, None, T + 3);
    assert_eq!(b.sync(&store, &mut engine_b, T + 3).len(), 1);
    assert_eq!(engine_b.snapshot_generation(), Some(2));
}

#[test]
fn an_evicted_piece_makes_a_worker_fetch_for_itself() {
    let mut store = limited_store();
    let (mut a, _) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    a.publish(&mut store, SNAP, &large_snapshot(1, 8000), None, T);
    store.evict(&format!("{}/1", a.key(SNAP, "data").unwrap()));
    assert!(b.sync(&store, &mut engine_b, T).is_empty());
    assert_eq!(b.claim(&mut store, SNAP, T), Claim::Fetch);
}

#[test]
fn an_lru_zone_sized_for_the_pieces_keeps_them() {
    // The Kong example sizes its zone from the snapshot limit: twice the largest snapshot
    // (the pieces of one publication being replaced by the next) and room for the rest.
    let body = large_snapshot(1, 8000);
    let mut store = MemStore {
        capacity: Some(2 * body.len() + 16 * 1024),
        max_value: Some(64 * 1024),
        ..MemStore::default()
    };
    let (mut a, _) = worker("a");
    let (mut b, mut engine_b) = worker("b");
    assert_eq!(a.claim(&mut store, SNAP, T), Claim::Fetch);
    a.publish(&mut store, SNAP, &body, None, T);
    a.publish(&mut store, KEYS, &keys_body(), None, T);
    a.publish(&mut store, SNAP, &large_snapshot(2, 8000), None, T + 1);
    b.sync(&store, &mut engine_b, T + 1);
    assert_eq!(engine_b.snapshot_generation(), Some(2));
}

/// A worker on Kong with the zone `rg`.
fn kong_worker(name: &str) -> (Coordinator, Engine) {
    let policy = policy_on(
        serde_json::json!({"kong": {"shm_zone": "rg"}}),
        "idp:443",
        "origin:443",
    );
    (
        Coordinator::new(&policy, "rg/", name.to_string()),
        Engine::new(policy),
    )
}

#[test]
fn every_publication_reaches_the_others_under_kongs_cas_rule() {
    // Kong refuses `cas == 0` on an existing key: each publication after the first would lose
    // its data writes, and readers would fetch for themselves. Each value, with its key and
    // the store's node, fits one 4 KiB page: no zone Kong accepts is too small for it.
    let mut store = MemStore {
        kong_cas: true,
        max_value: Some(4096 - 128 - 64),
        ..MemStore::default()
    };
    let (mut a, _) = kong_worker("a");
    let (mut b, mut engine_b) = kong_worker("b");
    for generation in 1..=3 {
        let body = large_snapshot(generation, 8000);
        assert_eq!(a.publish(&mut store, SNAP, &body, None, T + generation), 0);
        assert_eq!(b.sync(&store, &mut engine_b, T + generation).len(), 1);
        assert_eq!(engine_b.snapshot_generation(), Some(generation));
    }
    let keys = keys_body();
    assert_eq!(a.publish(&mut store, KEYS, &keys, None, T), 0);
    assert_eq!(a.publish(&mut store, KEYS, &keys, None, T + 1), 0);
    assert!(store
        .entries
        .iter()
        .all(|(k, (v, _, _))| k.len() + v.len() + 128 <= 4096));
    // The node id entry is written again over an unreadable value, not left behind.
    store.raw("rg/node", b"\xff");
    assert_eq!(shared_node_id(&mut store, "rg/", "node-b"), "node-b");
}

//! Verdicts and introspection answers shared between engines (`verdicts.rs` and the engine's
//! rules of use), against the in-memory store of `tests.rs`: hits, slot collisions, key
//! rotation, a new revocation generation, expiry, and values that are garbage or truncated.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};

use super::tests::MemStore;
use super::verdicts::{SharedAnswer, SharedVerdict, MAX_ANSWER_BODY};
use super::*;
use crate::decision::Decision;
use crate::http::{HttpOutcome, OriginHints};
use crate::jwks::test_fixtures::{jwks, Signer};
use crate::request::RequestView;
use crate::snapshot::SigningKey;

const T: u64 = 1_800_000_000;
const ISS: &str = "https://idp";

/// One store seen by several engines, as the worker VMs of one proxy see the host's.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<MemStore>>);

impl SharedStore for Shared {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.0.borrow().get(key)
    }
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        self.0.borrow_mut().set(key, value, cas)
    }
}

impl Shared {
    fn keys(&self, part: &str) -> Vec<String> {
        let store = self.0.borrow();
        let mut keys: Vec<String> = store
            .entries
            .keys()
            .filter(|k| k.contains(part))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn write(&self, key: &str, value: &[u8]) {
        self.0.borrow_mut().raw(key, value);
    }

    fn read(&self, key: &str) -> Vec<u8> {
        self.get(key).map(|(v, _)| v).unwrap_or_default()
    }
}

struct Kit {
    signer: Signer,
    store: Shared,
    origin: SigningKey,
}

impl Kit {
    fn new() -> Kit {
        Kit {
            signer: Signer::generate("ES256", "k1"),
            store: Shared::default(),
            origin: SigningKey::from_seed([9; 32]).unwrap(),
        }
    }

    /// `extra` is merged into the configuration: an issuer with fetched ES256 keys, an
    /// introspection endpoint asked for every token, and no revocation unless given.
    fn config(&self, extra: Value) -> Value {
        let mut config = json!({
            "issuers": [{"issuer": ISS, "audiences": ["api"], "algorithms": ["ES256"],
                         "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
            "introspection": {"upstream": "idp", "path": "/introspect", "client_id": "gw",
                              "client_secret": "s", "cache_ttl_secs": 60},
            "default_route": {"introspection": "never"}
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    }

    /// A worker: its own engine, keys `keys` loaded, sharing this kit's store.
    fn worker(&self, extra: Value, keys: &[u8]) -> Engine {
        let config = serde_json::to_vec(&self.config(extra)).unwrap();
        let mut engine = Engine::from_config_json(&config).unwrap();
        engine.load_keys(0, keys, T).unwrap();
        engine.share_through(Box::new(self.store.clone()), "revguard/");
        engine
    }

    fn keys(&self) -> Vec<u8> {
        jwks(&[self.signer.public_jwk()])
    }

    fn token(&self, sub: &str, exp: u64) -> String {
        self.signer
            .sign(&json!({"iss": ISS, "aud": "api", "sub": sub, "iat": T - 10,
                                 "exp": exp, "jti": format!("jti-{sub}")}))
    }

    fn revocation(&self) -> Value {
        json!({"upstream": "origin", "path": "/snap", "refresh_interval_secs": 10,
               "max_staleness_secs": 300, "public_keys": [self.origin.public_key_text()]})
    }

    fn snapshot(&self, generation: u64) -> Vec<u8> {
        use crate::snapshot::{build_snapshot, BuildOptions};
        let opts = BuildOptions {
            generation,
            built_at: T,
            max_age_secs: 300,
            fp_rate: 0.001,
            salt: [generation as u8; 32],
        };
        build_snapshot(&[], &opts, &self.origin).unwrap()
    }
}

fn decide(engine: &mut Engine, token: &str, now: u64) -> Decision {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_bytes())];
    let view = RequestView {
        method: "GET",
        path: "/",
        headers: &headers,
    };
    engine.decide(&view, now)
}

fn outcome(decision: &Decision) -> String {
    match decision {
        Decision::Allow(_) => "allow".into(),
        Decision::Deny(d) => d.reason.code().into(),
        Decision::Introspect(_) => "introspect".into(),
    }
}

/// Decides `token`, answering an introspection with `answer` (an HTTP 200 body).
fn decide_answering(engine: &mut Engine, token: &str, answer: &Value, now: u64) -> String {
    match decide(engine, token, now) {
        Decision::Introspect(call) => {
            let auth = format!("Bearer {token}");
            let headers = [("authorization", auth.as_bytes())];
            let view = RequestView {
                method: "GET",
                path: "/",
                headers: &headers,
            };
            let body = answer.to_string();
            let outcome = HttpOutcome::Response {
                status: 200,
                etag: None,
                body: body.as_bytes(),
                origin: OriginHints::default(),
            };
            let decision = engine.complete_introspection(call.pending, outcome, &view, now);
            format!("called {}", outcome_of(&decision))
        }
        decision => outcome_of(&decision),
    }
}

fn outcome_of(decision: &Decision) -> String {
    outcome(decision)
}

#[test]
fn a_token_verified_by_one_worker_is_not_verified_again_by_another() {
    let kit = Kit::new();
    let workers: Vec<Engine> = (0..4).map(|_| kit.worker(json!({}), &kit.keys())).collect();
    let mut workers = workers;
    let token = kit.token("alice", T + 600);
    for (i, worker) in workers.iter_mut().enumerate() {
        assert_eq!(
            outcome(&decide(worker, &token, T + 1)),
            "allow",
            "worker {i}"
        );
        // Again: this worker's own cache now.
        assert_eq!(
            outcome(&decide(worker, &token, T + 2)),
            "allow",
            "worker {i}"
        );
    }
    let checks: u64 = workers.iter().map(Engine::signature_checks).sum();
    let hits: u64 = workers.iter().map(Engine::shared_verdict_hits).sum();
    assert_eq!((checks, hits), (1, 3));
    assert_eq!(kit.store.keys("verdict/").len(), 1);
    // The value names the token by its digest, never the token itself.
    let value = kit.store.read(&kit.store.keys("verdict/")[0]);
    assert!(!value.windows(16).any(|w| token.as_bytes().starts_with(w)));
    let verdict = SharedVerdict::decode(&value).unwrap();
    assert_eq!(verdict.token_key, crate::token_cache::token_key(&token));
    assert_eq!(verdict.exp, T + 600);
}

#[test]
fn sharing_off_verifies_in_every_worker() {
    let kit = Kit::new();
    let off = json!({"sharing": {"verdict_slots": 0, "answer_slots": 0}});
    let mut a = kit.worker(off.clone(), &kit.keys());
    let mut b = kit.worker(off, &kit.keys());
    let token = kit.token("alice", T + 600);
    assert_eq!(outcome(&decide(&mut a, &token, T)), "allow");
    assert_eq!(outcome(&decide(&mut b, &token, T)), "allow");
    assert_eq!(a.signature_checks() + b.signature_checks(), 2);
    assert!(kit.store.keys("revguard/").is_empty());
}

#[test]
fn two_tokens_in_one_slot_are_a_miss_never_a_wrong_hit() {
    let kit = Kit::new();
    let one_slot = json!({"sharing": {"verdict_slots": 1}});
    let mut a = kit.worker(one_slot.clone(), &kit.keys());
    let mut b = kit.worker(one_slot, &kit.keys());
    let (first, second) = (kit.token("alice", T + 600), kit.token("bob", T + 600));
    assert_eq!(outcome(&decide(&mut a, &first, T)), "allow");
    assert_eq!(outcome(&decide(&mut a, &second, T)), "allow");
    assert_eq!(kit.store.keys("verdict/"), ["revguard/verdict/0"]);
    // The slot holds `second`'s verdict: `first` is verified again, `second` is not.
    assert_eq!(outcome(&decide(&mut b, &first, T)), "allow");
    assert_eq!((b.signature_checks(), b.shared_verdict_hits()), (1, 0));
    // `first` took the slot back; a forged token under it still needs its own signature.
    let forged = {
        let other = Signer::generate("ES256", "k1");
        other.sign(
            &json!({"iss": ISS, "aud": "api", "sub": "mallory", "iat": T - 10,
                           "exp": T + 600}),
        )
    };
    let mut c = kit.worker(json!({"sharing": {"verdict_slots": 1}}), &kit.keys());
    assert_eq!(outcome(&decide(&mut c, &forged, T)), "bad_signature");
    assert_eq!(c.shared_verdict_hits(), 0);
}

#[test]
fn a_verdict_holds_only_under_the_key_sets_that_gave_it() {
    let kit = Kit::new();
    let token = kit.token("alice", T + 600);
    let mut a = kit.worker(json!({}), &kit.keys());
    assert_eq!(outcome(&decide(&mut a, &token, T)), "allow");
    // A worker that already loaded a rotated key set (the same key plus a new one) verifies
    // the token again, once, and its verdict serves the workers on the new set.
    let rotated = jwks(&[
        kit.signer.public_jwk(),
        Signer::generate("ES256", "k2").public_jwk(),
    ]);
    let mut b = kit.worker(json!({}), &rotated);
    assert_eq!(outcome(&decide(&mut b, &token, T)), "allow");
    assert_eq!((b.signature_checks(), b.shared_verdict_hits()), (1, 0));
    let mut c = kit.worker(json!({}), &rotated);
    assert_eq!(outcome(&decide(&mut c, &token, T)), "allow");
    assert_eq!((c.signature_checks(), c.shared_verdict_hits()), (0, 1));
    // Another configuration of the same keys (other algorithms allowed) is another key set.
    let other_algs = json!({"issuers": [{"issuer": ISS, "audiences": ["api"],
        "algorithms": ["ES256", "EdDSA"], "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}]});
    let mut d = kit.worker(other_algs, &rotated);
    assert_eq!(outcome(&decide(&mut d, &token, T)), "allow");
    assert_eq!((d.signature_checks(), d.shared_verdict_hits()), (1, 0));
}

#[test]
fn a_reader_checks_the_claims_itself_at_its_own_time() {
    let kit = Kit::new();
    let token = kit.token("alice", T + 100);
    let mut a = kit.worker(json!({}), &kit.keys());
    assert_eq!(outcome(&decide(&mut a, &token, T)), "allow");
    // Past exp (and the default skew): expired, with no signature work and no verdict used.
    let mut b = kit.worker(json!({}), &kit.keys());
    let late = T + 100 + 3600;
    b.load_keys(0, &kit.keys(), late).unwrap();
    assert_eq!(outcome(&decide(&mut b, &token, late)), "expired");
    assert_eq!((b.signature_checks(), b.shared_verdict_hits()), (0, 0));
    // A verdict that claims a later exp changes nothing: the token's own claims decide.
    let key = kit.store.keys("verdict/")[0].clone();
    let mut verdict = SharedVerdict::decode(&kit.store.read(&key)).unwrap();
    verdict.exp = u64::MAX;
    kit.store.write(&key, &verdict.encode());
    assert_eq!(outcome(&decide(&mut b, &token, late)), "expired");
    // A reader with a stricter audience refuses what the writer accepted.
    let strict = json!({"issuers": [{"issuer": ISS, "audiences": ["billing"],
        "algorithms": ["ES256"], "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}]});
    let mut c = kit.worker(strict, &kit.keys());
    assert_eq!(outcome(&decide(&mut c, &token, T)), "wrong_audience");
}

#[test]
fn garbage_or_truncated_values_are_misses_and_never_panic() {
    let kit = Kit::new();
    let token = kit.token("alice", T + 600);
    let mut a = kit.worker(
        json!({"sharing": {"verdict_slots": 1, "answer_slots": 1}}),
        &kit.keys(),
    );
    assert_eq!(outcome(&decide(&mut a, &token, T)), "allow");
    let key = kit.store.keys("verdict/")[0].clone();
    let good = kit.store.read(&key);
    let mut wrong_version = good.clone();
    // Version 1 keyed tokens by SHA-256: its values must be skipped, not misread.
    wrong_version[0] = 1;
    let mut bad_source = good.clone();
    *bad_source.last_mut().unwrap() = 7;
    let mut longer = good.clone();
    longer.push(0);
    let mut values: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    values.extend([wrong_version, bad_source, longer, vec![0xff; 300]]);
    for value in values {
        kit.store.write(&key, &value);
        let mut b = kit.worker(json!({"sharing": {"verdict_slots": 1}}), &kit.keys());
        assert_eq!(outcome(&decide(&mut b, &token, T)), "allow");
        assert_eq!((b.signature_checks(), b.shared_verdict_hits()), (1, 0));
    }
    // The answer format: every prefix of a valid value, and junk, decodes to nothing or to
    // a body within the bound.
    let answer = SharedAnswer {
        token_key: [3; 32],
        answered_at: T,
        generation: Some(4),
        body: br#"{"active":true}"#.to_vec(),
    };
    let encoded = answer.encode();
    assert_eq!(SharedAnswer::decode(&encoded), Some(answer));
    for n in 0..50 {
        assert_eq!(SharedAnswer::decode(&encoded[..n]), None, "{n}");
    }
    let mut flag = encoded.clone();
    flag[41] = 2;
    assert_eq!(SharedAnswer::decode(&flag), None);
    let mut huge = encoded[..50].to_vec();
    huge.extend(vec![b' '; MAX_ANSWER_BODY + 1]);
    assert_eq!(SharedAnswer::decode(&huge), None);
}

fn active() -> Value {
    json!({"active": true, "iss": ISS, "aud": "api", "sub": "alice", "token_type": "Bearer",
           "exp": T + 600})
}

#[test]
fn an_introspection_answer_is_asked_once_per_proxy() {
    let kit = Kit::new();
    let always = json!({"default_route": {"introspection": "always"}});
    let mut workers: Vec<Engine> = (0..4)
        .map(|_| kit.worker(always.clone(), &kit.keys()))
        .collect();
    let token = kit.token("alice", T + 600);
    let outcomes: Vec<String> = workers
        .iter_mut()
        .map(|w| decide_answering(w, &token, &active(), T + 1))
        .collect();
    assert_eq!(outcomes, ["called allow", "allow", "allow", "allow"]);
    let hits: u64 = workers.iter().map(Engine::shared_answer_hits).sum();
    assert_eq!(hits, 3);
    // An opaque token's inactive answer is shared too, and denies everywhere.
    let opaque = "opaque-token-0123456789";
    let opaque_config = json!({"opaque_tokens": "introspect"});
    let mut a = kit.worker(opaque_config.clone(), &kit.keys());
    let mut b = kit.worker(opaque_config, &kit.keys());
    let inactive = json!({"active": false});
    assert_eq!(
        decide_answering(&mut a, opaque, &inactive, T),
        "called token_inactive"
    );
    assert_eq!(
        decide_answering(&mut b, opaque, &inactive, T),
        "token_inactive"
    );
    // ... and an active answer for another audience is refused everywhere, as the writer did.
    let other = "opaque-token-for-billing";
    let billing = json!({"active": true, "iss": ISS, "aud": "billing", "exp": T + 600});
    assert_eq!(
        decide_answering(&mut a, other, &billing, T),
        "called wrong_audience"
    );
    assert_eq!(
        decide_answering(&mut b, other, &billing, T),
        "wrong_audience"
    );
}

#[test]
fn a_shared_answer_lives_no_longer_than_its_ttl_from_when_it_arrived() {
    let kit = Kit::new();
    let always = json!({"default_route": {"introspection": "always"}});
    let token = kit.token("alice", T + 600);
    let mut a = kit.worker(always.clone(), &kit.keys());
    assert_eq!(
        decide_answering(&mut a, &token, &active(), T),
        "called allow"
    );
    // TTL 60: at T + 59 another worker takes it (for the one second left)...
    let mut b = kit.worker(always.clone(), &kit.keys());
    assert_eq!(decide_answering(&mut b, &token, &active(), T + 59), "allow");
    assert_eq!(
        decide_answering(&mut b, &token, &active(), T + 60),
        "called allow"
    );
    // ... at T + 60 it is gone for a new worker too (until `b`'s fresh answer was shared).
    let key = kit.store.keys("answer/")[0].clone();
    let mut answer = SharedAnswer::decode(&kit.store.read(&key)).unwrap();
    answer.answered_at = T;
    kit.store.write(&key, &answer.encode());
    let mut c = kit.worker(always, &kit.keys());
    assert_eq!(
        decide_answering(&mut c, &token, &active(), T + 60),
        "called allow"
    );
}

#[test]
fn a_new_revocation_generation_forgets_shared_active_answers_not_inactive_ones() {
    let kit = Kit::new();
    let config = json!({"default_route": {"introspection": "always"},
                        "revocation": kit.revocation()});
    let token = kit.token("alice", T + 600);
    let mut a = kit.worker(config.clone(), &kit.keys());
    a.load_snapshot(&kit.snapshot(1)).unwrap();
    assert_eq!(
        decide_answering(&mut a, &token, &active(), T),
        "called allow"
    );
    // A worker under the same generation takes the answer; one under a newer one asks again.
    let mut same = kit.worker(config.clone(), &kit.keys());
    same.load_snapshot(&kit.snapshot(1)).unwrap();
    assert_eq!(decide_answering(&mut same, &token, &active(), T), "allow");
    let mut newer = kit.worker(config.clone(), &kit.keys());
    newer.load_snapshot(&kit.snapshot(2)).unwrap();
    assert_eq!(
        decide_answering(&mut newer, &token, &active(), T),
        "called allow"
    );
    assert_eq!(newer.shared_answer_hits(), 0);
    // An inactive answer outlives a new generation, as in one worker's cache.
    let revoked = kit.token("bob", T + 600);
    let inactive = json!({"active": false});
    assert_eq!(
        decide_answering(&mut a, &revoked, &inactive, T),
        "called token_inactive"
    );
    assert_eq!(
        decide_answering(&mut newer, &revoked, &inactive, T),
        "token_inactive"
    );
}

#[test]
fn answers_of_another_introspection_endpoint_or_client_are_not_read() {
    let kit = Kit::new();
    let always = json!({"default_route": {"introspection": "always"}});
    let token = kit.token("alice", T + 600);
    let mut a = kit.worker(always.clone(), &kit.keys());
    assert_eq!(
        decide_answering(&mut a, &token, &active(), T),
        "called allow"
    );
    let mut other = always.clone();
    other["introspection"] = json!({"upstream": "idp", "path": "/introspect",
        "client_id": "other-client", "client_secret": "s", "cache_ttl_secs": 60});
    let mut b = kit.worker(other, &kit.keys());
    assert_eq!(
        decide_answering(&mut b, &token, &active(), T),
        "called allow"
    );
}

#[test]
fn an_lru_zone_sized_for_the_slots_keeps_the_snapshot() {
    // Kong's zone evicts the least recently used entries: with the zone sized for the slots
    // (docs/CONFIGURATION.md, `sharing`), a thousand tokens leave the published data alone.
    let kit = Kit::new();
    let slots = json!({"sharing": {"verdict_slots": 16, "answer_slots": 16}});
    let mut a = kit.worker(slots.clone(), &kit.keys());
    let snapshot = vec![7u8; 20_000];
    {
        let mut store = kit.store.0.borrow_mut();
        store.kong_cas = true;
        let verdicts = 16 * 110;
        store.capacity = Some(snapshot.len() + 200 + verdicts);
    }
    let mut store = kit.store.clone();
    overwrite(&mut store, "revguard/snapshot/x/data", &snapshot).unwrap();
    for i in 0..1000 {
        let token = kit.token(&format!("user-{i}"), T + 600);
        assert_eq!(outcome(&decide(&mut a, &token, T)), "allow");
    }
    assert_eq!(kit.store.keys("verdict/").len(), 16);
    assert_eq!(kit.store.read("revguard/snapshot/x/data"), snapshot);
}

#[test]
fn slot_counts_are_bounded() {
    let kit = Kit::new();
    let config = kit.config(json!({"sharing": {"verdict_slots": 65_537, "answer_slots": 65_536}}));
    let errors = match Engine::from_config_json(&serde_json::to_vec(&config).unwrap()) {
        Err(errors) => errors.to_string(),
        Ok(_) => panic!("accepted"),
    };
    assert!(
        errors.contains("sharing.verdict_slots: must be at most 65536"),
        "{errors}"
    );
    assert!(!errors.contains("sharing.answer_slots"), "{errors}");
}

#[test]
fn a_replayed_expired_token_costs_no_shared_data_read() {
    let kit = Kit::new();
    let mut a = kit.worker(json!({}), &kit.keys());
    let token = kit.token("alice", T + 100);
    let late = T + 100 + 3600;
    a.load_keys(0, &kit.keys(), late).unwrap();
    let reads = kit.store.0.borrow().reads.get();
    for _ in 0..3 {
        assert_eq!(outcome(&decide(&mut a, &token, late)), "expired");
    }
    assert_eq!(kit.store.0.borrow().reads.get(), reads);
    // A live token is looked up once, on its first sight here.
    let live = kit.token("bob", late + 600);
    assert_eq!(outcome(&decide(&mut a, &live, late)), "allow");
    assert_eq!(outcome(&decide(&mut a, &live, late)), "allow");
    assert_eq!(kit.store.0.borrow().reads.get(), reads + 1);
}

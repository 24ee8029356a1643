//! Cheap denials (issue 15): a token refused for its claims costs no signature work, and a
//! token whose signature failed is refused again from memory until a key set is loaded.
//! Signature work is counted by the engine (`Engine::signature_checks`), never timed.

mod support;

use jwt_simple::prelude::ES256KeyPair;
use serde_json::json;
use support::*;

fn outcome_at(engine: &mut revguard::Engine, token: &str, now: u64) -> String {
    outcome(&decide(engine, Some(token), "/", &[], now))
}

#[test]
fn a_replayed_bad_signature_is_refused_from_memory_until_keys_load() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    // Signed by another key under the issuer's kid: a bad signature.
    let forger = ES256KeyPair::generate().with_key_id("k1");
    let forged = kit.token_with(&forger, "mallory", T0, json!({}));
    assert_eq!(outcome_at(&mut engine, &forged, T0 + 1), "bad_signature");
    assert_eq!(engine.signature_checks(), 1);
    for i in 0..5 {
        let d = decide(&mut engine, Some(&forged), "/", &[], T0 + 2 + i);
        assert_eq!(outcome(&d), "bad_signature");
        let revguard::decision::Decision::Deny(denial) = d else {
            panic!()
        };
        // The log names the token and its key as on the first refusal.
        assert_eq!(denial.log.kid.as_deref(), Some("k1"));
        assert_eq!(denial.log.issuer.as_deref(), Some(ISSUER));
        assert!(denial.log.token_hash.is_some());
    }
    assert_eq!(engine.signature_checks(), 1, "replays cost no signature");

    // A genuine token still verifies; another forged token is checked once.
    let genuine = kit.token("alice", json!({}));
    assert_eq!(outcome_at(&mut engine, &genuine, T0 + 10), "allow");
    assert_eq!(engine.signature_checks(), 2);

    // Any key-set load empties the memory: the forged token is checked again.
    engine.load_keys(0, &kit.jwks(), T0 + 20).unwrap();
    assert_eq!(outcome_at(&mut engine, &forged, T0 + 21), "bad_signature");
    assert_eq!(engine.signature_checks(), 3);
    assert_eq!(outcome_at(&mut engine, &forged, T0 + 22), "bad_signature");
    assert_eq!(engine.signature_checks(), 3);

    // At most 60 s: then the signature is checked again.
    assert_eq!(outcome_at(&mut engine, &forged, T0 + 82), "bad_signature");
    assert_eq!(engine.signature_checks(), 4);
}

#[test]
fn a_rotation_lets_a_remembered_token_verify() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    // Signed by the issuer's next key, published under the same kid only after a rotation.
    let next = ES256KeyPair::generate().with_key_id("k1");
    let token = kit.token_with(&next, "bob", T0, json!({}));
    assert_eq!(outcome_at(&mut engine, &token, T0 + 1), "bad_signature");
    assert_eq!(outcome_at(&mut engine, &token, T0 + 2), "bad_signature");
    assert_eq!(engine.signature_checks(), 1);
    engine.load_keys(0, &jwks_of(&[&next]), T0 + 3).unwrap();
    assert_eq!(outcome_at(&mut engine, &token, T0 + 4), "allow");
    assert_eq!(engine.signature_checks(), 2);
}

#[test]
fn a_refusal_is_not_remembered_past_the_tokens_exp() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let forger = ES256KeyPair::generate().with_key_id("k1");
    // Issued an hour ago: `exp` in 10 s.
    let forged = kit.token_with(&forger, "mallory", T0 - 3590, json!({}));
    assert_eq!(outcome_at(&mut engine, &forged, T0), "bad_signature");
    assert_eq!(outcome_at(&mut engine, &forged, T0 + 10), "bad_signature");
    assert_eq!(engine.signature_checks(), 1);
    // Past `exp` (inside the skew): no longer remembered, so checked again.
    assert_eq!(outcome_at(&mut engine, &forged, T0 + 11), "bad_signature");
    assert_eq!(engine.signature_checks(), 2);
}

#[test]
fn claim_failures_are_refused_without_signature_work() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    // Expired (an hour and the skew later), issued in the future, for another audience.
    let token = kit.token("carol", json!({}));
    assert_eq!(outcome_at(&mut engine, &token, T0 + 3600 + 3600), "expired");
    let later = kit.token_with(&kit.idp, "carol", T0 + 600, json!({}));
    let early = outcome_at(&mut engine, &later, T0);
    assert_eq!(engine.signature_checks(), 0);
    let issuers = json!([{
        "issuer": ISSUER, "audiences": ["billing"], "algorithms": ["ES256"],
        "jwks_upstream": {"upstream": "idp", "path": "/jwks"}
    }]);
    let mut billing = kit.engine(json!({ "issuers": issuers }));
    let wrong_aud = outcome_at(&mut billing, &token, T0 + 1);
    assert_eq!(billing.signature_checks(), 0);
    // `iat` is checked first, as jwt-simple does after the signature.
    assert_eq!(early, "issued_in_future");
    assert_eq!(wrong_aud, "wrong_audience");

    // A forged expired token is refused as expired: no signature work either.
    let forger = ES256KeyPair::generate().with_key_id("k1");
    let forged = kit.token_with(&forger, "mallory", T0, json!({}));
    assert_eq!(outcome_at(&mut engine, &forged, T0 + 7200), "expired");
    assert_eq!(engine.signature_checks(), 0);

    // A token that passes its claims is still verified, and its signature decides.
    assert_eq!(outcome_at(&mut engine, &token, T0 + 5), "allow");
    assert_eq!(engine.signature_checks(), 1);
}

#[test]
fn keys_unavailable_still_comes_before_the_claims() {
    let kit = Kit::new();
    // No keys loaded: the configured failure mode applies to an expired token as today.
    let mut engine = revguard::Engine::from_config_json(
        &kit.config(json!({"failure_modes": {"keys_unavailable": "allow"}})),
    )
    .unwrap();
    engine.load_snapshot(&kit.snapshot(1, &[])).unwrap();
    let token = kit.token("dave", json!({}));
    assert_eq!(outcome_at(&mut engine, &token, T0 + 7200), "allow");
    assert_eq!(engine.signature_checks(), 0);
}

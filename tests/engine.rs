//! The decision, end to end through the core: real ES256 tokens, real signed snapshots and
//! deltas, introspection answers fed back, at a fixed clock.

mod support;

use revguard::decision::Decision;
use revguard::engine::{FetchKind, FetchResult};
use revguard::http::HttpOutcome;
use revguard::RequestView;
use serde_json::json;
use support::*;

fn introspection_config() -> serde_json::Value {
    json!({"upstream": "idp", "path": "/introspect", "client_id": "gw", "client_secret": "s3cret", "cache_ttl_secs": 60})
}

fn answer(
    engine: &mut revguard::Engine,
    d: Decision,
    body: &str,
    token: &str,
    now: u64,
) -> Decision {
    let Decision::Introspect(i) = d else {
        panic!("expected introspect, got {}", outcome(&d))
    };
    assert_eq!(i.request.header(":path"), Some("/introspect"));
    assert!(String::from_utf8_lossy(&i.request.body).contains("token="));
    let auth = format!("Bearer {token}");
    let headers: Vec<(&str, &[u8])> = vec![("authorization", auth.as_bytes())];
    let req = RequestView {
        method: "GET",
        path: "/",
        headers: &headers,
    };
    let out = HttpOutcome::Response {
        status: 200,
        etag: None,
        body: body.as_bytes(),
        origin: Default::default(),
    };
    engine.complete_introspection(i.pending, out, &req, now)
}

#[test]
fn allows_a_valid_token_with_verified_identity_headers() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let token = kit.token("alice", json!({}));
    let d = decide(
        &mut engine,
        Some(&token),
        "/orders",
        &[("x-auth-subject", "mallory")],
        T0 + 5,
    );
    let Decision::Allow(allow) = d else {
        panic!("{}", outcome(&d))
    };
    assert_eq!(allow.remove_headers, vec!["x-auth-subject".to_string()]);
    assert_eq!(
        allow.set_headers,
        vec![("x-auth-subject".to_string(), "alice".to_string())]
    );
    assert!(allow.fail_open.is_none());
    assert!(!allow.log.cached);

    // Second time: the verified-token cache answers.
    let Decision::Allow(again) = decide(&mut engine, Some(&token), "/orders", &[], T0 + 6) else {
        panic!()
    };
    assert!(again.log.cached);
}

#[test]
fn missing_and_malformed_tokens_are_refused_with_rfc6750_challenges() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({"realm": "api"}));
    let Decision::Deny(d) = decide(&mut engine, None, "/", &[], T0) else {
        panic!()
    };
    assert_eq!((d.status, d.reason.code()), (401, "missing_token"));
    assert_eq!(d.www_authenticate, "Bearer realm=\"api\"");
    assert!(d.body().contains("\"error\":\"missing_token\""));

    let Decision::Deny(d) = decide(&mut engine, Some("not-a-jwt"), "/", &[], T0) else {
        panic!()
    };
    assert_eq!(d.reason.code(), "malformed_token");
    assert!(d.www_authenticate.contains("error=\"invalid_token\""));
}

#[test]
fn expiry_is_enforced_even_for_cached_tokens() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let token = kit.token("alice", json!({}));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 10)),
        "allow"
    );
    // Within the default 60 s skew after exp: still accepted (re-verified, not cached).
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 3600 + 30)),
        "allow"
    );
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 3600 + 61)),
        "expired"
    );
}

#[test]
fn snapshot_filter_hit_without_introspection_is_denied_as_revoked() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let token = kit.token("bob", json!({}));
    engine
        .load_snapshot(&kit.snapshot(2, &[jti(&format!("jti-bob-{T0}"))]))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 1)),
        "revoked"
    );
    // Another user's token is unaffected.
    let other = kit.token("carol", json!({}));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&other), "/", &[], T0 + 1)),
        "allow"
    );
}

#[test]
fn filter_hit_confirmed_active_is_allowed_and_cached() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({"introspection": introspection_config()}));
    let token = kit.token("dave", json!({}));
    engine
        .load_snapshot(&kit.snapshot(2, &[jti(&format!("jti-dave-{T0}"))]))
        .unwrap();
    let d = decide(&mut engine, Some(&token), "/", &[], T0 + 1);
    let d = answer(
        &mut engine,
        d,
        r#"{"active": true, "sub": "dave"}"#,
        &token,
        T0 + 1,
    );
    assert_eq!(outcome(&d), "allow");
    // No second callout within the TTL.
    let d = decide(&mut engine, Some(&token), "/", &[], T0 + 30);
    assert_eq!(outcome(&d), "allow");
    assert!(d.log().introspected);
    // After the TTL, ask again.
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 62)),
        "introspect"
    );
}

#[test]
fn a_cached_active_answer_does_not_outlive_a_new_revocation_generation() {
    // A filter hit the IdP called active (from the filter's view a false positive) is cached;
    // then the token is revoked: exact in a delta, then in the next full snapshot's filter.
    // The cached "active" must not let it through again after the delta's exact denial.
    let kit = Kit::new();
    let mut engine = kit.engine(json!({"introspection": introspection_config()}));
    let token = kit.token("fay", json!({}));
    let id = jti(&format!("jti-fay-{T0}"));
    let first = kit.snapshot(2, std::slice::from_ref(&id));
    engine.load_snapshot(&first).unwrap();
    let d = decide(&mut engine, Some(&token), "/", &[], T0 + 1);
    let d = answer(&mut engine, d, r#"{"active": true}"#, &token, T0 + 1);
    assert_eq!(outcome(&d), "allow");
    engine
        .load_delta(&kit.delta(&first, 3, T0 + 2, std::slice::from_ref(&id)))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 3)),
        "revoked"
    );
    engine.load_snapshot(&kit.snapshot(4, &[id])).unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 4)),
        "introspect",
        "asked again, not allowed from the cache"
    );
}

#[test]
fn filter_hit_confirmed_inactive_is_denied_until_exp() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({"introspection": introspection_config()}));
    let token = kit.token("erin", json!({"sid": "s-erin"}));
    engine
        .load_snapshot(&kit.snapshot(2, &[sid("s-erin")]))
        .unwrap();
    let d = decide(&mut engine, Some(&token), "/", &[], T0 + 1);
    assert_eq!(
        outcome(&answer(
            &mut engine,
            d,
            r#"{"active": false}"#,
            &token,
            T0 + 1
        )),
        "revoked_session"
    );
    // Cached: no further callout, long after the TTL but before exp.
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 3000)),
        "revoked_session"
    );
}

#[test]
fn introspection_failure_follows_the_configured_mode() {
    let kit = Kit::new();
    let routes = json!([{"path_prefix": "/lenient", "on_introspection_failure": "allow"}]);
    let mut engine = kit.engine(json!({"introspection": introspection_config(), "routes": routes}));
    let token = kit.token("frank", json!({}));
    engine
        .load_snapshot(&kit.snapshot(2, &[jti(&format!("jti-frank-{T0}"))]))
        .unwrap();
    let auth = format!("Bearer {token}");
    let headers: Vec<(&str, &[u8])> = vec![("authorization", auth.as_bytes())];
    for (path, expected, status) in [
        ("/strict", "introspection_failed", 503),
        ("/lenient", "allow", 200),
    ] {
        let req = RequestView {
            method: "GET",
            path,
            headers: &headers,
        };
        let Decision::Introspect(i) = engine.decide(&req, T0 + 1) else {
            panic!()
        };
        let d = engine.complete_introspection(i.pending, HttpOutcome::Failed, &req, T0 + 2);
        assert_eq!(outcome(&d), expected);
        // The cause reaches the decision log.
        assert!(d
            .log()
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("did not answer"));
        if let Decision::Deny(deny) = &d {
            assert_eq!(deny.status, status);
            assert!(!deny.www_authenticate.contains("invalid_token"));
            let line: serde_json::Value =
                serde_json::from_str(&deny.log_line(Some("req-1"))).unwrap();
            assert_eq!(line["event"], "revguard.deny");
            assert_eq!(line["reason"], "introspection_failed");
            assert_eq!(line["request_id"], "req-1");
            assert!(line["detail"].as_str().unwrap().contains("did not answer"));
            assert!(!line.to_string().contains(&auth[7..]), "no raw token");
        }
        // Garbage is a failure too.
        let Decision::Introspect(i) = engine.decide(&req, T0 + 3) else {
            panic!()
        };
        let garbage = HttpOutcome::Response {
            status: 200,
            etag: None,
            body: b"{\"active\":\"yes\"}",
            origin: Default::default(),
        };
        let d = engine.complete_introspection(i.pending, garbage, &req, T0 + 3);
        assert_eq!(outcome(&d), expected);
        assert!(d
            .log()
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("\"active\""));
    }
}

#[test]
fn subject_and_tenant_not_before_revoke_older_tokens_only() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let old = kit.token("gina", json!({"tenant": "acme"}));
    let new = kit.token_with(&kit.idp, "gina", T0 + 100, json!({"tenant": "acme"}));
    engine
        .load_snapshot(&kit.snapshot(2, &[subject("gina", T0 + 50)]))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&old), "/", &[], T0 + 200)),
        "revoked_subject"
    );
    assert_eq!(
        outcome(&decide(&mut engine, Some(&new), "/", &[], T0 + 200)),
        "allow"
    );

    engine
        .load_snapshot(&kit.snapshot(3, &[tenant("acme", T0 + 150)]))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&new), "/", &[], T0 + 200)),
        "revoked_tenant"
    );
}

/// The log names a token by the first 8 bytes of SHA-256 of its verified `jti`, else of the
/// token (what an operator can compute), on denials only: an allow pays for no SHA-256.
#[test]
fn denial_logs_name_a_token_by_its_jti_or_itself_and_allows_not_at_all() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let token = kit.token("gina", json!({}));
    let token_name = |t: &str| revguard::wire::hex(&hmac_sha256::Hash::hash(t.as_bytes())[..8]);
    let log_name = |d: &Decision| match d {
        Decision::Allow(a) => a.log.token_hash.clone(),
        Decision::Deny(d) => d.log.token_hash.clone(),
        Decision::Introspect(i) => i.pending.log().token_hash.clone(),
    };
    let allowed = decide(&mut engine, Some(&token), "/", &[], T0 + 1);
    assert_eq!(
        (outcome(&allowed), log_name(&allowed)),
        ("allow".into(), None)
    );

    engine
        .load_snapshot(&kit.snapshot(2, &[subject("gina", T0 + 50)]))
        .unwrap();
    let revoked = decide(&mut engine, Some(&token), "/", &[], T0 + 2);
    assert_eq!(outcome(&revoked), "revoked_subject");
    // printf %s jti-gina-1767225600 | sha256sum | cut -c1-16
    assert_eq!(log_name(&revoked).as_deref(), Some("8e7233f77932e122"));

    // An unverified token's claimed jti names nothing: the token itself does, on its first
    // refusal and on replays answered from memory.
    let forger = jwt_simple::prelude::ES256KeyPair::generate().with_key_id("k1");
    let forged = kit.token_with(&forger, "mallory", T0, json!({}));
    for now in [T0 + 3, T0 + 4] {
        let refused = decide(&mut engine, Some(&forged), "/", &[], now);
        assert_eq!(outcome(&refused), "bad_signature");
        assert_eq!(log_name(&refused), Some(token_name(&forged)));
    }
}

#[test]
fn a_delta_revokes_exactly_and_a_rollback_is_refused() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({"introspection": introspection_config()}));
    let token = kit.token("hank", json!({"sid": "s-hank"}));
    let base = kit.snapshot(5, &[]);
    engine.load_snapshot(&base).unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 1)),
        "allow"
    );
    assert_eq!(
        engine
            .load_delta(&kit.delta(&base, 6, T0 + 10, &[sid("s-hank")]))
            .unwrap(),
        6
    );
    // Exact: no introspection needed.
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 11)),
        "revoked_session"
    );
    assert!(engine.load_snapshot(&kit.snapshot(4, &[])).is_err());
    assert_eq!(engine.snapshot_generation(), Some(6));
}

#[test]
fn stale_or_missing_revocation_data_follows_the_configured_mode() {
    let kit = Kit::new();
    let token = kit.token("ivy", json!({}));
    let mut engine = revguard::Engine::from_config_json(
        &kit.config(json!({"revocation": kit.revocation_60s()})),
    )
    .unwrap();
    engine.load_keys(0, &kit.jwks(), T0).unwrap();
    // No snapshot yet: fail closed, 503.
    let Decision::Deny(d) = decide(&mut engine, Some(&token), "/", &[], T0) else {
        panic!()
    };
    assert_eq!((d.status, d.reason.code()), (503, "stale_revocation_data"));
    engine.load_snapshot(&kit.snapshot(1, &[])).unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 60)),
        "allow"
    );
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 61)),
        "stale_revocation_data"
    );

    let mut open = kit.engine(
        json!({"revocation": kit.revocation_60s(), "failure_modes": {"revocation_stale": "allow"}}),
    );
    let Decision::Allow(a) = decide(&mut open, Some(&token), "/", &[], T0 + 61) else {
        panic!()
    };
    assert_eq!(a.fail_open, Some(revguard::Reason::StaleRevocationData));

    let mut confirm = kit.engine(
        json!({"revocation": kit.revocation_60s(), "introspection": introspection_config(),
                                        "failure_modes": {"revocation_stale": "introspect"}}),
    );
    assert_eq!(
        outcome(&decide(&mut confirm, Some(&token), "/", &[], T0 + 61)),
        "introspect"
    );
}

#[test]
fn a_snapshot_dated_in_the_future_is_not_fresh() {
    // One file built with a wrong clock (or a stolen key) must not switch staleness off for
    // as long as it claims: beyond the clock skew, a future date is stale, and the next
    // correctly dated generation makes the data fresh again.
    let kit = Kit::new();
    let token = kit.token("ivy", json!({}));
    let mut engine = kit.engine(json!({"revocation": kit.revocation_60s()}));
    let ten_years = 10 * 365 * 86_400;
    engine
        .load_snapshot(&kit.snapshot_at(10, T0 + ten_years, &[]))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0)),
        "stale_revocation_data"
    );
    let skew = 60; // the default clock_skew_secs
    let mut within_skew = kit.engine(json!({"revocation": kit.revocation_60s()}));
    within_skew
        .load_snapshot(&kit.snapshot_at(10, T0 + skew, &[]))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut within_skew, Some(&token), "/", &[], T0)),
        "allow"
    );
    engine.load_snapshot(&kit.snapshot_at(11, T0, &[])).unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0)),
        "allow"
    );
}

#[test]
fn unknown_kid_triggers_at_most_one_refetch_per_cooldown() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    // Initial fetches: keys and snapshot are due at once.
    let due: Vec<FetchKind> = engine.due_fetches(T0).into_iter().map(|f| f.kind).collect();
    assert!(due.contains(&FetchKind::Keys(0)) && due.contains(&FetchKind::Snapshot));
    let ok = HttpOutcome::Response {
        status: 200,
        etag: Some("\"v1\""),
        body: &kit.jwks(),
        origin: Default::default(),
    };
    assert_eq!(
        engine.fetch_completed(FetchKind::Keys(0), ok, T0).unwrap(),
        FetchResult::Updated(1)
    );
    assert!(engine
        .due_fetches(T0 + 1)
        .iter()
        .all(|f| f.kind != FetchKind::Keys(0)));

    let rotated = jwt_simple::prelude::ES256KeyPair::generate().with_key_id("k2");
    let token = kit.token_with(&rotated, "jack", T0, json!({}));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 40)),
        "unknown_key"
    );
    let due = engine.due_fetches(T0 + 40);
    let keys = due
        .iter()
        .find(|f| f.kind == FetchKind::Keys(0))
        .expect("an early refetch");
    assert_eq!(keys.request.header("if-none-match"), Some("\"v1\""));
    // The IdP has rotated: the refetch brings k2 and the token is accepted.
    let body = jwks_of(&[&kit.idp, &rotated]);
    let ok = HttpOutcome::Response {
        status: 200,
        etag: Some("\"v2\""),
        body: &body,
        origin: Default::default(),
    };
    assert_eq!(
        engine
            .fetch_completed(FetchKind::Keys(0), ok, T0 + 41)
            .unwrap(),
        FetchResult::Updated(2)
    );
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 42)),
        "allow"
    );

    // A flood of unknown kids: one refetch per cooldown at most.
    let stranger = jwt_simple::prelude::ES256KeyPair::generate().with_key_id("evil");
    let bad = kit.token_with(&stranger, "x", T0, json!({}));
    let mut fetches = 0;
    for t in 0..60 {
        assert_eq!(
            outcome(&decide(&mut engine, Some(&bad), "/", &[], T0 + 50 + t)),
            "unknown_key"
        );
        for f in engine.due_fetches(T0 + 50 + t) {
            if f.kind == FetchKind::Keys(0) {
                fetches += 1;
                let nm = HttpOutcome::Response {
                    status: 304,
                    etag: None,
                    body: b"",
                    origin: Default::default(),
                };
                engine.fetch_completed(f.kind, nm, T0 + 50 + t).unwrap();
            } else {
                engine
                    .fetch_completed(f.kind, HttpOutcome::Failed, T0 + 50 + t)
                    .ok();
            }
        }
    }
    assert!(
        (1..=2).contains(&fetches),
        "{fetches} refetches in 60 s with a 30 s cooldown"
    );
}

#[test]
fn keys_loaded_from_elsewhere_are_not_fetched_again_before_the_interval() {
    // A restarted worker loads the key set another worker fetched (shared data): fetching it
    // again at once would cost the issuer one request per restart.
    let kit = Kit::new();
    let keys_due = |engine: &mut revguard::Engine, at| {
        engine
            .due_fetches(at)
            .iter()
            .any(|f| f.kind == FetchKind::Keys(0))
    };
    let fresh = || revguard::Engine::from_config_json(&kit.config(json!({}))).unwrap();
    assert!(keys_due(&mut fresh(), T0), "never loaded: due at once");
    let mut engine = fresh();
    engine.load_keys(0, &kit.jwks(), T0 - 100).unwrap();
    let interval = engine.refresh_interval(FetchKind::Keys(0));
    engine.defer_fetch(FetchKind::Keys(0), T0 - 100 + interval);
    assert!(!keys_due(&mut engine, T0));
    assert!(
        keys_due(&mut engine, T0 - 100 + 300),
        "due one interval later"
    );
}

#[test]
fn removing_a_key_stops_its_tokens_even_when_cached() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let token = kit.token("kim", json!({}));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 1)),
        "allow"
    );
    let successor = jwt_simple::prelude::ES256KeyPair::generate().with_key_id("k2");
    engine
        .load_keys(0, &jwks_of(&[&successor]), T0 + 2)
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 3)),
        "unknown_key"
    );
}

#[test]
fn a_cached_token_stops_when_its_fetched_keys_go_stale() {
    let kit = Kit::new();
    let issuers = json!([{
        "issuer": ISSUER, "audiences": [AUDIENCE], "algorithms": ["ES256"],
        "jwks_upstream": {"upstream": "idp", "path": "/jwks", "max_staleness_secs": 600}
    }]);
    let token = kit.token("max", json!({}));
    for mode in ["deny", "allow"] {
        let mut engine =
            kit.engine(json!({"issuers": issuers, "failure_modes": {"keys_unavailable": mode}}));
        let d = decide(&mut engine, Some(&token), "/", &[], T0 + 1);
        assert_eq!(outcome(&d), "allow");
        let d = decide(&mut engine, Some(&token), "/", &[], T0 + 600);
        assert!(
            d.log().cached,
            "still within the staleness bound: from the cache"
        );
        // Keys fetched at T0 are past their 600 s: the cached verification goes with them.
        let d = decide(&mut engine, Some(&token), "/", &[], T0 + 601);
        match (mode, d) {
            ("deny", Decision::Deny(d)) => {
                assert_eq!((d.status, d.reason.code()), (503, "keys_unavailable"))
            }
            ("allow", Decision::Allow(a)) => {
                assert_eq!(a.fail_open, Some(revguard::Reason::KeysUnavailable));
                assert!(a.set_headers.is_empty(), "no identity from the stale cache");
            }
            (_, d) => panic!("{mode}: {}", outcome(&d)),
        }
        // Fresh keys again: the token verifies again.
        engine.load_keys(0, &kit.jwks(), T0 + 602).unwrap();
        assert_eq!(
            outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 603)),
            "allow"
        );
    }
}

#[test]
fn a_cached_token_stops_when_its_kid_is_rekeyed() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let old = kit.token("ned", json!({}));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&old), "/", &[], T0 + 1)),
        "allow"
    );
    // The same key set fetched again keeps the cached verification.
    engine.load_keys(0, &kit.jwks(), T0 + 2).unwrap();
    let d = decide(&mut engine, Some(&old), "/", &[], T0 + 3);
    assert_eq!(outcome(&d), "allow");
    assert!(d.log().cached);
    // "k1" re-published with new material: tokens signed by the old "k1" are refused, cached
    // or not.
    let rekeyed = jwt_simple::prelude::ES256KeyPair::generate().with_key_id("k1");
    engine.load_keys(0, &jwks_of(&[&rekeyed]), T0 + 4).unwrap();
    let fresh_old = kit.token_with(&kit.idp, "ned", T0 + 1, json!({}));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&fresh_old), "/", &[], T0 + 5)),
        "bad_signature"
    );
    assert_eq!(
        outcome(&decide(&mut engine, Some(&old), "/", &[], T0 + 5)),
        "bad_signature"
    );
    let new = kit.token_with(&rekeyed, "ned", T0 + 4, json!({}));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&new), "/", &[], T0 + 5)),
        "allow"
    );
}

#[test]
fn keys_unavailable_fails_closed_by_default() {
    let kit = Kit::new();
    let token = kit.token("lee", json!({}));
    let mut engine = revguard::Engine::from_config_json(&kit.config(json!({}))).unwrap();
    engine.load_snapshot(&kit.snapshot(1, &[])).unwrap();
    let Decision::Deny(d) = decide(&mut engine, Some(&token), "/", &[], T0) else {
        panic!()
    };
    assert_eq!((d.status, d.reason.code()), (503, "keys_unavailable"));
    // Fetched keys past their max staleness (default 1 day) stop counting.
    engine.load_keys(0, &kit.jwks(), T0).unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/", &[], T0 + 10)),
        "allow"
    );
}

#[test]
fn keys_unavailable_allow_still_denies_routes_with_requirements() {
    let kit = Kit::new();
    let token = kit.token("lou", json!({"scope": "admin"}));
    let routes = json!([
        {"path_prefix": "/admin", "required_scopes": ["admin"]},
        {"path_prefix": "/ops", "required_roles": ["ops"]},
        {"path_prefix": "/t", "required_tenant": "present"},
        {"path_prefix": "/step-up", "max_auth_age_secs": 300},
        {"path_prefix": "/confirmed", "introspection": "always"}
    ]);
    let mut engine = revguard::Engine::from_config_json(&kit.config(json!({
        "routes": routes, "introspection": introspection_config(),
        "failure_modes": {"keys_unavailable": "allow"}
    })))
    .unwrap();
    engine.load_snapshot(&kit.snapshot(1, &[])).unwrap();
    // No keys: the token cannot be verified, so none of its claims can open these routes.
    for path in ["/admin", "/ops", "/t/1", "/step-up", "/confirmed"] {
        let Decision::Deny(d) = decide(&mut engine, Some(&token), path, &[], T0) else {
            panic!("{path} allowed")
        };
        assert_eq!(
            (d.status, d.reason.code()),
            (503, "keys_unavailable"),
            "{path}"
        );
    }
    // A route with no requirements is let through without identity, as configured.
    let Decision::Allow(a) = decide(&mut engine, Some(&token), "/public", &[], T0) else {
        panic!()
    };
    assert_eq!(a.fail_open, Some(revguard::Reason::KeysUnavailable));
    assert!(a.set_headers.is_empty());
}

#[test]
fn opaque_token_let_through_by_introspection_failure_allow_is_denied_on_routes_with_requirements() {
    let kit = Kit::new();
    let routes = json!([{"path_prefix": "/admin", "required_scopes": ["admin"]}]);
    let mut engine = kit.engine(json!({
        "introspection": introspection_config(), "opaque_tokens": "introspect",
        "routes": routes, "failure_modes": {"introspection_failure": "allow"}
    }));
    let auth = "Bearer opaque-xyz";
    let headers: Vec<(&str, &[u8])> = vec![("authorization", auth.as_bytes())];
    for (path, expected) in [("/admin/users", "introspection_failed"), ("/", "allow")] {
        let req = RequestView {
            method: "GET",
            path,
            headers: &headers,
        };
        let Decision::Introspect(i) = engine.decide(&req, T0) else {
            panic!()
        };
        let d = engine.complete_introspection(i.pending, HttpOutcome::Failed, &req, T0 + 1);
        assert_eq!(outcome(&d), expected, "{path}");
        match d {
            Decision::Deny(deny) => assert_eq!(deny.status, 503),
            Decision::Allow(a) => {
                assert_eq!(a.fail_open, Some(revguard::Reason::IntrospectionFailed))
            }
            Decision::Introspect(_) => panic!(),
        }
    }
}

#[test]
fn route_requirements() {
    let kit = Kit::new();
    let routes = json!([
        {"path": "/healthz", "no_auth": true},
        {"path_prefix": "/admin", "required_scopes": ["admin"]},
        {"path_prefix": "/roles", "required_roles": ["ops"]},
        {"path_prefix": "/t", "required_tenant": {"matches_header": "x-tenant-id"}},
        {"path_prefix": "/sensitive", "max_auth_age_secs": 300}
    ]);
    let mut engine = kit.engine(json!({"routes": routes}));
    let token = kit.token(
        "mia",
        json!({"scope": "read write", "roles": ["dev"], "tenant": "acme", "auth_time": T0}),
    );
    assert_eq!(
        outcome(&decide(&mut engine, None, "/healthz", &[], T0 + 1)),
        "allow"
    );
    let Decision::Deny(d) = decide(&mut engine, Some(&token), "/admin/x", &[], T0 + 1) else {
        panic!()
    };
    assert_eq!((d.status, d.reason.code()), (403, "insufficient_scope"));
    assert!(d.www_authenticate.contains("scope=\"admin\""));
    assert_eq!(
        outcome(&decide(&mut engine, Some(&token), "/roles", &[], T0 + 1)),
        "insufficient_scope"
    );
    assert_eq!(
        outcome(&decide(
            &mut engine,
            Some(&token),
            "/t/1",
            &[("x-tenant-id", "acme")],
            T0 + 1
        )),
        "allow"
    );
    assert_eq!(
        outcome(&decide(
            &mut engine,
            Some(&token),
            "/t/1",
            &[("x-tenant-id", "umbrella")],
            T0 + 1
        )),
        "wrong_tenant"
    );
    assert_eq!(
        outcome(&decide(
            &mut engine,
            Some(&token),
            "/sensitive",
            &[],
            T0 + 100
        )),
        "allow"
    );
    let Decision::Deny(d) = decide(&mut engine, Some(&token), "/sensitive", &[], T0 + 1000) else {
        panic!()
    };
    assert_eq!(d.reason.code(), "auth_too_old");
    assert!(d
        .www_authenticate
        .contains("insufficient_user_authentication"));
}

#[test]
fn a_future_auth_time_is_too_old_for_max_auth_age() {
    let kit = Kit::new();
    let routes = json!([{"path_prefix": "/sensitive", "max_auth_age_secs": 300}]);
    let mut engine = kit.engine(json!({"routes": routes}));
    // Default skew is 60 s: an auth_time up to now + 60 passes, later ones do not.
    for (auth_time, expected) in [
        (T0 + 10 + 60, "allow"),
        (T0 + 10 + 61, "auth_too_old"),
        (T0 + 86_400 * 365, "auth_too_old"),
    ] {
        let token = kit.token("ola", json!({"auth_time": auth_time}));
        let d = decide(&mut engine, Some(&token), "/sensitive", &[], T0 + 10);
        assert_eq!(outcome(&d), expected, "auth_time {auth_time}");
    }
}

#[test]
fn opaque_tokens_are_introspected_when_configured() {
    let kit = Kit::new();
    let mut engine =
        kit.engine(json!({"introspection": introspection_config(), "opaque_tokens": "introspect"}));
    let d = decide(&mut engine, Some("opaque-abc123"), "/", &[], T0);
    let d = answer(
        &mut engine,
        d,
        r#"{"active": true, "sub": "nia", "exp": 1767229200, "iss": "https://idp.test", "aud": "api"}"#,
        "opaque-abc123",
        T0,
    );
    let Decision::Allow(a) = d else {
        panic!("{}", outcome(&d))
    };
    assert_eq!(
        a.set_headers,
        vec![("x-auth-subject".to_string(), "nia".to_string())]
    );
    assert_eq!(
        outcome(&decide(
            &mut engine,
            Some("opaque-abc123"),
            "/",
            &[],
            T0 + 5
        )),
        "allow"
    );
}

#[test]
fn opaque_token_answers_are_checked_for_issuer_audience_type_and_time() {
    let kit = Kit::new();
    let routes = json!([{"path_prefix": "/admin", "required_scopes": ["admin"]}]);
    let mut engine = kit.engine(json!({
        "introspection": introspection_config(), "opaque_tokens": "introspect", "routes": routes
    }));
    let now = T0 + 100;
    // Each answer grants the admin scope; only an access token for us may use it.
    // (members merged into a valid answer, expected first outcome, expected repeat outcome)
    let cases = [
        (json!({}), "allow", "allow"),
        (json!({"aud": ["other", AUDIENCE]}), "allow", "allow"),
        (json!({"token_type": "Bearer"}), "allow", "allow"),
        (json!({"token_type": "bearer"}), "allow", "allow"),
        (json!({"token_type": "access_token"}), "allow", "allow"),
        (
            json!({"iss": "https://evil.test"}),
            "wrong_issuer",
            "wrong_issuer",
        ),
        (
            json!({"iss": "https://idp.test/"}),
            "wrong_issuer",
            "wrong_issuer",
        ),
        (json!({"iss": null}), "wrong_issuer", "wrong_issuer"),
        (json!({"aud": "other"}), "wrong_audience", "wrong_audience"),
        (json!({"aud": []}), "wrong_audience", "wrong_audience"),
        (json!({"aud": null}), "wrong_audience", "wrong_audience"),
        (
            json!({"token_type": "refresh_token"}),
            "wrong_type",
            "wrong_type",
        ),
        (json!({"token_type": "DPoP"}), "wrong_type", "wrong_type"),
        (json!({"token_type": "N_A"}), "wrong_type", "wrong_type"),
        // oidc-provider 9.x on a refresh token: no token_type, no aud.
        (
            json!({"aud": null, "client_id": "app"}),
            "wrong_audience",
            "wrong_audience",
        ),
        // Default skew 60 s, as for JWTs.
        (json!({"exp": now - 61}), "expired", "expired"),
        // Within the skew: allowed, and asked again rather than cached past its exp.
        (json!({"exp": now - 30}), "allow", "introspect"),
        (json!({"nbf": now + 61}), "not_yet_valid", "not_yet_valid"),
        (json!({"nbf": now + 30}), "allow", "allow"),
    ];
    for (i, (changes, first, repeat)) in cases.into_iter().enumerate() {
        let token = format!("opaque-{i}");
        let mut body = json!({
            "active": true, "sub": "olga", "scope": "admin", "iss": ISSUER, "aud": AUDIENCE,
            "exp": now + 600
        });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let d = decide(&mut engine, Some(&token), "/admin", &[], now);
        let d = answer(&mut engine, d, &body.to_string(), &token, now);
        assert_eq!(outcome(&d), first, "{body}");
        if let Decision::Deny(deny) = &d {
            assert_eq!(deny.status, 401, "{body}");
        }
        // The repeat is answered from the cache: a refusal stays a refusal, never "active".
        let d = decide(&mut engine, Some(&token), "/admin", &[], now);
        assert_eq!(outcome(&d), repeat, "repeat of {body}");
    }
    // A refusal outlives a new revocation generation, which drops cached active answers.
    engine.load_snapshot(&kit.snapshot(2, &[])).unwrap();
    assert_eq!(
        outcome(&decide(
            &mut engine,
            Some("opaque-8"),
            "/admin",
            &[],
            now + 2
        )),
        "wrong_audience"
    );
}

#[test]
fn opaque_token_not_yet_valid_is_asked_again_once_it_may_be() {
    let kit = Kit::new();
    let mut engine =
        kit.engine(json!({"introspection": introspection_config(), "opaque_tokens": "introspect"}));
    let body = json!({"active": true, "iss": ISSUER, "aud": AUDIENCE, "nbf": T0 + 100});
    let d = decide(&mut engine, Some("opaque-later"), "/", &[], T0);
    let d = answer(&mut engine, d, &body.to_string(), "opaque-later", T0);
    assert_eq!(outcome(&d), "not_yet_valid");
    assert_eq!(
        outcome(&decide(
            &mut engine,
            Some("opaque-later"),
            "/",
            &[],
            T0 + 39
        )),
        "not_yet_valid"
    );
    // From nbf - skew on, the refusal no longer holds.
    assert_eq!(
        outcome(&decide(
            &mut engine,
            Some("opaque-later"),
            "/",
            &[],
            T0 + 40
        )),
        "introspect"
    );
}

#[test]
fn snapshot_fetches_are_conditional_and_keep_the_last_good_state() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    engine.due_fetches(T0);
    let snap = kit.snapshot(2, &[]);
    let ok = HttpOutcome::Response {
        status: 200,
        etag: Some("\"g2\""),
        body: &snap,
        origin: Default::default(),
    };
    assert_eq!(
        engine.fetch_completed(FetchKind::Snapshot, ok, T0).unwrap(),
        FetchResult::Updated(2)
    );
    // The same generation again is "not modified", not a failure.
    let again = HttpOutcome::Response {
        status: 200,
        etag: Some("\"g2b\""),
        body: &snap,
        origin: Default::default(),
    };
    assert_eq!(
        engine
            .fetch_completed(FetchKind::Snapshot, again, T0)
            .unwrap(),
        FetchResult::NotModified
    );
    // Not due again before the interval.
    assert!(engine
        .due_fetches(T0 + 9)
        .iter()
        .all(|f| f.kind != FetchKind::Snapshot));
    let due = engine.due_fetches(T0 + 10);
    let f = due.iter().find(|f| f.kind == FetchKind::Snapshot).unwrap();
    assert_eq!(f.request.header("if-none-match"), Some("\"g2b\""));
    // Garbage, a wrong signature and an old generation are all refused; generation 2 stays.
    let other = revguard::snapshot::SigningKey::from_seed([9; 32]).unwrap();
    let forged = revguard::snapshot::build_snapshot(
        &[],
        &revguard::snapshot::BuildOptions {
            generation: 9,
            built_at: T0,
            max_age_secs: 3600,
            fp_rate: 0.001,
            salt: [1; 32],
        },
        &other,
    )
    .unwrap();
    for body in [b"garbage".to_vec(), forged, kit.snapshot(1, &[])] {
        let r = HttpOutcome::Response {
            status: 200,
            etag: None,
            body: &body,
            origin: Default::default(),
        };
        assert!(engine
            .fetch_completed(FetchKind::Snapshot, r, T0 + 10)
            .is_err());
        assert_eq!(engine.snapshot_generation(), Some(2));
    }
    // After three failures the retry backs off 8 s, still sooner than the interval.
    assert!(engine
        .due_fetches(T0 + 17)
        .iter()
        .all(|f| f.kind != FetchKind::Snapshot));
    assert!(engine
        .due_fetches(T0 + 18)
        .iter()
        .any(|f| f.kind == FetchKind::Snapshot));
}

#[test]
fn a_cached_token_is_checked_against_every_new_snapshot_and_delta() {
    let kit = Kit::new();
    let mut engine = kit.engine(json!({}));
    let alice = kit.token("alice", json!({}));
    let bob = kit.token("bob", json!({}));
    for _ in 0..2 {
        assert_eq!(
            outcome(&decide(&mut engine, Some(&alice), "/", &[], T0 + 1)),
            "allow"
        );
        assert_eq!(
            outcome(&decide(&mut engine, Some(&bob), "/", &[], T0 + 1)),
            "allow"
        );
    }
    // A delta on the same snapshot (same salt): its exact set catches the cached token.
    let base = kit.snapshot(1, &[]);
    engine
        .load_delta(&kit.delta(&base, 2, T0 + 2, &[jti(&format!("jti-alice-{T0}"))]))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&alice), "/", &[], T0 + 3)),
        "revoked"
    );
    // A new snapshot (new salt): the cached token's ids are hashed again.
    engine
        .load_snapshot(&kit.snapshot(3, &[subject("bob", T0 + 5)]))
        .unwrap();
    assert_eq!(
        outcome(&decide(&mut engine, Some(&bob), "/", &[], T0 + 6)),
        "revoked_subject"
    );
}

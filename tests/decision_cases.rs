//! The shared decision cases (`tests/cases/decisions.json`): one set of inputs and expected
//! answers that every build runs — this native core, the proxy-wasm filter in the test host, the
//! edge build in workerd and Deno, and the component. Same inputs, same decisions.
//!
//! The file is generated from the native engine and committed, so the other builds compare
//! against fixed bytes (tokens are signed with random ECDSA nonces). Regenerate with
//! `REVGUARD_REGENERATE_CASES=1 cargo test --test decision_cases`.

mod support;

use revguard::decision::Decision;
use revguard::http::HttpOutcome;
use revguard::{Engine, RequestView};
use serde_json::{json, Value};
use support::*;

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/decisions.json");

#[test]
fn native_engine_gives_the_recorded_decisions() {
    if std::env::var_os("REVGUARD_REGENERATE_CASES").is_some() {
        let file = generate();
        std::fs::write(CASES, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
    }
    let file: Value = serde_json::from_slice(&std::fs::read(CASES).unwrap()).unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        assert_eq!(
            run_case(&file, case),
            case["expect"],
            "case {:?}",
            case["name"]
        );
    }
}

/// Decides one case in a fresh engine and returns the normalized answer.
fn run_case(file: &Value, case: &Value) -> Value {
    let now = case["now"].as_u64().unwrap();
    let config = serde_json::to_vec(&file["config"]).unwrap();
    let mut engine = Engine::from_config_json(&config).unwrap();
    for (issuer, jwks) in file["jwks"].as_array().unwrap().iter().enumerate() {
        engine
            .load_keys(issuer, jwks.as_str().unwrap().as_bytes(), now)
            .unwrap();
    }
    engine.load_snapshot(&b64(&file["snapshot"])).unwrap();
    if !file["delta"].is_null() {
        engine.load_delta(&b64(&file["delta"])).unwrap();
    }
    let request = &case["request"];
    let headers: Vec<(String, Vec<u8>)> = request["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
        .collect();
    let views: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = RequestView {
        method: request["method"].as_str().unwrap(),
        path: request["path"].as_str().unwrap(),
        headers: &views,
    };
    let decision = match (engine.decide(&req, now), &case["introspection"]) {
        (Decision::Introspect(i), answer) if !answer.is_null() => {
            let body = answer["body"].as_str().unwrap_or("").as_bytes();
            let outcome = match answer["status"].as_u64() {
                Some(status) => HttpOutcome::Response {
                    status: status as u16,
                    etag: None,
                    body,
                },
                None => HttpOutcome::Failed,
            };
            engine.complete_introspection(i.pending, outcome, &req, now)
        }
        (decision, _) => decision,
    };
    normalize(&decision)
}

/// The parts of a decision every build must agree on (logs are adapter-specific).
fn normalize(decision: &Decision) -> Value {
    match decision {
        Decision::Allow(a) => json!({
            "decision": "allow",
            "remove_headers": a.remove_headers,
            "set_headers": a.set_headers,
            "fail_open": a.fail_open.map(|r| r.code()),
        }),
        Decision::Deny(d) => json!({
            "decision": "deny",
            "status": d.status,
            "reason": d.reason.code(),
            "www_authenticate": d.www_authenticate,
            "body": d.body(),
        }),
        Decision::Introspect(_) => json!({"decision": "introspect"}),
    }
}

fn b64(v: &Value) -> Vec<u8> {
    use ct_codecs::{Base64, Decoder};
    Base64::decode_to_vec(v.as_str().unwrap(), None).unwrap()
}

fn generate() -> Value {
    use ct_codecs::{Base64, Encoder};
    use jwt_simple::prelude::*;

    let kit = Kit::new();
    let now = T0 + 60;
    let config: Value = serde_json::from_slice(&kit.config(json!({
        "forward_claims": [
            {"claim": "sub", "header": "x-auth-subject"},
            {"claim": "tenant", "header": "x-auth-tenant"},
            {"claim": "scope", "header": "x-auth-scope"}
        ],
        "routes": [
            {"name": "health", "path": "/healthz", "methods": ["GET"], "no_auth": true},
            {"name": "admin", "path_prefix": "/admin/", "required_roles": ["admin"]},
            {"name": "orders-write", "path_prefix": "/orders", "methods": ["POST"], "required_scopes": ["orders:write"]}
        ],
        "introspection": {"upstream": "idp", "path": "/introspect", "client_id": "gw",
                          "client_secret": "s3cret", "cache_ttl_secs": 60}
    })))
    .unwrap();

    let tok = |sub: &str, extra: Value| kit.token(sub, extra);
    let snapshot = kit.snapshot(
        5,
        &[
            jti("jti-revoked-user-1767225600"),
            sid("session-revoked"),
            subject("reset-user", T0 + 30),
            tenant("offboarded-co", T0 + 30),
        ],
    );
    let delta = kit.delta(&snapshot, 6, T0 + 10, &[jti("jti-delta-user-1767225600")]);

    let bearer = |t: &str| json!([["authorization", format!("Bearer {t}")]]);
    let get =
        |path: &str, headers: Value| json!({"method": "GET", "path": path, "headers": headers});
    let valid = tok("alice", json!({"tenant": "acme", "scope": "orders:read"}));
    let (h, p, _) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        )
    };
    let other_key = ES256KeyPair::generate().with_key_id("k1");
    let unknown_kid = ES256KeyPair::generate().with_key_id("k9");
    let none_header =
        Base64UrlSafeNoPadding::encode_to_string(br#"{"alg":"none","typ":"JWT"}"#).unwrap();
    let flagged = tok("revoked-user", json!({}));
    let sessioned = tok("bob", json!({"sid": "session-revoked"}));
    let inactive = r#"{"active":false}"#;
    let active = format!(
        r#"{{"active":true,"sub":"revoked-user","exp":{}}}"#,
        T0 + 3600
    );

    let cases = vec![
        (
            "a valid token is allowed with identity headers",
            now,
            get("/orders", bearer(&valid)),
            Value::Null,
        ),
        (
            "client-sent identity headers are replaced",
            now,
            get(
                "/orders",
                json!([
                    ["authorization", format!("Bearer {valid}")],
                    ["x-auth-subject", "mallory"]
                ]),
            ),
            Value::Null,
        ),
        (
            "no token is a 401 challenge",
            now,
            get("/orders", json!([])),
            Value::Null,
        ),
        (
            "a no_auth route passes without a token",
            now,
            get("/healthz", json!([])),
            Value::Null,
        ),
        (
            "an expired token is refused",
            T0 + 7200,
            get("/orders", bearer(&valid)),
            Value::Null,
        ),
        (
            "a token not yet valid is refused",
            T0 - 600,
            get("/orders", bearer(&valid)),
            Value::Null,
        ),
        (
            "a tampered payload is refused",
            now,
            get(
                "/orders",
                bearer(&format!(
                    "{h}.{}.{}",
                    Base64UrlSafeNoPadding::encode_to_string(
                        br#"{"sub":"admin","iss":"https://idp.test","aud":"api","exp":9999999999}"#
                    )
                    .unwrap(),
                    valid.rsplit('.').next().unwrap()
                )),
            ),
            Value::Null,
        ),
        (
            "alg none is refused",
            now,
            get("/orders", bearer(&format!("{none_header}.{p}."))),
            Value::Null,
        ),
        (
            "a signature by another key with the same kid is refused",
            now,
            get(
                "/orders",
                bearer(&kit.token_with(&other_key, "alice", T0, json!({}))),
            ),
            Value::Null,
        ),
        (
            "an unknown kid is refused",
            now,
            get(
                "/orders",
                bearer(&kit.token_with(&unknown_kid, "alice", T0, json!({}))),
            ),
            Value::Null,
        ),
        (
            "garbage in the bearer header is refused",
            now,
            get("/orders", bearer("not-a-jwt")),
            Value::Null,
        ),
        (
            "two tokens are an invalid request",
            now,
            get(
                "/orders",
                json!([
                    ["authorization", format!("Bearer {valid}")],
                    ["authorization", format!("Bearer {valid}")]
                ]),
            ),
            Value::Null,
        ),
        (
            "a wrong audience is refused",
            now,
            get(
                "/orders",
                bearer(&{
                    let claims = Claims::create(Duration::from_secs(3600))
                        .with_issuer(ISSUER)
                        .with_audience("other")
                        .with_subject("alice");
                    let mut claims = claims;
                    claims.issued_at = Some(UnixTimeStamp::from_secs(T0));
                    claims.invalid_before = Some(UnixTimeStamp::from_secs(T0));
                    claims.expires_at = Some(UnixTimeStamp::from_secs(T0 + 3600));
                    kit.idp.sign(claims).unwrap()
                }),
            ),
            Value::Null,
        ),
        (
            "a snapshot hit on jti asks for introspection",
            now,
            get("/orders", bearer(&flagged)),
            Value::Null,
        ),
        (
            "a snapshot hit confirmed inactive is denied",
            now,
            get("/orders", bearer(&flagged)),
            json!({"status": 200, "body": inactive}),
        ),
        (
            "a snapshot hit answered active is allowed (false positive)",
            now,
            get("/orders", bearer(&flagged)),
            json!({"status": 200, "body": active}),
        ),
        (
            "a snapshot hit with the IdP failing follows introspection_failure (deny)",
            now,
            get("/orders", bearer(&flagged)),
            json!({"status": null}),
        ),
        (
            "a snapshot hit with an IdP 500 follows introspection_failure (deny)",
            now,
            get("/orders", bearer(&flagged)),
            json!({"status": 500, "body": "oops"}),
        ),
        (
            "a snapshot hit with a garbage IdP answer is denied",
            now,
            get("/orders", bearer(&flagged)),
            json!({"status": 200, "body": "{\"active\":\"yes\""}),
        ),
        (
            "a revoked session (sid) asks for introspection",
            now,
            get("/orders", bearer(&sessioned)),
            Value::Null,
        ),
        (
            "a subject revoked before the token's iat is denied",
            now,
            get("/orders", bearer(&tok("reset-user", json!({})))),
            Value::Null,
        ),
        (
            "a subject's token issued after its not-before is allowed",
            now,
            get(
                "/orders",
                bearer(&kit.token_with(&kit.idp, "reset-user", T0 + 40, json!({}))),
            ),
            Value::Null,
        ),
        (
            "an offboarded tenant is denied",
            now,
            get(
                "/orders",
                bearer(&tok("carol", json!({"tenant": "offboarded-co"}))),
            ),
            Value::Null,
        ),
        (
            "a jti added by the delta is denied exactly",
            now,
            get("/orders", bearer(&tok("delta-user", json!({})))),
            Value::Null,
        ),
        (
            "a route role requirement denies a token without the role",
            now,
            get("/admin/users", bearer(&valid)),
            Value::Null,
        ),
        (
            "a route role requirement allows a token with the role",
            now,
            get(
                "/admin/users",
                bearer(&tok("root", json!({"roles": ["admin"]}))),
            ),
            Value::Null,
        ),
        (
            "a route scope requirement denies with the required scope",
            now,
            json!({"method": "POST", "path": "/orders", "headers": bearer(&valid)}),
            Value::Null,
        ),
        (
            "a bearer value with non-ASCII characters is refused",
            now,
            get(
                "/orders",
                json!([["authorization", "Bearer \u{fffd}\u{fffd}"]]),
            ),
            Value::Null,
        ),
    ];

    let mut file = json!({
        "version": 1,
        "about": "Shared decision cases: every build must give these answers. Each case: a fresh engine with `config`, `jwks[i]` loaded for issuer i at `now`, `snapshot` then `delta` (base64) loaded; decide `request` at `now`; if the decision is introspect and `introspection` is set, feed it back ({status, body}; status null = failed call). Generated by tests/decision_cases.rs.",
        "config": config,
        "jwks": [String::from_utf8(kit.jwks()).unwrap()],
        "snapshot": Base64::encode_to_string(&snapshot).unwrap(),
        "delta": Base64::encode_to_string(&delta).unwrap(),
        "cases": [],
    });
    let mut out = Vec::new();
    for (name, now, request, introspection) in cases {
        let mut case =
            json!({"name": name, "now": now, "request": request, "introspection": introspection});
        case["expect"] = run_case(&file, &case);
        out.push(case);
    }
    file["cases"] = Value::Array(out);
    file
}

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

/// Writes a case file from scratch (new keys, tokens and recorded answers).
type Generator = fn() -> Value;

/// Each file: its own configuration, keys and revocation data, and cases with expected answers.
const CASE_FILES: &[(&str, Generator)] = &[
    ("decisions.json", generate),
    ("requests.json", generate_requests),
];

#[test]
fn native_engine_gives_the_recorded_decisions() {
    for (name, generate) in CASE_FILES {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cases")
            .join(name);
        if std::env::var_os("REVGUARD_REGENERATE_CASES").is_some() {
            let file = generate();
            std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
        }
        let file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let cases = file["cases"].as_array().unwrap();
        assert!(cases.len() >= 20, "{name}");
        for case in cases {
            assert_eq!(
                run_case(&file, case),
                case["expect"],
                "{name}: case {:?}",
                case["name"]
            );
        }
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
                    origin: Default::default(),
                },
                None => HttpOutcome::Failed,
            };
            engine.complete_introspection(i.pending, outcome, &req, now)
        }
        (decision, _) => decision,
    };
    decision.normalized()
}

fn b64(v: &Value) -> Vec<u8> {
    use ct_codecs::{Base64, Decoder};
    Base64::decode_to_vec(v.as_str().unwrap(), None).unwrap()
}

fn generate() -> Value {
    use ct_codecs::Encoder;
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
            // Claims are checked before the signature (a forged token costs no signature
            // work when its claims already fail): the claim's reason, in every build.
            "a tampered payload that has also expired is refused as expired",
            now,
            get(
                "/orders",
                bearer(&format!(
                    "{h}.{}.{}",
                    Base64UrlSafeNoPadding::encode_to_string(
                        br#"{"sub":"admin","iss":"https://idp.test","aud":"api","exp":1000}"#
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

    case_file(
        "Shared decision cases: every build must give these answers. Each case: a fresh engine with `config`, `jwks[i]` loaded for issuer i at `now`, `snapshot` then `delta` (base64) loaded; decide `request` at `now`; if the decision is introspect and `introspection` is set, feed it back ({status, body}; status null = failed call). Generated by tests/decision_cases.rs.",
        config,
        &kit,
        &snapshot,
        Some(&delta),
        cases,
    )
}

/// A case file: the decisions recorded by running each case through the native engine.
fn case_file(
    about: &str,
    config: Value,
    kit: &Kit,
    snapshot: &[u8],
    delta: Option<&[u8]>,
    cases: Vec<(&str, u64, Value, Value)>,
) -> Value {
    use ct_codecs::{Base64, Encoder};
    let mut file = json!({
        "version": 1,
        "about": about,
        "config": config,
        "jwks": [String::from_utf8(kit.jwks()).unwrap()],
        "snapshot": Base64::encode_to_string(snapshot).unwrap(),
        "delta": delta.map(|d| Base64::encode_to_string(d).unwrap()),
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

/// Path, header and method variants (issue 11): every way a backend could read a request
/// differently from the rule that matched it, in the well-known normaliser-differential
/// families. Each must be refused, or judged by the rule the backend applies and forwarded in
/// the normalised form.
fn generate_requests() -> Value {
    let kit = Kit::new();
    let now = T0 + 60;
    let config: Value = serde_json::from_slice(&kit.config(json!({
        "forward_claims": [
            {"claim": "sub", "header": "x-auth-subject"},
            {"claim": "scope", "header": "x-auth-scope"}
        ],
        "routes": [
            {"name": "public", "path_prefix": "/public/", "no_auth": true},
            {"name": "admin", "path_prefix": "/admin/", "required_scopes": ["admin"]},
            {"name": "orders-write", "path_prefix": "/orders", "methods": ["POST"], "required_scopes": ["orders:write"]},
            {"name": "tenant", "path_prefix": "/t/", "required_tenant": {"matches_header": "x-tenant-id"}},
            {"name": "docs", "path_prefix": "/docs/", "case_sensitive": false, "required_scopes": ["docs"]}
        ]
    })))
    .unwrap();
    let snapshot = kit.snapshot(5, &[]);
    let read = kit.token("alice", json!({"scope": "read", "tenant": "acme"}));
    let admin = kit.token("root", json!({"scope": "admin"}));
    let with = |method: &str, path: &str, token: Option<&str>, extra: Value| {
        let mut headers = vec![];
        if let Some(t) = token {
            headers.push(json!(["authorization", format!("Bearer {t}")]));
        }
        headers.extend(extra.as_array().cloned().unwrap_or_default());
        json!({"method": method, "path": path, "headers": headers})
    };
    let mut cases: Vec<(String, Value)> = Vec::new();
    // The admin file under every spelling, with a read-scope token and with none.
    for path in [
        "/admin",
        "/ADMIN",
        "/admin/",
        "//admin/secret",
        "/%61dmin/secret",
        "/%61%64%6D%69%6E/secret",
        "/./admin/secret",
        "/api/../admin/secret",
        "/admin/./secret",
        "/pub%6cic/../admin/secret",
        "/public/../admin/secret",
        "/public/%2e%2e/admin/secret",
        "/public/%2E%2E/admin/secret",
        "/public/.%2e/admin/secret",
        "/Admin/secret",
        "/ADMIN/secret",
        "/admin;x/secret",
        "/admin;jsessionid=1/secret",
        "/public/..;/admin/secret",
        "/public/..;x=1/admin/secret",
        "/public/..%3b/admin/secret",
        "/admin%2fsecret",
        "/admin%2Fsecret",
        "/public/..%2fadmin/secret",
        "/admin%5csecret",
        "/public\\..\\admin\\secret",
        "/admin\\secret",
        "/public/%252e%252e/admin/secret",
        "/%2561dmin/secret",
        "/public/%c0%ae%c0%ae/admin/secret",
        "/public/%e0%80%ae%e0%80%ae/admin/secret",
        "/%c1%81dmin/secret",
        "/%u0061dmin/secret",
        "/public/%u002e%u002e/admin/secret",
        "/admin/secret%00.html",
        "/public/x%00/../../admin/secret",
        "/admin/secret%0a",
        "/admin/secret#frag",
        "/public/#/../admin/secret",
        "/admin/secret\u{1}",
        "/admin/se cret",
        "/\u{e4}dmin/secret",
        "http://api/admin/secret",
        "https://api:443/admin/secret",
        "//api/admin/secret",
        "*",
        "admin/secret",
        "",
    ] {
        cases.push((
            format!("{path:?} with a read-scope token"),
            with("GET", path, Some(&read), json!([])),
        ));
        cases.push((
            format!("{path:?} without a token"),
            with("GET", path, None, json!([])),
        ));
    }
    for (name, request) in [
        (
            "the admin file with an admin token is allowed",
            with("GET", "/admin/secret", Some(&admin), json!([])),
        ),
        (
            "a merged-slash admin path is allowed and forwarded normalised",
            with("GET", "//admin//secret?x=1", Some(&admin), json!([])),
        ),
        (
            "a dot-segment admin path is forwarded normalised, query untouched",
            with(
                "GET",
                "/api/../admin/./secret?q=../x&y=%2e",
                Some(&admin),
                json!([]),
            ),
        ),
        (
            "an encoded unreserved character is forwarded decoded",
            with("GET", "/%61dmin/secret", Some(&admin), json!([])),
        ),
        (
            "a public file needs no token",
            with("GET", "/public/index.html", None, json!([])),
        ),
        (
            "a public path that escapes upward needs a token",
            with("GET", "/public/../api/x", None, json!([])),
        ),
        (
            "a public path in upper case is not public (falls to the stricter default)",
            with("GET", "/PUBLIC/index.html", None, json!([])),
        ),
        (
            "a case-insensitive rule matches any case",
            with("GET", "/DOCS/guide", Some(&read), json!([])),
        ),
        (
            "post (lower case) is refused, not run as POST",
            with("post", "/orders", Some(&read), json!([])),
        ),
        (
            "Post (mixed case) is refused",
            with("Post", "/orders", Some(&read), json!([])),
        ),
        (
            "get (lower case) is refused",
            with("get", "/public/index.html", None, json!([])),
        ),
        (
            "POST is judged by the POST rule",
            with("POST", "/orders", Some(&read), json!([])),
        ),
        (
            "a method with a space is refused",
            with(
                "GET /admin/secret HTTP/1.1\r\nX: GET",
                "/x",
                Some(&read),
                json!([]),
            ),
        ),
        (
            "a forged identity header with underscores is stripped",
            with(
                "GET",
                "/orders",
                Some(&read),
                json!([["x_auth_scope", "admin"]]),
            ),
        ),
        (
            "a forged identity header in mixed case with underscores is stripped",
            with(
                "GET",
                "/orders",
                Some(&read),
                json!([["X_Auth_Scope", "admin"]]),
            ),
        ),
        (
            "a forged identity header is replaced on a public route too",
            with(
                "GET",
                "/public/index.html",
                None,
                json!([["x_auth_subject", "root"], ["x-auth-scope", "admin"]]),
            ),
        ),
        (
            "a tenant header matching the token's tenant is allowed",
            with(
                "GET",
                "/t/acme/x",
                Some(&read),
                json!([["x-tenant-id", "acme"]]),
            ),
        ),
        (
            "a second tenant header spelled with underscores is refused",
            with(
                "GET",
                "/t/acme/x",
                Some(&read),
                json!([["x-tenant-id", "acme"], ["x_tenant_id", "evil"]]),
            ),
        ),
        (
            "a tenant header spelled with underscores counts as the tenant header",
            with(
                "GET",
                "/t/acme/x",
                Some(&read),
                json!([["x_tenant_id", "evil"]]),
            ),
        ),
        (
            "Basic and Bearer Authorization headers together are an invalid request",
            with(
                "GET",
                "/orders",
                Some(&read),
                json!([["authorization", "Basic Zm9vOmJhcg=="]]),
            ),
        ),
        (
            "two Authorization headers in different case are an invalid request",
            with(
                "GET",
                "/orders",
                Some(&read),
                json!([["Authorization", format!("Bearer {admin}")]]),
            ),
        ),
    ] {
        cases.push((name.to_string(), request));
    }
    let names: Vec<String> = cases.iter().map(|(n, _)| n.clone()).collect();
    case_file(
        "Request variants (paths, header spellings, methods): every build must give these answers; a path a backend could read differently is refused (400 invalid_path) or judged by the rule the backend applies and forwarded normalised (`path`). Same format as decisions.json. Generated by tests/decision_cases.rs.",
        config,
        &kit,
        &snapshot,
        None,
        cases
            .into_iter()
            .zip(&names)
            .map(|((_, request), name)| (name.as_str(), now, request, Value::Null))
            .collect(),
    )
}

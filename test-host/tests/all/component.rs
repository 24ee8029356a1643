//! The policy component (wasm32-wasip2, the WIT world in `wit/`) on wasmtime's component model:
//! the shared decision cases give the same decisions as the native core, and the fetch and load
//! functions work through the WIT types.

use revguard_test_host::component::{
    reason_code, Decision, FetchKind, FetchResult, HttpOutcome, HttpResponse, LoadError,
    PolicyComponent, RequestView,
};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The release component, built once per test run.
fn component_wasm() -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    super::fixture::build_wasm_for(
        "wasm32-wasip2",
        &root.join("../Cargo.toml"),
        &[
            "-p",
            "revguard",
            "--lib",
            "--no-default-features",
            "--features",
            "component",
        ],
        &root.join("target/revguard-wasm"),
        "revguard",
    )
}

fn cases() -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(root.join("../tests/cases/decisions.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn b64(v: &Value) -> Vec<u8> {
    use ct_codecs::{Base64, Decoder};
    Base64::decode_to_vec(v.as_str().unwrap(), None).unwrap()
}

fn request_of(request: &Value) -> RequestView {
    RequestView {
        method: request["method"].as_str().unwrap().into(),
        path: request["path"].as_str().unwrap().into(),
        headers: request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
            .collect(),
    }
}

/// As the core's `Decision::normalized` (tests/decision_cases.rs): the parts every build must
/// agree on. Kept here: the component answers in WIT types, which cannot reach the core's function.
fn normalize(decision: &Decision) -> Value {
    match decision {
        Decision::Allow(a) => json!({
            "decision": "allow",
            "remove_headers": a.remove_headers,
            "set_headers": a.set_headers,
            "path": a.path,
            "fail_open": a.fail_open.map(reason_code),
            "token_hash": a.log.token_hash,
        }),
        Decision::Deny(d) => json!({
            "decision": "deny",
            "status": d.status,
            "reason": reason_code(d.reason),
            "www_authenticate": d.www_authenticate,
            "body": d.body,
            "token_hash": d.log.token_hash,
        }),
        Decision::Introspect(_) => json!({"decision": "introspect"}),
    }
}

/// Decides one case in a fresh engine of the component, as tests/decision_cases.rs does natively.
fn run_case(policy: &mut PolicyComponent, file: &Value, case: &Value) -> Value {
    let now = case["now"].as_u64().unwrap();
    let engine = policy
        .configure(&serde_json::to_vec(&file["config"]).unwrap())
        .unwrap();
    for (issuer, jwks) in file["jwks"].as_array().unwrap().iter().enumerate() {
        let jwks = jwks.as_str().unwrap().as_bytes();
        let loaded = policy.load_keys(engine, issuer as u32, jwks, now).unwrap();
        assert!(loaded.is_ok(), "{loaded:?}");
    }
    assert!(policy
        .load_snapshot(engine, &b64(&file["snapshot"]))
        .unwrap()
        .is_ok());
    if !file["delta"].is_null() {
        assert!(policy
            .load_delta(engine, &b64(&file["delta"]))
            .unwrap()
            .is_ok());
    }
    let request = request_of(&case["request"]);
    let answer = &case["introspection"];
    let decision = match policy.decide(engine, &request, now).unwrap() {
        Decision::Introspect(i) if !answer.is_null() => {
            let outcome = match answer["status"].as_u64() {
                Some(status) => HttpOutcome::Response(HttpResponse {
                    status: status as u16,
                    etag: None,
                    body: answer["body"].as_str().unwrap_or("").as_bytes().to_vec(),
                }),
                None => HttpOutcome::Failed,
            };
            policy
                .complete_introspection(engine, i.pending, &outcome, &request, now)
                .unwrap()
        }
        decision => decision,
    };
    let normalized = normalize(&decision);
    if let Decision::Introspect(i) = decision {
        policy.drop_resource(i.pending).unwrap();
    }
    policy.drop_engine(engine).unwrap();
    normalized
}

#[test]
fn component_gives_the_shared_decisions() {
    let mut policy = PolicyComponent::new(&component_wasm()).unwrap();
    for (name, file) in super::decision_cases::case_files() {
        for case in file["cases"].as_array().unwrap() {
            assert_eq!(
                run_case(&mut policy, &file, case),
                case["expect"],
                "{name}: case {:?}",
                case["name"]
            );
        }
    }
}

#[test]
fn component_gives_the_normalised_path_and_invalid_path() {
    let file = cases();
    let valid = file["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "a valid token is allowed with identity headers")
        .unwrap();
    let mut policy = PolicyComponent::new(&component_wasm()).unwrap();
    let with_path = |path: &str| {
        let mut case = valid.clone();
        case["request"]["path"] = json!(path);
        case
    };
    let allowed = run_case(&mut policy, &file, &with_path("//orders/./x/..?q=%2e"));
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    assert_eq!(allowed["path"], "/orders/?q=%2e", "{allowed}");
    let normal = run_case(&mut policy, &file, &with_path("/orders?q=1"));
    assert_eq!(normal["path"], Value::Null, "{normal}");
    let refused = run_case(&mut policy, &file, &with_path("/orders%2Fx"));
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(refused["reason"], "invalid_path", "{refused}");
}

#[test]
fn component_imports_no_capabilities() {
    let imports = PolicyComponent::imports(&component_wasm()).unwrap();
    for name in &imports {
        // What the standard library links in; no filesystem, sockets or HTTP.
        let allowed = [
            "revguard:policy/types@",
            "wasi:cli/",
            "wasi:clocks/",
            "wasi:io/",
            "wasi:random/",
        ];
        assert!(
            allowed.iter().any(|prefix| name.starts_with(prefix)),
            "unexpected import {name} in {imports:?}"
        );
    }
}

#[test]
fn component_reports_config_and_load_errors() {
    let mut policy = PolicyComponent::new(&component_wasm()).unwrap();
    let err = policy
        .configure(br#"{"issuers": [{"issuer": "https://idp", "audiences": []}]}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("issuers[0]"), "{err}");

    let file = cases();
    let engine = policy
        .configure(&serde_json::to_vec(&file["config"]).unwrap())
        .unwrap();
    match policy.load_snapshot(engine, b"not a snapshot").unwrap() {
        Err(LoadError::Snapshot(why)) => assert!(!why.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        policy.load_delta(engine, &b64(&file["delta"])).unwrap(),
        Err(LoadError::NoBaseSnapshot)
    ));
    assert!(matches!(
        policy.load_keys(engine, 7, b"{}", 0).unwrap(),
        Err(LoadError::NoSuchIssuer(7))
    ));
}

#[test]
fn component_schedules_and_applies_fetches() {
    let file = cases();
    let now = file["cases"][0]["now"].as_u64().unwrap();
    let mut policy = PolicyComponent::new(&component_wasm()).unwrap();
    let engine = policy
        .configure(&serde_json::to_vec(&file["config"]).unwrap())
        .unwrap();
    let due = policy.due_fetches(engine, now).unwrap();
    assert!(
        matches!(due.as_slice(), [k, s] if matches!(k.kind, FetchKind::Keys(0)) && matches!(s.kind, FetchKind::Snapshot)),
        "{due:?}"
    );
    let snapshot = &due[1].request;
    assert_eq!(snapshot.upstream, "origin");
    assert!(snapshot
        .headers
        .contains(&(":path".to_string(), "/current.snap".to_string())));
    // In flight: not due again.
    assert!(policy.due_fetches(engine, now).unwrap().is_empty());

    let ok = |body: Vec<u8>| {
        HttpOutcome::Response(HttpResponse {
            status: 200,
            etag: Some("\"v5\"".into()),
            body,
        })
    };
    let jwks = file["jwks"][0].as_str().unwrap().as_bytes().to_vec();
    let keys = policy
        .fetch_completed(engine, FetchKind::Keys(0), &ok(jwks), now)
        .unwrap();
    assert!(matches!(keys, Ok(FetchResult::Updated(1))), "{keys:?}");
    let snap = policy
        .fetch_completed(
            engine,
            FetchKind::Snapshot,
            &ok(b64(&file["snapshot"])),
            now,
        )
        .unwrap();
    assert!(matches!(snap, Ok(FetchResult::Updated(5))), "{snap:?}");
    let status = policy.status(engine, now).unwrap();
    assert_eq!(status.snapshot_generation, Some(5));
    assert_eq!(status.key_set_age_secs, [Some(0)]);

    // The next snapshot fetch is conditional on the ETag, and a failure keeps generation 5.
    let later = now + 3600;
    let due = policy.due_fetches(engine, later).unwrap();
    let again = due
        .iter()
        .find(|f| matches!(f.kind, FetchKind::Snapshot))
        .unwrap();
    assert!(again
        .request
        .headers
        .contains(&("if-none-match".to_string(), "\"v5\"".to_string())));
    assert!(policy
        .fetch_completed(engine, FetchKind::Snapshot, &HttpOutcome::Failed, later)
        .unwrap()
        .is_err());
    assert_eq!(
        policy.status(engine, later).unwrap().snapshot_generation,
        Some(5)
    );
    policy.drop_engine(engine).unwrap();
}

//! Configuration: the shipped profiles validate, errors name the field, defaults fail closed.

mod support;

use revguard::config::{EscapedSlashes, FailMode, ForwardPath, PathParameters, StaleMode};
use revguard::Policy;
use serde_json::json;
use support::Kit;

const PLACEHOLDER: &str = "REPLACE-WITH-THE-OUTPUT-OF-revguard-keygen";

fn errors(doc: serde_json::Value) -> Vec<String> {
    match Policy::from_json(doc.to_string().as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn minimal() -> serde_json::Value {
    json!({"issuers": [{"issuer": "https://idp", "audiences": ["api"], "algorithms": ["ES256"],
                        "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}]})
}

#[test]
fn shipped_profiles_validate_once_the_origin_key_is_filled_in() {
    let key = Kit::new().origin.public_key_text();
    for name in ["strict", "balanced", "high-throughput"] {
        let text = std::fs::read_to_string(format!("policies/{name}.json")).unwrap();
        assert!(text.contains(PLACEHOLDER), "{name}");
        let policy = Policy::from_json(text.replace(PLACEHOLDER, &key).as_bytes());
        assert!(
            policy.is_ok(),
            "{name}: {}",
            policy.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

#[test]
fn defaults_fail_closed() {
    let policy = Policy::from_json(minimal().to_string().as_bytes()).unwrap();
    let c = &policy.config;
    assert_eq!(c.clock_skew_secs, 60);
    assert_eq!(c.failure_modes.keys_unavailable, FailMode::Deny);
    assert_eq!(c.failure_modes.revocation_stale, StaleMode::Deny);
    assert_eq!(c.failure_modes.introspection_failure, FailMode::Deny);
    assert!(!c.default_route.no_auth);
    let paths = &c.path_normalization;
    assert_eq!(paths.forward, Some(ForwardPath::Normalized));
    assert_eq!(paths.escaped_slashes, EscapedSlashes::Reject);
    assert_eq!(paths.path_parameters, PathParameters::Reject);
}

#[test]
fn kong_refuses_non_normal_paths_unless_told_otherwise() {
    let mut doc = minimal();
    doc["host"] = json!({"kong": {}});
    doc["issuers"][0]["jwks_upstream"]["upstream"] = json!("idp:443");
    let policy = Policy::from_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(
        policy.config.path_normalization.forward,
        Some(ForwardPath::Reject)
    );
    doc["path_normalization"] = json!({"forward": "normalized"});
    let policy = Policy::from_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(
        policy.config.path_normalization.forward,
        Some(ForwardPath::Normalized)
    );
}

#[test]
fn rule_paths_and_identity_headers_have_one_spelling() {
    for (path, ok) in [
        ("/admin/", true),
        ("/caf%C3%A9/", true),
        ("/admin//x", false),
        ("/admin/../x", false),
        ("/./admin", false),
        ("/%61dmin", false),
        ("/admin;x", false),
        ("/admin?x", false),
        ("/admin\\x", false),
        ("/caf%c3%a9", false),
    ] {
        let mut doc = minimal();
        doc["routes"] = json!([{"path_prefix": path}]);
        let errs = errors(doc);
        assert_eq!(errs.is_empty(), ok, "{path}: {errs:?}");
        if !ok {
            assert!(
                errs[0].starts_with("routes[0].path_prefix: must be a normalised path"),
                "{errs:?}"
            );
        }
    }
    let mut doc = minimal();
    doc["forward_claims"] = json!([{"claim": "sub", "header": "x_auth_sub"}]);
    doc["routes"] = json!([{"path": "/t", "required_tenant": {"matches_header": "x_tenant"}}]);
    let errs = errors(doc);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().all(|e| e.contains("not '_'")), "{errs:?}");
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let mut doc = minimal();
    doc["issuers"][0]["audience"] = json!("api");
    let errs = errors(doc);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("issuers[0]"), "{errs:?}");
    assert!(errs[0].contains("unknown field `audience`"), "{errs:?}");

    let errs = errors(json!({"issuers": [], "failure_modes": {"revocation_stale": "maybe"}}));
    assert!(
        errs[0].starts_with("failure_modes.revocation_stale"),
        "{errs:?}"
    );
}

#[test]
fn validation_names_every_bad_field() {
    let doc = json!({
        "issuers": [{"issuer": "", "audiences": [], "algorithms": ["RS257", "none"]}],
        "clock_skew_secs": 3600,
        "routes": [{"path_prefix": "admin", "no_auth": true, "required_scopes": ["x"]}],
        "forward_claims": [{"claim": "sub", "header": "Authorization"}],
        "revocation": {"upstream": "origin", "path": "/s", "refresh_interval_secs": 30,
                       "max_staleness_secs": 10, "public_keys": ["not-a-key"]},
        "failure_modes": {"revocation_stale": "introspect"}
    });
    let errs = errors(doc).join("\n");
    for field in [
        "issuers[0].issuer",
        "issuers[0].audiences",
        "issuers[0].algorithms[0]",
        "issuers[0].algorithms[1]",
        "issuers[0]: give keys inline",
        "clock_skew_secs",
        "routes[0].path",
        "routes[0]: a no_auth route",
        "forward_claims[0].header",
        "revocation.max_staleness_secs",
        "revocation.public_keys",
        "failure_modes.revocation_stale",
    ] {
        assert!(errs.contains(field), "missing {field} in:\n{errs}");
    }
}

#[test]
fn kong_profile_needs_host_port_upstreams() {
    let mut doc = minimal();
    doc["host"] = json!({"kong": {}});
    assert!(errors(doc.clone())
        .join("")
        .contains("issuers[0].jwks_upstream.upstream"));
    doc["issuers"][0]["jwks_upstream"]["upstream"] = json!("idp.internal:8443");
    assert!(errors(doc).is_empty());
}

#[test]
fn garbage_documents_are_errors_not_panics() {
    for doc in [
        &b""[..],
        b"null",
        b"[]",
        b"{",
        b"{\"issuers\": 5}",
        b"\xff\xfe",
        b"{\"issuers\": []} trailing",
    ] {
        assert!(Policy::from_json(doc).is_err());
    }
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert!(Policy::from_json(&huge).is_err());
}

//! The request target through the real filter: the upstream receives the normalised `:path`
//! the rules matched (set by the filter, also after an introspection callout), identity headers
//! are stripped under every spelling, and paths a backend could read differently are refused.

use crate::rg::*;
use revguard::snapshot::RevocationTarget;
use revguard_test_host::{HttpRequest, ProxyConfig};
use serde_json::json;
use std::time::Duration;

fn get(path: &str, token: &str) -> HttpRequest {
    HttpRequest::get("api", path).header("authorization", format!("Bearer {token}"))
}

#[test]
fn envoy_forwards_the_normalised_path() {
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(ENVOY, &origin.public_key(), json!({}));
    let mut proxy = start(ProxyConfig::envoy(), 1, plugin, ENVOY, &origin, &idp);
    let token = issuer.token("k1", "alice", "p-1", None, T0);

    // Dot segments, an empty segment and an unreserved escape: forwarded as the rules saw it,
    // the query unchanged; the forged identity header is gone under both spellings.
    let request = get("//orders/./a/../%62?x=%2e&y", &token)
        .header("x_user", "mallory")
        .header("X-User", "eve");
    let answer = send_request(&mut proxy, 0, request);
    assert_eq!(answer.verdict(), "allow", "{:?}", proxy.logs());
    let forwarded = &answer.forwarded;
    assert_eq!(forwarded[":path"], "/orders/b?x=%2e&y", "{forwarded:?}");
    assert_eq!(forwarded["x-user"], "alice");
    assert!(!forwarded.contains_key("x_user"), "{forwarded:?}");

    // Already normal: left as the client sent it.
    let answer = send_request(&mut proxy, 0, get("/orders/b?x=1", &token));
    assert_eq!(answer.forwarded[":path"], "/orders/b?x=1");

    // Ambiguous for some backend: 400 invalid_path, and no token error code.
    for path in ["/orders%2Fb", "/orders/%252e%252e/admin", "/a;x=1/b", "*"] {
        let answer = send_request(&mut proxy, 0, get(path, &token));
        assert_eq!(answer.status, 400, "{path}");
        assert_eq!(answer.verdict(), "invalid_path", "{path}");
    }
    // A lowercase method is not judged as an unknown method (then served as GET).
    let request = HttpRequest::new("get", "api", "/orders")
        .header("authorization", format!("Bearer {token}"));
    assert_eq!(
        send_request(&mut proxy, 0, request).verdict(),
        "invalid_request"
    );
}

#[test]
fn the_normalised_path_survives_an_introspection_callout() {
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(ENVOY, &origin.public_key(), json!({}));
    let mut proxy = start(ProxyConfig::envoy(), 1, plugin, ENVOY, &origin, &idp);
    let token = issuer.token("k1", "dave", "p-hit", None, T0);
    // A filter hit the IdP calls active: the stream pauses, then resumes as an allow.
    origin.revoke(RevocationTarget::Jti("p-hit".into()));
    origin.publish_snapshot(T0 + 3);
    idp.set_active(&token, true);
    proxy.advance(Duration::from_secs(12)).unwrap();
    let calls = idp.calls();
    let answer = send_request(&mut proxy, 0, get("/orders/x/..//y?z", &token));
    assert_eq!(answer.verdict(), "allow", "{:?}", proxy.logs());
    assert_eq!(idp.calls(), calls + 1, "answered after a callout");
    assert_eq!(answer.forwarded[":path"], "/orders/y?z");
}

#[test]
fn kong_refuses_paths_it_cannot_forward_normalised() {
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(
        KONG,
        &origin.public_key(),
        json!({"host": {"kong": {"shm_zone": "rg"}}}),
    );
    let mut proxy = start(ProxyConfig::kong(), 1, plugin, KONG, &origin, &idp);
    let token = issuer.token("k1", "ivy", "p-k", None, T0);
    assert_eq!(
        send_request(&mut proxy, 0, get("//orders", &token)).verdict(),
        "invalid_path"
    );
    let answer = send_request(&mut proxy, 0, get("/orders?x=1", &token));
    assert_eq!(answer.verdict(), "allow", "{:?}", proxy.logs());
    assert_eq!(answer.forwarded[":path"], "/orders?x=1");
}

//! revguard end to end: the real .wasm in Envoy- and Kong-like proxies, real ES256 tokens,
//! real signed snapshots, scripted origin and IdP.

use crate::rg::*;
use revguard::snapshot::RevocationTarget;
use revguard_test_host::{MetricValue, ProxyConfig};
use serde_json::json;
use std::time::Duration;

fn envoy(
    workers: usize,
    extra: serde_json::Value,
) -> (revguard_test_host::Proxy, Issuer, Origin, Idp) {
    let issuer = Issuer::new(&["k1", "k2"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(ENVOY, &origin.public_key(), extra);
    let proxy = start(ProxyConfig::envoy(), workers, plugin, ENVOY, &origin, &idp);
    (proxy, issuer, origin, idp)
}

#[test]
fn allows_a_valid_token_and_denies_a_revoked_one() {
    let (mut proxy, issuer, origin, _idp) = envoy(2, json!({}));
    let good = issuer.token("k1", "alice", "t-1", None, T0);
    let answer = send(&mut proxy, 0, &good);
    assert_eq!(answer.verdict(), "allow", "{:?}", proxy.logs());
    assert_eq!(
        answer.forwarded.get("x-user").map(String::as_str),
        Some("alice")
    );
    assert_eq!(send(&mut proxy, 1, "garbage").verdict(), "malformed_token");
    origin.revoke(RevocationTarget::Subject {
        sub: "alice".into(),
        not_before: T0 + 1,
    });
    origin.publish_snapshot(T0 + 3);
    proxy.advance(Duration::from_secs(12)).unwrap();
    for worker in 0..2 {
        assert_eq!(send(&mut proxy, worker, &good).verdict(), "revoked_subject");
    }
    assert_eq!(
        proxy.guest_metric("revguard.deny.revoked_subject"),
        Some(MetricValue::Counter(2))
    );
}

//! Every revocation fetch names the proxy and the generation it holds (`x-revguard-node`,
//! `x-revguard-generation`), so the origin's fleet view can say which enforcement point knows
//! which revocation. All the workers of one proxy are one node.

use crate::rg::*;
use revguard_test_host::{CalloutRequest, ProxyConfig};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// (node, generation) of every snapshot and delta fetch the origin received.
fn identities(origin: &Origin) -> Vec<(String, u64)> {
    let fetch =
        |r: &CalloutRequest| matches!(r.headers.get_str(":path"), Some("/snapshot" | "/delta"));
    origin
        .upstream
        .requests()
        .iter()
        .filter(|r| fetch(r))
        .map(|r| {
            let node = r.headers.get_str("x-revguard-node").unwrap_or("");
            let generation = r.headers.get_str("x-revguard-generation").unwrap_or("none");
            (node.to_string(), generation.parse().unwrap_or(u64::MAX))
        })
        .collect()
}

#[test]
fn envoy_names_the_node_by_its_node_id_and_reports_the_generation_held() {
    // Envoy 1.33 and later serve the node as `xds.node` (source/extensions/filters/common/expr/
    // context.cc, XDSLookupValues); envoy#36619 removed the top-level `node`.
    envoy_node_named_by(&["xds", "node", "id"]);
}

#[test]
fn envoy_before_1_33_names_the_node_by_node_id() {
    envoy_node_named_by(&["node", "id"]);
}

/// An Envoy whose node id is the property at `path`.
fn envoy_node_named_by(path: &[&str]) {
    let node = "sidecar~10.0.0.7~api-7d9f.shop~shop.svc.cluster.local";
    let mut proxy_config = ProxyConfig::envoy();
    proxy_config.properties.insert(
        path.iter().map(|s| s.to_string()).collect(),
        node.as_bytes().to_vec(),
    );
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(ENVOY, &origin.public_key(), json!({}));
    let mut proxy = start(proxy_config, 4, plugin, ENVOY, &origin, &idp);
    let published = origin.publish_delta(T0 + 5);
    proxy.advance(Duration::from_secs(25)).unwrap();
    let seen = identities(&origin);
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.iter().all(|(n, _)| n == node), "{seen:?}");
    // The first fetch holds nothing; later ones hold what the origin served.
    assert_eq!(seen.first().map(|s| s.1), Some(0));
    assert_eq!(seen.last().map(|s| s.1), Some(published), "{seen:?}");
}

fn kong_host() -> serde_json::Value {
    json!({"host": {"kong": {"shm_zone": "revguard"}}})
}

#[test]
fn kong_workers_agree_on_one_random_node_id_and_a_configured_one_wins() {
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(KONG, &origin.public_key(), kong_host());
    let mut proxy = start(ProxyConfig::kong(), 4, plugin, KONG, &origin, &idp);
    proxy.advance(Duration::from_secs(40)).unwrap();
    let nodes: BTreeSet<String> = identities(&origin).into_iter().map(|s| s.0).collect();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert!(nodes.iter().all(|n| n.starts_with("rg-")), "{nodes:?}");

    let origin = Origin::new(issuer.jwks(&["k1"]));
    let mut plugin: serde_json::Value =
        serde_json::from_str(&config(KONG, &origin.public_key(), kong_host())).unwrap();
    plugin["revocation"]["node_id"] = json!("kong-eu-1");
    let _proxy = start(
        ProxyConfig::kong(),
        2,
        plugin.to_string(),
        KONG,
        &origin,
        &idp,
    );
    let nodes: BTreeSet<String> = identities(&origin).into_iter().map(|s| s.0).collect();
    assert_eq!(nodes, BTreeSet::from(["kong-eu-1".to_string()]));
}

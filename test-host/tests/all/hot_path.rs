//! Issue 15: what the hot paths cost in hostcalls, counted by the test host per import name.
//! Deterministic counts, no timing: a new hostcall on a cached request or a token-less denial
//! fails here, so it is a choice, not an accident (BENCHMARKS.md has the table).

use std::collections::BTreeMap;
use std::time::Duration;

use revguard_test_host::{HttpRequest, MetricValue, Proxy, ProxyConfig};
use serde_json::json;

use crate::rg::*;

/// The hostcalls `send` makes on `worker`, by name.
fn calls_of(proxy: &mut Proxy, request: HttpRequest) -> (Answer, BTreeMap<&'static str, u64>) {
    let before = proxy.hostcalls_by_name(0).unwrap();
    let answer = send_request(proxy, 0, request);
    let mut calls = proxy.hostcalls_by_name(0).unwrap();
    for (name, n) in calls.iter_mut() {
        *n -= before.get(name).copied().unwrap_or(0);
    }
    calls.retain(|_, n| *n > 0);
    (answer, calls)
}

fn bearer(token: &str) -> HttpRequest {
    HttpRequest::get("api", "/orders").header("authorization", format!("Bearer {token}"))
}

#[test]
fn hot_paths_make_only_the_hostcalls_they_need() {
    for engine in crate::fixture::both_engines() {
        let issuer = Issuer::new(&["k1"]);
        let origin = Origin::new(issuer.jwks(&["k1"]));
        let idp = Idp::new();
        let extra = json!({"routes": [{"name": "health", "path": "/healthz", "no_auth": true}]});
        let plugin = config(ENVOY, &origin.public_key(), extra);
        let mut proxy_config = ProxyConfig::envoy();
        proxy_config.engine = engine;
        let mut proxy = start(proxy_config, 1, plugin, ENVOY, &origin, &idp);
        let token = issuer.token("k1", "alice", "t-1", None, T0);
        assert_eq!(send(&mut proxy, 0, &token).verdict(), "allow");

        // Cached: read the headers and the clock, set the identity header. No removal (the
        // client sent no identity header), no metric call (counted at the tick), no log.
        let (answer, calls) = calls_of(&mut proxy, bearer(&token));
        assert_eq!(answer.verdict(), "allow");
        let want = BTreeMap::from([
            ("proxy_get_current_time_nanoseconds", 1),
            ("proxy_get_header_map_pairs", 1),
            ("proxy_replace_header_map_value", 1),
        ]);
        assert_eq!(calls, want, "cached, {engine}");

        // A forged identity header costs one removal more, and is gone upstream.
        let (answer, calls) = calls_of(&mut proxy, bearer(&token).header("x-user", "root"));
        assert_eq!(
            answer.forwarded.get("x-user").map(String::as_str),
            Some("alice")
        );
        assert_eq!(
            calls.get("proxy_remove_header_map_value"),
            Some(&1),
            "{engine}"
        );

        // The floor: a no_auth route reads the headers and the clock.
        let health = HttpRequest::get("api", "/healthz");
        let (answer, calls) = calls_of(&mut proxy, health);
        assert_eq!(answer.verdict(), "allow");
        let want = BTreeMap::from([
            ("proxy_get_current_time_nanoseconds", 1),
            ("proxy_get_header_map_pairs", 1),
        ]);
        assert_eq!(calls, want, "no_auth, {engine}");

        // A missing token: the floor, the denial's log line and the local reply.
        let (answer, calls) = calls_of(&mut proxy, HttpRequest::get("api", "/orders"));
        assert_eq!(answer.verdict(), "missing_token");
        let want = BTreeMap::from([
            ("proxy_get_current_time_nanoseconds", 1),
            ("proxy_get_header_map_pairs", 1),
            ("proxy_log", 1),
            ("proxy_send_local_response", 1),
        ]);
        assert_eq!(calls, want, "missing token, {engine}");

        // The counters are written at the next tick, every request counted.
        proxy.advance(Duration::from_millis(200)).unwrap();
        assert_eq!(
            proxy.guest_metric("revguard_decision_allow"),
            Some(MetricValue::Counter(4)),
            "{engine}"
        );
        assert_eq!(
            proxy.guest_metric("revguard_cache_verified_hit"),
            Some(MetricValue::Counter(2)),
            "{engine}"
        );
        assert_eq!(
            proxy.guest_metric("revguard_deny_missing_token"),
            Some(MetricValue::Counter(1)),
            "{engine}"
        );
    }
}

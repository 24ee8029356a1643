use crate::fixture::{body_text, wasm};
use revguard_test_host::{
    HostError, HttpRequest, KongOptions, MetricValue, NgxWasmModule, Profile, Proxy, ProxyConfig,
    ScriptedUpstream, Upstream, UpstreamReply,
};
use std::sync::Arc;
use std::time::Duration;

fn kong(plugin: &str, capacity: usize) -> (Result<Proxy, HostError>, Arc<ScriptedUpstream>) {
    let upstream = ScriptedUpstream::new();
    let mut config = ProxyConfig::kong();
    config.profile = Profile::Kong(KongOptions {
        shm_capacity_bytes: capacity,
        module: NgxWasmModule::DottedMetrics,
        ..KongOptions::default()
    });
    config.plugin_configuration = plugin.as_bytes().to_vec();
    let config = config.upstream("127.0.0.1:9000", upstream.clone() as Arc<dyn Upstream>);
    (Proxy::new(&wasm("fixture-filter"), config), upstream)
}

#[test]
fn kong_dispatches_to_host_port_and_prefixes_metrics() {
    let (proxy, upstream) = kong("upstream=127.0.0.1:9000", 1 << 20);
    let mut proxy = proxy.unwrap();
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/call"), Duration::from_secs(1))
        .unwrap();
    assert!(outcome.forwarded().is_some(), "{outcome:?}");
    assert_eq!(upstream.requests()[0].upstream, "127.0.0.1:9000");
    assert_eq!(
        proxy.metric("pw.revguard.requests_total"),
        Some(MetricValue::Counter(1))
    );
}

#[test]
fn kong_unreachable_host_fails_the_call_not_the_dispatch() {
    let (proxy, _) = kong("upstream=127.0.0.1:9999", 1 << 20);
    let mut proxy = proxy.unwrap();
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/call"), Duration::from_secs(1))
        .unwrap();
    assert_eq!(body_text(&outcome), "callout failed");
}

#[test]
fn kong_refuses_dispatch_from_configure_and_a_second_tick_period() {
    let (proxy, _) = kong("configure_call=1\nupstream=127.0.0.1:9000", 1 << 20);
    match proxy {
        Err(HostError::Trap {
            callback, message, ..
        }) => {
            assert_eq!(callback, "proxy_on_configure");
            assert!(
                message.contains("can only send HTTP dispatch during"),
                "{message}"
            );
        }
        other => panic!("expected a trap, got {:?}", other.err()),
    }
    let (proxy, _) = kong("tick_ms=100\ntick_twice=1", 1 << 20);
    assert!(
        matches!(proxy, Err(HostError::Trap { ref message, .. }) if message.contains("tick_period already set"))
    );
    let mut config = ProxyConfig::envoy();
    config.plugin_configuration = b"tick_ms=100\ntick_twice=1".to_vec();
    assert!(
        Proxy::new(&wasm("fixture-filter"), config).is_ok(),
        "Envoy accepts a second tick period"
    );
}

#[test]
fn kong_shm_zone_evicts_least_recently_used() {
    let (proxy, _) = kong("", 30);
    let mut proxy = proxy.unwrap();
    proxy.set_shared_data("k1", b"0123456789", 0).unwrap();
    proxy.set_shared_data("k2", b"0123456789", 0).unwrap();
    proxy.shared_data("k1").unwrap();
    proxy.set_shared_data("k3", b"0123456789", 0).unwrap();
    assert_eq!(proxy.shared_data_evictions(), 1);
    let get = |proxy: &mut Proxy, key: &str| {
        let request = HttpRequest::get("a", "/shared/get").header("x-key", key);
        body_text(&proxy.run_request(0, request, Duration::ZERO).unwrap().1)
    };
    assert_eq!(get(&mut proxy, "k2"), "none|0");
    assert!(get(&mut proxy, "k1").starts_with("0123456789|"));
}

#[test]
fn kong_tick_may_dispatch_and_is_answered_on_the_root() {
    let (proxy, upstream) = kong("tick_ms=50\ntick_call=1\nupstream=127.0.0.1:9000", 1 << 20);
    let mut proxy = proxy.unwrap();
    proxy.advance(Duration::from_millis(50)).unwrap();
    assert_eq!(proxy.shared_data("tick_call").unwrap().0, b"1:200:");
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn kong_timeouts_and_connect_failures_arrive_as_zero_headers() {
    for (reply, wait_ms) in [
        (UpstreamReply::Hang, 500u64),
        (UpstreamReply::connect_failure(), 0),
    ] {
        let (proxy, upstream) = kong("upstream=127.0.0.1:9000", 1 << 20);
        let mut proxy = proxy.unwrap();
        upstream.push(reply);
        let stream = proxy
            .send_request(0, HttpRequest::get("a", "/call"))
            .unwrap();
        proxy.advance(Duration::from_millis(wait_ms)).unwrap();
        assert_eq!(body_text(&proxy.outcome(stream).unwrap()), "callout failed");
    }
}

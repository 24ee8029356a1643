use crate::fixture::wasm;
use revguard_test_host::{
    MetricValue, Proxy, ProxyConfig, ScriptedUpstream, Upstream, UpstreamReply, UpstreamResponse,
};
use std::sync::Arc;
use std::time::Duration;

fn proxy(plugin: &str, workers: usize, upstream: Arc<ScriptedUpstream>) -> Proxy {
    let mut config = ProxyConfig::envoy();
    config.workers = workers;
    config.plugin_configuration = plugin.as_bytes().to_vec();
    Proxy::new(
        &wasm("fixture-filter"),
        config.upstream("idp", upstream as Arc<dyn Upstream>),
    )
    .unwrap()
}

fn ticks(proxy: &Proxy) -> Option<String> {
    proxy
        .shared_data("tick_count")
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

#[test]
fn each_worker_ticks_on_the_simulated_clock() {
    let mut proxy = proxy("tick_ms=1000", 2, ScriptedUpstream::new());
    proxy.advance(Duration::from_millis(999)).unwrap();
    assert_eq!(ticks(&proxy), None);
    proxy.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(ticks(&proxy).as_deref(), Some("2"));
    proxy.advance(Duration::from_secs(3)).unwrap();
    assert_eq!(ticks(&proxy).as_deref(), Some("8"));
    assert_eq!(
        proxy.guest_metric("ticks"),
        Some(MetricValue::Gauge(8)),
        "metrics are proxy-wide"
    );
    assert_eq!(
        proxy.metric("wasmcustom.ticks"),
        Some(MetricValue::Gauge(8))
    );
}

#[test]
fn tick_call_is_answered_on_the_root_context() {
    let upstream = ScriptedUpstream::new();
    upstream.push(
        UpstreamReply::response(UpstreamResponse::new(200, &[], b"pong"))
            .after(Duration::from_millis(10)),
    );
    upstream.push(UpstreamReply::reset());
    let mut proxy = proxy("tick_ms=100\ntick_call=1", 1, upstream.clone());
    proxy.advance(Duration::from_millis(109)).unwrap();
    assert_eq!(proxy.shared_data("tick_call"), None);
    proxy.advance(Duration::from_millis(1)).unwrap();
    assert_eq!(proxy.shared_data("tick_call").unwrap().0, b"1:200:pong");
    proxy.advance(Duration::from_millis(90)).unwrap();
    assert_eq!(
        proxy.shared_data("tick_call").unwrap().0,
        b"0:none:",
        "a reset is a response with zero headers"
    );
    assert_eq!(
        upstream.requests()[0].headers.get_str(":path"),
        Some("/tick")
    );
}

#[test]
fn metrics_follow_envoy_rules() {
    let mut proxy = proxy("", 1, ScriptedUpstream::new());
    let (_, outcome) = proxy
        .run_request(
            0,
            revguard_test_host::HttpRequest::get("a", "/metric"),
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!(
        crate::fixture::body_text(&outcome),
        "Ok(1) Err(BadArgument) Err(BadArgument)"
    );
    assert_eq!(
        proxy.guest_metric("requests_total"),
        Some(MetricValue::Counter(1))
    );
    assert_eq!(
        proxy.metric("wasmcustom.body_sizes"),
        Some(MetricValue::Histogram(vec![42]))
    );
}

#[test]
fn real_clock_ticks_in_wall_time() {
    let mut config = ProxyConfig::envoy();
    config.clock = revguard_test_host::Clock::real();
    config.plugin_configuration = b"tick_ms=10".to_vec();
    let mut proxy = Proxy::new(&wasm("fixture-filter"), config).unwrap();
    proxy.advance(Duration::from_millis(100)).unwrap();
    let n: u32 = ticks(&proxy).unwrap().parse().unwrap();
    assert!((3..=11).contains(&n), "{n} ticks in 100 ms of 10 ms period");
}

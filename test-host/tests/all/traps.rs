use crate::fixture::wasm;
use revguard_test_host::{HttpRequest, LogLevel, Outcome, Proxy, ProxyConfig};

#[test]
fn envoy_trap_fails_the_vm_closed_with_503() {
    let mut proxy = Proxy::new(&wasm("fixture-filter"), ProxyConfig::envoy()).unwrap();
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/trap"))
        .unwrap();
    let reply = proxy
        .outcome(stream)
        .unwrap()
        .local_reply()
        .cloned()
        .unwrap();
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (503, "wasm_fail_stream")
    );
    assert!(proxy
        .vm_failure(0)
        .unwrap()
        .contains("proxy_on_request_headers"));
    let logs = proxy.logs();
    assert!(
        logs.iter()
            .any(|l| l.message.contains("fixture trap requested")),
        "panic message is logged: {logs:?}"
    );
    assert!(logs.iter().any(|l| l.level == LogLevel::Critical));
    proxy.end_stream(stream).unwrap();
    let next = proxy.send_request(0, HttpRequest::get("a", "/")).unwrap();
    assert_eq!(
        proxy.outcome(next).unwrap().local_reply().map(|r| r.status),
        Some(503),
        "the VM stays failed"
    );
    assert!(proxy.healthy_workers().is_empty());
}

#[test]
fn fail_open_lets_requests_through_after_a_trap() {
    let mut config = ProxyConfig::envoy();
    config.fail_open = true;
    let mut proxy = Proxy::new(&wasm("fixture-filter"), config).unwrap();
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/trap"))
        .unwrap();
    assert!(matches!(
        proxy.outcome(stream).unwrap(),
        Outcome::Continued(_)
    ));
}

#[test]
fn kong_trap_gives_500_and_recycles_the_instance() {
    let mut proxy = Proxy::new(&wasm("fixture-filter"), ProxyConfig::kong()).unwrap();
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/trap"))
        .unwrap();
    assert_eq!(
        proxy
            .outcome(stream)
            .unwrap()
            .local_reply()
            .map(|r| r.status),
        Some(500)
    );
    proxy.end_stream(stream).unwrap();
    let next = proxy
        .send_request(0, HttpRequest::get("a", "/headers"))
        .unwrap();
    assert!(
        proxy.outcome(next).unwrap().forwarded().is_some(),
        "a fresh instance serves the next request"
    );
    assert_eq!(proxy.healthy_workers(), vec![0]);
}

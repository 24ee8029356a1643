use crate::fixture::{body_text, envoy};
use revguard_test_host::{
    HttpRequest, HttpResponse, LogLevel, LogSource, Outcome, ScriptedUpstream,
};
use std::time::Duration;

#[test]
fn header_map_operations_reach_the_upstream_request() {
    let mut proxy = envoy("", ScriptedUpstream::new());
    let request = HttpRequest::get("api.example", "/headers")
        .header("x-replaced", "old1")
        .header("X-Replaced", "old2")
        .header("x-remove", "gone")
        .header("x-raw", [0xff, 0xfe, 0x00, 0x41]);
    let stream = proxy.send_request(0, request).unwrap();
    let Outcome::Continued(forwarded) = proxy.outcome(stream).unwrap() else {
        panic!("not continued")
    };
    let h = &forwarded.headers;
    assert_eq!(
        h.get_all("x-added"),
        vec![b"1".as_slice(), b"2".as_slice()],
        "add keeps both, names lower-cased"
    );
    assert_eq!(h.get_all("x-replaced"), vec![b"new".as_slice()]);
    assert!(h.get("x-remove").is_none());
    assert_eq!(
        h.get_str("x-raw-len"),
        Some("4"),
        "bytes accessor sees non-UTF-8 values intact"
    );
    assert_eq!(
        h.get_str("x-context"),
        Some(stream.context_id.to_string().as_str())
    );
    assert_eq!(
        stream.context_id, 2,
        "root context is 1, the first stream 2"
    );
}

#[test]
fn set_header_map_pairs_replaces_the_whole_map() {
    let mut proxy = envoy("", ScriptedUpstream::new());
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/set-all").header("x-old", "1"))
        .unwrap();
    let forwarded = proxy.outcome(stream).unwrap().forwarded().cloned().unwrap();
    assert_eq!(forwarded.headers.len(), 4);
    assert_eq!(forwarded.headers.get_str(":path"), Some("/rewritten"));
    assert!(forwarded.headers.get("x-old").is_none());
}

#[test]
fn local_reply_carries_status_headers_and_body() {
    let mut proxy = envoy("", ScriptedUpstream::new());
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/deny"))
        .unwrap();
    let outcome = proxy.outcome(stream).unwrap();
    let reply = outcome.local_reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.headers.get_str("x-reason"), Some("deny"));
    assert_eq!(reply.headers.get_str("www-authenticate"), Some("Bearer"));
    assert_eq!(body_text(&outcome), "denied");
    let client = proxy.finish(stream, HttpResponse::new(200)).unwrap();
    assert_eq!(client.status(), Some(403));
    assert_eq!(
        proxy.shared_data("logged:/deny").map(|v| v.0),
        Some(b"1".to_vec()),
        "on_log ran"
    );
    assert!(
        proxy.finish(stream, HttpResponse::new(200)).is_err(),
        "the stream is gone"
    );
}

#[test]
fn response_callbacks_modify_the_client_response() {
    let mut proxy = envoy("", ScriptedUpstream::new());
    let stream = proxy.send_request(0, HttpRequest::get("a", "/")).unwrap();
    let response = HttpResponse::new(200)
        .header("server", "upstream")
        .body("payload");
    let client = proxy.finish(stream, response).unwrap();
    assert_eq!(client.status(), Some(200));
    assert_eq!(client.headers.get_str("x-fixture"), Some("seen"));
    assert!(client.headers.get("server").is_none());
    assert_eq!(client.body, b"payload");
}

#[test]
fn request_body_is_read_and_replaced() {
    let mut proxy = envoy("", ScriptedUpstream::new());
    let stream = proxy
        .send_request(0, HttpRequest::new("POST", "a", "/body").body("hello"))
        .unwrap();
    assert_eq!(
        proxy.outcome(stream).unwrap().forwarded().unwrap().body,
        b"HELLO"
    );
    let stream = proxy
        .send_request(0, HttpRequest::new("POST", "a", "/body").body("so bad"))
        .unwrap();
    assert_eq!(
        proxy.outcome(stream).unwrap().local_reply().unwrap().status,
        400
    );
}

#[test]
fn properties_time_and_logs() {
    let mut proxy = envoy("", ScriptedUpstream::new());
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/property"), Duration::ZERO)
        .unwrap();
    assert_eq!(body_text(&outcome), "revguard true allow");
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/time"), Duration::ZERO)
        .unwrap();
    let start = 1_767_225_600_000_000_000u64;
    assert_eq!(
        body_text(&outcome),
        format!("{start} {start}"),
        "proxy clock and WASI clock agree"
    );
    proxy.advance(Duration::from_secs(5)).unwrap();
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/time"), Duration::ZERO)
        .unwrap();
    let later = start + 5_000_000_000;
    assert_eq!(body_text(&outcome), format!("{later} {later}"));
    proxy.take_logs();
    proxy
        .send_request(0, HttpRequest::get("a", "/log"))
        .unwrap();
    let logs = proxy.logs();
    let has = |source, level, text: &str| {
        logs.iter()
            .any(|l| l.source == source && l.level == level && l.message == text)
    };
    assert!(
        has(
            LogSource::Stdout,
            LogLevel::Info,
            "stdout line from fixture"
        ),
        "{logs:?}"
    );
    assert!(
        has(
            LogSource::Stderr,
            LogLevel::Error,
            "stderr line from fixture"
        ),
        "{logs:?}"
    );
    assert!(
        has(LogSource::Proxy, LogLevel::Warn, "warn from fixture"),
        "{logs:?}"
    );
}

#[test]
fn vm_configuration_and_log_level_reach_the_guest() {
    let mut config = revguard_test_host::ProxyConfig::envoy();
    config.vm_configuration = b"vm-cfg".to_vec();
    config.log_level = LogLevel::Debug;
    let proxy =
        revguard_test_host::Proxy::new(&crate::fixture::wasm("fixture-filter"), config).unwrap();
    assert!(
        proxy
            .logs()
            .iter()
            .any(|l| l.message == "vm started config=vm-cfg level=1"),
        "{:?}",
        proxy.logs()
    );
}

#[test]
fn fuel_gives_deterministic_costs() {
    let run = || {
        let mut config = revguard_test_host::ProxyConfig::envoy();
        config.fuel = true;
        let mut proxy =
            revguard_test_host::Proxy::new(&crate::fixture::wasm("fixture-filter"), config)
                .unwrap();
        let stream = proxy
            .send_request(0, HttpRequest::get("a", "/headers"))
            .unwrap();
        let last = proxy.last_call_fuel(0).unwrap();
        proxy.end_stream(stream).unwrap();
        (last, proxy.fuel_consumed(0).unwrap())
    };
    let (last, total) = run();
    assert!(last > 0 && total > last);
    assert_eq!(run(), (last, total), "same inputs, same fuel");
}

use crate::fixture::{body_text, envoy};
use revguard_test_host::{HttpRequest, Outcome, ScriptedUpstream, UpstreamReply, UpstreamResponse};
use std::time::Duration;

fn active() -> UpstreamReply {
    UpstreamReply::response(
        UpstreamResponse::new(200, &[("content-type", "text/plain")], b"active")
            .with_trailer("x-trailer", "t1"),
    )
}

#[test]
fn callout_response_resumes_the_request() {
    let upstream = ScriptedUpstream::new();
    upstream.push(active());
    let mut proxy = envoy("upstream=idp\nauthority=idp.internal", upstream.clone());
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/call"))
        .unwrap();
    assert_eq!(
        proxy.outcome(stream).unwrap(),
        Outcome::Paused,
        "answers are never delivered inside the callback"
    );
    assert_eq!(proxy.pending_calls(), 1);
    proxy.poll().unwrap();
    let forwarded = proxy.outcome(stream).unwrap().forwarded().cloned().unwrap();
    assert_eq!(forwarded.headers.get_str("x-call-status"), Some("200"));
    assert_eq!(forwarded.headers.get_str("x-call-body"), Some("active"));
    assert_eq!(forwarded.headers.get_str("x-call-trailers"), Some("1:t1"));
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].upstream, "idp");
    assert_eq!(seen[0].headers.get_str(":method"), Some("POST"));
    assert_eq!(seen[0].headers.get_str(":path"), Some("/check"));
    assert_eq!(seen[0].headers.get_str(":authority"), Some("idp.internal"));
    assert_eq!(seen[0].headers.get_str("x-from"), Some("fixture"));
    assert_eq!(seen[0].body, b"token=abc");
    assert_eq!(seen[0].timeout, Duration::from_millis(500));
}

#[test]
fn delayed_answer_arrives_exactly_when_due() {
    let upstream = ScriptedUpstream::new();
    upstream.push(active().after(Duration::from_millis(300)));
    let mut proxy = envoy("", upstream);
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/call"))
        .unwrap();
    proxy.advance(Duration::from_millis(299)).unwrap();
    assert_eq!(proxy.outcome(stream).unwrap(), Outcome::Paused);
    proxy.advance(Duration::from_millis(1)).unwrap();
    assert!(proxy.outcome(stream).unwrap().forwarded().is_some());
}

/// Envoy's async client answers failures before any response with its router's local replies.
#[test]
fn envoy_timeouts_and_connect_failures_arrive_as_router_replies() {
    let refused = "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
    for (reply, wait_ms, status, body) in [
        (
            active().after(Duration::from_millis(800)),
            500u64,
            "504",
            "upstream request timeout",
        ),
        (UpstreamReply::Hang, 500, "504", "upstream request timeout"),
        (UpstreamReply::connect_failure(), 0, "503", refused),
        (
            UpstreamReply::connect_failure().after(Duration::from_millis(100)),
            100,
            "503",
            refused,
        ),
    ] {
        let upstream = ScriptedUpstream::new();
        upstream.push(reply);
        let mut proxy = envoy("", upstream);
        let stream = proxy
            .send_request(0, HttpRequest::get("a", "/call"))
            .unwrap();
        if wait_ms > 0 {
            proxy.advance(Duration::from_millis(wait_ms - 1)).unwrap();
            assert_eq!(proxy.outcome(stream).unwrap(), Outcome::Paused);
        }
        proxy.advance(Duration::from_millis(1)).unwrap();
        let outcome = proxy.outcome(stream).unwrap();
        let reply = outcome.local_reply().unwrap();
        assert_eq!(
            (reply.status, reply.headers.get_str("x-call-status")),
            (403, Some(status)),
            "{outcome:?}"
        );
        assert_eq!(body_text(&outcome), body);
        assert_eq!(proxy.pending_calls(), 0);
    }
}

#[test]
fn reset_arrives_as_zero_headers_and_maps_are_absent() {
    let upstream = ScriptedUpstream::with_fallback(|_| UpstreamReply::reset());
    let mut proxy = envoy("", upstream);
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/call"), Duration::from_secs(1))
        .unwrap();
    assert_eq!(outcome.local_reply().map(|r| r.status), Some(503));
    assert_eq!(body_text(&outcome), "callout failed");
    // Reading a response header after a failed call is BadArgument in Envoy: the SDK panics, the VM fails.
    let (_, outcome) = proxy
        .run_request(
            0,
            HttpRequest::get("a", "/call-unchecked"),
            Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(
        outcome
            .local_reply()
            .map(|r| (r.status, r.details.as_str())),
        Some((503, "wasm_fail_stream"))
    );
    assert!(proxy
        .vm_failure(0)
        .unwrap()
        .contains("proxy_on_http_call_response"));
}

#[test]
fn non_200_answer_becomes_a_denial_with_the_upstream_body() {
    let upstream = ScriptedUpstream::with_fallback(|_| {
        UpstreamReply::response(UpstreamResponse::new(401, &[], b"\xff garbage \x00 bytes"))
    });
    let mut proxy = envoy("", upstream);
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/call"), Duration::from_secs(1))
        .unwrap();
    let reply = outcome.local_reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.headers.get_str("x-call-status"), Some("401"));
    assert_eq!(reply.body, b"\xff garbage \x00 bytes");
}

#[test]
fn envoy_argument_checks_return_bad_argument() {
    let mut proxy = envoy("", ScriptedUpstream::new());
    let (_, missing_path) = proxy
        .run_request(0, HttpRequest::get("a", "/call-no-path"), Duration::ZERO)
        .unwrap();
    assert_eq!(body_text(&missing_path), "Err(BadArgument)");
    let (_, unknown) = proxy
        .run_request(0, HttpRequest::get("a", "/call-unknown"), Duration::ZERO)
        .unwrap();
    assert_eq!(body_text(&unknown), "Err(BadArgument)");
    assert_eq!(proxy.pending_calls(), 0);
}

#[test]
fn tokens_are_distinct_and_ending_a_stream_cancels_its_calls() {
    let upstream = ScriptedUpstream::with_fallback(|_| active().after(Duration::from_millis(50)));
    let mut proxy = envoy("", upstream);
    let stream = proxy
        .send_request(0, HttpRequest::get("a", "/call-twice"))
        .unwrap();
    assert_eq!(body_text(&proxy.outcome(stream).unwrap()), "Ok(1) Ok(2)");
    assert_eq!(proxy.pending_calls(), 2);
    proxy.end_stream(stream).unwrap();
    assert_eq!(proxy.pending_calls(), 0);
    let paused = proxy
        .send_request(0, HttpRequest::get("a", "/call"))
        .unwrap();
    proxy.end_stream(paused).unwrap();
    proxy.advance(Duration::from_secs(1)).unwrap();
    assert!(
        proxy.vm_failure(0).is_none(),
        "no answer is delivered to a deleted context"
    );
}

#[test]
fn configure_may_dispatch_in_envoy() {
    let upstream = ScriptedUpstream::new();
    let mut proxy = envoy("configure_call=1\ntick_ms=0", upstream.clone());
    assert_eq!(
        proxy.shared_data("configure_call").map(|v| v.0),
        Some(b"Ok(())".to_vec())
    );
    proxy.poll().unwrap();
    assert_eq!(
        proxy.shared_data("tick_call").map(|v| v.0),
        Some(b"1:200:".to_vec()),
        "answered on the root"
    );
    assert_eq!(
        upstream.requests()[0].headers.get_str(":path"),
        Some("/configure")
    );
}

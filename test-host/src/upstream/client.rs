//! The real upstream: an HTTP/1.1 client (ureq) to a server on a loopback address, one connection per
//! call, run on a thread of its own; the answer comes back through a channel (`UpstreamReply::Pending`).
//!
//! What the proxy and its tests rely on, and how the client is configured for it:
//! - the call's timeout bounds the whole exchange (connect, request, response head and body); past it
//!   the outcome is [`UpstreamOutcome::Timeout`], which the proxy delivers as its own timeout (Envoy's
//!   504 `upstream request timeout`). A timeout of 0 means none, as in Envoy;
//! - every status is an answer: 4xx and 5xx reach the guest as they are, with `:status` added;
//! - redirects are not followed (Envoy's async client does not either): the guest sees the 3xx;
//! - one connection per call: `connection: close` on the wire, and no idle connection is kept;
//! - the server sees the guest's headers and no others of the client's own (no user-agent, accept,
//!   accept-encoding; no proxy from the environment, no decompression); the guest sees the server's
//!   headers, names in lower case as Envoy's codec gives them, and bodies up to 16 MiB.
//!
//! Failures before the response head map to Envoy's reset reasons: nothing listening is `connection
//! failure`, an answer that is not HTTP/1.x (or a request HTTP/1.1 cannot carry) is `protocol error`, a
//! connection that ends first is `connection termination`. A body that breaks off (or passes 16 MiB)
//! after the head is a reset of a started response, [`UpstreamOutcome::Reset`].

use super::{CalloutRequest, Upstream, UpstreamOutcome, UpstreamReply, UpstreamResponse};
use crate::maps::HeaderMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::mpsc::channel;
use std::sync::Arc;
use ureq::config::AutoHeaderValue;
use ureq::http::uri::PathAndQuery;
use ureq::http::{header, HeaderName, HeaderValue, Method, Request, Uri};

/// Largest response body the client reads.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Request headers the client writes itself (from `:authority` and the body), never the guest's copies.
const OWN_HEADERS: [&[u8]; 4] = [
    b"host",
    b"connection",
    b"content-length",
    b"transfer-encoding",
];

/// A real HTTP/1.1 client to a server on a loopback address, one connection per call
/// (`Connection: close`), run on its own thread. Protocol errors become resets, as in Envoy.
pub struct HttpUpstream {
    addr: SocketAddr,
    agent: ureq::Agent,
}

impl HttpUpstream {
    /// Refuses non-loopback addresses: this host only talks to servers on this machine.
    pub fn new(addr: SocketAddr) -> Option<Arc<HttpUpstream>> {
        addr.ip().is_loopback().then(|| {
            Arc::new(HttpUpstream {
                addr,
                agent: agent(),
            })
        })
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .user_agent(AutoHeaderValue::None)
        .accept(AutoHeaderValue::None)
        .accept_encoding(AutoHeaderValue::None)
        .proxy(None)
        .allow_non_standard_methods(true)
        .build()
        .new_agent()
}

impl Upstream for HttpUpstream {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply {
        let (tx, rx) = channel();
        let (agent, addr, request) = (self.agent.clone(), self.addr, request.clone());
        std::thread::spawn(move || {
            let _ = tx.send(exchange(&agent, addr, &request));
        });
        UpstreamReply::Pending(rx)
    }
}

fn exchange(agent: &ureq::Agent, addr: SocketAddr, call: &CalloutRequest) -> UpstreamOutcome {
    let Some(request) = encode(addr, call) else {
        return UpstreamOutcome::ConnectFailure("protocol error".to_string());
    };
    let timeout = (!call.timeout.is_zero()).then_some(call.timeout);
    let request = agent
        .configure_request(request)
        .timeout_global(timeout)
        .build();
    let (head, body) = match agent.run(request) {
        Ok(response) => response.into_parts(),
        Err(e) => return failure(e),
    };
    let body = match body
        .into_with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
    {
        Ok(body) => body,
        // The response had begun: Envoy resets the stream (zero headers), unless the time ran out.
        Err(ureq::Error::Timeout(_)) => return UpstreamOutcome::Timeout,
        Err(_) => return UpstreamOutcome::Reset,
    };
    let mut headers = HeaderMap::new();
    headers.add(b":status", head.status.as_str().as_bytes());
    for (name, value) in &head.headers {
        headers.add(name.as_str().as_bytes(), value.as_bytes());
    }
    UpstreamOutcome::Response(UpstreamResponse {
        headers,
        body,
        trailers: HeaderMap::new(),
    })
}

/// The HTTP/1.1 request for a call: the request line from `:method` and `:path` (as the guest wrote
/// them), `host` from `:authority`, the guest's other headers, then `content-length` and
/// `connection: close`. `None` if HTTP/1.1 cannot carry it (a method or header name that is not a
/// token, a control character in a value, a `:path` that is not an origin-form target as written).
fn encode(addr: SocketAddr, call: &CalloutRequest) -> Option<Request<Vec<u8>>> {
    let pseudo = |name: &str, default: &'static [u8]| call.headers.get(name).unwrap_or(default);
    let method = Method::from_bytes(pseudo(":method", b"GET")).ok()?;
    let path = pseudo(":path", b"/");
    let target = PathAndQuery::try_from(path).ok()?;
    // The URI type drops a `#fragment`; the target must go out exactly as the guest set it.
    if target.as_str().as_bytes() != path {
        return None;
    }
    let uri = Uri::builder()
        .scheme("http")
        .authority(addr.to_string())
        .path_and_query(target)
        .build()
        .ok()?;
    let host = HeaderValue::from_bytes(pseudo(":authority", b"localhost")).ok()?;
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, host);
    for (name, value) in call.headers.iter() {
        let own = OWN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h));
        if name.starts_with(b":") || own {
            continue;
        }
        let name = HeaderName::from_bytes(name).ok()?;
        builder = builder.header(name, HeaderValue::from_bytes(value).ok()?);
    }
    builder
        .header(header::CONTENT_LENGTH, call.body.len())
        .header(header::CONNECTION, "close")
        .body(call.body.clone())
        .ok()
}

/// Envoy's reset reason for a failed exchange, or the timeout.
fn failure(error: ureq::Error) -> UpstreamOutcome {
    let reason = match error {
        ureq::Error::Timeout(_) => return UpstreamOutcome::Timeout,
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => "connection failure",
        ureq::Error::Io(e) if e.kind() == ErrorKind::ConnectionRefused => "connection failure",
        ureq::Error::Io(_) => "connection termination",
        _ => "protocol error",
    };
    UpstreamOutcome::ConnectFailure(reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc::Receiver;
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// A loopback server that reads one request head (and a body of `body_len` bytes), answers with
    /// `answer` and returns what it read.
    fn serve_once(answer: &'static [u8], body_len: usize) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    if got.len() >= end + 4 + body_len {
                        break;
                    }
                }
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer).unwrap();
            got
        });
        (addr, handle)
    }

    fn call(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> CalloutRequest {
        let mut map = HeaderMap::from_pairs(&[
            (":method", method),
            (":path", path),
            (":authority", "idp.local"),
        ]);
        for (k, v) in headers {
            map.add(k.as_bytes(), v.as_bytes());
        }
        CalloutRequest {
            upstream: "idp".into(),
            headers: map,
            body: body.to_vec(),
            trailers: HeaderMap::new(),
            timeout: Duration::from_secs(10),
        }
    }

    fn outcome(addr: SocketAddr, request: &CalloutRequest) -> UpstreamOutcome {
        let upstream = HttpUpstream::new(addr).unwrap();
        let UpstreamReply::Pending(rx) = upstream.call(request) else {
            panic!("a real call is pending");
        };
        wait(&rx)
    }

    fn wait(rx: &Receiver<UpstreamOutcome>) -> UpstreamOutcome {
        rx.recv_timeout(Duration::from_secs(30)).unwrap()
    }

    fn response(outcome: UpstreamOutcome) -> UpstreamResponse {
        match outcome {
            UpstreamOutcome::Response(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_the_request_as_the_guest_set_it() {
        let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 7);
        let request = call(
            "POST",
            "//a/./b/../%2e%2e?x=%2F",
            &[
                ("x_under", "1"),
                ("X-Mixed", "2"),
                ("x-dup", "a"),
                ("x-dup", "b"),
                ("content-length", "99"),
                ("connection", "keep-alive"),
            ],
            b"token=x",
        );
        response(outcome(addr, &request));
        let wire = String::from_utf8(server.join().unwrap()).unwrap();
        assert_eq!(
            wire,
            "POST //a/./b/../%2e%2e?x=%2F HTTP/1.1\r\nhost: idp.local\r\nx_under: 1\r\nx-mixed: 2\r\n\
             x-dup: a\r\nx-dup: b\r\ncontent-length: 7\r\nconnection: close\r\n\r\ntoken=x"
        );
    }

    #[test]
    fn reads_content_length_chunked_and_close_delimited_bodies() {
        let cases: [(&'static [u8], &[u8]); 3] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc",
                b"abc",
            ),
            (
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n",
                b"abcde",
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nrest", b"rest"),
        ];
        for (answer, body) in cases {
            let (addr, server) = serve_once(answer, 0);
            let r = response(outcome(addr, &call("GET", "/jwks", &[], b"")));
            assert_eq!(r.body, body, "{}", String::from_utf8_lossy(answer));
            server.join().unwrap();
        }
    }

    #[test]
    fn any_status_is_an_answer_and_redirects_are_not_followed() {
        let cases: [(&'static [u8], &str); 3] = [
            (
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\ndown",
                "503",
            ),
            (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "404"),
            (
                b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
                "302",
            ),
        ];
        for (answer, status) in cases {
            let (addr, server) = serve_once(answer, 0);
            let r = response(outcome(addr, &call("GET", "/x", &[], b"")));
            assert_eq!(r.headers.get_str(":status"), Some(status));
            server.join().unwrap();
            if status == "302" {
                assert_eq!(r.headers.get_str("location"), Some("/elsewhere"));
            }
            if status == "503" {
                assert_eq!(r.headers.get_str("retry-after"), Some("1"));
                assert_eq!(r.body, b"down");
            }
        }
    }

    #[test]
    fn failures_carry_envoy_reset_reasons() {
        let failure = |outcome| match outcome {
            UpstreamOutcome::ConnectFailure(reason) => reason,
            other => panic!("{other:?}"),
        };
        let (addr, server) = serve_once(b"SPDY/9 what\r\n\r\n", 0);
        let got = failure(outcome(addr, &call("GET", "/x", &[], b"")));
        assert_eq!(got, "protocol error");
        server.join().unwrap();

        let (addr, server) = serve_once(b"", 0);
        let got = failure(outcome(addr, &call("GET", "/x", &[], b"")));
        assert_eq!(got, "connection termination");
        server.join().unwrap();

        // Cut short after the head: a reset of a started response.
        let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 0);
        let got = outcome(addr, &call("GET", "/x", &[], b""));
        assert_eq!(got, UpstreamOutcome::Reset);
        server.join().unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let got = failure(outcome(addr, &call("GET", "/x", &[], b"")));
        assert_eq!(got, "connection failure");

        // Nothing HTTP/1.1 can carry: no connection is made.
        for request in [
            call("GET", "/a#frag", &[], b""),
            call("GET", "/x", &[("bad name", "1")], b""),
            call("GET", "/x", &[("x-a", "1\r\nx-injected: 2")], b""),
        ] {
            assert_eq!(failure(outcome(addr, &request)), "protocol error");
        }
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut request = call("GET", "/slow", &[], b"");
        request.timeout = Duration::from_millis(200);
        assert_eq!(outcome(addr, &request), UpstreamOutcome::Timeout);
        drop(listener);
    }

    #[test]
    fn only_loopback_addresses() {
        assert!(HttpUpstream::new("10.0.0.1:80".parse().unwrap()).is_none());
    }
}

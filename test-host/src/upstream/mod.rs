//! Upstreams that answer `proxy_http_call`: a scripted in-process one and a real HTTP/1.1 client on loopback.

use crate::maps::HeaderMap;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A call as the guest dispatched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutRequest {
    /// Cluster name (Envoy) or `host:port` (Kong).
    pub upstream: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
    pub timeout: Duration,
}

/// An upstream's answer as delivered to `proxy_on_http_call_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamResponse {
    /// Includes `:status`.
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

impl UpstreamResponse {
    /// A response with `status`, extra headers and a body.
    pub fn new(status: u16, headers: &[(&str, &str)], body: &[u8]) -> UpstreamResponse {
        let mut map = HeaderMap::new();
        map.add(b":status", status.to_string().as_bytes());
        for (k, v) in headers {
            map.add(k.as_bytes(), v.as_bytes());
        }
        UpstreamResponse {
            headers: map,
            body: body.to_vec(),
            trailers: HeaderMap::new(),
        }
    }

    /// Adds a trailer.
    pub fn with_trailer(mut self, name: &str, value: &str) -> UpstreamResponse {
        self.trailers.add(name.as_bytes(), value.as_bytes());
        self
    }
}

/// How a call ended, before the profile turns it into what the guest sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamOutcome {
    Response(UpstreamResponse),
    /// The stream was reset after the response began: both hosts deliver zero headers.
    Reset,
    /// No response at all (connection refused, closed before any byte, protocol error). Envoy's async
    /// client answers with its router's local reply, a 503 whose body is `upstream connect error or
    /// disconnect/reset before headers. reset reason: <reason>`; Kong delivers zero headers.
    ConnectFailure(String),
}

/// What an upstream does with a call.
#[derive(Debug)]
pub enum UpstreamReply {
    /// Answers after `delay` on the proxy clock (a delay past the call's timeout is a timeout).
    Ready {
        delay: Duration,
        outcome: UpstreamOutcome,
    },
    /// Never answers: the call times out.
    Hang,
    /// Answers when the receiver yields (real I/O on another thread); the call's timeout still applies.
    Pending(Receiver<UpstreamOutcome>),
}

impl UpstreamReply {
    /// An immediate response.
    pub fn response(response: UpstreamResponse) -> UpstreamReply {
        UpstreamReply::Ready {
            delay: Duration::ZERO,
            outcome: UpstreamOutcome::Response(response),
        }
    }

    /// An immediate reset of a started response (zero headers on every host).
    pub fn reset() -> UpstreamReply {
        UpstreamReply::Ready {
            delay: Duration::ZERO,
            outcome: UpstreamOutcome::Reset,
        }
    }

    /// An immediate connection failure (refused: reason `connection failure`).
    pub fn connect_failure() -> UpstreamReply {
        UpstreamReply::Ready {
            delay: Duration::ZERO,
            outcome: UpstreamOutcome::ConnectFailure("connection failure".to_string()),
        }
    }

    /// The same answer, `delay` later.
    pub fn after(self, delay: Duration) -> UpstreamReply {
        match self {
            UpstreamReply::Ready { outcome, .. } => UpstreamReply::Ready { delay, outcome },
            other => other,
        }
    }
}

/// Something that answers calls. Implementations must not block: real I/O returns `Pending`.
pub trait Upstream: Send + Sync {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply;
}

/// Test upstream: answers from a script (first queued replies, then a fallback function) and records
/// every request it saw.
pub struct ScriptedUpstream {
    script: Mutex<VecDeque<UpstreamReply>>,
    fallback: Box<dyn Fn(&CalloutRequest) -> UpstreamReply + Send + Sync>,
    seen: Mutex<Vec<CalloutRequest>>,
}

impl ScriptedUpstream {
    /// Answers every call with `200` and an empty body unless replies are queued.
    pub fn new() -> Arc<ScriptedUpstream> {
        ScriptedUpstream::with_fallback(|_| {
            UpstreamReply::response(UpstreamResponse::new(200, &[], b""))
        })
    }

    /// Answers with `fallback` once queued replies run out.
    pub fn with_fallback(
        fallback: impl Fn(&CalloutRequest) -> UpstreamReply + Send + Sync + 'static,
    ) -> Arc<ScriptedUpstream> {
        Arc::new(ScriptedUpstream {
            script: Mutex::new(VecDeque::new()),
            fallback: Box::new(fallback),
            seen: Mutex::new(Vec::new()),
        })
    }

    /// Queues the answer to the next call.
    pub fn push(&self, reply: UpstreamReply) {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(reply);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<CalloutRequest> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Upstream for ScriptedUpstream {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
        let queued = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        queued.unwrap_or_else(|| (self.fallback)(request))
    }
}

/// Largest response the HTTP client reads.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A real HTTP/1.1 client to a server on a loopback address, one connection per call
/// (`Connection: close`), run on its own thread. Protocol errors become resets, as in Envoy.
pub struct HttpUpstream {
    addr: SocketAddr,
}

impl HttpUpstream {
    /// Refuses non-loopback addresses: this host only talks to servers on this machine.
    pub fn new(addr: SocketAddr) -> Option<Arc<HttpUpstream>> {
        addr.ip()
            .is_loopback()
            .then(|| Arc::new(HttpUpstream { addr }))
    }
}

impl Upstream for HttpUpstream {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply {
        let (tx, rx) = channel();
        let addr = self.addr;
        let request = request.clone();
        std::thread::spawn(move || {
            let outcome = exchange(addr, &request);
            let _ = tx.send(outcome);
        });
        UpstreamReply::Pending(rx)
    }
}

fn exchange(addr: SocketAddr, request: &CalloutRequest) -> UpstreamOutcome {
    let failure = |reason: &str| UpstreamOutcome::ConnectFailure(reason.to_string());
    let timeout = request.timeout.max(Duration::from_millis(1));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return failure("connection failure");
    };
    let configured = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    if configured
        .and_then(|()| stream.write_all(&encode_request(request)))
        .is_err()
    {
        return failure("connection termination");
    }
    let mut raw = Vec::new();
    let limit = u64::try_from(MAX_RESPONSE_BYTES).unwrap_or(u64::MAX);
    let read = stream.take(limit).read_to_end(&mut raw);
    match parse_response(&raw) {
        Some(response) => UpstreamOutcome::Response(response),
        None if raw.is_empty() || read.is_err() => failure("connection termination"),
        None => failure("protocol error"),
    }
}

/// Serializes an HTTP/1.1 request from pseudo-headers and headers.
pub(crate) fn encode_request(request: &CalloutRequest) -> Vec<u8> {
    let method = request.headers.get(":method").unwrap_or(b"GET");
    let path = request.headers.get(":path").unwrap_or(b"/");
    let authority = request.headers.get(":authority").unwrap_or(b"localhost");
    let mut out = Vec::new();
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority);
    out.extend_from_slice(b"\r\n");
    for (k, v) in request.headers.iter() {
        let hop = [
            b"host".as_slice(),
            b"connection",
            b"content-length",
            b"transfer-encoding",
        ];
        if k.starts_with(b":") || hop.contains(&k) {
            continue;
        }
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            request.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&request.body);
    out
}

/// Parses a complete HTTP/1.1 response (content-length, chunked, or read-to-close body).
pub(crate) fn parse_response(raw: &[u8]) -> Option<UpstreamResponse> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..head_end)?).ok()?;
    let rest = raw.get(head_end.checked_add(4)?..)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    if !(100..=999).contains(&status) {
        return None;
    }
    let mut headers = HeaderMap::new();
    headers.add(b":status", status.to_string().as_bytes());
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.is_empty() || name.contains(' ') {
            return None;
        }
        headers.add(name.as_bytes(), value.trim().as_bytes());
    }
    let chunked = headers
        .get_str("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = headers.get_str("content-length") {
        let len: usize = len.parse().ok()?;
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(UpstreamResponse {
        headers,
        body,
        trailers: HeaderMap::new(),
    })
}

fn decode_chunked(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(rest.get(..line_end)?).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        let data_start = line_end.checked_add(2)?;
        if size == 0 {
            return Some(body);
        }
        let data_end = data_start.checked_add(size)?;
        body.extend_from_slice(rest.get(data_start..data_end)?);
        if body.len() > MAX_RESPONSE_BYTES
            || rest.get(data_end..data_end.checked_add(2)?)? != b"\r\n"
        {
            return None;
        }
        rest = rest.get(data_end.checked_add(2)?..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_chunked_and_close_delimited() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabcdef")
            .unwrap();
        assert_eq!(r.headers.get_str(":status"), Some("200"));
        assert_eq!(r.headers.get_str("x-a"), Some("b"));
        assert_eq!(r.body, b"abc");
        let r = parse_response(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.0 204 No Content\r\n\r\nrest").unwrap();
        assert_eq!(r.body, b"rest");
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for raw in [
            b"".as_slice(),
            b"garbage\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert!(parse_response(raw).is_none());
        }
        let good = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for cut in 0..good.len() {
            let _ = parse_response(&good[..cut]);
        }
    }

    #[test]
    fn encodes_pseudo_headers_as_request_line() {
        let request = CalloutRequest {
            upstream: "idp".into(),
            headers: HeaderMap::from_pairs(&[
                (":method", "POST"),
                (":path", "/introspect"),
                (":authority", "idp"),
                ("x-a", "1"),
            ]),
            body: b"token=x".to_vec(),
            trailers: HeaderMap::new(),
            timeout: Duration::from_secs(1),
        };
        let wire = String::from_utf8(encode_request(&request)).unwrap();
        assert!(wire.starts_with("POST /introspect HTTP/1.1\r\nhost: idp\r\nx-a: 1\r\n"));
        assert!(wire.ends_with("content-length: 7\r\nconnection: close\r\n\r\ntoken=x"));
    }

    #[test]
    fn scripted_upstream_plays_queue_then_fallback_and_records() {
        let up = ScriptedUpstream::new();
        up.push(UpstreamReply::reset());
        let req = CalloutRequest {
            upstream: "x".into(),
            headers: HeaderMap::new(),
            body: vec![],
            trailers: HeaderMap::new(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            up.call(&req),
            UpstreamReply::Ready {
                outcome: UpstreamOutcome::Reset,
                ..
            }
        ));
        assert!(matches!(
            up.call(&req),
            UpstreamReply::Ready {
                outcome: UpstreamOutcome::Response(_),
                ..
            }
        ));
        assert_eq!(up.requests().len(), 2);
        assert!(HttpUpstream::new("10.0.0.1:80".parse().unwrap()).is_none());
    }
}

//! The request/response values tests send through a filter, and what comes out.

use crate::maps::HeaderMap;
use crate::state::LocalReply;

/// A downstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Includes `:method`, `:path`, `:authority`, `:scheme`.
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
}

impl HttpRequest {
    /// A request with the four pseudo-headers (`:scheme` https).
    pub fn new(method: &str, authority: &str, path: &str) -> HttpRequest {
        let headers = HeaderMap::from_pairs(&[
            (":method", method),
            (":scheme", "https"),
            (":path", path),
            (":authority", authority),
        ]);
        HttpRequest {
            headers,
            body: None,
            trailers: None,
        }
    }

    /// A GET request.
    pub fn get(authority: &str, path: &str) -> HttpRequest {
        HttpRequest::new("GET", authority, path)
    }

    /// Adds a header (bytes, so tests can send non-UTF-8 values).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> HttpRequest {
        self.headers.add(name.as_bytes(), value.as_ref());
        self
    }

    /// Sets the body (sent in one piece with end of stream).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> HttpRequest {
        self.body = Some(body.into());
        self
    }
}

/// An upstream response, given to the filter's response callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Includes `:status`.
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

impl HttpResponse {
    pub fn new(status: u16) -> HttpResponse {
        HttpResponse {
            headers: HeaderMap::from_pairs(&[(":status", status.to_string())]),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> HttpResponse {
        self.headers.add(name.as_bytes(), value.as_ref());
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> HttpResponse {
        self.body = Some(body.into());
        self
    }
}

/// The request as it would leave for the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRequest {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// Where a request stands after the filter saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded upstream with these final headers and body.
    Continued(ForwardedRequest),
    /// Answered by the proxy (the filter's `send_local_response`, or the host's reply to a trap).
    LocalReply(LocalReply),
    /// Waiting for the filter to resume it (typically after a callout).
    Paused,
    /// The filter reset the stream (`proxy_close_stream`).
    Reset,
}

impl Outcome {
    /// The local reply, if this is one.
    pub fn local_reply(&self) -> Option<&LocalReply> {
        match self {
            Outcome::LocalReply(r) => Some(r),
            _ => None,
        }
    }

    /// The forwarded request, if the request continued.
    pub fn forwarded(&self) -> Option<&ForwardedRequest> {
        match self {
            Outcome::Continued(r) => Some(r),
            _ => None,
        }
    }
}

/// The response the client finally receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// Includes `:status`.
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// The numeric `:status`, if it parses.
    pub fn status(&self) -> Option<u32> {
        self.headers.get_str(":status").and_then(|s| s.parse().ok())
    }

    pub(crate) fn from_local(reply: &LocalReply) -> ClientResponse {
        let mut headers = HeaderMap::new();
        headers.add(b":status", reply.status.to_string().as_bytes());
        for (k, v) in reply.headers.iter() {
            headers.add(k, v);
        }
        ClientResponse {
            headers,
            body: reply.body.clone(),
        }
    }
}

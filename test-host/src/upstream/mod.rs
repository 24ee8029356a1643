//! Upstreams that answer `proxy_http_call`: what a call and its answer are, and the [`Upstream`] trait.
//!
//! Two implementations: [`ScriptedUpstream`] (`scripted.rs`), an in-process double that answers from a
//! script on the proxy clock, and [`HttpUpstream`] (`client.rs`), a real HTTP/1.1 client (ureq) to
//! servers on loopback.

mod client;
mod scripted;

pub use client::HttpUpstream;
pub use scripted::ScriptedUpstream;

use crate::maps::HeaderMap;
use std::sync::mpsc::Receiver;
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
    /// No answer within the call's timeout, by the real client's own timer (the proxy's deadline, on the
    /// proxy clock, may come first): delivered as the proxy's timeout, Envoy's 504 `upstream request
    /// timeout` or Kong's zero headers.
    Timeout,
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

//! The outgoing HTTP requests the core asks an adapter to send (key sets, snapshots,
//! introspection). The adapter performs them; the answer comes back into the core.

use std::fmt;

use serde::Serialize;

#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    /// The host's name for the destination: a cluster (Envoy) or host:port (Kong).
    pub upstream: String,
    /// Lowercase names. Pseudo-headers (`:method`, `:path`, `:authority`) come first because
    /// proxy-wasm hosts require them; adapters for other hosts map them to a URL and method.
    pub headers: Vec<(String, String)>,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl HttpRequest {
    /// A GET with the pseudo-headers set.
    pub fn get(upstream: &str, authority: &str, path: &str, timeout_ms: u64) -> HttpRequest {
        HttpRequest {
            upstream: upstream.to_string(),
            headers: vec![
                (":method".into(), "GET".into()),
                (":path".into(), path.into()),
                (":authority".into(), authority.into()),
            ],
            body: Vec::new(),
            timeout_ms,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The body may carry a token and a header the client secret: `{:?}` shows header names and
/// the body length only.
impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("upstream", &self.upstream)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// What came back from an upstream, as far as the core cares.
#[derive(Clone, Copy, Debug)]
pub enum HttpOutcome<'a> {
    Response {
        status: u16,
        etag: Option<&'a str>,
        body: &'a [u8],
    },
    /// Timeout, reset connection (proxy-wasm: zero headers), or dispatch failure.
    Failed,
}

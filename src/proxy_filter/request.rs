//! The downstream request, copied out of the host once: a stream that waits for another
//! stream's introspection callout is finished later from that stream's callback.

use super::host;
use crate::request::RequestView;
use proxy_wasm::types::MapType;

pub struct OwnedRequest {
    method: String,
    path: String,
    /// Lowercase names; pairs whose name is not UTF-8 are dropped (no token source uses them).
    headers: Vec<(String, Vec<u8>)>,
}

impl OwnedRequest {
    /// The current stream's request headers; `None` when the host has none to give.
    pub fn from_host() -> Option<OwnedRequest> {
        let pairs = host::header_pairs(MapType::HttpRequestHeaders).ok()?;
        let mut method = String::new();
        let mut path = String::new();
        let mut headers = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let Ok(mut name) = String::from_utf8(name) else {
                continue;
            };
            name.make_ascii_lowercase();
            match name.as_str() {
                ":method" => method = String::from_utf8_lossy(&value).into_owned(),
                ":path" => path = String::from_utf8_lossy(&value).into_owned(),
                _ => {}
            }
            headers.push((name, value));
        }
        Some(OwnedRequest {
            method,
            path,
            headers,
        })
    }

    /// Runs `f` with the core's view of this request.
    pub fn with_view<R>(&self, f: impl FnOnce(&RequestView<'_>) -> R) -> R {
        let pairs: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        f(&RequestView {
            method: &self.method,
            path: &self.path,
            headers: &pairs,
        })
    }

    /// `x-request-id`, printable ASCII only and bounded, for log lines.
    pub fn request_id(&self) -> Option<String> {
        self.with_view(|view| view.request_id())
    }
}

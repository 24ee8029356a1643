//! The downstream request, copied out of the host once: a stream that waits for another
//! stream's introspection callout is finished later from that stream's callback.

use std::ops::Range;

use super::host;
use crate::request::RequestView;
use proxy_wasm::types::MapType;

pub struct OwnedRequest {
    method: String,
    path: String,
    /// The host's serialized header map, kept whole (one buffer, not two copies per header),
    /// names lowercased in place.
    raw: Vec<u8>,
    /// Each pair's name and value in `raw`; pairs whose name is not UTF-8 are dropped (no
    /// token source uses them).
    headers: Vec<(Range<usize>, Range<usize>)>,
}

impl OwnedRequest {
    /// The current stream's request headers; `None` when the host has none to give.
    pub fn from_host() -> Option<OwnedRequest> {
        let (mut raw, ranges) = host::header_map(MapType::HttpRequestHeaders).ok()?;
        let mut method = String::new();
        let mut path = String::new();
        let mut headers = Vec::with_capacity(ranges.len());
        for (name, value) in ranges {
            let Some(name_bytes) = raw.get_mut(name.clone()) else {
                continue;
            };
            if std::str::from_utf8(name_bytes).is_err() {
                continue;
            }
            name_bytes.make_ascii_lowercase();
            let text = || String::from_utf8_lossy(raw.get(value.clone()).unwrap_or_default());
            match raw.get(name.clone()) {
                Some(b":method") => method = text().into_owned(),
                Some(b":path") => path = text().into_owned(),
                _ => {}
            }
            headers.push((name, value));
        }
        Some(OwnedRequest {
            method,
            path,
            raw,
            headers,
        })
    }

    /// Runs `f` with the core's view of this request.
    pub fn with_view<R>(&self, f: impl FnOnce(&RequestView<'_>) -> R) -> R {
        let pairs: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let name = std::str::from_utf8(self.raw.get(name.clone())?).ok()?;
                Some((name, self.raw.get(value.clone())?))
            })
            .collect();
        f(&RequestView {
            method: &self.method,
            path: &self.path,
            headers: &pairs,
        })
    }

    /// `x-request-id`, printable ASCII only and bounded, for log lines: the core's rule, on a
    /// view of that one header (no view of every header built for it).
    pub fn request_id(&self) -> Option<String> {
        let value = self.headers.iter().find_map(|(name, value)| {
            (self.raw.get(name.clone())? == b"x-request-id")
                .then(|| self.raw.get(value.clone()))
                .flatten()
        })?;
        let header = [("x-request-id", value)];
        RequestView {
            method: &self.method,
            path: &self.path,
            headers: &header,
        }
        .request_id()
    }
}

//! The request as JS hands it over (method, URL, headers joined in one string), owned so that a request
//! waiting for introspection can be decided again when the answer comes back.

use std::ops::Range;

use crate::request::RequestView;

pub struct OwnedRequest {
    method: String,
    /// Path plus optional `?query`, as the core's routes and query token sources expect.
    target: String,
    /// Every header name and value as JS handed them over, joined by NUL, names lowercased.
    joined: String,
    /// Where each name and value lies in `joined`.
    spans: Vec<(Range<usize>, Range<usize>)>,
}

impl OwnedRequest {
    /// `headers`: `count` names and values joined by NUL (`name\0value\0name\0value`), as
    /// one string rather than one per field: each string crossing into wasm is a call and a
    /// copy of its own. No HTTP field contains NUL (RFC 9110 section 5.5, and the Fetch
    /// standard's Headers refuse it), so `None` when the fields do not pair up into exactly
    /// `count` headers: a NUL in a caller-made header never makes up another header. `url` is
    /// absolute (`https://host/p?q`) or a path; `target_as_sent`: `url` is the raw request
    /// target (as a proxy delivers it), judged as is.
    pub fn new(
        method: &str,
        url: &str,
        headers: &str,
        count: u32,
        target_as_sent: bool,
    ) -> Option<OwnedRequest> {
        let count = usize::try_from(count).ok()?;
        let mut joined = headers.to_string();
        let mut spans = Vec::with_capacity(count);
        if count > 0 {
            let mut fields = Vec::with_capacity(count.saturating_mul(2));
            let mut start = 0;
            for (at, _) in joined.match_indices('\0') {
                fields.push(start..at);
                start = at.saturating_add(1);
            }
            fields.push(start..joined.len());
            if fields.len() != count.saturating_mul(2) {
                return None;
            }
            let mut fields = fields.into_iter();
            while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                joined.get_mut(name.clone())?.make_ascii_lowercase();
                spans.push((name, value));
            }
        } else if !headers.is_empty() {
            return None;
        }
        Some(OwnedRequest {
            method: method.to_string(),
            target: if target_as_sent {
                url.to_string()
            } else {
                request_target(url)
            },
            joined,
            spans,
        })
    }

    /// Runs `f` with the core's view of this request.
    pub fn with_view<R>(&self, f: impl FnOnce(&RequestView<'_>) -> R) -> R {
        let pairs: Vec<(&str, &[u8])> = self
            .spans
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    self.joined.get(name.clone())?,
                    self.joined.get(value.clone())?.as_bytes(),
                ))
            })
            .collect();
        f(&RequestView {
            method: &self.method,
            path: &self.target,
            headers: &pairs,
        })
    }
}

/// The request target the core judges. A path (`/p?q`) is passed as it is, so the core sees
/// exactly what a proxy would (and refuses a fragment, `\`, ...); an absolute URL, as runtimes
/// give `request.url`, becomes its path and query (its fragment never came from the wire).
/// Anything else is passed as it is and refused by the core as not origin form.
fn request_target(url: &str) -> String {
    if url.starts_with('/') {
        return url.to_string();
    }
    let Some((_, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let without_fragment = rest.split_once('#').map_or(rest, |(before, _)| before);
    match without_fragment.find(['/', '?']) {
        Some(at) => {
            let tail = without_fragment.get(at..).unwrap_or("/");
            if tail.starts_with('/') {
                tail.to_string()
            } else {
                format!("/{tail}")
            }
        }
        None => "/".to_string(),
    }
}

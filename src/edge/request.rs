//! The request as JS hands it over (method, URL, flat header list), owned so that a request
//! waiting for introspection can be decided again when the answer comes back.

use crate::request::RequestView;

pub struct OwnedRequest {
    method: String,
    /// Path plus optional `?query`, as the core's routes and query token sources expect.
    target: String,
    /// Lowercase names.
    headers: Vec<(String, Vec<u8>)>,
}

impl OwnedRequest {
    /// `headers` alternates names and values (`[name, value, name, value, ...]`); a trailing
    /// name without a value is ignored. `url` is absolute (`https://host/p?q`) or a path;
    /// `target_as_sent`: `url` is the raw request target (as a proxy delivers it), judged as is.
    pub fn new(
        method: String,
        url: &str,
        headers: Vec<String>,
        target_as_sent: bool,
    ) -> OwnedRequest {
        let mut pairs = Vec::with_capacity(headers.len() / 2);
        let mut items = headers.into_iter();
        while let (Some(mut name), Some(value)) = (items.next(), items.next()) {
            name.make_ascii_lowercase();
            pairs.push((name, value.into_bytes()));
        }
        OwnedRequest {
            method,
            target: if target_as_sent {
                url.to_string()
            } else {
                request_target(url)
            },
            headers: pairs,
        }
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

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
    /// name without a value is ignored. `url` is absolute (`https://host/p?q`) or a path.
    pub fn new(method: String, url: &str, headers: Vec<String>) -> OwnedRequest {
        let mut pairs = Vec::with_capacity(headers.len() / 2);
        let mut items = headers.into_iter();
        while let (Some(mut name), Some(value)) = (items.next(), items.next()) {
            name.make_ascii_lowercase();
            pairs.push((name, value.into_bytes()));
        }
        OwnedRequest {
            method,
            target: request_target(url),
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

/// The origin-form target (`/path?query`) of an absolute URL or a path; the fragment is
/// dropped. Anything without a path is `/`.
fn request_target(url: &str) -> String {
    let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    let after_authority = match without_fragment.split_once("://") {
        Some((_, rest)) => rest
            .find(['/', '?'])
            .and_then(|at| rest.get(at..))
            .unwrap_or(""),
        None => without_fragment,
    };
    if after_authority.starts_with('/') {
        after_authority.to_string()
    } else {
        format!("/{after_authority}")
    }
}

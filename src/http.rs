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
        /// What a revocation origin said in its headers (default for any other upstream).
        origin: OriginHints,
    },
    /// Timeout, reset connection (proxy-wasm: zero headers), or dispatch failure.
    Failed,
}

/// The revocation origin's answer header naming the full snapshot its current delta is based
/// on (the origin's `src/origin/http.rs` sends it on every snapshot and delta answer).
pub const SNAPSHOT_GENERATION_HEADER: &str = "x-revguard-snapshot-generation";

/// What a revocation origin says in its answer headers beyond the body, for fetch scheduling.
/// A static server or CDN says none of it: every field then has its default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OriginHints {
    /// `Preference-Applied: wait=N` (RFC 7240 section 3): the origin held the request until
    /// the data changed or N seconds passed, so the next held request may follow at once.
    pub held: bool,
    /// `x-revguard-snapshot-generation`: the generation of the full snapshot the origin's
    /// current delta is based on.
    pub snapshot_generation: Option<u64>,
}

impl OriginHints {
    /// Reads the hints from response headers (any case; untrusted bytes: anything malformed
    /// is ignored, never an error).
    pub fn from_headers<'h>(headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>) -> Self {
        let mut hints = OriginHints::default();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case(b"preference-applied") {
                hints.held |= names_wait(value);
            } else if name.eq_ignore_ascii_case(SNAPSHOT_GENERATION_HEADER.as_bytes()) {
                hints.snapshot_generation = parse_generation(value).or(hints.snapshot_generation);
            }
        }
        hints
    }
}

/// Whether a `Preference-Applied` value lists the `wait` preference (`wait=25`, `wait`).
fn names_wait(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    text.split(',').any(|pref| {
        let token = pref.split(';').next().unwrap_or("");
        let name = token.split('=').next().unwrap_or("");
        name.trim().eq_ignore_ascii_case("wait")
    })
}

/// Decimal digits only (at most 20), as the origin writes a u64.
fn parse_generation(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(headers: &[(&str, &str)]) -> OriginHints {
        OriginHints::from_headers(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn origin_hints_from_headers() {
        assert_eq!(hints(&[]), OriginHints::default());
        let h = hints(&[
            ("Preference-Applied", "wait=25"),
            ("X-Revguard-Snapshot-Generation", "42"),
        ]);
        assert_eq!(
            h,
            OriginHints {
                held: true,
                snapshot_generation: Some(42)
            }
        );
        assert!(hints(&[("preference-applied", "respond-async, wait")]).held);
        assert!(!hints(&[("preference-applied", "return=minimal")]).held);
        assert!(!hints(&[("preference-applied", "waiting=1")]).held);
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            "0x10",
            "99999999999999999999999",
            "1 2",
        ] {
            assert_eq!(
                hints(&[(SNAPSHOT_GENERATION_HEADER, bad)]).snapshot_generation,
                None,
                "{bad}"
            );
        }
        let non_utf8 =
            OriginHints::from_headers([(b"preference-applied".as_slice(), b"wait\xff".as_slice())]);
        assert!(!non_utf8.held);
    }
}

//! Where the engine's calls go. Every upstream section of the document (`jwks_upstream`,
//! `revocation` for the snapshot and its delta, `introspection`) names one the same way:
//! `upstream`, `path`, optional `authority`, `timeout_ms`. Validation turns those into an
//! [`Endpoint`], which holds only valid values: the rest of the core never sees the raw fields.

use std::fmt;

use crate::http::HttpRequest;

/// Longest call timeout accepted.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// A validated call target: a non-empty upstream, an absolute path, the `:authority` to send
/// (the upstream unless the section names one) and a timeout of 1 ms to [`MAX_TIMEOUT_MS`].
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    upstream: String,
    authority: String,
    path: String,
    timeout_ms: u64,
}

/// Why a section's fields make no endpoint; [`EndpointError::field`] names the bad one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointError {
    EmptyUpstream,
    RelativePath,
    Timeout,
}

impl EndpointError {
    /// The section's member that is wrong.
    pub fn field(self) -> &'static str {
        match self {
            EndpointError::EmptyUpstream => "upstream",
            EndpointError::RelativePath => "path",
            EndpointError::Timeout => "timeout_ms",
        }
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointError::EmptyUpstream => "must not be empty",
            EndpointError::RelativePath => "must start with '/'",
            EndpointError::Timeout => "must be between 1 and 60000",
        })
    }
}

impl Endpoint {
    /// Every problem with the four fields, in field order.
    pub fn new(
        upstream: &str,
        path: &str,
        authority: Option<&str>,
        timeout_ms: u64,
    ) -> Result<Endpoint, Vec<EndpointError>> {
        let mut errors = Vec::new();
        if upstream.trim().is_empty() {
            errors.push(EndpointError::EmptyUpstream);
        }
        if !path.starts_with('/') {
            errors.push(EndpointError::RelativePath);
        }
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            errors.push(EndpointError::Timeout);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Endpoint {
            upstream: upstream.to_string(),
            authority: authority.unwrap_or(upstream).to_string(),
            path: path.to_string(),
            timeout_ms,
        })
    }

    /// The host's name for it: a cluster (Envoy), `host:port` (Kong) or a URL origin (edge).
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The `:authority` (Host) sent.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// How long the host waits for an answer before the call counts as failed.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// The same upstream, authority and timeout with another path (a snapshot's delta).
    /// `None` unless `path` is absolute.
    pub fn with_path(&self, path: &str) -> Option<Endpoint> {
        path.starts_with('/').then(|| Endpoint {
            path: path.to_string(),
            ..self.clone()
        })
    }

    /// A GET of the endpoint.
    pub fn get(&self) -> HttpRequest {
        HttpRequest::get(&self.upstream, &self.authority, &self.path, self.timeout_ms)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Endpoint({} {}{} {} ms)",
            self.upstream, self.authority, self.path, self.timeout_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_fields_make_an_endpoint_with_a_default_authority() {
        let e = Endpoint::new("idp", "/jwks", None, 2000).unwrap();
        assert_eq!(
            (e.upstream(), e.authority(), e.path(), e.timeout_ms()),
            ("idp", "idp", "/jwks", 2000)
        );
        let e = Endpoint::new("idp:443", "/i", Some("idp.example"), 1).unwrap();
        assert_eq!(e.authority(), "idp.example");
        let delta = e.with_path("/delta").unwrap();
        assert_eq!((delta.path(), delta.authority()), ("/delta", "idp.example"));
        assert_eq!(e.with_path("delta"), None);
        let get = e.get();
        assert_eq!(get.upstream, "idp:443");
        assert_eq!(get.header(":path"), Some("/i"));
        assert_eq!(get.header(":authority"), Some("idp.example"));
        assert_eq!(get.timeout_ms, 1);
    }

    #[test]
    fn every_bad_field_is_reported() {
        assert_eq!(
            Endpoint::new(" ", "jwks", None, 0),
            Err(vec![
                EndpointError::EmptyUpstream,
                EndpointError::RelativePath,
                EndpointError::Timeout
            ])
        );
        assert_eq!(
            Endpoint::new("idp", "/", None, 60_001),
            Err(vec![EndpointError::Timeout])
        );
        assert!(Endpoint::new("idp", "/", None, 60_000).is_ok());
        assert_eq!(EndpointError::Timeout.field(), "timeout_ms");
    }
}

//! The edge build's one error type. It reaches JS as an `Error` whose message starts with a
//! stable code (`invalid_config: ...`); the JS API turns that into `RevguardError.code`.

use std::fmt;

use crate::config::ConfigErrors;
use crate::engine::LoadError;

#[non_exhaustive]
#[derive(Debug)]
pub enum EdgeError {
    /// The configuration document was refused (every problem, by JSON path).
    Config(ConfigErrors),
    /// A key set, snapshot or delta was refused; the engine keeps its last good data.
    Load(LoadError),
    /// `now` is not a finite, non-negative number of seconds below 2^53.
    BadTime,
    /// A status that is not an HTTP status code (100..=999).
    BadStatus(u32),
    /// A fetch kind that `dueFetches` never returns.
    UnknownFetchKind,
    /// No introspection call with this id is in flight: answered already, or never started.
    UnknownIntrospection(u32),
}

impl EdgeError {
    /// The stable code at the start of the JS error message.
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::Config(_) => "invalid_config",
            EdgeError::Load(LoadError::Keys(_)) => "keys_rejected",
            EdgeError::Load(LoadError::Snapshot(_)) => "snapshot_rejected",
            EdgeError::Load(LoadError::NoSuchIssuer(_)) => "no_such_issuer",
            EdgeError::Load(LoadError::RevocationNotConfigured) => "revocation_not_configured",
            EdgeError::Load(LoadError::NoBaseSnapshot) => "no_base_snapshot",
            EdgeError::BadTime | EdgeError::BadStatus(_) | EdgeError::UnknownFetchKind => {
                "invalid_argument"
            }
            EdgeError::UnknownIntrospection(_) => "unknown_introspection",
        }
    }
}

impl fmt::Display for EdgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            EdgeError::Config(e) => write!(f, "{code}: {e}"),
            EdgeError::Load(e) => write!(f, "{code}: {e}"),
            EdgeError::BadTime => write!(
                f,
                "{code}: now must be Unix seconds (a finite, non-negative number)"
            ),
            EdgeError::BadStatus(s) => write!(f, "{code}: {s} is not an HTTP status code"),
            EdgeError::UnknownFetchKind => write!(
                f,
                "{code}: fetch kind must be one returned by dueFetches (keys.N, snapshot, delta)"
            ),
            EdgeError::UnknownIntrospection(call) => write!(
                f,
                "{code}: no introspection call #{call} is in flight (answered already?)"
            ),
        }
    }
}

impl std::error::Error for EdgeError {}

//! Configuration: the JSON document (`types`), and its validation into a compiled [`Policy`]
//! (key sets parsed, verification policies built, endpoints checked) that the engine shares by
//! `Rc`.

mod endpoint;
mod types;
mod validate;

pub use endpoint::{Endpoint, EndpointError, MAX_TIMEOUT_MS};
pub use types::*;
pub(crate) use validate::is_tchar;
pub use validate::{ConfigError, ConfigErrors, IssuerPolicy, KeyFetch, Policy, RevocationPolicy};

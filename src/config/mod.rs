//! Configuration: the JSON document (`types`), and its validation into a compiled [`Policy`]
//! (key sets parsed, verification policies built, endpoints checked) that the engine shares by
//! `Rc`.

mod endpoint;
/// The JSON Schema of the document (`revguard config-schema`): native builds with the `schema`
/// feature only, so no wasm build compiles schemars.
#[cfg(all(feature = "schema", not(target_arch = "wasm32")))]
pub mod schema;
mod types;
mod validate;

pub use endpoint::{Endpoint, EndpointError, MAX_TIMEOUT_MS};
pub use types::*;
pub(crate) use validate::is_tchar;
pub use validate::{ConfigError, ConfigErrors, IssuerPolicy, KeyFetch, Policy, RevocationPolicy};

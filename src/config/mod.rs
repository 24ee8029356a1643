//! Configuration: the JSON document (`types`), and its validation into a compiled [`Policy`]
//! (key sets parsed, verification policies built) that the engine shares by `Rc`.

mod types;
mod validate;

pub use types::*;
pub(crate) use validate::is_tchar;
pub use validate::{ConfigError, ConfigErrors, IssuerPolicy, Policy};

//! OAuth 2.0 token introspection (RFC 7662): the request to send, strict parsing of the
//! answer, a cache of answers, and the table of calls in flight with their waiting requests.
//! Adapters perform the call; this module only describes it.

mod cache;
mod pending;
mod request;
mod response;

pub use cache::{Cached, IntrospectionCache};
pub use pending::{group_key, Callouts, Finished, Registered, Swept, TokenKey};
pub use request::{build_request, ClientAuth, HttpRequest, IntrospectionSettings};
pub use response::{parse_response, IntrospectionAnswer, IntrospectionError};

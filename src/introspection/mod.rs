//! OAuth 2.0 token introspection (RFC 7662): the request to send, strict parsing of the
//! answer, and a cache of answers. Adapters perform the call; this module only describes it.

mod cache;
mod request;
mod response;

pub use cache::{cache_key, Cached, IntrospectionCache};
pub use request::{build_request, ClientAuth, HttpRequest, IntrospectionSettings};
pub use response::{parse_response, IntrospectionAnswer, IntrospectionError};

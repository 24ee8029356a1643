//! What the edge build hands back to JS, as JSON text the JS API parses into plain objects:
//! decisions in the normalized shape of `tests/decision_cases.rs` (plus the log fields), the
//! fetches due, and fetch results. One JSON string per call is cheaper than building objects
//! through many boundary calls.

use serde_json::{json, Value};

use crate::decision::{Decision, DecisionLog};
use crate::engine::{FetchRequest, FetchResult};
use crate::http::HttpRequest;

/// A decision. `allow` carries `path`, the normalised target to forward instead of the
/// client's (`null` when that is already normal). `introspect` carries a `key` shared by every
/// request with the same token and the call to send (see [`waiting`] for the rest).
/// A `deny` also carries `log_line`, the one structured log line (JSON text) for the denial,
/// with `request_id`.
pub fn decision(decision: &Decision, request_id: Option<&str>) -> Value {
    match decision {
        Decision::Allow(a) => json!({
            "decision": "allow",
            "remove_headers": a.remove_headers,
            "set_headers": a.set_headers,
            "path": a.path,
            "fail_open": a.fail_open.map(|r| r.code()),
            "log": a.log,
        }),
        Decision::Deny(d) => json!({
            "decision": "deny",
            "status": d.status,
            "reason": d.reason.code(),
            "www_authenticate": d.www_authenticate,
            "body": d.body(),
            "log": d.log,
            "log_line": d.log_line(request_id),
        }),
        Decision::Introspect(i) => introspect(i.pending.token_key(), &i.request, i.pending.log()),
    }
}

/// An `introspect` decision: the token's `key`, the `request` to send, the `log` fields.
pub fn introspect(key: &[u8; 32], request: &HttpRequest, log: &DecisionLog) -> Value {
    json!({
        "decision": "introspect",
        "key": crate::wire::hex(key),
        "request": http_request(request),
        "log": log,
    })
}

/// Where a request waiting for introspection stands in the core's table of calls.
pub struct Ticket {
    /// The waiting request: its decision comes back under this id.
    pub id: u32,
    /// The call it waits for, one per token; its answer goes to `introspectionAnswered`.
    pub call: u32,
    /// This request is the first for its token: the caller sends `request` (the others wait).
    pub send: bool,
}

/// `introspect` (from [`introspect`]) with the waiting request's ticket.
pub fn waiting(mut introspect: Value, ticket: Ticket) -> Value {
    if let Some(object) = introspect.as_object_mut() {
        object.insert("id".into(), ticket.id.into());
        object.insert("call".into(), ticket.call.into());
        object.insert("send".into(), ticket.send.into());
    }
    introspect
}

/// An outgoing call with the pseudo-headers turned into fields, for `fetch()`.
fn http_request(request: &HttpRequest) -> Value {
    let headers: Vec<&(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| !name.starts_with(':'))
        .collect();
    json!({
        "upstream": request.upstream,
        "method": request.header(":method").unwrap_or("GET"),
        "path": request.header(":path").unwrap_or("/"),
        "authority": request.header(":authority"),
        "headers": headers,
        "body": String::from_utf8_lossy(&request.body),
        "timeout_ms": request.timeout_ms,
    })
}

pub fn fetches(due: &[FetchRequest]) -> Value {
    Value::Array(
        due.iter()
            .map(|f| {
                let mut value = http_request(&f.request);
                if let Some(object) = value.as_object_mut() {
                    object.insert("kind".into(), Value::String(f.kind.label()));
                }
                value
            })
            .collect(),
    )
}

/// `{outcome: "updated", value}` (a generation, or a key count), `{outcome: "not_modified"}`,
/// or `{outcome: "failed", error}` (the engine keeps its last good data and backs off).
pub fn fetch_result<E: std::fmt::Display>(result: &Result<FetchResult, E>) -> Value {
    match result {
        Ok(FetchResult::Updated(n)) => json!({"outcome": "updated", "value": n}),
        Ok(FetchResult::NotModified) => json!({"outcome": "not_modified"}),
        Err(e) => json!({"outcome": "failed", "error": e.to_string()}),
    }
}

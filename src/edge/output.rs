//! What the edge build hands back to JS, as JSON text the JS API parses into plain objects:
//! decisions in the normalized shape of `tests/decision_cases.rs` (plus the log fields), the
//! fetches due, and fetch results. One JSON string per call is cheaper than building objects
//! through many boundary calls. Decisions, on every request's path, are serialized from
//! borrowed structs; the rarer answers (fetches, results) are small `Value`s.

use serde::Serialize;
use serde_json::{json, Value};

use crate::decision::{Decision, DecisionLog};
use crate::engine::{FetchRequest, FetchResult};
use crate::http::HttpRequest;

/// A decision as JS sees it, serialized straight to JSON text: borrowed fields, no
/// intermediate `Value` tree (building one cost the cached path more than deciding it).
/// `allow` carries `path`, the normalised target to forward instead of the client's (`null`
/// when that is already normal). `introspect` carries a `key` shared by every request with the
/// same token and the call to send, and, once registered, its [`Ticket`]. A `deny` also
/// carries `log_line`, the one structured log line (JSON text) for the denial, with
/// `request_id`. `id`: the waiting request a decision belongs to (`introspectionAnswered`).
#[derive(Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Shown<'a> {
    Allow {
        remove_headers: &'a [String],
        set_headers: &'a [(String, String)],
        path: Option<&'a str>,
        fail_open: Option<&'static str>,
        log: &'a DecisionLog,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
    },
    Deny {
        status: u16,
        reason: &'static str,
        www_authenticate: &'a str,
        body: String,
        log: &'a DecisionLog,
        log_line: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
    },
    Introspect {
        key: String,
        request: Value,
        log: DecisionLog,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        call: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        send: Option<bool>,
    },
}

impl Shown<'_> {
    /// This decision as the one of waiting request `id`.
    pub fn for_waiter(mut self, waiter: u32) -> Self {
        match &mut self {
            Shown::Allow { id, .. } | Shown::Deny { id, .. } | Shown::Introspect { id, .. } => {
                *id = Some(waiter);
            }
        }
        self
    }

    /// JSON text for JS (`JSON.parse`).
    pub fn text(&self) -> String {
        to_text(self)
    }
}

/// JSON text of `value`, written straight into one buffer (`Value`'s `Display`, through
/// `fmt`, costs several times more). Serializing our own types cannot fail; `null` if it did.
pub fn to_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// A decision the core made (see [`Shown`]).
pub fn decision<'a>(decision: &'a Decision, request_id: Option<&str>) -> Shown<'a> {
    match decision {
        Decision::Allow(a) => Shown::Allow {
            remove_headers: &a.remove_headers,
            set_headers: &a.set_headers,
            path: a.path.as_deref(),
            fail_open: a.fail_open.map(|r| r.code()),
            log: &a.log,
            id: None,
        },
        Decision::Deny(d) => Shown::Deny {
            status: d.status,
            reason: d.reason.code(),
            www_authenticate: &d.www_authenticate,
            body: d.body(),
            log: &d.log,
            log_line: d.log_line(request_id),
            id: None,
        },
        Decision::Introspect(i) => introspect(i.pending.token_key(), &i.request, i.pending.log()),
    }
}

/// An `introspect` decision: the token's `key`, the `request` to send, the `log` fields.
pub fn introspect(key: &[u8; 32], request: &HttpRequest, log: &DecisionLog) -> Shown<'static> {
    Shown::Introspect {
        key: crate::wire::hex(key),
        request: http_request(request),
        log: log.clone(),
        id: None,
        call: None,
        send: None,
    }
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
pub fn waiting(introspect: Shown<'static>, ticket: Ticket) -> Shown<'static> {
    match introspect {
        Shown::Introspect {
            key, request, log, ..
        } => Shown::Introspect {
            key,
            request,
            log,
            id: Some(ticket.id),
            call: Some(ticket.call),
            send: Some(ticket.send),
        },
        other => other,
    }
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

//! What the core returns for a request: allow (with header changes), deny (with an RFC 6750
//! response), or introspect first. Adapters perform these; they never decide.

use serde::Serialize;

use crate::http::HttpRequest;
use crate::jwt::Claims;
use crate::reason::{www_authenticate, Reason};
use crate::snapshot::IdKind;

#[derive(Debug, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow(Allow),
    Deny(Denial),
    Introspect(Introspect),
}

#[derive(Debug, Serialize)]
pub struct Allow {
    /// Remove these request headers first (client-sent copies of identity headers).
    pub remove_headers: Vec<String>,
    /// Then set these (verified identity for the upstream).
    pub set_headers: Vec<(String, String)>,
    /// Send the request upstream with this target (`:path`) instead: the normalised path that
    /// the rules matched, query unchanged. `None`: the client's target is already normal.
    pub path: Option<String>,
    /// Set when a failure was let through by a fail-open setting.
    pub fail_open: Option<Reason>,
    pub log: DecisionLog,
}

#[derive(Debug, Serialize)]
pub struct Denial {
    pub status: u16,
    pub reason: Reason,
    pub www_authenticate: String,
    pub log: DecisionLog,
}

impl Denial {
    pub fn new(
        reason: Reason,
        realm: &str,
        required_scope: Option<&str>,
        log: DecisionLog,
    ) -> Denial {
        Denial {
            status: reason.status(),
            reason,
            www_authenticate: www_authenticate(reason, realm, required_scope),
            log,
        }
    }

    /// The one reply of every build that cannot decide yet: not configured, or busy with
    /// another call (re-entered). 503 `not_ready`, no RFC 6750 error.
    pub fn not_ready(realm: &str) -> Denial {
        Denial::new(Reason::NotReady, realm, None, DecisionLog::default())
    }

    /// The one structured log line per denial, the same in every build (JSON, event
    /// `revguard.deny`, keys in order). Never the raw token: only its hashed id. `request_id`:
    /// from [`RequestView::request_id`](crate::request::RequestView::request_id).
    pub fn log_line(&self, request_id: Option<&str>) -> String {
        let log = &self.log;
        let mut line = JsonObject::with_capacity(256);
        line.bool("cached", log.cached);
        line.str("detail", log.detail.as_deref());
        line.str("event", Some("revguard.deny"));
        line.bool("introspected", log.introspected);
        line.str("issuer", log.issuer.as_deref());
        line.str("kid", log.kid.as_deref());
        line.str("reason", Some(self.reason.code()));
        line.str("request_id", request_id);
        line.str("route", log.route.as_deref());
        line.num("snapshot_generation", log.snapshot_generation);
        line.num("status", Some(u64::from(self.status)));
        line.str("token_hash", log.token_hash.as_deref());
        line.finish()
    }

    /// The small JSON body of the local reply.
    pub fn body(&self) -> String {
        let mut body = JsonObject::with_capacity(128);
        body.str("error", Some(self.reason.code()));
        body.str("error_description", Some(self.reason.description()));
        body.finish()
    }
}

/// A JSON object written field by field, for what every denial writes (its log line and
/// body): `serde_json::json!` built a map of owned values first, most of a denial's cost.
/// Keys are literals that need no escaping; values go through serde_json's string escaper.
struct JsonObject(Vec<u8>);

impl JsonObject {
    fn with_capacity(capacity: usize) -> JsonObject {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        JsonObject(out)
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            Some(value) => {
                if serde_json::to_writer(&mut self.0, value).is_err() {
                    self.0.extend_from_slice(b"null");
                }
            }
            None => self.0.extend_from_slice(b"null"),
        }
    }

    fn num(&mut self, key: &str, value: Option<u64>) {
        self.key(key);
        match value {
            Some(value) => self.0.extend_from_slice(value.to_string().as_bytes()),
            None => self.0.extend_from_slice(b"null"),
        }
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn finish(mut self) -> String {
        self.0.push(b'}');
        // Only UTF-8 went in: literals, digits and serde_json's escaped strings.
        String::from_utf8(self.0).unwrap_or_default()
    }
}

/// Send `request`; hand the answer to `Engine::complete_introspection` with `pending`.
#[derive(Debug, Serialize)]
pub struct Introspect {
    pub request: HttpRequest,
    pub pending: PendingIntrospection,
}

/// Everything the core needs to finish the decision once the answer arrives. Holds no raw token.
#[derive(Debug, Serialize)]
pub struct PendingIntrospection {
    #[serde(skip)]
    pub(crate) token_key: [u8; 32],
    #[serde(skip)]
    pub(crate) claims: Option<std::rc::Rc<Claims>>,
    /// The snapshot hit that asked for confirmation, if any.
    pub(crate) trigger: Option<IdKind>,
    #[serde(skip)]
    pub(crate) route: Option<usize>,
    /// The allow's `path`, once the answer allows.
    #[serde(skip)]
    pub(crate) forward_path: Option<String>,
    pub(crate) log: DecisionLog,
}

impl PendingIntrospection {
    /// A stable key for this token (adapters use it to share one callout between requests).
    pub fn token_key(&self) -> &[u8; 32] {
        &self.token_key
    }

    pub fn log(&self) -> &DecisionLog {
        &self.log
    }
}

/// Fields for the one structured log line per denial. Never the raw token.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DecisionLog {
    pub route: Option<String>,
    pub issuer: Option<String>,
    pub kid: Option<String>,
    pub snapshot_generation: Option<u64>,
    /// First 8 bytes of SHA-256 of the token id (a verified token's `jti`, else the token),
    /// hex. Set on denials and introspections (whose answer may deny), never on an allow: no
    /// allow writes a log line, and the SHA-256 would cost twice the token's key.
    pub token_hash: Option<String>,
    /// The verified-token cache answered (no signature check).
    pub cached: bool,
    /// An introspection answer (fresh or cached) decided.
    pub introspected: bool,
    /// Why an input was unusable (the introspection error): short fixed text, never token data.
    pub detail: Option<String>,
}

impl Decision {
    /// The parts every build must agree on, as the shared cases (`tests/cases/*.json`) hold
    /// them: of the log only `token_hash` (the token's name in the denial's log line, never set
    /// on an allow), no introspection request.
    pub fn normalized(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Decision::Allow(a) => json!({
                "decision": "allow",
                "remove_headers": a.remove_headers,
                "set_headers": a.set_headers,
                "path": a.path,
                "fail_open": a.fail_open.map(Reason::code),
                "token_hash": a.log.token_hash,
            }),
            Decision::Deny(d) => json!({
                "decision": "deny",
                "status": d.status,
                "reason": d.reason.code(),
                "www_authenticate": d.www_authenticate,
                "body": d.body(),
                "token_hash": d.log.token_hash,
            }),
            Decision::Introspect(_) => json!({"decision": "introspect"}),
        }
    }

    pub fn reason(&self) -> Option<Reason> {
        match self {
            Decision::Deny(d) => Some(d.reason),
            Decision::Allow(a) => a.fail_open,
            Decision::Introspect(_) => None,
        }
    }

    pub fn log(&self) -> &DecisionLog {
        match self {
            Decision::Allow(a) => &a.log,
            Decision::Deny(d) => &d.log,
            Decision::Introspect(i) => &i.pending.log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written log line and body are byte for byte what `serde_json::json!` wrote.
    #[test]
    fn denial_json_matches_serde_json() {
        let logs = [
            DecisionLog::default(),
            DecisionLog {
                route: Some("orders \"x\"\n".into()),
                issuer: Some("https://idp.test/ü".into()),
                kid: Some("k\u{1}1".into()),
                snapshot_generation: Some(u64::MAX),
                token_hash: Some("0011223344556677".into()),
                cached: true,
                introspected: true,
                detail: Some("bad \\ answer".into()),
            },
        ];
        for log in logs {
            for reason in [
                Reason::MissingToken,
                Reason::RevokedSubject,
                Reason::InsufficientScope,
            ] {
                let denial = Denial::new(reason, "api", Some("a b"), log.clone());
                for request_id in [None, Some("req-1")] {
                    let expected = serde_json::json!({
                        "event": "revguard.deny",
                        "status": denial.status,
                        "reason": denial.reason.code(),
                        "route": log.route,
                        "issuer": log.issuer,
                        "kid": log.kid,
                        "snapshot_generation": log.snapshot_generation,
                        "token_hash": log.token_hash,
                        "cached": log.cached,
                        "introspected": log.introspected,
                        "detail": log.detail,
                        "request_id": request_id,
                    })
                    .to_string();
                    assert_eq!(denial.log_line(request_id), expected);
                }
                let body = serde_json::json!({
                    "error": reason.code(),
                    "error_description": reason.description(),
                })
                .to_string();
                assert_eq!(denial.body(), body);
            }
        }
    }
}

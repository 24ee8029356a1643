//! The incoming handler: decide with the revguard engine, then forward or deny.
//!
//! The engine lives in the instance (`thread_local!`). `wasmtime serve` makes a new instance per
//! request by default, so each request starts with an empty engine and fetches the key set and
//! snapshot first; with `--max-instance-reuse-count N` an instance serves N requests and the
//! engine, its caches and its fetch schedule carry over between them.
//!
//! A held fetch (`revocation.hold_secs`: the conditional delta request the origin answers when a
//! new generation exists) is started and not waited for: its response is picked up by the first
//! request after it arrived, which then starts the next one. Request handling never blocks on
//! it. Without instance reuse the instance, and the held request with it, ends with each
//! request: then the fetch is a plain conditional GET answered at once.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use revguard::decision::{Allow, Decision, Denial};
use revguard::engine::FetchKind;
use revguard::http::{HttpOutcome, HttpRequest, OriginHints};
use revguard::{Engine, RequestView};
use wasip2::http::types::{Headers, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};

use crate::outbound::{self, Pending, Response};

/// Largest request body forwarded, and largest backend response relayed.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest key set, snapshot or introspection answer read (the core applies its own limits).
const MAX_FETCH_BYTES: usize = 64 * 1024 * 1024;
/// A delta is due only once a snapshot is in: a cold start needs two rounds.
const MAX_FETCH_ROUNDS: usize = 3;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// Held fetches in flight (at most one per kind).
    static HELD: RefCell<Vec<(FetchKind, Pending)>> = const { RefCell::new(Vec::new()) };
}

struct Handler;

wasip2::http::proxy::export!(Handler);

impl wasip2::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let response = ENGINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => handle(&mut slot, request),
            Err(_) => Err(deny(&Denial::not_ready(""), None)),
        });
        send_reply(response.unwrap_or_else(|reply| reply), response_out);
    }
}

/// A response to send, fully in memory.
struct Reply {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn plain(status: u16, text: &str) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), b"text/plain".to_vec())],
        body: text.as_bytes().to_vec(),
    }
}

/// Not configured: the cause goes to the log, the client gets the 503 `not_ready` denial that
/// every build answers.
fn not_configured(cause: &str) -> Reply {
    eprintln!("revguard: not configured: {cause}");
    deny(&Denial::not_ready(""), None)
}

fn handle(slot: &mut Option<Engine>, request: IncomingRequest) -> Result<Reply, Reply> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| plain(500, "revguard: the clock is before 1970"))?;
    let backend = std::env::var("REVGUARD_BACKEND")
        .map_err(|_| not_configured("REVGUARD_BACKEND is not set"))?;
    let engine = match slot {
        Some(engine) => engine,
        None => {
            let config = std::env::var("REVGUARD_CONFIG")
                .map_err(|_| not_configured("REVGUARD_CONFIG is not set"))?;
            let engine = Engine::from_config_json(config.as_bytes())
                .map_err(|e| not_configured(&e.to_string()))?;
            slot.insert(engine)
        }
    };
    refresh(engine, now);

    let method = method_name(&request.method());
    let path = request.path_with_query().unwrap_or_else(|| "/".into());
    let headers: Vec<(String, Vec<u8>)> = request
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let views: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let view = RequestView {
        method: &method,
        path: &path,
        headers: &views,
    };
    let decision = match engine.decide(&view, now) {
        Decision::Introspect(i) => {
            let answer = outbound::send_core(&i.request, MAX_FETCH_BYTES);
            let outcome = match &answer {
                Ok(r) => HttpOutcome::Response {
                    status: r.status,
                    etag: None,
                    body: &r.body,
                    origin: Default::default(),
                },
                Err(e) => {
                    eprintln!("revguard: introspection call failed: {e}");
                    HttpOutcome::Failed
                }
            };
            engine.complete_introspection(i.pending, outcome, &view, now)
        }
        decision => decision,
    };
    match decision {
        Decision::Allow(allow) => {
            let body = request
                .consume()
                .map_err(|()| plain(400, "revguard: request body unavailable"))
                .and_then(|b| {
                    outbound::read_body(b, MAX_BODY_BYTES)
                        .map_err(|_| plain(400, "revguard: request body unreadable"))
                })?;
            if body.len() > MAX_BODY_BYTES {
                return Err(plain(413, "revguard: request body too large"));
            }
            forward(&backend, &method, &path, &headers, &allow, &body)
        }
        Decision::Deny(denial) => Ok(deny(&denial, view.request_id().as_deref())),
        // The core answers an introspection it asked for with allow or deny.
        Decision::Introspect(_) => Err(plain(500, "revguard: introspection did not finish")),
    }
}

/// Picks up the answers of held fetches that came in, then sends the fetches that are due (key
/// sets, snapshot, delta) and reports each to the engine, which keeps its last good data when
/// one fails. A held fetch is started, not waited for.
fn refresh(engine: &mut Engine, now: u64) {
    HELD.with(|held| {
        if let Ok(mut held) = held.try_borrow_mut() {
            held.retain(|(kind, pending)| match pending.poll(MAX_FETCH_BYTES) {
                None => true,
                Some(answer) => {
                    report(engine, *kind, &answer, now);
                    false
                }
            });
        }
    });
    for _ in 0..MAX_FETCH_ROUNDS {
        let due = engine.due_fetches(now);
        if due.is_empty() {
            return;
        }
        for fetch in due {
            if is_held(&fetch.request) {
                match outbound::start_core(&fetch.request) {
                    Ok(pending) => HELD.with(|held| {
                        if let Ok(mut held) = held.try_borrow_mut() {
                            // A newer fetch of the same kind replaces one the engine gave up on.
                            held.retain(|(kind, _)| *kind != fetch.kind);
                            held.push((fetch.kind, pending));
                        }
                    }),
                    Err(e) => report(engine, fetch.kind, &Err(e), now),
                }
                continue;
            }
            let answer = outbound::send_core(&fetch.request, MAX_FETCH_BYTES);
            report(engine, fetch.kind, &answer, now);
        }
    }
}

/// Whether the origin may hold this fetch: asked to (`prefer`) and conditional (the origin
/// holds only a request for data it has already sent; a first fetch is answered at once, and
/// the request that needs its data waits for it).
fn is_held(request: &HttpRequest) -> bool {
    request.header("prefer").is_some() && request.header("if-none-match").is_some()
}

fn report(
    engine: &mut Engine,
    kind: FetchKind,
    answer: &Result<Response, outbound::SendError>,
    now: u64,
) {
    let outcome = match answer {
        Ok(r) => HttpOutcome::Response {
            status: r.status,
            etag: r.etag.as_deref(),
            body: &r.body,
            origin: OriginHints::from_headers(
                r.headers
                    .iter()
                    .map(|(name, value)| (name.as_bytes(), value.as_slice())),
            ),
        },
        Err(_) => HttpOutcome::Failed,
    };
    if let Err(e) = engine.fetch_completed(kind, outcome, now) {
        eprintln!("revguard: fetch {kind:?} failed: {e}");
    }
}

/// Forwards an allowed request: client-sent identity headers removed (under every spelling the
/// core lists), verified ones added, and the normalised target the rules matched when the
/// client's differs (`allow.path`).
fn forward(
    backend: &str,
    method: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
    allow: &Allow,
    body: &[u8],
) -> Result<Reply, Reply> {
    let mut upstream_headers: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| {
            !allow
                .remove_headers
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    upstream_headers.extend(
        allow
            .set_headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into_bytes())),
    );
    let path = allow.path.as_deref().unwrap_or(path);
    let response: Response = outbound::send(
        &outbound::method(method),
        backend,
        path,
        &upstream_headers,
        body,
        30_000,
        MAX_BODY_BYTES,
    )
    .map_err(|e| plain(502, &format!("revguard: backend: {e}")))?;
    if response.body.len() > MAX_BODY_BYTES {
        return Err(plain(502, "revguard: backend response too large"));
    }
    Ok(Reply {
        status: response.status,
        headers: response.headers,
        body: response.body,
    })
}

/// The core's reply and its one log line (on stderr, which `wasmtime serve` passes through).
fn deny(denial: &Denial, request_id: Option<&str>) -> Reply {
    eprintln!("{}", denial.log_line(request_id));
    Reply {
        status: denial.status,
        headers: vec![
            (
                "www-authenticate".into(),
                denial.www_authenticate.clone().into_bytes(),
            ),
            ("content-type".into(), b"application/json".to_vec()),
        ],
        body: denial.body().into_bytes(),
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

/// Sends the status and headers, then streams the body (a wasi:http response body is written
/// after the response is handed to the host).
fn send_reply(reply: Reply, response_out: ResponseOutparam) {
    let headers: Headers = outbound::fields(&reply.headers);
    // The body is written below whole; the host frames it.
    let _ = headers.delete("content-length");
    let response = OutgoingResponse::new(headers);
    if response.set_status_code(reply.status).is_err() {
        let _ = response.set_status_code(502);
    }
    let body = response.body();
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(body) = body {
        // The response is already committed: a failed write can only end the body early.
        let _ = outbound::write_body(body, &reply.body);
    }
}

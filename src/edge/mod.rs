//! The edge-worker adapter (wasm-bindgen, `--target web`): the core's engine as a JS class for
//! workerd, Deno and other JS/Wasm runtimes. The JS side does all I/O (the worker module in
//! `examples/worker/`); this module turns its calls into core calls and the core's answers into
//! JSON, and decides nothing itself.
//!
//! Times are Unix seconds as JS numbers. Bad request input never throws: it gets a denial.
//! Misuse (a bad config, rejected data, an unknown id) throws an `Error` whose message starts
//! with a stable code, see [`EdgeError::code`].

mod error;
mod output;
mod request;

use wasm_bindgen::prelude::*;

pub use error::EdgeError;

use crate::decision::{Decision, Denial, Introspect, PendingIntrospection};
use crate::engine::{Engine, FetchKind};
use crate::http::{HttpOutcome, OriginHints, SNAPSHOT_GENERATION_HEADER};
use crate::introspection::{Callouts, Registered};
use crate::Reason;
use request::OwnedRequest;

/// Requests waiting for an introspection answer, per engine. A caller that never reports its
/// calls cannot grow memory without bound: past this, a request that needs introspection is
/// decided at once as if the call had failed (the route's introspection failure mode).
const MAX_PENDING: usize = 10_000;
/// JS's `Number.MAX_SAFE_INTEGER` (2^53 - 1): every integer up to it is exact in an f64.
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

struct Waiting {
    pending: PendingIntrospection,
    request: OwnedRequest,
}

/// One engine per isolate: configuration, key sets, revocation data and caches, and the
/// introspection calls in flight (the core's table: one call per token, shared by every request
/// that carries it; the JS side only holds each waiting request's promise, by its `id`).
#[wasm_bindgen(js_name = EdgeEngine)]
pub struct EdgeEngine {
    engine: Engine,
    callouts: Callouts<Waiting>,
    next_id: u32,
    next_call: u32,
}

#[wasm_bindgen(js_class = EdgeEngine)]
impl EdgeEngine {
    /// Parses and validates `config` (the JSON document of docs/CONFIGURATION.md).
    #[wasm_bindgen(constructor)]
    pub fn new(config: &str) -> Result<EdgeEngine, JsError> {
        let engine = Engine::from_config_json(config.as_bytes()).map_err(EdgeError::Config);
        Ok(EdgeEngine {
            engine: engine.map_err(js)?,
            callouts: Callouts::new(MAX_PENDING),
            next_id: 0,
            next_call: 0,
        })
    }

    /// This isolate's name in the origin's fleet view, unless the configuration names one
    /// (`revocation.node_id`). An id that cannot be sent is ignored.
    #[wasm_bindgen(js_name = setDefaultNodeId)]
    pub fn set_default_node_id(&mut self, id: &str) {
        self.engine.set_default_node_id(id);
    }

    /// Loads issuer #`issuer`'s key set (JWKS bytes). Returns the number of usable keys.
    #[wasm_bindgen(js_name = loadKeys)]
    pub fn load_keys(&mut self, issuer: u32, jwks: &[u8], now: f64) -> Result<u32, JsError> {
        let now = seconds(now).map_err(js)?;
        let index = usize::try_from(issuer).unwrap_or(usize::MAX);
        let count = self
            .engine
            .load_keys(index, jwks, now)
            .map_err(|e| js(EdgeError::Load(e)))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Loads a full signed snapshot. Returns the generation now in force.
    #[wasm_bindgen(js_name = loadSnapshot)]
    pub fn load_snapshot(&mut self, bytes: &[u8]) -> Result<f64, JsError> {
        let generation = self
            .engine
            .load_snapshot(bytes)
            .map_err(|e| js(EdgeError::Load(e)))?;
        Ok(number(generation))
    }

    /// Loads a signed delta for the current snapshot. Returns the generation now in force.
    #[wasm_bindgen(js_name = loadDelta)]
    pub fn load_delta(&mut self, bytes: &[u8]) -> Result<f64, JsError> {
        let generation = self
            .engine
            .load_delta(bytes)
            .map_err(|e| js(EdgeError::Load(e)))?;
        Ok(number(generation))
    }

    /// Decides a request. `headers`: `header_count` names and values joined by NUL (see
    /// [`OwnedRequest::new`]); fields that do not pair up are an `invalid_request` denial.
    /// Returns the decision as JSON.
    pub fn decide(
        &mut self,
        method: &str,
        url: &str,
        headers: &str,
        header_count: u32,
        now: f64,
        target_as_sent: bool,
    ) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        let Some(request) = OwnedRequest::new(method, url, headers, header_count, target_as_sent)
        else {
            let realm = &self.engine.policy().config.realm;
            let denial = Denial::new(Reason::InvalidRequest, realm, None, Default::default());
            return Ok(output::decision(&Decision::Deny(denial), None).text());
        };
        let decision = request.with_view(|view| self.engine.decide(view, now));
        Ok(self.answer(decision, request, now))
    }

    /// Reports the answer to introspection call `call` (from an `introspect` decision with
    /// `send`): `status` undefined for a failed call (timeout, reset). Returns the decisions of
    /// every request that waited for it, as a JSON array of decisions with their `id`.
    #[wasm_bindgen(js_name = introspectionAnswered)]
    pub fn introspection_answered(
        &mut self,
        call: u32,
        status: Option<u32>,
        body: &[u8],
        now: f64,
    ) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        let status = status.map(http_status).transpose().map_err(js)?;
        let finished = self
            .callouts
            .complete(call)
            .ok_or(EdgeError::UnknownIntrospection(call))
            .map_err(js)?;
        let outcome = match status {
            Some(status) => HttpOutcome::Response {
                status,
                etag: None,
                body,
                origin: Default::default(),
            },
            None => HttpOutcome::Failed,
        };
        let decided: Vec<(u32, Decision, Option<String>)> = finished
            .waiters
            .into_iter()
            .map(|(id, waiting)| {
                let (decision, request_id) = self.finish(waiting, outcome, now);
                (id, decision, request_id)
            })
            .collect();
        let shown: Vec<output::Shown<'_>> = decided
            .iter()
            .map(|(id, decision, request_id)| {
                output::decision(decision, request_id.as_deref()).for_waiter(*id)
            })
            .collect();
        Ok(output::to_text(&shown))
    }

    /// The fetches due at `now` (key sets, snapshot, delta) as a JSON array; each is marked
    /// in flight until reported with `fetchCompleted`. Conditional headers are included.
    #[wasm_bindgen(js_name = dueFetches)]
    pub fn due_fetches(&mut self, now: f64) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        Ok(output::to_text(&output::fetches(
            &self.engine.due_fetches(now),
        )))
    }

    /// Reports a fetch from `dueFetches`: `status` undefined when the call failed;
    /// `preference_applied` and `snapshot_generation` are the answer's `Preference-Applied` and
    /// `x-revguard-snapshot-generation` headers (undefined when absent), which schedule the
    /// next held fetch. Returns `{outcome: "updated" | "not_modified" | "failed", ...}` as JSON.
    #[wasm_bindgen(js_name = fetchCompleted)]
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_completed(
        &mut self,
        kind: &str,
        status: Option<u32>,
        etag: Option<String>,
        body: &[u8],
        now: f64,
        preference_applied: Option<String>,
        snapshot_generation: Option<String>,
    ) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        let kind = FetchKind::from_label(kind)
            .ok_or(EdgeError::UnknownFetchKind)
            .map_err(js)?;
        let status = status.map(http_status).transpose().map_err(js)?;
        let outcome = match status {
            Some(status) => HttpOutcome::Response {
                status,
                etag: etag.as_deref(),
                body,
                origin: OriginHints::from_headers(
                    [
                        ("preference-applied", preference_applied.as_deref()),
                        (SNAPSHOT_GENERATION_HEADER, snapshot_generation.as_deref()),
                    ]
                    .into_iter()
                    .filter_map(|(name, value)| Some((name.as_bytes(), value?.as_bytes()))),
                ),
            },
            None => HttpOutcome::Failed,
        };
        let result = self.engine.fetch_completed(kind, outcome, now);
        Ok(output::to_text(&output::fetch_result(&result)))
    }

    /// Snapshot generation and age, staleness, key-set ages and cache sizes, as JSON.
    pub fn status(&self, now: f64) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        let mut status = serde_json::to_value(self.engine.status(now)).unwrap_or_default();
        if let Some(object) = status.as_object_mut() {
            object.insert(
                "pending_introspections".into(),
                self.callouts.waiting().into(),
            );
        }
        Ok(output::to_text(&status))
    }
}

impl EdgeEngine {
    /// The decision as JSON. An `introspect` decision's request waits under a fresh `id` for
    /// call `call`, which it sends itself (`send`) when it is the first for its token.
    fn answer(&mut self, decision: Decision, request: OwnedRequest, now: u64) -> String {
        let Decision::Introspect(Introspect {
            request: call_request,
            pending,
        }) = decision
        else {
            // Only a denial's log line names the request.
            let request_id = match &decision {
                Decision::Deny(_) => request.with_view(|view| view.request_id()),
                _ => None,
            };
            return output::decision(&decision, request_id.as_deref()).text();
        };
        let key = *pending.token_key();
        let shown = output::introspect(&key, &call_request, pending.log());
        let id = self.fresh_id();
        let waiting = Waiting { pending, request };
        let now_ms = now.saturating_mul(1000);
        let joined = match self
            .callouts
            .register(key, id, waiting, call_request, now_ms)
        {
            Registered::Send => None,
            Registered::Joined => self.callouts.call_of(&key),
            Registered::Refused(waiting) => {
                let (decision, request_id) = self.finish(waiting, HttpOutcome::Failed, now);
                return output::decision(&decision, request_id.as_deref()).text();
            }
        };
        // Every call is "sent" as soon as it is registered: the JS side sends it next.
        let (call, send) = match joined {
            Some(call) => (call, false),
            None => {
                let call = self.fresh_call();
                self.callouts.sent(&key, call, id);
                (call, true)
            }
        };
        output::waiting(shown, output::Ticket { id, call, send }).text()
    }

    /// A waiting request decided with the introspection outcome; its request id, for the log.
    fn finish(
        &mut self,
        waiting: Waiting,
        outcome: HttpOutcome,
        now: u64,
    ) -> (Decision, Option<String>) {
        let Waiting { pending, request } = waiting;
        request.with_view(|view| {
            let decision = self
                .engine
                .complete_introspection(pending, outcome, view, now);
            (decision, view.request_id())
        })
    }

    /// The next waiter id not in use (ids wrap after 2^32 requests).
    fn fresh_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.callouts.is_waiting(id) {
                return id;
            }
        }
    }

    /// The next call id not in flight (ids wrap after 2^32 calls).
    fn fresh_call(&mut self) -> u32 {
        loop {
            let call = self.next_call;
            self.next_call = self.next_call.wrapping_add(1);
            if !self.callouts.is_in_flight(call) {
                return call;
            }
        }
    }
}

/// The deny decision (as `decide` returns it) for a worker that cannot decide yet: not
/// configured, or failing before the engine answered. 503 `not_ready`, the same reply as every
/// other build's. `realm` may be empty.
#[wasm_bindgen(js_name = notReady)]
pub fn not_ready(realm: &str) -> String {
    output::decision(&Decision::Deny(Denial::not_ready(realm)), None).text()
}

fn js(error: EdgeError) -> JsError {
    JsError::new(&error.to_string())
}

/// `now` from JS: whole seconds, finite, non-negative and exact in an f64.
fn seconds(now: f64) -> Result<u64, EdgeError> {
    // Also refuses NaN and the infinities.
    if !(0.0..=MAX_SAFE_INTEGER as f64).contains(&now) {
        return Err(EdgeError::BadTime);
    }
    // In range and floored, so the conversion is exact.
    Ok(now.floor() as u64)
}

fn http_status(status: u32) -> Result<u16, EdgeError> {
    u16::try_from(status)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or(EdgeError::BadStatus(status))
}

/// A generation as a JS number. Generations are counters far below 2^53; one above is
/// reported as the largest exact number rather than rounded.
fn number(value: u64) -> f64 {
    let capped = value.min(MAX_SAFE_INTEGER);
    // Exact: every integer up to 2^53 - 1 is representable.
    capped as f64
}

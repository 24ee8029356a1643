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

use std::collections::BTreeMap;

use wasm_bindgen::prelude::*;

pub use error::EdgeError;

use crate::decision::{Decision, Denial, PendingIntrospection};
use crate::engine::{Engine, FetchKind};
use crate::http::HttpOutcome;
use request::OwnedRequest;

/// Requests waiting for an introspection answer, per engine. A caller that never completes
/// one cannot grow memory without bound: the oldest is dropped past this.
const MAX_PENDING: usize = 10_000;
/// JS's `Number.MAX_SAFE_INTEGER` (2^53 - 1): every integer up to it is exact in an f64.
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

struct Waiting {
    pending: PendingIntrospection,
    request: OwnedRequest,
}

/// One engine per isolate: configuration, key sets, revocation data and caches.
#[wasm_bindgen(js_name = EdgeEngine)]
pub struct EdgeEngine {
    engine: Engine,
    waiting: BTreeMap<u32, Waiting>,
    next_id: u32,
}

#[wasm_bindgen(js_class = EdgeEngine)]
impl EdgeEngine {
    /// Parses and validates `config` (the JSON document of docs/CONFIGURATION.md).
    #[wasm_bindgen(constructor)]
    pub fn new(config: &str) -> Result<EdgeEngine, JsError> {
        let engine = Engine::from_config_json(config.as_bytes()).map_err(EdgeError::Config);
        Ok(EdgeEngine {
            engine: engine.map_err(js)?,
            waiting: BTreeMap::new(),
            next_id: 0,
        })
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

    /// Decides a request. `headers` alternates names and values. Returns the decision as JSON.
    pub fn decide(
        &mut self,
        method: String,
        url: &str,
        headers: Vec<String>,
        now: f64,
        target_as_sent: bool,
    ) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        let request = OwnedRequest::new(method, url, headers, target_as_sent);
        let decision = request.with_view(|view| self.engine.decide(view, now));
        Ok(self.answer(decision, request).to_string())
    }

    /// Finishes decision `id` (from an `introspect` decision) with the introspection answer:
    /// `status` undefined for a failed call (timeout, reset). Returns the decision as JSON.
    #[wasm_bindgen(js_name = completeIntrospection)]
    pub fn complete_introspection(
        &mut self,
        id: u32,
        status: Option<u32>,
        body: &[u8],
        now: f64,
    ) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        let status = status.map(http_status).transpose().map_err(js)?;
        let waiting = self
            .waiting
            .remove(&id)
            .ok_or(EdgeError::UnknownIntrospection(id))
            .map_err(js)?;
        let outcome = match status {
            Some(status) => HttpOutcome::Response {
                status,
                etag: None,
                body,
            },
            None => HttpOutcome::Failed,
        };
        let Waiting { pending, request } = waiting;
        let decision = request.with_view(|view| {
            self.engine
                .complete_introspection(pending, outcome, view, now)
        });
        Ok(self.answer(decision, request).to_string())
    }

    /// The fetches due at `now` (key sets, snapshot, delta) as a JSON array; each is marked
    /// in flight until reported with `fetchCompleted`. Conditional headers are included.
    #[wasm_bindgen(js_name = dueFetches)]
    pub fn due_fetches(&mut self, now: f64) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        Ok(output::fetches(&self.engine.due_fetches(now)).to_string())
    }

    /// Reports a fetch from `dueFetches`: `status` undefined when the call failed. Returns
    /// `{outcome: "updated" | "not_modified" | "failed", ...}` as JSON.
    #[wasm_bindgen(js_name = fetchCompleted)]
    pub fn fetch_completed(
        &mut self,
        kind: &str,
        status: Option<u32>,
        etag: Option<String>,
        body: &[u8],
        now: f64,
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
            },
            None => HttpOutcome::Failed,
        };
        let result = self.engine.fetch_completed(kind, outcome, now);
        Ok(output::fetch_result(&result).to_string())
    }

    /// Snapshot generation and age, staleness, key-set ages and cache sizes, as JSON.
    pub fn status(&self, now: f64) -> Result<String, JsError> {
        let now = seconds(now).map_err(js)?;
        let mut status = serde_json::to_value(self.engine.status(now)).unwrap_or_default();
        if let Some(object) = status.as_object_mut() {
            object.insert("pending_introspections".into(), self.waiting.len().into());
        }
        Ok(status.to_string())
    }
}

impl EdgeEngine {
    /// The decision as JSON; an `introspect` decision's request waits under a fresh id.
    fn answer(&mut self, decision: Decision, request: OwnedRequest) -> serde_json::Value {
        let id = matches!(decision, Decision::Introspect(_)).then(|| self.fresh_id());
        let request_id = request.with_view(|view| view.request_id());
        let value = output::decision(&decision, id, request_id.as_deref());
        if let (Decision::Introspect(introspect), Some(id)) = (decision, id) {
            while self.waiting.len() >= MAX_PENDING && self.waiting.pop_first().is_some() {}
            self.waiting.insert(
                id,
                Waiting {
                    pending: introspect.pending,
                    request,
                },
            );
        }
        value
    }

    /// The next id not in use (ids wrap after 2^32 requests).
    fn fresh_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.waiting.contains_key(&id) {
                return id;
            }
        }
    }
}

/// The deny decision (as `decide` returns it) for a worker that cannot decide yet: not
/// configured, or failing before the engine answered. 503 `not_ready`, the same reply as every
/// other build's. `realm` may be empty.
#[wasm_bindgen(js_name = notReady)]
pub fn not_ready(realm: &str) -> String {
    output::decision(&Decision::Deny(Denial::not_ready(realm)), None, None).to_string()
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

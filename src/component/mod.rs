//! The component adapter: exports the WIT world in `wit/` (`revguard:policy@0.2.0`) from the same
//! core as the other builds. It only converts between WIT types and core types; the engine
//! decides. Build:
//! `cargo build --release --lib --target wasm32-wasip2 --no-default-features --features component`.

mod convert;

use std::cell::{RefCell, RefMut};

use crate::decision::{Denial, PendingIntrospection as CorePending};
use crate::engine::Engine as CoreEngine;

wit_bindgen::generate!({ path: "wit", world: "revguard" });

use self::revguard::policy::types::{ConfigError, DecisionLog};
use exports::revguard::policy::policy::{
    Decision, Engine, EngineStatus, FetchError, FetchKind, FetchRequest, FetchResult, Guest,
    GuestEngine, GuestPendingIntrospection, HttpOutcome, LoadError, PendingIntrospection,
    RequestView,
};

struct Component;

export!(Component);

impl Guest for Component {
    type Engine = EngineResource;
    type PendingIntrospection = PendingResource;
}

/// The `engine` resource. WIT methods take `&self`; the component model never re-enters an
/// instance during a call, so the engine is borrowed once per call.
pub struct EngineResource {
    engine: RefCell<CoreEngine>,
}

/// The `pending-introspection` resource: the core's pending state, consumed by
/// `complete-introspection`.
pub struct PendingResource {
    pending: CorePending,
}

impl EngineResource {
    /// The engine for a load call, or the load error a busy engine answers.
    fn engine_for_load(&self) -> Result<RefMut<'_, CoreEngine>, LoadError> {
        self.engine
            .try_borrow_mut()
            .map_err(|_| LoadError::Snapshot("the engine is busy with another call".to_string()))
    }

    /// The engine is borrowed by another call: impossible without re-entrance, and answered
    /// fail closed (503 `not_ready`) instead of a trap if it ever happens.
    fn busy_decision() -> Decision {
        convert::decision(crate::Decision::Deny(Denial::not_ready("")), None)
    }
}

impl GuestEngine for EngineResource {
    fn configure(config: Vec<u8>) -> Result<Engine, Vec<ConfigError>> {
        match CoreEngine::from_config_json(&config) {
            Ok(mut engine) => {
                // One component instance is one node of the origin's fleet view (the host's
                // wasi random seeds std's hasher).
                engine.set_default_node_id(&crate::node_id::random());
                Ok(Engine::new(EngineResource {
                    engine: RefCell::new(engine),
                }))
            }
            Err(errors) => Err(errors
                .0
                .into_iter()
                .map(|e| ConfigError {
                    field: e.field,
                    message: e.message,
                })
                .collect()),
        }
    }

    fn load_keys(&self, issuer: u32, jwks: Vec<u8>, now: u64) -> Result<u32, LoadError> {
        let mut engine = self.engine_for_load()?;
        let index = usize::try_from(issuer).map_err(|_| LoadError::NoSuchIssuer(issuer))?;
        engine
            .load_keys(index, &jwks, now)
            .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
            .map_err(|e| convert::load_error(&e))
    }

    fn load_snapshot(&self, snapshot: Vec<u8>) -> Result<u64, LoadError> {
        let mut engine = self.engine_for_load()?;
        engine
            .load_snapshot(&snapshot)
            .map_err(|e| convert::load_error(&e))
    }

    fn load_delta(&self, delta: Vec<u8>) -> Result<u64, LoadError> {
        let mut engine = self.engine_for_load()?;
        engine
            .load_delta(&delta)
            .map_err(|e| convert::load_error(&e))
    }

    fn decide(&self, request: RequestView, now: u64) -> Decision {
        let Ok(mut engine) = self.engine.try_borrow_mut() else {
            return Self::busy_decision();
        };
        let headers = convert::header_views(&request);
        let view = convert::request_view(&request, &headers);
        convert::decision(engine.decide(&view, now), view.request_id().as_deref())
    }

    fn complete_introspection(
        &self,
        pending: PendingIntrospection,
        outcome: HttpOutcome,
        request: RequestView,
        now: u64,
    ) -> Decision {
        let Ok(mut engine) = self.engine.try_borrow_mut() else {
            return Self::busy_decision();
        };
        let pending = pending.into_inner::<PendingResource>().pending;
        let headers = convert::header_views(&request);
        let view = convert::request_view(&request, &headers);
        let decision =
            engine.complete_introspection(pending, convert::http_outcome(&outcome), &view, now);
        convert::decision(decision, view.request_id().as_deref())
    }

    fn due_fetches(&self, now: u64) -> Vec<FetchRequest> {
        let Ok(mut engine) = self.engine.try_borrow_mut() else {
            return Vec::new();
        };
        engine
            .due_fetches(now)
            .into_iter()
            .map(convert::fetch_request)
            .collect()
    }

    fn fetch_completed(
        &self,
        kind: FetchKind,
        outcome: HttpOutcome,
        now: u64,
    ) -> Result<FetchResult, FetchError> {
        let mut engine = self.engine_for_load().map_err(FetchError::Rejected)?;
        let kind = convert::core_fetch_kind(kind)
            .map_err(|issuer| FetchError::Rejected(LoadError::NoSuchIssuer(issuer)))?;
        engine
            .fetch_completed(kind, convert::http_outcome(&outcome), now)
            .map(convert::fetch_result)
            .map_err(|e| convert::fetch_error(&e))
    }

    fn status(&self, now: u64) -> EngineStatus {
        match self.engine.try_borrow() {
            Ok(engine) => convert::status(&engine.status(now)),
            Err(_) => EngineStatus {
                snapshot_generation: None,
                snapshot_age_secs: None,
                snapshot_stale: true,
                key_set_age_secs: Vec::new(),
                verified_cache_entries: 0,
                introspection_cache_entries: 0,
            },
        }
    }
}

impl GuestPendingIntrospection for PendingResource {
    fn token_key(&self) -> Vec<u8> {
        self.pending.token_key().to_vec()
    }

    fn log(&self) -> DecisionLog {
        convert::log(self.pending.log())
    }
}

//! The revguard policy component (`wit/`, `revguard:policy@0.2.0`) on wasmtime's component model:
//! a small typed wrapper for tests and tools.
//!
//! The component gets no capabilities. Its WASI imports come from the Rust standard library, and
//! two of them are called: `wasi:random/insecure-seed` (hash map seeds) gets fresh seeds, and
//! `wasi:cli/environment` an empty environment (`anyhow`, inside jwt-simple, looks up
//! `RUST_BACKTRACE` when a claim check fails). Every other import (stdio, exit, clocks: paths the
//! core never takes) traps if called.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Engine, Store};

wasmtime::component::bindgen!({ path: "../wit", world: "revguard" });

pub use self::exports::revguard::policy::policy::{Decision, Introspect};
pub use self::revguard::policy::types::{
    Allow, ConfigError, DecisionLog, Deny, EngineStatus, FetchError, FetchKind, FetchRequest,
    FetchResult, HttpOutcome, HttpRequest, HttpResponse, LoadError, Reason, RequestView,
};

/// Why the component could not be loaded or a call did not return.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ComponentError {
    /// wasmtime refused to compile, link or instantiate the component.
    Load(String),
    /// The configuration was rejected; one entry per problem.
    Config(Vec<ConfigError>),
    /// The guest trapped or a call failed in the host.
    Trap(String),
}

impl fmt::Display for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentError::Load(why) => write!(f, "policy component not loaded: {why}"),
            ComponentError::Config(errors) => {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                write!(f, "invalid configuration: {}", lines.join("; "))
            }
            ComponentError::Trap(why) => write!(f, "policy component call failed: {why}"),
        }
    }
}

impl std::error::Error for ComponentError {}

fn load_error(e: wasmtime::Error) -> ComponentError {
    ComponentError::Load(format!("{e:#}"))
}

fn trap(e: wasmtime::Error) -> ComponentError {
    ComponentError::Trap(format!("{e:#}"))
}

/// One instance of the policy component. Engines are resources inside it.
pub struct PolicyComponent {
    store: Store<()>,
    bindings: Revguard,
}

/// An engine resource of a [`PolicyComponent`] (one configuration, its keys, snapshot and caches).
#[derive(Clone, Copy, Debug)]
pub struct EngineHandle(ResourceAny);

impl PolicyComponent {
    /// Compiles and instantiates the component (`.wasm` bytes of a wasm32-wasip2 build).
    pub fn new(wasm: &[u8]) -> Result<PolicyComponent, ComponentError> {
        let engine = Engine::default();
        let component = Component::new(&engine, wasm).map_err(load_error)?;
        let mut linker = Linker::<()>::new(&engine);
        let imports: Vec<String> = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        for name in &imports {
            if name.starts_with("wasi:random/insecure-seed@") {
                let mut instance = linker.instance(name).map_err(load_error)?;
                instance
                    .func_wrap("insecure-seed", |_, (): ()| {
                        Ok(((random_u64(), random_u64()),))
                    })
                    .map_err(load_error)?;
            } else if name.starts_with("wasi:cli/environment@") {
                let mut instance = linker.instance(name).map_err(load_error)?;
                instance
                    .func_wrap("get-environment", |_, (): ()| {
                        Ok((Vec::<(String, String)>::new(),))
                    })
                    .and_then(|()| {
                        instance.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))
                    })
                    .and_then(|()| {
                        instance.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))
                    })
                    .map_err(load_error)?;
            }
        }
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(load_error)?;
        let mut store = Store::new(&engine, ());
        let bindings =
            Revguard::instantiate(&mut store, &component, &linker).map_err(load_error)?;
        Ok(PolicyComponent { store, bindings })
    }

    /// The component's imports, by name (what a host must provide).
    pub fn imports(wasm: &[u8]) -> Result<Vec<String>, ComponentError> {
        let engine = Engine::default();
        let component = Component::new(&engine, wasm).map_err(load_error)?;
        Ok(component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect())
    }

    /// `engine.configure`: a new engine for a JSON configuration document.
    pub fn configure(&mut self, config: &[u8]) -> Result<EngineHandle, ComponentError> {
        let engine = self.bindings.revguard_policy_policy().engine();
        match engine
            .call_configure(&mut self.store, config)
            .map_err(trap)?
        {
            Ok(handle) => Ok(EngineHandle(handle)),
            Err(errors) => Err(ComponentError::Config(errors)),
        }
    }

    pub fn load_keys(
        &mut self,
        engine: EngineHandle,
        issuer: u32,
        jwks: &[u8],
        now: u64,
    ) -> Result<Result<u32, LoadError>, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_load_keys(&mut self.store, engine.0, issuer, jwks, now)
            .map_err(trap)
    }

    pub fn load_snapshot(
        &mut self,
        engine: EngineHandle,
        snapshot: &[u8],
    ) -> Result<Result<u64, LoadError>, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_load_snapshot(&mut self.store, engine.0, snapshot)
            .map_err(trap)
    }

    pub fn load_delta(
        &mut self,
        engine: EngineHandle,
        delta: &[u8],
    ) -> Result<Result<u64, LoadError>, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_load_delta(&mut self.store, engine.0, delta)
            .map_err(trap)
    }

    pub fn decide(
        &mut self,
        engine: EngineHandle,
        request: &RequestView,
        now: u64,
    ) -> Result<Decision, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_decide(&mut self.store, engine.0, request, now)
            .map_err(trap)
    }

    /// Finishes an introspect decision; `pending` (from [`Introspect`]) is consumed.
    pub fn complete_introspection(
        &mut self,
        engine: EngineHandle,
        pending: ResourceAny,
        outcome: &HttpOutcome,
        request: &RequestView,
        now: u64,
    ) -> Result<Decision, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_complete_introspection(&mut self.store, engine.0, pending, outcome, request, now)
            .map_err(trap)
    }

    pub fn due_fetches(
        &mut self,
        engine: EngineHandle,
        now: u64,
    ) -> Result<Vec<FetchRequest>, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_due_fetches(&mut self.store, engine.0, now)
            .map_err(trap)
    }

    pub fn fetch_completed(
        &mut self,
        engine: EngineHandle,
        kind: FetchKind,
        outcome: &HttpOutcome,
        now: u64,
    ) -> Result<Result<FetchResult, FetchError>, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_fetch_completed(&mut self.store, engine.0, kind, outcome, now)
            .map_err(trap)
    }

    pub fn status(
        &mut self,
        engine: EngineHandle,
        now: u64,
    ) -> Result<EngineStatus, ComponentError> {
        let api = self.bindings.revguard_policy_policy().engine();
        api.call_status(&mut self.store, engine.0, now)
            .map_err(trap)
    }

    /// Drops a resource the host owns (an engine, or a pending introspection not completed).
    pub fn drop_resource(&mut self, resource: ResourceAny) -> Result<(), ComponentError> {
        resource.resource_drop(&mut self.store).map_err(trap)
    }

    pub fn drop_engine(&mut self, engine: EngineHandle) -> Result<(), ComponentError> {
        self.drop_resource(engine.0)
    }
}

/// The stable reason code (`missing_token`) of a WIT reason (`missing-token`).
pub fn reason_code(reason: Reason) -> String {
    // The generated Debug prints `Reason::MissingToken`; codes are its snake case.
    let debug = format!("{reason:?}");
    let camel = debug.rsplit("::").next().unwrap_or(&debug);
    let mut code = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

/// Fresh 64 random bits from the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

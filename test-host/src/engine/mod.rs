//! The wasm engines behind the one VM driver (`vm.rs`) and the one set of host functions (`abi/`,
//! `wasi.rs`): wasmtime (cranelift, the engine of the figures, fuel and hostcall budgets) and wasmi
//! (an interpreter that builds in a fraction of the time, for the demo and `serve`, and a second
//! engine the scenario tests must agree with).
//!
//! An engine only compiles, links, instantiates and calls: its glue adapts its own
//! `Linker`/`Store`/`Caller`/`TypedFunc` to [`Guest`] (what a host function sees of the VM calling
//! it) and [`Instance`] (what the driver sees of one VM). Every rule of the ABI stays outside.

#[cfg(not(any(feature = "wasmtime", feature = "wasmi")))]
compile_error!(
    "revguard-test-host needs at least one engine: enable the `wasmi` or `wasmtime` feature"
);

#[cfg(feature = "wasmi")]
mod wasmi_engine;
#[cfg(feature = "wasmtime")]
mod wasmtime_engine;

use crate::error::HostError;
use crate::state::HostState;
use std::sync::Arc;
use std::time::Duration;

/// Which engine runs the module. Fuel counts differ between engines (each meters its own
/// instructions); published figures and the tests' budgets are wasmtime's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// wasmtime with cranelift (cargo feature `wasmtime`).
    Wasmtime,
    /// The wasmi interpreter (cargo feature `wasmi`, on by default).
    Wasmi,
}

impl Engine {
    /// Every engine, built in or not.
    pub const ALL: [Engine; 2] = [Engine::Wasmtime, Engine::Wasmi];

    /// The engines this build includes.
    pub fn available() -> Vec<Engine> {
        Engine::ALL.into_iter().filter(|e| e.is_built()).collect()
    }

    /// wasmtime when it is built in (the engine of the figures), else wasmi.
    pub fn preferred() -> Engine {
        if Engine::Wasmtime.is_built() {
            Engine::Wasmtime
        } else {
            Engine::Wasmi
        }
    }

    /// Whether this build includes the engine (its cargo feature is on).
    pub fn is_built(self) -> bool {
        match self {
            Engine::Wasmtime => cfg!(feature = "wasmtime"),
            Engine::Wasmi => cfg!(feature = "wasmi"),
        }
    }

    /// The engine's name, which is also its cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Wasmtime => "wasmtime",
            Engine::Wasmi => "wasmi",
        }
    }

    /// The engine named `name` (`wasmtime` or `wasmi`).
    pub fn from_name(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Refuses an engine this build does not include, naming the feature to add.
    pub fn require(self) -> Result<Engine, HostError> {
        if self.is_built() {
            Ok(self)
        } else {
            Err(HostError::Config(format!(
                "this test host was built without the {0} engine: build it with `--features {0}`",
                self.name()
            )))
        }
    }
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::preferred()
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A host function's refusal to go on: the guest traps with this message (engine-neutral; each
/// engine's glue turns it into its own error type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trap(pub(crate) String);

/// The VM calling a host function, as every host function sees it, whatever the engine.
///
/// Guest memory is the whole linear memory as a slice: host functions index it only through
/// `memory.rs`, which bounds-checks every guest pointer and length.
pub(crate) trait Guest {
    fn data(&self) -> &HostState;
    fn data_mut(&mut self) -> &mut HostState;
    /// The guest's linear memory (empty before the instance's exports are bound).
    fn memory(&self) -> &[u8];
    fn memory_mut(&mut self) -> &mut [u8];
    /// Calls the guest's allocator (`proxy_on_memory_allocate` or `malloc`) for `size` bytes.
    /// `Ok(None)` if the instance has no allocator bound yet; `Err` if the allocator trapped.
    fn allocate(&mut self, size: u32) -> Result<Option<u32>, Trap>;
}

/// The signatures of the guest callbacks the driver calls (all parameters are `i32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signature {
    /// `() -> ()`
    P0,
    /// `(i32) -> ()`
    P1,
    /// `(i32) -> i32`
    P1R,
    /// `(i32, i32) -> ()`
    P2,
    /// `(i32, i32) -> i32`
    P2R,
    /// `(i32, i32, i32) -> i32`
    P3R,
    /// `(i32, i32, i32, i32, i32) -> ()`
    P5,
}

/// A guest callback the driver may call: its export name and signature. Absent exports are
/// skipped, as Envoy skips them; an export with another signature refuses the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Callback {
    pub(crate) name: &'static str,
    pub(crate) signature: Signature,
    /// Index in [`CALLBACKS`].
    pub(crate) index: usize,
}

macro_rules! callbacks {
    ($($id:ident = $name:literal $sig:ident;)*) => {
        /// The callbacks, by name, in [`CALLBACKS`] order.
        #[allow(non_upper_case_globals, dead_code)]
        pub(crate) mod cb {
            use super::{Callback, Signature};
            callbacks!(@consts 0usize; $($id $name $sig;)*);
        }
        /// Every guest callback the driver calls.
        pub(crate) const CALLBACKS: &[Callback] = &[$(cb::$id),*];
    };
    (@consts $i:expr; $id:ident $name:literal $sig:ident; $($rest:tt)*) => {
        pub(crate) const $id: Callback = Callback { name: $name, signature: Signature::$sig, index: $i };
        callbacks!(@consts $i + 1usize; $($rest)*);
    };
    (@consts $i:expr;) => {};
}

callbacks! {
    initialize = "_initialize" P0;
    start = "_start" P0;
    on_context_create = "proxy_on_context_create" P2;
    on_vm_start = "proxy_on_vm_start" P2R;
    on_configure = "proxy_on_configure" P2R;
    on_tick = "proxy_on_tick" P1;
    on_queue_ready = "proxy_on_queue_ready" P2;
    on_request_headers = "proxy_on_request_headers" P3R;
    on_request_body = "proxy_on_request_body" P3R;
    on_request_trailers = "proxy_on_request_trailers" P2R;
    on_response_headers = "proxy_on_response_headers" P3R;
    on_response_body = "proxy_on_response_body" P3R;
    on_http_call_response = "proxy_on_http_call_response" P5;
    on_log = "proxy_on_log" P1;
    on_done = "proxy_on_done" P1R;
    on_delete = "proxy_on_delete" P1;
}

/// The guest's allocator: `proxy_on_memory_allocate`, or `malloc` for older SDKs.
pub(crate) const ALLOCATORS: [&str; 2] = ["proxy_on_memory_allocate", "malloc"];

/// One VM as the driver sees it: the engine's store (holding the [`HostState`]) and instance.
pub(crate) trait Instance: Send {
    fn host(&self) -> &HostState;
    fn host_mut(&mut self) -> &mut HostState;
    /// Whether the module exports `callback`.
    fn has(&self, callback: Callback) -> bool;
    /// Calls `callback` with `params` (as many as its signature has). `Ok(None)` if the module
    /// does not export it; `Ok(Some(0))` for a callback without a result; `Err` is the trap's text.
    fn call(&mut self, callback: Callback, params: &[u32]) -> Result<Option<u32>, String>;
    /// Fuel left (`None` without fuel metering).
    fn fuel_left(&self) -> Option<u64>;
}

/// A module compiled and linked by one engine, from which VMs are instantiated.
pub(crate) trait Linked: Send + Sync {
    /// Instantiates the module with `state` in its store (fuel set to the maximum when metered),
    /// binds memory and allocator, and resolves the callbacks. Runs no guest code.
    fn instantiate(&self, state: HostState) -> Result<Box<dyn Instance>, HostError>;
}

/// What an engine reports about a module before it is linked, for the host's own checks.
pub(crate) struct ModuleInfo {
    /// `(module, name)` of every import.
    pub(crate) imports: Vec<(String, String)>,
    pub(crate) exports: Vec<String>,
}

/// Compiles `wasm` on `engine`, runs `check` on its imports and exports (the host refuses modules
/// Envoy would refuse, with its own errors), then links the host functions.
/// Returns the linked module and the time compiling took.
pub(crate) fn compile(
    engine: Engine,
    wasm: &[u8],
    fuel: bool,
    check: &dyn Fn(&ModuleInfo) -> Result<(), HostError>,
) -> Result<(Arc<dyn Linked>, Duration), HostError> {
    match engine.require()? {
        #[cfg(feature = "wasmtime")]
        Engine::Wasmtime => wasmtime_engine::compile(wasm, fuel, check),
        #[cfg(feature = "wasmi")]
        Engine::Wasmi => wasmi_engine::compile(wasm, fuel, check),
        #[allow(unreachable_patterns)]
        other => Err(HostError::Config(format!("{other} is not built in"))),
    }
}

/// Counts one host function call: in the engine-neutral layer, so both engines count alike.
pub(crate) fn count_hostcall(guest: &mut dyn Guest) {
    let state = guest.data_mut();
    state.hostcalls = state.hostcalls.saturating_add(1);
}

/// Glue shared by the engines' modules: both expose `TypedFunc<Params, Results>` with
/// `Func::typed(&store)` and `TypedFunc::call(&mut store, params)`, so one macro types and calls
/// the driver's callbacks in each, with the engine's own types in scope.
macro_rules! typed_callbacks {
    ($store:ty, $error:ty) => {
        /// A callback export, typed by its [`Signature`].
        #[derive(Clone)]
        enum Typed {
            P0(TypedFunc<(), ()>),
            P1(TypedFunc<u32, ()>),
            P1R(TypedFunc<u32, u32>),
            P2(TypedFunc<(u32, u32), ()>),
            P2R(TypedFunc<(u32, u32), u32>),
            P3R(TypedFunc<(u32, u32, u32), u32>),
            P5(TypedFunc<(u32, u32, u32, u32, u32), ()>),
        }

        fn typed(store: &$store, func: Func, signature: Signature) -> Result<Typed, $error> {
            Ok(match signature {
                Signature::P0 => Typed::P0(func.typed(store)?),
                Signature::P1 => Typed::P1(func.typed(store)?),
                Signature::P1R => Typed::P1R(func.typed(store)?),
                Signature::P2 => Typed::P2(func.typed(store)?),
                Signature::P2R => Typed::P2R(func.typed(store)?),
                Signature::P3R => Typed::P3R(func.typed(store)?),
                Signature::P5 => Typed::P5(func.typed(store)?),
            })
        }

        /// Calls `func`; `Ok(0)` for a callback without a result. Parameters that do not fit
        /// the signature are the driver's bug, reported as an error rather than a panic.
        fn call_typed(store: &mut $store, func: &Typed, params: &[u32]) -> Result<u32, String> {
            let result = match (func, params) {
                (Typed::P0(f), []) => f.call(&mut *store, ()).map(|()| 0),
                (Typed::P1(f), &[a]) => f.call(&mut *store, a).map(|()| 0),
                (Typed::P1R(f), &[a]) => f.call(&mut *store, a),
                (Typed::P2(f), &[a, b]) => f.call(&mut *store, (a, b)).map(|()| 0),
                (Typed::P2R(f), &[a, b]) => f.call(&mut *store, (a, b)),
                (Typed::P3R(f), &[a, b, c]) => f.call(&mut *store, (a, b, c)),
                (Typed::P5(f), &[a, b, c, d, e]) => {
                    f.call(&mut *store, (a, b, c, d, e)).map(|()| 0)
                }
                _ => {
                    return Err(format!(
                        "host bug: {} parameters for this callback",
                        params.len()
                    ))
                }
            };
            result.map_err(|e| format!("{e:#}"))
        }
    };
}
pub(crate) use typed_callbacks;

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

/// Counts one host function call, in total and by import name: in the engine-neutral layer,
/// so both engines count alike.
pub(crate) fn count_hostcall(guest: &mut dyn Guest, name: &'static str) {
    let state = guest.data_mut();
    state.hostcalls = state.hostcalls.saturating_add(1);
    let by_name = state.hostcalls_by_name.entry(name).or_insert(0);
    *by_name = by_name.saturating_add(1);
}

/// Glue shared by the engines' modules. wasmi's API mirrors wasmtime's (`Store`, `Caller`,
/// `Memory`, `Func::typed(&store)`, `TypedFunc::call(&mut store, params)`, `Instance::get_func`),
/// so one macro, expanded in each module with that engine's types in scope (`Caller`, `Engine`,
/// `Func`, `Memory`, `Store`, `TypedFunc`), writes the store's data, the host functions' view of
/// the calling VM, the binding of a new instance's exports and the driver's calls; each module
/// keeps only compiling, linking and instantiating, where the two APIs differ.
macro_rules! engine_glue {
    ($error:ty, $instance:ty) => {
        /// What a VM's store holds: the engine-neutral state and the guest exports host
        /// functions need.
        struct StoreData {
            host: HostState,
            guest: Option<Bound>,
        }

        /// The instance's memory and allocator, bound once it exists.
        #[derive(Clone)]
        struct Bound {
            memory: Memory,
            alloc: TypedFunc<u32, u32>,
        }

        fn engine_err(e: $error) -> HostError {
            HostError::Engine(format!("{e:#}"))
        }

        /// A host function's view of the calling VM.
        struct Calling<'a>(Caller<'a, StoreData>);

        impl Guest for Calling<'_> {
            fn data(&self) -> &HostState {
                &self.0.data().host
            }

            fn data_mut(&mut self) -> &mut HostState {
                &mut self.0.data_mut().host
            }

            fn memory(&self) -> &[u8] {
                match &self.0.data().guest {
                    Some(bound) => bound.memory.data(&self.0),
                    None => &[],
                }
            }

            fn memory_mut(&mut self) -> &mut [u8] {
                match self.0.data().guest.as_ref().map(|b| b.memory) {
                    Some(memory) => memory.data_mut(&mut self.0),
                    None => &mut [],
                }
            }

            // wasmi's `TypedFunc` is `Copy`, wasmtime's only `Clone`.
            #[allow(clippy::clone_on_copy)]
            fn allocate(&mut self, size: u32) -> Result<Option<u32>, Trap> {
                let Some(alloc) = self.0.data().guest.as_ref().map(|b| b.alloc.clone()) else {
                    return Ok(None);
                };
                alloc
                    .call(&mut self.0, size)
                    .map(Some)
                    .map_err(|e| Trap(format!("{e:#}")))
            }
        }

        /// A store for a new VM, metering fuel if asked.
        fn new_store(
            engine: &Engine,
            host: HostState,
            fuel: bool,
        ) -> Result<Store<StoreData>, HostError> {
            let mut store = Store::new(engine, StoreData { host, guest: None });
            if fuel {
                store.set_fuel(u64::MAX).map_err(engine_err)?;
            }
            Ok(store)
        }

        /// Binds a new instance's memory, allocator and callbacks into the VM the driver runs.
        fn bind(
            mut store: Store<StoreData>,
            instance: &$instance,
            fuel: bool,
        ) -> Result<Box<dyn Instance>, HostError> {
            let memory = instance
                .get_memory(&mut store, "memory")
                .ok_or(HostError::MissingExport("memory"))?;
            let mut alloc = None;
            for name in ALLOCATORS {
                if let Some(f) = instance.get_func(&mut store, name) {
                    alloc = Some(f.typed::<u32, u32>(&store).map_err(|e| {
                        HostError::BadModule(format!("export `{name}` has the wrong type: {e}"))
                    })?);
                    break;
                }
            }
            let alloc = alloc.ok_or(HostError::MissingExport("proxy_on_memory_allocate"))?;
            store.data_mut().guest = Some(Bound { memory, alloc });
            let mut callbacks = Vec::with_capacity(CALLBACKS.len());
            for callback in CALLBACKS {
                callbacks.push(match instance.get_func(&mut store, callback.name) {
                    None => None,
                    Some(f) => Some(typed(&store, f, callback.signature).map_err(|e| {
                        HostError::BadModule(format!(
                            "export `{}` has the wrong type: {e}",
                            callback.name
                        ))
                    })?),
                });
            }
            Ok(Box::new(Running {
                store,
                callbacks,
                fuel,
            }))
        }

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

        fn typed(
            store: &Store<StoreData>,
            func: Func,
            signature: Signature,
        ) -> Result<Typed, $error> {
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
        fn call_typed(
            store: &mut Store<StoreData>,
            func: &Typed,
            params: &[u32],
        ) -> Result<u32, String> {
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

        /// A started VM, as the driver runs it.
        struct Running {
            store: Store<StoreData>,
            /// By [`Callback::index`].
            callbacks: Vec<Option<Typed>>,
            fuel: bool,
        }

        impl Instance for Running {
            fn host(&self) -> &HostState {
                &self.store.data().host
            }

            fn host_mut(&mut self) -> &mut HostState {
                &mut self.store.data_mut().host
            }

            fn has(&self, callback: Callback) -> bool {
                matches!(self.callbacks.get(callback.index), Some(Some(_)))
            }

            fn call(&mut self, callback: Callback, params: &[u32]) -> Result<Option<u32>, String> {
                let Some(Some(func)) = self.callbacks.get(callback.index) else {
                    return Ok(None);
                };
                call_typed(&mut self.store, func, params).map(Some)
            }

            fn fuel_left(&self) -> Option<u64> {
                if self.fuel {
                    self.store.get_fuel().ok()
                } else {
                    None
                }
            }
        }
    };
}
pub(crate) use engine_glue;

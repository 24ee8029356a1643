//! wasmtime (cranelift): the engine of the published figures, fuel counts and the tests' budgets.
//! Glue only: wasmtime's `Linker`/`Store`/`Caller`/`TypedFunc` adapted to [`Guest`] and [`Instance`].

use super::{
    count_hostcall, typed_callbacks, Callback, Guest, Instance, Linked, ModuleInfo, Signature,
    Trap, ALLOCATORS, CALLBACKS,
};
use crate::abi::host_functions;
use crate::error::HostError;
use crate::state::HostState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Caller, Config, Engine, Func, InstancePre, Linker, Memory, Module, Store, TypedFunc,
};

/// What a VM's store holds: the engine-neutral state and the guest exports host functions need.
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

typed_callbacks!(Store<StoreData>, wasmtime::Error);

fn engine_err(e: wasmtime::Error) -> HostError {
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

/// Registers every host function of the table in `abi/` (one closure per import, generated).
macro_rules! link {
    ($($module:literal $name:literal ($($arg:ident: $t:ty),*) -> $r:ty = $f:path;)*) => {
        fn link(linker: &mut Linker<StoreData>) -> Result<(), HostError> {
            $(
                linker
                    .func_wrap(
                        $module,
                        $name,
                        |caller: Caller<'_, StoreData>, $($arg: $t),*| -> wasmtime::Result<$r> {
                            let mut guest = Calling(caller);
                            count_hostcall(&mut guest);
                            $f(&mut guest, $($arg),*).map_err(|Trap(m)| wasmtime::Error::msg(m))
                        },
                    )
                    .map_err(|e| HostError::Engine(e.to_string()))?;
            )*
            Ok(())
        }
    };
}
host_functions!(link);

struct WasmtimeLinked {
    engine: Engine,
    pre: InstancePre<StoreData>,
    fuel: bool,
}

pub(super) fn compile(
    wasm: &[u8],
    fuel: bool,
    check: &dyn Fn(&ModuleInfo) -> Result<(), HostError>,
) -> Result<(Arc<dyn Linked>, Duration), HostError> {
    let mut config = Config::new();
    config.consume_fuel(fuel);
    let engine = Engine::new(&config).map_err(engine_err)?;
    let compiling = Instant::now();
    let module = Module::new(&engine, wasm).map_err(engine_err)?;
    let compile = compiling.elapsed();
    check(&ModuleInfo {
        imports: module
            .imports()
            .map(|i| (i.module().to_string(), i.name().to_string()))
            .collect(),
        exports: module.exports().map(|e| e.name().to_string()).collect(),
    })?;
    let mut linker = Linker::new(&engine);
    link(&mut linker)?;
    let pre = linker.instantiate_pre(&module).map_err(engine_err)?;
    Ok((Arc::new(WasmtimeLinked { engine, pre, fuel }), compile))
}

impl Linked for WasmtimeLinked {
    fn instantiate(&self, state: HostState) -> Result<Box<dyn Instance>, HostError> {
        let mut store = Store::new(
            &self.engine,
            StoreData {
                host: state,
                guest: None,
            },
        );
        if self.fuel {
            store.set_fuel(u64::MAX).map_err(engine_err)?;
        }
        let instance = self.pre.instantiate(&mut store).map_err(engine_err)?;
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
        Ok(Box::new(WasmtimeInstance {
            store,
            callbacks,
            fuel: self.fuel,
        }))
    }
}

struct WasmtimeInstance {
    store: Store<StoreData>,
    /// By [`Callback::index`].
    callbacks: Vec<Option<Typed>>,
    fuel: bool,
}

impl Instance for WasmtimeInstance {
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

//! wasmi, an interpreter: builds in a fraction of wasmtime's time (no code generator), so the
//! README's demo and `serve` start within minutes on a fresh clone; slower to run, which neither
//! needs. Glue only: wasmi's `Linker`/`Store`/`Caller`/`TypedFunc` adapted to [`Guest`] and
//! [`Instance`] (the same shape as `wasmtime_engine.rs`: wasmi's API mirrors wasmtime's).

use super::{
    count_hostcall, engine_glue, Callback, Guest, Instance, Linked, ModuleInfo, Signature, Trap,
    ALLOCATORS, CALLBACKS,
};
use crate::abi::host_functions;
use crate::error::HostError;
use crate::state::HostState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmi::{Caller, Config, Engine, Func, Linker, Memory, Module, Store, TypedFunc};

engine_glue!(wasmi::Error, wasmi::Instance);

/// Registers every host function of the table in `abi/` (one closure per import, generated).
macro_rules! link {
    ($($module:literal $name:literal ($($arg:ident: $t:ty),*) -> $r:ty = $f:path;)*) => {
        fn link(linker: &mut Linker<StoreData>) -> Result<(), HostError> {
            $(
                linker
                    .func_wrap(
                        $module,
                        $name,
                        |caller: Caller<'_, StoreData>, $($arg: $t),*| -> Result<$r, wasmi::Error> {
                            let mut guest = Calling(caller);
                            count_hostcall(&mut guest, $name);
                            $f(&mut guest, $($arg),*).map_err(|Trap(m)| wasmi::Error::new(m))
                        },
                    )
                    .map_err(|e| HostError::Engine(e.to_string()))?;
            )*
            Ok(())
        }
    };
}
host_functions!(link);

struct WasmiLinked {
    engine: Engine,
    linker: Linker<StoreData>,
    module: Module,
    fuel: bool,
}

pub(super) fn compile(
    wasm: &[u8],
    fuel: bool,
    check: &dyn Fn(&ModuleInfo) -> Result<(), HostError>,
) -> Result<(Arc<dyn Linked>, Duration), HostError> {
    let mut config = Config::default();
    config.consume_fuel(fuel);
    let engine = Engine::new(&config);
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
    Ok((
        Arc::new(WasmiLinked {
            engine,
            linker,
            module,
            fuel,
        }),
        compile,
    ))
}

impl Linked for WasmiLinked {
    fn instantiate(&self, state: HostState) -> Result<Box<dyn Instance>, HostError> {
        let mut store = new_store(&self.engine, state, self.fuel)?;
        // Runs the module's start section if it has one, as wasmtime's `instantiate` does;
        // `_initialize`/`_start` are the driver's to call.
        let instance = self
            .linker
            .instantiate_and_start(&mut store, &self.module)
            .map_err(engine_err)?;
        bind(store, &instance, self.fuel)
    }
}

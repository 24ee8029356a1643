//! wasmtime (cranelift): the engine of the published figures, fuel counts and the tests' budgets.
//! Glue only: wasmtime's `Linker`/`Store`/`Caller`/`TypedFunc` adapted to [`Guest`] and [`Instance`].

use super::{
    count_hostcall, engine_glue, Callback, Guest, Instance, Linked, ModuleInfo, Signature, Trap,
    ALLOCATORS, CALLBACKS,
};
use crate::abi::host_functions;
use crate::error::HostError;
use crate::state::HostState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Caller, Config, Engine, Func, InstancePre, Linker, Memory, Module, Store, TypedFunc,
};

engine_glue!(wasmtime::Error, wasmtime::Instance);

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
                            count_hostcall(&mut guest, $name);
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
        let mut store = new_store(&self.engine, state, self.fuel)?;
        let instance = self.pre.instantiate(&mut store).map_err(engine_err)?;
        bind(store, &instance, self.fuel)
    }
}

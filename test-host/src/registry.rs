//! A linker that remembers what it provides, so a module's imports can be checked by name at load.

use crate::error::HostError;
use crate::state::HostState;
use std::collections::BTreeSet;
use wasmtime::{Engine, IntoFunc, Linker, Module};

pub(crate) struct Registry {
    pub(crate) linker: Linker<HostState>,
    provided: BTreeSet<(String, String)>,
}

impl Registry {
    pub(crate) fn new(engine: &Engine) -> Registry {
        Registry {
            linker: Linker::new(engine),
            provided: BTreeSet::new(),
        }
    }

    /// Defines a host function and records its name.
    pub(crate) fn func<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        func: impl IntoFunc<HostState, Params, Args>,
    ) -> Result<(), HostError> {
        self.linker
            .func_wrap(module, name, func)
            .map_err(|e| HostError::Engine(e.to_string()))?;
        self.provided.insert((module.to_string(), name.to_string()));
        Ok(())
    }

    /// Refuses a module that imports anything not provided, naming the first such import.
    pub(crate) fn check_imports(&self, module: &Module) -> Result<(), HostError> {
        for import in module.imports() {
            let key = (import.module().to_string(), import.name().to_string());
            if !self.provided.contains(&key) {
                return Err(HostError::UnknownImport {
                    module: key.0,
                    name: key.1,
                });
            }
        }
        Ok(())
    }

    /// Every provided import, as `module.name`.
    pub(crate) fn provided(&self) -> Vec<String> {
        self.provided
            .iter()
            .map(|(m, n)| format!("{m}.{n}"))
            .collect()
    }
}

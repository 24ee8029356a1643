//! Errors of the test host.

use std::fmt;

/// Why loading a module or driving a VM failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The module imports a function this host (like Envoy) does not provide.
    UnknownImport { module: String, name: String },
    /// The module does not export what a proxy-wasm module must (memory, allocator, ABI version).
    MissingExport(&'static str),
    /// An export has the wrong type, or the module does not declare a supported ABI version.
    BadModule(String),
    /// wasmtime refused to compile, link or instantiate the module.
    Engine(String),
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false.
    StartRejected {
        worker: usize,
        callback: &'static str,
    },
    /// The guest trapped; the VM is failed (Envoy) or will be recycled (Kong).
    Trap {
        worker: usize,
        callback: &'static str,
        message: String,
    },
    /// The worker's VM failed earlier and is not usable.
    VmFailed { worker: usize },
    /// No such worker.
    UnknownWorker(usize),
    /// The stream does not exist (never created, or already ended).
    UnknownStream { worker: usize, context_id: u32 },
    /// The call is not valid in the stream's current state.
    InvalidState(String),
    /// The configuration given to the host is unusable.
    Config(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::UnknownImport { module, name } => {
                write!(
                    f,
                    "module imports {module}.{name}, which this proxy-wasm host does not provide"
                )
            }
            HostError::MissingExport(name) => write!(f, "module does not export `{name}`"),
            HostError::BadModule(why) => write!(f, "not a usable proxy-wasm module: {why}"),
            HostError::Engine(why) => write!(f, "wasm engine error: {why}"),
            HostError::StartRejected { worker, callback } => {
                write!(
                    f,
                    "worker {worker}: {callback} returned false (plugin refused to start)"
                )
            }
            HostError::Trap {
                worker,
                callback,
                message,
            } => {
                write!(f, "worker {worker}: guest trapped in {callback}: {message}")
            }
            HostError::VmFailed { worker } => write!(f, "worker {worker}: the VM failed earlier"),
            HostError::UnknownWorker(w) => write!(f, "no worker {w}"),
            HostError::UnknownStream { worker, context_id } => {
                write!(f, "worker {worker}: no stream with context id {context_id}")
            }
            HostError::InvalidState(why) => write!(f, "invalid stream state: {why}"),
            HostError::Config(why) => write!(f, "host configuration: {why}"),
        }
    }
}

impl std::error::Error for HostError {}

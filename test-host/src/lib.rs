//! A proxy-wasm (ABI 0.2.1) host that behaves like Envoy or Kong, for revguard's tests, benchmarks and
//! demos, on two engines: wasmtime (feature `wasmtime`: the figures, the fuel and hostcall budgets)
//! and the wasmi interpreter (feature `wasmi`, default: builds in minutes, for the demo and `serve`).
//! The host functions and the VM driver exist once; [`Engine`] picks who runs the module.
//!
//! One [`Proxy`] compiles a module once and runs several worker VMs of it, each with its own root
//! context, tick timer and HTTP streams; shared data, queues, metrics and logs are proxy-wide. Time comes
//! from a [`Clock`] that is simulated (events fire deterministically as tests advance it) or real.
//! `proxy_http_call` goes to [`Upstream`]s: scripted in-process ones or a real HTTP/1.1 client on loopback.
//!
//! [`component::PolicyComponent`] runs the revguard policy component (the WIT world in `wit/`) on
//! wasmtime's component model (feature `wasmtime`).

mod abi;
mod clock;
#[cfg(feature = "wasmtime")]
pub mod component;
mod config;
mod engine;
mod error;
mod http;
mod maps;
mod memory;
mod metrics;
pub mod origin_service;
mod proxy;
mod shared;
mod state;
mod types;
mod upstream;
mod vm;
mod wasi;
mod wasm_build;

pub use clock::Clock;
pub use config::{KongOptions, NgxWasmModule, Profile, ProxyConfig};
pub use engine::Engine;
pub use error::HostError;
pub use http::{ClientResponse, ForwardedRequest, HttpRequest, HttpResponse, Outcome};
pub use maps::HeaderMap;
pub use metrics::MetricValue;
pub use proxy::{Compiled, Proxy, Startup, StreamId};
pub use state::{LocalReply, LogEntry, LogSource};
pub use types::{LogLevel, Status};
pub use upstream::{
    CalloutRequest, HttpUpstream, ScriptedUpstream, Upstream, UpstreamOutcome, UpstreamReply,
    UpstreamResponse,
};
pub use wasm_build::build_wasm;

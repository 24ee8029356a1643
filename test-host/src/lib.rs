//! A proxy-wasm (ABI 0.2.1) host on wasmtime that behaves like Envoy or Kong, for revguard's tests,
//! benchmarks and demos.
//!
//! One [`Proxy`] compiles a module once and runs several worker VMs of it, each with its own root
//! context, tick timer and HTTP streams; shared data, queues, metrics and logs are proxy-wide. Time comes
//! from a [`Clock`] that is simulated (events fire deterministically as tests advance it) or real.
//! `proxy_http_call` goes to [`Upstream`]s: scripted in-process ones or a real HTTP/1.1 client on loopback.
//!
//! [`component::PolicyComponent`] runs the revguard policy component (the WIT world in `wit/`).

mod abi;
mod clock;
pub mod component;
mod config;
mod error;
mod http;
mod maps;
mod memory;
mod metrics;
pub mod origin_service;
mod proxy;
mod registry;
mod shared;
mod state;
mod types;
mod upstream;
mod vm;
mod wasi;
mod wasm_build;

pub use clock::Clock;
pub use config::{KongOptions, NgxWasmModule, Profile, ProxyConfig};
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

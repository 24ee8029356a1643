//! revguard: token revocation enforcement at the point of use.
//!
//! The pure core (no host calls, no clock, no I/O: time is an argument, and decisions are
//! returned, never performed) plus one thin adapter per host ABI.

// Code that runs in a host must not trap: a panic fails the VM (Envoy: 503 for every request of
// that worker; Kong: 500 and a recycled instance). Unit tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

/// The proxy-wasm filter (Envoy, Istio, Kong): `cargo build --release --target wasm32-wasip1`.
/// Left out of test builds, whose wasm test binaries are WASI commands, not proxy-wasm modules
/// (`--no-default-features` for integration tests).
#[cfg(all(
    feature = "proxy-wasm",
    target_arch = "wasm32",
    target_os = "wasi",
    target_env = "p1",
    not(test)
))]
mod proxy_filter;

/// The component (wasmtime, Spin, wasmCloud): the WIT world in `wit/`, built with
/// `cargo build --release --lib --target wasm32-wasip2 --no-default-features --features component`.
#[cfg(all(target_os = "wasi", target_env = "p2", feature = "component"))]
mod component;
/// The edge-worker build (workerd, Deno): a wasm-bindgen JS API over the same core, built by
/// `examples/worker/build` (`--target wasm32-unknown-unknown --no-default-features --features edge`).
#[cfg(all(target_arch = "wasm32", target_os = "unknown", feature = "edge"))]
pub mod edge;

pub mod claims;
pub mod config;
pub mod coordination;
pub mod decision;
pub mod engine;
pub mod extract;
pub mod http;
pub mod introspection;
pub mod json;
pub mod jwks;
pub mod jwt;
pub mod metric_names;
pub mod node_id;
/// The origin service (`revguard origin serve`): native only, never in a wasm build.
#[cfg(all(not(target_arch = "wasm32"), feature = "origin"))]
pub mod origin;
pub mod path;
pub mod reason;
pub mod request;
pub mod routes;
pub mod snapshot;
pub mod token_cache;
pub mod wire;

pub use config::Policy;
pub use decision::Decision;
pub use engine::Engine;
pub use reason::Reason;
pub use request::RequestView;

//! A wasi:http handler that puts revguard's policy in front of a backend, served by
//! `wasmtime serve`. It links the revguard core crate directly (see README.md for why not a
//! composition with the policy component) and performs what the core decides: fetch key sets and
//! snapshots, ask the issuer for snapshot hits, forward allowed requests, answer denials.
//!
//! Configuration comes from the environment (`wasmtime serve --env`): `REVGUARD_CONFIG` (the
//! JSON configuration; `upstream` fields are `host:port` reached over plain HTTP) and
//! `REVGUARD_BACKEND` (`host:port` of the protected backend).

#[cfg(all(target_arch = "wasm32", target_os = "wasi", target_env = "p2"))]
mod handler;
#[cfg(all(target_arch = "wasm32", target_os = "wasi", target_env = "p2"))]
mod outbound;

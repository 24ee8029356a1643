//! `revguard-test-host`: run the real revguard `.wasm` in the proxy-wasm test host without Envoy.
//!
//! - `serve`: a local HTTP gateway on loopback, the filter in front of a backend.
//! - `bench`: the per-request cost of each decision path, in wall time and wasmtime fuel (needs the
//!   `wasmtime` feature).
//! - `demo`: an origin and an IdP on loopback, traffic, a revoked session, and the moment each
//!   worker starts denying it.
//!
//! `serve` and `demo` run on wasmi when it is built in (the default build: it compiles in minutes,
//! and neither needs wasmtime's speed), else on wasmtime; `--engine` picks one.

mod bench;
mod bench_fleet;
#[path = "../../../../tests/common/mod.rs"]
mod common;
mod demo;
mod gateway;
mod loopback;
mod wasm;

use clap::{Parser, Subcommand};
use revguard_test_host::Engine;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "revguard-test-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A local gateway: the filter in front of a backend, upstream names mapped to loopback URLs.
    Serve(gateway::Args),
    /// Per-request cost of each path (first-seen per algorithm, cached, exact-table revoked,
    /// snapshot hit with introspection), as a table and as JSON.
    Bench(bench::Args),
    /// The end-to-end story: issue tokens, revoke a session, watch every worker start denying.
    Demo(demo::Args),
}

/// The engine of `serve` and `demo` unless `--engine` says otherwise.
fn default_engine() -> Engine {
    if Engine::Wasmi.is_built() {
        Engine::Wasmi
    } else {
        Engine::Wasmtime
    }
}

/// `--engine wasmtime|wasmi`, refused (naming the cargo feature) if this build lacks it.
fn parse_engine(name: &str) -> Result<Engine, String> {
    Engine::from_name(name)
        .ok_or_else(|| format!("unknown engine `{name}` (wasmtime or wasmi)"))?
        .require()
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => gateway::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("revguard-test-host: {e}");
            ExitCode::FAILURE
        }
    }
}

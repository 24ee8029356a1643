//! `revguard-test-host`: run the real revguard `.wasm` in the wasmtime proxy-wasm host without Envoy.
//!
//! - `serve`: a local HTTP gateway on loopback, the filter in front of a backend.
//! - `bench`: the per-request cost of each decision path, in wall time and wasmtime fuel.
//! - `demo`: an origin and an IdP on loopback, traffic, a revoked session, and the moment each
//!   worker starts denying it.

mod bench;
#[path = "../../../../tests/common/mod.rs"]
mod common;
mod demo;
mod gateway;
mod loopback;
mod wasm;

use clap::{Parser, Subcommand};
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

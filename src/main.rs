//! `revguard`: the origin-side and operator command-line tool (native only).

// Errors are reported, not panicked: the same rules as the library.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[cfg(all(not(target_arch = "wasm32"), feature = "origin"))]
mod cli;

#[cfg(all(not(target_arch = "wasm32"), feature = "origin"))]
fn main() -> std::process::ExitCode {
    cli::run()
}

// The CLI needs the `origin` feature (its snapshot commands write through the origin's durable
// writer). Without it (`cargo build -p revguard --no-default-features`) the binary target stays,
// because the integration tests name it, but it only says why it cannot run.
#[cfg(all(not(target_arch = "wasm32"), not(feature = "origin")))]
fn main() -> std::process::ExitCode {
    eprintln!("revguard: built without the `origin` feature; build with default features: cargo build --bin revguard");
    std::process::ExitCode::FAILURE
}

#[cfg(target_arch = "wasm32")]
fn main() {}

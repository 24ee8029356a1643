//! Builds a cargo project for wasm32-wasip1 (release) and returns the `.wasm` bytes: the revguard
//! filter and the fixture filters, for tests and the command-line tool alike.

use std::path::Path;
use std::process::Command;

/// Runs `cargo build --release --target wasm32-wasip1 <extra> --manifest-path <manifest>` with
/// `target_dir` and returns `<target_dir>/wasm32-wasip1/release/<artifact>.wasm`.
pub fn build_wasm(
    manifest: &Path,
    extra: &[&str],
    target_dir: &Path,
    artifact: &str,
) -> Result<Vec<u8>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip1"])
        .args(extra)
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTFLAGS")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {artifact}.wasm failed ({status})"));
    }
    let file = target_dir
        .join("wasm32-wasip1/release")
        .join(format!("{artifact}.wasm"));
    std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
}

//! Builds a cargo project for a wasm target (release) and returns the `.wasm` bytes: the revguard
//! filter, its component build and the fixture filters, for tests and the command-line tool alike.

use std::path::Path;
use std::process::Command;

/// Runs `cargo build --release --target <target> <extra> --manifest-path <manifest>` with
/// `target_dir` and returns `<target_dir>/<target>/release/<artifact>.wasm`.
pub fn build_wasm(
    target: &str,
    manifest: &Path,
    extra: &[&str],
    target_dir: &Path,
    artifact: &str,
) -> Result<Vec<u8>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--target", target])
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
        .join(target)
        .join("release")
        .join(format!("{artifact}.wasm"));
    std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
}

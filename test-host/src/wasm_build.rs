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
    ensure_target(target)?;
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

/// Adds `target`'s standard library with rustup when it is missing. `rust-toolchain.toml` lists
/// the wasm targets, but rustup (1.28 on) installs them only along with the toolchain itself: on
/// a machine whose stable toolchain was already there, the README's demo command otherwise fails
/// with "can't find crate for `core`" after building the test host (seen on a fresh machine).
fn ensure_target(target: &str) -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(sysroot) = sysroot else {
        // No rustc on PATH to ask: let cargo report what is missing.
        return Ok(());
    };
    let std_dir = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .join("lib");
    if std_dir.is_dir() {
        return Ok(());
    }
    eprintln!("installing the {target} target (rustup target add {target}) ...");
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .map_err(|e| format!("the {target} target is missing and rustup cannot run ({e}): install it with `rustup target add {target}`"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`rustup target add {target}` failed ({status})"))
    }
}

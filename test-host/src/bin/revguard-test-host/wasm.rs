//! Where the tool gets its modules: a `.wasm` the user names, or a fresh release build of this
//! repository's filter (cargo makes that a no-op when nothing changed).

use std::path::{Path, PathBuf};

fn test_host_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The revguard filter: `explicit` if given, else built from this repository.
pub fn revguard(explicit: Option<&Path>) -> Result<Vec<u8>, String> {
    if let Some(path) = explicit {
        return std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    }
    let root = test_host_dir();
    eprintln!("building the revguard filter (cargo build --release --target wasm32-wasip1) ...");
    revguard_test_host::build_wasm(
        "wasm32-wasip1",
        &root.join("../Cargo.toml"),
        &["-p", "revguard", "--lib"],
        &root.join("target/revguard-wasm"),
        "revguard",
    )
}

/// A fixture filter from `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Result<Vec<u8>, String> {
    let root = test_host_dir();
    revguard_test_host::build_wasm(
        "wasm32-wasip1",
        &root.join("tests/fixtures").join(name).join("Cargo.toml"),
        &[],
        &root.join("target/fixtures"),
        &name.replace('-', "_"),
    )
}

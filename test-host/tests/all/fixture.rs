//! Builds the fixture crates for wasm32-wasip1 once per test run (cargo caches across runs).

use revguard_test_host::{Engine, Proxy, ProxyConfig, ScriptedUpstream, Upstream};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

static BUILT: Mutex<BTreeMap<String, Vec<u8>>> = Mutex::new(BTreeMap::new());

/// The compiled fixture `name` (a crate under tests/fixtures/).
pub fn wasm(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("tests/fixtures").join(name).join("Cargo.toml");
    build_wasm(
        &manifest,
        &[],
        &root.join("target/fixtures"),
        &name.replace('-', "_"),
    )
}

/// Builds `manifest` once per test run (cargo caches across runs) and returns `<artifact>.wasm`.
pub fn build_wasm(manifest: &Path, extra: &[&str], target_dir: &Path, artifact: &str) -> Vec<u8> {
    build_wasm_for("wasm32-wasip1", manifest, extra, target_dir, artifact)
}

/// [`build_wasm`] for another wasm target (wasm32-wasip2 links a component).
pub fn build_wasm_for(
    target: &str,
    manifest: &Path,
    extra: &[&str],
    target_dir: &Path,
    artifact: &str,
) -> Vec<u8> {
    let key = format!("{target}/{artifact}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bytes) = built.get(&key) {
        return bytes.clone();
    }
    let bytes = revguard_test_host::build_wasm(target, manifest, extra, target_dir, artifact)
        .unwrap_or_else(|e| panic!("{e}"));
    built.insert(key, bytes.clone());
    bytes
}

/// An Envoy proxy running the fixture filter with `plugin_config`, upstream `idp` = `upstream`.
pub fn envoy(plugin_config: &str, upstream: Arc<ScriptedUpstream>) -> Proxy {
    let mut config = ProxyConfig::envoy();
    config.plugin_configuration = plugin_config.as_bytes().to_vec();
    let config = config.upstream("idp", upstream as Arc<dyn Upstream>);
    Proxy::new(&wasm("fixture-filter"), config).expect("fixture loads")
}

pub fn body_text(outcome: &revguard_test_host::Outcome) -> String {
    match outcome.local_reply() {
        Some(r) => String::from_utf8_lossy(&r.body).into_owned(),
        None => format!("not a local reply: {outcome:?}"),
    }
}

/// Both engines, for the tests that must agree on each. The test build has both (wasmi is the
/// default feature, the crate's dev-dependency on itself turns wasmtime on): a test that names
/// both must never pass quietly on one.
pub fn both_engines() -> [Engine; 2] {
    for engine in Engine::ALL {
        assert!(
            engine.is_built(),
            "the test build lacks the {engine} engine"
        );
    }
    Engine::ALL
}

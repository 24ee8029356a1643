//! How a proxy is set up: which host it imitates, its plugin configuration, clock and upstreams.

use crate::clock::Clock;
use crate::engine::Engine;
use crate::types::LogLevel;
use crate::upstream::Upstream;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which proxy's behaviour to imitate where Envoy and Kong differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// `proxy_http_call` names a cluster; metrics are prefixed `wasmcustom.`; a trap gives 503 and the
    /// VM stays failed.
    Envoy,
    /// `proxy_http_call` names `host:port`; dispatch only from request headers/body, tick and call
    /// responses; tick period set once, from the root; shared data in an LRU `shm_kv` zone; metrics prefixed
    /// `pw.<filter>.`; a trap gives 500 and the VM is recycled.
    Kong(KongOptions),
}

/// Kong-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KongOptions {
    /// The filter name used in the metric prefix.
    pub filter_name: String,
    /// Size of the `shm_kv` zone in bytes (keys plus values); least recently used entries are evicted.
    pub shm_capacity_bytes: usize,
}

impl Profile {
    /// Prefix added to guest metric names.
    pub fn metric_prefix(&self) -> String {
        match self {
            Profile::Envoy => "wasmcustom.".to_string(),
            Profile::Kong(k) => format!("pw.{}.", k.filter_name),
        }
    }

    /// Status of the local reply sent when the guest traps during a request (and `fail_open` is off).
    pub fn trap_status(&self) -> u32 {
        match self {
            Profile::Envoy => 503,
            Profile::Kong(_) => 500,
        }
    }
}

/// Everything a proxy needs besides the module.
#[derive(Clone)]
pub struct ProxyConfig {
    pub profile: Profile,
    /// Number of worker VMs (Envoy: one per worker thread).
    pub workers: usize,
    pub vm_id: String,
    pub plugin_name: String,
    pub root_id: String,
    pub vm_configuration: Vec<u8>,
    pub plugin_configuration: Vec<u8>,
    /// Host log level: lower guest log lines are dropped, and `proxy_get_log_level` reports it.
    pub log_level: LogLevel,
    /// On a trap, let requests through instead of failing them.
    pub fail_open: bool,
    /// Count fuel (deterministic cost figures); slightly slower. Each engine meters its own
    /// instructions, so counts are comparable only on one engine (figures are wasmtime's).
    pub fuel: bool,
    /// The engine that runs the module: [`Engine::preferred`] (wasmtime when built in) unless set.
    pub engine: Engine,
    pub clock: Clock,
    /// By cluster name (Envoy) or `host:port` (Kong).
    pub upstreams: BTreeMap<String, Arc<dyn Upstream>>,
    /// Extra properties for `proxy_get_property`, by path segments.
    pub properties: BTreeMap<Vec<String>, Vec<u8>>,
    /// Seed of WASI `random_get` (deterministic per proxy).
    pub random_seed: u64,
}

impl ProxyConfig {
    /// One Envoy worker, a simulated clock at 2026-01-01T00:00:00Z, info logging, no upstreams.
    pub fn envoy() -> ProxyConfig {
        ProxyConfig {
            profile: Profile::Envoy,
            workers: 1,
            vm_id: "revguard".to_string(),
            plugin_name: "revguard".to_string(),
            root_id: "revguard".to_string(),
            vm_configuration: Vec::new(),
            plugin_configuration: Vec::new(),
            log_level: LogLevel::Info,
            fail_open: false,
            fuel: false,
            engine: Engine::preferred(),
            clock: Clock::simulated(1_767_225_600),
            upstreams: BTreeMap::new(),
            properties: BTreeMap::new(),
            random_seed: 0x5eed_1234_abcd_0001,
        }
    }

    /// Like [`ProxyConfig::envoy`] with the Kong profile (filter `revguard`, 1 MiB shm zone).
    pub fn kong() -> ProxyConfig {
        ProxyConfig {
            profile: Profile::Kong(KongOptions {
                filter_name: "revguard".to_string(),
                shm_capacity_bytes: 1 << 20,
            }),
            ..ProxyConfig::envoy()
        }
    }

    /// Adds an upstream under `name` (cluster name or `host:port`).
    pub fn upstream(mut self, name: &str, upstream: Arc<dyn Upstream>) -> ProxyConfig {
        self.upstreams.insert(name.to_string(), upstream);
        self
    }
}

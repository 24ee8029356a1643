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
    /// responses; tick period set once, from the root; shared data in an LRU `shm_kv` zone; metrics as
    /// the ngx_wasm_module generation has them ([`NgxWasmModule`]); a trap gives 500 and the VM is
    /// recycled.
    Kong(KongOptions),
}

/// The ngx_wasm_module generation a Kong release ships, where it changes what a filter sees
/// (Kong/ngx_wasm_module, src/common/proxy_wasm/ngx_proxy_wasm_host.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NgxWasmModule {
    /// Before prerelease-0.4.0 (Kong 3.4-3.7): the metric functions are `ngx_proxy_wasm_hfuncs_nop`,
    /// which returns `NGX_WAVM_NYI`: "host trap (function not yet implemented): <function>".
    NoMetrics,
    /// prerelease-0.4.0 and 0.5.0 (Kong 3.8): metrics stored as `pw.<filter>.<name>`.
    DottedMetrics,
    /// 0.6.0 on (Kong 3.9 and later): `pw:<filter>:<name>` (commit 630a5e7d, "switch metric name
    /// metadata separator to ':'"); Kong's Prometheus plugin replaces the colons with underscores.
    ColonMetrics,
}

/// Kong-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KongOptions {
    /// The filter name used in the metric prefix.
    pub filter_name: String,
    /// Size of the `shm_kv` zone in bytes (keys plus values); least recently used entries are evicted.
    pub shm_capacity_bytes: usize,
    pub module: NgxWasmModule,
    /// `max_metric_name_length` (default 256, src/ngx_wasmx.h): `proxy_define_metric` traps when
    /// `4 + filter name + name` exceeds it.
    pub max_metric_name_length: usize,
    /// How many metrics fit in the metrics slab (`slab_size`, default 5 MiB; the real limit is in
    /// bytes): one more traps with "no memory (increase \"slab_size\" directive)".
    pub max_metrics: usize,
}

impl Default for KongOptions {
    /// Filter `revguard`, a 1 MiB zone, the current module with its default limits.
    fn default() -> KongOptions {
        KongOptions {
            filter_name: "revguard".to_string(),
            shm_capacity_bytes: 1 << 20,
            module: NgxWasmModule::ColonMetrics,
            max_metric_name_length: 256,
            max_metrics: 4096,
        }
    }
}

/// Why the host refuses a metric definition by trapping (Kong), with the host's message.
pub(crate) type MetricTrap = String;

impl Profile {
    /// Prefix added to guest metric names.
    pub fn metric_prefix(&self) -> String {
        match self {
            Profile::Envoy => "wasmcustom.".to_string(),
            Profile::Kong(k) if k.module == NgxWasmModule::DottedMetrics => {
                format!("pw.{}.", k.filter_name)
            }
            Profile::Kong(k) => format!("pw:{}:", k.filter_name),
        }
    }

    /// The trap a metric hostcall (`function`) gets from a host without proxy-wasm metrics.
    pub(crate) fn metrics_unimplemented(&self, function: &str) -> Option<MetricTrap> {
        match self {
            Profile::Kong(k) if k.module == NgxWasmModule::NoMetrics => Some(format!(
                "host trap (function not yet implemented): {function}"
            )),
            _ => None,
        }
    }

    /// The trap `proxy_define_metric` gets for a new metric `name` when `defined` metrics
    /// exist already (ngx_wasm_module `ngx_proxy_wasm_hfuncs_define_metric`); Envoy has no limit.
    pub(crate) fn metric_refused(&self, name: &str, defined: usize) -> Option<MetricTrap> {
        let Profile::Kong(k) = self else {
            return None;
        };
        if 4usize
            .saturating_add(k.filter_name.len())
            .saturating_add(name.len())
            > k.max_metric_name_length
        {
            return Some(format!("could not define metric: name \"{name}\" too long"));
        }
        (defined >= k.max_metrics).then(|| {
            format!(
                "could not define metric \"{name}\": no memory (increase \"slab_size\" directive)"
            )
        })
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
    /// The largest shared-data value the host stores (`None`: no limit, as Envoy and
    /// proxy-wasm-cpp-host's `SharedData::set`); larger writes are refused with `BadArgument`, as
    /// some independent proxy-wasm hosts do over 64 KiB.
    pub shared_value_limit: Option<usize>,
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
            shared_value_limit: None,
        }
    }

    /// Like [`ProxyConfig::envoy`] with the Kong profile ([`KongOptions::default`]: filter
    /// `revguard`, 1 MiB shm zone, Kong 3.9's ngx_wasm_module).
    pub fn kong() -> ProxyConfig {
        ProxyConfig {
            profile: Profile::Kong(KongOptions::default()),
            ..ProxyConfig::envoy()
        }
    }

    /// Kong with the given ngx_wasm_module generation (e.g. Kong 3.4-3.7: no metrics).
    pub fn kong_with(module: NgxWasmModule) -> ProxyConfig {
        ProxyConfig {
            profile: Profile::Kong(KongOptions {
                module,
                ..KongOptions::default()
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

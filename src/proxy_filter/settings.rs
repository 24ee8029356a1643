//! The adapter's own settings: where this host keeps the data workers share, and whether
//! callouts ask the host for TLS. They come from the document's `host` section (Kong's
//! `shm_zone`, `tls` and `metrics`), which the core validates with the rest of the document but never
//! reads: its rules depend on the host kind only.

use super::metrics::Sink;
use crate::config::HostProfile;

#[derive(Default)]
pub struct Settings {
    /// Prefix of every shared-data key: `revguard/` on Envoy, `<shm_zone>/` on Kong.
    pub shared_prefix: String,
    /// Kong with `tls`: callouts carry `:scheme: https` (ngx_wasm_module opens TLS only then).
    pub callout_tls: bool,
    /// Envoy: the host's metrics. Kong: only with `metrics` (Kong 3.8 and later), else a log line.
    pub metrics: Sink,
    /// Streams may join another stream's introspection call: Envoy's
    /// `proxy_set_effective_context` lets the answer resume them; Kong's does nothing.
    pub join_callouts: bool,
}

impl Settings {
    pub fn from_host(host: &HostProfile) -> Settings {
        match host {
            HostProfile::Envoy => Settings {
                shared_prefix: "revguard/".to_string(),
                callout_tls: false,
                metrics: Sink::Host,
                join_callouts: true,
            },
            HostProfile::Kong(kong) => Settings {
                shared_prefix: format!("{}/", kong.shm_zone),
                callout_tls: kong.tls,
                metrics: if kong.metrics { Sink::Host } else { Sink::Log },
                join_callouts: false,
            },
        }
    }
}

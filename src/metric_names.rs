//! The names of the proxy-wasm filter's metrics, and the counter log that replaces them on a
//! host without proxy-wasm metrics. The adapter (`proxy_filter/metrics.rs`) only turns these
//! into hostcalls.
//!
//! Names are `revguard_` plus lower-case letters, digits and underscores, so they are valid
//! Prometheus names behind every host's prefix: Envoy stores `wasmcustom.<name>` and its
//! Prometheus output drops the `wasmcustom.` namespace (source/server/admin/prometheus_stats.cc);
//! Kong's ngx_wasm_module stores `pw.<filter>.<name>` (prerelease-0.4.0 and 0.5.0, Kong 3.8) or
//! `pw:<filter>:<name>` (0.6.0 on; src/common/proxy_wasm/ngx_proxy_wasm_host.c,
//! `ngx_proxy_wasm_hfuncs_define_metric`), and Kong 3.9's Prometheus plugin replaces only the
//! colons: a dot in our part would make the whole scrape invalid. The variable part of each
//! name comes last but one or last, so Envoy's `stats_tags` can turn it into a label
//! (examples/envoy/envoy.yaml).
//!
//! On Kong 3.4-3.7 (ngx_wasm_module before prerelease-0.4.0) `proxy_define_metric` is "host
//! trap (function not yet implemented)" (`ngx_proxy_wasm_hfuncs_nop` -> `NGX_WAVM_NYI`), which
//! fails the request: there the counters are kept in the VM and logged once a minute
//! ([`CounterLog`]), so every reason is still counted somewhere.

use std::collections::BTreeMap;

use crate::engine::{EngineStatus, FetchKind};
use crate::Reason;

pub const DECISION_ALLOW: &str = "revguard_decision_allow";
pub const DECISION_DENY: &str = "revguard_decision_deny";
pub const CACHE_VERIFIED_HIT: &str = "revguard_cache_verified_hit";
pub const CACHE_INTROSPECTION_HIT: &str = "revguard_cache_introspection_hit";
pub const INTROSPECTION_LATENCY_MS: &str = "revguard_introspection_latency_ms";
pub const SHARED_PUBLISH_FAILED: &str = "revguard_shared_publish_failed";
pub const SNAPSHOT_GENERATION: &str = "revguard_snapshot_generation";
pub const SNAPSHOT_AGE_SECONDS: &str = "revguard_snapshot_age_seconds";
pub const SNAPSHOT_STALE: &str = "revguard_snapshot_stale";
/// Signature steps run (first-seen tokens): with verdict sharing, about one per token per proxy.
pub const SIGNATURE_CHECKS: &str = "revguard_signature_checks";
/// Signature steps skipped because another worker VM had verified the token.
pub const SHARED_VERDICT_HIT: &str = "revguard_shared_verdict_hit";
/// Introspection calls saved by an answer another worker VM received.
pub const SHARED_ANSWER_HIT: &str = "revguard_shared_answer_hit";

/// Denials by reason code.
pub fn deny(reason: Reason) -> String {
    format!("revguard_deny_{}", reason.code())
}

/// Requests a failure mode let through, by the reason it would have denied.
pub fn fail_open(reason: Reason) -> String {
    format!("revguard_fail_open_{}", reason.code())
}

/// Introspection callouts: `call`, `joined`, `active`, `inactive`, `failed`.
pub fn introspection(outcome: &str) -> String {
    format!("revguard_introspection_{outcome}")
}

/// `keys.0` -> `keys_0`: the fetch kind's part of a name.
fn kind_part(kind: FetchKind) -> String {
    kind.label().replace('.', "_")
}

/// Fetches: `updated`, `not_modified`, `failed`, `skipped`.
pub fn fetch(kind: FetchKind, outcome: &str) -> String {
    format!("revguard_fetch_{}_{outcome}", kind_part(kind))
}

/// What a worker took from shared data.
pub fn shared(kind: FetchKind, loaded: bool) -> String {
    let outcome = if loaded { "loaded" } else { "not_loaded" };
    format!("revguard_shared_{}_{outcome}", kind_part(kind))
}

/// Age of issuer `index`'s fetched key set.
pub fn key_set_age(index: usize) -> String {
    format!("revguard_keys_{index}_age_seconds")
}

/// `(label, pattern)` for Kong's Prometheus export (`metrics.label_patterns` of the Kong filter
/// metadata, `config::schema::kong_filter_meta`), next to the names they cut up; the same
/// labels as the Envoy example's `stats_tags` (examples/envoy/envoy.yaml), so one set of alert
/// rules fits both.
pub const KONG_LABEL_PATTERNS: &[(&str, &str)] = &[
    ("decision", "revguard_decision(_(allow|deny))$"),
    ("reason", "revguard_(?:deny|fail_open)(_([a-z_]+))$"),
    (
        "introspection_outcome",
        "revguard_introspection(_(call|joined|active|inactive|failed))$",
    ),
    (
        "fetch_kind",
        "revguard_fetch(_(snapshot|delta|keys_[0-9]+))(?=_(?:updated|not_modified|failed|skipped)$)",
    ),
    (
        "fetch_outcome",
        "(?:(?<=_snapshot)|(?<=_delta)|(?<=_keys_[0-9])|(?<=_keys_[0-9][0-9]))(_(updated|not_modified|failed|skipped))$",
    ),
    (
        "shared_kind",
        "revguard_shared(_(snapshot|delta|keys_[0-9]+))(?=_(?:loaded|not_loaded)$)",
    ),
    (
        "shared_outcome",
        "(?:(?<=_snapshot)|(?<=_delta)|(?<=_keys_[0-9])|(?<=_keys_[0-9][0-9]))(_(loaded|not_loaded))$",
    ),
];

/// Counters kept in the VM where the host has no metrics, written as one log line at a time.
#[derive(Debug, Default)]
pub struct CounterLog {
    pending: BTreeMap<String, u64>,
}

impl CounterLog {
    pub fn add(&mut self, name: &str) {
        self.add_n(name, 1);
    }

    /// Adds `n` to counter `name`.
    pub fn add_n(&mut self, name: &str, n: u64) {
        let count = self.pending.entry(name.to_string()).or_insert(0);
        *count = count.saturating_add(n);
    }

    /// The counts since the last line, with the data in force, as one JSON line (`None` when
    /// nothing was counted); counting starts afresh.
    pub fn take_line(&mut self, status: &EngineStatus) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let counts = std::mem::take(&mut self.pending);
        let line = serde_json::json!({
            "event": "revguard.counters",
            "counts": counts,
            "snapshot_generation": status.snapshot_generation,
            "snapshot_age_seconds": status.snapshot_age_secs,
            "snapshot_stale": status.snapshot_stale,
        });
        Some(line.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus: `[a-zA-Z_:][a-zA-Z0-9_:]*`; ours are stricter (no colon: Kong's separator).
    fn valid(name: &str) -> bool {
        name.starts_with("revguard_")
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    fn every_name() -> Vec<String> {
        let mut names: Vec<String> = [
            DECISION_ALLOW,
            DECISION_DENY,
            CACHE_VERIFIED_HIT,
            CACHE_INTROSPECTION_HIT,
            INTROSPECTION_LATENCY_MS,
            SHARED_PUBLISH_FAILED,
            SNAPSHOT_GENERATION,
            SNAPSHOT_AGE_SECONDS,
            SNAPSHOT_STALE,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for reason in Reason::ALL {
            names.push(deny(*reason));
            names.push(fail_open(*reason));
        }
        for outcome in ["call", "joined", "active", "inactive", "failed"] {
            names.push(introspection(outcome));
        }
        for kind in [
            FetchKind::Keys(0),
            FetchKind::Keys(15),
            FetchKind::Snapshot,
            FetchKind::Delta,
        ] {
            for outcome in ["updated", "not_modified", "failed", "skipped"] {
                names.push(fetch(kind, outcome));
            }
            names.push(shared(kind, true));
            names.push(shared(kind, false));
        }
        names.push(key_set_age(15));
        names
    }

    #[test]
    fn every_name_is_a_valid_prometheus_name_behind_every_prefix() {
        for name in every_name() {
            assert!(valid(&name), "{name}");
            // Kong 3.9's export: `pw:<filter>:<name>` with the colons replaced.
            let kong = format!("pw:revguard:{name}").replace(':', "_");
            assert!(valid(kong.trim_start_matches("pw_revguard_")), "{kong}");
        }
    }

    #[test]
    fn the_longest_name_fits_kongs_default_limit_with_a_long_filter_name() {
        // ngx_wasm_module refuses `4 + filter name + name > max_metric_name_length` (default
        // 256, src/ngx_wasmx.h NGX_WA_METRICS_DEFAULT_MAX_NAME_LEN) with a trap.
        let longest = every_name().iter().map(String::len).max().unwrap();
        assert!(4 + 64 + longest <= 256, "{longest}");
    }

    #[test]
    fn fetch_and_shared_names_spell_the_kind_with_underscores() {
        assert_eq!(
            fetch(FetchKind::Keys(2), "updated"),
            "revguard_fetch_keys_2_updated"
        );
        assert_eq!(
            shared(FetchKind::Snapshot, false),
            "revguard_shared_snapshot_not_loaded"
        );
        assert_eq!(deny(Reason::Revoked), "revguard_deny_revoked");
    }

    #[test]
    fn the_counter_log_carries_each_count_once() {
        let mut log = CounterLog::default();
        let status = EngineStatus::default();
        assert_eq!(log.take_line(&status), None);
        log.add(DECISION_DENY);
        log.add(&deny(Reason::Revoked));
        log.add(&deny(Reason::Revoked));
        let line: serde_json::Value =
            serde_json::from_str(&log.take_line(&status).unwrap()).unwrap();
        assert_eq!(line["event"], "revguard.counters");
        assert_eq!(line["counts"]["revguard_deny_revoked"], 2);
        assert_eq!(line["counts"]["revguard_decision_deny"], 1);
        assert_eq!(log.take_line(&status), None);
    }
}

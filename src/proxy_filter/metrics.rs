//! Metrics, defined lazily by name. The host adds its prefix (Envoy `wasmcustom.`, Kong
//! `pw.<filter>.`); names are dotted so Envoy's stat tree groups them under `revguard.`.

use std::collections::HashMap;

use proxy_wasm::types::MetricType;

use super::host as hostcalls;
use crate::coordination::Synced;
use crate::engine::EngineStatus;

#[derive(Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
}

impl Metrics {
    fn id(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = hostcalls::define_metric(kind, name).ok()?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    /// Adds one to counter `name`.
    pub fn count(&mut self, name: &str) {
        if let Some(id) = self.id(MetricType::Counter, name) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn gauge(&mut self, name: &str, value: u64) {
        if let Some(id) = self.id(MetricType::Gauge, name) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    pub fn histogram(&mut self, name: &str, value: u64) {
        if let Some(id) = self.id(MetricType::Histogram, name) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    /// Snapshot generation and age, staleness, and key-set ages.
    pub fn state(&mut self, status: &EngineStatus) {
        if let Some(generation) = status.snapshot_generation {
            self.gauge("revguard.snapshot.generation", generation);
        }
        if let Some(age) = status.snapshot_age_secs {
            self.gauge("revguard.snapshot.age_seconds", age);
        }
        self.gauge("revguard.snapshot.stale", u64::from(status.snapshot_stale));
        for (i, age) in status.key_set_age_secs.iter().enumerate() {
            if let Some(age) = age {
                self.gauge(&format!("revguard.keys.{i}.age_seconds"), *age);
            }
        }
    }

    /// What a worker took from shared data: `revguard.shared.<kind>.loaded` / `.not_loaded`.
    pub fn synced(&mut self, synced: &[Synced]) {
        for s in synced {
            let outcome = if s.loaded { "loaded" } else { "not_loaded" };
            self.count(&format!("revguard.shared.{}.{outcome}", s.kind.label()));
        }
    }
}

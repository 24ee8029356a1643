//! The filter's metrics: one method per event; the names and the counter log are the core's
//! (`crate::metric_names`), this only turns them into hostcalls.

use std::collections::HashMap;

use proxy_wasm::types::MetricType;

use super::host as hostcalls;
use crate::coordination::Synced;
use crate::engine::{EngineStatus, FetchKind};
use crate::metric_names::{self as names, CounterLog};
use crate::Reason;

/// Where the counts go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sink {
    /// The host's metrics (Envoy; Kong with `host.kong.metrics`).
    #[default]
    Host,
    /// Counters kept in the VM and logged ([`Metrics::log_line`]); no gauges, no histogram.
    Log,
}

#[derive(Default)]
pub struct Metrics {
    sink: Sink,
    ids: HashMap<String, u32>,
    log: CounterLog,
}

impl Metrics {
    pub fn new(sink: Sink) -> Metrics {
        Metrics {
            sink,
            ..Metrics::default()
        }
    }

    pub fn sink(&self) -> Sink {
        self.sink
    }

    fn id(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = hostcalls::define_metric(kind, name).ok()?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    /// Adds one to counter `name`.
    fn count(&mut self, name: &str) {
        match self.sink {
            Sink::Host => {
                if let Some(id) = self.id(MetricType::Counter, name) {
                    let _ = hostcalls::increment_metric(id, 1);
                }
            }
            Sink::Log => self.log.add(name),
        }
    }

    fn record(&mut self, kind: MetricType, name: &str, value: u64) {
        if self.sink == Sink::Host {
            if let Some(id) = self.id(kind, name) {
                let _ = hostcalls::record_metric(id, value);
            }
        }
    }

    /// An allowed request; `fail_open`: the failure mode that let it through.
    pub fn allowed(&mut self, fail_open: Option<Reason>, cached: bool, introspection_hit: bool) {
        self.count(names::DECISION_ALLOW);
        if let Some(reason) = fail_open {
            self.count(&names::fail_open(reason));
        }
        if cached {
            self.count(names::CACHE_VERIFIED_HIT);
        }
        if introspection_hit {
            self.count(names::CACHE_INTROSPECTION_HIT);
        }
    }

    pub fn denied(&mut self, reason: Reason, introspection_hit: bool) {
        self.count(names::DECISION_DENY);
        self.count(&names::deny(reason));
        if introspection_hit {
            self.count(names::CACHE_INTROSPECTION_HIT);
        }
    }

    pub fn introspection(&mut self, outcome: &str) {
        self.count(&names::introspection(outcome));
    }

    pub fn introspection_latency(&mut self, ms: u64) {
        self.record(MetricType::Histogram, names::INTROSPECTION_LATENCY_MS, ms);
    }

    pub fn fetch(&mut self, kind: FetchKind, outcome: &str) {
        self.count(&names::fetch(kind, outcome));
    }

    pub fn synced(&mut self, synced: &[Synced]) {
        for s in synced {
            self.count(&names::shared(s.kind, s.loaded));
        }
    }

    /// Signature steps run, and verdicts and answers taken from other workers, by one decision.
    pub fn engine_work(&mut self, signature_checks: u64, verdict_hits: u64, answer_hits: u64) {
        for (name, n) in [
            (names::SIGNATURE_CHECKS, signature_checks),
            (names::SHARED_VERDICT_HIT, verdict_hits),
            (names::SHARED_ANSWER_HIT, answer_hits),
        ] {
            for _ in 0..n {
                self.count(name);
            }
        }
    }

    pub fn publish_failed(&mut self, writes: u32) {
        for _ in 0..writes {
            self.count(names::SHARED_PUBLISH_FAILED);
        }
    }

    /// Snapshot generation and age, staleness, and key-set ages.
    pub fn state(&mut self, status: &EngineStatus) {
        if self.sink != Sink::Host {
            return;
        }
        let gauge = MetricType::Gauge;
        if let Some(generation) = status.snapshot_generation {
            self.record(gauge, names::SNAPSHOT_GENERATION, generation);
        }
        if let Some(age) = status.snapshot_age_secs {
            self.record(gauge, names::SNAPSHOT_AGE_SECONDS, age);
        }
        let stale = u64::from(status.snapshot_stale);
        self.record(gauge, names::SNAPSHOT_STALE, stale);
        for (i, age) in status.key_set_age_secs.iter().enumerate() {
            if let Some(age) = age {
                self.record(gauge, &names::key_set_age(i), *age);
            }
        }
    }

    /// With [`Sink::Log`]: the counts since the last line, if any.
    pub fn log_line(&mut self, status: &EngineStatus) -> Option<String> {
        self.log.take_line(status)
    }
}

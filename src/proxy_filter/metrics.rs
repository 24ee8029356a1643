//! The filter's metrics: one method per event; the names and the counter log are the core's
//! (`crate::metric_names`), this only turns them into hostcalls.
//!
//! The per-request counters (decisions, reasons, cache hits) are added up in the VM and written
//! at the root context's next tick, one `proxy_increment_metric` per counter that moved: a
//! request makes no metric hostcall at all (issue 15), and a counter is at most one tick
//! (200 ms) late, well inside any host's stats flush (Envoy's `stats_flush_interval`: 5 s by
//! default) or scrape interval. The VM's `on_done` writes what is left. Where the host took no
//! tick period, nothing would write them later: they are written at once.

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

/// A per-request counter, named without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    Named(&'static str),
    Deny(Reason),
    FailOpen(Reason),
}

impl Counter {
    fn name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Counter::Named(name) => name.into(),
            Counter::Deny(reason) => names::deny(reason).into(),
            Counter::FailOpen(reason) => names::fail_open(reason).into(),
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    sink: Sink,
    ids: HashMap<String, u32>,
    log: CounterLog,
    /// Per-request counts not written yet (a handful of distinct counters per tick).
    pending: Vec<(Counter, u64)>,
    /// Written at the tick ([`Metrics::flush`]) rather than per request.
    batched: bool,
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

    /// Whether a tick writes the per-request counters ([`Metrics::flush`]); without one, each
    /// is written at once.
    pub fn set_batched(&mut self, batched: bool) {
        self.batched = batched;
        if !batched {
            self.flush();
        }
    }

    /// Writes the per-request counts added up since the last call: one hostcall per counter.
    pub fn flush(&mut self) {
        for (counter, n) in std::mem::take(&mut self.pending) {
            let name = counter.name();
            match self.sink {
                Sink::Host => {
                    if let Some(id) = self.id(MetricType::Counter, &name) {
                        let _ =
                            hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
                    }
                }
                Sink::Log => self.log.add_n(&name, n),
            }
        }
    }

    /// Adds one to a per-request counter.
    fn add(&mut self, counter: Counter) {
        match self.pending.iter_mut().find(|(c, _)| *c == counter) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => self.pending.push((counter, 1)),
        }
        if !self.batched {
            self.flush();
        }
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
        self.add(Counter::Named(names::DECISION_ALLOW));
        if let Some(reason) = fail_open {
            self.add(Counter::FailOpen(reason));
        }
        if cached {
            self.add(Counter::Named(names::CACHE_VERIFIED_HIT));
        }
        if introspection_hit {
            self.add(Counter::Named(names::CACHE_INTROSPECTION_HIT));
        }
    }

    pub fn denied(&mut self, reason: Reason, introspection_hit: bool) {
        self.add(Counter::Named(names::DECISION_DENY));
        self.add(Counter::Deny(reason));
        if introspection_hit {
            self.add(Counter::Named(names::CACHE_INTROSPECTION_HIT));
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
        self.flush();
        self.log.take_line(status)
    }
}

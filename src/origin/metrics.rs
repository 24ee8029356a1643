//! Prometheus metrics (`GET /metrics`, text format, no authentication).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::fleet::Counts;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    generation: Gauge,
    built_at: Gauge,
    nodes_seen: Gauge,
    nodes_live: Gauge,
    nodes_behind: Gauge,
    nodes_refused: Gauge,
    held_requests: Gauge,
    ingest_requests: Family<Labels, Counter>,
    feed_events: Family<Labels, Counter>,
    revocations_ingested: Counter,
    revocations_removed: Counter,
    publications: Family<Labels, Counter>,
    publish_errors: Family<Labels, Counter>,
    reached_fleet: Histogram,
    commit_to_publish: Histogram,
}

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_string(), value.to_string())]
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            generation: Gauge::default(),
            built_at: Gauge::default(),
            nodes_seen: Gauge::default(),
            nodes_live: Gauge::default(),
            nodes_behind: Gauge::default(),
            nodes_refused: Gauge::default(),
            held_requests: Gauge::default(),
            ingest_requests: Family::default(),
            feed_events: Family::default(),
            revocations_ingested: Counter::default(),
            revocations_removed: Counter::default(),
            publications: Family::default(),
            publish_errors: Family::default(),
            reached_fleet: Histogram::new([
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ]),
            commit_to_publish: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
            registry: Registry::default(),
        };
        registry.register(
            "revguard_origin_generation",
            "Current published generation",
            m.generation.clone(),
        );
        registry.register(
            "revguard_origin_built_at_seconds",
            "Build time (Unix seconds) of the current generation",
            m.built_at.clone(),
        );
        registry.register(
            "revguard_origin_fleet_nodes_seen",
            "Nodes recorded in the fleet view",
            m.nodes_seen.clone(),
        );
        registry.register(
            "revguard_origin_fleet_nodes_live",
            "Nodes seen within the live window",
            m.nodes_live.clone(),
        );
        registry.register(
            "revguard_origin_fleet_nodes_behind",
            "Live nodes holding an older generation than the current one",
            m.nodes_behind.clone(),
        );
        registry.register(
            "revguard_origin_fleet_nodes_refused",
            "Nodes not recorded because the node table was full",
            m.nodes_refused.clone(),
        );
        registry.register(
            "revguard_origin_held_requests",
            "Snapshot and delta requests held now (Prefer: wait)",
            m.held_requests.clone(),
        );
        registry.register(
            "revguard_origin_ingest_requests",
            "Revocation API requests by outcome (ok, replayed, or the error code)",
            m.ingest_requests.clone(),
        );
        registry.register(
            "revguard_origin_feed_events",
            "Identity-provider events by feed (backchannel_logout, ssf) and outcome (ok or the error code)",
            m.feed_events.clone(),
        );
        registry.register(
            "revguard_origin_revocations_ingested",
            "Revocations committed",
            m.revocations_ingested.clone(),
        );
        registry.register(
            "revguard_origin_revocations_removed",
            "Revocations removed (un-revoked)",
            m.revocations_removed.clone(),
        );
        registry.register(
            "revguard_origin_publications",
            "Generations published, by kind (snapshot, delta)",
            m.publications.clone(),
        );
        registry.register(
            "revguard_origin_publish_errors",
            "Publications that failed or were held, by error code",
            m.publish_errors.clone(),
        );
        registry.register(
            "revguard_origin_generation_reached_fleet_seconds",
            "Time from publishing a generation until every live node held it",
            m.reached_fleet.clone(),
        );
        registry.register(
            "revguard_origin_commit_to_publish_seconds",
            "Time from the first unpublished commit until its generation was published",
            m.commit_to_publish.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn ingest(&self, outcome: &str) {
        self.ingest_requests
            .get_or_create(&label("outcome", outcome))
            .inc();
    }

    /// An identity-provider event: `feed` and `outcome` are from small fixed sets.
    pub fn feed_event(&self, feed: &str, outcome: &str) {
        self.feed_events
            .get_or_create(&vec![
                ("feed".to_string(), feed.to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .inc();
    }

    pub fn ingested(&self, n: usize) {
        self.revocations_ingested.inc_by(n as u64);
    }

    pub fn removed(&self) {
        self.revocations_removed.inc();
    }

    pub fn published(&self, kind: &str, generation: u64, built_at: u64) {
        self.publications.get_or_create(&label("kind", kind)).inc();
        self.current(generation, built_at);
    }

    /// Sets the current generation and build time gauges.
    pub fn current(&self, generation: u64, built_at: u64) {
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.built_at
            .set(i64::try_from(built_at).unwrap_or(i64::MAX));
    }

    /// Counts a held request until the returned guard is dropped (answered or abandoned).
    pub fn hold(&self) -> HeldGuard {
        self.held_requests.inc();
        HeldGuard(self.held_requests.clone())
    }

    pub fn publish_error(&self, code: &str) {
        self.publish_errors
            .get_or_create(&label("error", code))
            .inc();
    }

    pub fn reached_fleet(&self, seconds: f64) {
        self.reached_fleet.observe(seconds);
    }

    pub fn commit_to_publish(&self, seconds: f64) {
        self.commit_to_publish.observe(seconds);
    }

    /// The text exposition, with the fleet gauges set from `counts`.
    pub fn render(&self, counts: &Counts) -> String {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.nodes_seen.set(g(counts.seen));
        self.nodes_live.set(g(counts.live));
        self.nodes_behind.set(g(counts.behind));
        self.nodes_refused.set(g(counts.refused));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Decrements the held-requests gauge when dropped.
pub struct HeldGuard(Gauge);

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

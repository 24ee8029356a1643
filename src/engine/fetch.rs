//! When to fetch key sets, snapshots and deltas, and what to do with the answers. Pure: the
//! adapter asks what is due at `now`, sends the requests, and reports each outcome.

use std::rc::Rc;

use serde::Serialize;

use super::{Engine, LoadError};
use crate::config::Policy;
use crate::http::{HttpOutcome, HttpRequest};
use crate::node_id::{GENERATION_HEADER, NODE_HEADER};
use crate::snapshot::SnapshotError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchKind {
    /// The key set of issuer #n.
    Keys(usize),
    Snapshot,
    Delta,
}

impl FetchKind {
    /// The one name of a fetch kind in metric names, logs and shared-data keys: `keys.<n>`,
    /// `snapshot`, `delta`.
    pub fn label(self) -> String {
        match self {
            FetchKind::Keys(i) => format!("keys.{i}"),
            FetchKind::Snapshot => "snapshot".to_string(),
            FetchKind::Delta => "delta".to_string(),
        }
    }

    /// The kind named by [`FetchKind::label`]; `None` for anything else (only the exact label
    /// spelling is accepted: no `keys.01`, no `keys.+1`).
    pub fn from_label(label: &str) -> Option<FetchKind> {
        let kind = match label {
            "snapshot" => FetchKind::Snapshot,
            "delta" => FetchKind::Delta,
            _ => FetchKind::Keys(label.strip_prefix("keys.")?.parse().ok()?),
        };
        (kind.label() == label).then_some(kind)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FetchRequest {
    pub kind: FetchKind,
    pub request: HttpRequest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchResult {
    /// New data is in force (a generation for revocation data, a key count for key sets).
    Updated(u64),
    /// 304, an equal generation, or no delta published (404).
    NotModified,
}

/// Retries after a failure back off 1, 2, 4... seconds, capped at the refresh interval.
const MAX_BACKOFF_EXPONENT: u32 = 16;
/// An adapter that never reports an outcome must not block fetching forever.
const IN_FLIGHT_GRACE_SECS: u64 = 5;

#[derive(Debug, Default)]
struct Slot {
    next_due: u64,
    last_started: Option<u64>,
    in_flight_since: Option<u64>,
    etag: Option<String>,
    failures: u32,
}

#[derive(Debug)]
pub(super) struct Schedule {
    keys: Vec<Slot>,
    snapshot: Slot,
    delta: Slot,
}

impl Schedule {
    pub(super) fn new(policy: &Policy) -> Schedule {
        Schedule {
            keys: policy.issuers.iter().map(|_| Slot::default()).collect(),
            snapshot: Slot::default(),
            delta: Slot::default(),
        }
    }

    fn slot(&mut self, kind: FetchKind) -> Option<&mut Slot> {
        match kind {
            FetchKind::Keys(i) => self.keys.get_mut(i),
            FetchKind::Snapshot => Some(&mut self.snapshot),
            FetchKind::Delta => Some(&mut self.delta),
        }
    }
}

impl Engine {
    /// The fetches due at `now`, marked in flight. Call on every tick; send each request and
    /// report it with [`Engine::fetch_completed`].
    pub fn due_fetches(&mut self, now: u64) -> Vec<FetchRequest> {
        let mut due = Vec::new();
        let policy = Rc::clone(&self.policy);
        for (i, issuer) in policy.issuers.iter().enumerate() {
            let Some(fetch) = &issuer.key_fetch else {
                continue;
            };
            let unknown_kid = self.issuers.get(i).is_some_and(|s| s.unknown_kid_seen);
            let cooldown = fetch.unknown_kid_cooldown_secs;
            if let Some(slot) = self.fetches.keys.get_mut(i) {
                // An unknown kid pulls the next fetch forward, to at most one per cooldown.
                let due_at = match (unknown_kid, slot.last_started) {
                    (true, Some(last)) => slot.next_due.min(last.saturating_add(cooldown)),
                    (true, None) => 0,
                    (false, _) => slot.next_due,
                };
                if is_due(slot, due_at, now) {
                    let request = conditional(fetch.endpoint.get(), slot);
                    slot.in_flight_since = Some(now);
                    slot.last_started = Some(now);
                    due.push(FetchRequest {
                        kind: FetchKind::Keys(i),
                        request,
                    });
                }
            }
        }
        if let Some(r) = &policy.revocation {
            let generation = self.revocation.as_ref().map_or(0, |s| s.generation());
            let node_id = self.node_id.as_deref();
            let slot = &mut self.fetches.snapshot;
            if is_due(slot, slot.next_due, now) {
                let request = identified(conditional(r.snapshot.get(), slot), node_id, generation);
                slot.in_flight_since = Some(now);
                slot.last_started = Some(now);
                due.push(FetchRequest {
                    kind: FetchKind::Snapshot,
                    request,
                });
            }
            let have_snapshot = self.revocation.is_some();
            let slot = &mut self.fetches.delta;
            if let (Some(delta), true) = (&r.delta, have_snapshot) {
                if is_due(slot, slot.next_due, now) {
                    let request = identified(conditional(delta.get(), slot), node_id, generation);
                    slot.in_flight_since = Some(now);
                    slot.last_started = Some(now);
                    due.push(FetchRequest {
                        kind: FetchKind::Delta,
                        request,
                    });
                }
            }
        }
        due
    }

    /// Reports the outcome of a fetch from [`Engine::due_fetches`]. On any error the engine
    /// keeps its last good data and retries with backoff.
    pub fn fetch_completed(
        &mut self,
        kind: FetchKind,
        outcome: HttpOutcome,
        now: u64,
    ) -> Result<FetchResult, FetchError> {
        let result = self.apply_fetch(kind, outcome, now);
        let interval = self.refresh_interval(kind);
        if let Some(slot) = self.fetches.slot(kind) {
            slot.in_flight_since = None;
            match &result {
                Ok(_) => {
                    slot.failures = 0;
                    slot.next_due = now.saturating_add(interval);
                    if let HttpOutcome::Response {
                        status: 200, etag, ..
                    } = outcome
                    {
                        slot.etag = etag.filter(|e| e.len() <= 256).map(str::to_string);
                    }
                }
                Err(_) => {
                    slot.failures = slot.failures.saturating_add(1);
                    let backoff = 1u64 << slot.failures.min(MAX_BACKOFF_EXPONENT);
                    slot.next_due = now.saturating_add(backoff.min(interval));
                }
            }
        }
        result
    }

    fn apply_fetch(
        &mut self,
        kind: FetchKind,
        outcome: HttpOutcome,
        now: u64,
    ) -> Result<FetchResult, FetchError> {
        let (status, body) = match outcome {
            HttpOutcome::Failed => return Err(FetchError::Unreachable),
            HttpOutcome::Response { status, body, .. } => (status, body),
        };
        match (status, kind) {
            (304, _) | (404, FetchKind::Delta) => return Ok(FetchResult::NotModified),
            (200, _) => {}
            (other, _) => return Err(FetchError::Status(other)),
        }
        if let Some(limit) = self.body_limit(kind) {
            if body.len() > limit {
                return Err(FetchError::TooLarge(body.len()));
            }
        }
        let before = self.snapshot_generation();
        let loaded = match kind {
            FetchKind::Keys(i) => self.load_keys(i, body, now).map(|n| n as u64),
            FetchKind::Snapshot => self.load_snapshot(body),
            FetchKind::Delta => self.load_delta(body),
        };
        match loaded {
            Ok(n) if !matches!(kind, FetchKind::Keys(_)) && before == Some(n) => {
                Ok(FetchResult::NotModified)
            }
            Ok(n) => Ok(FetchResult::Updated(n)),
            // The same generation again (say, a CDN that changed its ETag): nothing new, not an error.
            Err(LoadError::Snapshot(SnapshotError::Rollback { current, offered }))
                if current == offered =>
            {
                Ok(FetchResult::NotModified)
            }
            Err(e) => Err(FetchError::Rejected(e)),
        }
    }

    /// Defers the fetch of `kind` to `until` without it having happened here: another worker
    /// holds the lease and publishes what it fetches, or a body it fetched was loaded from
    /// shared data. Ends the in-flight mark [`Engine::due_fetches`] set, if any; the retry
    /// backoff and the ETag stay as they are (nothing succeeded or failed). The fetch falls
    /// due again at `until` (or earlier for a key set whose issuer saw an unknown `kid`).
    pub fn defer_fetch(&mut self, kind: FetchKind, until: u64) {
        if let Some(slot) = self.fetches.slot(kind) {
            slot.in_flight_since = None;
            slot.next_due = until;
        }
    }

    /// How often `kind` is fetched, in seconds.
    pub fn refresh_interval(&self, kind: FetchKind) -> u64 {
        let policy = &self.policy;
        match kind {
            FetchKind::Keys(i) => policy
                .issuers
                .get(i)
                .and_then(|c| c.key_fetch.as_ref())
                .map_or(300, |f| f.refresh_interval_secs),
            FetchKind::Snapshot | FetchKind::Delta => policy
                .revocation
                .as_ref()
                .map_or(60, |r| r.refresh_interval_secs),
        }
    }

    fn body_limit(&self, kind: FetchKind) -> Option<usize> {
        match kind {
            FetchKind::Keys(_) => Some(crate::jwks::MAX_JWKS_BYTES),
            FetchKind::Snapshot | FetchKind::Delta => self
                .policy
                .revocation
                .as_ref()
                .map(|r| r.max_snapshot_bytes),
        }
    }
}

fn is_due(slot: &Slot, due_at: u64, now: u64) -> bool {
    let stuck = slot
        .in_flight_since
        .is_some_and(|since| now >= since.saturating_add(IN_FLIGHT_GRACE_SECS));
    (slot.in_flight_since.is_none() || stuck) && now >= due_at
}

/// Names the node and the generation it holds, for the origin's fleet view.
fn identified(mut request: HttpRequest, node_id: Option<&str>, generation: u64) -> HttpRequest {
    if let Some(id) = node_id {
        request.headers.push((NODE_HEADER.into(), id.into()));
    }
    request
        .headers
        .push((GENERATION_HEADER.into(), generation.to_string()));
    request
}

fn conditional(mut request: HttpRequest, slot: &Slot) -> HttpRequest {
    if let Some(etag) = &slot.etag {
        request.headers.push(("if-none-match".into(), etag.clone()));
    }
    request
}

/// Why a fetch did not update anything.
#[non_exhaustive]
#[derive(Debug)]
pub enum FetchError {
    Unreachable,
    Status(u16),
    TooLarge(usize),
    Rejected(LoadError),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Unreachable => write!(f, "upstream unreachable (timeout or reset)"),
            FetchError::Status(s) => write!(f, "upstream answered status {s}"),
            FetchError::TooLarge(n) => write!(f, "body of {n} bytes is over the limit"),
            FetchError::Rejected(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FetchError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SigningKey;

    const T: u64 = 1_000_000;

    /// Keys refreshed every 300 s, the snapshot every 10 s.
    fn engine() -> Engine {
        let origin = SigningKey::from_seed([7; 32]).unwrap().public_key_text();
        let config = serde_json::json!({
            "issuers": [{"issuer": "https://idp", "audiences": ["api"], "algorithms": ["ES256"],
                         "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
            "revocation": {"upstream": "origin", "path": "/current.snap",
                           "refresh_interval_secs": 10, "public_keys": [origin]}
        });
        Engine::from_config_json(&serde_json::to_vec(&config).unwrap()).unwrap()
    }

    fn due(engine: &mut Engine, now: u64) -> Vec<FetchKind> {
        engine.due_fetches(now).iter().map(|f| f.kind).collect()
    }

    #[test]
    fn a_deferred_fetch_falls_due_exactly_at_until() {
        let mut engine = engine();
        assert_eq!(
            due(&mut engine, T),
            vec![FetchKind::Keys(0), FetchKind::Snapshot]
        );
        engine.defer_fetch(FetchKind::Snapshot, T + 10);
        engine.defer_fetch(FetchKind::Keys(0), T + 300);
        // The in-flight mark is gone: nothing waits for a grace period, nothing is due early.
        assert!(due(&mut engine, T + 9).is_empty());
        assert_eq!(due(&mut engine, T + 10), vec![FetchKind::Snapshot]);
        engine.defer_fetch(FetchKind::Snapshot, T + 1000);
        assert!(due(&mut engine, T + 299).is_empty());
        assert_eq!(due(&mut engine, T + 300), vec![FetchKind::Keys(0)]);
    }

    #[test]
    fn a_deferral_ends_the_in_flight_mark_even_when_due_at_once() {
        let mut engine = engine();
        assert!(due(&mut engine, T).contains(&FetchKind::Snapshot));
        // Without an outcome the slot stays in flight for the grace period...
        assert!(!due(&mut engine, T + 1).contains(&FetchKind::Snapshot));
        engine.defer_fetch(FetchKind::Snapshot, T + 2);
        // ...a deferral ends it: due again at `until`, not at the end of the grace period.
        assert_eq!(due(&mut engine, T + 2), vec![FetchKind::Snapshot]);
    }

    #[test]
    fn a_deferral_does_not_raise_the_retry_backoff() {
        let mut engine = engine();
        due(&mut engine, T);
        // One real failure: retried after 2 s.
        assert!(engine
            .fetch_completed(FetchKind::Snapshot, HttpOutcome::Failed, T)
            .is_err());
        assert!(!due(&mut engine, T + 1).contains(&FetchKind::Snapshot));
        assert!(due(&mut engine, T + 2).contains(&FetchKind::Snapshot));
        // Skipped (another worker holds the lease): no failure counted.
        engine.defer_fetch(FetchKind::Snapshot, T + 3);
        assert!(due(&mut engine, T + 3).contains(&FetchKind::Snapshot));
        // The second real failure backs off 4 s (a third would be 8 s).
        assert!(engine
            .fetch_completed(FetchKind::Snapshot, HttpOutcome::Failed, T + 3)
            .is_err());
        assert!(!due(&mut engine, T + 6).contains(&FetchKind::Snapshot));
        assert!(due(&mut engine, T + 7).contains(&FetchKind::Snapshot));
    }

    #[test]
    fn a_deferral_keeps_the_etag_for_the_next_conditional_request() {
        let mut engine = engine();
        due(&mut engine, T);
        let outcome = HttpOutcome::Response {
            status: 200,
            etag: Some("\"v1\""),
            body: b"not a snapshot",
        };
        // Rejected body: no ETag kept. A 304 keeps none either; use the slot directly.
        let _ = engine.fetch_completed(FetchKind::Snapshot, outcome, T);
        engine.fetches.snapshot.etag = Some("\"v1\"".into());
        engine.defer_fetch(FetchKind::Snapshot, T + 5);
        let next = engine.due_fetches(T + 5);
        let snapshot = next.iter().find(|f| f.kind == FetchKind::Snapshot);
        assert_eq!(
            snapshot.and_then(|f| f.request.header("if-none-match")),
            Some("\"v1\"")
        );
    }

    #[test]
    fn revocation_fetches_name_the_node_and_the_generation_it_holds() {
        let mut engine = engine();
        engine.set_default_node_id("pod-7");
        let fetches = engine.due_fetches(T);
        let header = |kind, name| {
            fetches
                .iter()
                .find(|f| f.kind == kind)
                .and_then(|f| f.request.header(name).map(str::to_string))
        };
        assert_eq!(
            header(FetchKind::Snapshot, NODE_HEADER).as_deref(),
            Some("pod-7")
        );
        assert_eq!(
            header(FetchKind::Snapshot, GENERATION_HEADER).as_deref(),
            Some("0")
        );
        // The IdP is not the origin: key fetches say nothing about the node.
        assert_eq!(header(FetchKind::Keys(0), NODE_HEADER), None);

        let key = SigningKey::from_seed([7; 32]).unwrap();
        let opts = crate::snapshot::BuildOptions {
            generation: 42,
            built_at: T,
            max_age_secs: 600,
            fp_rate: 0.01,
            salt: [1; 32],
        };
        let bytes = crate::snapshot::build_snapshot(&[], &opts, &key).unwrap();
        engine.load_snapshot(&bytes).unwrap();
        engine.defer_fetch(FetchKind::Snapshot, T + 1);
        let next = engine.due_fetches(T + 1);
        let snapshot = next.iter().find(|f| f.kind == FetchKind::Snapshot);
        assert_eq!(
            snapshot.and_then(|f| f.request.header(GENERATION_HEADER)),
            Some("42")
        );
    }

    #[test]
    fn a_configured_node_id_wins_and_a_bad_default_is_ignored() {
        let origin = SigningKey::from_seed([7; 32]).unwrap().public_key_text();
        let config = |node_id: serde_json::Value| {
            let mut revocation = serde_json::json!({"upstream": "origin", "path": "/s",
                                                    "public_keys": [origin]});
            if !node_id.is_null() {
                revocation["node_id"] = node_id;
            }
            serde_json::to_vec(&serde_json::json!({
                "issuers": [{"issuer": "https://idp", "audiences": ["api"],
                             "algorithms": ["ES256"],
                             "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
                "revocation": revocation,
            }))
            .unwrap()
        };
        let mut named = Engine::from_config_json(&config("edge-1".into())).unwrap();
        named.set_default_node_id("random-1");
        assert_eq!(named.node_id(), Some("edge-1"));
        let mut unnamed = Engine::from_config_json(&config(serde_json::Value::Null)).unwrap();
        unnamed.set_default_node_id("bad id");
        assert_eq!(unnamed.node_id(), None);
        let Err(errors) = Engine::from_config_json(&config("a\nb".into())) else {
            panic!("a node id with a line break is refused")
        };
        assert!(
            errors.to_string().contains("revocation.node_id"),
            "{errors}"
        );
    }

    #[test]
    fn labels_are_dotted() {
        assert_eq!(FetchKind::Keys(3).label(), "keys.3");
        assert_eq!(FetchKind::Snapshot.label(), "snapshot");
        assert_eq!(FetchKind::Delta.label(), "delta");
        for kind in [
            FetchKind::Keys(0),
            FetchKind::Keys(12),
            FetchKind::Snapshot,
            FetchKind::Delta,
        ] {
            assert_eq!(FetchKind::from_label(&kind.label()), Some(kind));
        }
        for bad in [
            "keys:0", "keys.", "keys.01", "keys.+1", "keys.-1", "Snapshot", "", "keys.x",
        ] {
            assert_eq!(FetchKind::from_label(bad), None, "{bad}");
        }
    }
}

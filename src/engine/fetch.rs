//! When to fetch key sets, snapshots and deltas, and what to do with the answers. Pure: the
//! adapter asks what is due at `now`, sends the requests, and reports each outcome.

use std::rc::Rc;

use serde::Serialize;

use super::{Engine, LoadError};
use crate::config::{Policy, RevocationPolicy};
use crate::http::{HttpOutcome, HttpRequest, OriginHints};
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
/// An adapter that never reports an outcome must not block fetching forever: a fetch counts
/// as lost this long after its call timeout.
const IN_FLIGHT_GRACE_SECS: u64 = 5;

#[derive(Debug, Default)]
struct Slot {
    next_due: u64,
    last_started: Option<u64>,
    in_flight_since: Option<u64>,
    /// Seconds after `in_flight_since` when the fetch counts as lost (its timeout plus grace).
    in_flight_limit: u64,
    etag: Option<String>,
    failures: u32,
    /// The origin held the last request (`Preference-Applied`): the next one follows the
    /// answer at once. `false`: plain polling at the refresh interval (each poll still asks
    /// to be held, so an origin that starts holding is noticed within one interval).
    held: bool,
    /// The last answer was not held but brought a new validator, and the fetch was asked again
    /// at once (see [`Engine::fetch_completed`]).
    asked_again: bool,
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
                    start(slot, &request, now);
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
            let held_kind = held_kind(r);
            // The origin holds only a conditional request (it waits for data other than what
            // the client has): an unconditional one is neither held nor given the longer
            // timeout, so a request that waits for it (no data yet) waits `timeout_ms` at most.
            let hold = |kind: FetchKind, request: HttpRequest| match held_kind {
                Some((held, secs)) if held == kind && request.header("if-none-match").is_some() => {
                    held_request(request, secs)
                }
                _ => request,
            };
            let slot = &mut self.fetches.snapshot;
            if is_due(slot, slot.next_due, now) {
                let request = identified(conditional(r.snapshot.get(), slot), node_id, generation);
                let request = hold(FetchKind::Snapshot, request);
                start(slot, &request, now);
                due.push(FetchRequest {
                    kind: FetchKind::Snapshot,
                    request,
                });
            }
            // A delta applies to the snapshot it was built on: while a snapshot fetch is in
            // flight the delta waits for it (the snapshot's answer makes the delta due).
            let snapshot_pending = self.fetches.snapshot.in_flight_since.is_some();
            let have_snapshot = self.revocation.is_some();
            let slot = &mut self.fetches.delta;
            if let (Some(delta), true, false) = (&r.delta, have_snapshot, snapshot_pending) {
                if is_due(slot, slot.next_due, now) {
                    let request = identified(conditional(delta.get(), slot), node_id, generation);
                    let request = hold(FetchKind::Delta, request);
                    start(slot, &request, now);
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
        let base_before = self.revocation.as_ref().map(|s| s.snapshot_generation());
        let result = self.apply_fetch(kind, outcome, now);
        let interval = self.refresh_interval(kind);
        let held_kind = self.policy.revocation.as_ref().and_then(held_kind);
        let (status, etag, hints) = match outcome {
            HttpOutcome::Response {
                status,
                etag,
                origin,
                ..
            } => (Some(status), etag, origin),
            HttpOutcome::Failed => (None, None, OriginHints::default()),
        };
        // The origin names the snapshot its delta is built on: a newer one is fetched now.
        let snapshot_behind = matches!(
            (kind, hints.snapshot_generation, base_before),
            (FetchKind::Delta, Some(named), Some(base)) if named > base
        );
        let Some(slot) = self.fetches.slot(kind) else {
            return result;
        };
        slot.in_flight_since = None;
        match &result {
            Ok(r) => {
                slot.failures = 0;
                // A validator other than the one this slot had: the request could not have been
                // held on it (the first "no delta yet" answer; a worker taking over the lease
                // with an older one), so the absence of a hold says nothing about the server
                // yet: ask once more at once. Once in a row: a server whose ETags differ on
                // every answer (several backends behind a balancer) must not make it a loop.
                let new_validator =
                    etag.is_some() && etag != slot.etag.as_deref() && !slot.asked_again;
                // The "no delta yet" answer has a validator too: holding on it is how the first
                // delta after a snapshot arrives at once.
                // A 304 names the validator of what is in force too (RFC 9110 15.4.5): a worker
                // whose data came from another worker's fetch learns it here.
                if matches!(status, Some(200) | Some(304))
                    || (status == Some(404) && kind == FetchKind::Delta)
                {
                    slot.etag = etag.filter(|e| e.len() <= 256).map(str::to_string);
                }
                slot.next_due = match held_kind {
                    Some((held, _)) if held == kind => {
                        slot.held = hints.held;
                        let quick = slot.last_started == Some(now);
                        slot.asked_again = matches!(
                            (r, hints.held, new_validator),
                            (FetchResult::NotModified, false, true)
                        );
                        match (r, hints.held) {
                            // New data: ask again at once, conditional on it.
                            (FetchResult::Updated(_), _) => now,
                            // Held until the wait ran out (or the resource changed): again
                            // at once. One that came back in the second it left was not
                            // really held: wait a second, never spin.
                            (FetchResult::NotModified, true) if quick => now.saturating_add(1),
                            (FetchResult::NotModified, true) => now,
                            (FetchResult::NotModified, false) if new_validator => now,
                            // A server that does not hold (static files, CDN): plain polling.
                            (FetchResult::NotModified, false) => now.saturating_add(interval),
                        }
                    }
                    _ => now.saturating_add(interval),
                };
            }
            // A delta built on a newer snapshot than ours is not the origin's fault: it is
            // fetched again once that snapshot is in (below).
            Err(FetchError::Rejected(LoadError::Snapshot(SnapshotError::DeltaBaseMismatch {
                ..
            }))) if snapshot_behind => {
                slot.next_due = now.saturating_add(interval);
            }
            Err(_) => {
                slot.held = false;
                slot.failures = slot.failures.saturating_add(1);
                let backoff = 1u64 << slot.failures.min(MAX_BACKOFF_EXPONENT);
                slot.next_due = now.saturating_add(backoff.min(interval));
            }
        }
        let hold_secs = held_kind.map_or(0, |(_, secs)| secs);
        let delta_configured = self
            .policy
            .revocation
            .as_ref()
            .is_some_and(|r| r.delta.is_some());
        match kind {
            FetchKind::Delta if snapshot_behind => {
                let snapshot = &mut self.fetches.snapshot;
                if snapshot.in_flight_since.is_none() {
                    snapshot.next_due = now;
                }
            }
            // The delta's answer named our snapshot: that is a snapshot check. The snapshot
            // is fetched again only if such answers stop (a static server sends none).
            FetchKind::Delta if hints.snapshot_generation.is_some() && result.is_ok() => {
                let snapshot = &mut self.fetches.snapshot;
                let checked = now.saturating_add(interval).saturating_add(hold_secs);
                snapshot.next_due = snapshot.next_due.max(checked);
            }
            // A new snapshot: the delta for it (or the hold on "no delta yet") starts now.
            FetchKind::Snapshot
                if delta_configured && matches!(result, Ok(FetchResult::Updated(_))) =>
            {
                let delta = &mut self.fetches.delta;
                if delta.in_flight_since.is_none() {
                    delta.next_due = now;
                }
            }
            _ => {}
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
        .is_some_and(|since| now >= since.saturating_add(slot.in_flight_limit));
    (slot.in_flight_since.is_none() || stuck) && now >= due_at
}

/// Marks `slot` in flight with `request`, which counts as lost after its timeout plus grace.
fn start(slot: &mut Slot, request: &HttpRequest, now: u64) {
    slot.in_flight_since = Some(now);
    slot.in_flight_limit = request
        .timeout_ms
        .div_ceil(1000)
        .saturating_add(IN_FLIGHT_GRACE_SECS);
    slot.last_started = Some(now);
}

/// The revocation resource the origin is asked to hold, and for how long: the delta (whose
/// answers also name the snapshot generation), else the snapshot; `None` with `hold_secs` 0.
fn held_kind(r: &RevocationPolicy) -> Option<(FetchKind, u64)> {
    let kind = if r.delta.is_some() {
        FetchKind::Delta
    } else {
        FetchKind::Snapshot
    };
    (r.hold_secs > 0).then_some((kind, r.hold_secs))
}

/// Asks the origin to hold `request` up to `secs` until the resource changes (RFC 7240
/// `Prefer: wait`; the origin holds only a conditional request), and waits that much longer
/// for the answer. A server that ignores the preference answers at once.
fn held_request(mut request: HttpRequest, secs: u64) -> HttpRequest {
    request
        .headers
        .push(("prefer".into(), format!("wait={secs}")));
    request.timeout_ms = request.timeout_ms.saturating_add(secs.saturating_mul(1000));
    request
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
            origin: Default::default(),
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

    mod hold {
        use super::*;
        use crate::snapshot::{build_delta, build_snapshot, BuildOptions, DeltaOptions};

        const HOLD: u64 = 25;

        /// The snapshot and its delta every 10 s (2 s timeout), the delta held `hold` s.
        fn engine_with(hold: u64, delta: bool) -> Engine {
            let origin = SigningKey::from_seed([7; 32]).unwrap().public_key_text();
            let mut revocation = serde_json::json!({"upstream": "origin", "path": "/s",
                "refresh_interval_secs": 10, "timeout_ms": 2000, "hold_secs": hold,
                "public_keys": [origin]});
            if delta {
                revocation["delta_path"] = "/d".into();
            }
            let config = serde_json::json!({
                "issuers": [{"issuer": "https://idp", "audiences": ["api"],
                             "algorithms": ["ES256"],
                             "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
                "revocation": revocation,
            });
            Engine::from_config_json(&serde_json::to_vec(&config).unwrap()).unwrap()
        }

        fn snapshot(generation: u64) -> Vec<u8> {
            let key = SigningKey::from_seed([7; 32]).unwrap();
            let opts = BuildOptions {
                generation,
                built_at: T,
                max_age_secs: 600,
                fp_rate: 0.01,
                salt: [1; 32],
            };
            build_snapshot(&[], &opts, &key).unwrap()
        }

        fn delta(base: &[u8], generation: u64) -> Vec<u8> {
            let key = SigningKey::from_seed([7; 32]).unwrap();
            let opts = DeltaOptions {
                generation,
                built_at: T,
                max_age_secs: 600,
            };
            build_delta(base, &[], &opts, &key).unwrap()
        }

        fn answer<'a>(
            status: u16,
            etag: Option<&'a str>,
            body: &'a [u8],
            held: bool,
            snapshot_generation: Option<u64>,
        ) -> HttpOutcome<'a> {
            HttpOutcome::Response {
                status,
                etag,
                body,
                origin: OriginHints {
                    held,
                    snapshot_generation,
                },
            }
        }

        /// The revocation fetches due (key sets are not the subject here).
        fn due(engine: &mut Engine, now: u64) -> Vec<FetchRequest> {
            let mut fetches = engine.due_fetches(now);
            fetches.retain(|f| !matches!(f.kind, FetchKind::Keys(_)));
            fetches
        }

        fn kinds(fetches: &[FetchRequest]) -> Vec<FetchKind> {
            fetches.iter().map(|f| f.kind).collect()
        }

        /// An engine with snapshot 5 loaded at T and its first delta request out (at T):
        /// unconditional, so not held.
        fn first_delta() -> (Engine, FetchRequest) {
            let mut engine = engine_with(HOLD, true);
            assert_eq!(kinds(&due(&mut engine, T)), vec![FetchKind::Snapshot]);
            let snap = snapshot(5);
            let ok = answer(200, Some("\"s5\""), &snap, false, Some(5));
            assert_eq!(
                engine.fetch_completed(FetchKind::Snapshot, ok, T).unwrap(),
                FetchResult::Updated(5)
            );
            let mut next = due(&mut engine, T);
            assert_eq!(kinds(&next), vec![FetchKind::Delta], "the delta at once");
            let first = next.remove(0);
            // Nothing to be conditional on yet: the origin could not hold it, so it is not
            // asked to (nor given the longer timeout).
            assert_eq!(first.request.header("prefer"), None);
            assert_eq!(first.request.timeout_ms, 2_000);
            (engine, first)
        }

        /// [`first_delta`] answered "no delta yet" (404 with a validator, at once): the held
        /// delta request that follows at once (at T).
        fn holding() -> (Engine, FetchRequest) {
            let (mut engine, _) = first_delta();
            let none = answer(404, Some("\"none-5\""), b"", false, Some(5));
            let _ = engine.fetch_completed(FetchKind::Delta, none, T);
            let mut next = due(&mut engine, T);
            assert_eq!(
                kinds(&next),
                vec![FetchKind::Delta],
                "again at once, conditional"
            );
            (engine, next.remove(0))
        }

        #[test]
        fn the_delta_asks_to_be_held_and_waits_that_much_longer() {
            let (_, delta) = holding();
            assert_eq!(delta.request.header("prefer"), Some("wait=25"));
            assert_eq!(delta.request.timeout_ms, 27_000);
            // The snapshot is not held when a delta is configured.
            let mut engine = engine_with(HOLD, true);
            let first = due(&mut engine, T);
            assert_eq!(first[0].request.header("prefer"), None);
            assert_eq!(first[0].request.timeout_ms, 2_000);
            // Without a delta the snapshot is the held resource, once there is one to be
            // conditional on.
            let mut alone = engine_with(HOLD, false);
            let first = due(&mut alone, T);
            assert_eq!(first[0].request.header("prefer"), None);
            let snap = snapshot(5);
            let ok = answer(200, Some("\"s5\""), &snap, false, Some(5));
            let _ = alone.fetch_completed(FetchKind::Snapshot, ok, T);
            let next = due(&mut alone, T);
            assert_eq!(next[0].request.header("prefer"), Some("wait=25"));
            // hold_secs 0: plain polling, no preference, the plain timeout.
            let mut polling = engine_with(0, false);
            let first = due(&mut polling, T);
            assert_eq!(first[0].request.header("prefer"), None);
            assert_eq!(first[0].request.timeout_ms, 2_000);
        }

        #[test]
        fn a_held_call_is_not_taken_for_lost_while_it_may_still_answer() {
            let (mut engine, _) = holding();
            // 27 s timeout + 5 s grace: no second delta request meanwhile.
            for t in 1..32 {
                let fetches = due(&mut engine, T + t);
                assert!(!kinds(&fetches).contains(&FetchKind::Delta), "at +{t}");
                // (the snapshot is polled at its interval until a delta answer names it)
                for f in fetches {
                    engine.defer_fetch(f.kind, T + 100);
                }
            }
            assert_eq!(kinds(&due(&mut engine, T + 32)), vec![FetchKind::Delta]);
        }

        #[test]
        fn a_held_answer_makes_the_next_held_fetch_due_at_once() {
            let (mut engine, _) = holding();
            // 404 "no delta yet", held for 25 s: again at once, conditional on its validator.
            let none = answer(404, Some("\"none-5\""), b"", true, Some(5));
            let r = engine.fetch_completed(FetchKind::Delta, none, T + 25);
            assert_eq!(r.unwrap(), FetchResult::NotModified);
            let next = due(&mut engine, T + 25);
            assert_eq!(kinds(&next), vec![FetchKind::Delta]);
            assert_eq!(next[0].request.header("if-none-match"), Some("\"none-5\""));
            // New data arrives while held: loaded, and the next held fetch is due at once.
            let d6 = delta(&snapshot(5), 6);
            let new = answer(200, Some("\"d6\""), &d6, true, Some(5));
            let r = engine.fetch_completed(FetchKind::Delta, new, T + 30);
            assert_eq!(r.unwrap(), FetchResult::Updated(6));
            let next = due(&mut engine, T + 30);
            assert_eq!(kinds(&next), vec![FetchKind::Delta]);
            assert_eq!(next[0].request.header("if-none-match"), Some("\"d6\""));
            // A 304 after the wait: again at once.
            let same = answer(304, Some("\"d6\""), b"", true, Some(5));
            engine
                .fetch_completed(FetchKind::Delta, same, T + 55)
                .unwrap();
            assert_eq!(kinds(&due(&mut engine, T + 55)), vec![FetchKind::Delta]);
            // A "held" 304 that came back in the second it left: one second later, no spin.
            let quick = answer(304, Some("\"d6\""), b"", true, Some(5));
            engine
                .fetch_completed(FetchKind::Delta, quick, T + 55)
                .unwrap();
            assert!(due(&mut engine, T + 55).is_empty());
            assert_eq!(kinds(&due(&mut engine, T + 56)), vec![FetchKind::Delta]);
        }

        #[test]
        fn the_first_no_delta_answer_is_followed_at_once_by_a_held_request() {
            let (mut engine, first) = first_delta();
            // Nothing to be conditional on yet: the origin cannot hold the first request.
            assert_eq!(first.request.header("if-none-match"), None);
            let none = answer(404, Some("\"none-5\""), b"", false, Some(5));
            engine.fetch_completed(FetchKind::Delta, none, T).unwrap();
            let next = due(&mut engine, T);
            assert_eq!(kinds(&next), vec![FetchKind::Delta]);
            assert_eq!(next[0].request.header("if-none-match"), Some("\"none-5\""));
            // The same validator again, not held: this server does not hold. Polling.
            let again = answer(404, Some("\"none-5\""), b"", false, Some(5));
            engine.fetch_completed(FetchKind::Delta, again, T).unwrap();
            assert!(due(&mut engine, T + 9).is_empty());
            // A server whose validator changes on every answer (not held): asked once more at
            // once, then polled; never a loop.
            let other = answer(404, Some("\"other\""), b"", false, Some(5));
            due(&mut engine, T + 10);
            engine
                .fetch_completed(FetchKind::Delta, other, T + 10)
                .unwrap();
            assert!(kinds(&due(&mut engine, T + 10)).contains(&FetchKind::Delta));
            let third = answer(404, Some("\"third\""), b"", false, Some(5));
            engine
                .fetch_completed(FetchKind::Delta, third, T + 10)
                .unwrap();
            assert!(!kinds(&due(&mut engine, T + 19)).contains(&FetchKind::Delta));
        }

        #[test]
        fn a_server_that_does_not_hold_is_polled_at_the_refresh_interval() {
            let (mut engine, _) = first_delta();
            // A static server or CDN: 404 at once, no Preference-Applied, no generation.
            let none = answer(404, None, b"", false, None);
            engine.fetch_completed(FetchKind::Delta, none, T).unwrap();
            assert!(due(&mut engine, T + 9).is_empty());
            // Polled at the interval (a poll with a validator still asks to be held, so an
            // origin that starts holding is noticed).
            let polls = due(&mut engine, T + 10);
            assert_eq!(
                kinds(&polls),
                vec![FetchKind::Snapshot, FetchKind::Delta]
                    .into_iter()
                    .filter(|k| *k == FetchKind::Snapshot)
                    .collect::<Vec<_>>()
            );
            // (the delta waits for the snapshot in flight; it answers 304)
            let nm = answer(304, Some("\"s5\""), b"", false, None);
            engine
                .fetch_completed(FetchKind::Snapshot, nm, T + 10)
                .unwrap();
            let polls = due(&mut engine, T + 10);
            assert_eq!(kinds(&polls), vec![FetchKind::Delta]);
            // No validator from this server: nothing to hold on.
            assert_eq!(polls[0].request.header("prefer"), None);
            // New data from a static server: one more request at once (it may hold, after all)...
            let d6 = delta(&snapshot(5), 6);
            let new = answer(200, Some("\"d6\""), &d6, false, None);
            engine
                .fetch_completed(FetchKind::Delta, new, T + 10)
                .unwrap();
            assert_eq!(kinds(&due(&mut engine, T + 10)), vec![FetchKind::Delta]);
            // ...whose immediate 304 puts it back to polling.
            let nm = answer(304, Some("\"d6\""), b"", false, None);
            engine
                .fetch_completed(FetchKind::Delta, nm, T + 10)
                .unwrap();
            assert!(!kinds(&due(&mut engine, T + 19)).contains(&FetchKind::Delta));
            assert!(kinds(&due(&mut engine, T + 20)).contains(&FetchKind::Snapshot));
        }

        #[test]
        fn a_newer_snapshot_named_by_the_delta_is_fetched_at_once() {
            let (mut engine, _) = holding();
            // The origin published snapshot 8: the held delta request comes back 404 with
            // "no delta since snapshot 8".
            let none = answer(404, Some("\"none-8\""), b"", true, Some(8));
            engine
                .fetch_completed(FetchKind::Delta, none, T + 3)
                .unwrap();
            let next = due(&mut engine, T + 3);
            // The snapshot now (not at its interval); the delta waits for it.
            assert_eq!(kinds(&next), vec![FetchKind::Snapshot]);
            let snap = snapshot(8);
            let ok = answer(200, Some("\"s8\""), &snap, false, Some(8));
            engine
                .fetch_completed(FetchKind::Snapshot, ok, T + 3)
                .unwrap();
            let next = due(&mut engine, T + 3);
            assert_eq!(kinds(&next), vec![FetchKind::Delta]);
            assert_eq!(next[0].request.header("if-none-match"), Some("\"none-8\""));
            // A delta built on a newer snapshot than ours (raced a compaction): not a failure
            // (no backoff, still held); the snapshot is fetched, then the delta again.
            let d10 = delta(&snapshot(9), 10);
            let ahead = answer(200, Some("\"d10\""), &d10, true, Some(9));
            assert!(engine
                .fetch_completed(FetchKind::Delta, ahead, T + 4)
                .is_err());
            assert_eq!(kinds(&due(&mut engine, T + 4)), vec![FetchKind::Snapshot]);
            let snap = snapshot(9);
            let ok = answer(200, Some("\"s9\""), &snap, false, Some(9));
            engine
                .fetch_completed(FetchKind::Snapshot, ok, T + 4)
                .unwrap();
            assert_eq!(kinds(&due(&mut engine, T + 4)), vec![FetchKind::Delta]);
        }

        #[test]
        fn delta_answers_naming_our_snapshot_stand_for_snapshot_checks() {
            let (mut engine, _) = holding();
            // Held answers every 25 s that name snapshot 5: the snapshot is never polled.
            let mut now = T;
            for _ in 0..8 {
                now += HOLD;
                let none = answer(404, Some("\"none-5\""), b"", true, Some(5));
                engine.fetch_completed(FetchKind::Delta, none, now).unwrap();
                assert_eq!(
                    kinds(&due(&mut engine, now)),
                    vec![FetchKind::Delta],
                    "at {now}"
                );
            }
            // Answers stop (the call hangs until its timeout): the snapshot is polled again
            // one interval plus one hold after the last one.
            for t in 1..(10 + HOLD) {
                assert!(
                    !kinds(&due(&mut engine, now + t)).contains(&FetchKind::Snapshot),
                    "+{t}"
                );
            }
            assert!(kinds(&due(&mut engine, now + 10 + HOLD)).contains(&FetchKind::Snapshot));
        }

        #[test]
        fn failures_back_off_then_fall_back_to_polling() {
            let (mut engine, _) = holding();
            let none = answer(404, Some("\"none-5\""), b"", true, Some(5));
            engine
                .fetch_completed(FetchKind::Delta, none, T + 25)
                .unwrap();
            due(&mut engine, T + 25);
            // The origin goes away: backoff 2, 4, 8 s (as before the hold)...
            assert!(engine
                .fetch_completed(FetchKind::Delta, HttpOutcome::Failed, T + 26)
                .is_err());
            assert!(!kinds(&due(&mut engine, T + 27)).contains(&FetchKind::Delta));
            let retry = due(&mut engine, T + 28);
            assert!(kinds(&retry).contains(&FetchKind::Delta));
            assert!(engine
                .fetch_completed(FetchKind::Delta, HttpOutcome::Failed, T + 28)
                .is_err());
            assert!(!kinds(&due(&mut engine, T + 31)).contains(&FetchKind::Delta));
            assert!(kinds(&due(&mut engine, T + 32)).contains(&FetchKind::Delta));
            // ...and a server back that answers at once without holding is polled.
            let nm = answer(404, Some("\"none-5\""), b"", false, Some(5));
            engine
                .fetch_completed(FetchKind::Delta, nm, T + 32)
                .unwrap();
            assert!(!kinds(&due(&mut engine, T + 41)).contains(&FetchKind::Delta));
            assert!(kinds(&due(&mut engine, T + 42)).contains(&FetchKind::Delta));
            // The origin holds again: back to held requests at once.
            let held = answer(304, Some("\"none-5\""), b"", true, Some(5));
            engine
                .fetch_completed(FetchKind::Delta, held, T + 67)
                .unwrap();
            assert!(kinds(&due(&mut engine, T + 67)).contains(&FetchKind::Delta));
        }
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

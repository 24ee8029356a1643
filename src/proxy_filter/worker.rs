//! One worker VM's state, shared by its root context and its HTTP streams: the engine, the
//! shared-data coordinator, metrics, and the introspection callouts in flight. Carries out the
//! core's decisions with hostcalls; decides nothing itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::host::{self, Level};
use super::metrics::Metrics;
use super::request::OwnedRequest;
use super::settings::Settings;
use super::shared::HostStore;
use crate::coordination::{shared_node_id, Claim, Coordinator};
use crate::decision::{Decision, Denial, PendingIntrospection};
use crate::engine::{Engine, FetchKind, FetchResult};
use crate::http::{HttpOutcome, HttpRequest, OriginHints};
use crate::introspection::{group_key, Callouts, Finished, Registered, Swept, TokenKey};

pub type SharedWorker = Rc<RefCell<Worker>>;

/// What the stream does after a decision was carried out.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Continue,
    Pause,
}

/// A stream waiting for an introspection answer (its context id is its waiter id).
struct Waiter {
    pending: PendingIntrospection,
    request: OwnedRequest,
}

/// A callout whose stream went away is sent again (or, past its timeout plus this, failed)
/// from the root context's tick.
const CALLOUT_GRACE_MS: u64 = 1000;
/// On a host without metrics, the counters are logged at most this often (only when some moved).
const COUNTER_LOG_SECS: u64 = 60;

/// A call answer as read from the host. `status == None`: failed (zero headers).
struct Answer {
    status: Option<u16>,
    etag: Option<String>,
    body: Vec<u8>,
    origin: OriginHints,
}

impl Answer {
    /// A failed call: no answer.
    fn failed() -> Answer {
        Answer {
            status: None,
            etag: None,
            body: Vec::new(),
            origin: OriginHints::default(),
        }
    }

    fn read(num_headers: usize, body_size: usize, max_body: usize) -> Answer {
        // After a reset there are no response maps: reading one would fail the VM.
        if num_headers == 0 {
            return Answer::failed();
        }
        let headers = host::header_pairs(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let text = |name: &[u8]| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .map(str::to_string)
        };
        let status = text(b":status").and_then(|s| s.trim().parse::<u16>().ok());
        let body = if body_size == 0 {
            Vec::new()
        } else {
            host::buffer(BufferType::HttpCallResponseBody, body_size.min(max_body))
        };
        let origin =
            OriginHints::from_headers(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        Answer {
            status,
            etag: text(b"etag"),
            body,
            origin,
        }
    }

    fn outcome(&self) -> HttpOutcome<'_> {
        match self.status {
            Some(status) => HttpOutcome::Response {
                status,
                etag: self.etag.as_deref(),
                body: &self.body,
                origin: self.origin,
            },
            None => HttpOutcome::Failed,
        }
    }
}

#[derive(Default)]
pub struct Worker {
    engine: Option<Engine>,
    coordinator: Option<Coordinator>,
    pub metrics: Metrics,
    /// Introspection callouts in flight (by host call token), one per token, with the streams
    /// waiting for each.
    callouts: Callouts<Waiter>,
    /// Host call token -> the fetch it answers.
    fetch_calls: HashMap<u32, FetchKind>,
    /// This host's settings (shared-data prefix, TLS callouts, metrics, joining callouts).
    settings: Settings,
    /// When the counters were last logged (a host without metrics), Unix seconds.
    counters_logged_at: u64,
}

fn now_secs() -> u64 {
    host::now_millis() / 1000
}

fn dispatch(request: &HttpRequest, tls: bool) -> Result<u32, String> {
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if tls {
        headers.push((":scheme", "https"));
    }
    let body = (!request.body.is_empty()).then_some(request.body.as_slice());
    // The SDK's call, not a wrapper: its dispatcher must record the token to route the answer
    // to `on_http_call_response` (`register_callout` is private to the SDK, and an answer to an
    // unrecorded token panics: "invalid token_id"). It panics on statuses other than `Ok`,
    // `BadArgument` and `InternalFailure`, the only failures Envoy answers for a call built from
    // valid slices (source/extensions/common/wasm/context.cc, `Context::httpCall`: unknown
    // cluster, missing pseudo-headers, no request). Kong answers `InternalFailure` for a failed
    // dispatch from a tick, but traps for one from a request (src/http/proxy_wasm/
    // ngx_http_proxy_wasm_dispatch.c, `trap_printf`): a status never reaches the SDK to panic
    // on, and the core refuses upstreams Kong cannot parse (not `host:port`) at configuration.
    hostcalls::dispatch_http_call(
        &request.upstream,
        headers,
        body,
        Vec::new(),
        host::call_timeout(request.timeout_ms),
    )
    .map_err(|status| format!("{status:?}"))
}

impl Worker {
    pub fn shared() -> SharedWorker {
        Rc::new(RefCell::new(Worker::default()))
    }

    /// Installs a new configuration (fresh engine; shared data namespaced per host profile).
    pub fn configure(&mut self, mut engine: Engine) {
        self.settings = Settings::from_host(&engine.policy().config.host);
        if self.metrics.sink() != self.settings.metrics {
            self.metrics.flush();
            self.metrics = Metrics::new(self.settings.metrics);
        }
        let prefix = &self.settings.shared_prefix;
        // This VM's name in leases.
        let holder = crate::node_id::random();
        // Envoy names its node (Istio's `sidecar~<ip>~<pod>.<ns>~...`): `xds.node.id` from
        // Envoy 1.33 on (envoy#36619 removed the top-level `node`;
        // source/extensions/filters/common/expr/context.cc, XDSLookupValues), `node.id` before.
        // Kong does not, so the workers agree on a random one.
        let node_id = host::property(&["xds", "node", "id"])
            .or_else(|| host::property(&["node", "id"]))
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|id| crate::node_id::is_valid(id))
            .unwrap_or_else(|| shared_node_id(&mut HostStore, prefix, &holder));
        engine.set_default_node_id(&node_id);
        engine.share_through(Box::new(HostStore), prefix);
        let mut coordinator = Coordinator::new(engine.policy(), prefix, holder);
        // A VM started (or restarted) after the others loads what they published now, rather
        // than failing closed on every request until its first tick.
        let synced = coordinator.sync(&HostStore, &mut engine, now_secs());
        self.metrics.synced(&synced);
        self.coordinator = Some(coordinator);
        self.engine = Some(engine);
        self.callouts.clear();
        self.fetch_calls.clear();
    }

    /// Decides a new request of stream `context_id`.
    pub fn on_request(&mut self, context_id: u32) -> Step {
        let Some(engine) = self.engine.as_mut() else {
            // No configuration (hence no realm) yet.
            let denial = Denial::not_ready("");
            let request = OwnedRequest::from_host();
            return self.perform(Decision::Deny(denial), request, context_id, false, false);
        };
        let Some(request) = OwnedRequest::from_host() else {
            let denial = Denial::new(
                crate::Reason::InvalidRequest,
                &engine.policy().config.realm,
                None,
                Default::default(),
            );
            return self.perform(Decision::Deny(denial), None, context_id, false, false);
        };
        let work = |e: &Engine| {
            (
                e.signature_checks(),
                e.shared_verdict_hits(),
                e.shared_answer_hits(),
            )
        };
        let before = work(engine);
        let decision = request.with_view(|view| engine.decide(view, now_secs()));
        let after = work(engine);
        // Off the cached path only: a cached token changes none of these, and costs no hostcall.
        if after != before {
            self.metrics.engine_work(
                after.0.saturating_sub(before.0),
                after.1.saturating_sub(before.1),
                after.2.saturating_sub(before.2),
            );
        }
        self.perform(decision, Some(request), context_id, false, false)
    }

    /// Carries out `decision` for the effective context. `resume`: the stream is paused.
    fn perform(
        &mut self,
        decision: Decision,
        request: Option<OwnedRequest>,
        context_id: u32,
        resume: bool,
        after_callout: bool,
    ) -> Step {
        match decision {
            Decision::Allow(allow) => {
                // The upstream must serve the path the rules matched. Envoy (ABI 0.2.1) clears
                // the route cache when a wasm filter modifies request headers, so the route is
                // chosen again for the new `:path` (source/extensions/common/wasm/context.cc,
                // Context::replaceHeaderMapValue -> onHeadersModified -> clearRouteCache; envoy
                // PR #14318, conditional since PR #36671 for ABI versions above 0.2.1). Kong's
                // ngx_wasm_module only sets `r->uri` (ngx_proxy_wasm_maps_set_path in
                // src/common/proxy_wasm/ngx_proxy_wasm_maps.c), not the upstream URI: that is why
                // the core's Kong profile refuses non-normal paths instead of asking for this.
                if let Some(path) = &allow.path {
                    if let Err(status) = host::set_request_header(":path", path.as_bytes()) {
                        // Forwarding the client's target would serve a path nobody authorised.
                        host::log(
                            Level::Warn,
                            &format!("revguard: the host refused the normalised :path ({status})"),
                        );
                        let realm = self
                            .engine
                            .as_ref()
                            .map(|e| e.policy().config.realm.clone())
                            .unwrap_or_default();
                        let denial =
                            Denial::new(crate::Reason::InvalidPath, &realm, None, allow.log);
                        return self.perform(
                            Decision::Deny(denial),
                            request,
                            context_id,
                            resume,
                            after_callout,
                        );
                    }
                }
                let introspection_hit = allow.log.introspected && !after_callout;
                self.metrics
                    .allowed(allow.fail_open, allow.log.cached, introspection_hit);
                for name in &allow.remove_headers {
                    let _ = host::remove_request_header(name);
                }
                for (name, value) in &allow.set_headers {
                    let _ = host::set_request_header(name, value.as_bytes());
                }
                if resume {
                    let _ = host::resume_request();
                    return Step::Pause;
                }
                Step::Continue
            }
            Decision::Deny(denial) => {
                let introspection_hit = denial.log.introspected && !after_callout;
                self.metrics.denied(denial.reason, introspection_hit);
                let request_id = request.as_ref().and_then(OwnedRequest::request_id);
                host::log(Level::Info, &denial.log_line(request_id.as_deref()));
                let body = denial.body();
                let _ = host::send_local_response(
                    denial.status,
                    &[
                        ("www-authenticate", &denial.www_authenticate),
                        ("content-type", "application/json"),
                    ],
                    body.as_bytes(),
                );
                Step::Pause
            }
            Decision::Introspect(introspect) => {
                let Some(request) = request else {
                    return Step::Pause;
                };
                let key = group_key(
                    *introspect.pending.token_key(),
                    context_id,
                    self.settings.join_callouts,
                );
                let waiter = Waiter {
                    pending: introspect.pending,
                    request,
                };
                let now_ms = host::now_millis();
                match self
                    .callouts
                    .register(key, context_id, waiter, introspect.request, now_ms)
                {
                    Registered::Joined => {
                        self.metrics.introspection("joined");
                        Step::Pause
                    }
                    Registered::Send => match self.send_callout(&key, context_id) {
                        Ok(()) => {
                            self.metrics.introspection("call");
                            Step::Pause
                        }
                        Err(refusal) => {
                            host::log(Level::Warn, &refusal);
                            self.metrics.introspection("failed");
                            // Only this stream waits: it registered the token first.
                            let waiters = self.callouts.send_failed(&key).map(|f| f.waiters);
                            let mut step = Step::Pause;
                            for (id, waiter) in waiters.unwrap_or_default() {
                                step = self.fail_at_once(waiter, id, resume);
                            }
                            step
                        }
                    },
                    // This stream waits already: impossible, as it is paused while it waits.
                    Registered::Refused(waiter) => self.fail_at_once(waiter, context_id, resume),
                }
            }
        }
    }

    /// Finishes `waiter` (stream `context_id`, the effective one) as a failed callout.
    fn fail_at_once(&mut self, waiter: Waiter, context_id: u32, resume: bool) -> Step {
        let Some(engine) = self.engine.as_mut() else {
            return Step::Pause;
        };
        let decision = waiter.request.with_view(|view| {
            engine.complete_introspection(waiter.pending, HttpOutcome::Failed, view, now_secs())
        });
        self.perform(decision, Some(waiter.request), context_id, resume, true)
    }

    /// Sends the callout for `key` from context `owner`; the refusal, as a log line.
    fn send_callout(&mut self, key: &TokenKey, owner: u32) -> Result<(), String> {
        let Some(call) = self.callouts.request(key) else {
            return Err("revguard: introspection callout lost".to_string());
        };
        match dispatch(call, self.settings.callout_tls) {
            Ok(token) => {
                self.callouts.sent(key, token, owner);
                Ok(())
            }
            Err(status) => Err(format!(
                "revguard: introspection call to {} refused by the host ({status})",
                call.upstream
            )),
        }
    }

    /// An answer to a call this VM dispatched, delivered to context `current`.
    pub fn on_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        current: u32,
    ) {
        if let Some(finished) = self.callouts.complete(token) {
            let max = self
                .engine
                .as_ref()
                .and_then(|e| e.policy().introspection.as_ref())
                .map_or(0, |s| s.max_response_bytes.saturating_add(1));
            let answer = Answer::read(num_headers, body_size, max);
            self.finish_callout(finished, &answer, current);
        } else if let Some(kind) = self.fetch_calls.remove(&token) {
            let max = match kind {
                FetchKind::Keys(_) => crate::jwks::MAX_JWKS_BYTES,
                FetchKind::Snapshot | FetchKind::Delta => self
                    .engine
                    .as_ref()
                    .and_then(|e| e.policy().revocation.as_ref())
                    .map_or(0, |r| r.max_snapshot_bytes),
            };
            let answer = Answer::read(num_headers, body_size, max.saturating_add(1));
            self.fetch_done(kind, &answer);
        }
    }

    /// Finishes every stream waiting on a callout, then restores `current`.
    fn finish_callout(&mut self, finished: Finished<Waiter>, answer: &Answer, current: u32) {
        let latency = host::now_millis().saturating_sub(finished.started_ms);
        self.metrics.introspection_latency(latency);
        let outcome = answer.outcome();
        let mut label = "failed";
        for (context_id, waiter) in finished.waiters {
            if context_id != current && host::set_effective_context(context_id).is_err() {
                continue;
            }
            let Some(engine) = self.engine.as_mut() else {
                break;
            };
            let decision = waiter.request.with_view(|view| {
                engine.complete_introspection(waiter.pending, outcome, view, now_secs())
            });
            label = match (&decision, decision.reason()) {
                (_, Some(crate::Reason::IntrospectionFailed)) => "failed",
                (Decision::Allow(_), _) => "active",
                _ => "inactive",
            };
            self.perform(decision, Some(waiter.request), context_id, true, true);
        }
        self.metrics.introspection(label);
        let _ = host::set_effective_context(current);
    }

    /// Stream `context_id` ended: it no longer waits, and if it dispatched a callout still in
    /// flight, the host may drop that answer (the root sends it again for the others).
    pub fn stream_done(&mut self, context_id: u32) {
        self.callouts.leave(context_id);
    }

    /// Periodic work on the root context: keep this worker's leases, load what other workers
    /// published, start due fetches, refresh gauges, and rescue callouts whose stream went
    /// away or ran late.
    pub fn on_tick(&mut self, root: u32) {
        self.metrics.flush();
        let now = now_secs();
        if let (Some(engine), Some(coordinator)) = (self.engine.as_mut(), self.coordinator.as_mut())
        {
            coordinator.renew(&mut HostStore, now);
            let synced = coordinator.sync(&HostStore, engine, now);
            self.metrics.synced(&synced);
        } else {
            return;
        }
        self.start_due_fetches(now);
        if let Some(engine) = self.engine.as_ref() {
            let status = engine.status(now);
            self.metrics.state(&status);
            if now >= self.counters_logged_at.saturating_add(COUNTER_LOG_SECS) {
                self.counters_logged_at = now;
                if let Some(line) = self.metrics.log_line(&status) {
                    host::log(Level::Info, &line);
                }
            }
        }
        self.rescue_callouts(root);
    }

    /// Sends the fetches due at `now` that this worker holds the lease for. Runs from the tick
    /// and from a fetch's answer, so a held request is sent again at once, not a tick later
    /// (Kong allows dispatching from a call-response callback, as Envoy does).
    fn start_due_fetches(&mut self, now: u64) {
        let (Some(engine), Some(coordinator)) = (self.engine.as_mut(), self.coordinator.as_mut())
        else {
            return;
        };
        for fetch in engine.due_fetches(now) {
            let label = fetch.kind.label();
            if let Claim::Defer { until } = coordinator.claim(&mut HostStore, fetch.kind, now) {
                self.metrics.fetch(fetch.kind, "skipped");
                engine.defer_fetch(fetch.kind, until);
                continue;
            }
            let fetch = coordinator.conditional(fetch);
            let request = &fetch.request;
            match dispatch(request, self.settings.callout_tls) {
                Ok(token) => {
                    self.fetch_calls.insert(token, fetch.kind);
                }
                Err(status) => {
                    host::log(
                        Level::Warn,
                        &format!(
                            "revguard: {label} fetch from {} refused by the host ({status})",
                            request.upstream
                        ),
                    );
                    self.metrics.fetch(fetch.kind, "failed");
                    let _ = engine.fetch_completed(fetch.kind, HttpOutcome::Failed, now);
                }
            }
        }
    }

    fn rescue_callouts(&mut self, root: u32) {
        let failed = Answer::failed();
        for swept in self.callouts.sweep(host::now_millis(), CALLOUT_GRACE_MS) {
            let finished = match swept {
                Swept::Expired(finished) => Some(finished),
                Swept::Orphaned(key) => match self.send_callout(&key, root) {
                    Ok(()) => None,
                    Err(_) => self.callouts.send_failed(&key),
                },
            };
            if let Some(finished) = finished {
                self.finish_callout(finished, &failed, root);
            }
        }
    }

    fn fetch_done(&mut self, kind: FetchKind, answer: &Answer) {
        let now = now_secs();
        let (Some(engine), Some(coordinator)) = (self.engine.as_mut(), self.coordinator.as_mut())
        else {
            return;
        };
        let label = kind.label();
        match engine.fetch_completed(kind, answer.outcome(), now) {
            Ok(FetchResult::Updated(n)) => {
                self.metrics.fetch(kind, "updated");
                host::log(Level::Info, &format!("revguard: {label} updated ({n})"));
                if answer.status == Some(200) {
                    let etag = answer.etag.as_deref();
                    let failed = coordinator.publish(&mut HostStore, kind, &answer.body, etag, now);
                    if failed > 0 {
                        self.metrics.publish_failed(failed);
                        host::log(
                            Level::Warn,
                            &format!(
                                "revguard: {label} not shared with the other workers ({failed} failed writes to shared data): each fetches it itself"
                            ),
                        );
                    }
                }
            }
            Ok(FetchResult::NotModified) => {
                self.metrics.fetch(kind, "not_modified");
                let no_delta_yet = kind == FetchKind::Delta && answer.status == Some(404);
                if answer.status == Some(200) || no_delta_yet {
                    coordinator.note_etag(kind, answer.etag.as_deref());
                }
            }
            Err(e) => {
                self.metrics.fetch(kind, "failed");
                host::log(
                    Level::Warn,
                    &format!("revguard: {label} fetch failed, keeping the last good data: {e}"),
                );
            }
        }
        let status = engine.status(now);
        self.metrics.state(&status);
        // A held request goes out again at once (and a snapshot the answer asked for).
        self.start_due_fetches(now);
    }
}

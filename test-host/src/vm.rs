//! One VM: an engine instance of the module (its store holds the [`HostState`]), its root context
//! and its HTTP streams. The driver is the same for every engine (`engine/`).

use crate::config::Profile;
use crate::engine::{cb, Callback, Instance, Linked};
use crate::error::HostError;
use crate::http::{ClientResponse, ForwardedRequest, HttpRequest, HttpResponse, Outcome};
use crate::maps::HeaderMap;
use crate::state::{
    CallResponse, CalloutSource, HostState, LocalReply, LogSource, Phase, Shared, StreamState,
};
use crate::types::{LogLevel, Status, ACTION_CONTINUE};
use crate::upstream::{UpstreamOutcome, UpstreamResponse};
use std::collections::BTreeMap;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;

/// A pending call that is ready to be delivered.
struct Delivery {
    at: u64,
    token: u32,
    context_id: u32,
    response: Option<UpstreamResponse>,
    timed_out: bool,
}

pub(crate) struct Vm {
    instance: Box<dyn Instance>,
    worker: usize,
    /// Why the VM failed (a trap), if it did.
    pub(crate) failure: Option<String>,
    fuel: bool,
    /// Fuel used by the most recent guest callback (0 without fuel metering).
    pub(crate) last_call_fuel: u64,
    /// Host functions called by the most recent guest callback.
    pub(crate) last_call_hostcalls: u64,
}

const ROOT: u32 = 1;

impl Vm {
    /// Instantiates the module and runs `_initialize`/`_start`, the root context's creation,
    /// `proxy_on_vm_start` and `proxy_on_configure`.
    pub(crate) fn start(
        linked: &dyn Linked,
        worker: usize,
        shared: Arc<Shared>,
    ) -> Result<Vm, HostError> {
        let fuel = shared.config.fuel;
        let vm_config_len = len_u32(shared.config.vm_configuration.len());
        let plugin_config_len = len_u32(shared.config.plugin_configuration.len());
        let instance = linked.instantiate(HostState::new(worker, shared))?;
        let mut vm = Vm {
            instance,
            worker,
            failure: None,
            fuel,
            last_call_fuel: 0,
            last_call_hostcalls: 0,
        };
        vm.call(cb::initialize, Phase::Start, ROOT, &[])?;
        vm.call(cb::start, Phase::Start, ROOT, &[])?;
        vm.call(
            cb::on_context_create,
            Phase::ContextCreate,
            ROOT,
            &[ROOT, 0],
        )?;
        if vm.call(cb::on_vm_start, Phase::Start, ROOT, &[ROOT, vm_config_len])? == Some(0) {
            return Err(HostError::StartRejected {
                worker,
                callback: cb::on_vm_start.name,
            });
        }
        if vm.call(
            cb::on_configure,
            Phase::Configure,
            ROOT,
            &[ROOT, plugin_config_len],
        )? == Some(0)
        {
            return Err(HostError::StartRejected {
                worker,
                callback: cb::on_configure.name,
            });
        }
        Ok(vm)
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.instance.host().shared
    }

    /// Calls a guest callback with `context` as the current context. A trap fails the VM and, for a
    /// stream, fails that stream the way the profile's proxy does. `Ok(None)` if the module does not
    /// export the callback; `Ok(Some(0))` for a callback without a result.
    fn call(
        &mut self,
        callback: Callback,
        phase: Phase,
        context: u32,
        params: &[u32],
    ) -> Result<Option<u32>, HostError> {
        if self.failure.is_some() {
            return Err(HostError::VmFailed {
                worker: self.worker,
            });
        }
        if !self.instance.has(callback) {
            return Ok(None);
        }
        let state = self.instance.host_mut();
        let saved = (state.current_context, state.phase);
        state.current_context = context;
        state.phase = phase;
        let fuel_before = if self.fuel {
            self.instance.fuel_left().unwrap_or(0)
        } else {
            0
        };
        let hostcalls_before = self.instance.host().hostcalls;
        let result = self.instance.call(callback, params);
        self.last_call_hostcalls = self
            .instance
            .host()
            .hostcalls
            .saturating_sub(hostcalls_before);
        if self.fuel {
            self.last_call_fuel =
                fuel_before.saturating_sub(self.instance.fuel_left().unwrap_or(0));
        }
        let state = self.instance.host_mut();
        state.current_context = saved.0;
        state.phase = saved.1;
        match result {
            Ok(r) => Ok(r),
            Err(message) => {
                self.fail(callback.name, context, &message);
                Err(HostError::Trap {
                    worker: self.worker,
                    callback: callback.name,
                    message,
                })
            }
        }
    }

    fn fail(&mut self, callback: &str, context: u32, message: &str) {
        self.failure = Some(format!("{callback}: {message}"));
        let state = self.instance.host_mut();
        state.log(
            LogLevel::Critical,
            LogSource::Host,
            format!("wasm trap in {callback}: {message}"),
        );
        state.next_tick = None;
        state.callouts.clear();
        let fail_open = state.shared.config.fail_open;
        let status = state.shared.config.profile.trap_status();
        for (id, stream) in state.streams.iter_mut() {
            if *id == context || stream.request_paused {
                fail_stream(stream, fail_open, status);
            }
        }
    }

    pub(crate) fn worker(&self) -> usize {
        self.worker
    }

    /// Fuel used since the VM was made (0 without fuel metering).
    /// Host functions the guest called since the VM started.
    pub(crate) fn hostcalls(&self) -> u64 {
        self.instance.host().hostcalls
    }

    /// The same, by import name.
    pub(crate) fn hostcalls_by_name(&self) -> &BTreeMap<&'static str, u64> {
        &self.instance.host().hostcalls_by_name
    }

    pub(crate) fn fuel_consumed(&self) -> u64 {
        if self.fuel {
            u64::MAX.saturating_sub(self.instance.fuel_left().unwrap_or(u64::MAX))
        } else {
            0
        }
    }

    /// Creates an HTTP context and runs the request callbacks. Returns the context id.
    pub(crate) fn send_request(&mut self, request: HttpRequest) -> Result<u32, HostError> {
        let state = self.instance.host_mut();
        let id = state.next_context_id;
        state.next_context_id = id
            .checked_add(1)
            .ok_or_else(|| HostError::InvalidState("context ids exhausted".into()))?;
        let stream = StreamState {
            request_headers: request.headers,
            ..StreamState::default()
        };
        state.streams.insert(id, stream);
        if self.failure.is_some() {
            let shared = self.shared().clone();
            if let Some(stream) = self.instance.host_mut().streams.get_mut(&id) {
                fail_stream(
                    stream,
                    shared.config.fail_open,
                    shared.config.profile.trap_status(),
                );
            }
            return Ok(id);
        }
        if self
            .call(cb::on_context_create, Phase::ContextCreate, id, &[id, ROOT])
            .is_err()
        {
            return Ok(id);
        }
        let has_body = request.body.is_some();
        let has_trailers = request.trailers.is_some();
        let n = self.stream(id).map(|s| len_u32(s.request_headers.len()))?;
        let action = self.call(
            cb::on_request_headers,
            Phase::RequestHeaders,
            id,
            &[id, n, u32::from(!has_body && !has_trailers)],
        );
        self.settle_request(id, action)?;
        if let Some(body) = request.body {
            if self.active(id) {
                let len = len_u32(body.len());
                let stream = self.stream_mut(id)?;
                stream.request_body = body;
                stream.request_body_seen = true;
                let action = self.call(
                    cb::on_request_body,
                    Phase::RequestBody,
                    id,
                    &[id, len, u32::from(!has_trailers)],
                );
                self.settle_request(id, action)?;
            }
        }
        if let Some(trailers) = request.trailers {
            if self.active(id) {
                let n = len_u32(trailers.len());
                self.stream_mut(id)?.request_trailers = trailers;
                let action = self.call(cb::on_request_trailers, Phase::RequestBody, id, &[id, n]);
                self.settle_request(id, action)?;
            }
        }
        Ok(id)
    }

    /// Records what a request callback's return value means (Envoy: anything but Continue stops iteration,
    /// and a later Continue resumes it).
    fn settle_request(
        &mut self,
        id: u32,
        action: Result<Option<u32>, HostError>,
    ) -> Result<(), HostError> {
        let stream = self.stream_mut(id)?;
        if let Ok(action) = action {
            if stream.local_reply.is_none() && !stream.reset {
                stream.request_paused = action.is_some_and(|a| a != ACTION_CONTINUE);
            }
        }
        Ok(())
    }

    /// True while the stream still runs through the filter (no local reply, reset or failure).
    fn active(&self, id: u32) -> bool {
        self.instance
            .host()
            .streams
            .get(&id)
            .is_some_and(|s| s.local_reply.is_none() && !s.reset && !s.failed)
    }

    fn stream(&self, id: u32) -> Result<&StreamState, HostError> {
        self.instance
            .host()
            .streams
            .get(&id)
            .ok_or(HostError::UnknownStream {
                worker: self.worker,
                context_id: id,
            })
    }

    fn stream_mut(&mut self, id: u32) -> Result<&mut StreamState, HostError> {
        let worker = self.worker;
        self.instance
            .host_mut()
            .streams
            .get_mut(&id)
            .ok_or(HostError::UnknownStream {
                worker,
                context_id: id,
            })
    }

    pub(crate) fn outcome(&self, id: u32) -> Result<Outcome, HostError> {
        let s = self.stream(id)?;
        Ok(if let Some(reply) = &s.local_reply {
            Outcome::LocalReply(reply.clone())
        } else if s.reset {
            Outcome::Reset
        } else if s.request_paused {
            Outcome::Paused
        } else {
            Outcome::Continued(ForwardedRequest {
                headers: s.request_headers.clone(),
                body: s.request_body.clone(),
                trailers: s.request_trailers.clone(),
            })
        })
    }

    /// Runs the response callbacks for a continued request and returns what the client gets.
    pub(crate) fn respond(
        &mut self,
        id: u32,
        response: HttpResponse,
    ) -> Result<ClientResponse, HostError> {
        match self.outcome(id)? {
            Outcome::Continued(_) => {}
            Outcome::LocalReply(reply) => return Ok(ClientResponse::from_local(&reply)),
            Outcome::Paused => {
                return Err(HostError::InvalidState(
                    "the request is still paused".into(),
                ))
            }
            Outcome::Reset => return Err(HostError::InvalidState("the stream was reset".into())),
        }
        let has_body = response.body.is_some();
        let n = len_u32(response.headers.len());
        self.stream_mut(id)?.response_headers = Some(response.headers);
        let action = self.call(
            cb::on_response_headers,
            Phase::ResponseHeaders,
            id,
            &[id, n, u32::from(!has_body)],
        );
        self.settle_response(id, action)?;
        if let Some(body) = response.body {
            if self.active(id) {
                let len = len_u32(body.len());
                let stream = self.stream_mut(id)?;
                stream.response_body = body;
                stream.response_body_seen = true;
                let action =
                    self.call(cb::on_response_body, Phase::ResponseBody, id, &[id, len, 1]);
                self.settle_response(id, action)?;
            }
        }
        let s = self.stream(id)?;
        if let Some(reply) = &s.local_reply {
            return Ok(ClientResponse::from_local(reply));
        }
        if s.reset {
            return Err(HostError::InvalidState(
                "the filter reset the stream during the response".into(),
            ));
        }
        if s.response_paused {
            return Err(HostError::InvalidState(
                "the filter paused the response (resuming a response is not modelled)".into(),
            ));
        }
        Ok(ClientResponse {
            headers: s.response_headers.clone().unwrap_or_default(),
            body: s.response_body.clone(),
        })
    }

    fn settle_response(
        &mut self,
        id: u32,
        action: Result<Option<u32>, HostError>,
    ) -> Result<(), HostError> {
        let stream = self.stream_mut(id)?;
        if let Ok(action) = action {
            stream.response_paused = action.is_some_and(|a| a != ACTION_CONTINUE);
        }
        Ok(())
    }

    /// Ends a stream: `proxy_on_log`, `proxy_on_done`, `proxy_on_delete` (Envoy's order: access logging
    /// runs before filters are destroyed); its pending calls are cancelled.
    pub(crate) fn end_stream(&mut self, id: u32) -> Result<(), HostError> {
        self.stream(id)?;
        if self.failure.is_none() {
            let logged = self.call(cb::on_log, Phase::Log, id, &[id]);
            let done = logged.and_then(|_| self.call(cb::on_done, Phase::Done, id, &[id]));
            let _ = done.and_then(|_| self.call(cb::on_delete, Phase::Delete, id, &[id]));
        }
        let state = self.instance.host_mut();
        state.streams.remove(&id);
        state.callouts.retain(|c| c.context_id != id);
        Ok(())
    }

    /// The earliest time (Unix nanos) something is due on this VM: a tick or a call's answer or timeout.
    pub(crate) fn next_due(&self) -> Option<u64> {
        if self.failure.is_some() {
            return None;
        }
        let state = self.instance.host();
        let calls = state.callouts.iter().map(|c| match c.source {
            CalloutSource::Ready(_) => c.due.min(c.deadline),
            CalloutSource::Hang | CalloutSource::Pending(_) => c.deadline,
        });
        calls.chain(state.next_tick).min()
    }

    /// True if a call waits on real I/O.
    pub(crate) fn has_pending_io(&self) -> bool {
        self.instance
            .host()
            .callouts
            .iter()
            .any(|c| matches!(c.source, CalloutSource::Pending(_)))
    }

    /// True while any HTTP stream is open.
    pub(crate) fn has_streams(&self) -> bool {
        !self.instance.host().streams.is_empty()
    }

    /// Number of calls not yet answered.
    pub(crate) fn pending_calls(&self) -> usize {
        self.instance.host().callouts.len()
    }

    /// Delivers every call answer, timeout and tick due at `now`; returns how many callbacks ran.
    pub(crate) fn fire_due(&mut self, now: u64) -> usize {
        if self.failure.is_some() {
            return 0;
        }
        let profile = self.shared().config.profile.clone();
        let mut deliveries = Vec::new();
        let mut remaining = Vec::new();
        for c in std::mem::take(&mut self.instance.host_mut().callouts) {
            let delivery = |response, timed_out, at| Delivery {
                at,
                token: c.token,
                context_id: c.context_id,
                response,
                timed_out,
            };
            let ready = match &c.source {
                CalloutSource::Ready(outcome) if c.due <= c.deadline && c.due <= now => Some(
                    delivery(response_of(outcome, &profile), is_timeout(outcome), c.due),
                ),
                CalloutSource::Pending(rx) => match rx.try_recv() {
                    Ok(outcome) => Some(delivery(
                        response_of(&outcome, &profile),
                        is_timeout(&outcome),
                        now,
                    )),
                    Err(TryRecvError::Disconnected) => Some(delivery(None, false, now)),
                    Err(TryRecvError::Empty) => None,
                },
                _ => None,
            };
            match ready {
                Some(d) => deliveries.push(d),
                None if c.deadline <= now => {
                    deliveries.push(delivery(timeout_response(&profile), true, c.deadline))
                }
                None => remaining.push(c),
            }
        }
        self.instance.host_mut().callouts = remaining;
        deliveries.sort_by_key(|d| (d.at, d.token));
        let mut ran = 0usize;
        for d in deliveries {
            if self.deliver(d) {
                ran = ran.saturating_add(1);
            }
        }
        let state = self.instance.host_mut();
        if let Some(due) = state.next_tick.filter(|due| *due <= now) {
            let period = u64::from(state.tick_period_ms).saturating_mul(1_000_000);
            state.next_tick = Some(due.saturating_add(period).max(now.saturating_add(1)));
            if self.call(cb::on_tick, Phase::Tick, ROOT, &[ROOT]).is_ok() {
                ran = ran.saturating_add(1);
            }
        }
        ran
    }

    fn deliver(&mut self, d: Delivery) -> bool {
        let state = self.instance.host_mut();
        if d.context_id != state.root_context_id && !state.streams.contains_key(&d.context_id) {
            return false;
        }
        let (headers, body, trailers) = match &d.response {
            Some(r) => (
                len_u32(r.headers.len()),
                len_u32(r.body.len()),
                len_u32(r.trailers.len()),
            ),
            None => (0, 0, 0),
        };
        // Envoy reports a failed call through proxy_get_status: BrokenConnection and a reason.
        state.last_status = match (&d.response, d.timed_out) {
            (Some(_), _) => (Status::Ok.code(), String::new()),
            (None, true) => (Status::BrokenConnection.code(), "timeout".to_string()),
            (None, false) => (Status::BrokenConnection.code(), "reset".to_string()),
        };
        state.call_response = Some(CallResponse {
            response: d.response,
        });
        let result = self.call(
            cb::on_http_call_response,
            Phase::CallResponse,
            d.context_id,
            &[d.context_id, d.token, headers, body, trailers],
        );
        self.instance.host_mut().call_response = None;
        result.is_ok()
    }

    /// Runs `proxy_on_queue_ready` on the root context.
    pub(crate) fn queue_ready(&mut self, context_id: u32, queue_id: u32) -> bool {
        self.call(
            cb::on_queue_ready,
            Phase::QueueReady,
            context_id,
            &[context_id, queue_id],
        )
        .is_ok()
    }
}

/// What the guest receives for an upstream outcome, per profile: Envoy's async client turns failures
/// before any response into its router's local replies; Kong delivers zero headers.
fn response_of(outcome: &UpstreamOutcome, profile: &Profile) -> Option<UpstreamResponse> {
    match (outcome, profile) {
        (UpstreamOutcome::Response(r), _) => Some(r.clone()),
        (UpstreamOutcome::Reset, _) | (UpstreamOutcome::ConnectFailure(_), Profile::Kong(_)) => {
            None
        }
        (UpstreamOutcome::ConnectFailure(reason), Profile::Envoy) => Some(envoy_local_reply(
            503,
            &format!(
                "upstream connect error or disconnect/reset before headers. reset reason: {reason}"
            ),
        )),
        (UpstreamOutcome::Timeout, _) => timeout_response(profile),
    }
}

/// An answer that is the call's timeout (a real client's own timer ran out before the proxy's deadline).
fn is_timeout(outcome: &UpstreamOutcome) -> bool {
    matches!(outcome, UpstreamOutcome::Timeout)
}

/// What the guest receives when a call times out: Envoy's router answers 504; Kong gives zero headers.
fn timeout_response(profile: &Profile) -> Option<UpstreamResponse> {
    match profile {
        Profile::Envoy => Some(envoy_local_reply(504, "upstream request timeout")),
        Profile::Kong(_) => None,
    }
}

/// A local reply as Envoy's router produces it inside the async client.
fn envoy_local_reply(status: u16, body: &str) -> UpstreamResponse {
    let length = body.len().to_string();
    UpstreamResponse::new(
        status,
        &[
            ("content-length", length.as_str()),
            ("content-type", "text/plain"),
        ],
        body.as_bytes(),
    )
}

/// Fails a stream after a trap: a local reply with the profile's status, or (fail-open) let it through.
fn fail_stream(stream: &mut StreamState, fail_open: bool, status: u32) {
    stream.failed = true;
    stream.request_paused = false;
    if !fail_open && stream.local_reply.is_none() {
        stream.local_reply = Some(LocalReply {
            status,
            details: "wasm_fail_stream".to_string(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            grpc_status: -1,
        });
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

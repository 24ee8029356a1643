//! A proxy: one compiled module, several worker VMs sharing data, metrics and logs, driven by one clock.

use crate::abi;
use crate::clock::nanos;
use crate::config::ProxyConfig;
use crate::engine::{self, Engine, Linked, ModuleInfo};
use crate::error::HostError;
use crate::http::{ClientResponse, HttpRequest, HttpResponse, Outcome};
use crate::metrics::MetricValue;
use crate::state::{lock, LogEntry, Shared};
use crate::vm::Vm;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stream in one worker VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub worker: usize,
    pub context_id: u32,
}

/// Most event rounds one `advance` runs before giving up (a guard against a module that keeps
/// scheduling work at the same instant).
const MAX_ROUNDS: usize = 1_000_000;

/// ABI versions this host implements.
const ABI_EXPORTS: [&str; 2] = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"];

/// The host: compile once, one VM per worker.
pub struct Proxy {
    linked: Arc<dyn Linked>,
    shared: Arc<Shared>,
    vms: Vec<Vm>,
    provided: Vec<String>,
    startup: Startup,
}

/// How long loading took: compiling the module once, then starting each VM (instantiate,
/// `_start`, `proxy_on_vm_start`, `proxy_on_configure`).
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    pub compile: Duration,
    pub start_per_vm: Duration,
}

/// A module compiled and checked once, from which any number of proxies can start (tests that
/// need a fresh proxy per case skip recompiling).
#[derive(Clone)]
pub struct Compiled {
    linked: Arc<dyn Linked>,
    engine: Engine,
    provided: Vec<String>,
    fuel: bool,
    compile: Duration,
}

impl Compiled {
    /// The engine the module was compiled on.
    pub fn engine(&self) -> Engine {
        self.engine
    }
}

impl Proxy {
    /// Compiles `wasm` on `config.engine` and starts a proxy: [`Proxy::compile_on`] then
    /// [`Proxy::start`].
    pub fn new(wasm: &[u8], config: ProxyConfig) -> Result<Proxy, HostError> {
        let compiled = Proxy::compile_on(config.engine, wasm, config.fuel)?;
        Proxy::start(&compiled, config)
    }

    /// Compiles `wasm` on [`Engine::preferred`]: see [`Proxy::compile_on`].
    pub fn compile(wasm: &[u8], fuel: bool) -> Result<Compiled, HostError> {
        Proxy::compile_on(Engine::preferred(), wasm, fuel)
    }

    /// Compiles `wasm` on `engine` (with fuel counting or not) and refuses it if it imports
    /// anything this host does not provide or lacks the proxy-wasm exports.
    pub fn compile_on(engine: Engine, wasm: &[u8], fuel: bool) -> Result<Compiled, HostError> {
        let check = |module: &ModuleInfo| {
            abi::check_imports(&module.imports)?;
            if !module
                .exports
                .iter()
                .any(|e| ABI_EXPORTS.contains(&e.as_str()))
            {
                return Err(HostError::BadModule(
                    "no proxy_abi_version_0_2_1 export (unsupported ABI version)".into(),
                ));
            }
            Ok(())
        };
        let (linked, compile) = engine::compile(engine, wasm, fuel, &check)?;
        Ok(Compiled {
            linked,
            engine,
            provided: abi::provided(),
            fuel,
            compile,
        })
    }

    /// Starts `config.workers` VMs of `compiled` (each runs start and configure).
    pub fn start(compiled: &Compiled, config: ProxyConfig) -> Result<Proxy, HostError> {
        if config.workers == 0 {
            return Err(HostError::Config("at least one worker is needed".into()));
        }
        if config.fuel != compiled.fuel {
            return Err(HostError::Config(
                "config.fuel differs from the fuel setting the module was compiled with".into(),
            ));
        }
        if config.engine != compiled.engine {
            return Err(HostError::Config(format!(
                "config.engine is {} but the module was compiled on {}",
                config.engine, compiled.engine
            )));
        }
        let workers = config.workers;
        let shared = Arc::new(Shared::new(config));
        let mut vms = Vec::with_capacity(workers);
        let starting = Instant::now();
        for worker in 0..workers {
            vms.push(Vm::start(&*compiled.linked, worker, shared.clone())?);
        }
        let start_per_vm = starting.elapsed() / u32::try_from(workers).unwrap_or(u32::MAX);
        Ok(Proxy {
            linked: compiled.linked.clone(),
            shared,
            vms,
            provided: compiled.provided.clone(),
            startup: Startup {
                compile: compiled.compile,
                start_per_vm,
            },
        })
    }

    /// The engine running this proxy's VMs.
    pub fn engine(&self) -> Engine {
        self.shared.config.engine
    }

    /// Compile and per-VM start times of [`Proxy::new`].
    pub fn startup(&self) -> Startup {
        self.startup
    }

    /// Every import this host provides, as `module.name`.
    pub fn provided_imports(&self) -> &[String] {
        &self.provided
    }

    /// Number of worker VMs.
    pub fn workers(&self) -> usize {
        self.vms.len()
    }

    /// The proxy's configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    fn vm(&self, worker: usize) -> Result<&Vm, HostError> {
        self.vms.get(worker).ok_or(HostError::UnknownWorker(worker))
    }

    /// Kong recycles a VM that trapped: a fresh instance, started and configured again.
    fn vm_mut(&mut self, worker: usize) -> Result<&mut Vm, HostError> {
        let kong = matches!(self.shared.config.profile, crate::config::Profile::Kong(_));
        let failed = self.vm(worker)?.failure.is_some();
        if kong && failed {
            let fresh = Vm::start(&*self.linked, worker, self.shared.clone())?;
            if let Some(slot) = self.vms.get_mut(worker) {
                *slot = fresh;
            }
        }
        self.vms
            .get_mut(worker)
            .ok_or(HostError::UnknownWorker(worker))
    }

    /// Replaces `worker`'s VM with a fresh instance (instantiate, `_start`, `proxy_on_vm_start`,
    /// `proxy_on_configure`), as a proxy does when a worker restarts: shared data, queues,
    /// metrics and logs survive; the old VM's streams, pending calls and memory do not.
    pub fn restart_worker(&mut self, worker: usize) -> Result<(), HostError> {
        self.vm(worker)?;
        let fresh = Vm::start(&*self.linked, worker, self.shared.clone())?;
        let slot = self
            .vms
            .get_mut(worker)
            .ok_or(HostError::UnknownWorker(worker))?;
        *slot = fresh;
        Ok(())
    }

    /// Sends a request through `worker`'s filter (context creation, request headers, body, trailers).
    pub fn send_request(
        &mut self,
        worker: usize,
        request: HttpRequest,
    ) -> Result<StreamId, HostError> {
        let context_id = self.vm_mut(worker)?.send_request(request)?;
        self.deliver_queue_notifications();
        Ok(StreamId { worker, context_id })
    }

    /// Where the request stands now.
    pub fn outcome(&self, stream: StreamId) -> Result<Outcome, HostError> {
        self.vm(stream.worker)?.outcome(stream.context_id)
    }

    /// Sends a request and drives the clock (simulated: event by event; real: polling) until the
    /// request is no longer paused or `max_wait` has passed.
    pub fn run_request(
        &mut self,
        worker: usize,
        request: HttpRequest,
        max_wait: Duration,
    ) -> Result<(StreamId, Outcome), HostError> {
        let stream = self.send_request(worker, request)?;
        let clock = self.shared.clock().clone();
        let limit = clock.now_nanos().saturating_add(nanos(max_wait));
        let started = Instant::now();
        self.poll()?;
        while self.outcome(stream)? == Outcome::Paused {
            if clock.is_simulated() && !self.has_pending_io() {
                match self.next_due() {
                    Some(t) if t <= limit => {
                        let step = t.saturating_sub(clock.now_nanos());
                        self.advance(Duration::from_nanos(step))?;
                    }
                    _ => break,
                }
            } else {
                if started.elapsed() >= max_wait {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
                self.poll()?;
            }
        }
        Ok((stream, self.outcome(stream)?))
    }

    /// Gives a continued request's upstream response to the filter's response callbacks, ends the stream
    /// (`on_log`, `on_done`, `on_delete`) and returns what the client receives. For a local reply the
    /// response is ignored and the local reply returned.
    pub fn finish(
        &mut self,
        stream: StreamId,
        response: HttpResponse,
    ) -> Result<ClientResponse, HostError> {
        let vm = self
            .vms
            .get_mut(stream.worker)
            .ok_or(HostError::UnknownWorker(stream.worker))?;
        let client = vm.respond(stream.context_id, response)?;
        vm.end_stream(stream.context_id)?;
        self.deliver_queue_notifications();
        Ok(client)
    }

    /// Ends a stream without a response (after a local reply, a reset, or a client that went away).
    pub fn end_stream(&mut self, stream: StreamId) -> Result<(), HostError> {
        let vm = self
            .vms
            .get_mut(stream.worker)
            .ok_or(HostError::UnknownWorker(stream.worker))?;
        vm.end_stream(stream.context_id)?;
        self.deliver_queue_notifications();
        Ok(())
    }

    /// The earliest time (Unix nanos) any VM has something due.
    pub fn next_due(&self) -> Option<u64> {
        self.vms.iter().filter_map(Vm::next_due).min()
    }

    /// Delivers everything due at the current time (ticks, call answers, timeouts, finished real I/O,
    /// queue notifications). Returns the number of guest callbacks run.
    pub fn poll(&mut self) -> Result<usize, HostError> {
        let now = self.shared.clock().now_nanos();
        let mut ran = self.deliver_queue_notifications();
        for worker in 0..self.vms.len() {
            if self.vm(worker)?.has_streams() {
                // A failed VM with live streams is kept until they end, so their outcomes stay readable.
                let vm = self
                    .vms
                    .get_mut(worker)
                    .ok_or(HostError::UnknownWorker(worker))?;
                ran = ran.saturating_add(vm.fire_due(now));
                continue;
            }
            let vm = self.vm_mut(worker)?;
            ran = ran.saturating_add(vm.fire_due(now));
            ran = ran.saturating_add(self.deliver_queue_notifications());
        }
        Ok(ran)
    }

    /// Moves time forward by `by`, firing every event on the way in time order (simulated clock). With a
    /// real clock, polls for `by` of wall time instead.
    pub fn advance(&mut self, by: Duration) -> Result<usize, HostError> {
        let clock = self.shared.clock().clone();
        if !clock.is_simulated() {
            let started = Instant::now();
            let mut ran = self.poll()?;
            while started.elapsed() < by {
                std::thread::sleep(Duration::from_millis(1).min(by));
                ran = ran.saturating_add(self.poll()?);
            }
            return Ok(ran);
        }
        let target = clock.now_nanos().saturating_add(nanos(by));
        let mut ran = 0usize;
        for _ in 0..MAX_ROUNDS {
            ran = ran.saturating_add(self.poll()?);
            match self.next_due() {
                Some(t) if t <= target => clock.advance_to(t),
                _ => {
                    clock.advance_to(target);
                    return Ok(ran.saturating_add(self.poll()?));
                }
            }
        }
        Err(HostError::InvalidState(
            "events keep falling due at the same instant".into(),
        ))
    }

    fn deliver_queue_notifications(&mut self) -> usize {
        let ready = lock(&self.shared.queues).take_ready();
        let mut ran = 0usize;
        for (owner, queue_id) in ready {
            if let Some(vm) = self.vms.get_mut(owner.worker) {
                if vm.failure.is_none() && vm.queue_ready(owner.context_id, queue_id) {
                    ran = ran.saturating_add(1);
                }
            }
        }
        ran
    }

    /// True while a call waits on real I/O (HTTP upstream).
    pub fn has_pending_io(&self) -> bool {
        self.vms.iter().any(Vm::has_pending_io)
    }

    /// Calls dispatched and not yet answered, over all workers.
    pub fn pending_calls(&self) -> usize {
        self.vms.iter().map(Vm::pending_calls).sum()
    }

    /// A metric by its full name (with the profile's prefix, e.g. `wasmcustom.requests_total`).
    pub fn metric(&self, full_name: &str) -> Option<MetricValue> {
        lock(&self.shared.metrics).value(full_name)
    }

    /// A metric by the name the guest defined (the profile's prefix is added).
    pub fn guest_metric(&self, name: &str) -> Option<MetricValue> {
        self.metric(&format!(
            "{}{}",
            self.shared.config.profile.metric_prefix(),
            name
        ))
    }

    /// Every metric, sorted by full name.
    pub fn metrics(&self) -> Vec<(String, MetricValue)> {
        lock(&self.shared.metrics).all()
    }

    /// Captured log lines so far.
    pub fn logs(&self) -> Vec<LogEntry> {
        lock(&self.shared.logs).clone()
    }

    /// Captured log lines, clearing the capture.
    pub fn take_logs(&self) -> Vec<LogEntry> {
        std::mem::take(&mut *lock(&self.shared.logs))
    }

    /// Reads shared data as a guest would (value and CAS).
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        lock(&self.shared.data).get(key).ok()
    }

    /// Writes shared data from outside (like another VM would), with the same CAS rule.
    pub fn set_shared_data(
        &self,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<(), crate::types::Status> {
        lock(&self.shared.data).set(key, value, cas)
    }

    /// Shared-data entries evicted for lack of room (Kong's shm zone).
    pub fn shared_data_evictions(&self) -> u64 {
        lock(&self.shared.data).evictions()
    }

    /// Enqueues onto a shared queue from outside (the owner is notified on the next poll).
    pub fn enqueue(&self, queue_name: &str, value: &[u8]) -> Result<(), crate::types::Status> {
        let mut queues = lock(&self.shared.queues);
        let id = queues
            .resolve(&self.shared.config.vm_id, queue_name)
            .ok_or(crate::types::Status::NotFound)?;
        queues.enqueue(id, value)
    }

    /// Why a worker's VM failed (trap), if it has.
    pub fn vm_failure(&self, worker: usize) -> Option<String> {
        self.vms.get(worker).and_then(|vm| vm.failure.clone())
    }

    /// Fuel a worker's VM used since it started (needs `config.fuel`).
    pub fn fuel_consumed(&self, worker: usize) -> Option<u64> {
        let vm = self.vms.get(worker)?;
        self.shared.config.fuel.then(|| vm.fuel_consumed())
    }

    /// Fuel used by a worker's most recent guest callback (needs `config.fuel`).
    pub fn last_call_fuel(&self, worker: usize) -> Option<u64> {
        let vm = self.vms.get(worker)?;
        self.shared.config.fuel.then_some(vm.last_call_fuel)
    }

    /// Host functions a worker's guest has called since its VM started (every import).
    pub fn hostcalls(&self, worker: usize) -> Option<u64> {
        self.vms.get(worker).map(Vm::hostcalls)
    }

    /// Host functions a worker's guest has called since its VM started, by import name
    /// (`proxy_log`, `proxy_increment_metric`...): subtract two readings for what a request did.
    pub fn hostcalls_by_name(&self, worker: usize) -> Option<BTreeMap<&'static str, u64>> {
        self.vms
            .get(worker)
            .map(|vm| vm.hostcalls_by_name().clone())
    }

    /// Host functions called by a worker's most recent guest callback.
    pub fn last_call_hostcalls(&self, worker: usize) -> Option<u64> {
        self.vms.get(worker).map(|vm| vm.last_call_hostcalls)
    }

    /// Workers whose VMs are running (not failed).
    pub fn healthy_workers(&self) -> Vec<usize> {
        self.vms
            .iter()
            .filter(|vm| vm.failure.is_none())
            .map(Vm::worker)
            .collect()
    }
}

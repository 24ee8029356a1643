//! State kept in each VM's engine `Store` (never in globals), and the proxy-wide state VMs share.

use crate::clock::Clock;
use crate::config::{Profile, ProxyConfig};
use crate::maps::HeaderMap;
use crate::metrics::Metrics;
use crate::shared::{SharedData, SharedQueues};
use crate::types::LogLevel;
use crate::upstream::{UpstreamOutcome, UpstreamResponse};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// `proxy_log`.
    Proxy,
    /// WASI `fd_write` to stdout (logged at info, as Envoy does).
    Stdout,
    /// WASI `fd_write` to stderr (logged at error).
    Stderr,
    /// The host itself (traps, WASI calls Envoy reports as errors).
    Host,
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub worker: usize,
    pub level: LogLevel,
    pub source: LogSource,
    pub message: String,
}

/// Proxy-wide state shared by every VM.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) data: Mutex<SharedData>,
    pub(crate) queues: Mutex<SharedQueues>,
    pub(crate) metrics: Mutex<Metrics>,
    pub(crate) logs: Mutex<Vec<LogEntry>>,
}

/// Locks a mutex even if another thread panicked while holding it (the data stays usable for tests).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(config: ProxyConfig) -> Shared {
        let capacity = match &config.profile {
            Profile::Envoy => None,
            Profile::Kong(k) => Some(k.shm_capacity_bytes),
        };
        let value_limit = config.shared_value_limit;
        Shared {
            config,
            data: Mutex::new(SharedData::new(capacity, value_limit)),
            queues: Mutex::new(SharedQueues::default()),
            metrics: Mutex::new(Metrics::default()),
            logs: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.config.clock
    }

    pub(crate) fn log(&self, worker: usize, level: LogLevel, source: LogSource, message: String) {
        if level >= self.config.log_level {
            lock(&self.logs).push(LogEntry {
                worker,
                level,
                source,
                message,
            });
        }
    }
}

/// Which guest callback is running (decides which maps and buffers exist and, for Kong, where
/// dispatch is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Start,
    Configure,
    Tick,
    QueueReady,
    ContextCreate,
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
    CallResponse,
    Log,
    Done,
    Delete,
}

/// A local reply sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub details: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub grpc_status: i32,
}

/// One HTTP stream's data, as the filter sees it.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) request_headers: HeaderMap,
    pub(crate) request_body: Vec<u8>,
    pub(crate) request_body_seen: bool,
    pub(crate) request_trailers: HeaderMap,
    pub(crate) response_headers: Option<HeaderMap>,
    pub(crate) response_body: Vec<u8>,
    pub(crate) response_body_seen: bool,
    pub(crate) response_trailers: HeaderMap,
    /// The filter stopped iteration on the request and has not resumed it.
    pub(crate) request_paused: bool,
    pub(crate) response_paused: bool,
    pub(crate) local_reply: Option<LocalReply>,
    /// `proxy_close_stream` was called.
    pub(crate) reset: bool,
    /// The VM trapped while handling this stream.
    pub(crate) failed: bool,
    pub(crate) properties: HashMap<Vec<u8>, Vec<u8>>,
}

/// Where a pending call's answer comes from.
pub(crate) enum CalloutSource {
    /// Known answer, delivered at `due` (or a timeout if `due` is past the deadline).
    Ready(UpstreamOutcome),
    /// Nothing will come: times out.
    Hang,
    /// Real I/O in progress.
    Pending(Receiver<UpstreamOutcome>),
}

/// A call dispatched with `proxy_http_call` and not yet answered.
pub(crate) struct PendingCallout {
    pub(crate) token: u32,
    pub(crate) context_id: u32,
    /// When a `Ready` answer arrives (Unix nanos).
    pub(crate) due: u64,
    /// When the call times out (Unix nanos).
    pub(crate) deadline: u64,
    pub(crate) source: CalloutSource,
}

/// The answer being delivered during `proxy_on_http_call_response`.
pub(crate) struct CallResponse {
    /// None for a reset or timeout (zero headers).
    pub(crate) response: Option<UpstreamResponse>,
}

/// Everything in one VM's `Store`.
pub(crate) struct HostState {
    /// Host functions the guest called (every import, counted by the engine-neutral glue).
    pub(crate) hostcalls: u64,
    /// The same, by import name (`proxy_log`...): what a request's hostcalls are.
    pub(crate) hostcalls_by_name: BTreeMap<&'static str, u64>,
    pub(crate) worker: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) root_context_id: u32,
    pub(crate) next_context_id: u32,
    /// The context host calls act on (`proxy_set_effective_context` changes it).
    pub(crate) current_context: u32,
    pub(crate) phase: Phase,
    pub(crate) streams: HashMap<u32, StreamState>,
    pub(crate) root_properties: HashMap<Vec<u8>, Vec<u8>>,
    /// Tick period in ms (0 = off) and when the next tick is due (Unix nanos).
    pub(crate) tick_period_ms: u32,
    pub(crate) next_tick: Option<u64>,
    pub(crate) callouts: Vec<PendingCallout>,
    pub(crate) next_token: u32,
    pub(crate) call_response: Option<CallResponse>,
    /// Status reported by `proxy_get_status` (last call result: code and message).
    pub(crate) last_status: (u32, String),
    pub(crate) random_state: u64,
}

impl HostState {
    pub(crate) fn new(worker: usize, shared: Arc<Shared>) -> HostState {
        let seed = shared.config.random_seed
            ^ (u64::try_from(worker)
                .unwrap_or(0)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15));
        HostState {
            hostcalls: 0,
            hostcalls_by_name: BTreeMap::new(),
            worker,
            shared,
            root_context_id: 1,
            next_context_id: 2,
            current_context: 1,
            phase: Phase::Idle,
            streams: HashMap::new(),
            root_properties: HashMap::new(),
            tick_period_ms: 0,
            next_tick: None,
            callouts: Vec::new(),
            next_token: 1,
            call_response: None,
            last_status: (0, String::new()),
            random_state: seed | 1,
        }
    }

    pub(crate) fn log(&self, level: LogLevel, source: LogSource, message: String) {
        self.shared.log(self.worker, level, source, message);
    }

    pub(crate) fn now(&self) -> u64 {
        self.shared.clock().now_nanos()
    }

    /// The stream the current context refers to, if it is a stream.
    pub(crate) fn current_stream(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.current_context)
    }

    /// xorshift64*: deterministic bytes for WASI `random_get`.
    pub(crate) fn next_random(&mut self) -> u64 {
        let mut x = self.random_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random_state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A token not used by any pending call (never 0).
    pub(crate) fn fresh_token(&mut self) -> u32 {
        loop {
            let token = self.next_token;
            self.next_token = self.next_token.wrapping_add(1).max(1);
            if token != 0 && !self.callouts.iter().any(|c| c.token == token) {
                return token;
            }
        }
    }
}

//! The proxy-wasm adapter: host events in, core calls, host calls out. No decisions here.
//!
//! One VM per worker thread (Envoy) or instance (Kong). Its root context configures the
//! engine and drives fetches from a 200 ms tick; its HTTP streams ask the engine for each request.
//! Both reach the VM's [`worker::Worker`] through an `Rc<RefCell<_>>`: proxy-wasm callbacks
//! never nest, so a failed borrow is an impossible state, answered with a 503, never a trap.

mod host;
mod metrics;
mod request;
mod settings;
mod shared;
mod worker;

use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

use crate::engine::Engine;
use host::Level;
use worker::{SharedWorker, Step, Worker};

/// What a worker published reaches the other workers of the proxy at their next tick (each
/// reads one small version key per resource, `Coordinator::sync`), so the tick bounds that
/// step of propagation; a held fetch's answer is acted on at once, not at a tick. Measured in
/// the test host (`test-host/tests/all/propagation.rs`, hostcalls and time per idle tick).
/// Set once: Kong traps a second call (ngx_wasm_module src/common/proxy_wasm/
/// ngx_proxy_wasm_host.c, `ngx_proxy_wasm_hfuncs_set_tick_period`: "tick_period already set");
/// Envoy keeps one timer per root context (proxy-wasm-cpp-host src/context.cc,
/// `ContextBase::setTickPeriod` -> `WasmBase::setTickPeriod`).
const TICK: Duration = Duration::from_millis(200);
/// One byte over the core's 1 MiB configuration limit, so it reports an oversized document.
const MAX_CONFIG_READ: usize = 1024 * 1024 + 1;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root { worker: Worker::shared(), context_id, tick_set: false })
    });
}}

struct Root {
    worker: SharedWorker,
    context_id: u32,
    /// Kong allows the tick period to be set once only.
    tick_set: bool,
}

impl Context for Root {
    /// The VM is going away (shutdown, or a new configuration on Envoy): the counters not
    /// written yet are written now.
    fn on_done(&mut self) -> bool {
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.metrics.flush();
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        deliver_call_response(&self.worker, token, num_headers, body_size, self.context_id);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = host::buffer(BufferType::PluginConfiguration, MAX_CONFIG_READ);
        let engine = match Engine::from_config_json(&raw) {
            Ok(engine) => engine,
            Err(errors) => {
                for error in &errors.0 {
                    host::log(
                        Level::Error,
                        &format!("revguard: invalid configuration: {error}"),
                    );
                }
                return false;
            }
        };
        let Ok(mut worker) = self.worker.try_borrow_mut() else {
            return false;
        };
        worker.configure(engine);
        if !self.tick_set {
            self.tick_set = host::set_tick_period(TICK).is_ok();
        }
        worker.metrics.set_batched(self.tick_set);
        true
    }

    fn on_tick(&mut self) {
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.on_tick(self.context_id);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            worker: self.worker.clone(),
            context_id,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    worker: SharedWorker,
    context_id: u32,
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        deliver_call_response(&self.worker, token, num_headers, body_size, self.context_id);
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut worker) = self.worker.try_borrow_mut() {
            worker.stream_done(self.context_id);
        }
        true
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Ok(mut worker) = self.worker.try_borrow_mut() else {
            let _ = host::send_local_response(503, &[], b"");
            return Action::Pause;
        };
        match worker.on_request(self.context_id) {
            Step::Continue => Action::Continue,
            Step::Pause => Action::Pause,
        }
    }
}

/// A callout's answer reaches whichever context dispatched it; the worker routes it.
fn deliver_call_response(
    worker: &SharedWorker,
    token: u32,
    num_headers: usize,
    body_size: usize,
    context_id: u32,
) {
    if let Ok(mut worker) = worker.try_borrow_mut() {
        worker.on_call_response(token, num_headers, body_size, context_id);
    }
}

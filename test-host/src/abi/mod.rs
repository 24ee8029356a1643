//! The proxy-wasm ABI 0.2.1 host functions (module `env`), with Envoy's argument checks and status codes,
//! and the one table of every import the host provides (WASI's from `wasi.rs` included).
//!
//! Each file holds the host functions of one area of the ABI, written once against the engine-neutral
//! [`Guest`](crate::engine::Guest); this one only lists them, so the whole import surface reads as one
//! table that each engine's glue expands into its own linker registrations.

pub(crate) mod buffers;
pub(crate) mod calls;
mod common;
pub(crate) mod context;
pub(crate) mod grpc;
pub(crate) mod logging;
pub(crate) mod maps;
pub(crate) mod metrics;
pub(crate) mod properties;
pub(crate) mod shared;
pub(crate) mod streams;
pub(crate) mod timers;

pub(crate) use common::{C, R};

use crate::error::HostError;

/// Expands `$register!` with every import: `"module" "name" (params) -> result = host function;`.
/// Parameters are the ABI's (`u32` for `i32`, `i64`/`u64` for `i64`); every host function takes the
/// calling [`Guest`](crate::engine::Guest) first and returns `Result<result, Trap>`.
macro_rules! host_functions {
    ($register:ident) => {
        $register! {
            // Logging and time.
            "env" "proxy_log" (level: u32, ptr: u32, len: u32) -> u32 = crate::abi::logging::proxy_log;
            "env" "proxy_get_log_level" (ptr: u32) -> u32 = crate::abi::logging::proxy_get_log_level;
            "env" "proxy_get_current_time_nanoseconds" (ptr: u32) -> u32 = crate::abi::timers::proxy_get_current_time_nanoseconds;
            "env" "proxy_set_tick_period_milliseconds" (period: u32) -> u32 = crate::abi::timers::proxy_set_tick_period_milliseconds;
            // Buffers.
            "env" "proxy_get_buffer_bytes" (kind: u32, start: u32, max: u32, ptr_ptr: u32, size_ptr: u32) -> u32 = crate::abi::buffers::proxy_get_buffer_bytes;
            "env" "proxy_set_buffer_bytes" (kind: u32, start: u32, size: u32, ptr: u32, len: u32) -> u32 = crate::abi::buffers::proxy_set_buffer_bytes;
            // Header maps.
            "env" "proxy_get_header_map_pairs" (kind: u32, ptr_ptr: u32, size_ptr: u32) -> u32 = crate::abi::maps::proxy_get_header_map_pairs;
            "env" "proxy_set_header_map_pairs" (kind: u32, ptr: u32, len: u32) -> u32 = crate::abi::maps::proxy_set_header_map_pairs;
            "env" "proxy_get_header_map_size" (kind: u32, size_ptr: u32) -> u32 = crate::abi::maps::proxy_get_header_map_size;
            "env" "proxy_get_header_map_value" (kind: u32, kptr: u32, klen: u32, ptr_ptr: u32, size_ptr: u32) -> u32 = crate::abi::maps::proxy_get_header_map_value;
            "env" "proxy_add_header_map_value" (kind: u32, kptr: u32, klen: u32, vptr: u32, vlen: u32) -> u32 = crate::abi::maps::proxy_add_header_map_value;
            "env" "proxy_replace_header_map_value" (kind: u32, kptr: u32, klen: u32, vptr: u32, vlen: u32) -> u32 = crate::abi::maps::proxy_replace_header_map_value;
            "env" "proxy_remove_header_map_value" (kind: u32, kptr: u32, klen: u32) -> u32 = crate::abi::maps::proxy_remove_header_map_value;
            // Properties.
            "env" "proxy_get_property" (ptr: u32, len: u32, ptr_ptr: u32, size_ptr: u32) -> u32 = crate::abi::properties::proxy_get_property;
            "env" "proxy_set_property" (ptr: u32, len: u32, vptr: u32, vlen: u32) -> u32 = crate::abi::properties::proxy_set_property;
            // Stream control.
            "env" "proxy_continue_stream" (kind: u32) -> u32 = crate::abi::streams::proxy_continue_stream;
            "env" "proxy_continue_request" () -> u32 = crate::abi::streams::proxy_continue_request;
            "env" "proxy_continue_response" () -> u32 = crate::abi::streams::proxy_continue_response;
            "env" "proxy_close_stream" (kind: u32) -> u32 = crate::abi::streams::proxy_close_stream;
            "env" "proxy_send_local_response" (code: u32, dptr: u32, dlen: u32, bptr: u32, blen: u32, hptr: u32, hlen: u32, grpc_status: i32) -> u32 = crate::abi::streams::proxy_send_local_response;
            // HTTP calls.
            "env" "proxy_http_call" (uptr: u32, ulen: u32, hptr: u32, hlen: u32, bptr: u32, blen: u32, tptr: u32, tlen: u32, timeout_ms: u32, token_ptr: u32) -> u32 = crate::abi::calls::proxy_http_call;
            // Shared data and queues.
            "env" "proxy_get_shared_data" (kptr: u32, klen: u32, ptr_ptr: u32, size_ptr: u32, cas_ptr: u32) -> u32 = crate::abi::shared::proxy_get_shared_data;
            "env" "proxy_set_shared_data" (kptr: u32, klen: u32, vptr: u32, vlen: u32, cas: u32) -> u32 = crate::abi::shared::proxy_set_shared_data;
            "env" "proxy_register_shared_queue" (ptr: u32, len: u32, id_ptr: u32) -> u32 = crate::abi::shared::proxy_register_shared_queue;
            "env" "proxy_resolve_shared_queue" (vptr: u32, vlen: u32, nptr: u32, nlen: u32, id_ptr: u32) -> u32 = crate::abi::shared::proxy_resolve_shared_queue;
            "env" "proxy_dequeue_shared_queue" (id: u32, ptr_ptr: u32, size_ptr: u32) -> u32 = crate::abi::shared::proxy_dequeue_shared_queue;
            "env" "proxy_enqueue_shared_queue" (id: u32, ptr: u32, len: u32) -> u32 = crate::abi::shared::proxy_enqueue_shared_queue;
            // Metrics.
            "env" "proxy_define_metric" (kind: u32, ptr: u32, len: u32, id_ptr: u32) -> u32 = crate::abi::metrics::proxy_define_metric;
            "env" "proxy_increment_metric" (id: u32, offset: i64) -> u32 = crate::abi::metrics::proxy_increment_metric;
            "env" "proxy_record_metric" (id: u32, value: u64) -> u32 = crate::abi::metrics::proxy_record_metric;
            "env" "proxy_get_metric" (id: u32, ptr: u32) -> u32 = crate::abi::metrics::proxy_get_metric;
            // Context, status, foreign functions.
            "env" "proxy_set_effective_context" (context_id: u32) -> u32 = crate::abi::context::proxy_set_effective_context;
            "env" "proxy_done" () -> u32 = crate::abi::context::proxy_done;
            "env" "proxy_get_status" (code_ptr: u32, ptr_ptr: u32, size_ptr: u32) -> u32 = crate::abi::context::proxy_get_status;
            "env" "proxy_call_foreign_function" (n: u32, nl: u32, a: u32, al: u32, rp: u32, rs: u32) -> u32 = crate::abi::context::proxy_call_foreign_function;
            // gRPC (not simulated).
            "env" "proxy_grpc_call" (a: u32, b: u32, c2: u32, d: u32, e: u32, f: u32, g: u32, h: u32, i: u32, j: u32, k: u32, l: u32) -> u32 = crate::abi::grpc::proxy_grpc_call;
            "env" "proxy_grpc_stream" (a: u32, b: u32, c2: u32, d: u32, e: u32, f: u32, g: u32, h: u32, i: u32) -> u32 = crate::abi::grpc::proxy_grpc_stream;
            "env" "proxy_grpc_send" (t: u32, p: u32, l: u32, e: u32) -> u32 = crate::abi::grpc::proxy_grpc_send;
            "env" "proxy_grpc_cancel" (t: u32) -> u32 = crate::abi::grpc::proxy_grpc_cancel;
            "env" "proxy_grpc_close" (t: u32) -> u32 = crate::abi::grpc::proxy_grpc_close;
            // WASI: exactly the calls Envoy (proxy-wasm-cpp-host) provides, see wasi.rs.
            "wasi_snapshot_preview1" "fd_write" (fd: u32, iovs: u32, count: u32, written_ptr: u32) -> u32 = crate::wasi::fd_write;
            "wasi_snapshot_preview1" "fd_read" (fd: u32, iovs: u32, n: u32, read: u32) -> u32 = crate::wasi::fd_read;
            "wasi_snapshot_preview1" "fd_seek" (fd: u32, off: i64, whence: u32, new: u32) -> u32 = crate::wasi::fd_seek;
            "wasi_snapshot_preview1" "fd_close" (fd: u32) -> u32 = crate::wasi::fd_close;
            "wasi_snapshot_preview1" "fd_fdstat_get" (fd: u32, stat_ptr: u32) -> u32 = crate::wasi::fd_fdstat_get;
            "wasi_snapshot_preview1" "fd_prestat_get" (fd: u32, buf: u32) -> u32 = crate::wasi::fd_prestat_get;
            "wasi_snapshot_preview1" "fd_prestat_dir_name" (fd: u32, p: u32, l: u32) -> u32 = crate::wasi::fd_prestat_dir_name;
            "wasi_snapshot_preview1" "path_open" (fd: u32, df: u32, p: u32, pl: u32, of: u32, rb: i64, ri: i64, ff: u32, out: u32) -> u32 = crate::wasi::path_open;
            "wasi_snapshot_preview1" "environ_sizes_get" (count_ptr: u32, size_ptr: u32) -> u32 = crate::wasi::environ_sizes_get;
            "wasi_snapshot_preview1" "environ_get" (env: u32, buf: u32) -> u32 = crate::wasi::environ_get;
            "wasi_snapshot_preview1" "args_sizes_get" (count_ptr: u32, size_ptr: u32) -> u32 = crate::wasi::args_sizes_get;
            "wasi_snapshot_preview1" "args_get" (argv: u32, buf: u32) -> u32 = crate::wasi::args_get;
            "wasi_snapshot_preview1" "clock_time_get" (id: u32, precision: i64, out: u32) -> u32 = crate::wasi::clock_time_get;
            "wasi_snapshot_preview1" "random_get" (ptr: u32, len: u32) -> u32 = crate::wasi::random_get;
            "wasi_snapshot_preview1" "proc_exit" (code: u32) -> () = crate::wasi::proc_exit;
        }
    };
}
pub(crate) use host_functions;

macro_rules! names {
    ($($module:literal $name:literal ($($arg:ident: $t:ty),*) -> $r:ty = $f:path;)*) => {
        /// `(module, name)` of every import the host provides.
        const PROVIDED: &[(&str, &str)] = &[$(($module, $name)),*];
    };
}
host_functions!(names);

/// Every provided import, as `module.name`, sorted.
pub(crate) fn provided() -> Vec<String> {
    let mut names: Vec<String> = PROVIDED.iter().map(|(m, n)| format!("{m}.{n}")).collect();
    names.sort();
    names
}

/// Refuses a module that imports anything not provided, naming the first such import (Envoy
/// refuses to load such a module).
pub(crate) fn check_imports(imports: &[(String, String)]) -> Result<(), HostError> {
    for (module, name) in imports {
        if !PROVIDED.iter().any(|(m, n)| m == module && n == name) {
            return Err(HostError::UnknownImport {
                module: module.clone(),
                name: name.clone(),
            });
        }
    }
    Ok(())
}

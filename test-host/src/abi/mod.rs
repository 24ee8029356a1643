//! The proxy-wasm ABI 0.2.1 host functions (module `env`), with Envoy's argument checks and status codes.
//!
//! Each file holds the host functions of one area of the ABI; this one only registers them, so the
//! whole import surface reads as one table.

mod buffers;
mod calls;
mod common;
mod context;
mod grpc;
mod logging;
mod maps;
mod metrics;
mod properties;
mod shared;
mod streams;
mod timers;

use crate::error::HostError;
use crate::registry::Registry;

pub(crate) fn define(reg: &mut Registry) -> Result<(), HostError> {
    const ENV: &str = "env";

    // Logging and time.
    reg.func(ENV, "proxy_log", logging::proxy_log)?;
    reg.func(ENV, "proxy_get_log_level", logging::proxy_get_log_level)?;
    reg.func(
        ENV,
        "proxy_get_current_time_nanoseconds",
        timers::proxy_get_current_time_nanoseconds,
    )?;
    reg.func(
        ENV,
        "proxy_set_tick_period_milliseconds",
        timers::proxy_set_tick_period_milliseconds,
    )?;

    // Buffers.
    reg.func(
        ENV,
        "proxy_get_buffer_bytes",
        buffers::proxy_get_buffer_bytes,
    )?;
    reg.func(
        ENV,
        "proxy_set_buffer_bytes",
        buffers::proxy_set_buffer_bytes,
    )?;

    // Header maps.
    reg.func(
        ENV,
        "proxy_get_header_map_pairs",
        maps::proxy_get_header_map_pairs,
    )?;
    reg.func(
        ENV,
        "proxy_set_header_map_pairs",
        maps::proxy_set_header_map_pairs,
    )?;
    reg.func(
        ENV,
        "proxy_get_header_map_size",
        maps::proxy_get_header_map_size,
    )?;
    reg.func(
        ENV,
        "proxy_get_header_map_value",
        maps::proxy_get_header_map_value,
    )?;
    reg.func(
        ENV,
        "proxy_add_header_map_value",
        maps::proxy_add_header_map_value,
    )?;
    reg.func(
        ENV,
        "proxy_replace_header_map_value",
        maps::proxy_replace_header_map_value,
    )?;
    reg.func(
        ENV,
        "proxy_remove_header_map_value",
        maps::proxy_remove_header_map_value,
    )?;

    // Properties.
    reg.func(ENV, "proxy_get_property", properties::proxy_get_property)?;
    reg.func(ENV, "proxy_set_property", properties::proxy_set_property)?;

    // Stream control.
    reg.func(ENV, "proxy_continue_stream", streams::proxy_continue_stream)?;
    reg.func(
        ENV,
        "proxy_continue_request",
        streams::proxy_continue_request,
    )?;
    reg.func(
        ENV,
        "proxy_continue_response",
        streams::proxy_continue_response,
    )?;
    reg.func(ENV, "proxy_close_stream", streams::proxy_close_stream)?;
    reg.func(
        ENV,
        "proxy_send_local_response",
        streams::proxy_send_local_response,
    )?;

    // HTTP calls.
    reg.func(ENV, "proxy_http_call", calls::proxy_http_call)?;

    // Shared data and queues.
    reg.func(ENV, "proxy_get_shared_data", shared::proxy_get_shared_data)?;
    reg.func(ENV, "proxy_set_shared_data", shared::proxy_set_shared_data)?;
    reg.func(
        ENV,
        "proxy_register_shared_queue",
        shared::proxy_register_shared_queue,
    )?;
    reg.func(
        ENV,
        "proxy_resolve_shared_queue",
        shared::proxy_resolve_shared_queue,
    )?;
    reg.func(
        ENV,
        "proxy_dequeue_shared_queue",
        shared::proxy_dequeue_shared_queue,
    )?;
    reg.func(
        ENV,
        "proxy_enqueue_shared_queue",
        shared::proxy_enqueue_shared_queue,
    )?;

    // Metrics.
    reg.func(ENV, "proxy_define_metric", metrics::proxy_define_metric)?;
    reg.func(
        ENV,
        "proxy_increment_metric",
        metrics::proxy_increment_metric,
    )?;
    reg.func(ENV, "proxy_record_metric", metrics::proxy_record_metric)?;
    reg.func(ENV, "proxy_get_metric", metrics::proxy_get_metric)?;

    // Context, status, foreign functions.
    reg.func(
        ENV,
        "proxy_set_effective_context",
        context::proxy_set_effective_context,
    )?;
    reg.func(ENV, "proxy_done", context::proxy_done)?;
    reg.func(ENV, "proxy_get_status", context::proxy_get_status)?;

    // gRPC (not simulated).
    reg.func(ENV, "proxy_grpc_call", grpc::proxy_grpc_call)?;
    reg.func(ENV, "proxy_grpc_stream", grpc::proxy_grpc_stream)?;
    reg.func(ENV, "proxy_grpc_send", grpc::proxy_grpc_send)?;
    reg.func(ENV, "proxy_grpc_cancel", grpc::proxy_grpc_cancel)?;
    reg.func(ENV, "proxy_grpc_close", grpc::proxy_grpc_close)?;

    reg.func(
        ENV,
        "proxy_call_foreign_function",
        context::proxy_call_foreign_function,
    )
}

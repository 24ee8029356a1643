//! The proxy-wasm ABI 0.2.1 host functions (module `env`), with Envoy's argument checks and status codes.

use crate::config::Profile;
use crate::error::HostError;
use crate::maps::HeaderMap;
use crate::memory::{copy_out, read, read_string, write_u32, write_u64};
use crate::registry::Registry;
use crate::state::{lock, CalloutSource, HostState, LocalReply, LogSource, PendingCallout, Phase};
use crate::types::{BufferType, LogLevel, MapType, MetricType, Status};
use crate::upstream::{CalloutRequest, UpstreamReply};
use std::time::Duration;
use wasmtime::Caller;

type C<'a> = Caller<'a, HostState>;
type R = wasmtime::Result<u32>;

const OK: u32 = Status::Ok as u32;
const NOT_FOUND: u32 = Status::NotFound as u32;
const BAD_ARGUMENT: u32 = Status::BadArgument as u32;
const INVALID_MEMORY: u32 = Status::InvalidMemoryAccess as u32;

/// Turns "did the memory access work" into a status.
fn mem(ok: bool) -> u32 {
    if ok {
        OK
    } else {
        INVALID_MEMORY
    }
}

fn status(result: Result<(), Status>) -> u32 {
    match result {
        Ok(()) => OK,
        Err(s) => s.code(),
    }
}

/// Copies `bytes` out to the guest, mapping memory failures to `InvalidMemoryAccess`.
fn reply(caller: &mut C<'_>, bytes: &[u8], ptr_ptr: u32, size_ptr: u32) -> R {
    Ok(mem(copy_out(caller, bytes, ptr_ptr, size_ptr)?))
}

/// A trap with a message, as a host that refuses a call outright does (Kong's "trap" results).
fn trap(message: &str) -> wasmtime::Error {
    wasmtime::Error::msg(message.to_string())
}

pub(crate) fn define(reg: &mut Registry) -> Result<(), HostError> {
    define_logging_and_time(reg)?;
    define_buffers(reg)?;
    define_maps(reg)?;
    define_properties(reg)?;
    define_stream_control(reg)?;
    define_http_call(reg)?;
    define_shared(reg)?;
    define_metrics(reg)?;
    define_context(reg)
}

fn define_logging_and_time(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_log",
        |caller: C<'_>, level: u32, ptr: u32, len: u32| -> R {
            let Some(level) = LogLevel::from_code(level) else {
                return Ok(BAD_ARGUMENT);
            };
            let Some(bytes) = read(&caller, ptr, len) else {
                return Ok(INVALID_MEMORY);
            };
            caller.data().log(
                level,
                LogSource::Proxy,
                String::from_utf8_lossy(&bytes).into_owned(),
            );
            Ok(OK)
        },
    )?;
    reg.func(
        "env",
        "proxy_get_log_level",
        |mut caller: C<'_>, ptr: u32| -> R {
            let level = caller.data().shared.config.log_level as u32;
            Ok(mem(write_u32(&mut caller, ptr, level)))
        },
    )?;
    reg.func(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut caller: C<'_>, ptr: u32| -> R {
            let now = caller.data().now();
            Ok(mem(write_u64(&mut caller, ptr, now)))
        },
    )?;
    reg.func(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut caller: C<'_>, period: u32| -> R {
            let state = caller.data_mut();
            if matches!(state.shared.config.profile, Profile::Kong(_)) {
                if state.current_context != state.root_context_id {
                    return Err(trap("can only set tick_period in root context"));
                }
                if state.tick_period_ms != 0 {
                    return Err(trap("tick_period already set"));
                }
            }
            state.tick_period_ms = period;
            state.next_tick = (period > 0).then(|| {
                state
                    .now()
                    .saturating_add(u64::from(period).saturating_mul(1_000_000))
            });
            Ok(OK)
        },
    )
}

/// The bytes of a buffer as Envoy exposes it in the current callback, or the status for its absence.
fn buffer(state: &mut HostState, kind: BufferType) -> Result<Vec<u8>, Status> {
    match kind {
        BufferType::VmConfiguration => Ok(state.shared.config.vm_configuration.clone()),
        BufferType::PluginConfiguration if state.phase == Phase::Configure => {
            Ok(state.shared.config.plugin_configuration.clone())
        }
        BufferType::PluginConfiguration => Err(Status::NotFound),
        // A failed call has no response message in Envoy: the body buffer does not exist.
        BufferType::CallResponseBody => state
            .call_response
            .as_ref()
            .and_then(|c| c.response.as_ref())
            .map(|r| r.body.clone())
            .ok_or(Status::NotFound),
        BufferType::RequestBody => match state.current_stream() {
            Some(s) if s.request_body_seen => Ok(s.request_body.clone()),
            _ => Err(Status::NotFound),
        },
        BufferType::ResponseBody => match state.current_stream() {
            Some(s) if s.response_body_seen => Ok(s.response_body.clone()),
            _ => Err(Status::NotFound),
        },
    }
}

/// Envoy's `copyFrom` rule for `proxy_set_buffer_bytes`: start 0 replaces the first `size` bytes with
/// `data` (prepend when size is 0); start at or past the end appends; anything else is `BadArgument`.
pub(crate) fn splice_buffer(
    buffer: &mut Vec<u8>,
    start: usize,
    size: usize,
    data: &[u8],
) -> Result<(), Status> {
    if start == 0 {
        let drained = size.min(buffer.len());
        buffer.splice(..drained, data.iter().copied());
        Ok(())
    } else if start >= buffer.len() {
        buffer.extend_from_slice(data);
        Ok(())
    } else {
        Err(Status::BadArgument)
    }
}

fn define_buffers(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_get_buffer_bytes",
        |mut caller: C<'_>, kind: u32, start: u32, max: u32, ptr_ptr: u32, size_ptr: u32| -> R {
            let Some(kind) = BufferType::from_code(kind) else {
                return Ok(BAD_ARGUMENT);
            };
            let bytes = match buffer(caller.data_mut(), kind) {
                Ok(b) => b,
                Err(s) => return Ok(s.code()),
            };
            let (Ok(start), Ok(max)) = (usize::try_from(start), usize::try_from(max)) else {
                return Ok(BAD_ARGUMENT);
            };
            let Some(end) = start.checked_add(max) else {
                return Ok(BAD_ARGUMENT);
            };
            let slice = bytes
                .get(start.min(bytes.len())..end.min(bytes.len()))
                .unwrap_or_default();
            reply(&mut caller, slice, ptr_ptr, size_ptr)
        },
    )?;
    reg.func(
        "env",
        "proxy_set_buffer_bytes",
        |mut caller: C<'_>, kind: u32, start: u32, size: u32, ptr: u32, len: u32| -> R {
            let Some(kind) = BufferType::from_code(kind) else {
                return Ok(BAD_ARGUMENT);
            };
            let Some(data) = read(&caller, ptr, len) else {
                return Ok(INVALID_MEMORY);
            };
            let (Ok(start), Ok(size)) = (usize::try_from(start), usize::try_from(size)) else {
                return Ok(BAD_ARGUMENT);
            };
            let Some(stream) = caller.data_mut().current_stream() else {
                return Ok(NOT_FOUND);
            };
            let target = match kind {
                BufferType::RequestBody if stream.request_body_seen => &mut stream.request_body,
                BufferType::ResponseBody if stream.response_body_seen => &mut stream.response_body,
                _ => return Ok(NOT_FOUND),
            };
            Ok(status(splice_buffer(target, start, size, &data)))
        },
    )
}

/// A copy of a header map visible in the current callback.
fn map(state: &mut HostState, kind: MapType) -> Result<HeaderMap, Status> {
    match kind {
        // Only while a successful answer is being delivered (Envoy's `http_call_response_`).
        MapType::CallResponseHeaders | MapType::CallResponseTrailers => {
            let response = state
                .call_response
                .as_ref()
                .and_then(|c| c.response.as_ref())
                .ok_or(Status::BadArgument)?;
            Ok(if kind == MapType::CallResponseHeaders {
                response.headers.clone()
            } else {
                response.trailers.clone()
            })
        }
        _ => map_mut(state, kind).map(|m| m.clone()),
    }
}

/// A writable stream header map (call-response maps are read-only, as in Envoy).
fn map_mut(state: &mut HostState, kind: MapType) -> Result<&mut HeaderMap, Status> {
    let stream = state.current_stream().ok_or(Status::BadArgument)?;
    match kind {
        MapType::RequestHeaders => Ok(&mut stream.request_headers),
        MapType::RequestTrailers => Ok(&mut stream.request_trailers),
        MapType::ResponseHeaders => stream.response_headers.as_mut().ok_or(Status::BadArgument),
        MapType::ResponseTrailers if stream.response_headers.is_some() => {
            Ok(&mut stream.response_trailers)
        }
        _ => Err(Status::BadArgument),
    }
}

fn with_map(caller: &mut C<'_>, kind: u32, f: impl FnOnce(&mut HeaderMap)) -> u32 {
    let Some(kind) = MapType::from_code(kind) else {
        return BAD_ARGUMENT;
    };
    match map_mut(caller.data_mut(), kind) {
        Ok(m) => {
            f(m);
            OK
        }
        Err(s) => s.code(),
    }
}

fn define_maps(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_get_header_map_pairs",
        |mut caller: C<'_>, kind: u32, ptr_ptr: u32, size_ptr: u32| -> R {
            let Some(kind) = MapType::from_code(kind) else {
                return Ok(BAD_ARGUMENT);
            };
            // Envoy answers Ok with no pairs when the map does not exist in this callback.
            let bytes = match map(caller.data_mut(), kind) {
                Ok(m) if !m.is_empty() => m.serialize(),
                _ => Vec::new(),
            };
            reply(&mut caller, &bytes, ptr_ptr, size_ptr)
        },
    )?;
    reg.func(
        "env",
        "proxy_set_header_map_pairs",
        |mut caller: C<'_>, kind: u32, ptr: u32, len: u32| -> R {
            let Some(bytes) = read(&caller, ptr, len) else {
                return Ok(INVALID_MEMORY);
            };
            let Some(pairs) = HeaderMap::deserialize(&bytes) else {
                return Ok(BAD_ARGUMENT);
            };
            Ok(with_map(&mut caller, kind, |m| *m = pairs))
        },
    )?;
    reg.func(
        "env",
        "proxy_get_header_map_size",
        |mut caller: C<'_>, kind: u32, size_ptr: u32| -> R {
            let Some(kind) = MapType::from_code(kind) else {
                return Ok(BAD_ARGUMENT);
            };
            let size = match map(caller.data_mut(), kind) {
                Ok(m) => u32::try_from(m.serialized_size()).unwrap_or(u32::MAX),
                Err(s) => return Ok(s.code()),
            };
            Ok(mem(write_u32(&mut caller, size_ptr, size)))
        },
    )?;
    reg.func(
        "env",
        "proxy_get_header_map_value",
        |mut caller: C<'_>, kind: u32, kptr: u32, klen: u32, ptr_ptr: u32, size_ptr: u32| -> R {
            let Some(kind) = MapType::from_code(kind) else {
                return Ok(BAD_ARGUMENT);
            };
            let Some(key) = read(&caller, kptr, klen) else {
                return Ok(INVALID_MEMORY);
            };
            let value = match map(caller.data_mut(), kind) {
                Ok(m) => m.get(&String::from_utf8_lossy(&key)).map(<[u8]>::to_vec),
                Err(s) => return Ok(s.code()),
            };
            match value {
                Some(v) => reply(&mut caller, &v, ptr_ptr, size_ptr),
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    reg.func(
        "env",
        "proxy_add_header_map_value",
        |mut caller: C<'_>, kind: u32, kptr: u32, klen: u32, vptr: u32, vlen: u32| -> R {
            let (Some(k), Some(v)) = (read(&caller, kptr, klen), read(&caller, vptr, vlen)) else {
                return Ok(INVALID_MEMORY);
            };
            Ok(with_map(&mut caller, kind, |m| m.add(&k, &v)))
        },
    )?;
    reg.func(
        "env",
        "proxy_replace_header_map_value",
        |mut caller: C<'_>, kind: u32, kptr: u32, klen: u32, vptr: u32, vlen: u32| -> R {
            let (Some(k), Some(v)) = (read(&caller, kptr, klen), read(&caller, vptr, vlen)) else {
                return Ok(INVALID_MEMORY);
            };
            Ok(with_map(&mut caller, kind, |m| m.replace(&k, &v)))
        },
    )?;
    reg.func(
        "env",
        "proxy_remove_header_map_value",
        |mut caller: C<'_>, kind: u32, kptr: u32, klen: u32| -> R {
            let Some(k) = read(&caller, kptr, klen) else {
                return Ok(INVALID_MEMORY);
            };
            Ok(with_map(&mut caller, kind, |m| m.remove(&k)))
        },
    )
}

/// Looks a property up: values set by the guest, configured ones, then Envoy-style built-ins.
fn property(state: &mut HostState, path: &[u8]) -> Option<Vec<u8>> {
    let set = match state.streams.get(&state.current_context) {
        Some(s) => s.properties.get(path).cloned(),
        None => state.root_properties.get(path).cloned(),
    };
    if set.is_some() {
        return set;
    }
    let segments: Vec<String> = path
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let config = &state.shared.config;
    if let Some(v) = config.properties.get(&segments) {
        return Some(v.clone());
    }
    let names: Vec<&str> = segments.iter().map(String::as_str).collect();
    let header = |name: &str| {
        state
            .streams
            .get(&state.current_context)
            .and_then(|s| s.request_headers.get(name).map(<[u8]>::to_vec))
    };
    match names.as_slice() {
        ["plugin_name"] => Some(config.plugin_name.clone().into_bytes()),
        ["plugin_root_id"] => Some(config.root_id.clone().into_bytes()),
        ["plugin_vm_id"] => Some(config.vm_id.clone().into_bytes()),
        ["request", "path"] => header(":path"),
        ["request", "method"] => header(":method"),
        ["request", "host"] => header(":authority"),
        ["request", "scheme"] => header(":scheme"),
        _ => None,
    }
}

fn define_properties(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_get_property",
        |mut caller: C<'_>, ptr: u32, len: u32, ptr_ptr: u32, size_ptr: u32| -> R {
            let Some(path) = read(&caller, ptr, len) else {
                return Ok(INVALID_MEMORY);
            };
            match property(caller.data_mut(), &path) {
                Some(v) => reply(&mut caller, &v, ptr_ptr, size_ptr),
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    reg.func(
        "env",
        "proxy_set_property",
        |mut caller: C<'_>, ptr: u32, len: u32, vptr: u32, vlen: u32| -> R {
            let (Some(path), Some(value)) = (read(&caller, ptr, len), read(&caller, vptr, vlen))
            else {
                return Ok(INVALID_MEMORY);
            };
            let state = caller.data_mut();
            let current = state.current_context;
            match state.streams.get_mut(&current) {
                Some(s) => s.properties.insert(path, value),
                None => state.root_properties.insert(path, value),
            };
            Ok(OK)
        },
    )
}

/// Stream types of `proxy_continue_stream` / `proxy_close_stream`.
const STREAM_REQUEST: u32 = 0;
const STREAM_RESPONSE: u32 = 1;

fn continue_stream(caller: &mut C<'_>, kind: u32) -> u32 {
    let Some(stream) = caller.data_mut().current_stream() else {
        return NOT_FOUND;
    };
    match kind {
        STREAM_REQUEST => stream.request_paused = false,
        STREAM_RESPONSE => stream.response_paused = false,
        2 | 3 => return Status::Unimplemented.code(),
        _ => return BAD_ARGUMENT,
    }
    OK
}

fn define_stream_control(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_continue_stream",
        |mut caller: C<'_>, kind: u32| -> R { Ok(continue_stream(&mut caller, kind)) },
    )?;
    reg.func("env", "proxy_continue_request", |mut caller: C<'_>| -> R {
        Ok(continue_stream(&mut caller, STREAM_REQUEST))
    })?;
    reg.func("env", "proxy_continue_response", |mut caller: C<'_>| -> R {
        Ok(continue_stream(&mut caller, STREAM_RESPONSE))
    })?;
    reg.func(
        "env",
        "proxy_close_stream",
        |mut caller: C<'_>, kind: u32| -> R {
            let Some(stream) = caller.data_mut().current_stream() else {
                return Ok(NOT_FOUND);
            };
            match kind {
                STREAM_REQUEST | STREAM_RESPONSE => {
                    stream.reset = true;
                    Ok(OK)
                }
                2 | 3 => Ok(Status::Unimplemented.code()),
                _ => Ok(BAD_ARGUMENT),
            }
        },
    )?;
    reg.func(
        "env",
        "proxy_send_local_response",
        |mut caller: C<'_>,
         code: u32,
         dptr: u32,
         dlen: u32,
         bptr: u32,
         blen: u32,
         hptr: u32,
         hlen: u32,
         grpc_status: i32|
         -> R {
            let (Some(details), Some(body), Some(headers)) = (
                read(&caller, dptr, dlen),
                read(&caller, bptr, blen),
                read(&caller, hptr, hlen),
            ) else {
                return Ok(INVALID_MEMORY);
            };
            let Some(headers) = HeaderMap::deserialize(&headers) else {
                return Ok(BAD_ARGUMENT);
            };
            let state = caller.data_mut();
            let Some(stream) = state.current_stream() else {
                return Ok(BAD_ARGUMENT);
            };
            if stream.local_reply.is_none() {
                stream.local_reply = Some(LocalReply {
                    status: code,
                    details: String::from_utf8_lossy(&details).into_owned(),
                    headers,
                    body,
                    grpc_status,
                });
            }
            stream.request_paused = false;
            stream.response_paused = false;
            Ok(OK)
        },
    )
}

fn define_http_call(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_http_call",
        |mut caller: C<'_>,
         uptr: u32,
         ulen: u32,
         hptr: u32,
         hlen: u32,
         bptr: u32,
         blen: u32,
         tptr: u32,
         tlen: u32,
         timeout_ms: u32,
         token_ptr: u32|
         -> R {
            let kong = matches!(caller.data().shared.config.profile, Profile::Kong(_));
            let phase = caller.data().phase;
            if kong
                && !matches!(phase, Phase::RequestHeaders | Phase::RequestBody | Phase::CallResponse | Phase::Tick)
            {
                return Err(trap(
                    "can only send HTTP dispatch during \"on_request_headers\", \"on_request_body\", \
                     \"on_dispatch_response\", \"on_tick\"",
                ));
            }
            let (Some(upstream), Some(headers), Some(body), Some(trailers)) = (
                read(&caller, uptr, ulen),
                read(&caller, hptr, hlen),
                read(&caller, bptr, blen),
                read(&caller, tptr, tlen),
            ) else {
                return Ok(INVALID_MEMORY);
            };
            let (Ok(upstream), Some(headers), Some(trailers)) =
                (String::from_utf8(upstream), HeaderMap::deserialize(&headers), HeaderMap::deserialize(&trailers))
            else {
                return Ok(BAD_ARGUMENT);
            };
            // Envoy takes the timeout as a signed int: "negative" values are refused; 0 means none.
            if i32::try_from(timeout_ms).is_err() {
                return Ok(BAD_ARGUMENT);
            }
            let required: &[&str] = if kong { &[":method", ":path"] } else { &[":method", ":path", ":authority"] };
            if required.iter().any(|h| headers.get(h).is_none_or(<[u8]>::is_empty)) {
                return Ok(BAD_ARGUMENT);
            }
            let target = caller.data().shared.config.upstreams.get(&upstream).cloned();
            if target.is_none() && !kong {
                return Ok(BAD_ARGUMENT);
            }
            let token = caller.data_mut().fresh_token();
            if !write_u32(&mut caller, token_ptr, token) {
                return Ok(INVALID_MEMORY);
            }
            let timeout = Duration::from_millis(u64::from(timeout_ms));
            let request = CalloutRequest { upstream, headers, body, trailers, timeout };
            // Kong resolves host:port later; a name nothing answers to fails like a refused connection.
            let answer = match target {
                Some(t) => t.call(&request),
                None => UpstreamReply::reset(),
            };
            let state = caller.data_mut();
            let now = state.now();
            let deadline = if timeout_ms == 0 { u64::MAX } else { now.saturating_add(crate::clock::nanos(timeout)) };
            let (due, source) = match answer {
                UpstreamReply::Ready { delay, outcome } => {
                    (now.saturating_add(crate::clock::nanos(delay)), CalloutSource::Ready(outcome))
                }
                UpstreamReply::Hang => (u64::MAX, CalloutSource::Hang),
                UpstreamReply::Pending(rx) => (u64::MAX, CalloutSource::Pending(rx)),
            };
            let context_id = state.current_context;
            state.callouts.push(PendingCallout { token, context_id, due, deadline, source });
            Ok(OK)
        },
    )
}

fn define_shared(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_get_shared_data",
        |mut caller: C<'_>, kptr: u32, klen: u32, ptr_ptr: u32, size_ptr: u32, cas_ptr: u32| -> R {
            let Some(key) = read(&caller, kptr, klen) else {
                return Ok(INVALID_MEMORY);
            };
            let found = lock(&caller.data().shared.data).get(&String::from_utf8_lossy(&key));
            match found {
                Ok((value, cas)) => {
                    if !copy_out(&mut caller, &value, ptr_ptr, size_ptr)? {
                        return Ok(INVALID_MEMORY);
                    }
                    Ok(mem(write_u32(&mut caller, cas_ptr, cas)))
                }
                Err(s) => Ok(s.code()),
            }
        },
    )?;
    reg.func(
        "env",
        "proxy_set_shared_data",
        |caller: C<'_>, kptr: u32, klen: u32, vptr: u32, vlen: u32, cas: u32| -> R {
            let (Some(key), Some(value)) = (read(&caller, kptr, klen), read(&caller, vptr, vlen))
            else {
                return Ok(INVALID_MEMORY);
            };
            let result =
                lock(&caller.data().shared.data).set(&String::from_utf8_lossy(&key), &value, cas);
            Ok(status(result))
        },
    )?;
    reg.func(
        "env",
        "proxy_register_shared_queue",
        |mut caller: C<'_>, ptr: u32, len: u32, id_ptr: u32| -> R {
            let Some(name) = read_string(&caller, ptr, len) else {
                return Ok(BAD_ARGUMENT);
            };
            let state = caller.data();
            let owner = crate::shared::QueueOwner {
                worker: state.worker,
                context_id: state.root_context_id,
            };
            let id = lock(&state.shared.queues).register(&state.shared.config.vm_id, &name, owner);
            Ok(mem(write_u32(&mut caller, id_ptr, id)))
        },
    )?;
    reg.func(
        "env",
        "proxy_resolve_shared_queue",
        |mut caller: C<'_>, vptr: u32, vlen: u32, nptr: u32, nlen: u32, id_ptr: u32| -> R {
            let (Some(vm_id), Some(name)) = (
                read_string(&caller, vptr, vlen),
                read_string(&caller, nptr, nlen),
            ) else {
                return Ok(BAD_ARGUMENT);
            };
            let state = caller.data();
            let vm_id = if vm_id.is_empty() {
                state.shared.config.vm_id.clone()
            } else {
                vm_id
            };
            let found = lock(&state.shared.queues).resolve(&vm_id, &name);
            match found {
                Some(id) => Ok(mem(write_u32(&mut caller, id_ptr, id))),
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    reg.func(
        "env",
        "proxy_dequeue_shared_queue",
        |mut caller: C<'_>, id: u32, ptr_ptr: u32, size_ptr: u32| -> R {
            let item = lock(&caller.data().shared.queues).dequeue(id);
            match item {
                Ok(bytes) => reply(&mut caller, &bytes, ptr_ptr, size_ptr),
                Err(s) => Ok(s.code()),
            }
        },
    )?;
    reg.func(
        "env",
        "proxy_enqueue_shared_queue",
        |caller: C<'_>, id: u32, ptr: u32, len: u32| -> R {
            let Some(value) = read(&caller, ptr, len) else {
                return Ok(INVALID_MEMORY);
            };
            let result = lock(&caller.data().shared.queues).enqueue(id, &value);
            Ok(status(result))
        },
    )
}

fn define_metrics(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_define_metric",
        |mut caller: C<'_>, kind: u32, ptr: u32, len: u32, id_ptr: u32| -> R {
            let Some(kind) = MetricType::from_code(kind) else {
                return Ok(BAD_ARGUMENT);
            };
            let Some(name) = read_string(&caller, ptr, len) else {
                return Ok(BAD_ARGUMENT);
            };
            let shared = caller.data().shared.clone();
            let full = format!("{}{}", shared.config.profile.metric_prefix(), name);
            let defined = lock(&shared.metrics).define(kind, full);
            match defined {
                Ok(id) => Ok(mem(write_u32(&mut caller, id_ptr, id))),
                Err(s) => Ok(s.code()),
            }
        },
    )?;
    reg.func(
        "env",
        "proxy_increment_metric",
        |caller: C<'_>, id: u32, offset: i64| -> R {
            Ok(status(
                lock(&caller.data().shared.metrics).increment(id, offset),
            ))
        },
    )?;
    reg.func(
        "env",
        "proxy_record_metric",
        |caller: C<'_>, id: u32, value: u64| -> R {
            Ok(status(
                lock(&caller.data().shared.metrics).record(id, value),
            ))
        },
    )?;
    reg.func(
        "env",
        "proxy_get_metric",
        |mut caller: C<'_>, id: u32, ptr: u32| -> R {
            let value = lock(&caller.data().shared.metrics).get(id);
            match value {
                Ok(v) => Ok(mem(write_u64(&mut caller, ptr, v))),
                Err(s) => Ok(s.code()),
            }
        },
    )
}

fn define_context(reg: &mut Registry) -> Result<(), HostError> {
    reg.func(
        "env",
        "proxy_set_effective_context",
        |mut caller: C<'_>, context_id: u32| -> R {
            let state = caller.data_mut();
            if context_id == state.root_context_id || state.streams.contains_key(&context_id) {
                state.current_context = context_id;
                Ok(OK)
            } else {
                Ok(BAD_ARGUMENT)
            }
        },
    )?;
    reg.func("env", "proxy_done", |_caller: C<'_>| -> R { Ok(OK) })?;
    reg.func(
        "env",
        "proxy_get_status",
        |mut caller: C<'_>, code_ptr: u32, ptr_ptr: u32, size_ptr: u32| -> R {
            let (code, message) = caller.data().last_status.clone();
            if !write_u32(&mut caller, code_ptr, code) {
                return Ok(INVALID_MEMORY);
            }
            reply(&mut caller, message.as_bytes(), ptr_ptr, size_ptr)
        },
    )?;
    define_grpc(reg)?;
    reg.func(
        "env",
        "proxy_call_foreign_function",
        |_caller: C<'_>, _n: u32, _nl: u32, _a: u32, _al: u32, _rp: u32, _rs: u32| -> R {
            Ok(NOT_FOUND)
        },
    )
}

/// gRPC is not simulated: the imports exist (the SDK links them into filters that mention gRPC), and
/// every call fails with a status the SDK turns into an error rather than a panic.
fn define_grpc(reg: &mut Registry) -> Result<(), HostError> {
    const INTERNAL: u32 = Status::InternalFailure as u32;
    reg.func(
        "env",
        "proxy_grpc_call",
        |_c: C<'_>,
         _a: u32,
         _b: u32,
         _c2: u32,
         _d: u32,
         _e: u32,
         _f: u32,
         _g: u32,
         _h: u32,
         _i: u32,
         _j: u32,
         _k: u32,
         _l: u32|
         -> R { Ok(INTERNAL) },
    )?;
    reg.func(
        "env",
        "proxy_grpc_stream",
        |_c: C<'_>,
         _a: u32,
         _b: u32,
         _c2: u32,
         _d: u32,
         _e: u32,
         _f: u32,
         _g: u32,
         _h: u32,
         _i: u32|
         -> R { Ok(INTERNAL) },
    )?;
    reg.func(
        "env",
        "proxy_grpc_send",
        |_c: C<'_>, _t: u32, _p: u32, _l: u32, _e: u32| -> R { Ok(NOT_FOUND) },
    )?;
    reg.func("env", "proxy_grpc_cancel", |_c: C<'_>, _t: u32| -> R {
        Ok(NOT_FOUND)
    })?;
    reg.func("env", "proxy_grpc_close", |_c: C<'_>, _t: u32| -> R {
        Ok(NOT_FOUND)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_buffer_follows_envoy_copy_from() {
        let mut b = b"hello world".to_vec();
        splice_buffer(&mut b, 0, 5, b"HEY").unwrap();
        assert_eq!(b, b"HEY world");
        splice_buffer(&mut b, 0, 0, b">").unwrap();
        assert_eq!(b, b">HEY world");
        splice_buffer(&mut b, 100, 0, b"!").unwrap();
        assert_eq!(b, b">HEY world!");
        assert_eq!(splice_buffer(&mut b, 3, 1, b"x"), Err(Status::BadArgument));
        splice_buffer(&mut b, 0, usize::MAX, b"all").unwrap();
        assert_eq!(b, b"all");
    }
}

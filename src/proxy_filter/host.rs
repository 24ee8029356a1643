//! The hostcalls whose failure statuses depend on untrusted input or on a stream that may be
//! gone. The SDK's versions panic on any status they do not expect (a trap, which fails the VM)
//! and its map reader panics on non-UTF-8 header names; these return the status instead.

use std::ops::Range;
use std::ptr::{null, null_mut};
use std::time::Duration;

use proxy_wasm::types::{BufferType, MapType};

/// A proxy-wasm status code other than `Ok`.
pub type Status = u32;
const OK: u32 = 0;
/// `proxy_continue_stream` / `proxy_close_stream` stream type of the request.
const STREAM_HTTP_REQUEST: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_log(level: u32, message: *const u8, size: usize) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
}

fn check(status: u32) -> Result<(), Status> {
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// Takes ownership of a buffer the host allocated through the SDK's `proxy_on_memory_allocate`.
fn take_host_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host filled `data` with `size` bytes allocated by the SDK allocator as a
    // `Vec<u8>` of capacity `size` (exactly what the SDK itself reclaims this way).
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Header name and value bytes.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Where each name and value lies in a serialized header map.
pub type PairRanges = Vec<(Range<usize>, Range<usize>)>;

/// A header map as the host serialized it, in one buffer: `(bytes, ranges)`.
pub fn header_map(map: MapType) -> Result<(Vec<u8>, PairRanges), Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the out-pointers are valid for the duration of the call.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    let bytes = take_host_buffer(data, size);
    check(status)?;
    let ranges = pair_ranges(&bytes).unwrap_or_default();
    Ok((bytes, ranges))
}

/// All pairs of a header map, as raw bytes (names too: a client can send anything).
pub fn header_pairs(map: MapType) -> Result<Pairs, Status> {
    let (bytes, ranges) = header_map(map)?;
    Ok(ranges
        .into_iter()
        .filter_map(|(name, value)| Some((bytes.get(name)?.to_vec(), bytes.get(value)?.to_vec())))
        .collect())
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(raw)).ok()
}

/// The proxy-wasm map encoding: count, (name length, value length) per pair, then each name
/// and value followed by a NUL. `None` when the host's bytes do not add up.
fn pair_ranges(bytes: &[u8]) -> Option<PairRanges> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for n in 0..count {
        let sizes = n.checked_mul(8)?.checked_add(4)?;
        let key_len = read_u32(bytes, sizes)?;
        let value_len = read_u32(bytes, sizes.checked_add(4)?)?;
        let key = data..data.checked_add(key_len)?;
        data = key.end.checked_add(1)?;
        let value = data..data.checked_add(value_len)?;
        // Both within the bytes (the name ends before the value starts); as in the SDK, the
        // NUL after the last value is not required.
        if value.end > bytes.len() {
            return None;
        }
        data = value.end.checked_add(1)?;
        pairs.push((key, value));
    }
    Some(pairs)
}

fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let count = u32::try_from(pairs.len()).unwrap_or(0);
    out.extend_from_slice(&count.to_le_bytes());
    let fits = |s: &str| u32::try_from(s.len()).unwrap_or(0);
    let pairs = pairs
        .get(..usize::try_from(count).unwrap_or(0))
        .unwrap_or(&[]);
    for (k, v) in pairs {
        out.extend_from_slice(&fits(k).to_le_bytes());
        out.extend_from_slice(&fits(v).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Sets (replacing every copy) request header `name`.
pub fn set_request_header(name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointers and lengths come from live slices.
    check(unsafe {
        proxy_replace_header_map_value(
            MapType::HttpRequestHeaders as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes every copy of request header `name`.
pub fn remove_request_header(name: &str) -> Result<(), Status> {
    // SAFETY: pointer and length come from a live slice.
    check(unsafe {
        proxy_remove_header_map_value(
            MapType::HttpRequestHeaders as u32,
            name.as_ptr(),
            name.len(),
        )
    })
}

/// Writes shared data. `cas == 0` writes unconditionally. Kong's shm zone answers a failure
/// when a value does not fit: the caller treats that as "not published".
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: pointers and lengths come from live slices.
    check(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Resumes the paused request of the effective context.
pub fn resume_request() -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) })
}

/// Answers the effective context's request locally.
pub fn send_local_response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Status> {
    let headers = serialize_pairs(headers);
    // SAFETY: pointers and lengths come from live slices; no details string.
    check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Makes later hostcalls act on `context_id` (a stream that waited on another's callout).
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_effective_context(context_id) })
}

#[derive(Clone, Copy)]
pub enum Level {
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// Logs one line; a host that refuses it is ignored (logging must never fail a request).
pub fn log(level: Level, message: &str) {
    // SAFETY: pointer and length come from a live string.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

// The SDK's versions of the next four calls panic on any status they do not expect
// (proxy-wasm-rust-sdk 0.2.5 src/hostcalls.rs), which traps the VM; a host may answer a status
// they do not list (a buffer or shared-data key the host refuses, a tick period it rejects).

/// The host clock, in milliseconds since the Unix epoch (0 if the host refuses).
pub fn now_millis() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: `nanos` is valid for one u64 during the call.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == OK {
        nanos / 1_000_000
    } else {
        0
    }
}

/// Asks for `on_tick` every `period` (`Err`: the host refused).
pub fn set_tick_period(period: Duration) -> Result<(), Status> {
    let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: a plain value.
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// A buffer's bytes (call response body, plugin configuration), at most `max` of them; empty
/// when the host has none or refuses.
pub fn buffer(kind: BufferType, max: usize) -> Vec<u8> {
    let mut data: *mut u8 = null_mut();
    let mut size = 0usize;
    // SAFETY: the host writes a buffer pointer and its size into the two locals.
    let status = unsafe { proxy_get_buffer_bytes(kind as u32, 0, max, &mut data, &mut size) };
    let bytes = take_host_buffer(data, size);
    if status == OK {
        bytes
    } else {
        Vec::new()
    }
}

/// A host property (`path` segments joined by NUL, as proxy-wasm-cpp-host splits them), or
/// `None` when the host has none (`NotFound`) or refuses. The SDK's `get_property` panics on
/// statuses it does not expect.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    let path = path.join("\0");
    let mut data: *mut u8 = null_mut();
    let mut size = 0usize;
    // SAFETY: `path` is valid for its length; the host writes a buffer pointer and its size.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    let value = take_host_buffer(data, size);
    (status == OK).then_some(value)
}

/// Shared data: value and CAS, or `None` when absent (never written, or evicted) or refused.
pub fn get_shared_data(key: &str) -> Option<(Vec<u8>, u32)> {
    let mut data: *mut u8 = null_mut();
    let mut size = 0usize;
    let mut cas = 0u32;
    // SAFETY: `key` is valid for its length; the host writes into the three locals.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    let present = !data.is_null();
    let value = take_host_buffer(data, size);
    (status == OK && present).then_some((value, cas))
}

/// `Duration` of `ms` milliseconds, clamped to what a host accepts as a call timeout.
pub fn call_timeout(ms: u64) -> Duration {
    Duration::from_millis(ms.clamp(1, u64::from(i32::MAX.unsigned_abs())))
}

/// Defines a metric. A host that refuses with a status (a name or memory limit on some hosts)
/// only loses the metric. Kong's ngx_wasm_module traps instead (no metrics before
/// prerelease-0.4.0; a name too long or a full store after): no call made here can avoid
/// that, so on Kong metrics are defined only when `host.kong.metrics` says the host has them.
pub fn define_metric(kind: proxy_wasm::types::MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: `name` is valid for `name.len()` bytes and `id` for one u32 during the call.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: plain values.
    check(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: plain values.
    check(unsafe { proxy_record_metric(id, value) })
}

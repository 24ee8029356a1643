//! Header maps: stream headers and trailers (writable) and the call response's (read-only).

use super::common::{mem, reply, BAD_ARGUMENT, C, INVALID_MEMORY, NOT_FOUND, OK, R};
use crate::maps::HeaderMap;
use crate::memory::{read, write_u32};
use crate::state::HostState;
use crate::types::{MapType, Status};

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

fn with_map(caller: C<'_>, kind: u32, f: impl FnOnce(&mut HeaderMap)) -> u32 {
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

pub(crate) fn proxy_get_header_map_pairs(
    caller: C<'_>,
    kind: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> R {
    let Some(kind) = MapType::from_code(kind) else {
        return Ok(BAD_ARGUMENT);
    };
    // Envoy answers Ok with no pairs when the map does not exist in this callback.
    let bytes = match map(caller.data_mut(), kind) {
        Ok(m) if !m.is_empty() => m.serialize(),
        _ => Vec::new(),
    };
    reply(caller, &bytes, ptr_ptr, size_ptr)
}

pub(crate) fn proxy_set_header_map_pairs(caller: C<'_>, kind: u32, ptr: u32, len: u32) -> R {
    let Some(bytes) = read(caller, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(pairs) = HeaderMap::deserialize(&bytes) else {
        return Ok(BAD_ARGUMENT);
    };
    Ok(with_map(caller, kind, |m| *m = pairs))
}

pub(crate) fn proxy_get_header_map_size(caller: C<'_>, kind: u32, size_ptr: u32) -> R {
    let Some(kind) = MapType::from_code(kind) else {
        return Ok(BAD_ARGUMENT);
    };
    let size = match map(caller.data_mut(), kind) {
        Ok(m) => u32::try_from(m.serialized_size()).unwrap_or(u32::MAX),
        Err(s) => return Ok(s.code()),
    };
    Ok(mem(write_u32(caller, size_ptr, size)))
}

pub(crate) fn proxy_get_header_map_value(
    caller: C<'_>,
    kind: u32,
    kptr: u32,
    klen: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> R {
    let Some(kind) = MapType::from_code(kind) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some(key) = read(caller, kptr, klen) else {
        return Ok(INVALID_MEMORY);
    };
    let value = match map(caller.data_mut(), kind) {
        Ok(m) => m.get(&String::from_utf8_lossy(&key)).map(<[u8]>::to_vec),
        Err(s) => return Ok(s.code()),
    };
    match value {
        Some(v) => reply(caller, &v, ptr_ptr, size_ptr),
        None => Ok(NOT_FOUND),
    }
}

pub(crate) fn proxy_add_header_map_value(
    caller: C<'_>,
    kind: u32,
    kptr: u32,
    klen: u32,
    vptr: u32,
    vlen: u32,
) -> R {
    let (Some(k), Some(v)) = (read(caller, kptr, klen), read(caller, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(with_map(caller, kind, |m| m.add(&k, &v)))
}

pub(crate) fn proxy_replace_header_map_value(
    caller: C<'_>,
    kind: u32,
    kptr: u32,
    klen: u32,
    vptr: u32,
    vlen: u32,
) -> R {
    let (Some(k), Some(v)) = (read(caller, kptr, klen), read(caller, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(with_map(caller, kind, |m| m.replace(&k, &v)))
}

pub(crate) fn proxy_remove_header_map_value(caller: C<'_>, kind: u32, kptr: u32, klen: u32) -> R {
    let Some(k) = read(caller, kptr, klen) else {
        return Ok(INVALID_MEMORY);
    };
    Ok(with_map(caller, kind, |m| m.remove(&k)))
}

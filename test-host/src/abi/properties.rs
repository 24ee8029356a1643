//! Properties: values the guest set, configured ones, and Envoy-style built-ins.

use super::common::{reply, C, INVALID_MEMORY, NOT_FOUND, OK, R};
use crate::memory::read;
use crate::state::HostState;

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

pub(crate) fn proxy_get_property(
    caller: C<'_>,
    ptr: u32,
    len: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> R {
    let Some(path) = read(caller, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    match property(caller.data_mut(), &path) {
        Some(v) => reply(caller, &v, ptr_ptr, size_ptr),
        None => Ok(NOT_FOUND),
    }
}

pub(crate) fn proxy_set_property(caller: C<'_>, ptr: u32, len: u32, vptr: u32, vlen: u32) -> R {
    let (Some(path), Some(value)) = (read(caller, ptr, len), read(caller, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    let state = caller.data_mut();
    let current = state.current_context;
    match state.streams.get_mut(&current) {
        Some(s) => s.properties.insert(path, value),
        None => state.root_properties.insert(path, value),
    };
    Ok(OK)
}

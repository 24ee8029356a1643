//! Context and miscellany: the effective context, `proxy_done`, the last call status, foreign functions.

use super::common::{reply, BAD_ARGUMENT, C, INVALID_MEMORY, NOT_FOUND, OK, R};
use crate::config::Profile;
use crate::memory::write_u32;

/// Envoy switches the context later hostcalls act on (proxy-wasm-cpp-host src/exports.cc,
/// `set_effective_context`: BadArgument for an unknown one). Kong answers Ok and does nothing
/// (ngx_wasm_module src/common/proxy_wasm/ngx_proxy_wasm_host.c,
/// `ngx_proxy_wasm_hfuncs_set_effective_context`): hostcalls keep acting on the request whose
/// callback is running.
pub(crate) fn proxy_set_effective_context(caller: C<'_>, context_id: u32) -> R {
    let state = caller.data_mut();
    if matches!(state.shared.config.profile, Profile::Kong(_)) {
        return Ok(OK);
    }
    if context_id == state.root_context_id || state.streams.contains_key(&context_id) {
        state.current_context = context_id;
        Ok(OK)
    } else {
        Ok(BAD_ARGUMENT)
    }
}

pub(crate) fn proxy_done(_caller: C<'_>) -> R {
    Ok(OK)
}

pub(crate) fn proxy_get_status(caller: C<'_>, code_ptr: u32, ptr_ptr: u32, size_ptr: u32) -> R {
    let (code, message) = caller.data().last_status.clone();
    if !write_u32(caller, code_ptr, code) {
        return Ok(INVALID_MEMORY);
    }
    reply(caller, message.as_bytes(), ptr_ptr, size_ptr)
}

pub(crate) fn proxy_call_foreign_function(
    _caller: C<'_>,
    _n: u32,
    _nl: u32,
    _a: u32,
    _al: u32,
    _rp: u32,
    _rs: u32,
) -> R {
    Ok(NOT_FOUND)
}

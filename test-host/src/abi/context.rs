//! Context and miscellany: the effective context, `proxy_done`, the last call status, foreign functions.

use super::common::{reply, BAD_ARGUMENT, C, INVALID_MEMORY, NOT_FOUND, OK, R};
use crate::memory::write_u32;

pub(crate) fn proxy_set_effective_context(caller: C<'_>, context_id: u32) -> R {
    let state = caller.data_mut();
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

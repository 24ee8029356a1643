//! What every area's host functions share: the caller type, status codes, and the helpers that turn
//! memory access results into the statuses Envoy returns.

use crate::engine::{Guest, Trap};
use crate::memory::copy_out;
use crate::types::Status;

/// The VM calling the host function (any engine).
pub(crate) type C<'a> = &'a mut dyn Guest;
/// A status for the guest, or a trap.
pub(crate) type R = Result<u32, Trap>;

pub(super) const OK: u32 = Status::Ok as u32;
pub(super) const NOT_FOUND: u32 = Status::NotFound as u32;
pub(super) const BAD_ARGUMENT: u32 = Status::BadArgument as u32;
pub(super) const INVALID_MEMORY: u32 = Status::InvalidMemoryAccess as u32;

/// Turns "did the memory access work" into a status.
pub(super) fn mem(ok: bool) -> u32 {
    if ok {
        OK
    } else {
        INVALID_MEMORY
    }
}

pub(super) fn status(result: Result<(), Status>) -> u32 {
    match result {
        Ok(()) => OK,
        Err(s) => s.code(),
    }
}

/// Copies `bytes` out to the guest, mapping memory failures to `InvalidMemoryAccess`.
pub(super) fn reply(caller: C<'_>, bytes: &[u8], ptr_ptr: u32, size_ptr: u32) -> R {
    Ok(mem(copy_out(caller, bytes, ptr_ptr, size_ptr)?))
}

/// A trap with a message, as a host that refuses a call outright does (Kong's "trap" results).
pub(super) fn trap(message: &str) -> Trap {
    Trap(message.to_string())
}

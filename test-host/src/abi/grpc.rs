//! gRPC is not simulated: the imports exist (the SDK links them into filters that mention gRPC), and
//! every call fails with a status the SDK turns into an error rather than a panic.

use super::common::{C, NOT_FOUND, R};
use crate::types::Status;

const INTERNAL: u32 = Status::InternalFailure as u32;

// The ABI's signature.
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_grpc_call(
    _c: C<'_>,
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
    _l: u32,
) -> R {
    Ok(INTERNAL)
}

// The ABI's signature.
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_grpc_stream(
    _c: C<'_>,
    _a: u32,
    _b: u32,
    _c2: u32,
    _d: u32,
    _e: u32,
    _f: u32,
    _g: u32,
    _h: u32,
    _i: u32,
) -> R {
    Ok(INTERNAL)
}

pub(crate) fn proxy_grpc_send(_c: C<'_>, _t: u32, _p: u32, _l: u32, _e: u32) -> R {
    Ok(NOT_FOUND)
}

pub(crate) fn proxy_grpc_cancel(_c: C<'_>, _t: u32) -> R {
    Ok(NOT_FOUND)
}

pub(crate) fn proxy_grpc_close(_c: C<'_>, _t: u32) -> R {
    Ok(NOT_FOUND)
}

//! Stream control: resuming and closing streams, and the local reply.

use super::common::{BAD_ARGUMENT, C, INVALID_MEMORY, NOT_FOUND, OK, R};
use crate::maps::HeaderMap;
use crate::memory::read;
use crate::state::LocalReply;
use crate::types::Status;

/// Stream types of `proxy_continue_stream` / `proxy_close_stream`.
const STREAM_REQUEST: u32 = 0;
const STREAM_RESPONSE: u32 = 1;

fn continue_stream(caller: C<'_>, kind: u32) -> u32 {
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

pub(crate) fn proxy_continue_stream(caller: C<'_>, kind: u32) -> R {
    Ok(continue_stream(caller, kind))
}

pub(crate) fn proxy_continue_request(caller: C<'_>) -> R {
    Ok(continue_stream(caller, STREAM_REQUEST))
}

pub(crate) fn proxy_continue_response(caller: C<'_>) -> R {
    Ok(continue_stream(caller, STREAM_RESPONSE))
}

pub(crate) fn proxy_close_stream(caller: C<'_>, kind: u32) -> R {
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
}

// The ABI's signature.
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_send_local_response(
    caller: C<'_>,
    code: u32,
    dptr: u32,
    dlen: u32,
    bptr: u32,
    blen: u32,
    hptr: u32,
    hlen: u32,
    grpc_status: i32,
) -> R {
    let (Some(details), Some(body), Some(headers)) = (
        read(caller, dptr, dlen),
        read(caller, bptr, blen),
        read(caller, hptr, hlen),
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
}

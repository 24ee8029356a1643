//! Buffers: the VM and plugin configuration, stream bodies and the call response body.

use super::common::{reply, status, BAD_ARGUMENT, C, INVALID_MEMORY, NOT_FOUND, R};
use crate::memory::read;
use crate::state::{HostState, Phase};
use crate::types::{BufferType, Status};

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

pub(crate) fn proxy_get_buffer_bytes(
    caller: C<'_>,
    kind: u32,
    start: u32,
    max: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> R {
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
    reply(caller, slice, ptr_ptr, size_ptr)
}

pub(crate) fn proxy_set_buffer_bytes(
    caller: C<'_>,
    kind: u32,
    start: u32,
    size: u32,
    ptr: u32,
    len: u32,
) -> R {
    let Some(kind) = BufferType::from_code(kind) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some(data) = read(caller, ptr, len) else {
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

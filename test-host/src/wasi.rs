//! The `wasi_snapshot_preview1` functions Envoy (proxy-wasm-cpp-host) gives proxy-wasm modules, and no more:
//! a module that needs other WASI calls fails to load in Envoy, so it is refused here too.

use crate::abi::{C, R};
use crate::engine::Trap;
use crate::memory::{read, write, write_u32, write_u64};
use crate::state::LogSource;
use crate::types::LogLevel;

const SUCCESS: u32 = 0;
const EBADF: u32 = 8;
const EFAULT: u32 = 21;
const EINVAL: u32 = 28;
const ENOENT: u32 = 44;
const ENOSYS: u32 = 52;

/// Largest single `random_get` / `fd_write` the host serves (guards against absurd lengths).
const MAX_IO: u32 = 64 * 1024 * 1024;

fn fault(ok: bool) -> u32 {
    if ok {
        SUCCESS
    } else {
        EFAULT
    }
}

/// Gathers the bytes of an iovec array (`{ptr: u32, len: u32}` pairs).
fn gather(caller: &dyn crate::engine::Guest, iovs: u32, count: u32) -> Option<Vec<u8>> {
    let table = read(caller, iovs, count.checked_mul(8)?)?;
    let mut out = Vec::new();
    for entry in table.chunks_exact(8) {
        let ptr = u32::from_le_bytes(entry.get(0..4)?.try_into().ok()?);
        let len = u32::from_le_bytes(entry.get(4..8)?.try_into().ok()?);
        if out.len().saturating_add(usize::try_from(len).ok()?) > usize::try_from(MAX_IO).ok()? {
            return None;
        }
        out.extend_from_slice(&read(caller, ptr, len)?);
    }
    Some(out)
}

pub(crate) fn fd_write(caller: C<'_>, fd: u32, iovs: u32, count: u32, written_ptr: u32) -> R {
    let (level, source) = match fd {
        1 => (LogLevel::Info, LogSource::Stdout),
        2 => (LogLevel::Error, LogSource::Stderr),
        _ => return Ok(EBADF),
    };
    let Some(bytes) = gather(caller, iovs, count) else {
        return Ok(EFAULT);
    };
    let text = String::from_utf8_lossy(&bytes);
    caller.data().log(
        level,
        source,
        text.strip_suffix('\n').unwrap_or(&text).to_string(),
    );
    let written = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    Ok(fault(write_u32(caller, written_ptr, written)))
}

pub(crate) fn fd_read(_c: C<'_>, _fd: u32, _iovs: u32, _n: u32, _read: u32) -> R {
    Ok(ENOSYS)
}

pub(crate) fn fd_seek(caller: C<'_>, _fd: u32, _off: i64, _whence: u32, _new: u32) -> R {
    caller
        .data()
        .log(LogLevel::Error, LogSource::Host, "wasi fd_seek".to_string());
    Ok(SUCCESS)
}

pub(crate) fn fd_close(caller: C<'_>, _fd: u32) -> R {
    caller.data().log(
        LogLevel::Error,
        LogSource::Host,
        "wasi fd_close".to_string(),
    );
    Ok(SUCCESS)
}

pub(crate) fn fd_fdstat_get(caller: C<'_>, fd: u32, stat_ptr: u32) -> R {
    if fd != 1 && fd != 2 {
        return Ok(EBADF);
    }
    // 24-byte fdstat: zeroed, with fs_rights_base = FD_WRITE (64), as Envoy writes it.
    let mut stat = [0u8; 24];
    if let Some(rights) = stat.get_mut(8..16) {
        rights.copy_from_slice(&64u64.to_le_bytes());
    }
    Ok(fault(write(caller, stat_ptr, &stat)))
}

pub(crate) fn fd_prestat_get(_c: C<'_>, _fd: u32, _buf: u32) -> R {
    Ok(EBADF)
}

pub(crate) fn fd_prestat_dir_name(_c: C<'_>, _fd: u32, _p: u32, _l: u32) -> R {
    Ok(ENOSYS)
}

// The WASI signature.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_open(
    _c: C<'_>,
    _fd: u32,
    _df: u32,
    _p: u32,
    _pl: u32,
    _of: u32,
    _rb: i64,
    _ri: i64,
    _ff: u32,
    _out: u32,
) -> R {
    Ok(ENOENT)
}

pub(crate) fn environ_sizes_get(caller: C<'_>, count_ptr: u32, size_ptr: u32) -> R {
    Ok(fault(
        write_u32(caller, count_ptr, 0) && write_u32(caller, size_ptr, 0),
    ))
}

pub(crate) fn environ_get(_c: C<'_>, _env: u32, _buf: u32) -> R {
    Ok(SUCCESS)
}

pub(crate) fn args_sizes_get(caller: C<'_>, count_ptr: u32, size_ptr: u32) -> R {
    Ok(fault(
        write_u32(caller, count_ptr, 0) && write_u32(caller, size_ptr, 0),
    ))
}

pub(crate) fn args_get(_c: C<'_>, _argv: u32, _buf: u32) -> R {
    Ok(SUCCESS)
}

pub(crate) fn clock_time_get(caller: C<'_>, id: u32, _precision: i64, out: u32) -> R {
    let clock = caller.data().shared.clock().clone();
    let now = match id {
        0 => clock.now_nanos(),
        1 => clock.monotonic_nanos(),
        _ => return Ok(EINVAL),
    };
    Ok(fault(write_u64(caller, out, now)))
}

pub(crate) fn random_get(caller: C<'_>, ptr: u32, len: u32) -> R {
    if len > MAX_IO {
        return Ok(EINVAL);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while bytes.len() < usize::try_from(len).unwrap_or(0) {
        bytes.extend_from_slice(&caller.data_mut().next_random().to_le_bytes());
    }
    bytes.truncate(usize::try_from(len).unwrap_or(0));
    Ok(fault(write(caller, ptr, &bytes)))
}

pub(crate) fn proc_exit(_c: C<'_>, code: u32) -> Result<(), Trap> {
    Err(Trap(format!("wasi proc_exit({code})")))
}

//! Logging: `proxy_log` and `proxy_get_log_level`.

use super::common::{mem, BAD_ARGUMENT, C, INVALID_MEMORY, OK, R};
use crate::memory::{read, write_u32};
use crate::state::LogSource;
use crate::types::LogLevel;

pub(crate) fn proxy_log(caller: C<'_>, level: u32, ptr: u32, len: u32) -> R {
    let Some(level) = LogLevel::from_code(level) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some(bytes) = read(caller, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    caller.data().log(
        level,
        LogSource::Proxy,
        String::from_utf8_lossy(&bytes).into_owned(),
    );
    Ok(OK)
}

pub(crate) fn proxy_get_log_level(caller: C<'_>, ptr: u32) -> R {
    let level = caller.data().shared.config.log_level as u32;
    Ok(mem(write_u32(caller, ptr, level)))
}

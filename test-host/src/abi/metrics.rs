//! Metrics: counters, gauges and histograms, named with the profile's prefix.

use super::common::{mem, status, BAD_ARGUMENT, C, R};
use crate::memory::{read_string, write_u32, write_u64};
use crate::state::lock;
use crate::types::MetricType;

pub(crate) fn proxy_define_metric(caller: C<'_>, kind: u32, ptr: u32, len: u32, id_ptr: u32) -> R {
    let Some(kind) = MetricType::from_code(kind) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some(name) = read_string(caller, ptr, len) else {
        return Ok(BAD_ARGUMENT);
    };
    let shared = caller.data().shared.clone();
    let full = format!("{}{}", shared.config.profile.metric_prefix(), name);
    let defined = lock(&shared.metrics).define(kind, full);
    match defined {
        Ok(id) => Ok(mem(write_u32(caller, id_ptr, id))),
        Err(s) => Ok(s.code()),
    }
}

pub(crate) fn proxy_increment_metric(caller: C<'_>, id: u32, offset: i64) -> R {
    Ok(status(
        lock(&caller.data().shared.metrics).increment(id, offset),
    ))
}

pub(crate) fn proxy_record_metric(caller: C<'_>, id: u32, value: u64) -> R {
    Ok(status(
        lock(&caller.data().shared.metrics).record(id, value),
    ))
}

pub(crate) fn proxy_get_metric(caller: C<'_>, id: u32, ptr: u32) -> R {
    let value = lock(&caller.data().shared.metrics).get(id);
    match value {
        Ok(v) => Ok(mem(write_u64(caller, ptr, v))),
        Err(s) => Ok(s.code()),
    }
}

//! Metrics: counters, gauges and histograms, named with the profile's prefix.

use super::common::{mem, status, trap, BAD_ARGUMENT, C, R};
use crate::engine::Trap;
use crate::memory::{read_string, write_u32, write_u64};
use crate::state::lock;
use crate::types::MetricType;

pub(crate) fn proxy_define_metric(caller: C<'_>, kind: u32, ptr: u32, len: u32, id_ptr: u32) -> R {
    unimplemented_on_this_host(caller, "proxy_define_metric")?;
    let Some(kind) = MetricType::from_code(kind) else {
        return Ok(BAD_ARGUMENT);
    };
    let Some(name) = read_string(caller, ptr, len) else {
        return Ok(BAD_ARGUMENT);
    };
    let shared = caller.data().shared.clone();
    let profile = &shared.config.profile;
    let full = format!("{}{}", profile.metric_prefix(), name);
    let mut metrics = lock(&shared.metrics);
    if !metrics.contains(&full) {
        if let Some(refusal) = profile.metric_refused(&name, metrics.len()) {
            return Err(trap(&refusal));
        }
    }
    let defined = metrics.define(kind, full);
    drop(metrics);
    match defined {
        Ok(id) => Ok(mem(write_u32(caller, id_ptr, id))),
        Err(s) => Ok(s.code()),
    }
}

/// Kong 3.4-3.7 answer every metric function with a trap.
fn unimplemented_on_this_host(caller: C<'_>, function: &str) -> Result<(), Trap> {
    match caller
        .data()
        .shared
        .config
        .profile
        .metrics_unimplemented(function)
    {
        Some(message) => Err(trap(&message)),
        None => Ok(()),
    }
}

pub(crate) fn proxy_increment_metric(caller: C<'_>, id: u32, offset: i64) -> R {
    unimplemented_on_this_host(caller, "proxy_increment_metric")?;
    Ok(status(
        lock(&caller.data().shared.metrics).increment(id, offset),
    ))
}

pub(crate) fn proxy_record_metric(caller: C<'_>, id: u32, value: u64) -> R {
    unimplemented_on_this_host(caller, "proxy_record_metric")?;
    Ok(status(
        lock(&caller.data().shared.metrics).record(id, value),
    ))
}

pub(crate) fn proxy_get_metric(caller: C<'_>, id: u32, ptr: u32) -> R {
    unimplemented_on_this_host(caller, "proxy_get_metric")?;
    let value = lock(&caller.data().shared.metrics).get(id);
    match value {
        Ok(v) => Ok(mem(write_u64(caller, ptr, v))),
        Err(s) => Ok(s.code()),
    }
}

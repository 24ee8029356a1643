//! Time: the proxy clock and the root context's tick period.

use super::common::{mem, trap, C, OK, R};
use crate::config::Profile;
use crate::memory::write_u64;

pub(crate) fn proxy_get_current_time_nanoseconds(caller: C<'_>, ptr: u32) -> R {
    let now = caller.data().now();
    Ok(mem(write_u64(caller, ptr, now)))
}

pub(crate) fn proxy_set_tick_period_milliseconds(caller: C<'_>, period: u32) -> R {
    let state = caller.data_mut();
    if matches!(state.shared.config.profile, Profile::Kong(_)) {
        if state.current_context != state.root_context_id {
            return Err(trap("can only set tick_period in root context"));
        }
        if state.tick_period_ms != 0 {
            return Err(trap("tick_period already set"));
        }
    }
    state.tick_period_ms = period;
    state.next_tick = (period > 0).then(|| {
        state
            .now()
            .saturating_add(u64::from(period).saturating_mul(1_000_000))
    });
    Ok(OK)
}

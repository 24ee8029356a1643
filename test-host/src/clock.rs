//! The host clock: simulated (tests move it; nothing happens between moves) or real.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A shared clock handle; clones see the same time.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    /// Wall time in Unix nanoseconds and the value it started at (for the monotonic clock).
    Simulated {
        now: AtomicU64,
        start: u64,
    },
    Real {
        started: Instant,
    },
}

impl Clock {
    /// A simulated clock starting at `unix_seconds`.
    pub fn simulated(unix_seconds: u64) -> Clock {
        let start = unix_seconds.saturating_mul(1_000_000_000);
        Clock {
            inner: Arc::new(Inner::Simulated {
                now: AtomicU64::new(start),
                start,
            }),
        }
    }

    /// The machine's clock.
    pub fn real() -> Clock {
        Clock {
            inner: Arc::new(Inner::Real {
                started: Instant::now(),
            }),
        }
    }

    /// True for a simulated clock.
    pub fn is_simulated(&self) -> bool {
        matches!(*self.inner, Inner::Simulated { .. })
    }

    /// Wall time in Unix nanoseconds (what `proxy_get_current_time_nanoseconds` returns).
    pub fn now_nanos(&self) -> u64 {
        match &*self.inner {
            Inner::Simulated { now, .. } => now.load(Ordering::SeqCst),
            Inner::Real { .. } => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }

    /// Wall time in whole Unix seconds.
    pub fn now_seconds(&self) -> u64 {
        self.now_nanos() / 1_000_000_000
    }

    /// Nanoseconds since the clock was made (WASI's monotonic clock).
    pub fn monotonic_nanos(&self) -> u64 {
        match &*self.inner {
            Inner::Simulated { now, start } => now.load(Ordering::SeqCst).saturating_sub(*start),
            Inner::Real { started } => {
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
        }
    }

    /// Moves a simulated clock forward; a real clock ignores it. Prefer `Proxy::advance`, which also
    /// fires the timers and callouts that fall due on the way.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        if let Inner::Simulated { now, .. } = &*self.inner {
            let _ = now.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(nanos))
            });
        }
    }

    /// Sets a simulated clock to `unix_nanos` if that is later than now (time never goes back).
    pub(crate) fn advance_to(&self, unix_nanos: u64) {
        if let Inner::Simulated { now, .. } = &*self.inner {
            now.fetch_max(unix_nanos, Ordering::SeqCst);
        }
    }
}

/// Converts a duration to nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_moves_only_when_told_and_never_back() {
        let clock = Clock::simulated(1_700_000_000);
        let copy = clock.clone();
        assert_eq!(clock.now_seconds(), 1_700_000_000);
        assert_eq!(clock.monotonic_nanos(), 0);
        copy.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_nanos(), 1_700_000_001_500_000_000);
        clock.advance_to(5);
        assert_eq!(clock.monotonic_nanos(), 1_500_000_000);
        assert!(clock.is_simulated());
    }

    #[test]
    fn real_clock_is_close_to_system_time() {
        let clock = Clock::real();
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        assert!(clock.now_seconds().abs_diff(sys) <= 1);
        assert!(!clock.is_simulated());
    }
}

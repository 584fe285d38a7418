//! Subscription tiers, counted in process-wide window counters.
//!
//! Each subscription with a rate has one proxy-wasm gauge (defined when the filter is
//! configured, so their number is fixed): its value is `window << 32 | count`, the window
//! being `now / period`. A request reads the gauge (one `get_metric`, no copy into the VM);
//! in the same window under the limit it adds one (`increment_metric`, atomic), in a newer
//! window it sets `window << 32 | 1`. Nothing grows with time.
//!
//! How exact: a read and the add that follows are two host calls, so every other worker may
//! slip one request between them, and at a window's start two workers that both see the old
//! window both set the count to 1. A window therefore admits at most `limit + 2 × (workers − 1)`
//! requests (with Envoy's 2 workers, `limit + 2`), and never fewer than `limit`.

use crate::config::TierUnit;
use crate::host::Coordination;

const COUNT_MASK: u64 = 0xffff_ffff;

/// What the tier says of one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed { remaining: u32, reset_secs: u64 },
    Throttled { reset_secs: u64 },
}

/// Counts a request against `limit` per `unit` in window counter `counter`.
pub fn admit(
    windows: &dyn Coordination,
    counter: usize,
    limit: u32,
    unit: TierUnit,
    now_ms: u64,
) -> Admission {
    let period = unit.millis();
    let window = (now_ms / period) & COUNT_MASK;
    let ends_in_ms = period.saturating_sub(now_ms % period);
    let reset_secs = ends_in_ms.div_ceil(1000);
    let Some(value) = windows.window(counter) else {
        return Admission::Allowed { remaining: limit.saturating_sub(1), reset_secs };
    };
    if value >> 32 != window {
        windows.restart_window(counter, window << 32 | 1);
        return Admission::Allowed { remaining: limit.saturating_sub(1), reset_secs };
    }
    let count = u32::try_from(value & COUNT_MASK).unwrap_or(u32::MAX);
    if count >= limit {
        return Admission::Throttled { reset_secs };
    }
    windows.count_in_window(counter);
    Admission::Allowed { remaining: limit.saturating_sub(count).saturating_sub(1), reset_secs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::{NoMetrics, RecordedMetrics};

    struct Case {
        name: &'static str,
        limit: u32,
        unit: TierUnit,
        /// Request times in ms, and whether each is allowed.
        requests: &'static [(u64, bool)],
    }

    #[test]
    fn windows_admit_their_limit_then_roll_over() {
        #[rustfmt::skip]
        let table = [
            Case { name: "under the limit", limit: 3, unit: TierUnit::Second,
                   requests: &[(10_000, true), (10_100, true), (10_999, true)] },
            Case { name: "over the limit", limit: 2, unit: TierUnit::Second,
                   requests: &[(10_000, true), (10_001, true), (10_002, false), (10_900, false)] },
            Case { name: "a new window starts afresh", limit: 1, unit: TierUnit::Second,
                   requests: &[(10_000, true), (10_500, false), (11_000, true), (11_001, false)] },
            Case { name: "a skipped window is no older count", limit: 1, unit: TierUnit::Minute,
                   requests: &[(60_000, true), (180_000, true), (180_001, false)] },
            Case { name: "a minute is one window", limit: 2, unit: TierUnit::Minute,
                   requests: &[(60_000, true), (90_000, true), (119_999, false), (120_000, true)] },
        ];
        for Case { name, limit, unit, requests } in table {
            let metrics = RecordedMetrics::default();
            for (i, (at, allowed)) in requests.iter().enumerate() {
                let admission = admit(&metrics, 0, limit, unit, *at);
                assert_eq!(matches!(admission, Admission::Allowed { .. }), *allowed, "{name}: request {i}");
            }
        }
    }

    #[test]
    fn remaining_and_reset_count_down() {
        let metrics = RecordedMetrics::default();
        assert_eq!(
            admit(&metrics, 0, 3, TierUnit::Minute, 60_500),
            Admission::Allowed { remaining: 2, reset_secs: 60 }
        );
        assert_eq!(
            admit(&metrics, 0, 3, TierUnit::Minute, 100_000),
            Admission::Allowed { remaining: 1, reset_secs: 20 }
        );
        assert_eq!(
            admit(&metrics, 0, 3, TierUnit::Minute, 110_000),
            Admission::Allowed { remaining: 0, reset_secs: 10 }
        );
        assert_eq!(admit(&metrics, 0, 3, TierUnit::Minute, 119_001), Admission::Throttled { reset_secs: 1 });
        // Another counter is another subscription.
        assert!(matches!(admit(&metrics, 1, 3, TierUnit::Minute, 119_001), Admission::Allowed { .. }));
    }

    #[test]
    fn a_host_without_counters_enforces_nothing() {
        for at in 0..10 {
            assert!(matches!(admit(&NoMetrics, 0, 1, TierUnit::Day, at), Admission::Allowed { .. }));
        }
    }
}

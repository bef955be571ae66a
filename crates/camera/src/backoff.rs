//! Reconnect delays: exponential backoff with jitter, capped.
//!
//! After the n-th consecutive failure a link waits `min(max, initial·2ⁿ⁻¹)`, of which the
//! upper half is random ("equal jitter"): a hub restart does not see every camera come back
//! in the same millisecond, and no camera ever retries faster than half the nominal delay.
//! Must never sleep or read a clock; it only computes durations.

use core::time::Duration;

use crate::rng::SplitMix64;
use crate::time::micros;

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Nominal delay after the first failure.
    pub initial: Duration,
    /// Largest nominal delay.
    pub max: Duration,
}

impl Default for BackoffConfig {
    /// 500 ms doubling up to 30 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl BackoffConfig {
    /// The delay before retry number `failures` (1 = after the first failure).
    pub(crate) fn delay(&self, failures: u32, rng: &mut SplitMix64) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        let nominal = micros(self.initial)
            .saturating_mul(1u64 << shift)
            .min(micros(self.max))
            .max(1);
        let half = nominal / 2;
        Duration::from_micros(nominal - half + rng.below(half + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_caps() {
        let cfg = BackoffConfig::default();
        let mut rng = SplitMix64::new(1);
        for (failures, nominal_ms) in [(1, 500u64), (2, 1000), (3, 2000), (7, 30_000), (40, 30_000)]
        {
            for _ in 0..50 {
                let d = cfg.delay(failures, &mut rng).as_millis() as u64;
                assert!(d >= nominal_ms / 2 && d <= nominal_ms, "{failures}: {d}");
            }
        }
    }

    #[test]
    fn jitter_spreads_cameras() {
        let cfg = BackoffConfig::default();
        let delays: alloc::vec::Vec<_> = (0..10)
            .map(|seed| cfg.delay(5, &mut SplitMix64::new(seed)))
            .collect();
        let distinct = delays.iter().filter(|d| **d != delays[0]).count();
        assert!(distinct >= 8, "{delays:?}");
    }
}

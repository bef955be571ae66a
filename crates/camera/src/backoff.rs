//! Reconnect delays, written once for every reconnecting client in espcam: the camera's hub
//! links (this crate) and the hub's pull mode (`crates/hub`), so both wait the same way.
//!
//! After the n-th consecutive failure a link waits `min(max, initial·2ⁿ⁻¹)`, of which the
//! last `jitter_percent` are random ("equal jitter" at the default 50 %): a hub restart does
//! not see every camera come back in the same millisecond, and no camera ever retries faster
//! than half the nominal delay. A session that stayed up for [`BackoffConfig::stable`]
//! resets the count, so a peer that accepts and then drops at once is still retried slowly.
//!
//! Sans-IO: time comes in as plain `u64` milliseconds on any monotonic clock the caller
//! likes, randomness as a `u64` the caller drew. It must never sleep, read a clock or own a
//! random generator; it only counts and computes durations.
//!
//! ```
//! use core::time::Duration;
//! use espcam_camera::{Backoff, BackoffConfig};
//!
//! // The hub's pull mode: 0.5 s doubling to 30 s, reset after a 10 s session, no jitter.
//! let mut b = Backoff::new(BackoffConfig {
//!     stable: Duration::from_secs(10),
//!     jitter_percent: 0,
//!     ..BackoffConfig::default()
//! });
//! assert_eq!(b.failed(0, 0), Duration::from_millis(500)); // never came up
//! assert_eq!(b.failed(600, 0), Duration::from_secs(1));
//! b.connected(2_000);
//! assert_eq!(b.failed(5_000, 0), Duration::from_secs(2), "3 s session: not stable");
//! b.connected(8_000);
//! assert_eq!(b.failed(20_000, 0), Duration::from_millis(500), "12 s session: reset");
//! ```

use core::time::Duration;

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Nominal delay after the first failure.
    pub initial: Duration,
    /// Largest nominal delay.
    pub max: Duration,
    /// How long a session must have been up (from [`Backoff::connected`] to the next
    /// [`Backoff::failed`]) for its end to count as a fresh start. `ZERO`: any session does;
    /// right for the camera, whose `connected` is the hub's welcome.
    pub stable: Duration,
    /// Share of each delay that is random, 0..=100 (values above 100 count as 100). 50 is
    /// "equal jitter": the delay lies in `nominal/2 ..= nominal`.
    pub jitter_percent: u8,
}

impl Default for BackoffConfig {
    /// 500 ms doubling up to 30 s, equal jitter, every welcomed session resets.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            stable: Duration::ZERO,
            jitter_percent: 50,
        }
    }
}

impl BackoffConfig {
    /// The delay before retry number `failures` (1 = after the first failure), with `random`
    /// choosing where in the jitter range it falls.
    pub fn delay(&self, failures: u32, random: u64) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        let nominal = millis(self.initial)
            .saturating_mul(1u64 << shift)
            .min(millis(self.max))
            .max(1);
        let jitter = nominal.saturating_mul(u64::from(self.jitter_percent.min(100))) / 100;
        let random = random.checked_rem(jitter.saturating_add(1)).unwrap_or(0);
        Duration::from_millis(nominal - jitter + random)
    }
}

/// One reconnecting client's backoff state: consecutive failures and when the current
/// session came up.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
    up_since_ms: Option<u64>,
}

impl Backoff {
    /// No failures yet.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            failures: 0,
            up_since_ms: None,
        }
    }

    /// The parameters.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// A session came up at `now_ms` (the camera: the hub welcomed the link; pull mode: the
    /// WebSocket opened). With `stable == ZERO` this resets the failure count at once.
    pub fn connected(&mut self, now_ms: u64) {
        if self.config.stable.is_zero() {
            self.failures = 0;
        }
        self.up_since_ms = Some(now_ms);
    }

    /// The session (or the attempt to open one) ended at `now_ms`: how long to wait before
    /// the next attempt. `random` is any `u64` the caller drew (hardware RNG, a PRNG, 0 for
    /// no jitter).
    pub fn failed(&mut self, now_ms: u64, random: u64) -> Duration {
        if let Some(up) = self.up_since_ms.take()
            && now_ms.saturating_sub(up) >= millis(self.config.stable)
        {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.config.delay(self.failures, random)
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn doubles_with_jitter_and_caps() {
        let cfg = BackoffConfig::default();
        let mut rng = SplitMix64::new(1);
        for (failures, nominal_ms) in [(1, 500u64), (2, 1000), (3, 2000), (7, 30_000), (40, 30_000)]
        {
            for _ in 0..50 {
                let d = cfg.delay(failures, rng.next_u64()).as_millis() as u64;
                assert!(d >= nominal_ms / 2 && d <= nominal_ms, "{failures}: {d}");
            }
        }
    }

    #[test]
    fn jitter_spreads_cameras_and_can_be_off() {
        let cfg = BackoffConfig::default();
        let delays: alloc::vec::Vec<_> = (0..10)
            .map(|seed| cfg.delay(5, SplitMix64::new(seed).next_u64()))
            .collect();
        let distinct = delays.iter().filter(|d| **d != delays[0]).count();
        assert!(distinct >= 8, "{delays:?}");
        let none = BackoffConfig {
            jitter_percent: 0,
            ..cfg
        };
        assert_eq!(none.delay(3, u64::MAX), Duration::from_secs(2));
        let full = BackoffConfig {
            jitter_percent: 250,
            ..cfg
        };
        assert_eq!(
            full.delay(1, 0),
            Duration::ZERO,
            "100 %: anywhere in 0..=nominal"
        );
        assert_eq!(full.delay(1, 500), Duration::from_millis(500));
    }

    #[test]
    fn a_session_resets_only_once_stable() {
        let mut b = Backoff::new(BackoffConfig {
            stable: Duration::from_secs(10),
            jitter_percent: 0,
            ..BackoffConfig::default()
        });
        let waits: alloc::vec::Vec<u64> = (0..4)
            .map(|i| b.failed(i * 100, 7).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000]);
        b.connected(1_000);
        assert_eq!(
            b.failed(10_999, 0),
            Duration::from_secs(8),
            "9.999 s < stable"
        );
        b.connected(20_000);
        assert_eq!(b.failed(30_000, 0), Duration::from_millis(500));
        assert_eq!(b.failures(), 1);
        // A failure without a session in between never resets.
        assert_eq!(b.failed(90_000, 0), Duration::from_secs(1));
    }

    #[test]
    fn zero_stable_resets_on_connect() {
        let mut b = Backoff::new(BackoffConfig::default());
        b.failed(0, 0);
        b.failed(0, 0);
        b.connected(5);
        assert_eq!(b.failures(), 0);
        assert_eq!(b.failed(6, 0), Duration::from_millis(250));
    }
}

//! Failed-login rate limiting per client address, with growing delays: the first few
//! failures are free (people mistype), then each failure makes the address wait twice as
//! long as the last, up to a ceiling; a success resets it. Pure: the hub keeps one
//! [`LoginLimiter`] behind a mutex and passes `now`. IPv6 clients are keyed by their /64,
//! since one host may hold a whole /64. This module must never grow without bound: it keeps
//! at most [`LoginLimitPolicy::max_clients`] addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The limiter's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimitPolicy {
    /// Failures allowed without delay; the next failure starts the delays.
    pub free_failures: u32,
    /// Delay after failure `free_failures + 1`.
    pub first_delay: Duration,
    /// Ceiling for the doubling delay.
    pub max_delay: Duration,
    /// An address with no failure for this long is forgotten.
    pub forget_after: Duration,
    /// Most addresses tracked; past this the one whose last failure is oldest is dropped.
    pub max_clients: usize,
}

impl Default for LoginLimitPolicy {
    /// 5 free failures, then 1 s doubling to 15 min, forgotten after 1 h quiet, 10,000
    /// addresses.
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(3600),
            max_clients: 10_000,
        }
    }
}

/// Whether a login attempt may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginDecision {
    /// Check the password.
    Allow,
    /// Refuse without checking (HTTP 429, `Retry-After`: `retry_after` rounded up to
    /// seconds).
    Reject {
        /// How long until an attempt is allowed.
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Instant,
}

/// Per-address failure counts and lockouts.
#[derive(Debug)]
pub struct LoginLimiter {
    policy: LoginLimitPolicy,
    clients: HashMap<IpAddr, Entry>,
}

/// The key an address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by /64.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginLimiter {
    /// An empty limiter.
    pub fn new(policy: LoginLimitPolicy) -> Self {
        Self {
            policy,
            clients: HashMap::new(),
        }
    }

    /// The delay imposed after `failures` failures (zero while they are free).
    pub fn delay_after(&self, failures: u32) -> Duration {
        let p = &self.policy;
        if failures < p.free_failures {
            return Duration::ZERO;
        }
        let doublings = failures - p.free_failures;
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        p.first_delay
            .checked_mul(factor)
            .unwrap_or(p.max_delay)
            .min(p.max_delay)
    }

    /// May `addr` attempt a login now?
    pub fn check(&self, addr: IpAddr, now: Instant) -> LoginDecision {
        match self.clients.get(&key(addr)) {
            Some(e) if e.locked_until > now => LoginDecision::Reject {
                retry_after: e.locked_until - now,
            },
            _ => LoginDecision::Allow,
        }
    }

    /// Records a failed attempt; returns the delay now imposed on `addr`.
    pub fn record_failure(&mut self, addr: IpAddr, now: Instant) -> Duration {
        let k = key(addr);
        let forget = self.policy.forget_after;
        if !self.clients.contains_key(&k) && self.clients.len() >= self.policy.max_clients {
            self.purge(now);
            if self.clients.len() >= self.policy.max_clients
                && let Some(oldest) = self
                    .clients
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(k, _)| *k)
            {
                self.clients.remove(&oldest);
            }
        }
        let e = self.clients.entry(k).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: now,
        });
        if now.saturating_duration_since(e.last_failure) >= forget {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        let failures = e.failures;
        let delay = self.delay_after(failures);
        if let Some(e) = self.clients.get_mut(&k) {
            e.locked_until = now + delay;
        }
        delay
    }

    /// Records a successful login: `addr` starts afresh.
    pub fn record_success(&mut self, addr: IpAddr) {
        self.clients.remove(&key(addr));
    }

    /// Drops addresses quiet for `forget_after` whose lockout has ended.
    pub fn purge(&mut self, now: Instant) {
        let forget = self.policy.forget_after;
        self.clients.retain(|_, e| {
            e.locked_until > now || now.saturating_duration_since(e.last_failure) < forget
        });
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(LoginLimitPolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8));
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn five_free_then_doubling_to_fifteen_minutes() {
        let l = LoginLimiter::default();
        let delays: Vec<u64> = (1..=17).map(|n| l.delay_after(n).as_secs()).collect();
        assert_eq!(
            delays,
            [
                0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900
            ]
        );
        assert_eq!(l.delay_after(u32::MAX), Duration::from_secs(900));
    }

    #[test]
    fn reject_now_retry_after_and_success_resets() {
        let mut l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..4 {
            assert_eq!(l.record_failure(A, t0 + i * S), Duration::ZERO);
            assert_eq!(l.check(A, t0 + i * S), LoginDecision::Allow);
        }
        assert_eq!(l.record_failure(A, t0 + 4 * S), S);
        assert_eq!(
            l.check(A, t0 + 4 * S),
            LoginDecision::Reject { retry_after: S }
        );
        assert_eq!(
            l.check(A, t0 + 4 * S + S / 4),
            LoginDecision::Reject {
                retry_after: S * 3 / 4
            }
        );
        assert_eq!(l.check(B, t0 + 4 * S), LoginDecision::Allow, "per address");
        assert_eq!(l.check(A, t0 + 5 * S), LoginDecision::Allow);
        assert_eq!(l.record_failure(A, t0 + 5 * S), 2 * S);
        assert_eq!(
            l.check(A, t0 + 6 * S),
            LoginDecision::Reject { retry_after: S }
        );
        l.record_success(A);
        assert_eq!(l.check(A, t0 + 6 * S), LoginDecision::Allow);
        assert_eq!(l.record_failure(A, t0 + 6 * S), Duration::ZERO);
    }

    #[test]
    fn quiet_addresses_are_forgotten() {
        let mut l = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..7 {
            l.record_failure(A, t0);
        }
        let later = t0 + Duration::from_secs(3600);
        l.purge(later);
        assert!(l.is_empty());
        for _ in 0..7 {
            l.record_failure(A, t0);
        }
        // Without a purge, a failure after the quiet hour counts from one again.
        assert_eq!(l.record_failure(A, later), Duration::ZERO);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let mut l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..5u16 {
            let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i));
            l.record_failure(a, t0);
        }
        let other_host_same_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        assert!(matches!(
            l.check(other_host_same_64, t0),
            LoginDecision::Reject { .. }
        ));
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert_eq!(l.check(other_64, t0), LoginDecision::Allow);
        for _ in 0..5 {
            l.record_failure(A, t0);
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        assert!(matches!(l.check(mapped, t0), LoginDecision::Reject { .. }));
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = LoginLimiter::new(LoginLimitPolicy {
            max_clients: 100,
            ..LoginLimitPolicy::default()
        });
        let t0 = Instant::now();
        for i in 0..1000u32 {
            l.record_failure(
                IpAddr::V4(Ipv4Addr::from(i)),
                t0 + Duration::from_millis(i.into()),
            );
        }
        assert_eq!(l.len(), 100);
        // The newest are kept.
        let newest = IpAddr::V4(Ipv4Addr::from(999u32));
        assert!(l.clients.contains_key(&newest));
    }
}

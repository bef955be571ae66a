//! Rate-limited, summarised warnings per peer, so one connection sending `{` in a loop
//! writes a handful of log lines and then one summary every window ("1,204 bad messages from
//! 10.0.0.7 in the last 10 s") instead of 630,000 lines. Pure: the hub keeps one
//! [`WarnLimiter`] per kind of warning behind a mutex, asks [`WarnLimiter::note`] before
//! logging, and logs what [`WarnLimiter::flush`] returns from its once-a-second tick. This
//! module must never keep more than [`WarnLimitPolicy::max_peers`] peers.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The limiter's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarnLimitPolicy {
    /// Length of a counting window.
    pub window: Duration,
    /// Warnings logged in full per peer per window; the rest are counted.
    pub burst: u32,
    /// Most peers tracked; warnings from further peers are counted together as "other
    /// peers".
    pub max_peers: usize,
}

impl Default for WarnLimitPolicy {
    /// 10 s windows, 3 full warnings per peer per window, 1,024 peers.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            burst: 3,
            max_peers: 1024,
        }
    }
}

/// Whether to log this warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarnDecision {
    /// Log it in full.
    Log,
    /// Do not log it; it is counted in the next summary.
    Suppress,
}

/// Warnings not logged from one peer (or from the overflow of peers) in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarnSummary {
    /// What was counted, e.g. `bad messages`.
    pub what: &'static str,
    /// The peer; `None` for peers beyond `max_peers`, counted together.
    pub peer: Option<IpAddr>,
    /// How many were suppressed.
    pub suppressed: u64,
    /// The window they fell in.
    pub window: Duration,
}

impl fmt::Display for WarnSummary {
    /// `1,204 bad messages from 10.0.0.7 in the last 10 s` (suppressed ones; the first few
    /// of the window were logged in full).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = thousands(self.suppressed);
        let secs = self.window.as_secs().max(1);
        match self.peer {
            Some(p) => write!(f, "{n} {} from {p} in the last {secs} s", self.what),
            None => write!(f, "{n} {} from other peers in the last {secs} s", self.what),
        }
    }
}

/// `1204` → `1,204`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Per-peer warning windows for one kind of warning.
#[derive(Debug)]
pub struct WarnLimiter {
    what: &'static str,
    policy: WarnLimitPolicy,
    peers: HashMap<IpAddr, Window>,
    /// Peers beyond `max_peers`: never logged in full, only counted.
    overflow: Option<Window>,
    /// Summaries of windows that ended inside [`WarnLimiter::note`], for the next flush.
    ended: Vec<WarnSummary>,
}

impl WarnLimiter {
    /// A limiter for warnings described as `what` in summaries (`"bad messages"`).
    pub fn new(what: &'static str, policy: WarnLimitPolicy) -> Self {
        Self {
            what,
            policy,
            peers: HashMap::new(),
            overflow: None,
            ended: Vec::new(),
        }
    }

    fn summary(&self, peer: Option<IpAddr>, w: &Window) -> Option<WarnSummary> {
        (w.suppressed > 0).then_some(WarnSummary {
            what: self.what,
            peer,
            suppressed: w.suppressed,
            window: self.policy.window,
        })
    }

    /// A warning about `peer` at `now`: log it, or count it.
    pub fn note(&mut self, peer: IpAddr, now: Instant) -> WarnDecision {
        let window = self.policy.window;
        if let Some(w) = self.peers.get(&peer).copied()
            && now.saturating_duration_since(w.start) >= window
        {
            if let Some(s) = self.summary(Some(peer), &w) {
                self.ended.push(s);
            }
            self.peers.remove(&peer);
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.policy.max_peers {
            self.expire(now);
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.policy.max_peers {
            let o = self.overflow.get_or_insert(Window {
                start: now,
                logged: 0,
                suppressed: 0,
            });
            o.suppressed += 1;
            return WarnDecision::Suppress;
        }
        let burst = self.policy.burst;
        let w = self.peers.entry(peer).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if w.logged < burst {
            w.logged += 1;
            WarnDecision::Log
        } else {
            w.suppressed += 1;
            WarnDecision::Suppress
        }
    }

    /// Moves every window that has ended into `ended`.
    fn expire(&mut self, now: Instant) {
        let window = self.policy.window;
        let done: Vec<(IpAddr, Window)> = self
            .peers
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.start) >= window)
            .map(|(p, w)| (*p, *w))
            .collect();
        for (p, w) in done {
            self.peers.remove(&p);
            if let Some(s) = self.summary(Some(p), &w) {
                self.ended.push(s);
            }
        }
        if let Some(o) = self.overflow
            && now.saturating_duration_since(o.start) >= window
        {
            self.overflow = None;
            if let Some(s) = self.summary(None, &o) {
                self.ended.push(s);
            }
        }
    }

    /// Summaries of every window that has ended by `now` with suppressed warnings: log each
    /// as one line. Call it periodically (the hub's 1 s tick).
    pub fn flush(&mut self, now: Instant) -> Vec<WarnSummary> {
        self.expire(now);
        std::mem::take(&mut self.ended)
    }

    /// Peers with an open window.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const P: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    const Q: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8));

    #[test]
    fn a_flood_becomes_three_lines_and_a_summary() {
        let mut l = WarnLimiter::new("bad messages", WarnLimitPolicy::default());
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 0..1207u32 {
            if l.note(P, t0 + Duration::from_millis(u64::from(i))) == WarnDecision::Log {
                logged += 1;
            }
        }
        assert_eq!(logged, 3);
        assert_eq!(l.note(Q, t0), WarnDecision::Log, "per peer");
        assert!(
            l.flush(t0 + Duration::from_secs(9)).is_empty(),
            "window still open"
        );
        let s = l.flush(t0 + Duration::from_secs(10));
        assert_eq!(s.len(), 1, "Q had nothing suppressed");
        assert_eq!(
            s[0].to_string(),
            "1,204 bad messages from 10.0.0.7 in the last 10 s"
        );
        assert_eq!(l.peers(), 0);
        // A new window logs again.
        assert_eq!(l.note(P, t0 + Duration::from_secs(11)), WarnDecision::Log);
    }

    #[test]
    fn a_window_ending_inside_note_is_still_summarised() {
        let mut l = WarnLimiter::new("bad frames", WarnLimitPolicy::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            l.note(P, t0);
        }
        assert_eq!(l.note(P, t0 + Duration::from_secs(10)), WarnDecision::Log);
        let s = l.flush(t0 + Duration::from_secs(10));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].suppressed, 2);
    }

    #[test]
    fn peers_are_bounded() {
        let policy = WarnLimitPolicy {
            max_peers: 10,
            ..WarnLimitPolicy::default()
        };
        let mut l = WarnLimiter::new("bad messages", policy);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            l.note(IpAddr::V4(Ipv4Addr::from(i)), t0);
        }
        assert_eq!(l.peers(), 10);
        let s = l.flush(t0 + Duration::from_secs(10));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].to_string(),
            "990 bad messages from other peers in the last 10 s"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(630_097), "630,097");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}

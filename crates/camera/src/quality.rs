//! Adaptive JPEG quality: on a link that cannot carry the frame rate, smaller frames first,
//! a lower rate only after that.
//!
//! Every second the core reports whether the rate was below target and whether frames were
//! dropped. After [`AdaptiveQuality::hold`] below target with drops still happening, the
//! quality *number* goes up one step (smaller frames), again after every further `hold`, up
//! to [`AdaptiveQuality::limit`]; meanwhile the pacer keeps at least half the target rate
//! (`pacing`), and only once the limit is reached may the rate fall further. When the link
//! clears, the pacer restores the rate first (quality is left alone while below target);
//! after [`AdaptiveQuality::settle`] at the full rate without drops the quality number comes
//! down one step, and again after every further `settle`, back to the user's choice.
//!
//! The user's chosen quality is the ceiling: lower numbers are better quality in esp32-camera,
//! and the number in force is never lower than the chosen one. This module only decides the
//! number; it must never touch the sensor or know about links.

use core::time::Duration;

use espcam_proto::Quality;

/// How the camera trades JPEG quality for frame rate ([`Config::adaptive_quality`](crate::Config::adaptive_quality)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveQuality {
    /// The highest quality number (smallest, worst frames) the camera may switch to. A user
    /// choice at or above it is never adapted.
    pub limit: Quality,
    /// Quality numbers per step (at least 1).
    pub step: u8,
    /// How long the rate must have been below target, with drops, before each step up.
    pub hold: Duration,
    /// How long at the full rate without drops before each step back down.
    pub settle: Duration,
}

impl Default for AdaptiveQuality {
    /// Up to quality 30, 3 numbers per step, stepping after 3 s either way.
    fn default() -> Self {
        Self {
            limit: Quality::new(30).unwrap_or_else(|_| unreachable!("30 is in 0..=63")),
            step: 3,
            hold: Duration::from_secs(3),
            settle: Duration::from_secs(3),
        }
    }
}

/// The quality decision for one camera.
#[derive(Debug, Clone)]
pub(crate) struct Governor {
    config: Option<AdaptiveQuality>,
    chosen: Quality,
    in_force: Quality,
    /// Consecutive seconds below target (reset at target).
    below_secs: u64,
    /// Consecutive seconds at target without drops.
    clear_secs: u64,
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl Governor {
    pub(crate) fn new(config: Option<AdaptiveQuality>, chosen: Quality) -> Self {
        Self {
            config,
            chosen,
            in_force: chosen,
            below_secs: 0,
            clear_secs: 0,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.config.is_some()
    }

    #[cfg(test)]
    pub(crate) fn in_force(&self) -> Quality {
        self.in_force
    }

    /// The user chose `q`: it is in force from now on, and adaptation starts over from it.
    pub(crate) fn set_chosen(&mut self, q: Quality) {
        self.chosen = q;
        self.in_force = q;
        self.below_secs = 0;
        self.clear_secs = 0;
    }

    /// The sensor refused `q`: keep the previous number.
    pub(crate) fn refused(&mut self, previous: Quality) {
        self.in_force = previous;
    }

    /// Whether frames can still be made smaller: the pacer then holds half the rate.
    pub(crate) fn has_headroom(&self) -> bool {
        self.config.is_some_and(|c| self.in_force < c.limit)
    }

    /// Once a second. Returns the new quality number when it changes.
    pub(crate) fn on_second(&mut self, below_target: bool, dropped: bool) -> Option<Quality> {
        let config = self.config?;
        let step = config.step.max(1);
        if below_target {
            self.clear_secs = 0;
            self.below_secs += 1;
            if dropped && self.below_secs >= secs(config.hold) && self.in_force < config.limit {
                self.below_secs = 0;
                let up = self
                    .in_force
                    .get()
                    .saturating_add(step)
                    .min(config.limit.get());
                return self.change(up);
            }
            return None;
        }
        self.below_secs = 0;
        if dropped {
            self.clear_secs = 0;
            return None;
        }
        self.clear_secs += 1;
        if self.clear_secs >= secs(config.settle) && self.in_force > self.chosen {
            self.clear_secs = 0;
            let down = self
                .in_force
                .get()
                .saturating_sub(step)
                .max(self.chosen.get());
            return self.change(down);
        }
        None
    }

    fn change(&mut self, to: u8) -> Option<Quality> {
        let q = Quality::new(i64::from(to)).ok()?;
        self.in_force = q;
        Some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u8) -> Quality {
        Quality::new(n.into()).unwrap()
    }

    #[test]
    fn steps_up_after_hold_down_after_settle_within_bounds() {
        let mut g = Governor::new(Some(AdaptiveQuality::default()), q(12));
        assert_eq!(g.on_second(true, true), None);
        assert_eq!(g.on_second(true, true), None);
        assert_eq!(
            g.on_second(true, true),
            Some(q(15)),
            "after 3 s below target"
        );
        for _ in 0..2 {
            assert_eq!(g.on_second(true, true), None);
        }
        assert_eq!(g.on_second(true, true), Some(q(18)));
        for _ in 0..30 {
            let _ = g.on_second(true, true);
        }
        assert_eq!(g.in_force(), q(30), "never past the limit");
        assert!(!g.has_headroom());
        // Recovering (below target, no drops): the rate comes back first.
        for _ in 0..10 {
            assert_eq!(g.on_second(true, false), None);
        }
        assert_eq!(g.on_second(false, false), None);
        assert_eq!(g.on_second(false, false), None);
        assert_eq!(g.on_second(false, false), Some(q(27)));
        for _ in 0..40 {
            let _ = g.on_second(false, false);
        }
        assert_eq!(g.in_force(), q(12), "never better than chosen");
    }

    #[test]
    fn a_choice_at_or_past_the_limit_is_never_adapted_and_off_means_off() {
        let mut g = Governor::new(Some(AdaptiveQuality::default()), q(40));
        for _ in 0..10 {
            assert_eq!(g.on_second(true, true), None);
        }
        assert_eq!(g.in_force(), q(40));
        let mut off = Governor::new(None, q(12));
        for _ in 0..10 {
            assert_eq!(off.on_second(true, true), None);
        }
        assert!(!off.has_headroom());
    }
}

//! Frame pacing: when to capture the next frame, and how fast to go when the link is slow.
//!
//! The camera aims for a target rate (the seed streams at 30 fps). When a captured frame
//! cannot be handed to any link because the previous one is still being sent, the frame is
//! dropped — never queued — and the rate is cut by an eighth; each second without a drop
//! raises it again by a fifth of the target (AIMD, as TCP does). A lone hiccup costs little
//! and is recovered within a second; a link that stays too slow sees drop after drop and
//! the rate falls geometrically to what it can carry. While JPEG quality can still give
//! (see `quality`), the rate is held at half the target at least: smaller frames are tried
//! before a jerkier picture. This module only does the arithmetic; it must never hold frames
//! or know about links.

use core::time::Duration;

use crate::time::Instant;

/// Lowest rate the controller adapts down to, in milli-fps (1 fps): a camera on a bad link
/// still shows a live picture.
const MIN_MFPS: u32 = 1_000;

/// Adaptive capture pacing. Rates are kept in milli-frames per second to stay in integers.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    target_mfps: u32,
    current_mfps: u32,
    next_capture: Option<Instant>,
    dropped_this_second: bool,
    /// Lowest rate drops may cut to now: [`MIN_MFPS`], or half the target while JPEG
    /// quality can still be lowered instead.
    floor_mfps: u32,
}

impl Pacer {
    pub(crate) fn new(target_fps: u16) -> Self {
        let target_mfps = u32::from(target_fps.max(1)) * 1000;
        Self {
            target_mfps,
            current_mfps: target_mfps,
            next_capture: None,
            dropped_this_second: false,
            floor_mfps: MIN_MFPS.min(target_mfps),
        }
    }

    pub(crate) fn target_fps(&self) -> u16 {
        u16::try_from(self.target_mfps / 1000).unwrap_or(u16::MAX)
    }

    /// The rate currently paced to, in frames per second.
    pub(crate) fn current_fps(&self) -> f32 {
        self.current_mfps as f32 / 1000.0
    }

    pub(crate) fn interval(&self) -> Duration {
        Duration::from_micros(1_000_000_000 / u64::from(self.current_mfps.max(1)))
    }

    /// Starts pacing (a link to stream to appeared): the first capture is due now.
    pub(crate) fn start(&mut self, now: Instant) {
        if self.next_capture.is_none() {
            self.next_capture = Some(now);
        }
    }

    /// Stops pacing (nobody to stream to).
    pub(crate) fn stop(&mut self) {
        self.next_capture = None;
    }

    pub(crate) fn next_capture(&self) -> Option<Instant> {
        self.next_capture
    }

    /// Whether a capture is due at `now`. If so, schedules the following one: one interval
    /// after the due time, or one interval after `now` if the camera fell behind — a late
    /// camera never bursts to catch up.
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        match self.next_capture {
            Some(due) if due <= now => {
                let interval = self.interval();
                let next = due + interval;
                self.next_capture = Some(if next <= now { now + interval } else { next });
                true
            }
            _ => false,
        }
    }

    /// A frame was dropped because the link was still busy: slow down by an eighth, but
    /// not below the floor (a rate already below it is not raised).
    pub(crate) fn on_drop(&mut self) {
        self.dropped_this_second = true;
        let floor = self.floor_mfps.min(self.current_mfps);
        self.current_mfps = (self.current_mfps / 8 * 7).max(floor);
    }

    /// Once a second: speed up again after a second without drops. Returns whether the
    /// second that ended had drops.
    pub(crate) fn on_second(&mut self) -> bool {
        let dropped = core::mem::take(&mut self.dropped_this_second);
        if !dropped {
            self.current_mfps = (self.current_mfps + self.target_mfps / 5).min(self.target_mfps);
        }
        dropped
    }

    /// Whether the rate is below the target (the link did not keep up lately).
    pub(crate) fn below_target(&self) -> bool {
        self.current_mfps < self.target_mfps
    }

    /// `true`: drops cut the rate to half the target at most (quality gives first);
    /// `false`: down to 1 fps.
    pub(crate) fn hold_half_rate(&mut self, hold: bool) {
        self.floor_mfps = if hold {
            self.target_mfps / 2
        } else {
            MIN_MFPS.min(self.target_mfps)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_target_and_never_bursts() {
        let mut p = Pacer::new(30);
        assert!(!p.take_due(Instant::ZERO), "not started");
        p.start(Instant::ZERO);
        assert!(p.take_due(Instant::ZERO));
        assert!(!p.take_due(Instant::from_micros(33_000)));
        assert!(p.take_due(Instant::from_micros(33_333)));
        // Five intervals late: one capture, then the schedule restarts from now.
        assert!(p.take_due(Instant::from_millis(200)));
        assert!(!p.take_due(Instant::from_millis(201)));
        assert_eq!(p.next_capture(), Some(Instant::from_micros(233_333)));
    }

    #[test]
    fn aimd() {
        let mut p = Pacer::new(30);
        p.on_drop();
        assert_eq!(p.current_fps(), 26.25);
        for _ in 0..40 {
            p.on_drop();
        }
        assert_eq!(p.current_fps(), 1.0, "floor at 1 fps");
        assert!(p.on_second(), "the second with the drops");
        assert!(!p.on_second());
        assert_eq!(p.current_fps(), 7.0);
        for _ in 0..20 {
            p.on_second();
        }
        assert_eq!(p.current_fps(), 30.0, "capped at target");
        assert!(!p.below_target());
    }

    #[test]
    fn holding_half_the_rate_while_quality_can_give() {
        let mut p = Pacer::new(30);
        p.hold_half_rate(true);
        for _ in 0..40 {
            p.on_drop();
        }
        assert_eq!(p.current_fps(), 15.0);
        assert!(p.below_target());
        p.hold_half_rate(false);
        p.on_drop();
        assert_eq!(p.current_fps(), 13.125, "then it may fall further");
        p.hold_half_rate(true);
        p.on_drop();
        assert_eq!(
            p.current_fps(),
            13.125,
            "a rate under the floor stays, never raised"
        );
    }
}

//! Adaptive JPEG quality on a virtual clock, over a link whose capacity is scripted: a slow
//! link costs JPEG quality first (one step at a time, up to the limit, the rate held at half
//! the target meanwhile), frame rate only after that; when the link clears the rate comes
//! back first, then the quality, step by step, never better than the user's choice.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use espcam_camera::{AdaptiveQuality, ConnId, Instant};
use espcam_proto::Quality;
use serde_json::Value;
use support::{Harness, Seen, hub_config};

/// JPEG size at quality number `q`: smaller frames for higher numbers, as esp32-camera's.
fn jpeg_len(q: Quality) -> usize {
    60_000 * (64 - usize::from(q.get())) / 52
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    paced: f32,
    quality: u8,
}

/// Plays a shell whose stream link carries `capacity(now)` bytes per second: a frame is
/// reported sent once its bytes would have left. Samples the core once a second.
struct Link {
    busy_until: Option<Instant>,
    samples: Vec<Sample>,
    next_sample: Instant,
}

impl Link {
    fn run(&mut self, h: &mut Harness, stream: ConnId, d: Duration, capacity: u64) {
        let end = h.now + d;
        loop {
            let timeout = h.cam.poll_timeout().unwrap();
            let next = [Some(timeout), self.busy_until, Some(self.next_sample)]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            if next > end {
                break;
            }
            h.now = h.now.max(next);
            if self.busy_until.is_some_and(|t| t <= h.now) {
                self.busy_until = None;
                assert!(h.cam.handle_frame_sent(h.now, stream).is_none());
            }
            if self.next_sample <= h.now {
                let s = h.cam.stats(h.now);
                self.samples.push(Sample {
                    at: h.now,
                    paced: s.paced_fps,
                    quality: s.quality_in_force.get(),
                });
                self.next_sample = self.next_sample + Duration::from_secs(1);
            }
            if timeout <= h.now {
                h.cam.handle_timeout(h.now);
            }
            h.jpeg_len = jpeg_len(h.cam.sensor().settings.quality);
            let from = h.log.len();
            h.drain();
            for (t, f) in h.frames(from) {
                assert!(self.busy_until.is_none(), "a frame while the link was busy");
                let secs = f64::from(f.info.jpeg_len) / capacity as f64;
                self.busy_until = Some(t + Duration::from_secs_f64(secs));
            }
        }
        h.now = end;
    }

    fn since(&self, t: Instant) -> Vec<Sample> {
        self.samples.iter().filter(|s| s.at >= t).copied().collect()
    }
}

#[test]
fn a_slow_link_costs_quality_first_then_rate_and_recovers_in_reverse() {
    let cfg = AdaptiveQuality::default();
    let limit = cfg.limit.get();
    let mut h = Harness::new(hub_config(1));
    let (control, stream) = h.online();
    h.auto_sent = false;
    let mut link = Link {
        busy_until: None,
        samples: Vec::new(),
        next_sample: h.now,
    };

    // A link with room to spare: full rate, the chosen quality.
    link.run(&mut h, stream, Duration::from_secs(10), 2_500_000);
    let s = *link.samples.last().unwrap();
    assert_eq!((s.paced, s.quality), (30.0, 12), "{s:?}");

    // The link slows to 400 kB/s: even at the limit's ~39 kB frames only ~10 fps fit.
    let slow_at = h.now;
    link.run(&mut h, stream, Duration::from_secs(60), 400_000);
    let slow = link.since(slow_at);
    let mut last_q = 12;
    for s in &slow {
        assert!(
            s.quality >= last_q,
            "quality only rises while slow: {slow:?}"
        );
        assert!(
            s.quality - last_q <= cfg.step,
            "one step at a time: {slow:?}"
        );
        last_q = s.quality;
        if s.paced < 15.0 {
            assert_eq!(s.quality, limit, "rate below half only at the limit: {s:?}");
        }
    }
    assert_eq!(last_q, limit, "{slow:?}");
    let end = *slow.last().unwrap();
    assert!(end.paced < 15.0, "then the rate fell further: {end:?}");

    // Telemetry tells the chosen quality and the one in force apart.
    let tel: Vec<Value> = h
        .texts_to(control, 0)
        .into_iter()
        .filter(|v| v["type"] == "telemetry")
        .collect();
    let last = tel.last().unwrap();
    assert_eq!(last["settings"]["quality"], 12, "{last}");
    assert_eq!(last["quality_in_force"], limit, "{last}");

    // The link clears: the rate comes back first, then the quality, step by step.
    let clear_at = h.now;
    link.run(&mut h, stream, Duration::from_secs(60), 2_500_000);
    let clear = link.since(clear_at);
    let first_down = clear.iter().position(|s| s.quality < limit).unwrap();
    assert!(
        clear[..=first_down].iter().any(|s| s.paced == 30.0),
        "full rate before any quality comes back: {clear:?}"
    );
    let mut last_q = limit;
    for s in &clear[first_down..] {
        assert!(
            s.quality <= last_q && last_q - s.quality <= cfg.step,
            "{clear:?}"
        );
        assert_eq!(
            s.paced, 30.0,
            "the rate stays up while quality returns: {s:?}"
        );
        last_q = s.quality;
    }
    let end = *clear.last().unwrap();
    assert_eq!(
        (end.paced, end.quality),
        (30.0, 12),
        "never better than chosen"
    );
    assert!(matches!(
        h.log.last(),
        Some((_, Seen::Frame(_) | Seen::Text(..)))
    ));
}

#[test]
fn the_users_quality_is_the_ceiling_and_a_new_choice_starts_over() {
    let mut h = Harness::new(hub_config(1));
    let (control, stream) = h.online();
    h.auto_sent = false;
    let mut link = Link {
        busy_until: None,
        samples: Vec::new(),
        next_sample: h.now,
    };
    link.run(&mut h, stream, Duration::from_secs(20), 400_000);
    assert!(h.cam.stats(h.now).quality_in_force.get() > 12);
    // The user asks for better quality while the link is slow: it is in force at once (the
    // ack reports it), and adaptation starts over from there.
    let from = h.log.len();
    h.text(control, r#"{"cmd":"quality","value":8,"id":1}"#);
    let ack = h.texts_to(control, from).pop().unwrap();
    assert_eq!(ack["settings"]["quality"], 8);
    assert_eq!(h.cam.stats(h.now).quality_in_force.get(), 8);
    assert_eq!(h.cam.sensor().settings.quality.get(), 8);
    link.run(&mut h, stream, Duration::from_secs(60), 3_000_000);
    let s = h.cam.stats(h.now);
    assert_eq!(s.quality_in_force.get(), 8, "{s:?}");
    assert_eq!(h.cam.settings().quality.get(), 8);
}

//! Proves the steady-state analysis allocates nothing: a counting global allocator watches
//! `Detector::analyse` through a stream of frames of one size, including a whole motion
//! event (start and end). Only the first frame (buffers, tables) may allocate, and the first
//! frame after a configuration change (the zone layout is rebuilt).
//!
//! One test per binary on purpose: the allocator is process-global.

#[path = "../../camera/tests/support/counting_alloc.rs"]
mod counting_alloc;

mod support;

use counting_alloc::count;
use espcam_motion::{Detector, MotionConfig, MotionEvent, Rect, Zone};
use support::{Sampling, encode, photo_like};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn steady_state_analysis_allocates_nothing() {
    let still = photo_like(320, 240, 11);
    let frames: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let mut pic = still.clone();
            if (10..20).contains(&i) {
                pic.fill(20 + 20 * (i - 10), 80, 50, 60, [30, 30, 30]);
            }
            encode(&pic, 82, Sampling::S422, Some(4))
        })
        .collect();
    let zones = vec![Zone {
        name: "left".into(),
        rect: Rect::new(0.0, 0.0, 0.5, 1.0),
    }];
    let mut d = Detector::new(MotionConfig {
        end_after_ms: 1_000,
        zones: zones.clone(),
        ..MotionConfig::default()
    })
    .unwrap();
    let (_, first) = count(|| d.analyse(&frames[0], 0).unwrap());
    assert!(first > 0, "the first frame sets up buffers");
    let mut events = 0;
    for (i, f) in frames.iter().enumerate().skip(1) {
        let (a, n) = count(|| d.analyse(f, i as u64 * 200).unwrap());
        assert_eq!(n, 0, "frame {i} allocated {n} times");
        events += usize::from(a.event.is_some());
        if let Some(MotionEvent::Ended { .. }) = a.event {
            assert!(!d.in_motion());
        }
    }
    assert_eq!(events, 2, "the stream holds one start and one end");
    // A new configuration rebuilds the layout once, then steady again.
    d.set_config(MotionConfig {
        zones,
        sensitivity: 70,
        ..MotionConfig::default()
    })
    .unwrap();
    let (_, rebuild) = count(|| d.analyse(&frames[0], 40 * 200).unwrap());
    assert!(rebuild > 0);
    let (_, n) = count(|| d.analyse(&frames[1], 41 * 200).unwrap());
    assert_eq!(n, 0);
}

//! Proves the steady-state frame path allocates nothing: a counting global allocator watches
//! the core through thousands of frames (hub and standalone), and every call that only moved
//! a frame (timeout → `Capture` → `handle_frame` → `handle_frame_sent`) must have allocated
//! zero times. Calls that produced a text message (telemetry, heartbeat once a second) are
//! allowed to allocate its `String`, and are counted separately so the test also shows they
//! stay rare.
//!
//! One test per binary on purpose: the allocator is process-global.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::time::Duration;

use counting_alloc::count;
use espcam_camera::{
    Camera, CapturedFrame, Config, FrameDecision, Instant, Output, Sensor, SensorError, Setting,
};
use espcam_proto::CameraId;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

struct NullSensor;
impl Sensor for NullSensor {
    fn set(&mut self, _: Setting) -> Result<(), SensorError> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Tally {
    frames: usize,
    frame_calls: usize,
    frame_path_allocs: usize,
    text_calls: usize,
    text_allocs: usize,
}

/// Runs `cam` for `secs` of virtual time as a shell would, attributing allocations.
fn run(cam: &mut Camera<NullSensor>, now: &mut Instant, secs: u64, tally: &mut Tally) {
    let end = *now + Duration::from_secs(secs);
    while let Some(t) = cam.poll_timeout() {
        if t > end {
            break;
        }
        *now = t;
        let at = *now;
        // One shell iteration: the timeout, then draining every output.
        let (texts, allocs) = count(|| {
            cam.handle_timeout(at);
            let mut texts = 0;
            let mut frames = 0;
            while let Some(o) = cam.poll_output() {
                match o {
                    Output::Capture => {
                        let f = CapturedFrame {
                            captured_at: at,
                            width: 640,
                            height: 480,
                            len: 30_000,
                        };
                        if let FrameDecision::Send(send) = cam.handle_frame(at, &f) {
                            frames += 1;
                            for c in send.targets.as_slice() {
                                assert!(cam.handle_frame_sent(at, *c).is_none());
                            }
                        }
                    }
                    // Dropping the String here is part of what the shell does; it frees.
                    Output::Text { .. } => texts += 1,
                    other => panic!("unexpected output in steady state: {other:?}"),
                }
            }
            (texts, frames)
        });
        let (texts, frames) = texts;
        tally.frames += frames;
        if texts > 0 {
            tally.text_calls += 1;
            tally.text_allocs += allocs;
        } else {
            tally.frame_calls += 1;
            tally.frame_path_allocs += allocs;
        }
    }
}

#[test]
fn steady_state_frame_path_allocates_nothing() {
    // Hub mode, both links up.
    let mut now = Instant::from_millis(5);
    let mut cam = Camera::new(
        Config::hub(CameraId::new("cam-1").unwrap(), "t"),
        NullSensor,
        now,
    );
    let mut conns = Vec::new();
    cam.handle_timeout(now);
    while let Some(o) = cam.poll_output() {
        if let Output::Connect { conn, .. } = o {
            conns.push(conn);
        }
    }
    cam.handle_connected(now, conns[0]);
    cam.handle_text(now, conns[0], r#"{"type":"welcome","camera":"cam-1"}"#);
    cam.handle_timeout(now);
    while let Some(o) = cam.poll_output() {
        if let Output::Connect { conn, .. } = o {
            conns.push(conn);
        }
    }
    cam.handle_connected(now, conns[1]);
    cam.handle_text(now, conns[1], r#"{"type":"welcome","camera":"cam-1"}"#);
    while cam.poll_output().is_some() {}

    let mut warmup = Tally::default();
    run(&mut cam, &mut now, 2, &mut warmup);
    let mut hub = Tally::default();
    run(&mut cam, &mut now, 60, &mut hub);
    assert!(hub.frames >= 60 * 29, "{hub:?}");
    assert_eq!(
        hub.frame_path_allocs, 0,
        "hub frame path allocated: {hub:?}"
    );
    assert_eq!(hub.text_calls, 60, "one telemetry per second: {hub:?}");

    // Standalone mode, five clients.
    let mut now = Instant::from_millis(5);
    let mut cam = Camera::new(Config::standalone(), NullSensor, now);
    for _ in 0..5 {
        cam.handle_client_open(now).unwrap();
    }
    while cam.poll_output().is_some() {}
    let mut warmup = Tally::default();
    run(&mut cam, &mut now, 2, &mut warmup);
    let mut sa = Tally::default();
    run(&mut cam, &mut now, 60, &mut sa);
    assert!(sa.frames >= 60 * 29, "{sa:?}");
    assert_eq!(
        sa.frame_path_allocs, 0,
        "standalone frame path allocated: {sa:?}"
    );
    assert_eq!(sa.text_calls, 60, "one heartbeat round per second: {sa:?}");
    println!("hub: {hub:?}\nstandalone: {sa:?}");
}

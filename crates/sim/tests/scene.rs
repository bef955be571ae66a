//! The virtual camera's scenes are what motion tests rely on: a still scene changes only its
//! text, the moving scene's object really is in the picture where and when it should be, the
//! lighting scene steps its brightness on schedule, and the real detector agrees (still: no
//! event; moving: start, then end once the scene is still again; lighting: none).

#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use espcam_motion::{Detector, MotionConfig, MotionEvent};
use espcam_proto::{Brightness, Settings};
use espcam_sim::picture::{LIGHT_PERIOD_MS, MOVE_CROSSING_MS};
use espcam_sim::{FrameSet, Scene};

fn decode(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let pixels = d.decode().expect("valid JPEG");
    let info = d.info().unwrap();
    (usize::from(info.width), usize::from(info.height), pixels)
}

fn luma(img: &(usize, usize, Vec<u8>), x: usize, y: usize) -> u8 {
    let i = (y * img.0 + x) * 3;
    ((u32::from(img.2[i]) * 3 + u32::from(img.2[i + 1]) * 6 + u32::from(img.2[i + 2])) / 10) as u8
}

fn frame(set: &FrameSet, scene: Scene, index: u64, ms: u64) -> Vec<u8> {
    let text = format!("#{index:06} {ms}");
    let mut out = BytesMut::new();
    set.compose_scene(scene, index, ms, &["CAM-1", &text], &mut out);
    out.to_vec()
}

#[test]
fn still_scene_changes_only_its_text() {
    let set = FrameSet::build(Settings::default()).unwrap();
    let a = decode(&frame(&set, Scene::Still, 0, 0));
    let b = decode(&frame(&set, Scene::Still, 17, 3_400));
    assert_eq!((a.0, a.1), (640, 480));
    // Below the text (rows of MCUs 1..=2 hold it here), every pixel is the same.
    let row = 4 * 16 * a.0 * 3;
    assert_eq!(a.2[row..], b.2[row..]);
    // The pattern scene, by contrast, moves below the text.
    let p = decode(&frame(&set, Scene::Pattern, 5, 0));
    assert_ne!(a.2[row..], p.2[row..]);
}

#[test]
fn moving_object_is_where_the_clock_says() {
    let set = FrameSet::build(Settings::default()).unwrap();
    let side = set.object_side();
    assert_eq!(side, 7, "VGA: 7×7 MCUs");
    let y = 240; // the object's rows are centred
    for ms in [0, MOVE_CROSSING_MS / 2, MOVE_CROSSING_MS - 1] {
        let col = set.object_column(ms);
        let img = decode(&frame(&set, Scene::Moving, 3, ms));
        let x = col * 16 + side * 8;
        assert!(luma(&img, x, y) < 30, "object at {ms} ms: column {col}");
        let still = decode(&frame(&set, Scene::Still, 3, ms));
        assert!(luma(&still, x, y) > 60, "background there is lighter");
    }
    assert_eq!(set.object_column(0), 0);
    assert_eq!(set.object_column(MOVE_CROSSING_MS - 1), 40 - side);
    assert_eq!(set.object_column(MOVE_CROSSING_MS), 0, "wraps");
}

#[test]
fn lighting_scene_steps_on_schedule() {
    assert!(!Scene::Lighting.lit_step(0));
    assert!(Scene::Lighting.lit_step(LIGHT_PERIOD_MS));
    assert!(!Scene::Lighting.lit_step(2 * LIGHT_PERIOD_MS));
    assert!(!Scene::Still.lit_step(LIGHT_PERIOD_MS));
    for s in Scene::ALL {
        assert_eq!(Scene::from_name(s.name()), Some(s));
    }
    assert_eq!(Scene::from_name("dance"), None);
}

/// Runs `scene` for `ms` at 5 fps from `t0` through the detector; returns the events.
fn run(
    d: &mut Detector,
    set: &FrameSet,
    scene: Scene,
    t0: u64,
    ms: u64,
) -> Vec<(u64, MotionEvent)> {
    let mut events = Vec::new();
    let mut t = 0;
    while t < ms {
        let a = d.analyse(&frame(set, scene, t / 33, t), t0 + t).unwrap();
        if let Some(e) = a.event {
            events.push((t0 + t, e));
        }
        t += 200;
    }
    events
}

#[test]
fn the_detector_sees_the_scenes_for_what_they_are() {
    let set = FrameSet::build(Settings::default()).unwrap();
    let mut d = Detector::new(MotionConfig::default()).unwrap();
    assert!(
        run(&mut d, &set, Scene::Still, 0, 10_000).is_empty(),
        "still"
    );
    let started = run(&mut d, &set, Scene::Moving, 10_000, 3_000);
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(
        matches!(started[0].1, MotionEvent::Started { at: 10_000, .. }),
        "{started:?}"
    );
    let ended = run(&mut d, &set, Scene::Still, 13_000, 8_000);
    assert_eq!(ended.len(), 1, "{ended:?}");
    let MotionEvent::Ended { last_motion_at, .. } = ended[0].1 else {
        panic!("{ended:?}")
    };
    assert!(last_motion_at >= 12_800, "{ended:?}");
    // Lighting: a brightness step of one (the stepped set) and back, on a still scene.
    let lit = FrameSet::build(Settings {
        brightness: Brightness::new(1).unwrap(),
        ..Settings::default()
    })
    .unwrap();
    let mut events = Vec::new();
    for k in 0..150u64 {
        let t = 30_000 + k * 200;
        let s = if Scene::Lighting.lit_step(k * 200) {
            &lit
        } else {
            &set
        };
        if let Some(e) = d
            .analyse(&frame(s, Scene::Lighting, k, k * 200), t)
            .unwrap()
            .event
        {
            events.push(e);
        }
    }
    assert!(events.is_empty(), "lighting alone: {events:?}");
}

//! The detector on scripted scenes of real JPEG frames: a textured backdrop with fresh
//! sensor noise in every frame, objects moving through it, lighting steps, masks and zones.
//! Frames come at 5 per second (200 ms apart), as the hub analyses them by default, and every
//! expected outcome is exact: which frame starts an event, which ends it, which zones.

mod support;

use espcam_motion::{
    Analysis, ConfigError, DcImage, Detector, MotionConfig, MotionEvent, Rect, Zone, ZoneSet,
};
use support::{Picture, Rng, Sampling, encode, esp_quality, photo_like};

const DT: u64 = 200;
const W: u16 = 320;
const H: u16 = 240;

/// A scene: a fixed backdrop; each frame adds noise, objects and a lighting shift.
struct Scene {
    backdrop: Picture,
    rng: Rng,
    sampling: Sampling,
}

/// A dark box, as a person or a car passing: (x, y, width, height) in pixels.
type Object = (i32, i32, i32, i32);

impl Scene {
    fn new(seed: u64) -> Self {
        Self {
            backdrop: photo_like(W, H, seed),
            rng: Rng::new(seed ^ 0xABCD),
            sampling: Sampling::S422,
        }
    }

    fn frame(&mut self, objects: &[Object], shift: i32) -> Vec<u8> {
        let mut pic = self.backdrop.clone();
        for &(x, y, w, h) in objects {
            pic.fill(x, y, w, h, [40, 30, 60]);
        }
        let pic = pic.shifted(shift).with_noise(3.0, &mut self.rng);
        encode(&pic, esp_quality(12), self.sampling, None)
    }
}

/// Runs frames `0..n` (frame `i` at `i × 200 ms`) through `detector`; `script(i)` gives the
/// objects and lighting shift of frame `i`. Returns every analysis and the events with the
/// frame index that produced them.
fn run(
    detector: &mut Detector,
    scene: &mut Scene,
    n: usize,
    script: impl Fn(usize) -> (Vec<Object>, i32),
) -> (Vec<Analysis>, Vec<(usize, MotionEvent)>) {
    let mut analyses = Vec::new();
    let mut events = Vec::new();
    for i in 0..n {
        let (objects, shift) = script(i);
        let jpeg = scene.frame(&objects, shift);
        let a = detector
            .analyse(&jpeg, i as u64 * DT)
            .expect("frame decodes");
        if let Some(e) = a.event {
            events.push((i, e));
        }
        analyses.push(a);
    }
    (analyses, events)
}

fn config() -> MotionConfig {
    MotionConfig {
        end_after_ms: 2_000,
        ..MotionConfig::default()
    }
}

/// A box 40×60 px walking right 12 px per frame, from x = 20 at frame `from`, for `frames`.
fn walker(i: usize, from: usize, frames: usize, y: i32) -> Vec<Object> {
    if (from..from + frames).contains(&i) {
        vec![(20 + 12 * (i - from) as i32, y, 40, 60)]
    } else {
        vec![]
    }
}

#[test]
fn a_still_scene_has_no_motion() {
    let mut d = Detector::new(config()).unwrap();
    let mut scene = Scene::new(1);
    let (analyses, events) = run(&mut d, &mut scene, 60, |_| (vec![], 0));
    assert_eq!(events, []);
    assert!(analyses[0].learning);
    let worst = analyses[1..].iter().map(|a| a.score).fold(0.0, f32::max);
    println!("still scene: highest score {worst}");
    // Noise alone changes no cell at all at the default cell_delta.
    assert_eq!(worst, 0.0);
    assert!(analyses.iter().all(|a| !a.triggered));
    assert_eq!(d.grid(), (40, 30));
}

#[test]
fn a_moving_object_starts_then_ends_motion_at_the_right_frames() {
    let mut d = Detector::new(config()).unwrap();
    let mut scene = Scene::new(2);
    // Still for frames 0..10, the object walks through frames 10..30, still again after.
    let (analyses, events) = run(&mut d, &mut scene, 50, |i| (walker(i, 10, 20, 100), 0));
    for (i, a) in analyses.iter().enumerate().skip(8).take(24) {
        println!("frame {i}: score {:.4} triggered {}", a.score, a.triggered);
    }
    assert!(analyses[10..30].iter().all(|a| a.triggered));
    assert!(analyses[30..].iter().all(|a| !a.triggered));
    assert_eq!(events.len(), 2, "{events:?}");
    // K = 2: frame 11 completes the start, dated at frame 10.
    let (i, started) = events[0];
    assert_eq!(i, 11);
    let MotionEvent::Started { at, zones, score } = started else {
        panic!("{started:?}")
    };
    assert_eq!((at, zones), (10 * DT, ZoneSet::EMPTY));
    assert!(score > 0.01);
    // The last triggering frame is 29; T = 2 s = 10 frames later, frame 39 ends it.
    let (i, ended) = events[1];
    assert_eq!(i, 39);
    let MotionEvent::Ended {
        at,
        started_at,
        last_motion_at,
        peak_score,
        peak_frame_at,
        zones_hit,
    } = ended
    else {
        panic!("{ended:?}")
    };
    assert_eq!(
        (at, started_at, last_motion_at, zones_hit),
        (39 * DT, 10 * DT, 29 * DT, ZoneSet::EMPTY)
    );
    // The peak is a frame of the event, and is the frame flagged last as `is_peak`.
    let peak_index = (peak_frame_at / DT) as usize;
    assert!((10..30).contains(&peak_index));
    assert_eq!(analyses[peak_index].score, peak_score);
    let last_flagged = analyses.iter().rposition(|a| a.is_peak).unwrap();
    assert_eq!(last_flagged, peak_index);
    assert!(!d.in_motion());
}

#[test]
fn a_global_lighting_change_is_not_motion() {
    let mut d = Detector::new(config()).unwrap();
    let mut scene = Scene::new(3);
    // The virtual camera's brightness step (±1 = ±40 levels): up at frame 10, down at 30,
    // down again at 50; then a slow ramp (dusk) of 1 level per frame.
    let (analyses, events) = run(&mut d, &mut scene, 110, |i| {
        let shift = match i {
            0..10 => 0,
            10..30 => 40,
            30..50 => 0,
            50..70 => -40,
            _ => -((i - 70) as i32),
        };
        (vec![], shift)
    });
    assert_eq!(events, []);
    let worst = analyses[1..].iter().map(|a| a.score).fold(0.0, f32::max);
    println!("lighting: highest score {worst}");
    assert!(analyses.iter().all(|a| !a.triggered));
    // The correction saw each step the moment it happened (the background meanwhile
    // follows slowly, so the shift itself decays between steps). Darkening clips shadows at
    // 0, so there the median moves a little less than the step.
    let jump = |i: usize| analyses[i].lighting_shift - analyses[i - 1].lighting_shift;
    println!(
        "shift jumps at the steps: {} {} {}",
        jump(10),
        jump(30),
        jump(50)
    );
    assert!((38..=42).contains(&jump(10)));
    assert!((-42..=-36).contains(&jump(30)));
    assert!((-42..=-30).contains(&jump(50)));
    // And decays as the background follows: 20 frames (4 s) at τ = 10 s leave e^-0.4 ≈ 67 %.
    assert!(
        (24..=30).contains(&analyses[29].lighting_shift),
        "{}",
        analyses[29].lighting_shift
    );
}

#[test]
fn motion_inside_the_mask_is_ignored() {
    let masked = MotionConfig {
        // The walker's path: y 100..160, x 20..300.
        mask: vec![Rect::new(0.0, 0.35, 1.0, 0.7)],
        ..config()
    };
    let mut d = Detector::new(masked).unwrap();
    let (analyses, events) = run(&mut d, &mut Scene::new(4), 40, |i| {
        (walker(i, 10, 20, 100), 0)
    });
    assert_eq!(events, []);
    assert!(analyses.iter().all(|a| a.score == 0.0));
    // The same scene unmasked does move.
    let mut d = Detector::new(config()).unwrap();
    let (_, events) = run(&mut d, &mut Scene::new(4), 40, |i| {
        (walker(i, 10, 20, 100), 0)
    });
    assert_eq!(events.len(), 2);
}

fn zones() -> Vec<Zone> {
    vec![
        Zone {
            name: "left".into(),
            rect: Rect::new(0.0, 0.0, 0.5, 1.0),
        },
        Zone {
            name: "right".into(),
            rect: Rect::new(0.5, 0.0, 1.0, 1.0),
        },
        Zone {
            name: "sky".into(),
            rect: Rect::new(0.0, 0.0, 1.0, 0.2),
        },
    ]
}

#[test]
fn zones_hit_are_reported() {
    let config = MotionConfig {
        zones: zones(),
        ..config()
    };
    // Walks in the left half only (x 20..140), then later all the way across.
    let mut d = Detector::new(config).unwrap();
    let (analyses, events) = run(&mut d, &mut Scene::new(5), 70, |i| {
        if i < 30 {
            (walker(i, 10, 8, 100), 0)
        } else {
            (walker(i, 40, 20, 100), 0)
        }
    });
    assert_eq!(d.zone_scores().len(), 3);
    assert_eq!(events.len(), 4, "{events:?}");
    let left_only = ZoneSet(0b001);
    let both = ZoneSet(0b011);
    assert!(matches!(events[0], (11, MotionEvent::Started { zones, .. }) if zones == left_only));
    assert!(
        matches!(events[1], (27, MotionEvent::Ended { zones_hit, .. }) if zones_hit == left_only)
    );
    assert!(matches!(events[2], (41, MotionEvent::Started { zones, .. }) if zones == left_only));
    assert!(matches!(events[3], (69, MotionEvent::Ended { zones_hit, .. }) if zones_hit == both));
    // The sky zone never moved; the score is the busiest zone's.
    assert!(analyses.iter().all(|a| !a.zones.contains(2)));
    let a = &analyses[15];
    assert_eq!(a.zones, left_only);
}

#[test]
fn configuration_changes_at_run_time() {
    let mut d = Detector::new(config()).unwrap();
    let mut scene = Scene::new(6);
    // Motion running...
    let (_, events) = run(&mut d, &mut scene, 15, |i| (walker(i, 5, 30, 100), 0));
    assert_eq!(events.len(), 1);
    assert!(d.in_motion());
    // ...then the user masks the walker's path: the event ends T after the change.
    let bad = MotionConfig {
        sensitivity: 200,
        ..config()
    };
    assert_eq!(d.set_config(bad), Err(ConfigError::Sensitivity(200)));
    d.set_config(MotionConfig {
        mask: vec![Rect::new(0.0, 0.35, 1.0, 0.7)],
        ..config()
    })
    .unwrap();
    let mut ended = None;
    for i in 15..40 {
        let jpeg = scene.frame(&walker(i, 5, 30, 100), 0);
        let a = d.analyse(&jpeg, i as u64 * DT).unwrap();
        assert!(!a.triggered, "frame {i}");
        if let Some(e) = a.event {
            ended.get_or_insert((i, e));
        }
    }
    let (i, e) = ended.unwrap();
    assert_eq!(i, 24, "{e:?}");
    assert!(matches!(e, MotionEvent::Ended { last_motion_at, .. } if last_motion_at == 14 * DT));
}

#[test]
fn a_camera_that_goes_quiet_still_ends_its_event() {
    let mut d = Detector::new(config()).unwrap();
    let (_, events) = run(&mut d, &mut Scene::new(7), 15, |i| {
        (walker(i, 5, 30, 100), 0)
    });
    assert_eq!(events.len(), 1);
    // No more frames: poll before and after T.
    assert_eq!(d.poll(14 * DT + 1_999), None);
    let ended = d.poll(14 * DT + 2_000).unwrap();
    assert!(
        matches!(ended, MotionEvent::Ended { at, last_motion_at, .. }
        if at == 14 * DT + 2_000 && last_motion_at == 14 * DT)
    );
    assert_eq!(d.poll(20_000), None);
}

#[test]
fn a_resolution_change_relearns_without_an_event() {
    let mut d = Detector::new(config()).unwrap();
    let mut scene = Scene::new(8);
    let (_, events) = run(&mut d, &mut scene, 5, |_| (vec![], 0));
    assert_eq!(events, []);
    let other = encode(&photo_like(640, 480, 8), 82, Sampling::S420, None);
    let a = d.analyse(&other, 5 * DT).unwrap();
    assert!(a.learning && !a.triggered);
    assert_eq!(d.grid(), (80, 60));
    let a = d.analyse(&other, 6 * DT).unwrap();
    assert!(!a.learning && !a.triggered);
}

#[test]
fn a_bad_frame_changes_nothing() {
    let mut d = Detector::new(config()).unwrap();
    let mut scene = Scene::new(9);
    let first = scene.frame(&[], 0);
    d.analyse(&first, 0).unwrap();
    let before = d.image().clone();
    assert!(d.analyse(&first[..first.len() / 2], DT).is_err());
    assert!(d.analyse(b"not a jpeg", 2 * DT).is_err());
    assert_eq!(d.image(), &before);
    let a = d.analyse(&scene.frame(&[], 0), 3 * DT).unwrap();
    assert!(!a.learning && !a.triggered);
}

/// The detection target on the crate alone: a scripted scene with 20 motion
/// periods and 20 still periods gives 20 events and no false one, each starting within
/// 0.5 s of the motion and ending within T + 0.5 s of its end; a brightness step of ±1
/// between periods yields nothing.
#[test]
fn twenty_motion_periods_give_twenty_events() {
    let t_ms = 2_000u64;
    let mut d = Detector::new(MotionConfig {
        end_after_ms: t_ms as u32,
        ..MotionConfig::default()
    })
    .unwrap();
    let mut scene = Scene::new(10);
    scene.sampling = Sampling::S420;
    // Each period: 10 frames (2 s) of motion, then 20 still frames (4 s) in which the
    // brightness toggles by ±40 levels at the 15th.
    let period = 30usize;
    let mut events = Vec::new();
    let mut shift = 0;
    for i in 0..20 * period {
        let p = i % period;
        if p == 25 {
            shift = 40 - shift;
        }
        // The object's path changes from period to period.
        let lane = 40 + ((i / period) % 4) as i32 * 40;
        let objects = if (5..15).contains(&p) {
            vec![(10 + 25 * (p - 5) as i32, lane, 50, 50)]
        } else {
            vec![]
        };
        let a = d
            .analyse(&scene.frame(&objects, shift), i as u64 * DT)
            .unwrap();
        if let Some(e) = a.event {
            events.push((i, e));
        }
    }
    let starts: Vec<_> = events
        .iter()
        .filter(|(_, e)| matches!(e, MotionEvent::Started { .. }))
        .collect();
    let ends: Vec<_> = events
        .iter()
        .filter_map(|(i, e)| match e {
            MotionEvent::Ended { last_motion_at, .. } => Some((*i, *last_motion_at)),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 20, "{events:?}");
    assert_eq!(ends.len(), 20, "{events:?}");
    for (n, (&&(si, _), &(ei, _))) in starts.iter().zip(&ends).enumerate() {
        let motion_from = (n * period + 5) as u64 * DT;
        let motion_to = (n * period + 14) as u64 * DT;
        let decided_start = si as u64 * DT;
        let decided_end = ei as u64 * DT;
        assert!(
            decided_start >= motion_from && decided_start - motion_from <= 500,
            "event {n} start"
        );
        assert!(
            decided_end > motion_to && decided_end - motion_to <= t_ms + 500,
            "event {n} end"
        );
    }
}

#[test]
fn images_from_elsewhere_work_too() {
    let mut d = Detector::new(MotionConfig {
        start_frames: 1,
        ..config()
    })
    .unwrap();
    let flat = DcImage::from_pixels(10, 10, vec![100; 100]).unwrap();
    assert!(d.analyse_image(&flat, 0).learning);
    let mut px = vec![100; 100];
    px[..20].fill(200);
    let a = d.analyse_image(&DcImage::from_pixels(10, 10, px).unwrap(), 200);
    assert_eq!(a.changed_cells, 20);
    assert!(matches!(
        a.event,
        Some(MotionEvent::Started { at: 200, .. })
    ));
    assert!(d.changed_cells()[..20].iter().all(|&c| c));
}

#[test]
fn a_detector_can_move_between_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Detector>();
    send_sync::<MotionEvent>();
    send_sync::<espcam_motion::DecodeError>();
    send_sync::<ConfigError>();
}

/// The virtual camera draws its frame counter and the time to the millisecond into every
/// frame: a still virtual camera changes a few text cells each frame. That alone must not be
/// motion at the default sensitivity (the hub may still mask the text for demo cameras).
#[test]
fn the_virtual_cameras_changing_text_is_not_motion() {
    let mut d = Detector::new(MotionConfig::default()).unwrap();
    let base = support::virtual_camera(640, 480, 0, 30);
    let mut worst = 0.0f32;
    for i in 0..60u64 {
        let t = 45_296_000 + i * DT;
        let time = format!(
            "{:02}:{:02}:{:02}.{:03}",
            t / 3_600_000,
            t / 60_000 % 60,
            t / 1000 % 60,
            t % 1000
        );
        let mut pic = base.clone();
        support::draw_lines(
            &mut pic,
            &["demo-1", &format!("#{}", 1000 + i), &time, "VGA q12 b0"],
        );
        let jpeg = encode(&pic, esp_quality(12), Sampling::S420, Some(1));
        let a = d.analyse(&jpeg, i * DT).unwrap();
        assert_eq!(a.event, None, "frame {i}");
        worst = worst.max(a.score);
    }
    println!("changing text: highest score {worst}");
    // Some text cells do change, yet stay under the 1 % of the default sensitivity.
    assert!(worst > 0.0 && worst < MotionConfig::default().area_threshold());
}

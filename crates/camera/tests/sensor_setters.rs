//! The table the firmware's esp32-camera seam is driven by: which integer setter and which
//! argument each setting takes, what a setter's answer means, and how a frame buffer is
//! described, and the drivers' health figures.

#![allow(clippy::unwrap_used)]

use espcam_camera::{CapturedFrame, Health, Instant, SensorError, Setting};
use espcam_proto::{Brightness, Quality, Resolution, Settings};

#[test]
fn every_setting_but_the_resolution_names_its_integer_setter_and_argument() {
    let s = Settings {
        resolution: Resolution::Svga,
        quality: Quality::new(10).unwrap(),
        brightness: Brightness::new(-2).unwrap(),
        vflip: true,
        hmirror: false,
    };
    let table: Vec<_> = Setting::all(&s).iter().map(|x| x.int_setter()).collect();
    assert_eq!(
        table,
        [
            None,
            Some((0, 10)),
            Some((1, -2)),
            Some((2, 1)),
            Some((3, 0))
        ]
    );
    // The index names the setter of that setting.
    for setting in Setting::all(&s) {
        if let Some((i, _)) = setting.int_setter() {
            assert_eq!(Setting::INT_SETTERS[i], setting.name());
        }
    }
}

#[test]
fn a_setter_answer_is_applied_a_driver_error_or_unsupported() {
    let q = Setting::Quality(Quality::new(12).unwrap());
    assert_eq!(q.driver_result(Some(0)), Ok(()));
    let err = |reason| {
        Err(SensorError {
            setting: "quality",
            reason,
        })
    };
    assert_eq!(
        q.driver_result(Some(-1)),
        err("the camera driver returned an error")
    );
    assert_eq!(q.driver_result(None), err("not supported by this sensor"));
    assert_eq!(
        q.refused("too big"),
        SensorError {
            setting: "quality",
            reason: "too big"
        }
    );
}

#[test]
fn a_driver_frame_buffer_becomes_a_captured_frame() {
    let f = CapturedFrame::from_driver(12, 345_678, 640, 480, 20_000);
    assert_eq!(f.captured_at, Instant::from_micros(12_345_678));
    assert_eq!((f.width, f.height, f.len), (640, 480, 20_000));
    // Nonsense from the driver is clamped, never wrapped.
    let odd = CapturedFrame::from_driver(-1, 0, 70_000, 1, 0);
    assert_eq!(odd.captured_at, Instant::from_micros(0));
    assert_eq!(odd.width, u16::MAX);
}

#[test]
fn health_figures_from_the_drivers_are_clamped_never_wrapped() {
    let h = Health::from_driver(150_000, 4_000_000, Some(-61));
    assert_eq!(
        (h.heap_free, h.psram_free, h.rssi),
        (150_000, 4_000_000, Some(-61))
    );
    let odd = Health::from_driver(usize::MAX, 0, Some(100_000));
    assert_eq!((odd.heap_free, odd.rssi), (u32::MAX, None));
    assert_eq!(Health::from_driver(1, 2, None).rssi, None);
}

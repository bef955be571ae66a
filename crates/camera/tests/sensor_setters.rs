//! The table the firmware's esp32-camera seam is driven by: which integer setter and which
//! argument each setting takes, and what a setter's answer means.

#![allow(clippy::unwrap_used)]

use espcam_camera::{SensorError, Setting};
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

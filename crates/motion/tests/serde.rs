//! With the `serde` feature (the hub stores configurations and sends events as JSON): the
//! shapes the hub will see, and a configuration round trip. Run with
//! `cargo test -p espcam-motion --features serde`.
#![cfg(feature = "serde")]

use espcam_motion::{MotionConfig, MotionEvent, Rect, Zone, ZoneSet};

#[test]
fn events_and_configurations_as_json() {
    let started = MotionEvent::Started {
        at: 1_000,
        score: 0.25,
        zones: ZoneSet(0b101),
    };
    assert_eq!(
        serde_json::to_string(&started).unwrap(),
        r#"{"type":"started","at":1000,"score":0.25,"zones":5}"#
    );
    let config = MotionConfig {
        zones: vec![Zone {
            name: "door".into(),
            rect: Rect::new(0.0, 0.5, 0.25, 1.0),
        }],
        ..MotionConfig::default()
    };
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<MotionConfig>(&json).unwrap(), config);
    // Missing fields take their defaults; validation is separate.
    let partial: MotionConfig = serde_json::from_str(r#"{"sensitivity":80}"#).unwrap();
    assert_eq!(partial.sensitivity, 80);
    assert_eq!(partial.end_after_ms, MotionConfig::default().end_after_ms);
    let bad: MotionConfig = serde_json::from_str(r#"{"start_frames":0}"#).unwrap();
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "start_frames 0 out of range 1..=50"
    );
}

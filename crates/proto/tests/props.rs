//! Property tests: every encoder is undone by its decoder, and no decoder panics on any input.
//!
//! Also runs the fuzz targets' bodies (`fuzz/bodies.rs`) on random and mutated inputs, so they
//! compile and hold on stable; the libFuzzer runs themselves need nightly (see fuzz/README.md).

// Test code: an unwrap that fails is a test failure with a message, which is what we want.
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../../../fuzz/bodies.rs"]
mod fuzz_bodies;

use common::{header_for, tiny_jpeg};
use espcam_proto::{
    Ack, ApMessage, ApRequest, Brightness, CameraId, CameraMsg, Command, CommandMsg, FrameFlags,
    FrameHeader, FrameLimits, HEADER_LEN, Hello, HubMsg, Quality, Resolution, Settings,
    StreamHello, Telemetry, Trailing, decode_frame, encode_frame, jpeg,
};
use proptest::prelude::*;

fn resolution() -> impl Strategy<Value = Resolution> {
    (0usize..13).prop_map(|i| Resolution::ALL[i])
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        resolution(),
        0i64..=63,
        -2i64..=2,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(resolution, q, b, vflip, hmirror)| Settings {
            resolution,
            quality: Quality::new(q).unwrap(),
            brightness: Brightness::new(b).unwrap(),
            vflip,
            hmirror,
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        resolution().prop_map(Command::Resolution),
        (0i64..=63).prop_map(|q| Command::Quality(Quality::new(q).unwrap())),
        (-2i64..=2).prop_map(|b| Command::Brightness(Brightness::new(b).unwrap())),
        any::<bool>().prop_map(Command::Vflip),
        any::<bool>().prop_map(Command::Hmirror),
        Just(Command::Reboot),
    ]
}

fn command_msg() -> impl Strategy<Value = CommandMsg> {
    (any::<Option<u32>>(), any::<Option<String>>(), command()).prop_map(|(id, camera, command)| {
        CommandMsg {
            id,
            camera,
            command,
        }
    })
}

fn camera_id() -> impl Strategy<Value = CameraId> {
    "[A-Za-z0-9_-]{1,32}".prop_map(|s| CameraId::new(&s).unwrap())
}

/// Frames per second as whole tenths, the precision cameras report.
fn fps() -> impl Strategy<Value = f32> {
    (0u32..=10_000).prop_map(|tenths| tenths as f32 / 10.0)
}

fn ack() -> impl Strategy<Value = Ack> {
    (
        any::<Option<u32>>(),
        any::<Option<String>>(),
        any::<bool>(),
        settings(),
        any::<Option<String>>(),
    )
        .prop_map(|(id, cmd, ok, settings, error)| Ack {
            id,
            cmd,
            ok,
            settings,
            error,
        })
}

fn camera_msg() -> impl Strategy<Value = CameraMsg> {
    let hello = (
        any::<u8>(),
        camera_id(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        settings(),
    )
        .prop_map(|(proto, camera, token, firmware, sensor, settings)| {
            CameraMsg::Hello(Hello {
                proto,
                camera,
                token,
                firmware,
                sensor,
                settings,
                board: None,
                ota_pending: false,
            })
        });
    let telemetry = (
        fps(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<Option<i16>>(),
        settings(),
    )
        .prop_map(
            |(
                fps,
                frames_sent,
                frames_dropped,
                heap_free,
                psram_free,
                uptime_ms,
                rssi,
                settings,
            )| {
                CameraMsg::Telemetry(Telemetry {
                    fps,
                    frames_sent,
                    frames_dropped,
                    heap_free,
                    psram_free,
                    uptime_ms,
                    rssi,
                    settings,
                    quality_in_force: settings
                        .quality
                        .get()
                        .checked_add(3)
                        .and_then(|q| Quality::new(q.into()).ok()),
                })
            },
        );
    prop_oneof![hello, telemetry, ack().prop_map(CameraMsg::Ack)]
}

fn hub_msg() -> impl Strategy<Value = HubMsg> {
    prop_oneof![
        camera_id().prop_map(|camera| HubMsg::Welcome { camera }),
        any::<String>().prop_map(|reason| HubMsg::Rejected { reason }),
        command_msg().prop_map(HubMsg::Command),
    ]
}

fn ap_message() -> impl Strategy<Value = ApMessage> {
    prop_oneof![
        any::<String>().prop_map(|message| ApMessage::Welcome { message }),
        (fps(), any::<u8>()).prop_map(|(fps, clients)| ApMessage::Heartbeat { fps, clients }),
        (any::<u8>(), fps(), any::<u64>()).prop_map(|(clients, fps, frames)| ApMessage::Stats {
            clients,
            fps,
            frames
        }),
        ack().prop_map(ApMessage::Ack),
    ]
}

fn frame_header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<u8>(),
        any::<u32>(),
        any::<u64>(),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(
            |(flags, sequence, timestamp_us, width, height, jpeg_len)| FrameHeader {
                flags: FrameFlags(flags),
                sequence,
                timestamp_us,
                width,
                height,
                jpeg_len,
            },
        )
}

/// A valid framed message: (message, header, jpeg).
fn framed() -> impl Strategy<Value = (Vec<u8>, FrameHeader, Vec<u8>)> {
    (
        1u16..=4096,
        1u16..=4096,
        proptest::collection::vec(any::<u8>(), 0..200),
        frame_header(),
    )
        .prop_map(|(w, h, entropy, base)| {
            let jpeg = tiny_jpeg(w, h, &entropy);
            let header = FrameHeader {
                width: w,
                height: h,
                jpeg_len: u32::try_from(jpeg.len()).unwrap(),
                ..base
            };
            (encode_frame(&header, &jpeg), header, jpeg)
        })
}

/// Text that looks like protocol JSON often enough to get past the parser into validation.
fn jsonish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"type\"".to_string()),
        Just("\"cmd\"".to_string()),
        Just("\"value\"".to_string()),
        Just("\"id\"".to_string()),
        Just("\"camera\"".to_string()),
        Just("\"settings\"".to_string()),
        Just("\"hello\"".to_string()),
        Just("\"telemetry\"".to_string()),
        Just("\"ack\"".to_string()),
        Just("\"welcome\"".to_string()),
        Just("\"rejected\"".to_string()),
        Just("\"quality\"".to_string()),
        Just("\"resolution\"".to_string()),
        Just("\"vflip\"".to_string()),
        Just("\"fps\"".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("1e39".to_string()),
        Just("-1".to_string()),
        Just("\"ping\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "\"[ -~]{0,8}\"",
    ];
    proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// A valid message text with a few characters replaced, inserted or removed.
fn mutated(valid: String) -> impl Strategy<Value = String> {
    proptest::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 1..4).prop_map(
        move |edits| {
            let mut chars: Vec<char> = valid.chars().collect();
            for (at, c, op) in edits {
                if chars.is_empty() {
                    chars.push(c);
                    continue;
                }
                let i = at.index(chars.len());
                match op {
                    0 => chars[i] = c,
                    1 => chars.insert(i, c),
                    _ => {
                        chars.remove(i);
                    }
                }
            }
            chars.into_iter().collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn settings_round_trip(s in settings()) {
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), s);
    }

    #[test]
    fn command_msg_round_trip(m in command_msg()) {
        prop_assert_eq!(CommandMsg::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn camera_msg_round_trip(m in camera_msg()) {
        prop_assert_eq!(CameraMsg::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn hub_msg_round_trip(m in hub_msg()) {
        prop_assert_eq!(HubMsg::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn ap_message_round_trip(m in ap_message()) {
        prop_assert_eq!(ApMessage::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn ap_request_command_round_trip(m in command_msg()) {
        prop_assert_eq!(ApRequest::parse(&m.to_json()), Ok(ApRequest::Command(m)));
    }

    #[test]
    fn stream_hello_round_trip(proto in any::<u8>(), camera in camera_id(), token in any::<String>()) {
        let m = StreamHello { proto, camera, token };
        prop_assert_eq!(StreamHello::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn frame_header_round_trip(h in frame_header()) {
        let bytes = h.encode();
        prop_assert_eq!(bytes.len(), HEADER_LEN);
        prop_assert_eq!(FrameHeader::parse(&bytes), Ok(h));
    }

    #[test]
    fn framed_message_round_trip((msg, header, jpeg) in framed()) {
        let f = decode_frame(&msg, &FrameLimits::default()).unwrap();
        prop_assert_eq!(f.header, Some(header));
        prop_assert_eq!(f.jpeg, &jpeg[..]);
        prop_assert_eq!((f.width, f.height), (header.width, header.height));
        prop_assert_eq!(f.trailing, Trailing::None);
        fuzz_bodies::frame(&msg);
    }

    #[test]
    fn double_jpeg_keeps_the_first(
        (w, h) in (1u16..=2048, 1u16..=2048),
        a in proptest::collection::vec(any::<u8>(), 0..64),
        b in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let first = tiny_jpeg(w, h, &a);
        let second = tiny_jpeg(h, w, &b);
        let mut both = first.clone();
        both.extend_from_slice(&second);
        let msg = encode_frame(&header_for(&both, w, h), &both);
        let f = decode_frame(&msg, &FrameLimits::default()).unwrap();
        prop_assert_eq!(f.jpeg, &first[..]);
        prop_assert_eq!(f.trailing, Trailing::SecondImage(second.len()));
    }

    /// Every strict prefix of a valid framed message is refused, never accepted or panicking.
    #[test]
    fn every_truncation_is_an_error((msg, _header, _jpeg) in framed()) {
        for cut in 0..msg.len() {
            prop_assert!(decode_frame(&msg[..cut], &FrameLimits::default()).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_frame(&data, &FrameLimits::default());
        let _ = jpeg::scan(&data);
        fuzz_bodies::frame(&data);
        fuzz_bodies::json(&data);
    }

    /// Random bytes rarely pass the magic check; these start right and are random after.
    #[test]
    fn plausible_prefixes_never_panic(
        header_start in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut data = if header_start { b"ECAM\x01".to_vec() } else { vec![0xFF, 0xD8, 0xFF] };
        data.extend_from_slice(&tail);
        fuzz_bodies::frame(&data);
    }

    /// A valid message with a few bytes overwritten: decodes or errs, never panics.
    #[test]
    fn mutated_frames_never_panic(
        (msg, _h, _j) in framed(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut data = msg;
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        fuzz_bodies::frame(&data);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let _ = CameraMsg::from_json(&text);
        let _ = HubMsg::from_json(&text);
        let _ = ApRequest::parse(&text);
        let _ = StreamHello::from_json(&text);
        fuzz_bodies::json(text.as_bytes());
    }

    #[test]
    fn jsonish_strings_never_panic(text in jsonish()) {
        fuzz_bodies::json(text.as_bytes());
    }

    #[test]
    fn mutated_messages_never_panic(text in camera_msg().prop_flat_map(|m| mutated(m.to_json()))) {
        fuzz_bodies::json(text.as_bytes());
    }

    #[test]
    fn mutated_commands_never_panic(text in command_msg().prop_flat_map(|m| mutated(m.to_json()))) {
        fuzz_bodies::json(text.as_bytes());
    }
}

/// Regression: a float that overflows `f32` used to decode as infinity, which then encoded as
/// `null` and could not be decoded again (found by the `json` fuzz body).
#[test]
fn overflowing_fps_is_refused() {
    for text in [
        r#"{"type":"heartbeat","fps":1e39,"clients":1}"#,
        r#"{"type":"stats","clients":1,"fps":-1e39,"frames":1}"#,
    ] {
        fuzz_bodies::json(text.as_bytes());
        let err = ApMessage::from_json(text).unwrap_err().to_string();
        assert!(err.contains("out of range for fps"), "{err}");
    }
    let telemetry = r#"{"type":"telemetry","fps":1e39,"frames_sent":0,"frames_dropped":0,"heap_free":0,"psram_free":0,"uptime_ms":0,"rssi":null,"settings":{"resolution":6,"quality":12,"brightness":0,"vflip":0,"hmirror":0}}"#;
    fuzz_bodies::json(telemetry.as_bytes());
    assert!(CameraMsg::from_json(telemetry).is_err());
}

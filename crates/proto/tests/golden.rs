//! Golden wire forms, both directions: every message kind encodes to exactly the text or bytes
//! below, and the text or bytes below decode to exactly the value. A change to any wire form
//! breaks a test here first; then docs/PROTOCOL.md and every peer (firmware, dashboard, seed
//! clients) need the same change.

// Test code: an unwrap that fails is a test failure with a message, which is what we want.
#![allow(clippy::unwrap_used)]

mod common;

use common::{SAMPLE_SETTINGS_JSON, sample_settings, tiny_jpeg};
use espcam_proto::standalone::{MAX_CLIENTS, PONG, TOO_MANY_CLIENTS};
use espcam_proto::{
    Ack, ApMessage, ApRequest, Brightness, CameraId, CameraMsg, Command, CommandMsg, FrameFlags,
    FrameHeader, FrameLimits, HEADER_LEN, Hello, HubMsg, Quality, Resolution, Settings,
    StreamHello, Telemetry, Trailing, decode_frame, encode_frame,
};

fn id(s: &str) -> CameraId {
    CameraId::new(s).unwrap()
}

/// `{"settings":…}` placeholders keep the goldens readable.
fn with_settings(template: &str) -> String {
    template.replace("SETTINGS", SAMPLE_SETTINGS_JSON)
}

fn camera_both_ways(msg: CameraMsg, golden: &str) {
    assert_eq!(msg.to_json(), golden, "encode");
    assert_eq!(CameraMsg::from_json(golden).unwrap(), msg, "decode");
}

fn hub_both_ways(msg: HubMsg, golden: &str) {
    assert_eq!(msg.to_json(), golden, "encode");
    assert_eq!(HubMsg::from_json(golden).unwrap(), msg, "decode");
}

fn ap_both_ways(msg: ApMessage, golden: &str) {
    assert_eq!(msg.to_json(), golden, "encode");
    assert_eq!(ApMessage::from_json(golden).unwrap(), msg, "decode");
}

#[test]
fn settings() {
    assert_eq!(
        serde_json::to_string(&sample_settings()).unwrap(),
        SAMPLE_SETTINGS_JSON
    );
    assert_eq!(
        serde_json::from_str::<Settings>(SAMPLE_SETTINGS_JSON).unwrap(),
        sample_settings()
    );
    // Accepted alternative forms: resolution by name (any case), flags as booleans.
    let alt = r#"{"resolution":"svga","quality":10,"brightness":-1,"vflip":true,"hmirror":false}"#;
    assert_eq!(
        serde_json::from_str::<Settings>(alt).unwrap(),
        sample_settings()
    );
    assert_eq!(
        serde_json::to_string(&Settings::default()).unwrap(),
        r#"{"resolution":6,"quality":12,"brightness":0,"vflip":0,"hmirror":0}"#
    );
}

#[test]
fn hello() {
    let msg = CameraMsg::Hello(Hello {
        proto: 1,
        camera: id("cam-1"),
        token: "s3cret".into(),
        firmware: "espcam-fw 0.1.0".into(),
        sensor: "OV3660".into(),
        settings: sample_settings(),
        board: None,
        ota_pending: false,
    });
    camera_both_ways(
        msg.clone(),
        &with_settings(
            r#"{"type":"hello","proto":1,"camera":"cam-1","token":"s3cret","firmware":"espcam-fw 0.1.0","sensor":"OV3660","settings":SETTINGS}"#,
        ),
    );
    // `token` may be left out when the hub needs none.
    let no_token = with_settings(
        r#"{"type":"hello","proto":1,"camera":"cam-1","firmware":"espcam-fw 0.1.0","sensor":"OV3660","settings":SETTINGS}"#,
    );
    let CameraMsg::Hello(h) = CameraMsg::from_json(&no_token).unwrap() else {
        panic!("not a hello");
    };
    assert_eq!(h.token, "");
}

#[test]
fn telemetry() {
    let msg = CameraMsg::Telemetry(Telemetry {
        fps: 14.9,
        frames_sent: 12_345,
        frames_dropped: 3,
        heap_free: 181_234,
        psram_free: 7_954_321,
        uptime_ms: 823_456,
        rssi: Some(-61),
        settings: sample_settings(),
        quality_in_force: None,
    });
    camera_both_ways(
        msg,
        &with_settings(
            r#"{"type":"telemetry","fps":14.9,"frames_sent":12345,"frames_dropped":3,"heap_free":181234,"psram_free":7954321,"uptime_ms":823456,"rssi":-61,"settings":SETTINGS}"#,
        ),
    );
    // A camera adapting its JPEG quality to a slow link says which quality is in force.
    let adapting = CameraMsg::Telemetry(Telemetry {
        fps: 30.0,
        frames_sent: 9,
        frames_dropped: 0,
        heap_free: 1,
        psram_free: 2,
        uptime_ms: 3,
        rssi: None,
        settings: Settings::default(),
        quality_in_force: Some(Quality::new(21).unwrap()),
    });
    camera_both_ways(
        adapting,
        r#"{"type":"telemetry","fps":30.0,"frames_sent":9,"frames_dropped":0,"heap_free":1,"psram_free":2,"uptime_ms":3,"rssi":null,"settings":{"resolution":6,"quality":12,"brightness":0,"vflip":0,"hmirror":0},"quality_in_force":21}"#,
    );
    assert!(
        CameraMsg::from_json(r#"{"type":"telemetry","fps":1,"frames_sent":0,"frames_dropped":0,"heap_free":0,"psram_free":0,"uptime_ms":0,"rssi":null,"settings":{"resolution":6,"quality":12,"brightness":0,"vflip":0,"hmirror":0},"quality_in_force":64}"#).is_err(),
        "an out-of-range quality in force is refused like any quality"
    );
    let virtual_cam = CameraMsg::Telemetry(Telemetry {
        fps: 0.0,
        frames_sent: 0,
        frames_dropped: 0,
        heap_free: 0,
        psram_free: 0,
        uptime_ms: 5,
        rssi: None,
        settings: Settings::default(),
        quality_in_force: None,
    });
    camera_both_ways(
        virtual_cam,
        r#"{"type":"telemetry","fps":0.0,"frames_sent":0,"frames_dropped":0,"heap_free":0,"psram_free":0,"uptime_ms":5,"rssi":null,"settings":{"resolution":6,"quality":12,"brightness":0,"vflip":0,"hmirror":0}}"#,
    );
}

#[test]
fn ack_ok_and_error() {
    camera_both_ways(
        CameraMsg::Ack(Ack {
            id: Some(7),
            cmd: Some("quality".into()),
            ok: true,
            settings: sample_settings(),
            error: None,
        }),
        &with_settings(r#"{"type":"ack","id":7,"cmd":"quality","ok":true,"settings":SETTINGS}"#),
    );
    camera_both_ways(
        CameraMsg::Ack(Ack {
            id: Some(8),
            cmd: Some("quality".into()),
            ok: false,
            settings: sample_settings(),
            error: Some("quality 70 out of range 0..=63".into()),
        }),
        &with_settings(
            r#"{"type":"ack","id":8,"cmd":"quality","ok":false,"settings":SETTINGS,"error":"quality 70 out of range 0..=63"}"#,
        ),
    );
    // A seed-form command (no id) that could not even be read.
    camera_both_ways(
        CameraMsg::Ack(Ack {
            id: None,
            cmd: None,
            ok: false,
            settings: sample_settings(),
            error: Some("command has no \"cmd\" field".into()),
        }),
        &with_settings(
            r#"{"type":"ack","id":null,"cmd":null,"ok":false,"settings":SETTINGS,"error":"command has no \"cmd\" field"}"#,
        ),
    );
}

#[test]
fn hub_welcome_rejected() {
    hub_both_ways(
        HubMsg::Welcome {
            camera: id("cam-1"),
        },
        r#"{"type":"welcome","camera":"cam-1"}"#,
    );
    hub_both_ways(
        HubMsg::Rejected {
            reason: "wrong token for camera cam-1".into(),
        },
        r#"{"type":"rejected","reason":"wrong token for camera cam-1"}"#,
    );
}

#[test]
fn hub_commands_with_and_without_id() {
    let quality = Command::Quality(Quality::new(10).unwrap());
    // The seed's form, no id.
    hub_both_ways(
        HubMsg::Command(CommandMsg::simple(quality)),
        r#"{"cmd":"quality","value":10}"#,
    );
    hub_both_ways(
        HubMsg::Command(CommandMsg {
            id: Some(7),
            camera: None,
            command: quality,
        }),
        r#"{"cmd":"quality","id":7,"value":10}"#,
    );
    hub_both_ways(
        HubMsg::Command(CommandMsg {
            id: Some(9),
            camera: None,
            command: Command::Reboot,
        }),
        r#"{"cmd":"reboot","id":9}"#,
    );
    // Every command of the seed's table, with its canonical value.
    let table = [
        (
            Command::Resolution(Resolution::Vga),
            r#"{"cmd":"resolution","value":6}"#,
        ),
        (
            Command::Quality(Quality::new(63).unwrap()),
            r#"{"cmd":"quality","value":63}"#,
        ),
        (
            Command::Brightness(Brightness::new(-2).unwrap()),
            r#"{"cmd":"brightness","value":-2}"#,
        ),
        (Command::Vflip(true), r#"{"cmd":"vflip","value":1}"#),
        (Command::Hmirror(false), r#"{"cmd":"hmirror","value":0}"#),
        (Command::Reboot, r#"{"cmd":"reboot"}"#),
    ];
    for (command, golden) in table {
        hub_both_ways(HubMsg::Command(CommandMsg::simple(command)), golden);
    }
    // Accepted alternative forms decode to the canonical command.
    let alternatives = [
        (
            r#"{"cmd":"resolution","value":"VGA"}"#,
            Command::Resolution(Resolution::Vga),
        ),
        (
            r#"{"cmd":"resolution","value":"vga"}"#,
            Command::Resolution(Resolution::Vga),
        ),
        (
            r#"{"cmd":"framesize","value":6}"#,
            Command::Resolution(Resolution::Vga),
        ),
        (r#"{"cmd":"vflip","value":true}"#, Command::Vflip(true)),
        (
            r#"{"cmd":"hmirror","value":false}"#,
            Command::Hmirror(false),
        ),
        (r#"{"type":"command","cmd":"restart"}"#, Command::Reboot),
    ];
    for (text, command) in alternatives {
        assert_eq!(
            HubMsg::from_json(text).unwrap(),
            HubMsg::Command(CommandMsg::simple(command)),
            "{text}"
        );
    }
}

#[test]
fn browser_command_carries_camera() {
    let msg = CommandMsg {
        id: Some(7),
        camera: Some("cam-1".into()),
        command: Command::Quality(Quality::new(10).unwrap()),
    };
    let golden = r#"{"camera":"cam-1","cmd":"quality","id":7,"value":10}"#;
    assert_eq!(msg.to_json(), golden);
    assert_eq!(CommandMsg::from_json(golden).unwrap(), msg);
}

#[test]
fn stream_hello() {
    let msg = StreamHello {
        proto: 1,
        camera: id("cam-1"),
        token: "s3cret".into(),
    };
    let golden = r#"{"type":"hello","proto":1,"camera":"cam-1","token":"s3cret"}"#;
    assert_eq!(msg.to_json(), golden);
    assert_eq!(StreamHello::from_json(golden).unwrap(), msg);
}

/// The worked example of docs/PROTOCOL.md, "Frame header".
#[test]
fn frame_header_bytes() {
    let h = FrameHeader {
        flags: FrameFlags(FrameFlags::SYNTHETIC | FrameFlags::CLOCK_UNSYNCED),
        sequence: 7,
        timestamp_us: 1_700_000_000_123_456,
        width: 640,
        height: 480,
        jpeg_len: 5123,
    };
    let golden: [u8; HEADER_LEN] = [
        0x45, 0x43, 0x41, 0x4D, // magic "ECAM"
        0x01, // version 1
        0x03, // flags: SYNTHETIC | CLOCK_UNSYNCED
        0x00, 0x00, // reserved
        0x00, 0x00, 0x00, 0x07, // sequence 7
        0x00, 0x06, 0x0A, 0x24, 0x18, 0x20, 0x22, 0x40, // 1_700_000_000_123_456 µs
        0x02, 0x80, // width 640
        0x01, 0xE0, // height 480
        0x00, 0x00, 0x14, 0x03, // JPEG length 5123
    ];
    assert_eq!(h.encode(), golden);
    assert_eq!(FrameHeader::parse(&golden), Ok(h));
    // Reserved bytes are ignored on receive.
    let mut reserved = golden;
    reserved[6] = 0xAB;
    reserved[7] = 0xCD;
    assert_eq!(FrameHeader::parse(&reserved), Ok(h));
}

#[test]
fn framed_message_bytes() {
    let jpeg = tiny_jpeg(16, 8, &[0x12, 0x34]);
    let h = FrameHeader {
        flags: FrameFlags(0),
        sequence: 1,
        timestamp_us: 2,
        width: 16,
        height: 8,
        jpeg_len: u32::try_from(jpeg.len()).unwrap(),
    };
    let msg = encode_frame(&h, &jpeg);
    assert_eq!(&msg[..HEADER_LEN], &h.encode());
    assert_eq!(&msg[HEADER_LEN..], &jpeg[..]);
    let f = decode_frame(&msg, &FrameLimits::default()).unwrap();
    assert_eq!(f.header, Some(h));
    assert_eq!(f.jpeg, &jpeg[..]);
    assert_eq!((f.width, f.height, f.trailing), (16, 8, Trailing::None));
    // A bare JPEG (standalone and seed cameras) decodes with no header.
    let bare = decode_frame(&jpeg, &FrameLimits::default()).unwrap();
    assert_eq!((bare.header, bare.jpeg), (None, &jpeg[..]));
}

#[test]
fn ap_messages() {
    ap_both_ways(
        ApMessage::Welcome {
            message: "Connected to 30fps drone camera stream".into(),
        },
        r#"{"type":"welcome","message":"Connected to 30fps drone camera stream"}"#,
    );
    ap_both_ways(
        ApMessage::Heartbeat {
            fps: 28.5,
            clients: 2,
        },
        r#"{"type":"heartbeat","fps":28.5,"clients":2}"#,
    );
    ap_both_ways(
        ApMessage::Stats {
            clients: 2,
            fps: 29.1,
            frames: 1450,
        },
        r#"{"type":"stats","clients":2,"fps":29.1,"frames":1450}"#,
    );
    ap_both_ways(
        ApMessage::Ack(Ack {
            id: None,
            cmd: Some("vflip".into()),
            ok: true,
            settings: sample_settings(),
            error: None,
        }),
        &with_settings(r#"{"type":"ack","id":null,"cmd":"vflip","ok":true,"settings":SETTINGS}"#),
    );
    // The seed README's examples, spaces and all, decode.
    for seed in [
        r#"{"type": "welcome", "message": "Connected to 30fps drone camera stream"}"#,
        r#"{"type": "heartbeat", "fps": 28.5, "clients": 2}"#,
        r#"{"type": "stats", "clients": 2, "fps": 29.1, "frames": 1450}"#,
    ] {
        assert!(ApMessage::from_json(seed).is_ok(), "{seed}");
    }
}

#[test]
fn ap_requests() {
    for ping in ["ping", "\"ping\"", " ping\n"] {
        assert_eq!(ApRequest::parse(ping), Ok(ApRequest::Ping), "{ping:?}");
    }
    for stats in ["get_stats", "\"get_stats\""] {
        assert_eq!(
            ApRequest::parse(stats),
            Ok(ApRequest::GetStats),
            "{stats:?}"
        );
    }
    assert_eq!(
        ApRequest::parse(r#"{"cmd":"vflip","value":1}"#),
        Ok(ApRequest::Command(CommandMsg::simple(Command::Vflip(true))))
    );
    assert_eq!(
        ApRequest::parse(r#"{"cmd":"quality","value":70}"#)
            .unwrap_err()
            .to_string(),
        "quality 70 out of range 0..=63"
    );
    assert_eq!(PONG, "pong");
    assert_eq!(MAX_CLIENTS, 5);
    assert_eq!(TOO_MANY_CLIENTS, "too many clients (max 5)");
}

#[test]
fn stream_hello_must_say_hello() {
    for wrong in [
        r#"{"type":"welcome","proto":1,"camera":"cam-1","token":""}"#,
        r#"{"proto":1,"camera":"cam-1","token":""}"#,
    ] {
        assert!(StreamHello::from_json(wrong).is_err(), "{wrong}");
    }
}

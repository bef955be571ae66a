//! The camera core driven through complete connections on a virtual clock: hub sessions,
//! commands and acks, link loss and reconnection, backpressure, and the seed-002 standalone
//! protocol. No sockets, no sleeps: an hour of camera life runs in milliseconds.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use espcam_camera::{
    CLOSE_TRY_AGAIN, Config, FrameDecision, Health, Instant, Link, LinkStatus, Output,
};
use espcam_proto::standalone::TOO_MANY_CLIENTS;
use espcam_proto::{FrameFlags, FrameHeader, Resolution};
use serde_json::{Value, json};
use support::{Harness, Seen, hub_config};

const WELCOME: &str = r#"{"type":"welcome","camera":"cam-1"}"#;

#[test]
fn hello_frames_command_ack_new_frame_size() {
    let mut h = Harness::new(hub_config(1));
    h.advance(Duration::ZERO);
    let (_, control) = h.last_connect(Link::Control).unwrap();
    assert_eq!(
        h.last_connect(Link::Stream),
        None,
        "stream waits for control"
    );
    h.connected(control);
    let hello = &h.texts_to(control, 0)[0];
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["camera"], "cam-1");
    assert_eq!(hello["token"], "secret");
    assert_eq!(hello["sensor"], "fake");
    assert_eq!(hello["settings"]["resolution"], 6);
    assert_eq!(h.cam.link_status(Link::Control), LinkStatus::Handshake);

    h.text(control, WELCOME);
    assert_eq!(h.cam.link_status(Link::Control), LinkStatus::Ready);
    h.advance(Duration::ZERO);
    let (_, stream) = h.last_connect(Link::Stream).unwrap();
    h.connected(stream);
    let shello = &h.texts_to(stream, 0)[0];
    assert_eq!(
        *shello,
        json!({"type":"hello","proto":1,"camera":"cam-1","token":"secret"})
    );
    assert!(
        h.frames(0).is_empty(),
        "no frames before the stream welcome"
    );
    h.text(stream, WELCOME);

    let start = h.log.len();
    let t0 = h.now;
    h.advance(Duration::from_secs(1));
    let frames = h.frames(start);
    assert!(
        (30..=31).contains(&frames.len()),
        "{} frames in 1 s",
        frames.len()
    );
    for (i, (t, f)) in frames.iter().enumerate() {
        assert_eq!(f.targets.as_slice(), &[stream]);
        let header = FrameHeader::parse(&f.header.unwrap()).unwrap();
        assert_eq!(header, f.info);
        assert_eq!(header.sequence, i as u32);
        assert_eq!((header.width, header.height), (640, 480));
        assert_eq!(header.jpeg_len, 20_000);
        assert_eq!(
            header.timestamp_us,
            t.as_micros(),
            "boot-relative until the clock is set"
        );
        assert!(header.flags.has(FrameFlags::CLOCK_UNSYNCED));
        let expected = t0.as_micros() + i as u64 * 33_333;
        assert!(t.as_micros().abs_diff(expected) <= 1, "frame {i} at {t:?}");
    }
    let telemetry: Vec<Value> = h
        .texts_to(control, start)
        .into_iter()
        .filter(|v| v["type"] == "telemetry")
        .collect();
    assert_eq!(telemetry.len(), 1);
    assert!(
        telemetry[0]["fps"].as_f64().unwrap() > 20.0,
        "{}",
        telemetry[0]
    );

    let start = h.log.len();
    h.text(control, r#"{"cmd":"resolution","value":"QVGA","id":5}"#);
    let ack = &h.texts_to(control, start)[0];
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["id"], 5);
    assert_eq!(ack["cmd"], "resolution");
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["settings"]["resolution"], 3);
    assert_eq!(
        h.cam.sensor().applied.last().unwrap().resolution,
        Resolution::Qvga
    );
    h.advance(Duration::from_millis(100));
    let (_, next) = h.frames(start)[0];
    assert_eq!((next.info.width, next.info.height), (320, 240));
}

#[test]
fn every_command_is_acknowledged_even_when_it_fails() {
    let mut h = Harness::new(hub_config(1));
    let (control, _) = h.online();
    h.cam.sensor_mut().refuse = Some(Resolution::Qxga);
    let cases = [
        (r#"{"cmd":"quality","value":10,"id":1}"#, true, None),
        (r#"{"cmd":"brightness","value":-2,"id":2}"#, true, None),
        (r#"{"cmd":"vflip","value":1,"id":3}"#, true, None),
        (r#"{"cmd":"hmirror","value":true,"id":4}"#, true, None),
        (
            r#"{"cmd":"quality","value":70,"id":5}"#,
            false,
            Some("quality 70 out of range 0..=63"),
        ),
        (
            r#"{"cmd":"zoom","value":2,"id":6}"#,
            false,
            Some("unknown command \"zoom\""),
        ),
        (
            r#"{"cmd":"resolution","value":12,"id":7}"#,
            false,
            Some("sensor refused resolution"),
        ),
        (r#"{"cmd":"quality"}"#, false, Some("needs a \"value\"")),
    ];
    for (cmd, ok, err) in cases {
        let start = h.log.len();
        h.text(control, cmd);
        let acks = h.texts_to(control, start);
        assert_eq!(acks.len(), 1, "{cmd}");
        let ack = &acks[0];
        let sent: Value = serde_json::from_str(cmd).unwrap();
        assert_eq!(ack["id"], sent["id"], "{cmd}");
        assert_eq!(ack["cmd"], sent["cmd"], "{cmd}");
        assert_eq!(ack["ok"], ok, "{cmd}: {ack}");
        if let Some(e) = err {
            assert!(ack["error"].as_str().unwrap().contains(e), "{cmd}: {ack}");
        }
    }
    let s = h.cam.settings();
    assert_eq!(
        (
            s.quality.get(),
            s.brightness.get(),
            s.vflip,
            s.hmirror,
            s.resolution
        ),
        (10, -2, true, true, Resolution::Vga),
        "failed commands change nothing"
    );
    // Garbage from the hub that is not a command is ignored, not answered.
    let start = h.log.len();
    h.text(control, "\u{0}garbage");
    h.text(control, r#"{"type":"mystery"}"#);
    assert!(h.texts_to(control, start).is_empty());
}

#[test]
fn reboot_is_acked_then_the_core_goes_inert() {
    let mut h = Harness::new(hub_config(1));
    let (control, _) = h.online();
    let start = h.log.len();
    h.text(control, r#"{"cmd":"reboot","id":9}"#);
    let seen = h.since(start);
    assert!(matches!(&seen[0].1, Seen::Text(c, t) if *c == control && t.contains(r#""ok":true"#)));
    assert!(matches!(seen[1].1, Seen::Reboot));
    assert!(h.cam.is_rebooting());
    assert_eq!(h.cam.poll_timeout(), None);
    let start = h.log.len();
    h.advance(Duration::from_secs(5));
    assert!(h.since(start).is_empty(), "nothing after reboot");
}

#[test]
fn link_loss_backs_off_and_reconnects() {
    let mut h = Harness::new(hub_config(7));
    let (control, stream) = h.online();
    h.advance(Duration::from_millis(500));
    let lost_at = h.now;
    let start = h.log.len();
    h.closed(control);
    // The stream link goes down with the control link, and capture stops.
    assert!(
        matches!(&h.since(start)[0].1, Seen::Close(c, _, r) if *c == stream && r.contains("control link lost"))
    );
    assert_eq!(h.cam.link_status(Link::Stream), LinkStatus::Idle);
    assert_eq!(h.cam.link_status(Link::Control), LinkStatus::Backoff);

    // Every failed attempt doubles the nominal delay (500 ms, 1 s, 2 s, …, capped at 30 s),
    // with the upper half random.
    let mut failed_at = lost_at;
    let mut nominal = 500u64;
    for attempt in 0..10 {
        let i = h
            .run_until(Duration::from_secs(31), |s| {
                matches!(s, Seen::Connect(_, Link::Control))
            })
            .expect("reconnect");
        let (t, Seen::Connect(conn, _)) = h.log[i].clone() else {
            unreachable!()
        };
        let waited = (t.as_micros() - failed_at.as_micros()) / 1000;
        assert!(
            waited >= nominal / 2 && waited <= nominal,
            "attempt {attempt}: waited {waited} ms, nominal {nominal} ms"
        );
        assert!(
            frames_between(&h, failed_at, t).is_empty(),
            "no frames while down"
        );
        // The connection fails at once (hub still down).
        h.now = t;
        h.closed(conn);
        failed_at = t;
        nominal = (nominal * 2).min(30_000);
    }

    // The hub comes back: the next attempt succeeds and the backoff resets.
    h.run_until(Duration::from_secs(31), |s| {
        matches!(s, Seen::Connect(_, Link::Control))
    })
    .expect("reconnect");
    let (_, conn) = h.last_connect(Link::Control).unwrap();
    h.connected(conn);
    h.text(conn, WELCOME);
    h.advance(Duration::ZERO);
    let (_, stream) = h.last_connect(Link::Stream).unwrap();
    h.connected(stream);
    h.text(stream, WELCOME);
    let start = h.log.len();
    h.advance(Duration::from_secs(1));
    assert!(h.frames(start).len() >= 29, "streaming again");
    let back_at = h.now;
    h.closed(conn);
    h.advance(Duration::from_secs(1));
    let (t, _) = h.last_connect(Link::Control).unwrap();
    assert!(
        t > back_at && t.saturating_since(back_at) <= Duration::from_millis(500),
        "backoff was reset"
    );
}

fn frames_between(h: &Harness, a: Instant, b: Instant) -> Vec<Instant> {
    h.log
        .iter()
        .filter(|(t, s)| matches!(s, Seen::Frame(_)) && *t > a && *t < b)
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn stream_link_reconnects_alone() {
    let mut h = Harness::new(hub_config(3));
    let (control, stream) = h.online();
    h.closed(stream);
    assert_eq!(h.cam.link_status(Link::Control), LinkStatus::Ready);
    assert_eq!(h.cam.link_status(Link::Stream), LinkStatus::Backoff);
    h.advance(Duration::from_secs(1));
    let (_, stream2) = h.last_connect(Link::Stream).unwrap();
    assert_ne!(stream2, stream);
    h.connected(stream2);
    h.text(stream2, WELCOME);
    let start = h.log.len();
    h.advance(Duration::from_millis(200));
    assert!(
        h.frames(start)
            .iter()
            .all(|(_, f)| f.targets.as_slice() == [stream2])
    );
    assert!(!h.frames(start).is_empty());
    // A stale event about the old connection changes nothing.
    h.closed(stream);
    assert_eq!(h.cam.link_status(Link::Stream), LinkStatus::Ready);
    let _ = control;
}

#[test]
fn rejected_and_silent_hubs_are_retried_later() {
    let mut h = Harness::new(hub_config(1));
    h.advance(Duration::ZERO);
    let (_, control) = h.last_connect(Link::Control).unwrap();
    h.connected(control);
    let start = h.log.len();
    h.text(
        control,
        r#"{"type":"rejected","reason":"wrong token for camera cam-1"}"#,
    );
    assert!(matches!(&h.since(start)[0].1,
        Seen::Close(c, 1000, r) if *c == control && r == "rejected by hub: wrong token for camera cam-1"));
    assert_eq!(h.cam.link_status(Link::Control), LinkStatus::Backoff);

    // Next attempt: the hub accepts the socket but never answers the hello.
    h.advance(Duration::from_secs(1));
    let (_, c2) = h.last_connect(Link::Control).unwrap();
    h.connected(c2);
    let opened = h.now;
    h.advance(Duration::from_secs(11));
    let close_at = h.log.iter().find_map(|(t, s)| match s {
        Seen::Close(c, _, r) if *c == c2 => Some((*t, r.clone())),
        _ => None,
    });
    let (t, reason) = close_at.expect("handshake timeout");
    assert!(reason.contains("no welcome"), "{reason}");
    assert!(t.saturating_since(opened) <= Duration::from_secs(10));
}

#[test]
fn jitter_spreads_cameras_deterministically() {
    let reconnect_delay = |seed| {
        let mut h = Harness::new(hub_config(seed));
        let (control, _) = h.online();
        let lost = h.now;
        h.closed(control);
        h.advance(Duration::from_secs(1));
        h.last_connect(Link::Control)
            .unwrap()
            .0
            .saturating_since(lost)
    };
    assert_eq!(reconnect_delay(11), reconnect_delay(11));
    let delays: std::collections::HashSet<_> = (0..8).map(reconnect_delay).collect();
    assert!(delays.len() >= 6, "{delays:?}");
}

#[test]
fn a_busy_link_drops_frames_and_slows_down_never_queues() {
    // The rate alone (AIMD); with adaptive quality the fall pauses at half the rate first,
    // see `a_slow_link_costs_quality_first_then_rate_and_recovers_in_reverse`.
    let mut config = hub_config(1);
    config.adaptive_quality = None;
    let mut h = Harness::new(config);
    let (_, stream) = h.online();
    h.auto_sent = false;
    let start = h.log.len();
    h.advance(Duration::from_secs(2));
    // The first frame is never reported sent: nothing else is sent, drops are counted.
    assert_eq!(h.frames(start).len(), 1);
    let stats = h.cam.stats(h.now);
    assert!(stats.frames_dropped >= 10, "{stats:?}");
    assert!(stats.paced_fps < 5.0, "{stats:?}");

    // The link drains: frames flow again and the rate climbs back to the target.
    h.auto_sent = true;
    h.sent(stream);
    h.advance(Duration::from_secs(15));
    let stats = h.cam.stats(h.now);
    assert_eq!(stats.paced_fps, 30.0);
    assert!(stats.fps > 28.0, "{stats:?}");
}

#[test]
fn a_frame_that_finds_the_link_busy_is_dropped() {
    let mut h = Harness::new(hub_config(1));
    let (_, stream) = h.online();
    h.auto_capture = false;
    h.advance(Duration::ZERO);
    // A capture is outstanding; meanwhile the stream link is replaced.
    h.closed(stream);
    let frame = espcam_camera::CapturedFrame {
        captured_at: h.now,
        width: 640,
        height: 480,
        len: 100,
    };
    assert_eq!(
        h.cam.handle_frame(h.now, &frame),
        FrameDecision::Drop(espcam_camera::DropReason::NoTarget)
    );
}

#[test]
fn telemetry_reports_health_and_wall_clock_frames() {
    let mut h = Harness::new(hub_config(1));
    let (control, _) = h.online();
    h.cam.set_health(Health {
        heap_free: 123_456,
        psram_free: 7_000_000,
        rssi: Some(-61),
    });
    h.cam.set_wall_clock(h.now, 1_700_000_000_000_000);
    let start = h.log.len();
    let synced_at = h.now;
    h.advance(Duration::from_secs(3));
    let tel: Vec<Value> = h
        .texts_to(control, start)
        .into_iter()
        .filter(|v| v["type"] == "telemetry")
        .collect();
    assert_eq!(tel.len(), 3);
    let last = &tel[2];
    assert_eq!(last["heap_free"], 123_456);
    assert_eq!(last["psram_free"], 7_000_000);
    assert_eq!(last["rssi"], -61);
    assert_eq!(
        last["uptime_ms"], 3000,
        "booted at 1 s, last tick at 4 s: {last}"
    );
    assert!(last["frames_sent"].as_u64().unwrap() >= 90);
    let (t, f) = h.frames(start)[5];
    assert!(!f.info.flags.has(FrameFlags::CLOCK_UNSYNCED));
    assert_eq!(
        f.info.timestamp_us,
        1_700_000_000_000_000 + (t.as_micros() - synced_at.as_micros())
    );
}

// ---- standalone (seed 002) -------------------------------------------------------------

#[test]
fn standalone_clients_welcome_limit_heartbeat_ping_stats_commands() {
    let mut h = Harness::new(Config::standalone());
    h.advance(Duration::ZERO);
    assert!(h.log.is_empty(), "nothing happens without clients");
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(h.cam.handle_client_open(h.now).unwrap());
    }
    let refused = h.cam.handle_client_open(h.now).unwrap_err();
    assert_eq!(
        (refused.code, refused.reason),
        (CLOSE_TRY_AGAIN, TOO_MANY_CLIENTS)
    );
    h.drain();
    for c in &clients {
        let welcome = &h.texts_to(*c, 0)[0];
        assert_eq!(welcome["type"], "welcome");
        assert!(welcome["message"].as_str().unwrap().contains("30fps"));
    }

    let start = h.log.len();
    h.advance(Duration::from_secs(1));
    for c in &clients {
        let hb: Vec<Value> = h.texts_to(*c, start);
        assert_eq!(hb.len(), 1);
        assert_eq!(hb[0]["type"], "heartbeat");
        assert_eq!(hb[0]["clients"], 5);
        assert!(hb[0]["fps"].as_f64().unwrap() > 25.0, "{}", hb[0]);
    }
    let frames = h.frames(start);
    assert!(frames.len() >= 30);
    for (_, f) in &frames {
        assert_eq!(f.header, None, "standalone clients get bare JPEGs");
        assert_eq!(f.targets.as_slice().len(), 5);
    }

    let c = clients[2];
    let start = h.log.len();
    h.text(c, "ping");
    h.text(c, "\"get_stats\"");
    h.text(c, r#"{"cmd":"quality","value":30}"#);
    h.text(c, "hello?");
    let replies = h.texts_to(c, start);
    assert_eq!(replies[0], Value::String("pong".into()));
    assert_eq!(replies[1]["type"], "stats");
    assert_eq!(replies[1]["clients"], 5);
    assert!(replies[1]["frames"].as_u64().unwrap() >= 30);
    assert_eq!(replies[2]["type"], "ack");
    assert_eq!(replies[2]["ok"], true);
    assert_eq!(replies[2]["settings"]["quality"], 30);
    assert_eq!(replies[3]["type"], "ack");
    assert_eq!(replies[3]["ok"], false);
    assert!(
        replies[3]["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );
    assert!(
        h.texts_to(clients[0], start).is_empty(),
        "replies go to the asker only"
    );

    // A slot frees when a client leaves; a slow client only misses frames itself.
    h.closed(clients[0]);
    let sixth = h.cam.handle_client_open(h.now).unwrap();
    assert_eq!(h.cam.stats(h.now).clients, 5);
    h.auto_capture = false;
    h.advance(Duration::from_millis(40));
    let mut captured = 0;
    while let Some(o) = h.cam.poll_output() {
        if o == Output::Capture {
            captured += 1;
        }
    }
    let _ = captured;
    h.auto_capture = true;
    let _ = sixth;
    for c in clients.iter().skip(1) {
        h.closed(*c);
    }
    h.closed(sixth);
    assert_eq!(h.cam.stats(h.now).clients, 0);
    let start = h.log.len();
    h.advance(Duration::from_secs(2));
    assert!(h.frames(start).is_empty(), "no clients, no captures");
}

#[test]
fn standalone_slow_client_misses_frames_others_do_not() {
    let mut h = Harness::new(Config::standalone());
    let fast = h.cam.handle_client_open(h.now).unwrap();
    let slow = h.cam.handle_client_open(h.now).unwrap();
    h.auto_sent = false;
    let start = h.log.len();
    h.advance(Duration::from_secs(1));
    // Play a shell where only `fast` drains.
    let mut to_fast = 0;
    let mut to_slow = 0;
    for (_, f) in h.frames(start) {
        for c in f.targets.as_slice() {
            if *c == fast {
                to_fast += 1;
            } else {
                to_slow += 1;
            }
        }
    }
    assert_eq!(
        to_fast, 1,
        "without sent reports nobody gets a second frame"
    );
    assert_eq!(to_slow, 1);
    let _ = slow;
}

#[test]
fn fps_is_reported_to_a_tenth_when_the_shell_wakes_late() {
    // A real shell wakes a little after each deadline, so a measuring window is never exactly
    // one second; the reported rate must still read like `29.9`, not `29.99658`.
    let mut h = Harness::new(Config::standalone());
    let client = h.cam.handle_client_open(h.now).unwrap();
    let start = h.log.len();
    let late = Duration::from_micros(3_137);
    for _ in 0..200 {
        h.drain();
        let Some(t) = h.cam.poll_timeout() else { break };
        h.now = h.now.max(t + late);
        h.cam.handle_timeout(h.now);
    }
    h.drain();
    let beats: Vec<Value> = h
        .texts_to(client, start)
        .into_iter()
        .filter(|m| m["type"] == "heartbeat")
        .collect();
    assert!(beats.len() >= 2, "{beats:?}");
    for b in &beats {
        let fps = b["fps"].to_string();
        let decimals = fps.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 1, "fps {fps} has {decimals} decimals");
        assert!(b["fps"].as_f64().unwrap() > 20.0, "{b}");
    }
}

#[test]
fn a_long_rejection_reason_still_fits_a_close_frame() {
    // RFC 6455 close reasons hold at most 123 bytes; the hub's reason is cut on a character
    // boundary (here inside a run of 3-byte characters) so the shell can send it unchanged.
    let mut h = Harness::new(hub_config(1));
    h.advance(Duration::ZERO);
    let (_, control) = h.last_connect(Link::Control).unwrap();
    h.connected(control);
    let start = h.log.len();
    let long = "€".repeat(60);
    h.text(
        control,
        &format!(r#"{{"type":"rejected","reason":"{long}"}}"#),
    );
    let Seen::Close(_, _, reason) = &h.since(start)[0].1 else {
        panic!("expected a close, got {:?}", h.since(start));
    };
    assert!(reason.len() <= 123, "{} bytes", reason.len());
    assert!(reason.starts_with("rejected by hub: €€€"), "{reason}");
}

#[test]
fn a_peer_close_is_answered_with_its_code_and_forgets_the_connection() {
    // RFC 6455 §5.5.1: the core decides the answer to a peer's close frame (echo the code,
    // or 1002 for one that may not be sent); the shell sends it and then drops the socket.
    let mut h = Harness::new(Config::standalone());
    let a = h.cam.handle_client_open(h.now).unwrap();
    let b = h.cam.handle_client_open(h.now).unwrap();
    let c = h.cam.handle_client_open(h.now).unwrap();
    h.drain();
    let start = h.log.len();
    h.cam.handle_close_frame(h.now, a, Some(1000));
    h.cam.handle_close_frame(h.now, b, None);
    h.cam.handle_close_frame(h.now, c, Some(1006));
    // A second close frame for a connection already answered is ignored.
    h.cam.handle_close_frame(h.now, a, Some(1000));
    h.drain();
    let closes: Vec<(u32, u16)> = h
        .since(start)
        .iter()
        .filter_map(|(_, s)| match s {
            Seen::Close(conn, code, _) => Some((conn.get(), *code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        closes,
        [(a.get(), 1000), (b.get(), 1000), (c.get(), 1002)],
        "echo; no code → 1000; 1006 is never sent on the wire → 1002"
    );
    assert_eq!(h.cam.stats(h.now).clients, 0);

    // Hub mode: the hub going away (1001) is answered, and the link reconnects later.
    let mut h = Harness::new(hub_config(1));
    let (control, stream) = h.online();
    let start = h.log.len();
    h.cam.handle_close_frame(h.now, control, Some(1001));
    h.drain();
    let answered: Vec<_> = h
        .since(start)
        .iter()
        .filter_map(|(_, s)| match s {
            Seen::Close(conn, code, _) => Some((*conn, *code)),
            _ => None,
        })
        .collect();
    assert!(answered.contains(&(control, 1001)), "{answered:?}");
    assert!(
        answered.iter().any(|(c, _)| *c == stream),
        "stream closed too"
    );
    assert_eq!(h.cam.link_status(Link::Control), LinkStatus::Backoff);
}

#[test]
fn the_first_stats_and_heartbeat_report_the_rate_being_streamed() {
    // Regression: a client that connected between two ticks and asked `get_stats` at once
    // read fps 0.0 (the last window had no clients), and its first heartbeat measured
    // a window that had been streaming for only part of its second.
    let mut h = Harness::new(Config::standalone());
    h.advance(Duration::from_millis(2_400));
    let client = h.cam.handle_client_open(h.now).unwrap();
    h.text(client, "get_stats");
    let stats = h
        .texts_to(client, 0)
        .into_iter()
        .find(|m| m["type"] == "stats")
        .unwrap();
    assert_eq!(
        stats["fps"], 30.0,
        "nothing measured yet: the paced rate, {stats}"
    );
    assert_eq!(h.cam.stats(h.now).fps, 30.0);

    let start = h.log.len();
    h.advance(Duration::from_millis(1_700));
    let beats: Vec<Value> = h
        .texts_to(client, start)
        .into_iter()
        .filter(|m| m["type"] == "heartbeat")
        .collect();
    assert_eq!(beats.len(), 2, "{beats:?}");
    for b in &beats {
        let fps = b["fps"].as_f64().unwrap();
        assert!((29.0..=31.0).contains(&fps), "{b}");
    }

    // Once every client left, nothing is streamed and the rate says so.
    h.closed(client);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.cam.stats(h.now).fps, 0.0);
}

#[test]
fn standalone_a_busy_client_gets_the_newest_frame_next_and_never_slows_the_others() {
    let mut h = Harness::new(Config::standalone());
    let a = h.cam.handle_client_open(h.now).unwrap();
    let slow = h.cam.handle_client_open(h.now).unwrap();
    let c = h.cam.handle_client_open(h.now).unwrap();
    h.auto_sent = false;
    // Play a shell whose sends to `a` and `c` complete at once; `slow` is stuck.
    let mut delivered = std::collections::HashMap::<_, Vec<u32>>::new();
    let start = h.log.len();
    let mut seen = start;
    let t0 = h.now;
    for _ in 0..(5 * 30) {
        let Some(t) = h.cam.poll_timeout() else { break };
        h.now = t;
        h.cam.handle_timeout(t);
        h.drain();
        for (_, f) in h.frames(seen) {
            for conn in f.targets.as_slice() {
                delivered.entry(*conn).or_default().push(f.info.sequence);
                if *conn != slow {
                    h.sent(*conn);
                }
            }
        }
        seen = h.log.len();
    }
    let elapsed = h.now.saturating_since(t0).as_secs_f64();
    let expected = (elapsed * 30.0) as usize;
    for conn in [a, c] {
        let got = delivered[&conn].len();
        assert!(got + 1 >= expected, "{conn:?}: {got} of {expected} frames");
    }
    assert_eq!(
        delivered[&slow],
        [0],
        "the stuck client holds its one frame"
    );
    assert_eq!(h.cam.stats(h.now).frames_dropped, 0, "nobody else waited");

    // The stuck client's send completes: it gets the newest frame at once, skipping every
    // frame that came between, and is free after that one.
    let newest = *delivered[&a].last().unwrap();
    let from = h.log.len();
    h.sent(slow);
    let frames = h.frames(from);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].1.targets.as_slice(), [slow]);
    assert_eq!(frames[0].1.info.sequence, newest);
    assert_eq!(frames[0].1.header, None);
    assert_eq!(
        h.cam.handle_frame_sent(h.now, slow),
        None,
        "nothing newer yet"
    );
    // It takes the next capture like everyone else.
    let from = h.log.len();
    h.auto_sent = true;
    h.advance(Duration::from_millis(100));
    assert!(
        h.frames(from)
            .iter()
            .all(|(_, f)| f.targets.as_slice().contains(&slow))
    );
}

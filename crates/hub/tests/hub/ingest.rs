//! Cameras into the hub: both push channels, hellos and tokens, bad and huge frames,
//! replacement, pull mode, the registry cap.

#![allow(unused_imports)]
use std::time::Duration;

use crate::common::*;
use crate::support::*;
use espcam_hub::config::CameraAuth;
use espcam_hub::{Config, PullTarget};
use espcam_proto::{CameraId, HubMsg};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn camera_on_both_ports_reaches_every_viewer_output() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    let info = hub
        .wait_camera("cam-1", |v| {
            v["online"] == true && v["frames_in"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(info["source"], "push");
    assert_eq!(info["sensor"], "virtual");
    assert_eq!(info["settings"]["resolution"], 0);
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(160), Some(120))
    );

    // /ws/view: bare JPEGs, decodable.
    let mut v = ws(&hub.ws_url("/ws/view/cam-1")).await;
    for _ in 0..3 {
        assert_eq!(decode(&next_binary(&mut v).await), (160, 120));
    }
    // ?meta=1: a description before each JPEG, matching it.
    let mut m = ws(&hub.ws_url("/ws/view/cam-1?meta=1")).await;
    let meta: Value = serde_json::from_str(&next_text(&mut m).await).unwrap();
    let jpg = next_binary(&mut m).await;
    assert_eq!(meta["type"], "frame");
    assert_eq!(meta["bytes"].as_u64(), Some(jpg.len() as u64));
    assert_eq!(
        (meta["width"].as_u64(), meta["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert!(meta["captured_us"].as_u64().is_some() && meta["received_us"].as_u64().is_some());
    // Seed-002 client requests on the view socket.
    m.send(Message::Text("ping".into())).await.unwrap();
    assert_eq!(next_text_skipping_frames(&mut m).await, "pong");

    // snapshot.jpg
    let r = hub.get("/api/cameras/cam-1/snapshot.jpg").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "image/jpeg");
    assert_eq!(decode(&r.body), (160, 120));

    // stream.mjpg: parse the multipart stream from a raw socket.
    let parts = read_mjpeg(hub.http, "/api/cameras/cam-1/stream.mjpg", 3).await;
    for p in parts {
        assert_eq!(decode(&p), (160, 120));
    }

    // Counters and metrics saw the deliveries.
    let info = hub
        .wait_camera("cam-1", |v| v["frames_out"].as_u64() > Some(3))
        .await;
    assert!(info["bytes_out"].as_u64() > Some(0));
    let metrics = hub.get("/metrics").await.text();
    for needle in [
        "espcam_cameras_online 1",
        "espcam_frames_in_total{camera=\"cam-1\"}",
        "espcam_viewers{camera=\"cam-1\"} ",
        "espcam_relay_latency_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn tokens_ids_and_hellos_are_checked() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.cameras = vec![CameraAuth {
        id: CameraId::new("cam-1").unwrap(),
        token: "s3cret".into(),
        record: None,
    }];
    let hub = TestHub::start(config).await;
    let mut opts = CamOpts::new("cam-1");
    for (token, reason) in [
        ("wrong", "wrong token for camera cam-1"),
        ("", "missing token for camera cam-1"),
    ] {
        opts.token = token.into();
        let mut c = ws(&hub.ws_url("/ws/camera")).await;
        let (msg, close) = hello_exchange(&mut c, control_hello(&opts)).await;
        assert_eq!(
            msg,
            HubMsg::Rejected {
                reason: reason.into()
            }
        );
        assert_eq!(close, Some((1008, reason.into())));
        let mut s = ws(&format!("ws://{}/ws/stream", hub.stream)).await;
        let (msg, close) = hello_exchange(&mut s, stream_hello("cam-1", token)).await;
        assert_eq!(
            msg,
            HubMsg::Rejected {
                reason: reason.into()
            }
        );
        assert_eq!(close, Some((1008, reason.into())));
    }
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, _) = hello_exchange(
        &mut c,
        control_hello(&CamOpts {
            token: "s3cret".into(),
            ..CamOpts::new("cam-2")
        }),
    )
    .await;
    assert_eq!(
        msg,
        HubMsg::Rejected {
            reason: "camera cam-2 is not in this hub's camera list".into()
        }
    );
    // Invalid ids and garbage hellos.
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let bad = r#"{"type":"hello","proto":1,"camera":"../etc","firmware":"x","sensor":"x","settings":{"resolution":6,"quality":12,"brightness":0,"vflip":0,"hmirror":0}}"#;
    let (msg, close) = hello_exchange(&mut c, bad.into()).await;
    let HubMsg::Rejected { reason } = msg else {
        panic!()
    };
    assert!(
        reason.starts_with("invalid hello: camera id \"../etc\" is invalid"),
        "{reason}"
    );
    assert_eq!(close.unwrap().0, 1008);
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, _) = hello_exchange(&mut c, "{\"type\":\"telemetry\"".into()).await;
    assert!(matches!(msg, HubMsg::Rejected { .. }));
    // The right token is accepted.
    opts.token = "s3cret".into();
    let _cam = TestCamera::connect(&hub, opts).await;
    hub.wait_camera("cam-1", |v| {
        v["online"] == true && v["frames_in"].as_u64() > Some(0)
    })
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn bad_frames_are_counted_dropped_and_survived() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let mut s = ws(&format!("ws://{}/ws/stream", hub.stream)).await;
    let (msg, _) = hello_exchange(&mut s, stream_hello("raw-1", "")).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    let good = jpeg(160, 120, 12);
    let too_big = 2 * 1024 * 1024 + 10;
    let bads: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),                         // no magic
        good[..good.len() - 10].to_vec(),          // truncated JPEG
        framed(1, &good, 320, 240),                // header dims disagree
        framed(2, &good, 160, 120)[..40].to_vec(), // length mismatch
        vec![0xFF; too_big],                       // over the size limit
    ];
    for b in &bads {
        s.send(Message::Binary(b.clone().into())).await.unwrap();
    }
    s.send(Message::Binary(framed(3, &good, 160, 120).into()))
        .await
        .unwrap();
    let info = hub
        .wait_camera("raw-1", |v| v["frames_in"] == 1 && v["frames_dropped"] == 5)
        .await;
    assert_eq!(
        info["online"], false,
        "a stream alone does not make a camera online"
    );
    // The good frame (and only it) reached viewers.
    let r = hub.get("/api/cameras/raw-1/snapshot.jpg").await;
    assert_eq!(r.body, good);
    // The connection survived: another good frame still arrives.
    let mut view = ws(&hub.ws_url("/ws/view/raw-1")).await;
    assert_eq!(next_binary(&mut view).await.to_vec(), good);
    let good2 = jpeg(176, 144, 12);
    s.send(Message::Binary(framed(4, &good2, 176, 144).into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut view).await.to_vec(), good2);
    hub.stop().await;
}

#[tokio::test]
async fn reconnecting_camera_replaces_the_old_connection() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let mut old = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, _) = hello_exchange(&mut old, control_hello(&CamOpts::new("cam-1"))).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    let _new = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), old.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(f))) => break f.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close.reason.as_str(), "replaced by a new connection");
    // Still online via the new connection, which gets acks.
    let r = hub
        .post("/api/cameras/cam-1/settings", r#"{"brightness":1}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hub.get("/api/cameras/cam-1").await.json()["online"], true);
    hub.stop().await;
}

#[tokio::test]
async fn pull_mode_makes_a_standalone_camera_appear() {
    let ap = ApCamera::start().await;
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.pull = vec![
        format!("cam-ap=ws://{}/ws", ap.addr)
            .parse::<PullTarget>()
            .unwrap(),
    ];
    let hub = TestHub::start(config).await;
    let info = hub
        .wait_camera("cam-ap", |v| {
            v["online"] == true && v["frames_in"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(info["source"], "pull");
    // Regression (issue 10.6): the seed's welcome text is not a firmware version; say what
    // is known instead, and the size of the frames it sends.
    assert_eq!(info["firmware"], Value::Null, "{info}");
    assert_eq!(info["sensor"], "standalone camera (seed 002)");
    let info = hub.wait_camera("cam-ap", |v| v["width"].is_u64()).await;
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(160), Some(120))
    );
    let mut view = ws(&hub.ws_url("/ws/view/cam-ap")).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));
    let r = hub
        .post("/api/cameras/cam-ap/settings", r#"{"resolution":3}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["settings"]["resolution"], 3);
    let snap = hub.get("/api/cameras/cam-ap/snapshot.jpg").await;
    assert_eq!(decode(&snap.body), (320, 240));
    // The camera goes away: offline; it comes back: online again (with backoff).
    drop(ap);
    hub.wait_camera("cam-ap", |v| v["online"] == false).await;
    hub.stop().await;
}

#[tokio::test]
async fn virtual_cameras_from_the_sim_push_and_get_pulled() {
    use espcam_proto::Resolution;
    use espcam_sim::{ApCamera, ApCameraConfig, Fault, HubCamera, HubCameraConfig};
    let mut ap_cfg = ApCameraConfig::default();
    ap_cfg.settings.resolution = Resolution::Qqvga;
    let ap = ApCamera::bind("127.0.0.1:0".parse().unwrap(), ap_cfg)
        .await
        .unwrap();
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.pull = vec![
        format!("cam-ap={}", ap.url().unwrap())
            .parse::<PullTarget>()
            .unwrap(),
    ];
    let hub = TestHub::start(config).await;

    // Push: the sim's hub-mode camera (the real camera core) on both ports.
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        hub.http.port(),
        hub.stream.port(),
        CameraId::new("sim-1").unwrap(),
        "",
    );
    cfg.settings.resolution = Resolution::Qqvga;
    let cam = HubCamera::spawn(cfg);
    let info = hub
        .wait_camera("sim-1", |v| {
            v["online"] == true && v["frames_in"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(info["firmware"].as_str(), Some(espcam_sim::FIRMWARE));
    let mut view = ws(&hub.ws_url("/ws/view/sim-1")).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));
    let r = hub
        .post("/api/cameras/sim-1/settings", r#"{"resolution":"QVGA"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        decode(&hub.get("/api/cameras/sim-1/snapshot.jpg").await.body),
        (320, 240)
    );
    // Garbage from the camera is counted, never forwarded; the link survives.
    cam.inject(Fault::TruncateNextFrame);
    let info = hub
        .wait_camera("sim-1", |v| v["frames_dropped"].as_u64() > Some(0))
        .await;
    assert_eq!(info["online"], true);
    for _ in 0..5 {
        decode(&next_binary(&mut view).await);
    }
    // Killed: offline.
    cam.kill();
    hub.wait_camera("sim-1", |v| v["online"] == false).await;

    // Pull: the sim's standalone camera appears like any other.
    let info = hub
        .wait_camera("cam-ap", |v| {
            v["online"] == true && v["frames_in"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(info["source"], "pull");
    let r = hub
        .post("/api/cameras/cam-ap/settings", r#"{"quality":30}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["settings"]["quality"], 30);
    let mut view = ws(&hub.ws_url("/ws/view/cam-ap")).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));
    ap.stop().await;
    hub.wait_camera("cam-ap", |v| v["online"] == false).await;
    hub.stop().await;
}

#[tokio::test]
async fn oversized_control_message_ends_only_that_connection() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;
    let huge = "x".repeat(10 * 1024 * 1024);

    // Before the hello: the connection is refused, nothing is registered.
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let _ = c.send(Message::Text(huge.clone().into())).await;
    wait_closed(&mut c).await;

    // After the hello: the link ends and the camera goes offline.
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, _) = hello_exchange(&mut c, control_hello(&CamOpts::new("cam-big"))).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    hub.wait_camera("cam-big", |v| v["online"] == true).await;
    let _ = c.send(Message::Text(huge.into())).await;
    wait_closed(&mut c).await;
    hub.wait_camera("cam-big", |v| v["online"] == false).await;

    assert_still_serving(&hub, "cam-ok", &mut view).await;
    let ids: Vec<Value> = hub
        .get("/api/cameras")
        .await
        .json()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(ids.len(), 2, "{ids:?}");
    hub.stop().await;
}

#[tokio::test]
async fn stream_socket_survives_garbage_huge_and_cut_frames() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    // Short enough to wait for, long enough for the bystander's telemetry (every 500 ms).
    config.camera_timeout = Duration::from_millis(1500);
    let hub = TestHub::start(config).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;

    // Binary garbage instead of a hello: refused with the reason.
    let mut s = RawWs::connect(hub.stream, "/ws/stream").await;
    s.send(0x2, &[0xde, 0xad, 0xbe, 0xef]).await.unwrap();
    let frames = s.read_until_closed().await;
    let text = frames.iter().find(|(op, _)| *op == 0x1).unwrap();
    assert!(
        String::from_utf8_lossy(&text.1)
            .contains("expected a JSON hello first, got a binary message"),
        "{frames:?}"
    );
    assert_eq!(close_of(&frames).unwrap().0, 1008);

    // A frame past twice the frame limit: that connection ends, nothing is published.
    let good = jpeg(160, 120, 12);
    let mut raw = ws(&format!("ws://{}/ws/stream", hub.stream)).await;
    let (msg, _) = hello_exchange(&mut raw, stream_hello("raw-1", "")).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    raw.send(Message::Binary(framed(1, &good, 160, 120).into()))
        .await
        .unwrap();
    hub.wait_camera("raw-1", |v| v["frames_in"] == 1).await;
    let mut watcher = ws(&hub.ws_url("/ws/view/raw-1")).await;
    assert_eq!(next_binary(&mut watcher).await.to_vec(), good);
    let _ = raw
        .send(Message::Binary(vec![0u8; 5 * 1024 * 1024].into()))
        .await;
    wait_closed(&mut raw).await;

    // A camera that vanishes in the middle of a frame: a header announcing 60 000 bytes,
    // 10 000 sent, then the TCP connection drops.
    let mut s = RawWs::connect(hub.stream, "/ws/stream").await;
    s.send(0x1, stream_hello("raw-1", "").as_bytes())
        .await
        .unwrap();
    let mut cut = client_frame(0x2, &framed(2, &jpeg(320, 240, 0), 320, 240));
    cut.truncate(10_000);
    tokio::io::AsyncWriteExt::write_all(&mut s.tcp, &cut)
        .await
        .unwrap();
    drop(s);
    // The same, but the camera stays connected and silent: the idle timeout ends it.
    let mut s = RawWs::connect(hub.stream, "/ws/stream").await;
    s.send(0x1, stream_hello("raw-1", "").as_bytes())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s.tcp, &cut)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let frames = s.read_until_closed().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        frames.first().map(|f| f.0),
        Some(0x1),
        "welcome first: {frames:?}"
    );

    // Nothing half-received was published; the viewer that stayed gets the next good frame.
    let info = hub.get("/api/cameras/raw-1").await.json();
    assert_eq!(
        (info["frames_in"].as_u64(), info["width"].as_u64()),
        (Some(1), Some(160))
    );
    let mut again = ws(&format!("ws://{}/ws/stream", hub.stream)).await;
    let (msg, _) = hello_exchange(&mut again, stream_hello("raw-1", "")).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    let good2 = jpeg(176, 144, 12);
    again
        .send(Message::Binary(framed(3, &good2, 176, 144).into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut watcher).await.to_vec(), good2);
    assert_still_serving(&hub, "cam-ok", &mut view).await;
    hub.stop().await;
}

#[tokio::test]
async fn hello_deadline_holds_even_when_the_peer_keeps_pinging() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let started = std::time::Instant::now();
    let close = loop {
        tokio::select! {
            msg = c.next() => match msg {
                Some(Ok(Message::Close(f))) => break f,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            },
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                assert!(started.elapsed() < Duration::from_secs(9), "still open after 9 s");
                let _ = c.send(Message::Ping(Vec::new().into())).await;
            }
        }
    };
    let close = close.unwrap();
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1008, "no hello within 5 s")
    );
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    hub.stop().await;
}

#[tokio::test]
async fn camera_registry_is_capped_and_forgets_cameras_that_left() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.max_cameras = 4;
    let hub = TestHub::start(config).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;
    // Three more online cameras fill the registry; a fifth id is refused.
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = ws(&hub.ws_url("/ws/camera")).await;
        let (msg, _) =
            hello_exchange(&mut c, control_hello(&CamOpts::new(&format!("held-{i}")))).await;
        assert!(matches!(msg, HubMsg::Welcome { .. }), "{msg:?}");
        held.push(c);
    }
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, close) = hello_exchange(&mut c, control_hello(&CamOpts::new("one-too-many"))).await;
    assert_eq!(
        msg,
        HubMsg::Rejected {
            reason: "too many cameras: this hub tracks at most 4".into()
        }
    );
    assert_eq!(close.unwrap().0, 1008);
    // Someone watches held-0 while it is offline: it must be kept.
    let mut watcher = ws(&hub.ws_url("/ws/view/held-0")).await;
    hub.wait_camera("held-0", |v| v["viewers"] == 1).await;
    for mut c in held.drain(..) {
        c.close(None).await.unwrap();
        wait_closed(&mut c).await;
    }
    // Hundreds of made-up ids come and go: each is admitted in place of one that left,
    // and the registry never grows past the cap.
    for i in 0..200 {
        let mut c = ws(&hub.ws_url("/ws/camera")).await;
        let (msg, _) = hello_exchange(
            &mut c,
            control_hello(&CamOpts::new(&format!("drive-by-{i}"))),
        )
        .await;
        assert!(
            matches!(msg, HubMsg::Welcome { .. }),
            "drive-by-{i}: {msg:?}"
        );
        c.close(None).await.unwrap();
        wait_closed(&mut c).await;
    }
    let list = hub.get("/api/cameras").await.json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.len() <= 4, "{ids:?}");
    assert!(
        ids.contains(&"cam-ok") && ids.contains(&"held-0"),
        "{ids:?}"
    );
    // The watched camera comes back and its viewer gets frames again.
    let back = TestCamera::connect(&hub, CamOpts::new("held-0")).await;
    assert_eq!(decode(&next_binary(&mut watcher).await), (160, 120));
    drop(back);
    assert_still_serving(&hub, "cam-ok", &mut view).await;
    hub.stop().await;
}

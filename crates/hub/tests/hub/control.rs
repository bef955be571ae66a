//! Commands and events: REST settings and reboot, `/ws/ui` commands, acks, errors, order.

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
async fn settings_through_rest_change_frames_and_are_acked() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |v| v["width"] == 160).await;
    let mut view = ws(&hub.ws_url("/ws/view/cam-1")).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));

    let r = hub
        .post(
            "/api/cameras/cam-1/settings",
            r#"{"resolution":"QVGA","quality":20}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = &r.json()["settings"];
    assert_eq!(
        (s["resolution"].as_u64(), s["quality"].as_u64()),
        (Some(3), Some(20))
    );
    // Right after the ack, snapshot.jpg is never a frame from before the change.
    let snap = hub.get("/api/cameras/cam-1/snapshot.jpg").await;
    assert_eq!(decode(&snap.body), (320, 240));
    // The viewer's frames change size (a few older frames may still be in flight).
    let mut seen = false;
    for _ in 0..30 {
        if decode(&next_binary(&mut view).await) == (320, 240) {
            seen = true;
            break;
        }
    }
    assert!(seen, "viewer never saw 320x240 frames");
    let info = hub.get("/api/cameras/cam-1").await.json();
    assert_eq!(info["settings"]["resolution"], 3);

    // Validation errors, unknown and offline cameras.
    let r = hub
        .post("/api/cameras/cam-1/settings", r#"{"quality":70}"#)
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "quality 70 out of range 0..=63")
    );
    let r = hub
        .post("/api/cameras/cam-1/settings", r#"{"zoom":2}"#)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("unknown setting \"zoom\""));
    let r = hub.post("/api/cameras/cam-1/settings", "not json").await;
    assert_eq!(r.status, 400);
    let r = hub
        .post("/api/cameras/nope/settings", r#"{"quality":10}"#)
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (404, "unknown camera \"nope\"")
    );
    let r = hub.post("/api/cameras/cam-1/reboot", "").await;
    assert_eq!((r.status, r.json()["ok"].clone()), (202, json!(true)));
    hub.stop().await;
}

#[tokio::test]
async fn offline_and_silent_cameras_get_409_and_504() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.ack_timeout = Duration::from_millis(300);
    config.cameras = vec![CameraAuth {
        id: CameraId::new("cam-1").unwrap(),
        token: String::new(),
        record: None,
    }];
    let hub = TestHub::start(config).await;
    // Listed in the config, never connected: known but offline.
    let r = hub
        .post("/api/cameras/cam-1/settings", r#"{"quality":10}"#)
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (409, "camera cam-1 is offline")
    );
    let r = hub.get("/api/cameras/cam-1/snapshot.jpg").await;
    assert_eq!(r.status, 503);

    // A camera that says hello but never acks.
    let mut control = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, _) = hello_exchange(&mut control, control_hello(&CamOpts::new("cam-1"))).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    hub.wait_camera("cam-1", |v| v["online"] == true).await;
    let r = hub
        .post("/api/cameras/cam-1/settings", r#"{"quality":10}"#)
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(
        r.error(),
        "camera cam-1 did not acknowledge quality 10 within 300 ms"
    );
    hub.stop().await;
}

#[tokio::test]
async fn ui_socket_commands_events_and_errors() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let mut ui = ws(&hub.ws_url("/ws/ui")).await;
    let first: Value = serde_json::from_str(&next_text(&mut ui).await).unwrap();
    assert_eq!(first, json!({"type": "cameras", "cameras": []}));

    let cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    let online = wait_event(&mut ui, "online").await;
    assert_eq!(online["camera"]["id"], "cam-1");
    let telemetry = wait_event(&mut ui, "telemetry").await;
    assert_eq!(telemetry["camera"]["id"], "cam-1");

    let mut view = ws(&hub.ws_url("/ws/view/cam-1")).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));

    ui.send(Message::Text(
        r#"{"camera":"cam-1","cmd":"resolution","value":"HQVGA","id":7}"#.into(),
    ))
    .await
    .unwrap();
    let ack = wait_event(&mut ui, "ack").await;
    assert_eq!(ack["id"], 7);
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["settings"]["resolution"], 2);
    let mut seen = false;
    for _ in 0..30 {
        if decode(&next_binary(&mut view).await) == (240, 176) {
            seen = true;
            break;
        }
    }
    assert!(seen, "viewer never saw 240x176 frames");

    // Bad commands get error events naming the camera and id.
    ui.send(Message::Text(
        r#"{"camera":"cam-1","cmd":"quality","value":70,"id":8}"#.into(),
    ))
    .await
    .unwrap();
    let e = wait_event(&mut ui, "error").await;
    assert_eq!(
        e,
        json!({"type":"error","camera":"cam-1","id":8,"message":"quality 70 out of range 0..=63"})
    );
    ui.send(Message::Text(
        r#"{"camera":"ghost","cmd":"quality","value":7,"id":9}"#.into(),
    ))
    .await
    .unwrap();
    let e = wait_event(&mut ui, "error").await;
    assert_eq!(e["message"], "unknown camera \"ghost\"");
    ui.send(Message::Text(r#"{"cmd":"quality","value":7}"#.into()))
        .await
        .unwrap();
    let e = wait_event(&mut ui, "error").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no \"camera\" field")
    );
    ui.send(Message::Text("garbage".into())).await.unwrap();
    let e = wait_event(&mut ui, "error").await;
    assert!(
        e["message"].as_str().unwrap().contains("invalid JSON"),
        "{e}"
    );

    // A killed camera goes offline (events + API), and comes back.
    cam.kill();
    let off = wait_event(&mut ui, "offline").await;
    assert_eq!(off["camera"], "cam-1");
    assert_eq!(hub.get("/api/cameras/cam-1").await.json()["online"], false);
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    let on = wait_event(&mut ui, "online").await;
    assert_eq!(on["camera"]["id"], "cam-1");
    // The viewer socket survived the outage and gets frames again.
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));
    hub.stop().await;
}

#[tokio::test]
async fn camera_vanishing_while_a_command_waits_gets_a_prompt_409() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.ack_timeout = Duration::from_secs(8);
    let hub = TestHub::start(config).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;
    let mut c = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, _) = hello_exchange(&mut c, control_hello(&CamOpts::new("cam-gone"))).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    hub.wait_camera("cam-gone", |v| v["online"] == true).await;
    let addr = hub.http;
    let started = std::time::Instant::now();
    let pending = tokio::spawn(async move {
        http(
            addr,
            "POST",
            "/api/cameras/cam-gone/settings",
            Some(r#"{"quality":10}"#),
        )
        .await
    });
    // The camera receives the command, then its connection drops without an ack.
    let cmd = next_text(&mut c).await;
    assert!(cmd.contains("\"quality\""), "{cmd}");
    drop(c);
    let r = pending.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}, not promptly",
        started.elapsed()
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.error(),
        "camera cam-gone disconnected before acknowledging quality 10"
    );
    assert_eq!(
        hub.get("/api/cameras/cam-gone").await.json()["online"],
        false
    );
    assert_still_serving(&hub, "cam-ok", &mut view).await;
    hub.stop().await;
}

#[tokio::test]
async fn ui_socket_answers_garbage_and_bounds_command_floods() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    // Long enough that all 50 commands below are in before the first ack wait ends.
    config.ack_timeout = Duration::from_millis(3000);
    let hub = TestHub::start(config).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;
    let mut ui = ws(&hub.ws_url("/ws/ui")).await;
    wait_event(&mut ui, "cameras").await;

    // Deep nesting within the size limit: serde_json's recursion limit answers it.
    let deep = format!("{}{}", "[".repeat(7000), "]".repeat(7000));
    ui.send(Message::Text(deep.into())).await.unwrap();
    let e = wait_event(&mut ui, "error").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit exceeded"),
        "{e}"
    );
    // A camera field of 10 000 characters is not echoed back whole.
    let long = "c".repeat(10_000);
    ui.send(Message::Text(
        format!(r#"{{"camera":"{long}","cmd":"quality","value":1,"id":3}}"#).into(),
    ))
    .await
    .unwrap();
    let e = wait_event(&mut ui, "error").await;
    assert_eq!(e["id"], 3);
    assert!(e.to_string().len() < 300, "{e}");

    // A camera that takes commands and never acks; the browser floods it.
    let mut slow = ws(&hub.ws_url("/ws/camera")).await;
    let (msg, _) = hello_exchange(&mut slow, control_hello(&CamOpts::new("cam-slow"))).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }));
    hub.wait_camera("cam-slow", |v| v["online"] == true).await;
    for id in 0..50 {
        ui.send(Message::Text(
            format!(r#"{{"camera":"cam-slow","cmd":"quality","value":5,"id":{id}}}"#).into(),
        ))
        .await
        .unwrap();
    }
    let (mut busy, mut timed_out) = (0, 0);
    while busy + timed_out < 50 {
        let e = wait_event(&mut ui, "error").await;
        let m = e["message"].as_str().unwrap();
        if m.starts_with("too many commands waiting for acks") {
            busy += 1;
        } else if m == "camera cam-slow did not acknowledge quality 5 within 3000 ms" {
            timed_out += 1;
        } else {
            panic!("unexpected {e}");
        }
    }
    assert_eq!((busy, timed_out), (42, 8));
    // Nothing is left waiting: the next command gets its own answer.
    ui.send(Message::Text(
        r#"{"camera":"cam-ok","cmd":"brightness","value":2,"id":99}"#.into(),
    ))
    .await
    .unwrap();
    let ack = wait_event(&mut ui, "ack").await;
    assert_eq!(
        (ack["id"].as_u64(), ack["ok"].as_bool()),
        (Some(99), Some(true))
    );

    // Invalid UTF-8 in a text message and a message far over the limit end only that socket.
    let mut other = ws(&hub.ws_url("/ws/ui")).await;
    wait_event(&mut other, "cameras").await;
    let mut bad = RawWs::connect(hub.http, "/ws/ui").await;
    bad.send(0x1, b"{\"camera\":\"\xff\xfe\"}").await.unwrap();
    bad.read_until_closed().await;
    let huge = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let _ = ui.send(Message::Text(huge.into())).await;
    wait_closed(&mut ui).await;
    wait_event(&mut other, "telemetry").await;
    assert_still_serving(&hub, "cam-ok", &mut view).await;
    hub.stop().await;
}

#[tokio::test]
async fn ui_client_that_never_reads_is_dropped_and_others_keep_their_events() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.viewer_timeout = Duration::from_millis(500);
    let hub = TestHub::start(config).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;
    let mut good = ws(&hub.ws_url("/ws/ui")).await;
    wait_event(&mut good, "cameras").await;

    // A browser with a tiny receive buffer that sends bad commands and never reads the
    // error events they cause.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(hub.http).await.unwrap();
    let RawWs { tcp } = RawWs::handshake(tcp, "/ws/ui").await;
    let (mut rd, mut wr) = tcp.into_split();
    let bad = client_frame(0x1, br#"{"camera":"cam-ok","cmd":"zoom","value":1,"id":1}"#);
    let flood = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for _ in 0..200_000 {
            if wr.write_all(&bad).await.is_err() {
                return;
            }
        }
    });
    wait_metric(&hub, "espcam_ui_clients", |v| v == 2.0).await;
    // The good browser keeps getting events while the other one is stuck...
    for _ in 0..2 {
        wait_event(&mut good, "telemetry").await;
    }
    // ...and the stuck one is dropped.
    wait_metric(&hub, "espcam_ui_clients", |v| v == 1.0).await;
    flood.abort();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut sink),
    )
    .await;
    wait_event(&mut good, "telemetry").await;
    assert_still_serving(&hub, "cam-ok", &mut view).await;
    hub.stop().await;
}

/// Regression (issue 10.1): quality 1, 2, …, 8 sent in quick succession on one `/ws/ui`
/// socket reached a camera as `[1,8,2,3,5,4,6,7]` and it ended at 7. Commands from one
/// client must arrive in the order sent, and the last one must be in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_commands_reach_the_camera_in_the_order_sent() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |c| c["online"] == true).await;
    for round in 0..3 {
        let mut ui = ws(&hub.ws_url("/ws/ui")).await;
        next_text(&mut ui).await; // cameras
        cam.received.lock().unwrap().clear();
        let mut sent = Vec::new();
        for q in 1..=8 {
            let cmd = json!({"camera":"cam-1","cmd":"quality","value":q + round,"id":q});
            ui.send(Message::Text(cmd.to_string().into()))
                .await
                .unwrap();
            sent.push(format!("quality {}", q + round));
        }
        let mut acks = 0;
        while acks < 8 {
            let v: Value = serde_json::from_str(&next_text(&mut ui).await).unwrap();
            if v["type"] == "ack" {
                assert_eq!(v["ok"], true, "{v}");
                acks += 1;
            } else {
                assert_ne!(v["type"], "error", "{v}");
            }
        }
        assert_eq!(*cam.received.lock().unwrap(), sent, "round {round}");
        assert_eq!(cam.settings.lock().unwrap().quality.get(), 8 + round as u8);
        let info = hub.get("/api/cameras/cam-1").await.json();
        assert_eq!(info["settings"]["quality"], 8 + round, "{info}");
    }
    // Resolution, quality, resolution in a row ends at the last resolution.
    let mut ui = ws(&hub.ws_url("/ws/ui")).await;
    next_text(&mut ui).await;
    for (i, (cmd, value)) in [
        ("resolution", json!("QVGA")),
        ("quality", json!(12)),
        ("resolution", json!("VGA")),
    ]
    .into_iter()
    .enumerate()
    {
        let c = json!({"camera":"cam-1","cmd":cmd,"value":value,"id":i});
        ui.send(Message::Text(c.to_string().into())).await.unwrap();
    }
    let mut acks = 0;
    while acks < 3 {
        let v: Value = serde_json::from_str(&next_text(&mut ui).await).unwrap();
        acks += usize::from(v["type"] == "ack");
    }
    let snap = hub.get("/api/cameras/cam-1/snapshot.jpg").await;
    assert_eq!(decode(&snap.body), (640, 480));
    hub.stop().await;
}

//! End-to-end tests of the hub on loopback: real sockets, real JPEGs, real files.
// Helpers here are test code too: unwrap is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use espcam_hub::config::CameraAuth;
use espcam_hub::{Config, PullTarget};
use espcam_proto::{CameraId, HubMsg};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

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

async fn next_text_skipping_frames(ws: &mut Ws) -> String {
    loop {
        let t = next_text(ws).await;
        if !t.starts_with("{\"type\":\"frame\"") && !t.contains("\"type\":\"frame\"") {
            return t;
        }
    }
}

/// Reads `n` parts of a multipart MJPEG response.
async fn read_mjpeg(addr: std::net::SocketAddr, path: &str, n: usize) -> Vec<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut body_at = None;
    let mut buf = Vec::new();
    let mut parts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while parts.len() < n {
        let mut chunk = [0u8; 65536];
        let k = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(k > 0, "stream ended");
        raw.extend_from_slice(&chunk[..k]);
        if body_at.is_none() {
            let Some(end) = find(&raw, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(
                head.contains("content-type: multipart/x-mixed-replace; boundary=espcamframe"),
                "{head}"
            );
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
            body_at = Some(end + 4);
            raw.drain(..end + 4);
        }
        // Move complete HTTP chunks into `buf`.
        while let Some(nl) = find(&raw, b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&raw[..nl]).unwrap(), 16).unwrap();
            if raw.len() < nl + 2 + size + 2 {
                break;
            }
            buf.extend_from_slice(&raw[nl + 2..nl + 2 + size]);
            raw.drain(..nl + 2 + size + 2);
        }
        // Extract complete parts: headers then Content-Length bytes.
        parts.clear();
        let mut at = 0;
        while let Some(b) = find(&buf[at..], b"--espcamframe\r\n") {
            let start = at + b;
            let Some(hend) = find(&buf[start..], b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[start..start + hend]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let body = start + hend + 4;
            if buf.len() < body + len {
                break;
            }
            parts.push(buf[body..body + len].to_vec());
            at = body + len;
        }
    }
    parts.truncate(n);
    parts
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

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

async fn wait_event(ui: &mut Ws, kind: &str) -> Value {
    for _ in 0..200 {
        let v: Value = serde_json::from_str(&next_text(ui).await).unwrap();
        if v["type"] == kind {
            return v;
        }
    }
    panic!("no {kind} event");
}

#[tokio::test]
async fn tokens_ids_and_hellos_are_checked() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.cameras = vec![CameraAuth {
        id: CameraId::new("cam-1").unwrap(),
        token: "s3cret".into(),
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
async fn snapshots_survive_a_restart() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let mut ui = ws(&hub.ws_url("/ws/ui")).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |v| v["frames_in"].as_u64() > Some(0))
        .await;
    let r = hub.post("/api/cameras/cam-1/snapshots", "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let snap = r.json();
    // Every open dashboard hears about it, whoever took it.
    assert_eq!(wait_event(&mut ui, "snapshot").await["snapshot"], snap);
    assert_eq!(
        (snap["camera"].as_str(), snap["width"].as_u64()),
        (Some("cam-1"), Some(160))
    );
    let url = snap["url"].as_str().unwrap().to_string();
    let bytes = hub.get(&url).await.body;
    assert_eq!(decode(&bytes), (160, 120));
    assert_eq!(
        hub.post("/api/cameras/nope/snapshots", "").await.status,
        404
    );
    drop(cam);
    hub.stop().await;

    let hub = TestHub::start_in(dir.path()).await;
    let list = hub.get("/api/snapshots?camera=cam-1").await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], snap["id"]);
    assert_eq!(hub.get(&url).await.body, bytes);
    // Bad queries and ids never reach the filesystem.
    assert_eq!(hub.get("/api/snapshots?limit=0").await.status, 400);
    assert_eq!(hub.get("/api/snapshots?camera=../x").await.status, 400);
    assert_eq!(
        hub.get("/api/snapshots/..%2F..%2Fetc%2Fpasswd.jpg")
            .await
            .status,
        404
    );
    assert_eq!(hub.get("/api/snapshots/999.jpg").await.status, 404);
    let id = snap["id"].as_i64().unwrap();
    let mut ui = ws(&hub.ws_url("/ws/ui")).await;
    assert_eq!(
        hub.delete(&format!("/api/snapshots/{id}")).await.status,
        204
    );
    assert_eq!(wait_event(&mut ui, "snapshot_deleted").await["id"], id);
    assert_eq!(hub.get(&url).await.status, 404);
    assert_eq!(
        hub.delete(&format!("/api/snapshots/{id}")).await.status,
        404
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_stalled_viewer_does_not_slow_the_others() {
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.viewer_timeout = Duration::from_millis(500);
    let hub = TestHub::start(config).await;
    let mut opts = CamOpts::new("cam-1");
    opts.settings.resolution = espcam_proto::Resolution::Vga; // bigger frames fill buffers fast
    opts.settings.quality = espcam_proto::Quality::new(0).unwrap();
    let _cam = TestCamera::connect(&hub, opts).await;
    hub.wait_camera("cam-1", |v| v["frames_in"].as_u64() > Some(0))
        .await;

    // A viewer with a tiny receive buffer that never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(hub.http).await.unwrap();
    let (stalled, _) = tokio_tungstenite::client_async(hub.ws_url("/ws/view/cam-1"), tcp)
        .await
        .unwrap();
    // And an MJPEG client that never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut mjpeg = sock.connect(hub.http).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut mjpeg,
        b"GET /api/cameras/cam-1/stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut good = ws(&hub.ws_url("/ws/view/cam-1")).await;
    hub.wait_camera("cam-1", |v| v["viewers"] == 3).await;

    // The good viewer keeps receiving at the camera's rate while the other stalls...
    let start = tokio::time::Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(2) {
        next_binary(&mut good).await;
        n += 1;
    }
    assert!(n >= 30, "only {n} frames in 2 s next to a stalled viewer");
    // ...and the stalled ones are dropped after the viewer timeout.
    hub.wait_camera("cam-1", |v| v["viewers"] == 1).await;
    drop(stalled);
    drop(mjpeg);
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
async fn unknown_things_get_json_404s() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    assert_eq!(hub.get("/healthz").await.text(), "ok");
    for path in [
        "/api/cameras/nope",
        "/api/cameras/nope/snapshot.jpg",
        "/api/cameras/nope/stream.mjpg",
        "/api/nothing",
    ] {
        let r = hub.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.error().is_empty());
    }
    assert_eq!(hub.get("/api/cameras").await.json(), json!([]));
    assert_eq!(hub.get("/api/snapshots").await.json(), json!([]));
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
async fn viewer_socket_speaks_websocket_properly() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |v| v["frames_in"].as_u64() > Some(0))
        .await;
    // Plain HTTP on a WebSocket endpoint: 426 with a JSON error.
    let r = hub.get("/ws/view/cam-1").await;
    assert_eq!(r.status, 426);
    assert!(r.error().contains("WebSocket"));
    // Unknown camera: 404 before the upgrade.
    assert!(
        tokio_tungstenite::connect_async(hub.ws_url("/ws/view/nope"))
            .await
            .is_err()
    );
    // The client closes: the hub answers with a close frame.
    let mut v = ws(&hub.ws_url("/ws/view/cam-1")).await;
    next_binary(&mut v).await;
    v.close(None).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), v.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("{e}"),
        }
    }
    // WebSocket pings are answered; oversized client messages close the socket with 1009.
    let mut v = ws(&hub.ws_url("/ws/view/cam-1")).await;
    v.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    let mut ponged = false;
    for _ in 0..50 {
        if let Some(Ok(Message::Pong(p))) = v.next().await {
            assert_eq!(&p[..], b"hi");
            ponged = true;
            break;
        }
    }
    assert!(ponged);
    v.send(Message::Text("x".repeat(5000).into()))
        .await
        .unwrap();
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), v.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 1009);
    hub.wait_camera("cam-1", |v| v["viewers"] == 0).await;
    hub.stop().await;
}

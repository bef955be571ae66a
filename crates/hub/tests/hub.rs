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

// ---------------------------------------------------------------------------------------
// Hostile peers. Each test attacks one input, checks the documented error, then checks
// that the hub still serves another camera and its viewers.
// ---------------------------------------------------------------------------------------

/// A healthy camera with a viewer, to prove an attack hurt nobody else.
async fn bystander(hub: &TestHub, id: &str) -> (TestCamera, Ws) {
    let cam = TestCamera::connect(hub, CamOpts::new(id)).await;
    hub.wait_camera(id, |v| v["frames_in"].as_u64() > Some(0))
        .await;
    let mut view = ws(&hub.ws_url(&format!("/ws/view/{id}"))).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));
    (cam, view)
}

/// The bystander still gets fresh frames and its settings still round-trip.
async fn assert_still_serving(hub: &TestHub, id: &str, view: &mut Ws) {
    for _ in 0..3 {
        assert_eq!(decode(&next_binary(view).await), (160, 120));
    }
    let r = hub
        .post(
            &format!("/api/cameras/{id}/settings"),
            r#"{"brightness":1}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hub.get("/healthz").await.text(), "ok");
}

/// Waits until the server ends a tungstenite connection; returns its close frame if any.
async fn wait_closed(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the hub closes the connection within 10 s")
        {
            Some(Ok(Message::Close(f))) => {
                return f.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
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
async fn rest_rejects_huge_and_malformed_bodies_with_json_errors() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;
    let path = "/api/cameras/cam-ok/settings";
    // A body that stops arriving half-way is given up on (runs while the rest is checked).
    let addr = hub.http;
    let stalled = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = raw_request(
            addr,
            b"POST /api/cameras/cam-ok/settings HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"qua",
        )
        .await;
        (r, started.elapsed())
    });
    let deep = format!("{}{}", "[".repeat(8000), "]".repeat(8000));
    for (body, status, needle) in [
        ("not json".to_string(), 400, "body is not valid JSON"),
        (deep, 400, "recursion limit exceeded"),
        ("[1,2]".into(), 400, "body must be a JSON object"),
        (r#"{"quality":"high"}"#.into(), 400, "quality"),
        (r#"{"quality":1e999}"#.into(), 400, "body is not valid JSON"),
    ] {
        let r = hub.post(path, &body).await;
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.error().contains(needle), "{}", r.error());
    }
    // Invalid UTF-8 body.
    let r = raw_request(
        hub.http,
        b"POST /api/cameras/cam-ok/settings HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4\r\n\r\n\xff\xfe{}",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.error().contains("body is not valid JSON"),
        "{}",
        r.error()
    );
    // A 10 MB body: refused from its announced length, as JSON, without reading it all.
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"quality\":",
        10 * 1024 * 1024
    );
    let r = raw_request(hub.http, head.as_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("16384"), "{}", r.error());
    // The same with a chunked body that never announces its size.
    let mut chunked = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("1000\r\n{}\r\n", " ".repeat(4096)).as_bytes());
    }
    let r = raw_request(hub.http, &chunked).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(!r.error().is_empty());
    // Framework rejections are JSON too: wrong method, bad query, bad path encoding, a
    // WebSocket endpoint asked for over plain HTTP.
    let r = hub.delete("/api/cameras").await;
    assert_eq!(r.status, 405, "{}", r.text());
    assert!(!r.error().is_empty());
    let r = hub.get("/api/snapshots?limit=1&limit=2").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.error().is_empty());
    let r = hub.get("/api/cameras/%FF%FE").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.error().is_empty());
    let r = hub.get("/ws/ui").await;
    assert!(r.status == 400 || r.status == 426, "{}", r.text());
    assert!(!r.error().is_empty());
    let (r, took) = stalled.await.unwrap();
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.error(), "request body not received within 5 s");
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert_still_serving(&hub, "cam-ok", &mut view).await;
    hub.stop().await;
}

/// Sends raw request bytes (the write may fail half-way: the hub may answer and close
/// before reading everything) and parses the response.
async fn raw_request(addr: std::net::SocketAddr, req: &[u8]) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let req = req.to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&req).await;
        wr
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            // One response is all we want; the body is small JSON.
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head.lines().find_map(|l| {
                    l.strip_prefix("content-length: ")?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
                if len.is_some_and(|l| buf.len() >= end + 4 + l) {
                    return;
                }
            }
        }
    })
    .await;
    writer.abort();
    parse_response(&buf)
}

#[tokio::test]
async fn path_tricks_never_reach_the_filesystem() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let (_cam, mut view) = bystander(&hub, "cam-ok").await;
    let r = hub.post("/api/cameras/cam-ok/snapshots", "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let db = dir.path().join("index.sqlite3");
    let db_len = std::fs::metadata(&db).unwrap().len();
    for path in [
        "/api/cameras/..%2F..%2Fetc%2Fpasswd/snapshot.jpg",
        "/api/cameras/%2e%2e/stream.mjpg",
        "/api/cameras/cam-ok%00/snapshot.jpg",
        "/api/cameras/c%C3%A1m/snapshot.jpg",
        "/api/cameras/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/snapshot.jpg",
        "/api/snapshots/..%2Findex.sqlite3",
        "/api/snapshots/..%2F..%2Findex.sqlite3.jpg",
        "/api/snapshots/-1.jpg",
        "/api/snapshots/1.jpg%00",
        "/api/snapshots/0001.jpg.jpg",
        "/api/snapshots/99999999999999999999.jpg",
        "/ws/view/..%2Fcam-ok",
    ] {
        let r = hub.get(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(r.error().len() < 200, "{path}: {}", r.error());
    }
    for path in [
        "/api/snapshots/..%2Findex.sqlite3",
        "/api/snapshots/1%2F..%2F1",
    ] {
        let r = hub.delete(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    assert_eq!(std::fs::metadata(&db).unwrap().len(), db_len);
    let list = hub.get("/api/snapshots").await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
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

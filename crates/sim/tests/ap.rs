//! The standalone (seed-002) virtual camera answering real WebSocket clients on loopback:
//! frames decode as JPEGs of the expected size, commands are acknowledged and change the
//! next frames, the sixth client is refused, and reboots and faults behave.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use espcam_proto::standalone::TOO_MANY_CLIENTS;
use espcam_proto::{Resolution, Settings};
use espcam_sim::{ApCamera, ApCameraConfig, CameraHandle, Fault};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
mod support;

const T: Duration = Duration::from_secs(10);

async fn camera(resolution: Resolution) -> CameraHandle {
    let cfg = ApCameraConfig {
        settings: Settings {
            resolution,
            ..Settings::default()
        },
        reboot_delay: Duration::from_millis(50),
        ..ApCameraConfig::default()
    };
    ApCamera::bind("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

async fn connect(cam: &CameraHandle) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(cam.url().unwrap())
        .await
        .unwrap();
    ws
}

/// Next text message that is JSON with `"type" == ty` (or the literal text `ty`).
async fn next_text(ws: &mut Ws, ty: &str) -> Value {
    timeout(T, async {
        loop {
            match ws.next().await.expect("open").expect("ok") {
                Message::Text(t) => {
                    if t.as_str() == ty {
                        return Value::String(t.to_string());
                    }
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == ty {
                        return v;
                    }
                }
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {ty} within {T:?}"))
}

/// Next binary message, decoded as a JPEG: (width, height, bytes).
async fn next_jpeg(ws: &mut Ws) -> (usize, usize, Vec<u8>) {
    let bytes = next_binary(ws).await;
    let mut d = jpeg_decoder::Decoder::new(&bytes[..]);
    d.decode().expect("binary message is a valid JPEG");
    let info = d.info().unwrap();
    (usize::from(info.width), usize::from(info.height), bytes)
}

async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    timeout(T, async {
        loop {
            match ws.next().await.expect("open").expect("ok") {
                Message::Binary(b) => return b.to_vec(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a frame within 10 s")
}

#[tokio::test]
async fn seed_002_session_frames_ping_stats_commands() {
    let cam = camera(Resolution::Qvga).await;
    let mut ws = connect(&cam).await;
    let welcome = next_text(&mut ws, "welcome").await;
    assert!(
        welcome["message"].as_str().unwrap().contains("cam-ap"),
        "{welcome}"
    );
    for _ in 0..5 {
        let (w, h, bytes) = next_jpeg(&mut ws).await;
        assert_eq!((w, h), (320, 240));
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "bare JPEG, no header");
    }
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_text(&mut ws, "pong").await, "pong");
    ws.send(Message::text("get_stats")).await.unwrap();
    let stats = next_text(&mut ws, "stats").await;
    assert_eq!(stats["clients"], 1);
    assert!(stats["frames"].as_u64().unwrap() >= 5, "{stats}");
    // Regression: the first stats of a fresh camera said 0.0 fps while it streamed.
    assert!(stats["fps"].as_f64().unwrap() >= 20.0, "{stats}");
    let hb = next_text(&mut ws, "heartbeat").await;
    assert_eq!(hb["clients"], 1);

    // Every command of the seed's table is acknowledged and changes the frames.
    ws.send(Message::text(
        r#"{"cmd":"resolution","value":"QQVGA","id":1}"#,
    ))
    .await
    .unwrap();
    let ack = next_text(&mut ws, "ack").await;
    assert_eq!(
        (ack["id"].clone(), ack["ok"].clone()),
        (1.into(), true.into()),
        "{ack}"
    );
    assert_eq!(ack["settings"]["resolution"], 0);
    // Frames already on their way may be the old size; the new size arrives next.
    let mut seen = None;
    for _ in 0..5 {
        let (w, h, _) = next_jpeg(&mut ws).await;
        if (w, h) == (160, 120) {
            seen = Some(());
            break;
        }
    }
    assert!(seen.is_some(), "frames switched to 160x120");

    let mut sizes = Vec::new();
    for (i, q) in [0, 63].into_iter().enumerate() {
        let cmd = format!(r#"{{"cmd":"quality","value":{q},"id":{}}}"#, 10 + i);
        ws.send(Message::text(cmd)).await.unwrap();
        let ack = next_text(&mut ws, "ack").await;
        assert_eq!(ack["settings"]["quality"], q);
        // Skip a frame that may predate the change.
        next_jpeg(&mut ws).await;
        sizes.push(next_jpeg(&mut ws).await.2.len());
    }
    assert!(
        sizes[0] > 2 * sizes[1],
        "quality changes the JPEG size: {sizes:?}"
    );

    for cmd in [
        r#"{"cmd":"brightness","value":2}"#,
        r#"{"cmd":"vflip","value":1}"#,
        r#"{"cmd":"hmirror","value":1}"#,
    ] {
        ws.send(Message::text(cmd)).await.unwrap();
        let ack = next_text(&mut ws, "ack").await;
        assert_eq!(ack["ok"], true, "{cmd}: {ack}");
    }
    let s = cam.status().settings;
    assert_eq!((s.brightness.get(), s.vflip, s.hmirror), (2, true, true));

    ws.send(Message::text(r#"{"cmd":"quality","value":99,"id":5}"#))
        .await
        .unwrap();
    let ack = next_text(&mut ws, "ack").await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["id"], 5);
    assert_eq!(ack["error"], "quality 99 out of range 0..=63");
    cam.stop().await;
}

#[tokio::test]
async fn sixth_client_is_refused_with_a_reason() {
    let cam = camera(Resolution::Qqvga).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut ws = connect(&cam).await;
        next_text(&mut ws, "welcome").await;
        clients.push(ws);
    }
    let mut sixth = connect(&cam).await;
    let close = support::next_close(&mut sixth).await;
    assert_eq!(u16::from(close.code), 1013);
    assert_eq!(close.reason.as_str(), TOO_MANY_CLIENTS);
    // The five keep streaming.
    for ws in &mut clients {
        next_jpeg(ws).await;
    }
    // One leaves: a new client gets in.
    drop(clients.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut ws = connect(&cam).await;
        if let Ok(Some(Ok(Message::Text(_)))) = timeout(Duration::from_secs(2), ws.next()).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    next_jpeg(again.as_mut().expect("a slot freed")).await;
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let cam = camera(Resolution::Qqvga).await;
    let url = format!("ws://{}/stream", cam.local_addr().unwrap());
    let err = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
}

#[tokio::test]
async fn reboot_acks_closes_and_comes_back_fresh() {
    let cam = camera(Resolution::Qqvga).await;
    let mut ws = connect(&cam).await;
    next_text(&mut ws, "welcome").await;
    ws.send(Message::text(r#"{"cmd":"quality","value":40}"#))
        .await
        .unwrap();
    next_text(&mut ws, "ack").await;
    ws.send(Message::text(r#"{"cmd":"reboot","id":77}"#))
        .await
        .unwrap();
    let ack = next_text(&mut ws, "ack").await;
    assert_eq!(
        (ack["id"].clone(), ack["ok"].clone()),
        (77.into(), true.into())
    );
    let close = support::next_close(&mut ws).await;
    assert_eq!(u16::from(close.code), 1012);
    let st = timeout(T, cam.wait_for(|s| s.boots == 2)).await.unwrap();
    assert_eq!(
        st.settings.quality.get(),
        12,
        "settings back to boot settings"
    );
    let mut ws = connect(&cam).await;
    next_text(&mut ws, "welcome").await;
    ws.send(Message::text("get_stats")).await.unwrap();
    let stats = next_text(&mut ws, "stats").await;
    assert!(
        stats["frames"].as_u64().unwrap() < 60,
        "counters restarted: {stats}"
    );
}

#[tokio::test]
async fn faults_truncated_frame_garbage_and_dropped_links() {
    let cam = camera(Resolution::Qqvga).await;
    let mut ws = connect(&cam).await;
    next_jpeg(&mut ws).await;
    cam.inject(Fault::TruncateNextFrame);
    let mut truncated = false;
    for _ in 0..10 {
        let b = next_binary(&mut ws).await;
        if espcam_proto::jpeg::scan(&b).is_err() {
            truncated = true;
            break;
        }
    }
    assert!(truncated, "one frame arrived cut short");
    next_jpeg(&mut ws).await;

    cam.inject(Fault::Garbage);
    let mut garbage = false;
    for _ in 0..10 {
        let b = next_binary(&mut ws).await;
        if !b.starts_with(&[0xFF, 0xD8]) {
            garbage = true;
            break;
        }
    }
    assert!(garbage);

    cam.inject(Fault::DropLinks);
    let end = timeout(T, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return "dropped",
                Some(Ok(Message::Close(_))) => return "closed",
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end, "dropped", "no close frame when the link drops");
    let mut ws = connect(&cam).await;
    next_jpeg(&mut ws).await;
}

#[tokio::test]
async fn a_client_close_is_answered_before_the_connection_ends() {
    // RFC 6455 §5.5.1: an endpoint that receives a Close frame must send one back. Without
    // it browsers report 1006 "abnormal closure" for every viewer that leaves.
    let cam = camera(Resolution::Qqvga).await;
    let mut ws = connect(&cam).await;
    next_jpeg(&mut ws).await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let reply = timeout(T, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(c))) => return Ok(c),
                // Frames already on their way before the camera read the close.
                Some(Ok(_)) => {}
                other => return Err(format!("{other:?}")),
            }
        }
    })
    .await
    .expect("an answer within 10 s");
    let reply = reply.unwrap_or_else(|end| panic!("connection ended without a close: {end}"));
    assert_eq!(
        reply.map(|c| u16::from(c.code)),
        Some(1000),
        "echoes the code"
    );
    // Then the connection ends cleanly and the slot is free again.
    assert!(matches!(
        timeout(T, ws.next()).await.unwrap(),
        None | Some(Err(_))
    ));
    timeout(T, cam.wait_for(|s| s.clients == 0)).await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_reads_costs_the_others_nothing() {
    // Issue 14: one stuck viewer must not slow the other four. The stuck one connects with
    // a tiny receive buffer and never reads; the four read for a bounded window and must
    // each get ≥ 95 % of the camera's frame rate.
    let cam = camera(Resolution::Qvga).await;
    let fps = ApCameraConfig::default().fps;
    let addr = cam.local_addr().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (stuck, _) = tokio_tungstenite::client_async(cam.url().unwrap(), tcp)
        .await
        .unwrap();
    // The four read all the time; each frame's arrival time is recorded.
    let mut fast = Vec::new();
    for _ in 0..4 {
        let mut ws = connect(&cam).await;
        next_jpeg(&mut ws).await;
        fast.push(tokio::spawn(async move {
            let mut arrivals = Vec::new();
            while let Ok(Some(Ok(m))) = timeout(Duration::from_secs(10), ws.next()).await {
                if m.is_binary() {
                    arrivals.push(tokio::time::Instant::now());
                }
                if arrivals.len() > 1000 {
                    break;
                }
            }
            arrivals
        }));
    }
    timeout(T, cam.wait_for(|s| s.clients == 5)).await.unwrap();
    // Let the stuck client's buffers fill first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Duration::from_secs(5);
    let before = cam.status();
    let started = tokio::time::Instant::now();
    tokio::time::sleep(window).await;
    let status = cam.status();
    cam.stop().await;
    let mut counts = Vec::new();
    for reader in fast {
        let arrivals = reader.await.unwrap();
        let in_window = arrivals
            .iter()
            .filter(|t| **t >= started && **t < started + window)
            .count();
        counts.push(in_window);
    }
    let expected = f64::from(fps) * window.as_secs_f64();
    println!(
        "{window:?} at {fps} fps: fast clients got {counts:?} of {expected:.0} frames; \
         the camera sent {} and dropped {} meanwhile",
        status.frames_sent - before.frames_sent,
        status.frames_dropped - before.frames_dropped
    );
    assert_eq!(status.clients, 5, "the stuck client was still connected");
    for n in &counts {
        assert!(
            *n as f64 >= 0.95 * expected,
            "a fast client got {n} of {expected:.0} frames: {counts:?}"
        );
    }
    drop(stuck);
}

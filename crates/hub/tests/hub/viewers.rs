//! Viewer outputs: `/ws/view`, MJPEG, `snapshot.jpg`; slow and stalled viewers.

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
        b"GET /api/cameras/cam-1/stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
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

/// Regression (issue 10.4): a slow MJPEG viewer that received 51 of ~180 frames left
/// `espcam_frames_skipped_total` at 0; it must count what it skipped, as WebSocket
/// viewers do. And every part carries the frame's times in documented headers (10.8).
#[tokio::test]
async fn slow_mjpeg_viewers_count_skipped_frames_and_parts_carry_times() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let mut opts = CamOpts::new("cam-1");
    opts.settings.resolution = espcam_proto::Resolution::Vga;
    opts.settings.quality = espcam_proto::Quality::new(4).unwrap();
    let _cam = TestCamera::connect(&hub, opts).await;
    hub.wait_camera("cam-1", |c| c["width"] == 640).await;
    let skipped = r#"espcam_frames_skipped_total{camera="cam-1"}"#;
    assert_eq!(metric(&hub, skipped).await, Some(0.0));

    let mut s = tokio::net::TcpStream::connect(hub.http).await.unwrap();
    s.set_nodelay(true).unwrap();
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
    s.write_all(b"GET /api/cameras/cam-1/stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // Read the first bytes, then stop reading while frames keep coming.
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Drain for a while: hyper takes the next part, which skips to the newest frame.
    let mut head = Vec::new();
    head.extend_from_slice(&buf[..n]);
    let end = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < end {
        if let Ok(Ok(k)) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
            && head.len() < 1 << 20
        {
            head.extend_from_slice(&buf[..k]);
        }
    }
    let v = wait_metric(&hub, skipped, |v| v > 0.0).await;
    assert!(
        v >= 10.0,
        "a viewer stalled for 2 s at 30 fps skipped only {v} frames"
    );
    let text = String::from_utf8_lossy(&head);
    assert!(
        text.contains("X-Espcam-Seq: "),
        "{}",
        &text[..text.len().min(600)]
    );
    assert!(text.contains("X-Espcam-Received-Us: "));
    assert!(text.contains("X-Espcam-Captured-Us: "));
    hub.stop().await;
}

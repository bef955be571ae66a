//! Helpers shared by the hub's end-to-end tests (beside `tests/common`, which the browser
//! tests share too).

#![allow(dead_code, unused_imports)]
use std::time::Duration;

use crate::common::*;
use espcam_hub::config::CameraAuth;
use espcam_hub::{Config, PullTarget};
use espcam_proto::{CameraId, HubMsg};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub async fn next_text_skipping_frames(ws: &mut Ws) -> String {
    loop {
        let t = next_text(ws).await;
        if !t.starts_with("{\"type\":\"frame\"") && !t.contains("\"type\":\"frame\"") {
            return t;
        }
    }
}

/// Reads `n` parts of a multipart MJPEG response.
pub async fn read_mjpeg(addr: std::net::SocketAddr, path: &str, n: usize) -> Vec<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
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

pub fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

pub async fn wait_event(ui: &mut Ws, kind: &str) -> Value {
    for _ in 0..200 {
        let v: Value = serde_json::from_str(&next_text(ui).await).unwrap();
        if v["type"] == kind {
            return v;
        }
    }
    panic!("no {kind} event");
}

// ---------------------------------------------------------------------------------------
// Hostile peers. Each test attacks one input, checks the documented error, then checks
// that the hub still serves another camera and its viewers.
// ---------------------------------------------------------------------------------------

/// A healthy camera with a viewer, to prove an attack hurt nobody else.
pub async fn bystander(hub: &TestHub, id: &str) -> (TestCamera, Ws) {
    let cam = TestCamera::connect(hub, CamOpts::new(id)).await;
    hub.wait_camera(id, |v| v["frames_in"].as_u64() > Some(0))
        .await;
    let mut view = ws(&hub.ws_url(&format!("/ws/view/{id}"))).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));
    (cam, view)
}

/// The bystander still gets fresh frames and its settings still round-trip.
pub async fn assert_still_serving(hub: &TestHub, id: &str, view: &mut Ws) {
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
pub async fn wait_closed(ws: &mut Ws) -> Option<(u16, String)> {
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

/// Sends raw request bytes (the write may fail half-way: the hub may answer and close
/// before reading everything) and parses the response.
pub async fn raw_request(addr: std::net::SocketAddr, req: &[u8]) -> Resp {
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

//! The REST API around the cameras: snapshots, errors, limits, paths.

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
            b"POST /api/cameras/cam-ok/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"qua",
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
        b"POST /api/cameras/cam-ok/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n\xff\xfe{}",
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
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"quality\":",
        10 * 1024 * 1024
    );
    let r = raw_request(hub.http, head.as_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("16384"), "{}", r.error());
    // The same with a chunked body that never announces its size.
    let mut chunked = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
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

/// Regression (issue 10.7): empty `camera=`/`limit=` answered 200 though a bad value is a
/// 400; `limit=abc` was "out of range"; `DELETE /api/snapshots/1.jpg` deleted and
/// `GET /api/snapshots/01.jpg` served. One canonical form for each.
#[tokio::test]
async fn snapshot_api_accepts_only_valid_and_canonical_forms() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |c| c["width"].is_u64()).await;
    let snap = hub.post("/api/cameras/cam-1/snapshots", "").await;
    assert_eq!(snap.status, 201, "{}", snap.text());
    let id = snap.json()["id"].as_i64().unwrap();
    assert_eq!(snap.json()["url"], format!("/api/snapshots/{id}.jpg"));
    for (q, status, needle) in [
        ("?camera=", 400, "camera \"\" is invalid"),
        ("?limit=", 400, "not a number"),
        ("?limit=abc", 400, "limit \"abc\" is not a number"),
        ("?limit=0", 400, "limit 0 out of range 1..=500"),
        ("?limit=501", 400, "out of range"),
        ("?before=", 400, "before"),
        ("?camera=cam-1&limit=5", 200, ""),
    ] {
        let r = hub.get(&format!("/api/snapshots{q}")).await;
        assert_eq!(r.status, status, "{q}: {}", r.text());
        if status == 400 {
            assert!(r.error().contains(needle), "{q}: {}", r.error());
        }
    }
    assert_eq!(
        hub.get(&format!("/api/snapshots/0{id}.jpg")).await.status,
        404
    );
    assert_eq!(hub.get(&format!("/api/snapshots/{id}")).await.status, 404);
    assert_eq!(
        hub.delete(&format!("/api/snapshots/{id}.jpg")).await.status,
        404
    );
    assert_eq!(
        hub.delete(&format!("/api/snapshots/0{id}")).await.status,
        404
    );
    assert_eq!(
        hub.get(&format!("/api/snapshots/{id}.jpg")).await.status,
        200
    );
    assert_eq!(
        hub.delete(&format!("/api/snapshots/{id}")).await.status,
        204
    );
    hub.stop().await;
}

/// Issue 10.9: a camera that left for good can be removed (its snapshots stay unless
/// asked); one that is connected or configured cannot.
#[tokio::test]
async fn a_camera_that_left_can_be_removed() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |c| c["width"].is_u64()).await;
    assert_eq!(
        hub.post("/api/cameras/cam-1/snapshots", "").await.status,
        201
    );
    let r = hub.delete("/api/cameras/cam-1").await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.error().contains("online"), "{}", r.error());
    cam.kill();
    hub.wait_camera("cam-1", |c| c["online"] == false).await;
    // The stream link may take a moment longer to notice.
    let mut status = 0;
    for _ in 0..100 {
        status = hub.delete("/api/cameras/cam-1").await.status;
        if status != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(hub.get("/api/cameras/cam-1").await.status, 404);
    let list = hub.get("/api/snapshots?camera=cam-1").await.json();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "snapshots are kept: {list}"
    );
    assert_eq!(hub.delete("/api/cameras/cam-1").await.status, 404);
    hub.stop().await;
}

/// Issue 10.5: the hub keeps each camera's telemetry history for the dashboard's charts.
#[tokio::test]
async fn telemetry_history_is_kept_per_camera() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    let mut h = Value::Null;
    for _ in 0..60 {
        h = hub.get("/api/cameras/cam-1/telemetry").await.json();
        if h["fine"]
            .as_array()
            .is_some_and(|a| a.len() >= 2 && a[1]["fps"].as_f64() > Some(5.0))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fine = h["fine"].as_array().unwrap();
    assert!(fine.len() >= 2, "{h}");
    assert!(fine[1]["fps"].as_f64().unwrap() > 5.0, "{h}");
    assert_eq!(fine[1]["heap_free"], 100_000);
    assert!(fine[1]["t_ms"].as_u64() > fine[0]["t_ms"].as_u64());
    assert_eq!(h["interval_ms"]["fine"], 1000);
    assert_eq!(hub.get("/api/cameras/nope/telemetry").await.status, 404);
    hub.stop().await;
}

/// Regression (issue 15, limits on every door): idle, slow-header and idle keep-alive
/// connections were never closed, and 1,100 of them made the hub unreachable. Now a
/// request head must arrive within the header deadline, and past the per-address budget new
/// connections are closed at once while the hub stays reachable.
#[tokio::test]
async fn idle_and_excess_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tmp();
    let mut config = Config::for_tests(dir.path());
    config.header_timeout = Duration::from_millis(400);
    config.max_connections_per_address = 40;
    let hub = TestHub::start(config).await;
    let started = tokio::time::Instant::now();
    let mut idle = Vec::new();
    for i in 0..40 {
        let mut s = tokio::net::TcpStream::connect(hub.http).await.unwrap();
        if i % 2 == 0 {
            // Half of them start a request head and never finish it.
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
        }
        idle.push(s);
    }
    // The budget is full: the next connection is closed at once.
    let mut extra = tokio::net::TcpStream::connect(hub.http).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("an over-budget connection must be closed, not left waiting")
        .unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    // Every idle one is closed by the header deadline.
    for s in &mut idle {
        let r = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .expect("an idle connection must be closed by the header deadline");
        if let Ok(n) = r {
            // hyper may answer 408 before closing; then the next read is EOF.
            if n > 0 {
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(idle);
    // And the hub serves again.
    let mut ok = false;
    for _ in 0..50 {
        if hub.get("/healthz").await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok);
    hub.stop().await;
}

//! Firmware updates end to end on loopback: an image added to the hub (REST upload and the
//! library the CLI uses), a virtual camera (the real camera core in `espcam-sim`) updated
//! through the hub, rebooting and reporting the new version in `GET /api/cameras`; a wrong
//! hash that keeps the old version with a clear reason; an image for another board refused
//! before anything is sent; and image downloads refused without their per-update key.
// Test code: unwrap is an assertion.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Resp, TestHub, parse_response};
use espcam_hub::Config;
use espcam_hub::firmware::Firmware;
use espcam_proto::CameraId;
use espcam_sim::ota::image_header;
use espcam_sim::{CameraHandle, HubCamera, HubCameraConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NEW: &str = "espcam-sim 9.9.9";

fn image(board: &str, version: &str, len: usize) -> Vec<u8> {
    let mut v = image_header(board, version).into_bytes();
    v.extend((0..len).map(|i| (i * 7 % 253) as u8));
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `POST path` with a binary body.
async fn post_bytes(hub: &TestHub, path: &str, body: &[u8]) -> Resp {
    let mut s = tokio::net::TcpStream::connect(hub.http).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        hub.http,
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    parse_response(&buf)
}

fn camera(hub: &TestHub, id: &str) -> CameraHandle {
    let mut c = HubCameraConfig::new(
        "127.0.0.1",
        hub.http.port(),
        hub.stream.port(),
        CameraId::new(id).unwrap(),
        "",
    );
    c.fps = 5;
    c.reboot_delay = Duration::from_millis(100);
    HubCamera::spawn(c)
}

/// Polls `GET /api/cameras` until camera `id` satisfies `pred` (at most `secs`).
async fn wait_listed(hub: &TestHub, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < end {
        let list = hub.get("/api/cameras").await.json();
        if let Some(c) = list
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
        {
            if pred(c) {
                return c.clone();
            }
            last = c.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("camera {id} never reached the expected state; last seen: {last}");
}

#[tokio::test]
async fn update_through_the_hub_reboots_into_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(Config::for_tests(dir.path())).await;
    let img = image("virtual", NEW, 200_000);

    // Upload: the version and board are read from the image's first line.
    let r = post_bytes(&hub, "/api/firmware", &img).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let added = r.json();
    assert_eq!(added["version"], NEW);
    assert_eq!(added["board"], "virtual");
    assert_eq!(added["size"], img.len());
    assert_eq!(added["sha256"], hex(&Sha256::digest(&img)));
    let id = added["id"].as_str().unwrap().to_string();
    let listed = hub.get("/api/firmware").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Stored as uploaded.
    let stored = dir.path().join(format!(
        "firmware/{}.bin",
        added["sha256"].as_str().unwrap()
    ));
    assert_eq!(std::fs::read(&stored).unwrap(), img);

    // Nobody downloads it without the update's key.
    for path in [
        format!("/api/firmware/{id}/image"),
        format!("/api/firmware/{id}/image?key=00112233445566778899aabbccddeeff"),
    ] {
        let r = hub.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }

    let cam = camera(&hub, "cam-ota");
    let before = wait_listed(&hub, "cam-ota", 20, |c| c["online"] == true).await;
    assert_eq!(before["firmware"], espcam_sim::FIRMWARE);
    assert_eq!(before["board"], "virtual");

    let r = hub
        .post(
            "/api/cameras/cam-ota/update",
            &format!(r#"{{"firmware":"{id}"}}"#),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["ota"]["phase"], "offered");
    assert_eq!(r.json()["ota"]["total"], img.len());

    let done = wait_listed(&hub, "cam-ota", 60, |c| c["ota"]["phase"] == "done").await;
    assert_eq!(done["firmware"], NEW, "{done}");
    assert_eq!(done["online"], true);
    assert_eq!(done["ota"]["version"], NEW);
    assert_eq!(done["ota"]["from"], espcam_sim::FIRMWARE);
    assert_eq!(
        done["ota"]["bytes"],
        img.len(),
        "the last progress report was the whole image"
    );
    assert!(done["ota"]["error"].is_null());
    let status = cam.status();
    assert_eq!(status.boots, 2, "exactly one reboot");
    assert_eq!(status.firmware, NEW);

    // Rolling the same image out again skips the camera that runs it.
    let r = hub.post(&format!("/api/firmware/{id}/rollout"), "").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    assert_eq!(v["started"].as_array().unwrap().len(), 0);
    assert_eq!(v["skipped"][0]["reason"], format!("already runs {NEW}"));
    cam.stop().await;
    hub.stop().await;
}

#[tokio::test]
async fn wrong_hash_keeps_the_old_version_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(Config::for_tests(dir.path())).await;
    // Added the way `espcam firmware add` adds it (the library beside the running hub).
    let src = dir.path().join("new.img");
    let img = image("virtual", NEW, 100_000);
    std::fs::write(&src, &img).unwrap();
    let lib = Firmware::open(dir.path()).unwrap();
    let added = lib.add_file(&src, None, None).unwrap();
    // The stored image rots on disk after it was indexed: what the camera downloads no
    // longer matches the SHA-256 in the offer.
    let mut bad = img.clone();
    bad[50_000] ^= 0x55;
    std::fs::write(lib.image_path(&added), &bad).unwrap();

    let cam = camera(&hub, "cam-bad");
    wait_listed(&hub, "cam-bad", 20, |c| c["online"] == true).await;
    // Listed in the hub without a restart.
    let listed = hub.get("/api/firmware").await.json();
    assert_eq!(listed[0]["id"], added.id.as_str());

    let r = hub
        .post(
            "/api/cameras/cam-bad/update",
            &format!(r#"{{"firmware":"{}"}}"#, added.id),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let failed = wait_listed(&hub, "cam-bad", 60, |c| c["ota"]["phase"] == "failed").await;
    let expected = format!(
        "sha256 mismatch: expected {}, got {}",
        added.sha256,
        hex(&Sha256::digest(&bad))
    );
    assert_eq!(failed["ota"]["error"], expected.as_str());
    assert_eq!(failed["firmware"], espcam_sim::FIRMWARE, "old version kept");
    assert_eq!(failed["online"], true);
    // Still streaming, never rebooted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = cam.status();
    assert_eq!(status.boots, 1);
    assert_eq!(status.firmware, espcam_sim::FIRMWARE);
    let frames = status.frames_sent;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(cam.status().frames_sent > frames, "frames keep flowing");
    cam.stop().await;
    hub.stop().await;
}

#[tokio::test]
async fn an_image_for_another_board_is_refused_by_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(Config::for_tests(dir.path())).await;
    let img = image("esp32s3-eye", "espcam-fw 0.2.0", 1000);
    let r = post_bytes(&hub, "/api/firmware", &img).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let cam = camera(&hub, "cam-v");
    wait_listed(&hub, "cam-v", 20, |c| c["online"] == true).await;
    let r = hub
        .post(
            "/api/cameras/cam-v/update",
            &format!(r#"{{"firmware":"{id}"}}"#),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        format!("firmware {id} is for board esp32s3-eye, camera cam-v is virtual")
    );
    let r = hub
        .post("/api/cameras/cam-v/update", r#"{"firmware":"nope"}"#)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "unknown firmware \"nope\"");
    let c = wait_listed(&hub, "cam-v", 5, |_| true).await;
    assert!(c["ota"].is_null(), "nothing was offered: {c}");
    cam.stop().await;
    hub.stop().await;
}

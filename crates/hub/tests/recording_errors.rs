//! Recording when the disk refuses: an unwritable recordings directory is a clear error in
//! the log, in `GET /api/cameras/{id}/recordings` (`state.error`) and in `/metrics`; live
//! view keeps working meanwhile; and recording resumes by itself once the problem is gone.
//!
//! The directory is made unwritable by putting a plain file where the camera's directory
//! goes (`<data>/recordings/<camera>`): unlike `chmod 000`, that also stops root, which CI
//! containers often are.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/recording.rs"]
mod recording;

use common::*;
use recording::{Log, live_frames, metric, until};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_directory_stops_recording_clearly_and_recording_resumes_by_itself() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |c| c["width"] == 160).await;

    // A file where the camera's directory goes.
    let blocker = dir.path().join("recordings").join("cam-1");
    assert!(!blocker.exists(), "nothing recorded yet");
    std::fs::write(&blocker, b"not a directory").unwrap();

    let on = hub
        .post("/api/cameras/cam-1/record", r#"{"mode":"continuous"}"#)
        .await;
    assert_eq!(on.status, 200, "{}", on.text());

    // The error, in the API: recording stopped, with a message naming the directory.
    let state: Value = until("state.error", 15, || async {
        let v = hub.get("/api/cameras/cam-1/recordings").await.json();
        v["state"]["error"].is_string().then(|| v["state"].clone())
    })
    .await;
    let error = state["error"].as_str().unwrap();
    println!("state.error: {error}");
    assert!(
        error.contains("create directory") && error.contains(&*blocker.to_string_lossy()),
        "{state}"
    );
    assert_eq!(state["mode"], "continuous", "{state}");
    // … and it stays until a frame is really written again (an empty append on the stop
    // that follows a failed batch once cleared it within 100 ms).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let later = hub.get("/api/cameras/cam-1/recordings").await.json();
    assert!(later["state"]["error"].is_string(), "{later}");
    // … in the log …
    let logged = log.text();
    assert!(
        logged.contains("camera cam-1: recording stopped:")
            && logged.contains("live view continues"),
        "{logged}"
    );
    // … and in the metrics.
    let m = hub.get("/metrics").await.text();
    assert_eq!(
        metric(&m, "espcam_record_failing{camera=\"cam-1\"}"),
        Some(1),
        "{m}"
    );
    assert!(
        metric(&m, "espcam_record_write_errors_total").unwrap() >= 1,
        "{m}"
    );
    assert!(
        metric(&m, "espcam_record_disk_free_bytes").unwrap() > 0,
        "{m}"
    );

    // Live view is unaffected.
    live_frames(&hub, 10).await;
    // Nothing was recorded meanwhile.
    let list = hub.get("/api/cameras/cam-1/recordings").await.json();
    assert!(list["spans"].as_array().unwrap().is_empty(), "{list}");

    // The problem goes away: recording resumes by itself (retry every 5 s), the error clears.
    std::fs::remove_file(&blocker).unwrap();
    let list: Value = until("recording to resume", 20, || async {
        let v = hub.get("/api/cameras/cam-1/recordings").await.json();
        let resumed = v["state"]["error"].is_null()
            && v["state"]["recording"] == true
            && v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["frames"].as_u64() > Some(5)));
        resumed.then_some(v)
    })
    .await;
    assert!(blocker.is_dir(), "{list}");
    let on_disk: u64 = std::fs::read_dir(&blocker)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk > 1000, "{on_disk} bytes in {}", blocker.display());
    assert!(
        log.text().contains("camera cam-1: recording resumed"),
        "{}",
        log.text()
    );
    let m = hub.get("/metrics").await.text();
    assert_eq!(
        metric(&m, "espcam_record_failing{camera=\"cam-1\"}"),
        Some(0),
        "{m}"
    );
    assert!(
        metric(&m, "espcam_record_frames_total{camera=\"cam-1\"}").unwrap() > 5,
        "{m}"
    );
    live_frames(&hub, 3).await;
    hub.stop().await;
}

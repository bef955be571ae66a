//! Recording when the kernel refuses to grow a file, end to end with a real hub: this test
//! process lowers its own `RLIMIT_FSIZE` (allowed without root) and catches `SIGXFSZ`, so
//! a write past the limit fails with the kernel's `EFBIG` — the closest thing to a full
//! filesystem an unprivileged test can make. (`ENOSPC` itself, with retention making room,
//! is tested through the library's IO seam in `crates/record/tests/full_disk.rs`.)
//!
//! What must hold: one clear error in the log (not one per attempt), in the API and in the
//! metrics; live view and ingest carry on; the frames made durable before the failure stay
//! listed and export whole meanwhile; and once the limit is lifted the interrupted segment is
//! closed and recording resumes by itself, with every durable frame still there.
//!
//! Its own test binary: the limit applies to the whole process.

#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/recording.rs"]
mod recording;

use std::time::{Duration, Instant};

use common::*;
use recording::{Log, live_frames, metric, until};
use rustix::process::{Resource, Rlimit, Signal, getrlimit, setrlimit};
use serde_json::Value;

fn span_frames(v: &Value) -> u64 {
    v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["frames"].as_u64().unwrap())
        .sum()
}

/// Frames ffprobe counts in an MKV, `None` (skipped) without ffprobe.
fn ffprobe_frames(file: &std::path::Path) -> Option<u64> {
    let out = match std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var_os("ESPCAM_REQUIRE_TOOLS").is_none(),
                "ffprobe is required (ESPCAM_REQUIRE_TOOLS is set): {e}"
            );
            eprintln!("skipping the ffprobe check: ffprobe not found ({e}); apt install ffmpeg");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap())
}

async fn export(hub: &TestHub, v: &Value) -> Vec<u8> {
    let spans = v["spans"].as_array().unwrap();
    let from = spans[0]["start_us"].as_u64().unwrap() / 1000;
    let to = spans.last().unwrap()["end_us"].as_u64().unwrap() / 1000 + 1;
    let r = hub
        .get(&format!(
            "/api/cameras/cam-1/export?from={from}&to={to}&format=mkv"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_stops_recording_clearly_keeps_durable_frames_and_it_resumes() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    // Caught, SIGXFSZ no longer kills the process: the write fails with EFBIG instead.
    let _xfsz = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
        Signal::XFSZ.as_raw(),
    ))
    .unwrap();
    let unlimited = getrlimit(Resource::Fsize);

    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |c| c["width"] == 160).await;
    let on = hub
        .post("/api/cameras/cam-1/record", r#"{"mode":"continuous"}"#)
        .await;
    assert_eq!(on.status, 200, "{}", on.text());
    // Some seconds recorded and durable.
    until("durable frames", 60, || async {
        let v = hub.get("/api/cameras/cam-1/recordings").await.json();
        (span_frames(&v) >= 30).then_some(())
    })
    .await;

    // No file may grow beyond 256 KiB from now on: the open segment hits it within seconds.
    let seg_dir = dir.path().join("recordings").join("cam-1");
    let biggest = || {
        std::fs::read_dir(&seg_dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .max()
            .unwrap_or(0)
    };
    let limit = (biggest() + 256 * 1024).max(256 * 1024);
    setrlimit(
        Resource::Fsize,
        Rlimit {
            current: Some(limit),
            maximum: unlimited.maximum,
        },
    )
    .unwrap();

    let state: Value = until("state.error", 60, || async {
        let v = hub.get("/api/cameras/cam-1/recordings").await.json();
        v["state"]["error"].is_string().then(|| v["state"].clone())
    })
    .await;
    let error = state["error"].as_str().unwrap().to_string();
    println!("state.error: {error}");
    assert!(error.contains("File too large"), "{state}");
    assert!(biggest() <= limit, "no file beyond the limit");
    let m = hub.get("/metrics").await.text();
    assert_eq!(
        metric(&m, "espcam_record_failing{camera=\"cam-1\"}"),
        Some(1),
        "{m}"
    );

    // Live view and ingest carry on while recording fails; the hub retries every 5 s and
    // the interrupted segment cannot be closed (its index would cross the limit too).
    let t_fail = Instant::now();
    live_frames(&hub, 30).await;
    let frames_in = |m: String| metric(&m, "espcam_frames_in_total{camera=\"cam-1\"}").unwrap();
    let frames_before = frames_in(hub.get("/metrics").await.text());
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(t_fail.elapsed())).await;
    live_frames(&hub, 10).await;
    let frames_after = frames_in(hub.get("/metrics").await.text());
    assert!(frames_after > frames_before + 100, "ingest goes on");
    let logged = log.text();
    assert_eq!(
        logged.matches("camera cam-1: recording stopped:").count(),
        1,
        "one log line for the failure and its retries: {logged}"
    );
    assert!(logged.contains("live view continues"), "{logged}");

    // What was durable before the failure is still listed and exports whole.
    let during = hub.get("/api/cameras/cam-1/recordings").await.json();
    let durable = span_frames(&during);
    assert!(durable >= 30, "{during}");
    let mkv_during = export(&hub, &during).await;

    // The limit goes: the interrupted segment is closed and recording resumes by itself.
    setrlimit(Resource::Fsize, unlimited).unwrap();
    let after: Value = until("recording to resume", 60, || async {
        let v = hub.get("/api/cameras/cam-1/recordings").await.json();
        let resumed = v["state"]["error"].is_null()
            && v["state"]["recording"] == true
            && span_frames(&v) > durable + 30;
        resumed.then_some(v)
    })
    .await;
    let logged = log.text();
    assert!(
        logged.contains("camera cam-1: recording resumed"),
        "{logged}"
    );
    let file = dir.path().join("during.mkv");
    std::fs::write(&file, &mkv_during).unwrap();
    if let Some(n) = ffprobe_frames(&file) {
        assert_eq!(
            n, durable,
            "the durable frames export whole during the failure"
        );
    }
    let mkv_after = export(&hub, &after).await;
    let file = dir.path().join("after.mkv");
    std::fs::write(&file, &mkv_after).unwrap();
    if let Some(n) = ffprobe_frames(&file) {
        assert!(n >= span_frames(&after), "{n} < {}", span_frames(&after));
    }
    let m = hub.get("/metrics").await.text();
    assert_eq!(
        metric(&m, "espcam_record_failing{camera=\"cam-1\"}"),
        Some(0),
        "{m}"
    );
    hub.stop().await;

    // Reopened, nothing needs repair: the interrupted segment was closed properly.
    let (rec, report) = espcam_record::Recordings::open(dir.path()).unwrap();
    assert_eq!(report.segments_recovered, 0, "{report:?}");
    let cam = espcam_proto::CameraId::new("cam-1").unwrap();
    let spans = rec.spans(&cam, 0, u64::MAX).unwrap();
    let total: u64 = spans.iter().map(|s| s.frames).sum();
    assert!(total >= span_frames(&after), "{total}");
}

//! `espcam-bench` in a tiny configuration: the whole pipeline (hub child process, cameras,
//! viewers, `/proc` readings, report, the baseline relay and the ratio table) runs and
//! delivers frames. No timing is asserted: speed belongs in `docs/BENCHMARKS.md`, not in a
//! test.
//!
//! The hub binary is `espcam` next to the benchmark's (`cargo test --workspace` builds both);
//! when it is absent these tests skip with a message, unless `ESPCAM_REQUIRE_TOOLS=1`.

// Any failure in these helpers is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hub binary built next to the benchmark, or `None` (with a message) when it is absent
/// and not required.
fn hub_exe() -> Option<PathBuf> {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_espcam-bench"));
    let hub = bench.with_file_name(format!("espcam{}", std::env::consts::EXE_SUFFIX));
    if hub.is_file() {
        return Some(hub);
    }
    assert!(
        std::env::var("ESPCAM_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "no hub binary at {} (ESPCAM_REQUIRE_TOOLS=1): build it with `cargo build -p espcam`",
        hub.display()
    );
    eprintln!(
        "skipped: no hub binary at {}; build it with `cargo build -p espcam`",
        hub.display()
    );
    None
}

/// Runs `espcam-bench --hub-exe <hub> <args> --json <file>` (killed after 120 s) and returns
/// the parsed report and the printed table.
fn bench(hub: &Path, name: &str, args: &[&str]) -> (serde_json::Value, String) {
    let json = std::env::temp_dir().join(format!(
        "espcam-bench-smoke-{}-{name}.json",
        std::process::id()
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_espcam-bench"))
        .arg("--hub-exe")
        .arg(hub)
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("espcam-bench did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}\n{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(PathBuf::from(&json));
    (report, stdout)
}

#[test]
fn tiny_bench_delivers_frames_and_reports() {
    let Some(hub) = hub_exe() else { return };
    let (report, table) = bench(
        &hub,
        "tiny",
        &[
            "--cameras",
            "1",
            "--viewers",
            "2",
            "--fps",
            "30",
            "--frame-size",
            "4000",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
    );
    let r = &report.as_array().unwrap()[0];
    assert_eq!(r["spec"]["viewers"], 2);
    assert!(r["frames_sent"].as_u64().unwrap() > 0, "{r}");
    let delivered = r["frames_delivered"].as_u64().unwrap();
    assert!(delivered > 0, "{r}");
    // Every delivered frame carried a stamp and was timed.
    assert_eq!(r["latency"]["samples"].as_u64().unwrap(), delivered);
    assert!(r["latency"]["p99_us"].as_u64().unwrap() >= r["latency"]["p50_us"].as_u64().unwrap());
    assert!(r["rss_idle_kib"].as_u64().unwrap() > 0);
    assert_eq!(r["viewer_errors"], 0, "{r}");
    assert_eq!(r["hub_viewers_at_end"], 2, "{r}");
    assert!(
        table.contains("| custom | 1 × 2 | 30 | 4000 B |"),
        "{table}"
    );
}

#[test]
fn tiny_stalled_bench_keeps_serving_the_others() {
    let Some(hub) = hub_exe() else { return };
    let (report, table) = bench(
        &hub,
        "stalled",
        &[
            "--cameras",
            "1",
            "--viewers",
            "4",
            "--stalled-fraction",
            "0.5",
            "--frame-size",
            "4000",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
    );
    let r = &report.as_array().unwrap()[0];
    assert_eq!(r["spec"]["stalled"], 2);
    assert!(r["frames_delivered"].as_u64().unwrap() > 0, "{r}");
    assert!(!r["rss_series_kib"].as_array().unwrap().is_empty());
    assert!(table.contains("hub RSS each second"), "{table}");
    assert!(
        table.contains("viewers the hub served each second"),
        "{table}"
    );
}

#[test]
fn tiny_baseline_run_reports_both_and_the_ratio() {
    let Some(hub) = hub_exe() else { return };
    let (report, table) = bench(
        &hub,
        "baseline",
        &[
            "--baseline",
            "--viewers",
            "3",
            "--frame-size",
            "4000",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
    );
    let runs = report.as_array().unwrap();
    let targets: Vec<&str> = runs.iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["hub", "baseline"]);
    for r in runs {
        let delivered = r["frames_delivered"].as_u64().unwrap();
        assert!(delivered > 0, "{r}");
        assert_eq!(r["latency"]["samples"].as_u64().unwrap(), delivered, "{r}");
        assert_eq!(r["viewer_errors"], 0, "{r}");
    }
    // The baseline has no REST API to count viewers with.
    assert_eq!(runs[1]["hub_viewers_at_end"], serde_json::Value::Null);
    assert!(table.contains("hub ÷ baseline"), "{table}");
    assert!(table.contains("| custom | "), "{table}");
}

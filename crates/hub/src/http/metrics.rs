//! `GET /metrics`: Prometheus text exposition, written by hand (it is small and the format
//! is stable). The numbers live in the state layer (counters, [`Histogram`]).
//!
//! Relay latency is measured from the moment the hub received a frame to the moment the
//! write of that frame to a viewer's WebSocket completed (the hub's own contribution to
//! end-to-end latency; it does not need the camera's clock). Recording must stay a few
//! atomic adds: it runs once per delivered frame.
//!
//! Recording figures (`espcam_record_*`) come from the recorder's counters plus a look at the
//! segment index and the disk, gathered by the handler off the async runtime
//! ([`RecordingFigures`]); this module only formats them and must never touch the disk.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use espcam_record::{FSYNC_BUCKETS_US, Metrics, Usage};

use crate::state::Hub;
use crate::state::camera::CameraInfo;
use crate::state::histogram::Histogram;

/// Writes a histogram in the Prometheus text format, with bounds in seconds.
fn write_histogram(out: &mut String, h: &Histogram, name: &str, help: &str) {
    let s = h.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (bound_us, cumulative) in &s.buckets {
        let le = *bound_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
    let _ = writeln!(out, "{name}_sum {}", s.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", s.count);
}

/// One per-camera metric: name, type, help, and how to read it from the camera's info and
/// skipped-frame count.
type PerCamera = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CameraInfo, u64) -> u64,
);

/// What the recorder reports, read by the `/metrics` handler before rendering.
#[derive(Debug, Clone, Default)]
pub struct RecordingFigures {
    /// The recorder's counters since the hub started.
    pub metrics: Metrics,
    /// What is stored per camera (`None` when the index could not be read).
    pub usage: Option<Vec<Usage>>,
    /// Free bytes on the recordings' filesystem (`None` when it could not be measured).
    pub disk_free: Option<u64>,
    /// Per camera the hub knows: whether its recording is stopped by a write error (the
    /// recorder's state, which also covers failures before a segment exists).
    pub failing: Vec<(String, bool)>,
}

/// Writes one metric family: help, type, then `samples` as `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// `{camera="id"}`; ids recorded on disk are valid camera ids ([A-Za-z0-9_-]), so they need
/// no escaping in a label.
fn cam_label(id: &str) -> String {
    format!("{{camera=\"{id}\"}}")
}

/// Writes the recorder's metrics.
fn write_recording(out: &mut String, r: &RecordingFigures) {
    let m = &r.metrics;
    let per = |get: fn(&espcam_record::CameraMetrics) -> u64| -> Vec<(String, u64)> {
        m.per_camera
            .iter()
            .map(|c| (cam_label(&c.camera), get(c)))
            .collect()
    };
    family(
        out,
        "espcam_record_frames_total",
        "counter",
        "Frames written to recordings (appended; durable after the next commit).",
        &per(|c| c.frames),
    );
    family(
        out,
        "espcam_record_bytes_total",
        "counter",
        "JPEG bytes written to recordings.",
        &per(|c| c.bytes),
    );
    family(
        out,
        "espcam_record_frames_missed_total",
        "counter",
        "Frames the recorder should have recorded and could not (queue full, tap overflow).",
        &per(|c| c.frames_missed),
    );
    let failing: Vec<(String, u64)> = r
        .failing
        .iter()
        .map(|(id, f)| (cam_label(id), u64::from(*f)))
        .collect();
    family(
        out,
        "espcam_record_failing",
        "gauge",
        "1 while the camera's recording is stopped by a write error (see GET .../recordings).",
        &failing,
    );
    if let Some(usage) = &r.usage {
        let rows = |get: fn(&Usage) -> u64| -> Vec<(String, u64)> {
            usage
                .iter()
                .map(|u| (cam_label(u.camera.as_str()), get(u)))
                .collect()
        };
        family(
            out,
            "espcam_record_stored_segments",
            "gauge",
            "Segments stored per camera (closed ones plus the open one).",
            &rows(|u| u.segments),
        );
        family(
            out,
            "espcam_record_stored_bytes",
            "gauge",
            "Bytes of recordings stored per camera.",
            &rows(|u| u.bytes),
        );
    }
    let totals: [(&str, &str, &str, u64); 5] = [
        (
            "espcam_record_segments_closed_total",
            "counter",
            "Recording segments closed (about one a minute per recording camera).",
            m.segments_closed,
        ),
        (
            "espcam_record_fsyncs_total",
            "counter",
            "Syncs of segment files (group commits, at most one per camera per second).",
            m.fsyncs,
        ),
        (
            "espcam_record_write_syscalls_total",
            "counter",
            "Write system calls on segment files (frames, headers, index trailers).",
            m.write_syscalls,
        ),
        (
            "espcam_record_durable_frames_total",
            "counter",
            "Recorded frames made durable by a sync.",
            m.durable_frames,
        ),
        (
            "espcam_record_write_errors_total",
            "counter",
            "Appends, syncs or closes of segments that failed (full disk, unwritable directory).",
            m.write_errors,
        ),
    ];
    for (name, kind, help, v) in totals {
        family(out, name, kind, help, &[(String::new(), v)]);
    }
    if let Some(free) = r.disk_free {
        family(
            out,
            "espcam_record_disk_free_bytes",
            "gauge",
            "Free bytes on the filesystem holding the recordings.",
            &[(String::new(), free)],
        );
    }
    // The library's buckets are per bucket; Prometheus wants them cumulative, in seconds.
    let name = "espcam_record_fsync_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time one sync of a segment file took (group commit or close)."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0u64;
    for (i, bound_us) in FSYNC_BUCKETS_US.iter().enumerate() {
        cumulative += m.fsync_latency.get(i).copied().unwrap_or(0);
        let le = *bound_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let count: u64 = m.fsync_latency.iter().sum();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    // The library keeps counts only, not the sum of latencies.
    let _ = writeln!(out, "{name}_count {count}");
}

/// Renders every metric; the recorder's when it runs (`recording`).
pub fn render(hub: &Hub, recording: Option<&RecordingFigures>) -> String {
    let cameras = hub.cameras();
    let infos: Vec<_> = cameras
        .iter()
        .map(|c| (c.info(), c.counters.frames_skipped.load(Ordering::Relaxed)))
        .collect();
    let mut out = String::with_capacity(4096);
    let online = infos.iter().filter(|(i, _)| i.online).count();
    let _ = writeln!(
        out,
        "# HELP espcam_cameras_online Cameras whose control link is up."
    );
    let _ = writeln!(out, "# TYPE espcam_cameras_online gauge");
    let _ = writeln!(out, "espcam_cameras_online {online}");
    let _ = writeln!(
        out,
        "# HELP espcam_cameras_known Cameras the hub knows (online or not)."
    );
    let _ = writeln!(out, "# TYPE espcam_cameras_known gauge");
    let _ = writeln!(out, "espcam_cameras_known {}", infos.len());
    let _ = writeln!(
        out,
        "# HELP espcam_ui_clients Connected /ws/ui browser sockets."
    );
    let _ = writeln!(out, "# TYPE espcam_ui_clients gauge");
    let _ = writeln!(out, "espcam_ui_clients {}", hub.ui_clients());
    let per_camera: [PerCamera; 8] = [
        (
            "espcam_camera_online",
            "gauge",
            "1 while the camera's control link is up.",
            |i, _| u64::from(i.online),
        ),
        (
            "espcam_frames_in_total",
            "counter",
            "Valid frames received from the camera.",
            |i, _| i.frames_in,
        ),
        (
            "espcam_frames_dropped_total",
            "counter",
            "Camera messages that failed the frame checks and were dropped.",
            |i, _| i.frames_dropped,
        ),
        (
            "espcam_frames_out_total",
            "counter",
            "Frames delivered to viewers, summed over viewers.",
            |i, _| i.frames_out,
        ),
        (
            "espcam_frames_skipped_total",
            "counter",
            "Frames slow viewers skipped because a newer frame replaced them.",
            |_, s| s,
        ),
        (
            "espcam_bytes_in_total",
            "counter",
            "JPEG bytes received from the camera.",
            |i, _| i.bytes_in,
        ),
        (
            "espcam_bytes_out_total",
            "counter",
            "JPEG bytes delivered to viewers.",
            |i, _| i.bytes_out,
        ),
        (
            "espcam_viewers",
            "gauge",
            "Connected viewers (WebSocket and MJPEG).",
            |i, _| i.viewers as u64,
        ),
    ];
    for (name, kind, help, get) in per_camera {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (info, skipped) in &infos {
            // Camera ids are [A-Za-z0-9_-] only, so they need no escaping in a label.
            let _ = writeln!(
                out,
                "{name}{{camera=\"{}\"}} {}",
                info.id,
                get(info, *skipped)
            );
        }
    }
    write_histogram(
        &mut out,
        hub.relay_latency(),
        "espcam_relay_latency_seconds",
        "Hub receive of a frame to completed write to a viewer's WebSocket.",
    );
    if let Some(r) = recording {
        write_recording(&mut out, r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        for us in [10, 60, 900, 5_000_000] {
            h.record(us);
        }
        let mut s = String::new();
        write_histogram(&mut s, &h, "x", "help");
        assert!(s.contains("x_bucket{le=\"0.00005\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"0.0001\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"0.001\"} 3\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"1\"} 3\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_count 4\n"), "{s}");
    }

    #[test]
    fn fsync_buckets_become_cumulative_seconds() {
        let mut latency = vec![0; FSYNC_BUCKETS_US.len() + 1];
        latency[0] = 2; // ≤ 250 µs
        latency[2] = 1; // ≤ 1 ms
        latency[FSYNC_BUCKETS_US.len()] = 1; // over 1 s
        let figures = RecordingFigures {
            metrics: Metrics {
                fsync_latency: latency,
                per_camera: vec![espcam_record::CameraMetrics {
                    camera: "porch".into(),
                    frames: 7,
                    bytes: 700,
                    frames_missed: 1,
                    last_error: Some("disk full".into()),
                }],
                ..Metrics::default()
            },
            usage: None,
            disk_free: Some(123),
            failing: vec![("porch".into(), true)],
        };
        let mut s = String::new();
        write_recording(&mut s, &figures);
        let n = "espcam_record_fsync_latency_seconds";
        assert!(
            s.contains(&format!("{n}_bucket{{le=\"0.00025\"}} 2\n")),
            "{s}"
        );
        assert!(
            s.contains(&format!("{n}_bucket{{le=\"0.0005\"}} 2\n")),
            "{s}"
        );
        assert!(
            s.contains(&format!("{n}_bucket{{le=\"0.001\"}} 3\n")),
            "{s}"
        );
        assert!(s.contains(&format!("{n}_bucket{{le=\"1\"}} 3\n")), "{s}");
        assert!(s.contains(&format!("{n}_bucket{{le=\"+Inf\"}} 4\n")), "{s}");
        assert!(
            s.contains("espcam_record_frames_total{camera=\"porch\"} 7\n"),
            "{s}"
        );
        assert!(
            s.contains("espcam_record_bytes_total{camera=\"porch\"} 700\n"),
            "{s}"
        );
        assert!(
            s.contains("espcam_record_frames_missed_total{camera=\"porch\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("espcam_record_failing{camera=\"porch\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("espcam_record_disk_free_bytes 123\n"), "{s}");
    }
}

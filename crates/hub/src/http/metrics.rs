//! `GET /metrics`: Prometheus text exposition, written by hand (it is small and the format
//! is stable). The numbers live in the state layer (counters, [`Histogram`]).
//!
//! Relay latency is measured from the moment the hub received a frame to the moment the
//! write of that frame to a viewer's WebSocket completed (the hub's own contribution to
//! end-to-end latency; it does not need the camera's clock). Recording must stay a few
//! atomic adds: it runs once per delivered frame.

use std::fmt::Write;
use std::sync::atomic::Ordering;

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

/// Renders every metric.
pub fn render(hub: &Hub) -> String {
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
}

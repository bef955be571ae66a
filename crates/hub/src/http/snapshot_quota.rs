//! Snapshot quota and rate per camera, so that whoever may save snapshots (a viewer) cannot
//! fill the hub's disk: issue 15 measured 964 saves a second (24 MB/s) with no limit.
//!
//! Two rules, both per camera, both from `[snapshots]` in espcam.toml:
//!
//! - **rate**: a token bucket of `burst` saves (10) refilled one per `min_interval_ms`
//!   (1 s): a save past it is refused with 429 and `Retry-After`, before anything is read
//!   or written;
//! - **retention**: after a save, that camera's oldest snapshots are deleted until it has at
//!   most `max_per_camera` (1000) and `max_bytes_per_camera` (256 MiB). Oldest-first rather
//!   than refusing new saves because the newest moment is the one a user wants; the rate
//!   bounds how fast a viewer can push old snapshots out (at the defaults, 1000 s to cycle a
//!   camera's whole history). A single frame larger than `max_bytes_per_camera` is refused
//!   with 507 (keeping it would delete everything else and still be over).
//!
//! Deleting old snapshots publishes `snapshot_deleted` like a delete by hand, so dashboards
//! follow. This module must never delete another camera's snapshots, nor the one just saved.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use espcam_proto::CameraId;
use espcam_store::{SnapshotId, Store};

use crate::config::SnapshotQuota;
use crate::http::error::error_body;

/// Most cameras whose buckets are remembered; a full bucket is forgotten first (it carries
/// no information). Cameras are capped by `max_cameras` anyway; this bounds the map even so.
const MAX_TRACKED: usize = 4096;

/// Per-camera token buckets for snapshot saves.
#[derive(Debug)]
pub(crate) struct SnapshotGate {
    quota: SnapshotQuota,
    /// Tokens left and when they were last counted, per camera.
    buckets: Mutex<HashMap<CameraId, (f64, Instant)>>,
}

/// A save refused by the rate: how long until the next one is allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TooFast(pub(crate) Duration);

impl SnapshotGate {
    pub(crate) fn new(quota: SnapshotQuota) -> Self {
        Self {
            quota,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn quota(&self) -> SnapshotQuota {
        self.quota
    }

    /// Takes one save from `camera`'s bucket at `now`, or says how long to wait.
    pub(crate) fn take(&self, camera: &CameraId, now: Instant) -> Result<(), TooFast> {
        let burst = f64::from(self.quota.burst);
        let interval = self.quota.min_interval.as_secs_f64();
        let refill = |tokens: f64, since: Instant| {
            if interval == 0.0 {
                burst
            } else {
                (tokens + now.saturating_duration_since(since).as_secs_f64() / interval).min(burst)
            }
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(camera) {
            buckets.retain(|_, (t, since)| refill(*t, *since) < burst);
        }
        let (tokens, since) = buckets.get(camera).copied().unwrap_or((burst, now));
        let tokens = refill(tokens, since);
        if tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - tokens) * interval);
            buckets.insert(camera.clone(), (tokens, now));
            return Err(TooFast(wait));
        }
        buckets.insert(camera.clone(), (tokens - 1.0, now));
        Ok(())
    }
}

/// The 429 answer, with `Retry-After` in whole seconds (at least 1).
pub(crate) fn too_fast(
    camera: &CameraId,
    quota: SnapshotQuota,
    TooFast(wait): TooFast,
) -> Response {
    let mut r = error_body(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "camera {camera}: at most {} snapshots back to back, then one per {} ms; try again in {} ms",
            quota.burst,
            quota.min_interval.as_millis(),
            wait.as_millis().max(1)
        ),
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The 507 answer for a frame that alone is over the camera's byte quota.
pub(crate) fn too_big(camera: &CameraId, bytes: usize, quota: SnapshotQuota) -> Response {
    error_body(
        StatusCode::INSUFFICIENT_STORAGE,
        &format!(
            "camera {camera}: a snapshot of {bytes} bytes exceeds snapshots.max_bytes_per_camera ({} bytes)",
            quota.max_bytes_per_camera
        ),
    )
}

/// Why retention could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PruneError {
    #[error("could not read the snapshot index: {0}")]
    Query(#[from] espcam_store::QueryError),
    #[error("could not delete an old snapshot: {0}")]
    Delete(#[from] espcam_store::DeleteError),
}

/// Deletes `camera`'s oldest snapshots, never `keep` (the one just saved), until it is
/// within the quota; returns the deleted ids. Blocks on disk I/O.
pub(crate) fn prune(
    store: &Store,
    camera: &CameraId,
    keep: SnapshotId,
    quota: SnapshotQuota,
) -> Result<Vec<SnapshotId>, PruneError> {
    let mut usage = store.usage(camera)?;
    let mut deleted = Vec::new();
    while usage.count > quota.max_per_camera || usage.bytes > quota.max_bytes_per_camera {
        let page = store.oldest(camera, 100)?;
        let mut progressed = false;
        for s in page.into_iter().filter(|s| s.id != keep) {
            if usage.count <= quota.max_per_camera && usage.bytes <= quota.max_bytes_per_camera {
                break;
            }
            if store.delete(s.id)? {
                usage.count = usage.count.saturating_sub(1);
                usage.bytes = usage.bytes.saturating_sub(s.bytes);
                deleted.push(s.id);
            }
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(burst: u32, interval_ms: u64) -> SnapshotQuota {
        SnapshotQuota {
            burst,
            min_interval: Duration::from_millis(interval_ms),
            ..SnapshotQuota::default()
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_one_per_interval() {
        let gate = SnapshotGate::new(quota(3, 1000));
        let a = CameraId::new("cam-a").unwrap();
        let b = CameraId::new("cam-b").unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            gate.take(&a, t0).unwrap();
        }
        let TooFast(wait) = gate.take(&a, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        // Another camera has its own bucket.
        gate.take(&b, t0).unwrap();
        // Half an interval later: still too early, half a second to go.
        let TooFast(wait) = gate.take(&a, t0 + Duration::from_millis(500)).unwrap_err();
        assert_eq!(wait.as_millis(), 500);
        gate.take(&a, t0 + Duration::from_millis(1000)).unwrap();
        assert!(gate.take(&a, t0 + Duration::from_millis(1001)).is_err());
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            gate.take(&a, later).unwrap();
        }
        assert!(gate.take(&a, later).is_err());
    }

    #[test]
    fn an_interval_of_zero_means_no_rate_limit() {
        let gate = SnapshotGate::new(quota(1, 0));
        let a = CameraId::new("cam-a").unwrap();
        let t0 = Instant::now();
        for _ in 0..100 {
            gate.take(&a, t0).unwrap();
        }
    }

    fn jpeg(seed: u8) -> Vec<u8> {
        // Noise compresses badly, so every image has about the same size.
        let mut rng = fastrand::Rng::with_seed(u64::from(seed));
        let pixels: Vec<u8> = (0..64 * 48 * 3).map(|_| rng.u8(..)).collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&pixels, 64, 48, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn retention_deletes_the_oldest_of_that_camera_until_within_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = CameraId::new("cam-a").unwrap();
        let b = CameraId::new("cam-b").unwrap();
        let save = |camera: &CameraId, seed: u8| {
            store
                .save(espcam_store::NewSnapshot {
                    camera,
                    taken_at_us: 1_000_000 + u64::from(seed),
                    jpeg: &jpeg(seed),
                })
                .unwrap()
        };
        let other = save(&b, 0);
        let saved: Vec<_> = (1..=5).map(|i| save(&a, i)).collect();
        let biggest = saved.iter().map(|s| s.bytes).max().unwrap();
        // Room for two and a half images: the newest two stay.
        let q = SnapshotQuota {
            max_bytes_per_camera: biggest * 5 / 2,
            ..SnapshotQuota::default()
        };
        let newest = saved[4].id;
        let deleted = prune(&store, &a, newest, q).unwrap();
        assert_eq!(deleted, vec![saved[0].id, saved[1].id, saved[2].id]);
        let usage = store.usage(&a).unwrap();
        assert_eq!(usage.count, 2);
        assert!(usage.bytes <= q.max_bytes_per_camera);
        assert!(store.read_jpeg(saved[0].id).unwrap().is_none());
        assert!(store.read_jpeg(newest).unwrap().is_some());
        // The other camera is not touched, and the kept snapshot survives even alone over
        // the quota.
        assert!(store.get(other.id).unwrap().is_some());
        let tiny = SnapshotQuota {
            max_bytes_per_camera: 1,
            ..q
        };
        assert_eq!(prune(&store, &a, newest, tiny).unwrap(), vec![saved[3].id]);
        assert!(store.get(newest).unwrap().is_some());
    }
}

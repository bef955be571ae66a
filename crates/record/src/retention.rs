//! Retention: which closed segments to delete so recordings stay within age and size limits
//! and the disk keeps a free-space floor, and the executor that deletes them.
//!
//! [`plan`] is pure (segments, limits, free space and leases in; deletions out) and decides
//! in this order, oldest segments first in each step:
//!
//! 1. **Age**: every segment that ended before `now − max_age` of its camera (or of the global
//!    limit, whichever is shorter).
//! 2. **Bytes per camera**: until the camera's remaining segments fit its `max_bytes`.
//! 3. **Bytes globally**: until all remaining segments fit the global `max_bytes`.
//! 4. **Free-disk floor**: until the free bytes plus what the plan frees reach
//!    `min_free_bytes`.
//!
//! A leased segment (being played back or exported) is never deleted: the plan skips it,
//! counts it in `skipped_leased`, and goes on with the next oldest; the caller runs retention
//! again later. The open segment of each camera is never a candidate (it is not closed).
//! This module must never delete a file before it is marked as being deleted, and never
//! remove a row before its file is gone.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::sync::PoisonError;

use espcam_proto::CameraId;

use crate::error::{IoError, RetentionError};
use crate::{Recordings, SegmentId, SegmentInfo, db, segment};

/// Limits for one camera or for all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Delete segments whose last frame is older than this, µs.
    pub max_age_us: Option<u64>,
    /// Keep at most this many bytes.
    pub max_bytes: Option<u64>,
}

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Limits over all cameras together.
    pub global: Limits,
    /// Limits for cameras not listed in `per_camera`.
    pub default_camera: Limits,
    /// Limits of particular cameras.
    pub per_camera: HashMap<CameraId, Limits>,
    /// Delete the oldest segments while the disk has less free space than this, bytes.
    pub min_free_bytes: u64,
}

/// Why a segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Older than the camera's or the global age limit.
    Age,
    /// The camera is over its byte limit.
    CameraBytes,
    /// All cameras together are over the global byte limit.
    GlobalBytes,
    /// The disk is below the free-space floor.
    DiskFloor,
}

/// One segment the plan deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The segment.
    pub segment: SegmentId,
    /// Its camera.
    pub camera: CameraId,
    /// Its time range, µs.
    pub start_us: u64,
    /// End, µs.
    pub end_us: u64,
    /// Bytes it frees.
    pub bytes: u64,
    /// Why.
    pub reason: Reason,
}

/// What a plan decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Segments to delete, in the order decided.
    pub delete: Vec<Deletion>,
    /// Segments that would have been deleted but are being read.
    pub skipped_leased: Vec<SegmentId>,
}

/// Decides what to delete. `segments` are closed segments in any order; `free_bytes` is the
/// disk's free space (`None`: unknown, the floor is not applied).
pub fn plan(
    segments: &[SegmentInfo],
    policy: &RetentionPolicy,
    now_us: u64,
    free_bytes: Option<u64>,
    leased: &HashSet<SegmentId>,
) -> Plan {
    let mut order: Vec<&SegmentInfo> = segments.iter().collect();
    order.sort_by_key(|s| (s.start_us, s.id));
    let mut out = Plan::default();
    let mut gone: HashSet<SegmentId> = HashSet::new();
    let mut skipped: HashSet<SegmentId> = HashSet::new();
    let limits = |c: &CameraId| policy.per_camera.get(c).unwrap_or(&policy.default_camera);
    let mut take = |s: &SegmentInfo, reason: Reason, out: &mut Plan| -> bool {
        if gone.contains(&s.id) {
            return false;
        }
        if leased.contains(&s.id) {
            if skipped.insert(s.id) {
                out.skipped_leased.push(s.id);
            }
            return false;
        }
        gone.insert(s.id);
        out.delete.push(Deletion {
            segment: s.id,
            camera: s.camera.clone(),
            start_us: s.start_us,
            end_us: s.end_us,
            bytes: s.bytes,
            reason,
        });
        true
    };

    // 1. Age.
    for s in &order {
        let age = [limits(&s.camera).max_age_us, policy.global.max_age_us]
            .into_iter()
            .flatten()
            .min();
        if let Some(age) = age
            && s.end_us < now_us.saturating_sub(age)
        {
            take(s, Reason::Age, &mut out);
        }
    }
    // 2. Bytes per camera.
    let mut per_cam: HashMap<&CameraId, u64> = HashMap::new();
    for s in &order {
        *per_cam.entry(&s.camera).or_default() += s.bytes;
    }
    for d in &out.delete {
        if let Some(b) = per_cam.get_mut(&d.camera) {
            *b -= d.bytes;
        }
    }
    for s in &order {
        let Some(max) = limits(&s.camera).max_bytes else {
            continue;
        };
        let used = per_cam.get(&s.camera).copied().unwrap_or(0);
        if used > max
            && take(s, Reason::CameraBytes, &mut out)
            && let Some(b) = per_cam.get_mut(&s.camera)
        {
            *b -= s.bytes;
        }
    }
    // 3. Bytes globally.
    let mut total: u64 = per_cam.values().sum();
    if let Some(max) = policy.global.max_bytes {
        for s in &order {
            if total <= max {
                break;
            }
            if take(s, Reason::GlobalBytes, &mut out) {
                total -= s.bytes;
            }
        }
    }
    // 4. Free-disk floor.
    if let Some(free) = free_bytes {
        let mut free = free.saturating_add(out.delete.iter().map(|d| d.bytes).sum());
        for s in &order {
            if free >= policy.min_free_bytes {
                break;
            }
            if take(s, Reason::DiskFloor, &mut out) {
                free = free.saturating_add(s.bytes);
            }
        }
    }
    out
}

/// What one retention run did, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted, with why.
    pub deleted: Vec<Deletion>,
    /// Segments kept because they were being read: run again later.
    pub skipped_leased: Vec<SegmentId>,
    /// Free bytes measured before the run, if measured.
    pub free_bytes: Option<u64>,
}

impl RetentionReport {
    /// Bytes freed.
    pub fn bytes_freed(&self) -> u64 {
        self.deleted.iter().map(|d| d.bytes).sum()
    }
}

/// Free space for [`Recordings::apply_retention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeSpace {
    /// Measure with `statvfs` on the recordings directory.
    Measure,
    /// Use this figure (tests, or a caller that measured already).
    Known(u64),
    /// Do not apply the floor.
    Ignore,
}

impl Recordings {
    /// Plans and carries out retention. Each deletion: mark the segment as being deleted (no
    /// new reader can lease it; a leased one is skipped), remove its file, sync the
    /// directory, delete its row and add it to the camera's retention totals.
    pub fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now_us: u64,
        free: FreeSpace,
    ) -> Result<RetentionReport, RetentionError> {
        let inner = &self.inner;
        let segments = db::all_closed(&inner.conn())?;
        let free_bytes = match free {
            FreeSpace::Measure => Some(self.disk_free()?),
            FreeSpace::Known(b) => Some(b),
            FreeSpace::Ignore => None,
        };
        let leased: HashSet<SegmentId> = inner.leases().count.keys().copied().collect();
        let p = plan(&segments, policy, now_us, free_bytes, &leased);
        let mut report = RetentionReport {
            deleted: Vec::new(),
            skipped_leased: p.skipped_leased,
            free_bytes,
        };
        for d in p.delete {
            {
                let mut l = inner.leases();
                if l.count.contains_key(&d.segment) {
                    // Leased since planning.
                    report.skipped_leased.push(d.segment);
                    continue;
                }
                l.deleting.insert(d.segment);
            }
            let result = self.delete_segment(&d, now_us);
            inner
                .leases
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .deleting
                .remove(&d.segment);
            result?;
            report.deleted.push(d);
        }
        Ok(report)
    }

    fn delete_segment(&self, d: &Deletion, now_us: u64) -> Result<(), RetentionError> {
        let inner = &self.inner;
        let path = inner.segment_path(&d.camera, d.segment, d.start_us);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IoError::new("remove segment file", &path, e).into()),
        }
        if inner.sync()
            && let Some(dir) = path.parent()
        {
            segment::sync_dir(dir)?;
        }
        let conn = inner.conn();
        db::delete(&conn, d.segment)?;
        db::note_deleted(&conn, &d.camera, d.bytes, now_us)?;
        Ok(())
    }

    /// Retention totals per camera since the database was created: (camera, segments
    /// deleted, bytes deleted, time of the last deletion µs).
    pub fn retention_totals(&self) -> Result<Vec<(String, u64, u64, u64)>, RetentionError> {
        Ok(db::retention_totals(&self.inner.conn())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: i64, cam: &str, start_s: u64, bytes: u64) -> SegmentInfo {
        SegmentInfo {
            id: SegmentId(id),
            camera: CameraId::new(cam).unwrap(),
            start_us: start_s * 1_000_000,
            end_us: (start_s + 59) * 1_000_000,
            frames: 10,
            bytes,
            width: 640,
            height: 480,
            uniform_dims: true,
            open: false,
        }
    }

    fn ids(p: &Plan) -> Vec<i64> {
        p.delete.iter().map(|d| d.segment.0).collect()
    }

    const H: u64 = 3_600;

    #[test]
    fn age_limit_deletes_only_what_ended_before_the_cutoff() {
        let segs = [
            seg(1, "a", 0, 10),
            seg(2, "a", H, 10),
            seg(3, "a", 2 * H, 10),
        ];
        let policy = RetentionPolicy {
            default_camera: Limits {
                max_age_us: Some(H * 1_000_000),
                max_bytes: None,
            },
            ..Default::default()
        };
        // now = 2h + 30 min: segment 1 (ended 0:00:59) and 2 (ended 1:00:59) are older than 1 h.
        let now = (2 * H + 1800) * 1_000_000;
        let p = plan(&segs, &policy, now, None, &HashSet::new());
        assert_eq!(ids(&p), [1, 2]);
        assert!(p.delete.iter().all(|d| d.reason == Reason::Age));
    }

    #[test]
    fn byte_limits_per_camera_and_global_take_the_oldest() {
        let segs = [
            seg(1, "a", 0, 100),
            seg(2, "b", 60, 100),
            seg(3, "a", 120, 100),
            seg(4, "b", 180, 100),
            seg(5, "a", 240, 100),
        ];
        let mut policy = RetentionPolicy::default();
        policy.per_camera.insert(
            CameraId::new("a").unwrap(),
            Limits {
                max_age_us: None,
                max_bytes: Some(200),
            },
        );
        let p = plan(&segs, &policy, 0, None, &HashSet::new());
        assert_eq!(ids(&p), [1]);
        assert_eq!(p.delete[0].reason, Reason::CameraBytes);
        // Global 250: after a's limit, 400 bytes remain → delete oldest (2 of b, then 3 of a).
        policy.global.max_bytes = Some(250);
        let p = plan(&segs, &policy, 0, None, &HashSet::new());
        assert_eq!(ids(&p), [1, 2, 3]);
        assert_eq!(p.delete[2].reason, Reason::GlobalBytes);
    }

    #[test]
    fn disk_floor_counts_what_the_plan_frees_and_skips_leased() {
        let segs = [
            seg(1, "a", 0, 100),
            seg(2, "a", 60, 100),
            seg(3, "a", 120, 100),
        ];
        let policy = RetentionPolicy {
            min_free_bytes: 1_150,
            ..Default::default()
        };
        let leased: HashSet<_> = [SegmentId(1)].into();
        let p = plan(&segs, &policy, 0, Some(1_000), &leased);
        // Needs 150 more bytes: 1 is leased, so 2 and 3 go.
        assert_eq!(ids(&p), [2, 3]);
        assert_eq!(p.skipped_leased, [SegmentId(1)]);
        // With enough free space nothing goes.
        let p = plan(&segs, &policy, 0, Some(2_000), &leased);
        assert!(p.delete.is_empty());
        assert!(p.skipped_leased.is_empty());
    }
}

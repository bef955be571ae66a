//! Recordings: every frame a camera sends, kept as it arrived (no re-encoding), in segments
//! of about a minute per camera, with an index that playback, export and retention use.
//!
//! The hub calls this synchronous, thread-safe library from a dedicated recording thread
//! (or `spawn_blocking`); it has no async runtime and no HTTP. It must never lose a frame it
//! reported durable, never serve a byte of a torn frame, and never delete a segment somebody
//! is reading.
//!
//! # Layout
//!
//! ```text
//! <data>/recordings.sqlite                       one row per segment + retention totals (WAL)
//! <data>/recordings/<camera>/<id>-<start_us>.seg a segment (format: see `format`)
//! <data>/recordings/lost+found/                  files start-up could not index, set aside
//! ```
//!
//! Paths are built only from a validated [`CameraId`] and numbers; the `path` column of the
//! database is informative and never opened.
//!
//! # Durability
//!
//! [`Writer::append`] writes the frame's header and JPEG bytes to the segment file in one
//! `writev` (page cache only). [`Writer::flush_if_due`] group-commits: at most once per
//! [`Config::commit_interval_us`] (1 s) per camera it `fdatasync`s the segment; only then are
//! the frames written so far *durable*: visible to readers, counted in
//! [`Writer::durable_frames`], and guaranteed to survive a crash. Each frame header carries
//! a CRC-32 of itself and of the JPEG, so one sync per commit is enough: after a crash,
//! [`Recordings::open`] walks the open segment's headers, keeps every whole frame, cuts the
//! torn tail and writes the segment's index trailer (see [`RecoveryReport`]).
//!
//! A segment's life in the database: a row `open` is inserted before its file is created
//! (so a file always has a row, unless the database was replaced); closing writes the
//! trailer, syncs, then marks the row `closed` with its figures. Retention deletes the file,
//! syncs the directory, then deletes the row; start-up removes rows whose file is gone.
//!
//! # Time
//!
//! Every frame has a hub receive time (µs since the Unix epoch), made non-decreasing per
//! camera by the writer (a clock stepping back records the frame at the previous time), and
//! optionally the camera's capture time. Segments, spans, seek and retention use the receive
//! time; frames come back with both.

mod db;
pub mod error;
pub mod export;
pub mod fault;
mod format;
mod read;
mod recover;
pub mod retention;
mod segment;
mod writer;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use espcam_proto::CameraId;
use rusqlite::Connection;

pub use error::{ExportError, IoError, OpenError, ReadError, RetentionError, WriteError};
pub use export::{Export, ExportFormat, ExportPart};
pub use format::{FrameMeta, MAX_FRAME_BYTES};
pub use read::{Cursor, RecordedFrame, Span};
pub use recover::RecoveryReport;
pub use retention::{Limits, RetentionPolicy, RetentionReport};
pub use writer::{Appended, Frame, Writer};

/// The database file in the data directory.
pub const DB_FILE: &str = "recordings.sqlite";
/// The directory of segment files in the data directory.
pub const RECORDINGS_DIR: &str = "recordings";
pub(crate) const LOST_FOUND_DIR: &str = "lost+found";

/// A segment's id: its database row id, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub(crate) i64);

impl SegmentId {
    /// The numeric id.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for SegmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A segment as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Row id.
    pub id: SegmentId,
    /// Camera.
    pub camera: CameraId,
    /// Receive time of the first frame, µs.
    pub start_us: u64,
    /// Receive time of the last (durable) frame, µs.
    pub end_us: u64,
    /// Frames.
    pub frames: u32,
    /// File size, bytes.
    pub bytes: u64,
    /// Width of the first frame, px.
    pub width: u16,
    /// Height of the first frame, px.
    pub height: u16,
    /// Whether every frame has the first frame's dimensions.
    pub uniform_dims: bool,
    /// Still being written (only its durable frames are described).
    pub open: bool,
}

/// Whether files and database are synced. Only benchmarks and tests that fabricate days of
/// recordings in seconds use [`Durability::NoSync`]; a crash then loses anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fdatasync` at each group commit and segment close; SQLite `synchronous = FULL`.
    Fsync,
    /// No syncs at all.
    NoSync,
}

/// Segmenting and commit settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// A segment is closed when a frame arrives this long after its first one (default 60 s).
    pub segment_duration_us: u64,
    /// … or when it would grow beyond this many bytes (default 256 MiB).
    pub max_segment_bytes: u64,
    /// … or when a frame arrives this long after the previous one (default 5 s): a new
    /// segment starts, and spans show the gap.
    pub max_gap_us: u64,
    /// Group commit interval: at most one sync per camera per interval (default 1 s).
    pub commit_interval_us: u64,
    /// Whether to sync at all.
    pub durability: Durability,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            segment_duration_us: 60_000_000,
            max_segment_bytes: 256 * 1024 * 1024,
            max_gap_us: 5_000_000,
            commit_interval_us: 1_000_000,
            durability: Durability::Fsync,
        }
    }
}

/// Upper bounds (µs) of the fsync latency histogram buckets; a last bucket counts the rest.
pub const FSYNC_BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
];

/// Counters since [`Recordings::open`], for the hub's metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Frames appended (written, not necessarily durable yet).
    pub frames: u64,
    /// JPEG bytes appended.
    pub bytes: u64,
    /// Frames made durable.
    pub durable_frames: u64,
    /// Segments closed.
    pub segments_closed: u64,
    /// Syncs of segment files (group commits and closes).
    pub fsyncs: u64,
    /// Write system calls on segment files (`writev` of frames, headers, index trailers).
    pub write_syscalls: u64,
    /// Sync latency counts per bucket of [`FSYNC_BUCKETS_US`], plus one overflow bucket.
    pub fsync_latency: Vec<u64>,
    /// Frames the hub reported it could not hand to the recorder ([`Writer::note_missed`]).
    pub frames_missed: u64,
    /// Appends, syncs or closes that failed.
    pub write_errors: u64,
    /// Per camera: frames appended, JPEG bytes appended, frames missed.
    pub per_camera: Vec<CameraMetrics>,
}

/// One camera's counters in [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraMetrics {
    /// Camera.
    pub camera: String,
    /// Frames appended.
    pub frames: u64,
    /// JPEG bytes appended.
    pub bytes: u64,
    /// Frames missed.
    pub frames_missed: u64,
    /// The last write error, if the last attempt failed (cleared by the next durable sync).
    pub last_error: Option<String>,
}

/// What is stored per camera (closed segments plus the open one's durable frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Camera.
    pub camera: CameraId,
    /// Segments.
    pub segments: u64,
    /// Frames.
    pub frames: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Receive time of the oldest frame, µs.
    pub oldest_us: u64,
    /// Receive time of the newest frame, µs.
    pub newest_us: u64,
}

#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    durable_frames: AtomicU64,
    segments_closed: AtomicU64,
    fsyncs: AtomicU64,
    write_syscalls: AtomicU64,
    fsync_latency: [AtomicU64; FSYNC_BUCKETS_US.len() + 1],
    frames_missed: AtomicU64,
    write_errors: AtomicU64,
    per_camera: Mutex<HashMap<CameraId, CameraMetrics>>,
}

/// The open segment of a camera as readers see it: only durable frames.
#[derive(Debug)]
pub(crate) struct Live {
    pub id: SegmentId,
    pub path: PathBuf,
    pub durable: Mutex<Vec<FrameMeta>>,
}

impl Live {
    pub fn entries(&self) -> MutexGuard<'_, Vec<FrameMeta>> {
        self.durable.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Leases {
    /// Readers per segment.
    pub count: HashMap<SegmentId, u32>,
    /// Segments retention is deleting: no new lease is granted.
    pub deleting: HashSet<SegmentId>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub root: PathBuf,
    pub dir: PathBuf,
    pub config: Config,
    /// The one SQLite connection, held only for single statements, never across file I/O.
    conn: Mutex<Connection>,
    /// The open segment per camera; replaced by the writer at each segment change.
    pub live: Mutex<HashMap<CameraId, Arc<Live>>>,
    /// Cameras that have a [`Writer`].
    pub writers: Mutex<HashSet<CameraId>>,
    /// Segments a dropped writer could not close, for the camera's next writer.
    pub unclosed: Mutex<HashMap<CameraId, Vec<writer::Unclosed>>>,
    /// Reader leases; retention skips leased segments.
    pub leases: Mutex<Leases>,
    counters: Counters,
    /// Test hook for failing writes and syncs ([`Recordings::set_io_faults`]).
    faults: std::sync::RwLock<fault::Faults>,
}

impl Inner {
    /// The test hook in force, if any.
    pub fn faults(&self) -> fault::Faults {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn leases(&self) -> MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn live_of(&self, camera: &CameraId) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(camera)
            .cloned()
    }

    pub fn sync(&self) -> bool {
        self.config.durability == Durability::Fsync
    }

    /// Absolute path of a segment file.
    pub fn segment_path(&self, camera: &CameraId, id: SegmentId, start_us: u64) -> PathBuf {
        self.dir.join(relative_path(camera, id, start_us))
    }
}

/// `recordings/<camera>/<id>-<start_us>.seg`, relative to the data directory. A
/// [`CameraId`] admits only `[A-Za-z0-9_-]`, so this is always two plain components.
pub(crate) fn relative_path(camera: &CameraId, id: SegmentId, start_us: u64) -> String {
    format!("{}/{}", camera.as_str(), file_name(id, start_us))
}

pub(crate) fn file_name(id: SegmentId, start_us: u64) -> String {
    format!("{}-{start_us}.seg", id.0)
}

/// Parses a segment file name back into `(id, start_us)`; strict (no leading zeros, id ≥ 1).
pub(crate) fn parse_file_name(name: &str) -> Option<(SegmentId, u64)> {
    fn digits(s: &str) -> Option<&str> {
        let ok = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        ok.then_some(s)
    }
    let (id, t) = name.strip_suffix(".seg")?.split_once('-')?;
    let id: i64 = digits(id)?.parse().ok()?;
    let t: u64 = digits(t)?.parse().ok()?;
    (id >= 1 && t <= i64::MAX as u64).then_some((SegmentId(id), t))
}

/// The recordings of one data directory. Cheap to clone (`Arc` inside), `Send + Sync`.
/// Every method blocks on disk I/O.
#[derive(Debug, Clone)]
pub struct Recordings {
    pub(crate) inner: Arc<Inner>,
}

impl Recordings {
    /// Opens (creating if needed) the recordings in `data_dir` with the default [`Config`],
    /// recovering segments left open by a crash. Returns what recovery did, for the log.
    pub fn open(data_dir: &Path) -> Result<(Self, RecoveryReport), OpenError> {
        Self::open_with(data_dir, Config::default())
    }

    /// Like [`Recordings::open`] with explicit settings.
    pub fn open_with(data_dir: &Path, config: Config) -> Result<(Self, RecoveryReport), OpenError> {
        let root = data_dir.to_path_buf();
        let dir = root.join(RECORDINGS_DIR);
        fs::create_dir_all(&dir).map_err(|e| IoError::new("create directory", &dir, e))?;
        let sync = config.durability == Durability::Fsync;
        let conn = db::open(&root.join(DB_FILE), &root, sync)?;
        let rec = Self {
            inner: Arc::new(Inner {
                root,
                dir,
                config,
                conn: Mutex::new(conn),
                live: Mutex::default(),
                writers: Mutex::default(),
                unclosed: Mutex::default(),
                leases: Mutex::default(),
                counters: Counters::default(),
                faults: std::sync::RwLock::new(None),
            }),
        };
        let report = recover::run(&rec.inner).map_err(|e| match e {
            recover::Failure::Io(e) => OpenError::Io(e),
            recover::Failure::Db(source) => OpenError::Db {
                path: rec.inner.root.join(DB_FILE),
                source,
            },
        })?;
        Ok((rec, report))
    }

    /// Test seam: every segment write and sync from now on asks `faults` first (a fake
    /// full disk, a failing sync); `None` removes it. Segments opened before keep the hook
    /// they were opened with. Production code never installs one.
    pub fn set_io_faults(&self, faults: Option<Arc<dyn fault::IoFaults>>) {
        *self
            .inner
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The writer for `camera`: one at a time per camera ([`WriteError::Busy`] otherwise);
    /// dropping it closes its segment.
    pub fn writer(&self, camera: &CameraId) -> Result<Writer, WriteError> {
        Writer::new(self.clone(), camera.clone())
    }

    /// Stored recordings per camera, sorted by camera.
    pub fn usage(&self) -> Result<Vec<Usage>, ReadError> {
        let rows = db::usage(&self.inner.conn())?;
        let mut out: Vec<Usage> = rows
            .into_iter()
            .filter_map(|(camera, segments, frames, bytes, oldest_us, newest_us)| {
                Some(Usage {
                    camera: CameraId::new(&camera).ok()?,
                    segments,
                    frames,
                    bytes,
                    oldest_us,
                    newest_us,
                })
            })
            .collect();
        let live: Vec<(CameraId, Arc<Live>)> = self
            .inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(c, l)| (c.clone(), l.clone()))
            .collect();
        for (camera, l) in live {
            let e = l.entries();
            let (Some(first), Some(last)) = (e.first(), e.last()) else {
                continue;
            };
            let bytes = last.end();
            let i = match out.iter().position(|u| u.camera == camera) {
                Some(i) => i,
                None => {
                    out.push(Usage {
                        camera: camera.clone(),
                        segments: 0,
                        frames: 0,
                        bytes: 0,
                        oldest_us: first.received_us,
                        newest_us: 0,
                    });
                    out.len() - 1
                }
            };
            let u = &mut out[i];
            u.segments += 1;
            u.frames += e.len() as u64;
            u.bytes += bytes;
            u.oldest_us = u.oldest_us.min(first.received_us);
            u.newest_us = u.newest_us.max(last.received_us);
        }
        out.sort_by(|a, b| a.camera.cmp(&b.camera));
        Ok(out)
    }

    /// Free bytes on the filesystem holding the recordings (for the unprivileged user).
    pub fn disk_free(&self) -> Result<u64, IoError> {
        let st = rustix::fs::statvfs(&self.inner.dir)
            .map_err(|e| IoError::new("measure free space of", &self.inner.dir, e.into()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Counters since open.
    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut per_camera: Vec<CameraMetrics> = c
            .per_camera
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        per_camera.sort_by(|a, b| a.camera.cmp(&b.camera));
        Metrics {
            frames: ld(&c.frames),
            bytes: ld(&c.bytes),
            durable_frames: ld(&c.durable_frames),
            segments_closed: ld(&c.segments_closed),
            fsyncs: ld(&c.fsyncs),
            write_syscalls: ld(&c.write_syscalls),
            fsync_latency: c.fsync_latency.iter().map(ld).collect(),
            frames_missed: ld(&c.frames_missed),
            write_errors: ld(&c.write_errors),
            per_camera,
        }
    }
}

impl Inner {
    pub(crate) fn note_sync(&self, latency: std::time::Duration) {
        let c = &self.counters;
        c.fsyncs.fetch_add(1, Ordering::Relaxed);
        let us = latency.as_micros() as u64;
        let i = FSYNC_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(FSYNC_BUCKETS_US.len());
        c.fsync_latency[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a writer's counters accumulated since its last report.
    pub(crate) fn note_camera(
        &self,
        camera: &CameraId,
        p: &writer::Pending,
        error: Option<Option<String>>,
    ) {
        let (frames, bytes, durable, missed) = (p.frames, p.bytes, p.durable, p.missed);
        let c = &self.counters;
        c.write_syscalls.fetch_add(p.writes, Ordering::Relaxed);
        c.frames.fetch_add(frames, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        c.durable_frames.fetch_add(durable, Ordering::Relaxed);
        c.frames_missed.fetch_add(missed, Ordering::Relaxed);
        if matches!(error, Some(Some(_))) {
            c.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut map = c.per_camera.lock().unwrap_or_else(PoisonError::into_inner);
        let m = map.entry(camera.clone()).or_insert_with(|| CameraMetrics {
            camera: camera.to_string(),
            ..CameraMetrics::default()
        });
        m.frames += frames;
        m.bytes += bytes;
        m.frames_missed += missed;
        if let Some(e) = error {
            m.last_error = e;
        }
    }

    pub(crate) fn note_closed(&self) {
        self.counters
            .segments_closed
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_are_strict() {
        let cam = CameraId::new("cam-1").unwrap();
        assert_eq!(relative_path(&cam, SegmentId(7), 123), "cam-1/7-123.seg");
        assert_eq!(parse_file_name("7-123.seg"), Some((SegmentId(7), 123)));
        for bad in [
            "0-1.seg",
            "07-1.seg",
            "7-01.seg",
            "7-.seg",
            "-1.seg",
            "7-1.seg.tmp",
            "7_1.seg",
            "7-1-2.seg",
            "+7-1.seg",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}

//! The per-camera writer: cuts the stream into segments, appends frames, group-commits.
//!
//! Time comes in as an argument (`received_us`, `now_us`), never from a clock, so segment
//! changes and commits are tested on a virtual clock. A writer must never publish a frame to
//! readers before the sync that makes it durable, and never let a failed write leave the
//! segment's row claiming frames its file does not hold.

use std::fs;
use std::sync::{Arc, PoisonError};

use espcam_proto::CameraId;

use crate::error::{IoError, WriteError};
use crate::format::{self, FRAME_HEADER_LEN, FileHeader, FrameMeta, MAX_FRAME_BYTES};
use crate::segment::{self, SegmentFile};
use crate::{Live, Recordings, SegmentId, SegmentInfo, db};

/// One frame to record.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The JPEG exactly as the camera sent it (stored without re-encoding or checks beyond
    /// length: the hub validated it on ingest).
    pub jpeg: &'a [u8],
    /// The camera's capture time, µs since the Unix epoch, if it sent one.
    pub captured_us: Option<u64>,
    /// When the hub received it, µs since the Unix epoch.
    pub received_us: u64,
    /// Width, px.
    pub width: u16,
    /// Height, px.
    pub height: u16,
}

/// What [`Writer::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The segment the frame went into.
    pub segment: SegmentId,
    /// The frame's index in that segment.
    pub index: u32,
    /// The receive time it was recorded under (the writer keeps times non-decreasing).
    pub received_us: u64,
    /// Whether a segment was closed (and its frames made durable) before this frame.
    pub closed_previous: bool,
}

#[derive(Debug)]
struct Current {
    id: SegmentId,
    start_us: u64,
    file: SegmentFile,
    live: Arc<Live>,
}

/// Records one camera. Create with [`Recordings::writer`]; call [`Writer::append`] for each
/// frame and [`Writer::flush_if_due`] after each append and on a timer of at least 1 Hz (so
/// the last frames before the camera goes quiet become durable too).
#[derive(Debug)]
pub struct Writer {
    rec: Recordings,
    camera: CameraId,
    cur: Option<Current>,
    /// Latest receive time recorded: later frames are never recorded earlier.
    last_t: u64,
    /// When the last sync ran (`now_us` of that call).
    last_sync_us: Option<u64>,
    /// Frames made durable since this writer was created.
    durable_total: u64,
    /// Counters not yet added to the shared metrics.
    pending: (u64, u64, u64, u64),
    /// Segments that failed to close: retried at the next flush.
    unclosed: Vec<(SegmentId, u64)>,
}

impl Writer {
    pub(crate) fn new(rec: Recordings, camera: CameraId) -> Result<Self, WriteError> {
        let fresh = rec
            .inner
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(camera.clone());
        if !fresh {
            return Err(WriteError::Busy(camera.to_string()));
        }
        Ok(Self {
            rec,
            camera,
            cur: None,
            last_t: 0,
            last_sync_us: None,
            durable_total: 0,
            pending: (0, 0, 0, 0),
            unclosed: Vec::new(),
        })
    }

    /// The camera this writer records.
    pub fn camera(&self) -> &CameraId {
        &self.camera
    }

    /// Frames made durable since this writer was created (by syncs and segment closes).
    pub fn durable_frames(&self) -> u64 {
        self.durable_total
    }

    /// Counts frames the hub could not hand to the recorder (a full queue), for metrics.
    pub fn note_missed(&mut self, frames: u64) {
        self.pending.3 += frames;
    }

    /// Writes one frame to the camera's open segment (starting a new segment when the
    /// current one is a minute old, too big, or the camera was silent for
    /// [`max_gap_us`](crate::Config::max_gap_us)). The frame is durable only after a later
    /// [`flush_if_due`](Writer::flush_if_due) or [`close`](Writer::close).
    pub fn append(&mut self, frame: &Frame<'_>) -> Result<Appended, WriteError> {
        if frame.jpeg.is_empty() {
            return Err(WriteError::Empty);
        }
        if frame.jpeg.len() > MAX_FRAME_BYTES {
            return Err(WriteError::TooLarge(frame.jpeg.len()));
        }
        if frame.width == 0 || frame.height == 0 {
            return Err(WriteError::BadDimensions(frame.width, frame.height));
        }
        let t = frame.received_us.max(self.last_t).min(i64::MAX as u64);
        let cfg = &self.rec.inner.config;
        let mut closed_previous = false;
        if let Some(cur) = &self.cur {
            let last = cur
                .file
                .entries
                .last()
                .map_or(cur.start_us, |m| m.received_us);
            let len = cur.file.len() + FRAME_HEADER_LEN + frame.jpeg.len() as u64;
            if t - cur.start_us >= cfg.segment_duration_us
                || t - last > cfg.max_gap_us
                || len > cfg.max_segment_bytes
            {
                self.close_current()?;
                closed_previous = true;
            }
        }
        if self.cur.is_none() {
            self.open_segment(t)?;
        }
        let Some(cur) = self.cur.as_mut() else {
            return Err(WriteError::Empty); // unreachable: open_segment set it or failed
        };
        let meta = FrameMeta {
            offset: 0,
            len: frame.jpeg.len() as u32,
            received_us: t,
            captured_us: frame.captured_us,
            width: frame.width,
            height: frame.height,
            crc: format::data_crc(frame.jpeg),
        };
        match cur.file.append(meta, frame.jpeg) {
            Ok(_) => {}
            Err(e) => {
                self.fail(&e);
                self.abandon_current();
                return Err(e.into());
            }
        }
        self.last_t = t;
        self.pending.0 += 1;
        self.pending.1 += frame.jpeg.len() as u64;
        Ok(Appended {
            segment: cur.id,
            index: (cur.file.entries.len() - 1) as u32,
            received_us: t,
            closed_previous,
        })
    }

    /// Group commit: if [`commit_interval_us`](crate::Config::commit_interval_us) has passed
    /// since the last sync (by `now_us`, the caller's clock in µs), syncs the open segment and
    /// publishes its new frames to readers. Returns the number of frames made durable.
    pub fn flush_if_due(&mut self, now_us: u64) -> Result<u64, WriteError> {
        let interval = self.rec.inner.config.commit_interval_us;
        if let Some(last) = self.last_sync_us
            && now_us.saturating_sub(last) < interval
        {
            return Ok(0);
        }
        self.flush(now_us)
    }

    /// Syncs now, whatever the interval. Prefer [`flush_if_due`](Writer::flush_if_due).
    pub fn flush(&mut self, now_us: u64) -> Result<u64, WriteError> {
        self.retry_unclosed();
        let Some(cur) = self.cur.as_mut() else {
            self.report(None);
            return Ok(0);
        };
        let before = cur.file.durable;
        match cur.file.sync() {
            Ok(None) => Ok(0),
            Ok(Some(latency)) => {
                self.last_sync_us = Some(now_us);
                self.rec.inner.note_sync(latency);
                let new = &cur.file.entries[before..cur.file.durable];
                cur.live.entries().extend_from_slice(new);
                let n = new.len() as u64;
                self.durable_total += n;
                self.pending.2 += n;
                self.report(Some(None));
                Ok(n)
            }
            Err(e) => {
                self.fail(&e);
                self.abandon_current();
                Err(e.into())
            }
        }
    }

    /// Closes the open segment (all its frames become durable). Returns it, if there was one.
    /// The writer stays usable: the next frame starts a new segment.
    pub fn close(&mut self) -> Result<Option<SegmentInfo>, WriteError> {
        self.retry_unclosed();
        let info = if self.cur.is_some() {
            Some(self.close_current()?)
        } else {
            None
        };
        self.report(None);
        Ok(info)
    }

    /// Test hook: gives up the writer as a killed process would — no close, no trailer, the
    /// open segment's row stays `open` and its unsynced frames stay in the page cache only.
    /// The next [`Recordings::open`] recovers it.
    #[doc(hidden)]
    pub fn simulate_crash(mut self) {
        if let Some(cur) = self.cur.take() {
            self.drop_live(cur.id);
        }
        self.unclosed.clear();
    }

    fn open_segment(&mut self, t: u64) -> Result<(), WriteError> {
        let inner = &self.rec.inner;
        let cam_dir = inner.dir.join(self.camera.as_str());
        if !cam_dir.is_dir() {
            if let Err(e) = fs::create_dir_all(&cam_dir) {
                // Counted like every other write error (metrics, last_error).
                let e = IoError::new("create directory", &cam_dir, e);
                self.fail(&e);
                return Err(e.into());
            }
            if inner.sync() {
                segment::sync_dir(&inner.dir)?;
            }
        }
        let id = db::insert_open(&inner.conn(), &self.camera, t)?;
        let path = inner.segment_path(&self.camera, id, t);
        let file = match SegmentFile::create(
            path.clone(),
            FileHeader {
                id: id.0,
                start_us: t,
            },
            inner.sync(),
        ) {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&path);
                let _ = db::delete(&inner.conn(), id);
                self.fail(&e);
                return Err(e.into());
            }
        };
        let live = Arc::new(Live {
            id,
            path,
            durable: Default::default(),
        });
        inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.camera.clone(), live.clone());
        self.cur = Some(Current {
            id,
            start_us: t,
            file,
            live,
        });
        Ok(())
    }

    fn close_current(&mut self) -> Result<SegmentInfo, WriteError> {
        let Some(cur) = self.cur.take() else {
            return Err(WriteError::Empty);
        };
        let inner = &self.rec.inner;
        let (id, start_us) = (cur.id, cur.start_us);
        let not_durable = (cur.file.entries.len() - cur.file.durable) as u64;
        let t0 = std::time::Instant::now();
        let result = cur.file.finish();
        let latency = t0.elapsed();
        self.drop_live(id);
        let (entries, len) = match result {
            Ok(x) => x,
            Err(e) => {
                self.fail(&e);
                self.unclosed.push((id, start_us));
                return Err(e.into());
            }
        };
        let info = info_of(id, &self.camera, start_us, &entries, len);
        if let Err(e) = db::close(
            &inner.conn(),
            &info,
            &crate::relative_path(&self.camera, id, start_us),
        ) {
            self.unclosed.push((id, start_us));
            return Err(e.into());
        }
        if inner.sync() {
            inner.note_sync(latency);
        }
        inner.note_closed();
        self.durable_total += not_durable;
        self.pending.2 += not_durable;
        if info.frames == 0 {
            // Nothing in it (a segment whose first append failed): remove it altogether.
            let _ = fs::remove_file(inner.segment_path(&self.camera, id, start_us));
            let _ = db::delete(&inner.conn(), id);
        }
        Ok(info)
    }

    /// After a failed write or sync: gives up the open segment. Its durable frames stay
    /// readable once it is closed by [`retry_unclosed`](Self::retry_unclosed) (or by recovery
    /// at the next start); the next frame starts a new segment.
    fn abandon_current(&mut self) {
        if let Some(cur) = self.cur.take() {
            self.drop_live(cur.id);
            self.unclosed.push((cur.id, cur.start_us));
        }
        self.retry_unclosed();
    }

    /// Closes segments whose close failed, by the same recovery as at start-up.
    fn retry_unclosed(&mut self) {
        let inner = self.rec.inner.clone();
        self.unclosed.retain(|&(id, start_us)| {
            let path = inner.segment_path(&self.camera, id, start_us);
            match segment::recover(&path, inner.sync()) {
                Ok(Some(r)) if !r.entries.is_empty() => {
                    let info = info_of(id, &self.camera, start_us, &r.entries, r.len);
                    db::close(
                        &inner.conn(),
                        &info,
                        &crate::relative_path(&self.camera, id, start_us),
                    )
                    .is_err()
                }
                Ok(_) => {
                    let _ = fs::remove_file(&path);
                    db::delete(&inner.conn(), id).is_err()
                }
                Err(_) => true,
            }
        });
    }

    fn drop_live(&self, id: SegmentId) {
        let mut live = self
            .rec
            .inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if live.get(&self.camera).is_some_and(|l| l.id == id) {
            live.remove(&self.camera);
        }
    }

    fn fail(&mut self, e: &IoError) {
        let msg: String = e.to_string().chars().take(300).collect();
        self.report(Some(Some(msg)));
    }

    fn report(&mut self, error: Option<Option<String>>) {
        let (f, b, d, m) = std::mem::take(&mut self.pending);
        self.rec.inner.note_camera(&self.camera, f, b, d, m, error);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.cur.is_some() {
            let _ = self.close_current();
        }
        self.retry_unclosed();
        self.report(None);
        self.rec
            .inner
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.camera);
    }
}

/// The database row of a closed segment with these frames.
pub(crate) fn info_of(
    id: SegmentId,
    camera: &CameraId,
    start_us: u64,
    entries: &[FrameMeta],
    bytes: u64,
) -> SegmentInfo {
    let first = entries.first();
    let (w, h) = first.map_or((0, 0), |m| (m.width, m.height));
    SegmentInfo {
        id,
        camera: camera.clone(),
        start_us: first.map_or(start_us, |m| m.received_us),
        end_us: entries.last().map_or(start_us, |m| m.received_us),
        frames: entries.len() as u32,
        bytes,
        width: w,
        height: h,
        uniform_dims: entries.iter().all(|m| m.width == w && m.height == h),
        open: false,
    }
}

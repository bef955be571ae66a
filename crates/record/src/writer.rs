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

/// How long (receive time, µs) an interrupted segment that cannot be closed holds back the
/// next one. Meanwhile its durable frames stay readable and the camera does not record;
/// after it, recording goes on in a new segment and the old one's frames are readable again
/// once it closes (a later retry, or recovery at the next start).
const HOLD_BACK_US: u64 = 60_000_000;

/// A writer's counters not yet added to the shared metrics.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Frames appended.
    pub frames: u64,
    /// JPEG bytes appended.
    pub bytes: u64,
    /// Frames made durable.
    pub durable: u64,
    /// Frames the hub could not hand over.
    pub missed: u64,
    /// Write system calls on segment files.
    pub writes: u64,
}

/// A segment whose close failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unclosed {
    id: SegmentId,
    start_us: u64,
    /// The writer's latest receive time when it failed.
    since_us: u64,
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
    pending: Pending,
    /// Segments that failed to close: retried at the next flush and before a new segment
    /// opens.
    unclosed: Vec<Unclosed>,
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
        // Segments an earlier writer of this camera could not close are this one's to close.
        let unclosed = rec
            .inner
            .unclosed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&camera)
            .unwrap_or_default();
        let last_t = unclosed.iter().map(|u| u.since_us).max().unwrap_or(0);
        Ok(Self {
            rec,
            camera,
            cur: None,
            last_t,
            last_sync_us: None,
            durable_total: 0,
            pending: Pending::default(),
            unclosed,
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
        self.pending.missed += frames;
    }

    /// Writes one frame to the camera's open segment (starting a new segment when the
    /// current one is a minute old, too big, or the camera was silent for
    /// [`max_gap_us`](crate::Config::max_gap_us)). The frame is durable only after a later
    /// [`flush_if_due`](Writer::flush_if_due) or [`close`](Writer::close).
    pub fn append(&mut self, frame: &Frame<'_>) -> Result<Appended, WriteError> {
        check(frame)?;
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
        self.pending.frames += 1;
        self.pending.bytes += frame.jpeg.len() as u64;
        self.pending.writes += cur.file.take_writes();
        Ok(Appended {
            segment: cur.id,
            index: (cur.file.entries.len() - 1) as u32,
            received_us: t,
            closed_previous,
        })
    }

    /// Appends `frames` in order, as [`append`](Writer::append) would one by one (the same
    /// segment changes, times kept non-decreasing), but with one `writev` per segment the
    /// batch touches instead of one per frame. Returns how many frames were appended. On an
    /// error the frames before the failing segment's part of the batch stay appended (and
    /// counted), that part and the rest are not: the error is returned as from `append`.
    pub fn append_batch(&mut self, frames: &[Frame<'_>]) -> Result<u64, WriteError> {
        let mut staged: Vec<(FrameMeta, &[u8])> = Vec::with_capacity(frames.len());
        let mut appended = 0;
        for frame in frames {
            if let Err(e) = check(frame) {
                // The frames before it are appended; the error is this frame's.
                self.write_staged(&mut staged)?;
                return Err(e);
            }
            let last_t = staged.last().map_or(self.last_t, |(m, _)| m.received_us);
            let t = frame.received_us.max(last_t).min(i64::MAX as u64);
            if let Some(cur) = &self.cur {
                let cfg = &self.rec.inner.config;
                let (last, len) = match staged.last() {
                    // Offsets of staged frames are not known yet: their sizes are.
                    Some((m, _)) => (m.received_us, m.offset),
                    None => (
                        cur.file
                            .entries
                            .last()
                            .map_or(cur.start_us, |m| m.received_us),
                        cur.file.len(),
                    ),
                };
                let len = len + FRAME_HEADER_LEN + frame.jpeg.len() as u64;
                if t - cur.start_us >= cfg.segment_duration_us
                    || t - last > cfg.max_gap_us
                    || len > cfg.max_segment_bytes
                {
                    appended += self.write_staged(&mut staged)?;
                    self.close_current()?;
                }
            }
            if self.cur.is_none() {
                self.open_segment(t)?;
            }
            let end = match (staged.last(), &self.cur) {
                (Some((m, _)), _) => m.offset,
                (None, Some(cur)) => cur.file.len(),
                (None, None) => return Err(WriteError::Empty), // unreachable: opened above
            };
            staged.push((
                FrameMeta {
                    // Here: where this frame ends, so the next one knows where it starts
                    // (`SegmentFile::append_many` sets the real offsets).
                    offset: end + FRAME_HEADER_LEN + frame.jpeg.len() as u64,
                    len: frame.jpeg.len() as u32,
                    received_us: t,
                    captured_us: frame.captured_us,
                    width: frame.width,
                    height: frame.height,
                    crc: format::data_crc(frame.jpeg),
                },
                frame.jpeg,
            ));
        }
        appended += self.write_staged(&mut staged)?;
        Ok(appended)
    }

    /// Writes the staged frames to the open segment in one go; empties `staged`.
    fn write_staged(&mut self, staged: &mut Vec<(FrameMeta, &[u8])>) -> Result<u64, WriteError> {
        if staged.is_empty() {
            return Ok(0);
        }
        let Some(cur) = self.cur.as_mut() else {
            return Err(WriteError::Empty); // unreachable: frames are staged on a segment
        };
        if let Err(e) = cur.file.append_many(staged) {
            staged.clear();
            self.fail(&e);
            self.abandon_current();
            return Err(e.into());
        }
        let n = staged.len() as u64;
        self.pending.frames += n;
        self.pending.bytes += staged.iter().map(|(m, _)| u64::from(m.len)).sum::<u64>();
        self.pending.writes += cur.file.take_writes();
        if let Some((m, _)) = staged.last() {
            self.last_t = m.received_us;
        }
        staged.clear();
        Ok(n)
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
                self.pending.durable += n;
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
        // Close an interrupted segment first: while it is unclosed its durable frames are
        // readable only through its `Live`, which the new segment replaces.
        if let Some(e) = self.retry_unclosed()
            && self
                .unclosed
                .iter()
                .any(|u| t.saturating_sub(u.since_us) < HOLD_BACK_US)
        {
            self.report(Some(Some(bounded(&e.to_string()))));
            return Err(e);
        }
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
            inner.faults(),
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
        // On failure the `Live` stays: its durable frames remain readable until a retry
        // closes the segment.
        let (entries, len, writes) = match result {
            Ok(x) => x,
            Err(e) => {
                self.fail(&e);
                self.unclosed.push(Unclosed {
                    id,
                    start_us,
                    since_us: self.last_t,
                });
                return Err(e.into());
            }
        };
        let info = info_of(id, &self.camera, start_us, &entries, len);
        if let Err(e) = db::close(
            &inner.conn(),
            &info,
            &crate::relative_path(&self.camera, id, start_us),
        ) {
            self.unclosed.push(Unclosed {
                id,
                start_us,
                since_us: self.last_t,
            });
            return Err(e.into());
        }
        self.drop_live(id);
        if inner.sync() {
            inner.note_sync(latency);
        }
        inner.note_closed();
        self.durable_total += not_durable;
        self.pending.durable += not_durable;
        self.pending.writes += writes;
        if info.frames == 0 {
            // Nothing in it (a segment whose first append failed): remove it altogether.
            let _ = fs::remove_file(inner.segment_path(&self.camera, id, start_us));
            let _ = db::delete(&inner.conn(), id);
        }
        Ok(info)
    }

    /// After a failed write or sync: gives up the open segment. Its durable frames stay
    /// readable (its [`Live`] stays published) until it is closed by
    /// [`retry_unclosed`](Self::retry_unclosed) — at the next flush, or before the next
    /// segment opens — or by recovery at the next start. The next frame starts a new segment.
    fn abandon_current(&mut self) {
        if let Some(cur) = self.cur.take() {
            self.unclosed.push(Unclosed {
                id: cur.id,
                start_us: cur.start_us,
                since_us: self.last_t,
            });
        }
        self.retry_unclosed();
    }

    /// Closes segments whose close failed, by the same recovery as at start-up. A full disk
    /// makes this fail too (the index trailer needs room): they stay on the list, and the
    /// last error is returned.
    fn retry_unclosed(&mut self) -> Option<WriteError> {
        if self.unclosed.is_empty() {
            return None;
        }
        let inner = self.rec.inner.clone();
        let faults = inner.faults();
        let mut done = Vec::new();
        let mut last = None;
        self.unclosed.retain(|u| {
            let path = inner.segment_path(&self.camera, u.id, u.start_us);
            let result = match segment::recover(&path, inner.sync(), &faults) {
                Ok(Some(r)) if !r.entries.is_empty() => {
                    let info = info_of(u.id, &self.camera, u.start_us, &r.entries, r.len);
                    db::close(
                        &inner.conn(),
                        &info,
                        &crate::relative_path(&self.camera, u.id, u.start_us),
                    )
                    .map_err(WriteError::from)
                }
                Ok(_) => {
                    let _ = fs::remove_file(&path);
                    db::delete(&inner.conn(), u.id).map_err(WriteError::from)
                }
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) => {
                    done.push(u.id);
                    false
                }
                Err(e) => {
                    last = Some(e);
                    true
                }
            }
        });
        for id in done {
            // Readers now find it closed in the database.
            self.drop_live(id);
        }
        last
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
        self.report(Some(Some(bounded(&e.to_string()))));
    }

    fn report(&mut self, error: Option<Option<String>>) {
        let p = std::mem::take(&mut self.pending);
        self.rec.inner.note_camera(&self.camera, &p, error);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.cur.is_some() {
            let _ = self.close_current();
        }
        self.retry_unclosed();
        self.report(None);
        let inner = &self.rec.inner;
        if !self.unclosed.is_empty() {
            // Handed to the camera's next writer (their `Live` stays published meanwhile).
            inner
                .unclosed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(self.camera.clone(), std::mem::take(&mut self.unclosed));
        }
        inner
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.camera);
    }
}

/// What a frame must be to be recorded.
fn check(frame: &Frame<'_>) -> Result<(), WriteError> {
    if frame.jpeg.is_empty() {
        return Err(WriteError::Empty);
    }
    if frame.jpeg.len() > MAX_FRAME_BYTES {
        return Err(WriteError::TooLarge(frame.jpeg.len()));
    }
    if frame.width == 0 || frame.height == 0 {
        return Err(WriteError::BadDimensions(frame.width, frame.height));
    }
    Ok(())
}

/// An error message cut to a length a metrics label or a log line can carry.
fn bounded(msg: &str) -> String {
    msg.chars().take(300).collect()
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

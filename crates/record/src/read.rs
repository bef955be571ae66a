//! Reading recordings: segment listings, merged spans, the playback cursor, and the leases
//! that keep retention away from segments being read.
//!
//! Readers only ever see durable frames: a closed segment's trailer lists nothing else, and
//! the open segment is read through the list the writer publishes after each sync. This
//! module must never read a frame without checking its bytes against the index checksum.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use espcam_proto::CameraId;

use crate::error::{IoError, ReadError};
use crate::format::FrameMeta;
use crate::segment;
use crate::{Inner, Live, Recordings, SegmentId, SegmentInfo, db};

/// A time range with recordings, merged across segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Receive time of the first frame, µs.
    pub start_us: u64,
    /// Receive time of the last frame, µs.
    pub end_us: u64,
    /// Frames in the span.
    pub frames: u64,
}

/// A recorded frame as played back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFrame {
    /// The JPEG, byte for byte as recorded.
    pub jpeg: Vec<u8>,
    /// Hub receive time, µs.
    pub received_us: u64,
    /// Camera capture time, µs, if it sent one.
    pub captured_us: Option<u64>,
    /// Width, px.
    pub width: u16,
    /// Height, px.
    pub height: u16,
    /// Segment it came from.
    pub segment: SegmentId,
}

/// Keeps retention from deleting a segment while it is read. Released on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    inner: Arc<Inner>,
    id: SegmentId,
}

impl Lease {
    /// `None` if retention is deleting the segment.
    pub fn take(inner: &Arc<Inner>, id: SegmentId) -> Option<Self> {
        let mut l = inner.leases();
        if l.deleting.contains(&id) {
            return None;
        }
        *l.count.entry(id).or_default() += 1;
        Some(Self {
            inner: inner.clone(),
            id,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut l = self.inner.leases();
        if let Some(n) = l.count.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                l.count.remove(&self.id);
            }
        }
    }
}

/// A segment opened for reading: its file, its durable index, and a lease.
#[derive(Debug)]
pub(crate) struct Opened {
    pub info: SegmentInfo,
    pub path: PathBuf,
    pub file: File,
    pub entries: Vec<FrameMeta>,
    /// Set while the segment is the camera's open one: more frames may become durable.
    pub live: Option<Arc<Live>>,
    pub _lease: Lease,
}

impl Opened {
    /// Opens a closed segment, or `None` if retention deleted it meanwhile.
    fn closed(inner: &Arc<Inner>, info: SegmentInfo) -> Result<Option<Self>, ReadError> {
        let Some(lease) = Lease::take(inner, info.id) else {
            return Ok(None);
        };
        let path = inner.segment_path(&info.camera, info.id, info.start_us);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IoError::new("open segment file", &path, e).into()),
        };
        let entries = segment::load_index(&path)?;
        Ok(Some(Self {
            info,
            path,
            file,
            entries,
            live: None,
            _lease: lease,
        }))
    }

    fn live(
        inner: &Arc<Inner>,
        camera: &CameraId,
        live: Arc<Live>,
    ) -> Result<Option<Self>, ReadError> {
        let entries = live.entries().clone();
        let Some(info) = live_info(camera, &live, &entries) else {
            return Ok(None);
        };
        let Some(lease) = Lease::take(inner, live.id) else {
            return Ok(None);
        };
        let file =
            File::open(&live.path).map_err(|e| IoError::new("open segment file", &live.path, e))?;
        Ok(Some(Self {
            info,
            path: live.path.clone(),
            file,
            entries,
            live: Some(live),
            _lease: lease,
        }))
    }

    /// Picks up frames that became durable since opening. Returns whether any did.
    fn refresh(&mut self, inner: &Arc<Inner>) -> Result<bool, ReadError> {
        let Some(live) = &self.live else {
            return Ok(false);
        };
        let before = self.entries.len();
        let still_live = inner
            .live_of(&self.info.camera)
            .is_some_and(|l| l.id == self.info.id);
        if still_live {
            let e = live.entries();
            if e.len() > before {
                self.entries.extend_from_slice(&e[before..]);
            }
        } else {
            // Closed meanwhile: its trailer now lists every frame.
            self.live = None;
            if let Some(row) = db::get(&inner.conn(), self.info.id)?
                && !row.open
            {
                self.entries = segment::load_index(&self.path)?;
                self.info = row;
            }
        }
        Ok(self.entries.len() > before)
    }

    pub fn read(&self, m: &FrameMeta) -> Result<Vec<u8>, ReadError> {
        segment::read_frame(&self.file, m, &self.path)
    }
}

fn live_info(camera: &CameraId, live: &Live, entries: &[FrameMeta]) -> Option<SegmentInfo> {
    let (first, last) = (entries.first()?, entries.last()?);
    Some(SegmentInfo {
        id: live.id,
        camera: camera.clone(),
        start_us: first.received_us,
        end_us: last.received_us,
        frames: entries.len() as u32,
        bytes: last.end(),
        width: first.width,
        height: first.height,
        uniform_dims: entries
            .iter()
            .all(|m| m.width == first.width && m.height == first.height),
        open: true,
    })
}

impl Recordings {
    /// Segments of `camera` overlapping `[from_us, to_us]`, oldest first, including the open
    /// one (its durable frames only).
    pub fn segments(
        &self,
        camera: &CameraId,
        from_us: u64,
        to_us: u64,
    ) -> Result<Vec<SegmentInfo>, ReadError> {
        // The live segment first, then the database: a segment closed in between shows up
        // in both (deduplicated), never in neither.
        let live = self
            .inner
            .live_of(camera)
            .and_then(|l| live_info(camera, &l, &l.entries()));
        let mut out = db::overlapping(&self.inner.conn(), camera, from_us, to_us)?;
        if let Some(l) = live
            && l.start_us <= to_us
            && l.end_us >= from_us
            && !out.iter().any(|s| s.id == l.id)
        {
            out.push(l);
        }
        Ok(out)
    }

    /// Recorded spans of `camera` overlapping `[from_us, to_us]`: segments merged where the
    /// next starts within [`max_gap_us`](crate::Config::max_gap_us) of the previous end.
    pub fn spans(
        &self,
        camera: &CameraId,
        from_us: u64,
        to_us: u64,
    ) -> Result<Vec<Span>, ReadError> {
        let gap = self.inner.config.max_gap_us;
        let mut out: Vec<Span> = Vec::new();
        for s in self.segments(camera, from_us, to_us)? {
            match out.last_mut() {
                Some(last) if s.start_us <= last.end_us.saturating_add(gap) => {
                    last.end_us = last.end_us.max(s.end_us);
                    last.frames += u64::from(s.frames);
                }
                _ => out.push(Span {
                    start_us: s.start_us,
                    end_us: s.end_us,
                    frames: u64::from(s.frames),
                }),
            }
        }
        Ok(out)
    }

    /// A playback cursor over `camera`'s recordings. Call [`Cursor::seek`] first.
    pub fn cursor(&self, camera: &CameraId) -> Cursor {
        Cursor {
            rec: self.clone(),
            camera: camera.clone(),
            cur: None,
            pos: 0,
        }
    }

    /// Opens the segment after `(start_us, id)`: the next closed one, else the open one.
    pub(crate) fn open_next(
        &self,
        camera: &CameraId,
        after: Option<(u64, SegmentId)>,
    ) -> Result<Option<Opened>, ReadError> {
        let inner = &self.inner;
        let live = inner.live_of(camera);
        let (mut start, mut id) = after.unwrap_or((0, SegmentId(0)));
        loop {
            let next = db::next_after(&inner.conn(), camera, start, id)?;
            match next {
                Some(info) => {
                    (start, id) = (info.start_us, info.id);
                    if let Some(o) = Opened::closed(inner, info)? {
                        return Ok(Some(o));
                    }
                    // Deleted by retention meanwhile: try the one after.
                }
                None => {
                    return match live {
                        Some(l) if Some(l.id) != after.map(|a| a.1) => {
                            Opened::live(inner, camera, l)
                        }
                        _ => Ok(None),
                    };
                }
            }
        }
    }
}

/// Plays back one camera's recordings: [`seek`](Cursor::seek) to an instant, then
/// [`next_frame`](Cursor::next_frame) forward across segments. At the end of what is durable
/// `next_frame` returns `None`; calling it again later returns frames recorded since.
#[derive(Debug)]
pub struct Cursor {
    rec: Recordings,
    camera: CameraId,
    cur: Option<Opened>,
    pos: usize,
}

impl Cursor {
    /// Positions the cursor on the frame at or before `t_us` (receive time); if nothing was
    /// recorded before `t_us`, on the first frame after it. Returns that frame's index entry,
    /// or `None` if the camera has no recordings at all.
    pub fn seek(&mut self, t_us: u64) -> Result<Option<FrameMeta>, ReadError> {
        let inner = &self.rec.inner;
        self.cur = None;
        let live = inner.live_of(&self.camera);
        let mut opened = None;
        if let Some(l) = &live {
            let first = l.entries().first().map(|m| m.received_us);
            if first.is_some_and(|f| f <= t_us) {
                opened = Opened::live(inner, &self.camera, l.clone())?;
            }
        }
        if opened.is_none() {
            let mut t = t_us;
            // Retention may delete the segment between the query and the lease: look again.
            for _ in 0..4 {
                match db::at_or_before(&inner.conn(), &self.camera, t)? {
                    Some(info) => {
                        let start = info.start_us;
                        opened = Opened::closed(inner, info)?;
                        if opened.is_some() {
                            break;
                        }
                        t = start;
                    }
                    None => break,
                }
            }
        }
        let (opened, pos) = match opened {
            Some(o) => {
                let pos = o.entries.partition_point(|m| m.received_us <= t_us);
                (o, pos.saturating_sub(1))
            }
            None => match self.rec.open_next(&self.camera, None)? {
                Some(o) => (o, 0),
                None => return Ok(None),
            },
        };
        let m = opened.entries.get(pos).copied();
        self.cur = Some(opened);
        self.pos = pos;
        Ok(m)
    }

    /// The next frame, or `None` at the end of what is durable now.
    pub fn next_frame(&mut self) -> Result<Option<RecordedFrame>, ReadError> {
        loop {
            let Some(cur) = self.cur.as_mut() else {
                return Ok(None);
            };
            if let Some(m) = cur.entries.get(self.pos).copied() {
                let jpeg = cur.read(&m)?;
                self.pos += 1;
                return Ok(Some(RecordedFrame {
                    jpeg,
                    received_us: m.received_us,
                    captured_us: m.captured_us,
                    width: m.width,
                    height: m.height,
                    segment: cur.info.id,
                }));
            }
            if cur.refresh(&self.rec.inner)? {
                continue;
            }
            let after = (cur.info.start_us, cur.info.id);
            match self.rec.open_next(&self.camera, Some(after))? {
                Some(o) => {
                    self.cur = Some(o);
                    self.pos = 0;
                }
                // Still the live segment, or nothing after: stay for a later call.
                None => return Ok(None),
            }
        }
    }
}

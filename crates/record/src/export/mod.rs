//! Export of a time range as a standard AVI (MJPEG) or Matroska (`V_MJPEG`) file, built on
//! the fly from the segments without a temporary copy.
//!
//! Planning reads only the segments' indexes: it picks the frames, computes every container
//! header and therefore the exact total size (for `Content-Length`) before the first byte
//! leaves. Streaming then emits the head, each frame's container prefix followed by its JPEG
//! bytes read straight from the segment file (checked against the index checksum), and the
//! tail (AVI `idx1`, Matroska `Cues`). The segments are leased for the life of the
//! [`Export`], so retention cannot delete them mid-download.
//!
//! **Resolution changes.** A container track has one size, and players do not all follow a
//! JPEG stream that changes size. An export therefore covers the first run of frames with the
//! same dimensions; [`Export::parts`] lists every run in the requested range (its time range,
//! frames and size), so the caller can offer the others (ask again with a part's range).
//!
//! **Timing.** Frame times are the cameras' capture times when every frame in the export has
//! one and they never go backwards, the hub's receive times otherwise. Matroska carries each
//! frame's own time (millisecond resolution); AVI is constant-rate: frames/duration, where
//! duration = last − first + one mean frame interval.
//!
//! **Size.** AVI here is AVI 1.0 (one RIFF chunk, `idx1`, no OpenDML): fine for any player up
//! to 1 GiB, and read by ffmpeg, VLC and mpv up to the format's 4 GiB ceiling (some old
//! Windows players stop at 1 or 2 GiB). Beyond 4 GiB the export is refused with
//! [`ExportError::TooLargeForAvi`]; Matroska has no such limit.
//!
//! This module must never emit a byte whose total it did not announce, and never stream a
//! frame that fails its checksum (the stream ends with an error instead).

mod avi;
mod mkv;

use std::io::{self, Read};

use espcam_proto::CameraId;

use crate::error::{ExportError, ReadError};
use crate::read::Opened;
use crate::{Recordings, segment};

/// Most frames one export may hold (about 37 hours at 30 fps; 32 bytes of memory each).
pub const MAX_EXPORT_FRAMES: usize = 4_000_000;

/// Frame interval assumed for a single-frame export, µs.
const DEFAULT_INTERVAL_US: u64 = 33_333;

/// Container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// AVI 1.0 with an MJPEG video stream.
    Avi,
    /// Matroska with a `V_MJPEG` track.
    Mkv,
}

impl ExportFormat {
    /// Parses `avi` or `mkv`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "avi" => Some(Self::Avi),
            "mkv" => Some(Self::Mkv),
            _ => None,
        }
    }

    /// `video/x-msvideo` or `video/x-matroska`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Avi => "video/x-msvideo",
            Self::Mkv => "video/x-matroska",
        }
    }

    /// `avi` or `mkv`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Avi => "avi",
            Self::Mkv => "mkv",
        }
    }
}

/// A run of frames with one size inside the requested range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportPart {
    /// Receive time of the run's first frame, µs.
    pub from_us: u64,
    /// Receive time of its last frame, µs.
    pub to_us: u64,
    /// Frames.
    pub frames: usize,
    /// Width, px.
    pub width: u16,
    /// Height, px.
    pub height: u16,
}

/// One frame of the export.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item {
    seg: u32,
    len: u32,
    offset: u64,
    crc: u32,
    /// Time relative to the first frame, µs.
    pub t_us: u64,
}

impl Item {
    pub fn len(&self) -> u64 {
        u64::from(self.len)
    }
}

/// What the container writers need to lay out the file.
#[derive(Debug)]
pub(crate) struct Shape<'a> {
    pub items: &'a [Item],
    pub width: u16,
    pub height: u16,
    /// Mean frame interval, µs.
    pub interval_us: u64,
    /// Total duration, µs.
    pub duration_us: u64,
    /// Receive time of the first frame (µs since the epoch).
    pub start_us: u64,
}

/// A container's layout: everything but the JPEG bytes, computed up front.
pub(crate) trait Layout: std::fmt::Debug + Send {
    /// The file's total size.
    fn total_len(&self) -> u64;
    /// The bytes before the first frame.
    fn head(&self) -> Vec<u8>;
    /// Appends the bytes that precede frame `i`'s JPEG.
    fn frame_prefix(&self, i: usize, out: &mut Vec<u8>);
    /// Appends the bytes that follow frame `i`'s JPEG.
    fn frame_suffix(&self, i: usize, out: &mut Vec<u8>);
    /// The bytes after the last frame.
    fn tail(&self, items: &[Item]) -> Vec<u8>;
}

#[derive(Debug)]
enum Stage {
    Head,
    Frame(usize),
    Tail,
    Done,
}

/// An export being streamed. Read it as [`Read`] or chunk by chunk with
/// [`next_chunk`](Export::next_chunk); exactly [`len`](Export::len) bytes come out.
#[derive(Debug)]
pub struct Export {
    format: ExportFormat,
    parts: Vec<ExportPart>,
    segments: Vec<Opened>,
    items: Vec<Item>,
    layout: Box<dyn Layout>,
    width: u16,
    height: u16,
    duration_us: u64,
    from_us: u64,
    to_us: u64,
    stage: Stage,
    /// Bytes handed out so far.
    sent: u64,
    /// The current chunk for [`Read`], and how much of it was read.
    buf: Vec<u8>,
    buf_pos: usize,
}

impl Export {
    /// The file's exact size, bytes.
    pub fn len(&self) -> u64 {
        self.layout.total_len()
    }

    /// Whether the file is empty (never: an export has at least one frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The format.
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// Frames in the file.
    pub fn frames(&self) -> usize {
        self.items.len()
    }

    /// Duration of the file, µs.
    pub fn duration_us(&self) -> u64 {
        self.duration_us
    }

    /// Width and height of the file's frames, px.
    pub fn dimensions(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// Receive times of the file's first and last frames, µs.
    pub fn range_us(&self) -> (u64, u64) {
        (self.from_us, self.to_us)
    }

    /// Every run of same-size frames in the requested range; the file holds the first.
    pub fn parts(&self) -> &[ExportPart] {
        &self.parts
    }

    /// A download name: `<camera>-<from_us>.<ext>`.
    pub fn file_name(&self, camera: &CameraId) -> String {
        format!("{camera}-{}.{}", self.from_us, self.format.extension())
    }

    /// The next piece of the file, `None` at the end. The first call returns all headers
    /// (no disk read); each later one a frame with its container framing.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let chunk = match self.stage {
            Stage::Head => {
                self.stage = if self.items.is_empty() {
                    Stage::Tail
                } else {
                    Stage::Frame(0)
                };
                self.layout.head()
            }
            Stage::Frame(i) => {
                let it = self.items[i];
                let mut out = Vec::with_capacity(it.len as usize + 64);
                self.layout.frame_prefix(i, &mut out);
                let at = out.len();
                out.resize(at + it.len as usize, 0);
                let seg = &self.segments[it.seg as usize];
                segment::read_into(&seg.file, it.offset, &mut out[at..], it.crc, &seg.path)
                    .map_err(read_to_io)?;
                self.layout.frame_suffix(i, &mut out);
                self.stage = if i + 1 < self.items.len() {
                    Stage::Frame(i + 1)
                } else {
                    Stage::Tail
                };
                out
            }
            Stage::Tail => {
                self.stage = Stage::Done;
                self.layout.tail(&self.items)
            }
            Stage::Done => return Ok(None),
        };
        self.sent += chunk.len() as u64;
        if matches!(self.stage, Stage::Done) && self.sent != self.len() {
            return Err(io::Error::other(format!(
                "export produced {} bytes, announced {}",
                self.sent,
                self.len()
            )));
        }
        Ok(Some(chunk))
    }
}

fn read_to_io(e: ReadError) -> io::Error {
    match e {
        ReadError::Io(e) => io::Error::new(e.source.kind(), e.to_string()),
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl Read for Export {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf_pos == self.buf.len() {
            match self.next_chunk()? {
                Some(c) => {
                    self.buf = c;
                    self.buf_pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.buf_pos);
        out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
        self.buf_pos += n;
        Ok(n)
    }
}

impl Recordings {
    /// Plans an export of `camera`'s frames received in `[from_us, to_us)`.
    pub fn export(
        &self,
        camera: &CameraId,
        from_us: u64,
        to_us: u64,
        format: ExportFormat,
    ) -> Result<Export, ExportError> {
        self.export_at(camera, from_us, to_us, format, None)
    }

    /// Like [`Recordings::export`]; with `fps`, the frames are played at that rate whatever
    /// their recorded times (a timelapse: one frame kept every N seconds, played at 10 fps).
    /// `fps` 0 is taken as 1.
    pub fn export_at(
        &self,
        camera: &CameraId,
        from_us: u64,
        to_us: u64,
        format: ExportFormat,
        fps: Option<u32>,
    ) -> Result<Export, ExportError> {
        if from_us >= to_us {
            return Err(ExportError::BadRange { from_us, to_us });
        }
        let mut segments: Vec<Opened> = Vec::new();
        let mut frames: Vec<(u32, crate::FrameMeta)> = Vec::new();
        // Walk from the first segment overlapping the range forward until past `to`.
        let mut after = match self.segments(camera, from_us, to_us)?.first() {
            Some(s) => predecessor(s),
            None => return Err(ExportError::NoFrames),
        };
        loop {
            let Some(o) = self.open_next(camera, after)? else {
                break;
            };
            if o.info.start_us >= to_us {
                break;
            }
            after = Some((o.info.start_us, o.info.id));
            let idx = segments.len() as u32;
            frames.extend(
                o.entries
                    .iter()
                    .filter(|m| m.received_us >= from_us && m.received_us < to_us)
                    .map(|m| (idx, *m)),
            );
            if frames.len() > MAX_EXPORT_FRAMES {
                return Err(ExportError::TooManyFrames(frames.len()));
            }
            let was_live = o.live.is_some();
            segments.push(o);
            if was_live {
                break;
            }
        }
        let Some(&(_, first)) = frames.first() else {
            return Err(ExportError::NoFrames);
        };
        // Runs of one size.
        let mut parts: Vec<ExportPart> = Vec::new();
        for (_, m) in &frames {
            match parts.last_mut() {
                Some(p) if p.width == m.width && p.height == m.height => {
                    p.to_us = m.received_us;
                    p.frames += 1;
                }
                _ => parts.push(ExportPart {
                    from_us: m.received_us,
                    to_us: m.received_us,
                    frames: 1,
                    width: m.width,
                    height: m.height,
                }),
            }
        }
        frames.truncate(parts[0].frames);
        let use_capture = frames.iter().all(|(_, m)| m.captured_us.is_some())
            && frames
                .windows(2)
                .all(|w| w[0].1.captured_us <= w[1].1.captured_us);
        let t_of = |m: &crate::FrameMeta| {
            if use_capture {
                m.captured_us.unwrap_or(m.received_us)
            } else {
                m.received_us
            }
        };
        let t0 = t_of(&first);
        let step_us = fps.map(|f| 1_000_000 / u64::from(f.clamp(1, 1_000_000)));
        let items: Vec<Item> = frames
            .iter()
            .enumerate()
            .map(|(i, (seg, m))| Item {
                seg: *seg,
                len: m.len,
                offset: m.offset,
                crc: m.crc,
                t_us: step_us.map_or(t_of(m) - t0, |s| i as u64 * s),
            })
            .collect();
        let n = items.len() as u64;
        let span = items.last().map_or(0, |i| i.t_us);
        let interval_us = if n >= 2 && span > 0 {
            (span / (n - 1)).max(1)
        } else {
            DEFAULT_INTERVAL_US
        };
        let shape = Shape {
            items: &items,
            width: first.width,
            height: first.height,
            interval_us,
            duration_us: span + interval_us,
            start_us: first.received_us,
        };
        let layout: Box<dyn Layout> = match format {
            ExportFormat::Avi => {
                let l = avi::AviLayout::new(&shape);
                if l.total_len() > u64::from(u32::MAX) {
                    return Err(ExportError::TooLargeForAvi(l.total_len()));
                }
                Box::new(l)
            }
            ExportFormat::Mkv => Box::new(mkv::MkvLayout::new(&shape)),
        };
        Ok(Export {
            format,
            from_us: parts[0].from_us,
            to_us: parts[0].to_us,
            parts,
            segments,
            width: first.width,
            height: first.height,
            duration_us: span + interval_us,
            items,
            layout,
            stage: Stage::Head,
            sent: 0,
            buf: Vec::new(),
            buf_pos: 0,
        })
    }
}

/// The cursor position just before segment `s`, for [`Recordings::open_next`].
fn predecessor(s: &crate::SegmentInfo) -> Option<(u64, crate::SegmentId)> {
    Some((s.start_us, crate::SegmentId(s.id.0 - 1)))
}

//! Recordings one hub of a cluster serves for another: the plain data both ends share.
//!
//! Recordings stay on the node that made them. Another node lists their spans, downloads an
//! export and plays them back *through* that node, by requests on `espcam.rec.<node>`
//! (docs/CLUSTER.md). The cluster service carries these over NATS, the HTTP layer asks
//! them for a browser and answers them for another node; this module is the shape they
//! agree on, without either importing the other. No I/O here.
//!
//! NATS limits a message (1 MiB by default), so nothing large crosses in one piece: an
//! export is read chunk after chunk by offset from a session the holding node keeps open,
//! and playback pulls batches of frames by time cursor.

use std::future::Future;
use std::pin::Pin;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Largest answer body the asking node requests (the holding node also keeps under its NATS
/// server's `max_payload`).
pub const MAX_CHUNK: usize = 256 << 10;
/// Most frames in one playback batch.
pub const MAX_BATCH_FRAMES: u32 = 32;

/// What one node asks another about the recordings that node keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RecordingRequest {
    /// That node's `GET /api/cameras/{camera}/recordings?{query}` (JSON answer).
    Spans {
        /// The camera, as the asking client named it.
        camera: String,
        /// The raw query string (at most [`crate::state::nodes::MAX_QUERY`] bytes).
        query: String,
    },
    /// Plans that node's `GET /api/cameras/{camera}/export?{query}` and keeps it open as a
    /// session: answers [`ExportOpened`] as JSON, or that API's error.
    ExportOpen {
        /// The camera.
        camera: String,
        /// The raw query string (`from`, `to`, `format`).
        query: String,
    },
    /// The export's bytes from `offset` (which must be where the last read ended): a
    /// [`BodyKind::Bytes`] answer of at most `max` bytes; the session ends with its last byte.
    ExportRead {
        /// From [`ExportOpened::session`].
        session: u64,
        /// Bytes already received.
        offset: u64,
        /// Most bytes wanted (capped by the holding node).
        max: u32,
    },
    /// The asking node gave up on an export (its client went away): the session ends.
    ExportClose {
        /// The session.
        session: u64,
    },
    /// Recorded frames of `camera` from the time cursor `at_us` on: with `after` false from
    /// the frame at or before `at_us` (the playback socket's `from` and seek), with `after`
    /// true only frames received after it (the next batch). A [`BodyKind::Frames`] answer.
    Frames {
        /// The camera.
        camera: String,
        /// The cursor, µs since the epoch (receive time).
        at_us: u64,
        /// Only frames strictly after `at_us`.
        after: bool,
        /// Most frames (capped at [`MAX_BATCH_FRAMES`]).
        max_frames: u32,
        /// Most JPEG bytes (capped by the holding node; one frame larger than the cap is
        /// refused, not cut).
        max_bytes: u32,
    },
}

/// How an answer's body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// JSON: the API's answer, or `{"error": …}`.
    Json = 0,
    /// Raw bytes of an export.
    Bytes = 1,
    /// A [`FrameBatch`] ([`FrameBatch::encode`]).
    Frames = 2,
}

/// The answering node's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingAnswer {
    /// HTTP status, as that node's API would answer.
    pub status: u16,
    /// What the body is.
    pub kind: BodyKind,
    /// The body.
    pub body: Bytes,
}

impl RecordingAnswer {
    /// Wire form: status (u16 BE), kind (one byte), body.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(3 + self.body.len());
        b.put_u16(self.status);
        b.put_u8(self.kind as u8);
        b.extend_from_slice(&self.body);
        b.freeze()
    }

    /// Reads [`encode`](Self::encode)'s form; `None` if it is not one.
    pub fn decode(mut payload: Bytes) -> Option<Self> {
        if payload.len() < 3 {
            return None;
        }
        let head = payload.split_to(3);
        let status = u16::from_be_bytes([head[0], head[1]]);
        let kind = match head[2] {
            0 => BodyKind::Json,
            1 => BodyKind::Bytes,
            2 => BodyKind::Frames,
            _ => return None,
        };
        if !(100..=599).contains(&status) {
            return None;
        }
        Some(Self {
            status,
            kind,
            body: payload,
        })
    }
}

/// The answer to [`RecordingRequest::ExportOpen`]: what the HTTP response's headers say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOpened {
    /// The session to read.
    pub session: u64,
    /// The file's exact size, bytes.
    pub len: u64,
    /// The download name.
    pub file_name: String,
    /// `video/x-matroska` or `video/x-msvideo`.
    pub content_type: String,
    /// The `X-Espcam-Parts` header (`from-to` µs, comma-separated).
    pub parts: String,
}

/// One frame of a [`FrameBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFrame {
    /// Hub receive time on the holding node, µs.
    pub received_us: u64,
    /// Camera capture time, µs.
    pub captured_us: Option<u64>,
    /// Width, px.
    pub width: u16,
    /// Height, px.
    pub height: u16,
    /// The JPEG as recorded.
    pub jpeg: Bytes,
}

/// Frames of one playback pull, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameBatch {
    /// The frames.
    pub frames: Vec<BatchFrame>,
    /// The batch reached the end of what is recorded (durable) now.
    pub end: bool,
}

/// Bytes before each frame's JPEG in a batch: received (u64), has-capture flag (u8),
/// captured (u64), width, height (u16 each), JPEG length (u32), all big-endian.
const FRAME_HEAD: usize = 8 + 1 + 8 + 2 + 2 + 4;

/// Why a frame batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Shorter than its headers say.
    #[error("frame batch cut short: {got} bytes where {want} were announced")]
    Truncated {
        /// Bytes there.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// A flag byte other than 0 or 1.
    #[error("frame batch flag {0} (expected 0 or 1)")]
    Flag(u8),
    /// Bytes left over after the last frame.
    #[error("frame batch has {0} bytes after its last frame")]
    Trailing(usize),
}

impl FrameBatch {
    /// Wire form: end flag (u8), frame count (u16 BE), then per frame its header
    /// (received µs u64, capture flag u8, captured µs u64, width u16, height u16, JPEG
    /// length u32, big-endian) and its JPEG.
    pub fn encode(&self) -> Bytes {
        let total: usize = self.frames.iter().map(|f| FRAME_HEAD + f.jpeg.len()).sum();
        let mut b = BytesMut::with_capacity(3 + total);
        b.put_u8(u8::from(self.end));
        b.put_u16(u16::try_from(self.frames.len()).unwrap_or(u16::MAX));
        for f in self.frames.iter().take(usize::from(u16::MAX)) {
            b.put_u64(f.received_us);
            b.put_u8(u8::from(f.captured_us.is_some()));
            b.put_u64(f.captured_us.unwrap_or(0));
            b.put_u16(f.width);
            b.put_u16(f.height);
            b.put_u32(u32::try_from(f.jpeg.len()).unwrap_or(u32::MAX));
            b.extend_from_slice(&f.jpeg);
        }
        b.freeze()
    }

    /// Reads [`encode`](Self::encode)'s form; every length is checked against the bytes.
    pub fn decode(mut b: Bytes) -> Result<Self, BatchError> {
        use bytes::Buf as _;
        let need = |b: &Bytes, want: usize| {
            if b.len() < want {
                Err(BatchError::Truncated { got: b.len(), want })
            } else {
                Ok(())
            }
        };
        need(&b, 3)?;
        let end = match b.get_u8() {
            0 => false,
            1 => true,
            other => return Err(BatchError::Flag(other)),
        };
        let count = usize::from(b.get_u16());
        let mut frames = Vec::with_capacity(count.min(usize::from(u8::MAX)));
        for _ in 0..count {
            need(&b, FRAME_HEAD)?;
            let received_us = b.get_u64();
            let has = b.get_u8();
            let captured = b.get_u64();
            let captured_us = match has {
                0 => None,
                1 => Some(captured),
                other => return Err(BatchError::Flag(other)),
            };
            let width = b.get_u16();
            let height = b.get_u16();
            let len = b.get_u32() as usize;
            need(&b, len)?;
            frames.push(BatchFrame {
                received_us,
                captured_us,
                width,
                height,
                jpeg: b.split_to(len),
            });
        }
        if !b.is_empty() {
            return Err(BatchError::Trailing(b.len()));
        }
        Ok(Self { frames, end })
    }
}

/// A boxed answer in the making.
pub type RecordingFuture = Pin<Box<dyn Future<Output = RecordingAnswer> + Send>>;

/// Answers [`RecordingRequest`]s for this hub's own recordings (implemented by the HTTP
/// layer with its handlers, handed to the cluster service by `server`). `max_body` is the
/// largest body the transport carries; an answer never exceeds it.
pub trait RecordingService: Send + Sync + std::fmt::Debug {
    /// Answers one request.
    fn serve(&self, request: RecordingRequest, max_body: usize) -> RecordingFuture;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_batches_survive_their_framing() {
        let a = RecordingAnswer {
            status: 200,
            kind: BodyKind::Frames,
            body: Bytes::from_static(b"xyz"),
        };
        assert_eq!(RecordingAnswer::decode(a.encode()), Some(a));
        assert_eq!(RecordingAnswer::decode(Bytes::from_static(&[0, 200])), None);
        assert_eq!(
            RecordingAnswer::decode(Bytes::from_static(&[0, 200, 3])),
            None
        );
        assert_eq!(
            RecordingAnswer::decode(Bytes::from_static(&[0, 42, 0])),
            None
        );

        let batch = FrameBatch {
            frames: vec![
                BatchFrame {
                    received_us: 10,
                    captured_us: Some(9),
                    width: 160,
                    height: 120,
                    jpeg: Bytes::from_static(&[0xFF, 0xD8, 1]),
                },
                BatchFrame {
                    received_us: 20,
                    captured_us: None,
                    width: 160,
                    height: 120,
                    jpeg: Bytes::from_static(&[0xFF, 0xD8, 2, 3]),
                },
            ],
            end: true,
        };
        let wire = batch.encode();
        assert_eq!(FrameBatch::decode(wire.clone()), Ok(batch));
        // Cut anywhere, it is refused, never misread.
        for cut in 0..wire.len() {
            assert!(
                FrameBatch::decode(wire.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = BytesMut::from(&wire[..]);
        longer.extend_from_slice(b"!");
        assert_eq!(
            FrameBatch::decode(longer.freeze()),
            Err(BatchError::Trailing(1))
        );
    }
}

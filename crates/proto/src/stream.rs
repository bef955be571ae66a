//! The stream channel (port 6972, path `/ws/stream`): one binary WebSocket message per frame.
//!
//! A frame is a 28-byte [`FrameHeader`] followed by exactly one JPEG, or a bare JPEG (starting
//! `FF D8`) with no header. [`decode_frame`] checks everything and trusts nothing: the size
//! limit comes first, the header's length field is only a cross-check against the bytes that
//! actually arrived, and the JPEG's own markers are walked to find where the image ends.
//!
//! Header layout (all integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `ECAM` (`45 43 41 4D`) |
//! | 4 | 1 | version (`1`) |
//! | 5 | 1 | flags ([`FrameFlags`]) |
//! | 6 | 2 | reserved, `0` on send, ignored on receive |
//! | 8 | 4 | sequence number (wraps) |
//! | 12 | 8 | capture time, µs since the Unix epoch |
//! | 20 | 2 | width, px |
//! | 22 | 2 | height, px |
//! | 24 | 4 | JPEG length, bytes |

use crate::jpeg::{self, JpegError};

/// Magic bytes at the start of every framed message.
pub const MAGIC: [u8; 4] = *b"ECAM";
/// Header version this crate writes and reads.
pub const HEADER_VERSION: u8 = 1;
/// Size of [`FrameHeader`] on the wire.
pub const HEADER_LEN: usize = 28;
/// Default largest accepted frame message (header + JPEG): 2 MiB.
pub const DEFAULT_MAX_FRAME: usize = 2 * 1024 * 1024;

/// Header flag bits. Unknown bits are ignored by receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameFlags(pub u8);

impl FrameFlags {
    /// The frame comes from a virtual camera (test pattern).
    pub const SYNTHETIC: u8 = 0b0000_0001;
    /// The capture time is not wall-clock time yet (clock not synced): do not compute
    /// latency from it.
    pub const CLOCK_UNSYNCED: u8 = 0b0000_0010;

    /// Whether `bit` is set.
    pub const fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// The fixed-size header in front of a JPEG on the stream channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Flag bits.
    pub flags: FrameFlags,
    /// Frame sequence number, +1 per frame sent, wrapping.
    pub sequence: u32,
    /// Capture time, µs since the Unix epoch.
    pub timestamp_us: u64,
    /// Image width, px.
    pub width: u16,
    /// Image height, px.
    pub height: u16,
    /// Length of the JPEG that follows, bytes.
    pub jpeg_len: u32,
}

impl FrameHeader {
    /// The header's wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = HEADER_VERSION;
        b[5] = self.flags.0;
        b[8..12].copy_from_slice(&self.sequence.to_be_bytes());
        b[12..20].copy_from_slice(&self.timestamp_us.to_be_bytes());
        b[20..22].copy_from_slice(&self.width.to_be_bytes());
        b[22..24].copy_from_slice(&self.height.to_be_bytes());
        b[24..28].copy_from_slice(&self.jpeg_len.to_be_bytes());
        b
    }

    /// Parses the header at the start of `buf` (checks magic, version, length only).
    pub fn parse(buf: &[u8]) -> Result<Self, FrameError> {
        if buf.len() < MAGIC.len() || buf[..4] != MAGIC {
            return Err(FrameError::BadMagic);
        }
        let h: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(FrameError::ShortHeader(buf.len()))?;
        if h[4] != HEADER_VERSION {
            return Err(FrameError::UnsupportedVersion(h[4]));
        }
        let u16_at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&h[12..20]);
        Ok(Self {
            flags: FrameFlags(h[5]),
            sequence: u32_at(8),
            timestamp_us: u64::from_be_bytes(ts),
            width: u16_at(20),
            height: u16_at(22),
            jpeg_len: u32_at(24),
        })
    }
}

/// Limits applied by [`decode_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest accepted message, header included.
    pub max_frame: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// What followed the first complete JPEG in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trailing {
    /// Nothing: the message was exactly one image.
    None,
    /// A second JPEG began right after the first (OV3660 driver quirk); it was dropped.
    SecondImage(usize),
    /// Other bytes (padding) after the image; dropped.
    Bytes(usize),
}

/// A decoded frame: borrowed from the message, nothing copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header, if the message had one (`None` for a bare JPEG).
    pub header: Option<FrameHeader>,
    /// The first complete JPEG image.
    pub jpeg: &'a [u8],
    /// Width from the JPEG itself.
    pub width: u16,
    /// Height from the JPEG itself.
    pub height: u16,
    /// What followed the image.
    pub trailing: Trailing,
}

/// Why a stream message is not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Zero bytes.
    #[error("empty frame message")]
    Empty,
    /// Bigger than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Message length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Neither a header (`ECAM`) nor a JPEG (`FF D8`).
    #[error("not a frame: expected header magic \"ECAM\" or JPEG start FF D8")]
    BadMagic,
    /// Magic present, but fewer than [`HEADER_LEN`] bytes.
    #[error("frame header truncated: {0} of 28 bytes")]
    ShortHeader(usize),
    /// A header version this crate does not know.
    #[error("frame header version {0} unsupported, expected 1")]
    UnsupportedVersion(u8),
    /// A header with no JPEG after it.
    #[error("frame has a header but no JPEG")]
    HeaderOnly,
    /// The header's length field disagrees with the bytes that arrived.
    #[error("frame header says {declared} JPEG bytes but {actual} arrived")]
    LengthMismatch {
        /// Length in the header.
        declared: u32,
        /// Bytes after the header.
        actual: usize,
    },
    /// The header's dimensions disagree with the JPEG's.
    #[error("frame header says {header_w}x{header_h} but the JPEG is {jpeg_w}x{jpeg_h}")]
    DimensionMismatch {
        /// Header width.
        header_w: u16,
        /// Header height.
        header_h: u16,
        /// JPEG width.
        jpeg_w: u16,
        /// JPEG height.
        jpeg_h: u16,
    },
    /// The JPEG itself is broken.
    #[error(transparent)]
    Jpeg(#[from] JpegError),
}

/// Decodes one stream-channel binary message. Never panics; see the module docs.
pub fn decode_frame<'a>(buf: &'a [u8], limits: &FrameLimits) -> Result<Frame<'a>, FrameError> {
    if buf.is_empty() {
        return Err(FrameError::Empty);
    }
    if buf.len() > limits.max_frame {
        return Err(FrameError::TooLarge {
            len: buf.len(),
            max: limits.max_frame,
        });
    }
    let (header, payload) = if buf.starts_with(&[0xFF, 0xD8]) {
        (None, buf)
    } else {
        let h = FrameHeader::parse(buf)?;
        let payload = &buf[HEADER_LEN..];
        if payload.is_empty() {
            return Err(FrameError::HeaderOnly);
        }
        if usize::try_from(h.jpeg_len).ok() != Some(payload.len()) {
            return Err(FrameError::LengthMismatch {
                declared: h.jpeg_len,
                actual: payload.len(),
            });
        }
        (Some(h), payload)
    };
    let info = jpeg::scan(payload)?;
    if let Some(h) = &header
        && (h.width, h.height) != (info.width, info.height)
    {
        return Err(FrameError::DimensionMismatch {
            header_w: h.width,
            header_h: h.height,
            jpeg_w: info.width,
            jpeg_h: info.height,
        });
    }
    let rest = &payload[info.len..];
    let trailing = if rest.is_empty() {
        Trailing::None
    } else if rest.starts_with(&[0xFF, 0xD8]) {
        Trailing::SecondImage(rest.len())
    } else {
        Trailing::Bytes(rest.len())
    };
    Ok(Frame {
        header,
        jpeg: &payload[..info.len],
        width: info.width,
        height: info.height,
        trailing,
    })
}

/// Builds a complete framed message (header + JPEG) in one buffer. Shells that can send two
/// slices as one message (WebSocket fragments, vectored writes) should send
/// [`FrameHeader::encode`] and the JPEG separately instead, to avoid copying the JPEG.
pub fn encode_frame(header: &FrameHeader, jpeg: &[u8]) -> alloc::vec::Vec<u8> {
    let mut v = alloc::vec::Vec::with_capacity(HEADER_LEN + jpeg.len());
    v.extend_from_slice(&header.encode());
    v.extend_from_slice(jpeg);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::tests::tiny_jpeg;

    fn header_for(j: &[u8], w: u16, h: u16) -> FrameHeader {
        FrameHeader {
            flags: FrameFlags(FrameFlags::SYNTHETIC),
            sequence: 42,
            timestamp_us: 1_700_000_000_123_456,
            width: w,
            height: h,
            jpeg_len: j.len() as u32,
        }
    }

    #[test]
    fn golden_header_bytes() {
        let h = FrameHeader {
            flags: FrameFlags(1),
            sequence: 0x0102_0304,
            timestamp_us: 0x0001_0203_0405_0607,
            width: 640,
            height: 480,
            jpeg_len: 10_000,
        };
        let expected: [u8; 28] = [
            0x45, 0x43, 0x41, 0x4D, // magic
            0x01, 0x01, 0x00, 0x00, // version, flags, reserved
            0x01, 0x02, 0x03, 0x04, // sequence
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // timestamp
            0x02, 0x80, 0x01, 0xE0, // 640 x 480
            0x00, 0x00, 0x27, 0x10, // 10000
        ];
        assert_eq!(h.encode(), expected);
        assert_eq!(FrameHeader::parse(&expected), Ok(h));
    }

    #[test]
    fn framed_and_bare() {
        let j = tiny_jpeg(640, 480, &[1; 50]);
        let msg = encode_frame(&header_for(&j, 640, 480), &j);
        let f = decode_frame(&msg, &FrameLimits::default()).unwrap();
        assert_eq!(f.jpeg, &j[..]);
        assert_eq!(f.header.unwrap().sequence, 42);
        let bare = decode_frame(&j, &FrameLimits::default()).unwrap();
        assert_eq!((bare.header, bare.width, bare.height), (None, 640, 480));
    }

    #[test]
    fn bad_inputs() {
        let lim = FrameLimits::default();
        let j = tiny_jpeg(320, 240, &[1; 50]);
        let msg = encode_frame(&header_for(&j, 320, 240), &j);
        assert_eq!(decode_frame(&[], &lim), Err(FrameError::Empty));
        assert_eq!(decode_frame(b"hello", &lim), Err(FrameError::BadMagic));
        assert_eq!(
            decode_frame(&msg[..10], &lim),
            Err(FrameError::ShortHeader(10))
        );
        assert_eq!(decode_frame(&msg[..28], &lim), Err(FrameError::HeaderOnly));
        assert!(matches!(
            decode_frame(&msg[..msg.len() - 1], &lim),
            Err(FrameError::LengthMismatch { .. })
        ));
        let small = FrameLimits { max_frame: 64 };
        assert!(matches!(
            decode_frame(&msg, &small),
            Err(FrameError::TooLarge { .. })
        ));
        let wrong_dims = encode_frame(&header_for(&j, 640, 480), &j);
        assert!(matches!(
            decode_frame(&wrong_dims, &lim),
            Err(FrameError::DimensionMismatch { .. })
        ));
        let mut v2 = msg.clone();
        v2[4] = 2;
        assert_eq!(
            decode_frame(&v2, &lim),
            Err(FrameError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_frame(&j[..j.len() - 2], &lim),
            Err(FrameError::Jpeg(JpegError::Truncated(j.len() - 2)))
        );
    }

    #[test]
    fn double_jpeg_keeps_first() {
        let a = tiny_jpeg(320, 240, &[1; 30]);
        let mut both = a.clone();
        both.extend_from_slice(&tiny_jpeg(320, 240, &[2; 30]));
        let f = decode_frame(&both, &FrameLimits::default()).unwrap();
        assert_eq!(f.jpeg, &a[..]);
        assert_eq!(f.trailing, Trailing::SecondImage(a.len()));
    }
}

//! The benchmark's frames: a real JPEG padded to an exact size with comment (`COM`)
//! segments, carrying a send timestamp and sequence number where a viewer can find them.
//!
//! The stamp lives inside the JPEG (in the first `COM` segment, right after `SOI`) rather
//! than only in the stream header, because viewers receive the bare JPEG: this lets a viewer
//! measure relay latency and count skipped frames from the binary message alone, with or
//! without `?meta=1`. Padding must never make the JPEG invalid: the hub checks every frame
//! with `espcam_proto::decode_frame`, and a test here does too.

use anyhow::{Context, bail};
use espcam_proto::{FrameFlags, FrameHeader, HEADER_LEN};

/// Marks our stamp inside the first `COM` segment.
const STAMP_MAGIC: &[u8; 8] = b"ECBENCH1";
/// Offset of the stamp's magic in the bare JPEG: after `SOI` (2) and the `COM` marker and
/// length (4).
const STAMP_AT: usize = 6;
/// Magic + sequence (u64) + send time (u64).
const STAMP_LEN: usize = STAMP_MAGIC.len() + 16;
/// Largest payload of one JPEG segment (the length field counts itself).
const MAX_SEGMENT_PAYLOAD: usize = 65_533;

/// A reusable framed message (header + padded JPEG); [`Template::stamp`] patches the
/// sequence and time in place so sending allocates nothing but the outgoing copy.
#[derive(Debug, Clone)]
pub struct Template {
    buf: Vec<u8>,
    width: u16,
    height: u16,
}

impl Template {
    /// Builds a `frame_size`-byte JPEG (the JPEG alone, header not counted) from a real
    /// 160×120 test image.
    pub fn new(frame_size: usize) -> anyhow::Result<Self> {
        let (width, height) = (160u16, 120u16);
        let mut rgb = Vec::with_capacity(usize::from(width) * usize::from(height) * 3);
        for y in 0..height {
            for x in 0..width {
                // Smooth gradients compress small, leaving room to pad to small sizes.
                rgb.extend_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 96]);
            }
        }
        let mut base = Vec::new();
        jpeg_encoder::Encoder::new(&mut base, 50)
            .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
            .context("encoding the benchmark's test image")?;
        let jpeg = pad(&base, frame_size)?;
        let header = FrameHeader {
            flags: FrameFlags(FrameFlags::SYNTHETIC),
            sequence: 0,
            timestamp_us: 0,
            width,
            height,
            jpeg_len: u32::try_from(jpeg.len()).context("frame size does not fit in 32 bits")?,
        };
        let mut buf = header.encode().to_vec();
        buf.extend_from_slice(&jpeg);
        Ok(Self { buf, width, height })
    }

    /// The message with `seq` and `sent_us` written into the header and the stamp.
    pub fn stamp(&mut self, seq: u64, sent_us: u64) -> &[u8] {
        let header = FrameHeader {
            flags: FrameFlags(FrameFlags::SYNTHETIC),
            sequence: seq as u32,
            timestamp_us: sent_us,
            width: self.width,
            height: self.height,
            jpeg_len: (self.buf.len() - HEADER_LEN) as u32,
        };
        self.buf[..HEADER_LEN].copy_from_slice(&header.encode());
        let at = HEADER_LEN + STAMP_AT + STAMP_MAGIC.len();
        self.buf[at..at + 8].copy_from_slice(&seq.to_be_bytes());
        self.buf[at + 8..at + 16].copy_from_slice(&sent_us.to_be_bytes());
        &self.buf
    }
}

/// Reads `(seq, sent_us)` from a bare JPEG built by [`Template`]; `None` for anything else.
pub fn read_stamp(jpeg: &[u8]) -> Option<(u64, u64)> {
    let s = jpeg.get(STAMP_AT..STAMP_AT + STAMP_LEN)?;
    if &s[..8] != STAMP_MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(s[8..16].try_into().ok()?);
    let sent = u64::from_be_bytes(s[16..24].try_into().ok()?);
    Some((seq, sent))
}

/// Inserts `COM` segments after `SOI` so the JPEG is exactly `size` bytes. The first one
/// holds the stamp.
fn pad(base: &[u8], size: usize) -> anyhow::Result<Vec<u8>> {
    if base.get(..2) != Some(&[0xFF, 0xD8][..]) {
        bail!("the test image is not a JPEG");
    }
    let min = base.len() + 4 + STAMP_LEN;
    if size < min {
        bail!("frame size {size} too small: the benchmark's JPEG needs at least {min} bytes");
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&base[..2]);
    let mut extra = size - base.len(); // bytes of COM segments to add, markers included
    let mut first = true;
    while extra > 0 {
        // Each segment costs 4 bytes of marker and length; never leave a remainder under 5
        // (a segment needs at least its 4 bytes plus, for simplicity, one payload byte).
        let mut payload = (extra - 4).min(MAX_SEGMENT_PAYLOAD);
        let rest = extra - 4 - payload;
        if rest > 0 && rest < 5 {
            payload -= 5 - rest;
        }
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((payload + 2) as u16).to_be_bytes());
        let start = out.len();
        out.resize(start + payload, b' ');
        if first {
            out[start..start + STAMP_MAGIC.len()].copy_from_slice(STAMP_MAGIC);
            first = false;
        }
        extra -= 4 + payload;
    }
    out.extend_from_slice(&base[2..]);
    debug_assert_eq!(out.len(), size);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use espcam_proto::{FrameLimits, decode_frame};

    #[test]
    fn padded_frames_are_valid_and_exact() {
        for size in [
            4_000, 10_240, 65_540, 65_541, 65_542, 65_543, 131_075, 200_000,
        ] {
            let mut t = Template::new(size).unwrap();
            let msg = t.stamp(7, 1_700_000_000_000_001).to_vec();
            assert_eq!(msg.len(), HEADER_LEN + size, "size {size}");
            let f = decode_frame(&msg, &FrameLimits::default()).unwrap();
            assert_eq!(f.jpeg.len(), size);
            assert_eq!((f.width, f.height), (160, 120));
            assert_eq!(f.header.unwrap().timestamp_us, 1_700_000_000_000_001);
            assert_eq!(read_stamp(f.jpeg), Some((7, 1_700_000_000_000_001)));
            // The pixels still decode.
            let mut d = jpeg_decoder::Decoder::new(f.jpeg);
            let pixels = d.decode().unwrap();
            assert_eq!(pixels.len(), 160 * 120 * 3);
        }
    }

    #[test]
    fn too_small_is_a_clear_error() {
        let e = Template::new(100).unwrap_err().to_string();
        assert!(e.contains("frame size 100 too small"), "{e}");
        assert_eq!(read_stamp(b"\xFF\xD8 nothing"), None);
    }
}

//! Just enough JPEG to check a frame: where the first image ends and how big it is.
//!
//! Walks the marker segments (never trusting a segment length beyond the buffer), finds the
//! frame dimensions in the SOFn segment, skips entropy-coded data (where `FF 00` and `FF D0..D7`
//! are not markers), and stops at the first EOI. This is what lets the hub keep the first of
//! two JPEGs that the OV3660 driver sometimes leaves in one buffer, and refuse truncated ones.

/// What a JPEG scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    /// Length of the first complete image, SOI through EOI inclusive.
    pub len: usize,
    /// Width from the SOF segment.
    pub width: u16,
    /// Height from the SOF segment.
    pub height: u16,
}

/// Why bytes are not one complete JPEG image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// Does not start with the SOI marker `FF D8`.
    #[error("not a JPEG: expected start marker FF D8")]
    NoSoi,
    /// Ends before the EOI marker `FF D9`.
    #[error("JPEG truncated: no end marker FF D9 within {0} bytes")]
    Truncated(usize),
    /// A byte where a marker was expected is not `FF`, or a marker is invalid here.
    #[error("JPEG corrupt: bad marker at offset {0}")]
    BadMarker(usize),
    /// A segment length smaller than 2 or a SOF segment too short to hold dimensions.
    #[error("JPEG corrupt: bad segment length at offset {0}")]
    BadSegment(usize),
    /// No SOF segment, or one with a zero width or height.
    #[error("JPEG has no frame header with a non-zero size")]
    NoDimensions,
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Scans the first JPEG image in `buf`.
pub fn scan(buf: &[u8]) -> Result<JpegInfo, JpegError> {
    let len = buf.len();
    if len < 2 || buf[0] != 0xFF || buf[1] != 0xD8 {
        return Err(JpegError::NoSoi);
    }
    let truncated = JpegError::Truncated(len);
    let mut dims: Option<(u16, u16)> = None;
    let mut i = 2;
    loop {
        if buf.get(i) != Some(&0xFF) {
            return Err(if i >= len {
                truncated
            } else {
                JpegError::BadMarker(i)
            });
        }
        // Any number of fill bytes FF may precede a marker.
        while buf.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *buf.get(i).ok_or(truncated)?;
        let marker_at = i - 1;
        i += 1;
        match marker {
            0xD9 => {
                let (width, height) = dims.ok_or(JpegError::NoDimensions)?;
                return Ok(JpegInfo {
                    len: i,
                    width,
                    height,
                });
            }
            0xD0..=0xD7 | 0x01 => {}
            0x00 | 0xD8 => return Err(JpegError::BadMarker(marker_at)),
            _ => {
                let seg = usize::from(be16(buf, i).ok_or(truncated)?);
                if seg < 2 {
                    return Err(JpegError::BadSegment(i));
                }
                if i + seg > len {
                    return Err(truncated);
                }
                let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                if is_sof {
                    if seg < 8 {
                        return Err(JpegError::BadSegment(i));
                    }
                    let height = be16(buf, i + 3).ok_or(truncated)?;
                    let width = be16(buf, i + 5).ok_or(truncated)?;
                    if width == 0 || height == 0 {
                        return Err(JpegError::NoDimensions);
                    }
                    dims = Some((width, height));
                }
                i += seg;
                if marker == 0xDA {
                    i = skip_entropy(buf, i).ok_or(truncated)?;
                }
            }
        }
    }
}

/// Returns the offset of the next real marker's `FF` after entropy-coded data at `from`.
fn skip_entropy(buf: &[u8], mut from: usize) -> Option<usize> {
    loop {
        // memchr scans a word (or SIMD register) at a time: entropy data is most of a frame,
        // and this scan is most of the hub's per-frame ingest cost.
        let ff = from + memchr::memchr(0xFF, buf.get(from..)?)?;
        match *buf.get(ff + 1)? {
            0x00 | 0xD0..=0xD7 => from = ff + 2,
            0xFF => from = ff + 1,
            _ => return Some(ff),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A minimal but structurally valid baseline JPEG of `w`×`h` (not decodable pixels; the
    /// scanner checks structure only). Real encoder output is tested in the sim crate.
    pub(crate) fn tiny_jpeg(w: u16, h: u16, entropy: &[u8]) -> Vec<u8> {
        let mut v = alloc::vec![0xFF, 0xD8];
        // APP0 JFIF
        v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
        v.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
        // SOF0: len 11, precision 8, h, w, 1 component
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        // SOS: len 8, 1 component
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
        v.extend_from_slice(entropy);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn finds_end_and_size() {
        let j = tiny_jpeg(640, 480, &[1, 2, 0xFF, 0x00, 3, 0xFF, 0xD3, 4]);
        assert_eq!(
            scan(&j),
            Ok(JpegInfo {
                len: j.len(),
                width: 640,
                height: 480
            })
        );
    }

    #[test]
    fn keeps_first_of_two() {
        let a = tiny_jpeg(320, 240, &[9; 10]);
        let mut two = a.clone();
        two.extend_from_slice(&tiny_jpeg(640, 480, &[7; 10]));
        assert_eq!(scan(&two).unwrap().len, a.len());
        assert_eq!(scan(&two).unwrap().width, 320);
    }

    #[test]
    fn truncated_anywhere_is_an_error() {
        let j = tiny_jpeg(160, 120, &[5; 20]);
        for cut in 0..j.len() {
            assert!(scan(&j[..cut]).is_err(), "cut at {cut}");
        }
    }
}

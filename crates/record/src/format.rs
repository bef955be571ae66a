//! The bytes of a segment file, and the only code that encodes or decodes them.
//!
//! ```text
//! segment file = file header (32 B)
//!                { frame header (40 B) · JPEG bytes (len B) }*        appended as frames arrive
//!                [ trailer: one index entry (40 B) per frame · footer (32 B) ]   written at close
//! ```
//!
//! All integers are little-endian. Every header carries a CRC-32 of its own bytes, and every
//! frame header also the CRC-32 of its JPEG bytes, so recovery can tell a whole frame from a
//! torn one with a single `fsync` per group commit (the data and its header are in the same
//! file, written in the same commit: the filesystem may persist their pages in any order, and
//! only the checksums say whether both made it).
//!
//! A frame header also records how many frames of the segment were already durable when it
//! was written (`durable_before`). Frames below that count were covered by a completed
//! `fsync`, so recovery re-reads and checks the data of the last commit window only, not of
//! the whole minute.
//!
//! The trailer is an index for readers of closed segments: the file's last 32 bytes say where
//! it starts, how many entries it has and their checksum, so a reader finds any frame with one
//! read of the trailer and a binary search.
//!
//! This module must never touch the filesystem and never trust a decoded value without a
//! range check: segment files are inputs like any other.

/// `ESPCSEG1`: first bytes of every segment file.
pub(crate) const FILE_MAGIC: [u8; 8] = *b"ESPCSEG1";
/// `EFRM`: first bytes of every frame header.
const FRAME_MAGIC: [u8; 4] = *b"EFRM";
/// `ESPCIDX1`: first bytes of the footer.
const FOOTER_MAGIC: [u8; 8] = *b"ESPCIDX1";
/// Format version in the file header.
pub(crate) const VERSION: u32 = 1;

pub(crate) const FILE_HEADER_LEN: u64 = 32;
pub(crate) const FRAME_HEADER_LEN: u64 = 40;
pub(crate) const ENTRY_LEN: u64 = 40;
pub(crate) const FOOTER_LEN: u64 = 32;

/// Largest JPEG a segment stores, bytes. The stream channel refuses frames over 2 MiB; this
/// bound is what recovery and readers check a decoded length against.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// `captured_us` value meaning "the camera sent no capture time".
const NO_CAPTURE: u64 = u64::MAX;

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// CRC-32 of a frame's JPEG bytes, as stored in its header and index entry.
pub(crate) fn data_crc(jpeg: &[u8]) -> u32 {
    crc(jpeg)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The file header: which segment this is and when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub id: i64,
    pub start_us: u64,
}

impl FileHeader {
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN as usize] {
        let mut b = [0u8; FILE_HEADER_LEN as usize];
        b[0..8].copy_from_slice(&FILE_MAGIC);
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.start_us.to_le_bytes());
        b[24..28].copy_from_slice(&VERSION.to_le_bytes());
        let c = crc(&b[0..28]);
        b[28..32].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// `None` unless magic, version and checksum are right.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < FILE_HEADER_LEN as usize
            || b[0..8] != FILE_MAGIC
            || u32_at(b, 24) != VERSION
            || u32_at(b, 28) != crc(&b[0..28])
        {
            return None;
        }
        Some(Self {
            id: u64_at(b, 8) as i64,
            start_us: u64_at(b, 16),
        })
    }
}

/// One frame as the index knows it: where its JPEG bytes are and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Offset of the JPEG's first byte in the segment file.
    pub offset: u64,
    /// JPEG length, bytes.
    pub len: u32,
    /// Hub receive time, µs since the Unix epoch, non-decreasing within a camera.
    pub received_us: u64,
    /// The camera's capture time, µs since the Unix epoch, if it sent one.
    pub captured_us: Option<u64>,
    /// Image width, px.
    pub width: u16,
    /// Image height, px.
    pub height: u16,
    /// CRC-32 of the JPEG bytes.
    pub crc: u32,
}

impl FrameMeta {
    /// Offset just past the JPEG.
    pub(crate) fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// Encodes the header written in front of a frame's JPEG bytes.
pub(crate) fn encode_frame_header(m: &FrameMeta, durable_before: u32) -> [u8; 40] {
    let mut b = [0u8; FRAME_HEADER_LEN as usize];
    b[0..4].copy_from_slice(&FRAME_MAGIC);
    b[4..8].copy_from_slice(&m.len.to_le_bytes());
    b[8..16].copy_from_slice(&m.received_us.to_le_bytes());
    b[16..24].copy_from_slice(&m.captured_us.unwrap_or(NO_CAPTURE).to_le_bytes());
    b[24..26].copy_from_slice(&m.width.to_le_bytes());
    b[26..28].copy_from_slice(&m.height.to_le_bytes());
    b[28..32].copy_from_slice(&durable_before.to_le_bytes());
    b[32..36].copy_from_slice(&m.crc.to_le_bytes());
    let c = crc(&b[0..36]);
    b[36..40].copy_from_slice(&c.to_le_bytes());
    b
}

/// Decodes a frame header found at `header_at`; `None` if it is torn, not a header, or
/// describes a frame that cannot be (zero or oversized length, zero dimensions).
pub(crate) fn decode_frame_header(b: &[u8], header_at: u64) -> Option<(FrameMeta, u32)> {
    if b.len() < FRAME_HEADER_LEN as usize
        || b[0..4] != FRAME_MAGIC
        || u32_at(b, 36) != crc(&b[0..36])
    {
        return None;
    }
    let len = u32_at(b, 4);
    let captured = u64_at(b, 16);
    let m = FrameMeta {
        offset: header_at + FRAME_HEADER_LEN,
        len,
        received_us: u64_at(b, 8),
        captured_us: (captured != NO_CAPTURE).then_some(captured),
        width: u16_at(b, 24),
        height: u16_at(b, 26),
        crc: u32_at(b, 32),
    };
    plausible(&m).then_some((m, u32_at(b, 28)))
}

fn plausible(m: &FrameMeta) -> bool {
    m.len > 0 && m.len as usize <= MAX_FRAME_BYTES && m.width > 0 && m.height > 0
}

/// Encodes the trailer: all index entries followed by the footer.
pub(crate) fn encode_trailer(entries: &[FrameMeta], trailer_offset: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(entries.len() * ENTRY_LEN as usize + FOOTER_LEN as usize);
    for m in entries {
        b.extend_from_slice(&m.offset.to_le_bytes());
        b.extend_from_slice(&m.len.to_le_bytes());
        b.extend_from_slice(&m.width.to_le_bytes());
        b.extend_from_slice(&m.height.to_le_bytes());
        b.extend_from_slice(&m.received_us.to_le_bytes());
        b.extend_from_slice(&m.captured_us.unwrap_or(NO_CAPTURE).to_le_bytes());
        b.extend_from_slice(&m.crc.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
    }
    let entries_crc = crc(&b);
    let start = b.len();
    b.extend_from_slice(&FOOTER_MAGIC);
    b.extend_from_slice(&trailer_offset.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    b.extend_from_slice(&entries_crc.to_le_bytes());
    let c = crc(&b[start..start + 24]);
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&c.to_le_bytes());
    b
}

/// What a valid footer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub trailer_offset: u64,
    pub frames: u32,
    pub entries_crc: u32,
}

/// Decodes the footer (the file's last [`FOOTER_LEN`] bytes) of a file of `file_len` bytes.
pub(crate) fn decode_footer(b: &[u8], file_len: u64) -> Option<Footer> {
    if b.len() < FOOTER_LEN as usize || b[0..8] != FOOTER_MAGIC || u32_at(b, 28) != crc(&b[0..24]) {
        return None;
    }
    let f = Footer {
        trailer_offset: u64_at(b, 8),
        frames: u32_at(b, 16),
        entries_crc: u32_at(b, 20),
    };
    let expected_end = f
        .trailer_offset
        .checked_add(u64::from(f.frames) * ENTRY_LEN)?
        .checked_add(FOOTER_LEN)?;
    (f.trailer_offset >= FILE_HEADER_LEN && expected_end == file_len).then_some(f)
}

/// Decodes the trailer's entries and checks that they describe a well-formed segment: each
/// frame lies after the previous one and before the trailer, times never go backwards.
pub(crate) fn decode_entries(b: &[u8], footer: &Footer) -> Option<Vec<FrameMeta>> {
    if b.len() as u64 != u64::from(footer.frames) * ENTRY_LEN || crc(b) != footer.entries_crc {
        return None;
    }
    let mut out = Vec::with_capacity(footer.frames as usize);
    let mut prev_end = FILE_HEADER_LEN;
    let mut prev_t = 0u64;
    for e in b.chunks_exact(ENTRY_LEN as usize) {
        let captured = u64_at(e, 24);
        let m = FrameMeta {
            offset: u64_at(e, 0),
            len: u32_at(e, 8),
            width: u16_at(e, 12),
            height: u16_at(e, 14),
            received_us: u64_at(e, 16),
            captured_us: (captured != NO_CAPTURE).then_some(captured),
            crc: u32_at(e, 32),
        };
        if !plausible(&m)
            || m.offset < prev_end + FRAME_HEADER_LEN
            || m.end() > footer.trailer_offset
            || m.received_us < prev_t
        {
            return None;
        }
        prev_end = m.end();
        prev_t = m.received_us;
        out.push(m);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(offset: u64, t: u64) -> FrameMeta {
        FrameMeta {
            offset,
            len: 100,
            received_us: t,
            captured_us: Some(t - 5),
            width: 640,
            height: 480,
            crc: 0xDEAD_BEEF,
        }
    }

    #[test]
    fn file_header_round_trip_and_rejects_any_flipped_byte() {
        let h = FileHeader {
            id: 42,
            start_us: 1_700_000_000_000_000,
        };
        let b = h.encode();
        assert_eq!(FileHeader::decode(&b), Some(h));
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x01;
            assert_eq!(FileHeader::decode(&c), None, "byte {i}");
        }
        assert_eq!(FileHeader::decode(&b[..31]), None);
    }

    #[test]
    fn frame_header_round_trip_and_torn_detection() {
        let m = meta(32 + 40, 1_000);
        let b = encode_frame_header(&m, 7);
        assert_eq!(decode_frame_header(&b, 32), Some((m, 7)));
        let no_capture = FrameMeta {
            captured_us: None,
            ..m
        };
        let b2 = encode_frame_header(&no_capture, 0);
        assert_eq!(decode_frame_header(&b2, 32), Some((no_capture, 0)));
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x80;
            assert_eq!(decode_frame_header(&c, 32), None, "byte {i}");
        }
        assert_eq!(decode_frame_header(&[0u8; 40], 32), None);
        assert_eq!(decode_frame_header(&b[..39], 32), None);
        // A checksummed header that describes an impossible frame is refused too.
        let zero_width = FrameMeta { width: 0, ..m };
        assert_eq!(
            decode_frame_header(&encode_frame_header(&zero_width, 0), 32),
            None
        );
    }

    #[test]
    fn trailer_round_trip_and_validation() {
        let a = meta(72, 10);
        let b = meta(a.end() + 40, 20);
        let trailer_offset = b.end();
        let t = encode_trailer(&[a, b], trailer_offset);
        let file_len = trailer_offset + t.len() as u64;
        let footer = decode_footer(&t[t.len() - 32..], file_len).unwrap();
        assert_eq!(footer.frames, 2);
        assert_eq!(footer.trailer_offset, trailer_offset);
        let entries = decode_entries(&t[..t.len() - 32], &footer).unwrap();
        assert_eq!(entries, vec![a, b]);
        // Footer that does not match the file length: refused.
        assert_eq!(decode_footer(&t[t.len() - 32..], file_len + 1), None);
        // A flipped entry byte breaks the entries checksum.
        let mut bad = t.clone();
        bad[3] ^= 1;
        assert_eq!(decode_entries(&bad[..bad.len() - 32], &footer), None);
        // Entries whose times go backwards are refused even with a right checksum.
        let back = meta(b.offset, 5);
        let t2 = encode_trailer(&[a, back], trailer_offset);
        let f2 = decode_footer(&t2[t2.len() - 32..], file_len).unwrap();
        assert_eq!(decode_entries(&t2[..t2.len() - 32], &f2), None);
        // Overlapping frames likewise.
        let overlap = FrameMeta {
            offset: a.offset + 10,
            ..b
        };
        let t3 = encode_trailer(&[a, overlap], trailer_offset);
        let f3 = decode_footer(&t3[t3.len() - 32..], file_len).unwrap();
        assert_eq!(decode_entries(&t3[..t3.len() - 32], &f3), None);
    }
}

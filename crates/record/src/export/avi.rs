//! AVI 1.0 layout: `RIFF('AVI ' LIST('hdrl' avih LIST('strl' strh strf)) LIST('movi' 00dc…)
//! idx1)`, one MJPEG video stream, every frame a key frame, chunks padded to even sizes.
//!
//! This module only computes bytes; it must never announce a size it does not then emit.

use super::{Item, Layout, Shape};

/// `hdrl` LIST body: 'hdrl' + avih chunk (8 + 56) + strl LIST (8 + 4 + strh 8 + 56 + strf 8 + 40).
const HDRL_SIZE: u32 = 4 + (8 + 56) + (8 + 4 + (8 + 56) + (8 + 40));
/// Bytes from the file start to the first `00dc` chunk.
const HEAD_LEN: u64 = 12 + 8 + HDRL_SIZE as u64 + 12;
const AVIIF_KEYFRAME: u32 = 0x10;

#[derive(Debug)]
pub(crate) struct AviLayout {
    head: Vec<u8>,
    total: u64,
    /// Per frame: JPEG length (for the chunk header and the index).
    lens: Vec<u32>,
}

fn pad(len: u64) -> u64 {
    len & 1
}

impl AviLayout {
    pub fn new(s: &Shape<'_>) -> Self {
        let n = s.items.len() as u64;
        let movi_size: u64 = 4 + s
            .items
            .iter()
            .map(|i| 8 + i.len() + pad(i.len()))
            .sum::<u64>();
        let idx1_size = 16 * n;
        let riff_size = 4 + (8 + u64::from(HDRL_SIZE)) + (8 + movi_size) + (8 + idx1_size);
        let total = 8 + riff_size;
        let max_len = s.items.iter().map(|i| i.len).max().unwrap_or(0);
        let (w, h) = (u32::from(s.width), u32::from(s.height));
        let us_per_frame = s.interval_us.min(u64::from(u32::MAX)) as u32;
        let bytes_per_sec = if s.duration_us > 0 {
            ((total as u128 * 1_000_000) / s.duration_us as u128).min(u32::MAX as u128) as u32
        } else {
            0
        };
        // Sizes above 4 GiB are refused by the caller; clamp so the arithmetic stays total.
        let c32 = |v: u64| v.min(u64::from(u32::MAX)) as u32;

        let mut b = Vec::with_capacity(HEAD_LEN as usize);
        let mut put = |bytes: &[u8]| b.extend_from_slice(bytes);
        put(b"RIFF");
        put(&c32(riff_size).to_le_bytes());
        put(b"AVI ");
        put(b"LIST");
        put(&HDRL_SIZE.to_le_bytes());
        put(b"hdrl");
        put(b"avih");
        put(&56u32.to_le_bytes());
        for v in [
            us_per_frame,
            bytes_per_sec,
            0,            // padding granularity
            0x10 | 0x100, // AVIF_HASINDEX | AVIF_ISINTERLEAVED
            c32(n),       // total frames
            0,            // initial frames
            1,            // streams
            max_len,      // suggested buffer size
            w,
            h,
            0,
            0,
            0,
            0,
        ] {
            put(&v.to_le_bytes());
        }
        put(b"LIST");
        put(&(4u32 + (8 + 56) + (8 + 40)).to_le_bytes());
        put(b"strl");
        put(b"strh");
        put(&56u32.to_le_bytes());
        put(b"vids");
        put(b"MJPG");
        put(&0u32.to_le_bytes()); // flags
        put(&0u16.to_le_bytes()); // priority
        put(&0u16.to_le_bytes()); // language
        for v in [
            0u32,         // initial frames
            us_per_frame, // scale
            1_000_000,    // rate: fps = rate / scale
            0,            // start
            c32(n),       // length, frames
            max_len,      // suggested buffer size
            u32::MAX,     // quality: default
            0,            // sample size: varies
        ] {
            put(&v.to_le_bytes());
        }
        for v in [0u16, 0, s.width, s.height] {
            put(&v.to_le_bytes());
        }
        put(b"strf");
        put(&40u32.to_le_bytes());
        put(&40u32.to_le_bytes()); // biSize
        put(&w.to_le_bytes());
        put(&h.to_le_bytes());
        put(&1u16.to_le_bytes()); // planes
        put(&24u16.to_le_bytes()); // bit count
        put(b"MJPG");
        put(&(w * h * 3).to_le_bytes());
        for _ in 0..4 {
            put(&0u32.to_le_bytes());
        }
        put(b"LIST");
        put(&c32(movi_size).to_le_bytes());
        put(b"movi");
        debug_assert_eq!(b.len() as u64, HEAD_LEN);
        Self {
            head: b,
            total,
            lens: s.items.iter().map(|i| i.len).collect(),
        }
    }
}

impl Layout for AviLayout {
    fn total_len(&self) -> u64 {
        self.total
    }

    fn head(&self) -> Vec<u8> {
        self.head.clone()
    }

    fn frame_prefix(&self, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"00dc");
        out.extend_from_slice(&self.lens[i].to_le_bytes());
    }

    fn frame_suffix(&self, i: usize, out: &mut Vec<u8>) {
        if self.lens[i] & 1 == 1 {
            out.push(0);
        }
    }

    fn tail(&self, _items: &[Item]) -> Vec<u8> {
        let mut b = Vec::with_capacity(8 + 16 * self.lens.len());
        b.extend_from_slice(b"idx1");
        b.extend_from_slice(&((16 * self.lens.len()) as u32).to_le_bytes());
        // Offsets count from the 'movi' fourcc; the first chunk follows it.
        let mut off: u64 = 4;
        for &len in &self.lens {
            b.extend_from_slice(b"00dc");
            b.extend_from_slice(&AVIIF_KEYFRAME.to_le_bytes());
            b.extend_from_slice(&(off.min(u64::from(u32::MAX)) as u32).to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            off += 8 + u64::from(len) + pad(u64::from(len));
        }
        b
    }
}

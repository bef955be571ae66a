//! Matroska layout: EBML header, then one Segment of known size holding a SeekHead, Info,
//! Tracks (one `V_MJPEG` video track), Clusters of SimpleBlocks (a new cluster every 5 s of
//! media time) and Cues (one cue point per cluster) at the end.
//!
//! Positions the SeekHead and Cues point at are written as fixed 8-byte integers and sizes of
//! clusters and blocks as 8-byte EBML lengths, so every size and offset follows from the
//! frame lengths alone, before any byte is emitted. This module only computes bytes; it must
//! never announce a size it does not then emit.

use super::{Item, Layout, Shape};

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CLUSTER: u32 = 0x1F43_B675;
const CUES: u32 = 0x1C53_BB6B;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;

/// A new cluster after this much media time, ms (SimpleBlock offsets are signed 16-bit).
const CLUSTER_MS: u64 = 5_000;
/// Cluster header: ID (4) + 8-byte size + Timestamp element (1 + 1 + 8).
const CLUSTER_HEAD: u64 = 4 + 8 + 10;
/// SimpleBlock framing: ID (1) + 8-byte size + track (1) + timecode (2) + flags (1).
const BLOCK_HEAD: u64 = 1 + 8 + 4;
/// 2001-01-01T00:00:00Z in Unix seconds (Matroska's DateUTC epoch).
const MKV_EPOCH_S: i64 = 978_307_200;

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = if id > 0xFF_FFFF {
        0
    } else if id > 0xFFFF {
        1
    } else if id > 0xFF {
        2
    } else {
        3
    };
    b[skip..].to_vec()
}

/// Minimal EBML length.
fn size_vint(n: u64) -> Vec<u8> {
    for len in 1..=8u32 {
        if n < (1u64 << (7 * len)) - 1 {
            let v = n | (1u64 << (7 * len));
            return v.to_be_bytes()[(8 - len as usize)..].to_vec();
        }
    }
    size8(n).to_vec()
}

/// 8-byte EBML length (used where the size must not depend on the value).
fn size8(n: u64) -> [u8; 8] {
    let mut b = (n & 0x00FF_FFFF_FFFF_FFFF).to_be_bytes();
    b[0] = 0x01;
    b
}

fn el(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = id_bytes(id);
    v.extend(size_vint(body.len() as u64));
    v.extend_from_slice(body);
    v
}

fn uint(id: u32, n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let skip = (n.leading_zeros() / 8).min(7) as usize;
    el(id, &b[skip..])
}

fn uint8(id: u32, n: u64) -> Vec<u8> {
    el(id, &n.to_be_bytes())
}

#[derive(Debug)]
pub(crate) struct MkvLayout {
    head: Vec<u8>,
    total: u64,
    /// Per frame: the cluster starting at it (index into `clusters`), its time offset in
    /// the cluster (ms) and its JPEG length.
    frames: Vec<(Option<usize>, i16, u32)>,
    /// Per cluster: timestamp (ms) and total size (header included).
    clusters: Vec<(u64, u64)>,
    cues: Vec<u8>,
}

impl MkvLayout {
    pub fn new(s: &Shape<'_>) -> Self {
        // Clusters.
        let mut frames = Vec::with_capacity(s.items.len());
        let mut clusters: Vec<(u64, u64)> = Vec::new(); // (timestamp ms, size)
        let mut cluster_ts = 0u64;
        let mut prev_ms: Option<u64> = None;
        for (i, it) in s.items.iter().enumerate() {
            // Block times are whole milliseconds; two frames in the same millisecond (a
            // burst after a reconnect) would get equal timestamps, which demuxers reject
            // as non-monotonic. Keep them strictly increasing.
            let ms = match prev_ms {
                Some(p) => (it.t_us / 1_000).max(p + 1),
                None => it.t_us / 1_000,
            };
            prev_ms = Some(ms);
            let start = i == 0 || ms - cluster_ts >= CLUSTER_MS;
            if start {
                cluster_ts = ms;
                clusters.push((ms, CLUSTER_HEAD));
            }
            if let Some(c) = clusters.last_mut() {
                c.1 += BLOCK_HEAD + it.len();
            }
            let k = clusters.len() - 1;
            frames.push((start.then_some(k), (ms - cluster_ts) as i16, it.len));
        }
        let ebml = el(
            EBML,
            &[
                uint(0x4286, 1),
                uint(0x42F7, 1),
                uint(0x42F2, 4),
                uint(0x42F3, 8),
                el(0x4282, b"matroska"),
                uint(0x4287, 4),
                uint(0x4285, 2),
            ]
            .concat(),
        );
        let date_ns = (s.start_us as i64 / 1_000_000 - MKV_EPOCH_S)
            .saturating_mul(1_000_000_000)
            .saturating_add((s.start_us % 1_000_000) as i64 * 1_000);
        let info = el(
            INFO,
            &[
                uint(0x2A_D7B1, 1_000_000), // TimestampScale: 1 ms
                el(0x4489, &(s.duration_us as f64 / 1_000.0).to_be_bytes()),
                el(0x4461, &date_ns.to_be_bytes()),
                el(0x4D80, b"espcam"),
                el(0x5741, b"espcam-record"),
            ]
            .concat(),
        );
        let video = el(
            0xE0,
            &[
                uint(0xB0, u64::from(s.width)),
                uint(0xBA, u64::from(s.height)),
            ]
            .concat(),
        );
        let track = el(
            0xAE,
            &[
                uint(0xD7, 1),   // TrackNumber
                uint(0x73C5, 1), // TrackUID
                uint(0x83, 1),   // TrackType: video
                uint(0x9C, 0),   // FlagLacing
                el(0x86, b"V_MJPEG"),
                uint(0x23_E383, s.interval_us * 1_000), // DefaultDuration, ns
                video,
            ]
            .concat(),
        );
        let tracks = el(TRACKS, &track);
        let seek = |id: u32, pos: u64| {
            el(
                SEEK,
                &[el(SEEK_ID, &id_bytes(id)), uint8(SEEK_POSITION, pos)].concat(),
            )
        };
        // The SeekHead's size does not depend on the positions (fixed 8-byte integers).
        let seek_len = el(
            SEEK_HEAD,
            &[seek(INFO, 0), seek(TRACKS, 0), seek(CUES, 0)].concat(),
        )
        .len() as u64;
        let info_pos = seek_len;
        let tracks_pos = info_pos + info.len() as u64;
        let clusters_pos = tracks_pos + tracks.len() as u64;
        let mut cue_points = Vec::with_capacity(clusters.len() * 32);
        let mut pos = clusters_pos;
        for &(ts, size) in &clusters {
            let track_pos = el(0xB7, &[uint(0xF7, 1), uint8(0xF1, pos)].concat());
            cue_points.extend(el(0xBB, &[uint8(0xB3, ts), track_pos].concat()));
            pos += size;
        }
        let cues_pos = pos;
        let cues = el(CUES, &cue_points);
        let seek_head = el(
            SEEK_HEAD,
            &[
                seek(INFO, info_pos),
                seek(TRACKS, tracks_pos),
                seek(CUES, cues_pos),
            ]
            .concat(),
        );
        debug_assert_eq!(seek_head.len() as u64, seek_len);
        let segment_size = cues_pos + cues.len() as u64;
        let mut head = ebml;
        head.extend(id_bytes(SEGMENT));
        head.extend(size8(segment_size));
        head.extend(seek_head);
        head.extend(info);
        head.extend(tracks);
        let total = head.len() as u64 + (segment_size - clusters_pos);
        Self {
            head,
            total,
            frames,
            clusters,
            cues,
        }
    }
}

impl Layout for MkvLayout {
    fn total_len(&self) -> u64 {
        self.total
    }

    fn head(&self) -> Vec<u8> {
        self.head.clone()
    }

    fn frame_prefix(&self, i: usize, out: &mut Vec<u8>) {
        let (cluster, rel, len) = self.frames[i];
        if let Some(k) = cluster {
            let (ts, size) = self.clusters[k];
            out.extend(id_bytes(CLUSTER));
            out.extend(size8(size - 12));
            out.extend(uint8(TIMESTAMP, ts));
        }
        out.extend(id_bytes(SIMPLE_BLOCK));
        out.extend(size8(4 + u64::from(len)));
        out.push(0x81); // track 1
        out.extend(rel.to_be_bytes());
        out.push(0x80); // key frame
    }

    fn frame_suffix(&self, _i: usize, _out: &mut Vec<u8>) {}

    fn tail(&self, _items: &[Item]) -> Vec<u8> {
        self.cues.clone()
    }
}

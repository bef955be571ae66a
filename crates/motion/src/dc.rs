//! JPEG → 1/8-scale luma image, from the DC coefficients alone.
//!
//! Why it exists: the mean of each 8×8 luma block *is* its DC coefficient (times its
//! quantiser, over 8, plus 128), so a baseline JPEG already contains a 1/8-scale grey image:
//! VGA → 80×60. Getting it needs only the entropy decoding — no dequantisation of AC
//! coefficients, no IDCT, no upsampling, no colour conversion — which is several times faster
//! than the fastest full decoder's grayscale output (see `benches/motion.rs`).
//!
//! Steps, per frame:
//! 1. Walk the markers (`DQT`, `DHT`, `DRI`, `SOF0/1` anywhere before `SOS`); refuse other
//!    coding processes (progressive, arithmetic, lossless, hierarchical, 12-bit) with a
//!    typed [`DecodeError::Unsupported`].
//! 2. At the scan holding the luma component (the first one of the frame), *destuff* its
//!    entropy-coded data into a scratch buffer with one `memchr` per `0xFF`: stuffed zeros
//!    dropped, restart markers turned into segment boundaries. Scans without luma are skipped
//!    unread.
//! 3. Decode each restart interval from its own segment: luma blocks yield their DC value,
//!    every other block is only skipped (see `huffman.rs`).
//!
//! What it must never do: panic, loop without bound, or allocate without bound on any input
//! (sizes are checked against [`DecoderLimits`] before anything is allocated; property tests
//! feed it random, truncated and bit-flipped frames). It never reads a clock and does no IO.

use alloc::vec::Vec;

use crate::huffman::{AcTable, BadCode, Bits, DcTable, TableError, standard};

/// A JPEG coding process this decoder does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// Progressive DCT (`SOF2`): the DC coefficients are there, but spread over scans with
    /// successive approximation; no ESP32 camera produces it.
    #[error("progressive JPEG (SOF2); expected baseline sequential (SOF0/SOF1)")]
    Progressive,
    /// Arithmetic coding (`SOF9`..`SOF15`, `DAC`).
    #[error("arithmetic-coded JPEG; expected Huffman coding")]
    Arithmetic,
    /// Lossless JPEG (`SOF3`).
    #[error("lossless JPEG (SOF3); expected baseline sequential DCT")]
    Lossless,
    /// Hierarchical JPEG (`SOF5`..`SOF7`, `DHP`, `EXP`).
    #[error("hierarchical JPEG; expected baseline sequential DCT")]
    Hierarchical,
    /// Sample precision other than 8 bits.
    #[error("{0}-bit samples; expected 8-bit")]
    Precision(u8),
    /// A frame whose height is given later by a `DNL` marker.
    #[error("height 0 in the frame header (height set by DNL); expected the height in SOF")]
    HeightInDnl,
}

/// Why a JPEG could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The data does not start with the `SOI` marker `FF D8`.
    #[error("not a JPEG: expected FF D8 at the start")]
    NotJpeg,
    /// The data ended inside the part named.
    #[error("JPEG truncated in {0}")]
    Truncated(&'static str),
    /// A structural error, named.
    #[error("malformed JPEG: {0}")]
    Malformed(&'static str),
    /// A `DHT` table that is no valid Huffman code.
    #[error("bad Huffman table: {0}")]
    BadHuffmanTable(&'static str),
    /// The entropy-coded data holds a bit pattern that is no code of its table.
    #[error("corrupt entropy-coded data: no Huffman code matches (restart interval {interval})")]
    BadCode {
        /// Restart interval (0-based) where decoding failed.
        interval: usize,
    },
    /// The scan uses a table no `DHT`/`DQT` defined (and no standard default applies).
    #[error("scan uses {kind} table {id}, which is not defined")]
    MissingTable {
        /// `"DC Huffman"`, `"AC Huffman"` or `"quantisation"`.
        kind: &'static str,
        /// Table id 0..=3.
        id: u8,
    },
    /// A coding process or sample format this decoder does not read.
    #[error("unsupported JPEG: {0}")]
    Unsupported(#[from] Unsupported),
    /// The image is larger than [`DecoderLimits::max_pixels`].
    #[error("image {width}x{height} is larger than the limit of {max_pixels} pixels")]
    TooLarge {
        /// Width from the frame header.
        width: u16,
        /// Height from the frame header.
        height: u16,
        /// The configured limit.
        max_pixels: u32,
    },
}

/// Bounds on what one frame may make the decoder allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest `width × height` accepted. Default 16 Mpx (4096 × 4096), well above the
    /// 5 Mpx of the largest ESP32 camera sensors.
    pub max_pixels: u32,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        Self {
            max_pixels: 4096 * 4096,
        }
    }
}

/// A 1/8-scale luma image: one byte per 8×8 block of the frame's luma plane, the block's
/// mean (0..=255), row-major.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DcImage {
    width: usize,
    height: usize,
    frame_width: u16,
    frame_height: u16,
    pixels: Vec<u8>,
}

impl DcImage {
    /// An empty image (0×0), to be filled by [`DcDecoder::decode`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An image from block means (`width × height`, row-major), as if decoded from a
    /// `8·width × 8·height` frame; `None` when the lengths disagree. For tests, and for
    /// callers with luma from elsewhere.
    pub fn from_pixels(width: usize, height: usize, pixels: Vec<u8>) -> Option<Self> {
        if pixels.len() != width.checked_mul(height)? {
            return None;
        }
        Some(Self {
            width,
            height,
            frame_width: u16::try_from(width * 8).unwrap_or(u16::MAX),
            frame_height: u16::try_from(height * 8).unwrap_or(u16::MAX),
            pixels,
        })
    }

    /// Width in blocks (`ceil(frame width / 8)` for the usual sampling factors).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in blocks.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The frame's size in pixels, from its header.
    pub fn frame_size(&self) -> (u16, u16) {
        (self.frame_width, self.frame_height)
    }

    /// The block means, `width × height`, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The mean of block (`x`, `y`), if inside.
    pub fn get(&self, x: usize, y: usize) -> Option<u8> {
        if x < self.width {
            self.pixels.get(y * self.width + x).copied()
        } else {
            None
        }
    }
}

/// One component of the frame header.
#[derive(Debug, Clone, Copy, Default)]
struct Component {
    id: u8,
    h: u8,
    v: u8,
    tq: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    width: u16,
    height: u16,
    components: [Component; 4],
    count: usize,
    hmax: u8,
    vmax: u8,
}

/// One block of an MCU, in coding order.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Index into the scan's component list (DC predictor and tables).
    comp: u8,
    /// Block offset inside the MCU for luma blocks; `None` for blocks only skipped.
    luma: Option<(u8, u8)>,
}

/// A reusable DC-only decoder: keeps its tables and scratch buffers between frames, so
/// decoding allocates nothing once it has seen the largest frame.
#[derive(Clone)]
pub struct DcDecoder {
    limits: DecoderLimits,
    dc: [DcTable; 4],
    ac: [AcTable; 4],
    dc_defined: [bool; 4],
    ac_defined: [bool; 4],
    /// First (DC) entry of each quantisation table; 0 = undefined.
    q0: [u16; 4],
    restart_interval: u16,
    /// Destuffed entropy-coded data of the luma scan, followed by 8 zero bytes.
    scratch: Vec<u8>,
    /// End offset in `scratch` of each restart interval but the last.
    segments: Vec<usize>,
}

impl core::fmt::Debug for DcDecoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DcDecoder")
            .field("limits", &self.limits)
            .field("scratch_capacity", &self.scratch.capacity())
            .finish_non_exhaustive()
    }
}

impl Default for DcDecoder {
    fn default() -> Self {
        Self::new(DecoderLimits::default())
    }
}

fn be16(d: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(i)?, *d.get(i + 1)?]))
}

impl DcDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: DecoderLimits) -> Self {
        Self {
            limits,
            dc: core::array::from_fn(|_| DcTable::empty()),
            ac: core::array::from_fn(|_| AcTable::empty()),
            dc_defined: [false; 4],
            ac_defined: [false; 4],
            q0: [0; 4],
            restart_interval: 0,
            scratch: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Decodes the luma DC image of `jpeg` into `out` (resized as needed).
    pub fn decode(&mut self, jpeg: &[u8], out: &mut DcImage) -> Result<(), DecodeError> {
        if jpeg.get(..2) != Some(&[0xFF, 0xD8]) {
            return Err(DecodeError::NotJpeg);
        }
        // Tables never carry over from the previous frame.
        self.dc_defined = [false; 4];
        self.ac_defined = [false; 4];
        self.q0 = [0; 4];
        self.restart_interval = 0;
        let mut frame: Option<Frame> = None;
        let mut i = 2;
        loop {
            // A marker: 0xFF, any number of 0xFF fill bytes, then the code.
            if jpeg.get(i) != Some(&0xFF) {
                return match jpeg.get(i) {
                    None => Err(DecodeError::Truncated("the headers")),
                    Some(_) => Err(DecodeError::Malformed("expected a marker between segments")),
                };
            }
            while jpeg.get(i + 1) == Some(&0xFF) {
                i += 1;
            }
            let marker = *jpeg
                .get(i + 1)
                .ok_or(DecodeError::Truncated("the headers"))?;
            match marker {
                0xD8 => return Err(DecodeError::Malformed("second SOI marker")),
                0xD9 => return Err(DecodeError::Malformed("end of image before a luma scan")),
                // Markers without a length.
                0x01 | 0xD0..=0xD7 => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(be16(jpeg, i + 2).ok_or(DecodeError::Truncated("the headers"))?);
            if len < 2 {
                return Err(DecodeError::Malformed("segment length below 2"));
            }
            let body = jpeg
                .get(i + 4..i + 2 + len)
                .ok_or(DecodeError::Truncated("a header segment"))?;
            let next = i + 2 + len;
            match marker {
                0xC0 | 0xC1 => {
                    if frame.is_some() {
                        return Err(DecodeError::Malformed("second frame header (SOF)"));
                    }
                    frame = Some(self.parse_sof(body)?);
                }
                0xC2 => return Err(Unsupported::Progressive.into()),
                0xC3 => return Err(Unsupported::Lossless.into()),
                0xC5..=0xC7 | 0xDE | 0xDF => return Err(Unsupported::Hierarchical.into()),
                // SOF9..SOF11, DAC, SOF13..SOF15.
                0xC9..=0xCF => return Err(Unsupported::Arithmetic.into()),
                0xC4 => self.parse_dht(body)?,
                0xDB => self.parse_dqt(body)?,
                0xDD => {
                    self.restart_interval =
                        be16(body, 0).ok_or(DecodeError::Malformed("DRI segment too short"))?;
                }
                0xDC => return Err(Unsupported::HeightInDnl.into()),
                0xDA => {
                    let f = frame.ok_or(DecodeError::Malformed(
                        "scan (SOS) before the frame header (SOF)",
                    ))?;
                    match self.scan(&f, body, jpeg, next, out)? {
                        ScanOutcome::Done => return Ok(()),
                        ScanOutcome::SkippedTo(j) => {
                            i = j;
                            continue;
                        }
                    }
                }
                // APPn, COM, and anything else with a length: not needed.
                _ => {}
            }
            i = next;
        }
    }

    fn parse_sof(&self, b: &[u8]) -> Result<Frame, DecodeError> {
        let short = DecodeError::Malformed("SOF segment too short");
        let precision = *b.first().ok_or(short)?;
        if precision != 8 {
            return Err(Unsupported::Precision(precision).into());
        }
        let height = be16(b, 1).ok_or(short)?;
        let width = be16(b, 3).ok_or(short)?;
        let count = usize::from(*b.get(5).ok_or(short)?);
        if height == 0 {
            return Err(Unsupported::HeightInDnl.into());
        }
        if width == 0 {
            return Err(DecodeError::Malformed("frame width 0"));
        }
        if !(1..=4).contains(&count) {
            return Err(DecodeError::Malformed("component count not 1..=4"));
        }
        if u32::from(width) * u32::from(height) > self.limits.max_pixels {
            return Err(DecodeError::TooLarge {
                width,
                height,
                max_pixels: self.limits.max_pixels,
            });
        }
        let mut f = Frame {
            width,
            height,
            count,
            ..Frame::default()
        };
        for k in 0..count {
            let c = b.get(6 + 3 * k..9 + 3 * k).ok_or(short)?;
            let (h, v) = (c[1] >> 4, c[1] & 15);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(DecodeError::Malformed("sampling factor not 1..=4"));
            }
            if c[2] > 3 {
                return Err(DecodeError::Malformed("quantisation table id not 0..=3"));
            }
            if f.components[..k].iter().any(|o| o.id == c[0]) {
                return Err(DecodeError::Malformed("two components with the same id"));
            }
            f.components[k] = Component {
                id: c[0],
                h,
                v,
                tq: c[2],
            };
            f.hmax = f.hmax.max(h);
            f.vmax = f.vmax.max(v);
        }
        Ok(f)
    }

    fn parse_dht(&mut self, mut b: &[u8]) -> Result<(), DecodeError> {
        while !b.is_empty() {
            let tc_th = b[0];
            let (class, id) = (tc_th >> 4, usize::from(tc_th & 15));
            if class > 1 || id > 3 {
                return Err(DecodeError::BadHuffmanTable(
                    "class not 0..=1 or id not 0..=3",
                ));
            }
            let counts: [u8; 16] = b
                .get(1..17)
                .and_then(|s| s.try_into().ok())
                .ok_or(DecodeError::BadHuffmanTable("DHT segment too short"))?;
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let symbols = b.get(17..17 + total).ok_or(DecodeError::BadHuffmanTable(
                "DHT segment too short for its symbols",
            ))?;
            let built = if class == 0 {
                self.dc_defined[id] = false;
                self.dc[id].build(&counts, symbols)
            } else {
                self.ac_defined[id] = false;
                self.ac[id].build(&counts, symbols)
            };
            built.map_err(|e| {
                DecodeError::BadHuffmanTable(match e {
                    TableError::Length => "more than 256 symbols",
                    TableError::Oversubscribed => "code lengths over-subscribe the code space",
                    TableError::DcSymbol(_) => "DC symbol above 11",
                })
            })?;
            if class == 0 {
                self.dc_defined[id] = true;
            } else {
                self.ac_defined[id] = true;
            }
            b = &b[17 + total..];
        }
        Ok(())
    }

    fn parse_dqt(&mut self, mut b: &[u8]) -> Result<(), DecodeError> {
        while !b.is_empty() {
            let (pq, id) = (b[0] >> 4, usize::from(b[0] & 15));
            if pq > 1 || id > 3 {
                return Err(DecodeError::Malformed(
                    "DQT precision not 0..=1 or id not 0..=3",
                ));
            }
            let n = if pq == 0 { 64 } else { 128 };
            let t = b
                .get(1..1 + n)
                .ok_or(DecodeError::Malformed("DQT segment too short"))?;
            // Only the DC quantiser matters: it is entry 0 in any coefficient order.
            self.q0[id] = if pq == 0 {
                u16::from(t[0])
            } else {
                u16::from_be_bytes([t[0], t[1]])
            };
            b = &b[1 + n..];
        }
        Ok(())
    }

    /// Makes the standard table `id` of a class available when a frame left it out (Motion-
    /// JPEG does), as other decoders do.
    fn ensure_table(&mut self, ac: bool, id: u8) -> Result<(), DecodeError> {
        let i = usize::from(id);
        let defined = if ac {
            self.ac_defined[i]
        } else {
            self.dc_defined[i]
        };
        if defined {
            return Ok(());
        }
        let (counts, symbols): (&[u8; 16], &[u8]) = match (ac, id) {
            (false, 0) => (&standard::DC_LUMA_COUNTS, &standard::DC_SYMBOLS),
            (false, 1) => (&standard::DC_CHROMA_COUNTS, &standard::DC_SYMBOLS),
            (true, 0) => (&standard::AC_LUMA_COUNTS, &standard::AC_LUMA_SYMBOLS),
            (true, 1) => (&standard::AC_CHROMA_COUNTS, &standard::AC_CHROMA_SYMBOLS),
            _ => {
                return Err(DecodeError::MissingTable {
                    kind: if ac { "AC Huffman" } else { "DC Huffman" },
                    id,
                });
            }
        };
        let built = if ac {
            self.ac[i].build(counts, symbols)
        } else {
            self.dc[i].build(counts, symbols)
        };
        built.map_err(|_| DecodeError::BadHuffmanTable("standard table"))?;
        if ac {
            self.ac_defined[i] = true;
        } else {
            self.dc_defined[i] = true;
        }
        Ok(())
    }

    /// Handles one scan: decodes it if it holds the luma component, else skips it.
    fn scan(
        &mut self,
        f: &Frame,
        b: &[u8],
        jpeg: &[u8],
        data_start: usize,
        out: &mut DcImage,
    ) -> Result<ScanOutcome, DecodeError> {
        let short = DecodeError::Malformed("SOS segment too short");
        let ns = usize::from(*b.first().ok_or(short)?);
        if !(1..=4).contains(&ns) {
            return Err(DecodeError::Malformed("scan component count not 1..=4"));
        }
        // (frame component index, DC table, AC table) per scan component.
        let mut comps = [(0usize, 0u8, 0u8); 4];
        for (k, c) in comps.iter_mut().enumerate().take(ns) {
            let s = b.get(1 + 2 * k..3 + 2 * k).ok_or(short)?;
            let idx = f.components[..f.count]
                .iter()
                .position(|c| c.id == s[0])
                .ok_or(DecodeError::Malformed(
                    "scan names a component the frame lacks",
                ))?;
            let (td, ta) = (s[1] >> 4, s[1] & 15);
            if td > 3 || ta > 3 {
                return Err(DecodeError::Malformed("Huffman table id not 0..=3"));
            }
            *c = (idx, td, ta);
        }
        let comps = &comps[..ns];
        if !comps.iter().any(|c| c.0 == 0) {
            return skip_entropy(jpeg, data_start).map(ScanOutcome::SkippedTo);
        }
        for &(_, td, ta) in comps {
            self.ensure_table(false, td)?;
            self.ensure_table(true, ta)?;
        }
        let luma = f.components[0];
        let q0 = self.q0[usize::from(luma.tq)];
        if q0 == 0 {
            return Err(DecodeError::MissingTable {
                kind: "quantisation",
                id: luma.tq,
            });
        }

        // Geometry. Luma plane size in samples, then in blocks.
        let (w, h) = (usize::from(f.width), usize::from(f.height));
        let (hmax, vmax) = (usize::from(f.hmax), usize::from(f.vmax));
        let luma_w = (w * usize::from(luma.h)).div_ceil(hmax);
        let luma_h = (h * usize::from(luma.v)).div_ceil(vmax);
        let (out_w, out_h) = (luma_w.div_ceil(8), luma_h.div_ceil(8));
        // MCU layout: a single-component scan is non-interleaved (one block per MCU over
        // that component's own block grid); otherwise every MCU holds H×V blocks of each.
        let mut plan = [Slot::default(); 10];
        let (mcus_x, mcus_y, plan_len, luma_step) = if ns == 1 {
            plan[0] = Slot {
                comp: 0,
                luma: Some((0, 0)),
            };
            (out_w, out_h, 1, (1, 1))
        } else {
            let mut n = 0;
            for (k, &(idx, _, _)) in comps.iter().enumerate() {
                let c = f.components[idx];
                for v in 0..c.v {
                    for hh in 0..c.h {
                        let slot = plan
                            .get_mut(n)
                            .ok_or(DecodeError::Malformed("more than 10 blocks per MCU"))?;
                        *slot = Slot {
                            comp: k as u8,
                            luma: (idx == 0).then_some((hh, v)),
                        };
                        n += 1;
                    }
                }
            }
            (
                w.div_ceil(8 * hmax),
                h.div_ceil(8 * vmax),
                n,
                (usize::from(luma.h), usize::from(luma.v)),
            )
        };
        let plan = &plan[..plan_len];

        self.destuff(jpeg, data_start)?;
        out.width = out_w;
        out.height = out_h;
        out.frame_width = f.width;
        out.frame_height = f.height;
        out.pixels.clear();
        out.pixels.resize(out_w * out_h, 0);

        let total = mcus_x * mcus_y;
        let interval = match usize::from(self.restart_interval) {
            0 => total,
            r => r,
        };
        let intervals = total.div_ceil(interval);
        if self.restart_interval == 0 && !self.segments.is_empty() {
            return Err(DecodeError::Malformed(
                "restart marker without a restart interval (DRI)",
            ));
        }
        if self.segments.len() + 1 < intervals {
            return Err(DecodeError::Truncated(
                "the entropy-coded data (restart intervals missing)",
            ));
        }
        let data_len = self.scratch.len() - 8;
        let tables: [(&DcTable, &AcTable); 4] = core::array::from_fn(|k| {
            let (_, td, ta) = comps.get(k).copied().unwrap_or((0, 0, 0));
            (&self.dc[usize::from(td)], &self.ac[usize::from(ta)])
        });
        let geometry = Geometry {
            mcus_x,
            out_w,
            luma_step,
            q0: i32::from(q0),
        };
        let mut mcu = 0;
        for s in 0..intervals {
            let start = if s == 0 { 0 } else { self.segments[s - 1] };
            let seg_end = self.segments.get(s).copied().unwrap_or(data_len);
            let mut bits = Bits::new(&self.scratch, start);
            let last = (mcu + interval).min(total);
            decode_mcus(
                &mut bits,
                plan,
                &tables,
                &geometry,
                mcu..last,
                &mut out.pixels,
            )
            .map_err(|_| DecodeError::BadCode { interval: s })?;
            mcu = last;
            if bits.consumed_bits() > seg_end * 8 {
                return Err(if s + 1 == intervals && seg_end == data_len {
                    DecodeError::Truncated("the entropy-coded data")
                } else {
                    DecodeError::Malformed("restart interval shorter than its MCUs")
                });
            }
        }
        Ok(ScanOutcome::Done)
    }

    /// Copies the entropy-coded data starting at `start` into `scratch` without stuffing and
    /// restart markers (recording where each interval ends), then 8 zero bytes.
    fn destuff(&mut self, jpeg: &[u8], start: usize) -> Result<(), DecodeError> {
        self.scratch.clear();
        self.segments.clear();
        let data = jpeg
            .get(start..)
            .ok_or(DecodeError::Truncated("the scan"))?;
        self.scratch.reserve(data.len() + 8);
        let mut i = 0;
        loop {
            // The data may end without a marker (no EOI): whether it held enough bits for
            // every MCU is checked while decoding.
            let j = memchr::memchr(0xFF, &data[i..]).map_or(data.len(), |off| i + off);
            self.scratch.extend_from_slice(&data[i..j]);
            match data.get(j + 1) {
                None => {
                    self.scratch.extend_from_slice(&[0; 8]);
                    return Ok(());
                }
                Some(0x00) => {
                    self.scratch.push(0xFF);
                    i = j + 2;
                }
                // Fill byte before a marker.
                Some(0xFF) => i = j + 1,
                Some(0xD0..=0xD7) => {
                    self.segments.push(self.scratch.len());
                    i = j + 2;
                }
                Some(_) => {
                    self.scratch.extend_from_slice(&[0; 8]);
                    return Ok(());
                }
            }
        }
    }
}

/// Where the luma blocks of each MCU go in the output.
struct Geometry {
    mcus_x: usize,
    /// Output width; rows below the output (MCU padding) fall outside `pixels`.
    out_w: usize,
    /// Luma blocks per MCU across and down.
    luma_step: (usize, usize),
    /// DC quantiser of the luma table.
    q0: i32,
}

/// Decodes the MCUs `mcus` (one restart interval) from `bits`, writing luma block means into
/// `pixels`.
///
/// Not inlined, and working on a local copy of the reader: in one small function the
/// reader's state stays in registers for the whole interval.
#[inline(never)]
fn decode_mcus(
    bits: &mut Bits<'_>,
    plan: &[Slot],
    tables: &[(&DcTable, &AcTable); 4],
    g: &Geometry,
    mcus: core::ops::Range<usize>,
    pixels: &mut [u8],
) -> Result<(), BadCode> {
    let mut b = *bits;
    let mut pred = [0i32; 4];
    for mcu in mcus {
        let (mx, my) = (mcu % g.mcus_x, mcu / g.mcus_x);
        for slot in plan {
            let k = usize::from(slot.comp) & 3;
            let (dc, ac) = tables[k];
            match slot.luma {
                Some((bx, by)) => {
                    pred[k] = pred[k].wrapping_add(b.dc_diff(dc)?);
                    b.ac_skip(ac)?;
                    let x = mx * g.luma_step.0 + usize::from(bx);
                    let y = my * g.luma_step.1 + usize::from(by);
                    if x < g.out_w
                        && let Some(p) = pixels.get_mut(y * g.out_w + x)
                    {
                        let mean = (pred[k].wrapping_mul(g.q0).wrapping_add(4) >> 3) + 128;
                        *p = mean.clamp(0, 255) as u8;
                    }
                }
                None => {
                    b.dc_skip(dc)?;
                    b.ac_skip(ac)?;
                }
            }
        }
    }
    *bits = b;
    Ok(())
}

enum ScanOutcome {
    Done,
    SkippedTo(usize),
}

/// Finds the marker that ends the entropy-coded data starting at `start`.
fn skip_entropy(jpeg: &[u8], start: usize) -> Result<usize, DecodeError> {
    let mut i = start;
    loop {
        let rest = jpeg
            .get(i..)
            .ok_or(DecodeError::Truncated("a skipped scan"))?;
        let off = memchr::memchr(0xFF, rest).ok_or(DecodeError::Truncated("a skipped scan"))?;
        let j = i + off;
        match jpeg.get(j + 1) {
            None => return Err(DecodeError::Truncated("a skipped scan")),
            Some(0x00 | 0xD0..=0xD7) => i = j + 2,
            Some(0xFF) => i = j + 1,
            Some(_) => return Ok(j),
        }
    }
}

/// Decodes the luma DC image of `jpeg` with a fresh decoder (allocates; for one-off use —
/// keep a [`DcDecoder`] for a stream of frames).
pub fn decode_dc(jpeg: &[u8]) -> Result<DcImage, DecodeError> {
    let mut out = DcImage::new();
    DcDecoder::default().decode(jpeg, &mut out)?;
    Ok(out)
}

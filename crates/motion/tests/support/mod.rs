//! Deterministic JPEG fixtures shared by the tests and the benchmark: every picture is
//! generated from a seed and encoded with `jpeg-encoder`, so no binary fixture is checked in
//! and every run sees the same bytes.
#![allow(dead_code)]

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

/// SplitMix64: a tiny deterministic generator (the same sequence on every platform and
/// every version of every crate).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..1.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Roughly normal (Irwin–Hall of 4), mean 0, standard deviation `sigma`.
    pub fn noise(&mut self, sigma: f32) -> f32 {
        let s: f32 = (0..4).map(|_| self.unit()).sum::<f32>() - 2.0;
        s * sigma * 1.732
    }
}

/// Chroma subsampling of a fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// 4:2:0, 16×16 MCUs (the virtual camera).
    S420,
    /// 4:2:2, 16×8 MCUs (OV2640 / OV3660 JPEG output).
    S422,
    /// 4:4:4.
    S444,
    /// One component.
    Gray,
}

/// An RGB (or, for [`Sampling::Gray`], grey) picture.
#[derive(Debug, Clone)]
pub struct Picture {
    pub width: u16,
    pub height: u16,
    /// RGB, 3 bytes per pixel.
    pub rgb: Vec<u8>,
}

impl Picture {
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            width,
            height,
            rgb: vec![0; usize::from(width) * usize::from(height) * 3],
        }
    }

    pub fn set(&mut self, x: usize, y: usize, px: [u8; 3]) {
        let i = (y * usize::from(self.width) + x) * 3;
        self.rgb[i..i + 3].copy_from_slice(&px);
    }

    /// Fills a rectangle (clipped to the picture).
    pub fn fill(&mut self, x0: i32, y0: i32, w: i32, h: i32, px: [u8; 3]) {
        let (pw, ph) = (i32::from(self.width), i32::from(self.height));
        for y in y0.max(0)..(y0 + h).min(ph) {
            for x in x0.max(0)..(x0 + w).min(pw) {
                self.set(x as usize, y as usize, px);
            }
        }
    }

    /// Adds `delta` to every channel, clamped: what a sensor's brightness step does.
    pub fn shifted(&self, delta: i32) -> Self {
        let mut out = self.clone();
        for v in &mut out.rgb {
            *v = (i32::from(*v) + delta).clamp(0, 255) as u8;
        }
        out
    }

    /// Adds independent per-pixel noise of standard deviation `sigma` (sensor noise).
    pub fn with_noise(&self, sigma: f32, rng: &mut Rng) -> Self {
        let mut out = self.clone();
        for px in out.rgb.chunks_exact_mut(3) {
            // Luma-correlated noise, as a sensor's is mostly.
            let n = rng.noise(sigma);
            for v in px {
                *v = (f32::from(*v) + n).round().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }

    pub fn grey(&self) -> Vec<u8> {
        self.rgb
            .chunks_exact(3)
            .map(|p| {
                ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114 + 500)
                    / 1000) as u8
            })
            .collect()
    }
}

/// Encodes `pic` with jpeg-encoder's standard tables.
pub fn encode(pic: &Picture, quality: u8, sampling: Sampling, restart: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, quality);
    enc.set_sampling_factor(match sampling {
        Sampling::S420 | Sampling::Gray => SamplingFactor::F_2_2,
        Sampling::S422 => SamplingFactor::F_2_1,
        Sampling::S444 => SamplingFactor::F_1_1,
    });
    if let Some(r) = restart {
        enc.set_restart_interval(r);
    }
    if sampling == Sampling::Gray {
        let grey = pic.grey();
        enc.encode(&grey, pic.width, pic.height, ColorType::Luma)
            .expect("encode fixture");
    } else {
        enc.encode(&pic.rgb, pic.width, pic.height, ColorType::Rgb)
            .expect("encode fixture");
    }
    out
}

/// The esp32-camera quality scale mapped as the virtual camera maps it (12 → 82).
pub fn esp_quality(q: u8) -> u8 {
    (100 - i32::from(q) * 3 / 2).clamp(5, 100) as u8
}

/// The virtual camera's picture (as `crates/sim/src/picture.rs` draws it): a colour
/// gradient scrolling with `phase`, a white bar sweeping across, coloured corner markers.
pub fn virtual_camera(width: u16, height: u16, phase: usize, loop_len: usize) -> Picture {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut pic = Picture::new(width, height);
    let shift = phase * 256 / loop_len;
    let bar_w = (w / 16).max(4);
    let bar_x = phase * w / loop_len;
    let corners = [[230, 30, 30], [30, 200, 30], [30, 30, 230], [230, 230, 30]];
    for y in 0..h {
        for x in 0..w {
            let corner = match (x < 16, x >= w - 16, y < 16, y >= h - 16) {
                (true, _, true, _) => Some(0),
                (_, true, true, _) => Some(1),
                (true, _, _, true) => Some(2),
                (_, true, _, true) => Some(3),
                _ => None,
            };
            let px = if let Some(c) = corner {
                corners[c]
            } else if x >= bar_x && x < bar_x + bar_w {
                [235, 235, 235]
            } else {
                [
                    (((x * 255 / w + shift) % 256) / 2 + 40) as u8,
                    ((y * 255 / h) / 2 + 40) as u8,
                    ((((x + y) / 2 + 2 * shift) % 256) / 2 + 40) as u8,
                ]
            };
            pic.set(x, y, px);
        }
    }
    pic
}

/// Four lines of text-like glyphs in 16×16 cells from the second cell on, as the virtual
/// camera draws its id, sequence number, time and settings into every frame: random 5×7
/// dot patterns (2-px dots), white on black.
pub fn draw_text(pic: &mut Picture, seed: u64) {
    let mut rng = Rng::new(seed);
    let cols = usize::from(pic.width) / 16;
    for (line, len) in [(1i32, 8usize), (2, 10), (3, 14), (4, 16)] {
        for col in 1..cols.saturating_sub(1).min(len) as i32 {
            pic.fill(col * 16, line * 16, 16, 16, [0, 0, 0]);
            for gy in 0..7 {
                for gx in 0..5 {
                    if rng.unit() < 0.4 {
                        pic.fill(
                            col * 16 + 3 + gx * 2,
                            line * 16 + 1 + gy * 2,
                            2,
                            2,
                            [255; 3],
                        );
                    }
                }
            }
        }
    }
}

/// Draws `lines` of text from the second 16×16 cell of the second row on, one character per
/// cell, as the virtual camera does: each character has its own fixed 5×7 dot pattern (a
/// stand-in font), so only characters that change between frames change pixels.
pub fn draw_lines(pic: &mut Picture, lines: &[&str]) {
    for (row, text) in lines.iter().enumerate() {
        for (col, c) in text.bytes().enumerate() {
            let (x, y) = (16 * (col as i32 + 1), 16 * (row as i32 + 1));
            pic.fill(x, y, 16, 16, [0, 0, 0]);
            let mut rng = Rng::new(u64::from(c) * 7919);
            for gy in 0..7 {
                for gx in 0..5 {
                    if rng.unit() < 0.4 {
                        pic.fill(x + 3 + gx * 2, y + 1 + gy * 2, 2, 2, [255; 3]);
                    }
                }
            }
        }
    }
}

/// The virtual camera's frame as it streams: quality 12 (82), 4:2:0, one restart interval
/// per MCU, with four lines of text (VGA: about 25 KB, as the simulator's frames).
pub fn virtual_camera_jpeg(width: u16, height: u16, phase: usize) -> Vec<u8> {
    let mut pic = virtual_camera(width, height, phase, 30);
    draw_text(&mut pic, phase as u64);
    encode(&pic, esp_quality(12), Sampling::S420, Some(1))
}

/// Smooth value noise: a random lattice every `cell` pixels, bilinearly interpolated.
fn value_noise(w: usize, h: usize, cell: usize, rng: &mut Rng) -> Vec<f32> {
    let gw = w / cell + 2;
    let gh = h / cell + 2;
    let grid: Vec<f32> = (0..gw * gh).map(|_| rng.unit()).collect();
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        let (gy, fy) = (y / cell, (y % cell) as f32 / cell as f32);
        for x in 0..w {
            let (gx, fx) = (x / cell, (x % cell) as f32 / cell as f32);
            let a = grid[gy * gw + gx];
            let b = grid[gy * gw + gx + 1];
            let c = grid[(gy + 1) * gw + gx];
            let d = grid[(gy + 1) * gw + gx + 1];
            let top = a + (b - a) * fx;
            let bottom = c + (d - c) * fx;
            out[y * w + x] = top + (bottom - top) * fy;
        }
    }
    out
}

/// A photo-like scene: a sky gradient over textured ground, a few "buildings" with
/// windows, fine texture at several scales (foliage, gravel), all coloured. Deterministic
/// in `seed`. No noise: add it with [`Picture::with_noise`].
pub fn photo_like(width: u16, height: u16, seed: u64) -> Picture {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut rng = Rng::new(seed);
    let scale = w as f32 / 640.0;
    let octaves: Vec<(Vec<f32>, f32)> = [(64.0, 0.5), (16.0, 0.3), (4.0, 0.12), (2.0, 0.06)]
        .iter()
        .map(|&(cell, amp)| {
            (
                value_noise(w, h, ((cell * scale) as usize).max(2), &mut rng),
                amp,
            )
        })
        .collect();
    let horizon = h * 2 / 5;
    let mut pic = Picture::new(width, height);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let t: f32 = octaves.iter().map(|(o, a)| (o[i] - 0.5) * a).sum();
            let px = if y < horizon {
                // Sky: smooth, slightly cloudy.
                let base = 200.0 - 60.0 * y as f32 / horizon as f32 + 30.0 * octaves[0].0[i];
                [base * 0.8, base * 0.9, base]
            } else {
                // Ground: strong texture (foliage, gravel).
                let base = 90.0 + 160.0 * t + 20.0 * (y - horizon) as f32 / h as f32;
                [base * 0.9, base * 1.05, base * 0.7]
            };
            pic.set(x, y, px.map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    // Buildings with lit windows, straddling the horizon.
    for b in 0..6 {
        let bw = (w as f32 * (0.08 + 0.06 * rng.unit())) as i32;
        let bh = (h as f32 * (0.15 + 0.2 * rng.unit())) as i32;
        let bx = (w as f32 * (b as f32 / 6.0 + 0.02 * rng.unit())) as i32;
        let by = horizon as i32 - bh / 2;
        let grey = (60.0 + 100.0 * rng.unit()) as u8;
        pic.fill(bx, by, bw, bh, [grey, grey, grey.saturating_add(10)]);
        let step = (8.0 * scale) as i32 + 4;
        for wy in (by + 4..by + bh - 4).step_by(step as usize) {
            for wx in (bx + 3..bx + bw - 3).step_by(step as usize) {
                let lit = if rng.unit() < 0.5 { 230 } else { 40 };
                pic.fill(wx, wy, step / 2, step / 2, [lit, lit, lit / 2 + 100]);
            }
        }
    }
    pic
}

/// The noisy real-world-like fixture: [`photo_like`] with sensor noise (σ = 6 levels),
/// quality 12 on the camera scale (82), 4:2:2 as OV2640/OV3660 send. Heavier than most
/// real frames (VGA ≈ 80 KB): a worst case.
pub fn noisy_jpeg(width: u16, height: u16, seed: u64) -> Vec<u8> {
    noisy_jpeg_sigma(width, height, seed, 6.0)
}

/// [`photo_like`] (scene `seed`) with sensor noise of standard deviation `sigma` (drawn
/// from `seed` too), quality 12 on the camera scale, 4:2:2.
pub fn noisy_jpeg_sigma(width: u16, height: u16, seed: u64, sigma: f32) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let pic = photo_like(width, height, seed).with_noise(sigma, &mut rng);
    encode(&pic, esp_quality(12), Sampling::S422, None)
}

/// Block means of a decoded luma plane: `(width, height, means)` in 8×8 blocks. Edge blocks
/// that stick out of the picture are NaN: their DC also averages the encoder's padding,
/// which no decoder outputs.
fn block_means(luma: impl Fn(usize, usize) -> f64, w: usize, h: usize) -> (usize, usize, Vec<f64>) {
    let (bw, bh) = (w.div_ceil(8), h.div_ceil(8));
    let mut sums = vec![(0.0f64, 0u32); bw * bh];
    for y in 0..h {
        for x in 0..w {
            let s = &mut sums[(y / 8) * bw + x / 8];
            s.0 += luma(x, y);
            s.1 += 1;
        }
    }
    let means = sums
        .iter()
        .map(|&(s, n)| if n == 64 { s / 64.0 } else { f64::NAN })
        .collect();
    (bw, bh, means)
}

/// Reference block means from an independent full decoder with luma output (zune-jpeg:
/// Huffman, dequantisation, IDCT, no colour conversion).
pub fn reference_block_means(jpeg: &[u8]) -> (usize, usize, Vec<f64>) {
    use zune_jpeg::zune_core::{
        bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions,
    };
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    let px = dec.decode().expect("reference decode");
    let (w, h) = dec.dimensions().expect("decoded dimensions");
    assert_eq!(px.len(), w * h, "zune-jpeg luma output");
    block_means(|x, y| f64::from(px[y * w + x]), w, h)
}

/// Reference block means from a second full decoder (jpeg-decoder, RGB output turned back
/// into BT.601 luma: loses a little where a colour channel clipped).
pub fn reference_block_means_rgb(jpeg: &[u8]) -> (usize, usize, Vec<f64>) {
    let mut dec = jpeg_decoder::Decoder::new(jpeg);
    let px = dec.decode().expect("reference decode");
    let info = dec.info().expect("decoded header");
    let (w, h) = (usize::from(info.width), usize::from(info.height));
    let channels = px.len() / (w * h);
    block_means(
        |x, y| {
            let p = &px[(y * w + x) * channels..];
            if channels == 1 {
                f64::from(p[0])
            } else {
                0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
            }
        },
        w,
        h,
    )
}

/// A still test scene for the detector: a textured backdrop (not noise-free: every frame
/// gets its own sensor noise).
pub fn backdrop(width: u16, height: u16, seed: u64) -> Picture {
    photo_like(width, height, seed)
}

//! The synthetic sensor's pictures: real JPEGs of a moving test pattern, cheap enough for
//! hundreds of cameras per core.
//!
//! Encoding a VGA JPEG costs milliseconds, so per settings combination a short loop of base
//! frames (a colour gradient scrolling and a white bar sweeping across, with coloured corner
//! markers that show flips) is encoded once and shared by every camera with those settings
//! (a process-wide cache). The frames are encoded with a restart marker after every 16×16
//! MCU, which makes each MCU's entropy-coded bytes independent of its neighbours; a set of
//! glyph MCUs (the built-in font, one character per cell, encoded with the same quality and
//! the same standard tables) is encoded alongside. Each frame is then *composed* by copying
//! the base frame and splicing glyph MCUs in place of the MCUs under the text: the camera id,
//! the frame's own sequence number, the wall-clock time to the millisecond and the settings
//! are drawn into every single frame for the price of a memcpy. Because every restart
//! interval keeps its position, the RST markers stay correctly numbered and the result is
//! a valid baseline JPEG.
//!
//! What repeats: the moving pattern loops every 30 frames (10 above SVGA); the text never
//! repeats. This module must never encode per frame.
//!
//! # Scenes
//!
//! The pattern moves everywhere, which a motion detector rightly calls motion all the time.
//! [`Scene`] gives tests a controlled world at the same cost: `Still` composes every frame
//! from base frame 0 only (only the text changes); `Moving` splices a dark square object
//! (about a fifth of the picture's height, 7×7 MCUs at VGA) into that still frame, crossing
//! from left to right in [`MOVE_CROSSING_MS`] and wrapping, using one more pre-encoded
//! solid-colour MCU from the glyph strip; `Lighting` is the still frame whose brightness
//! toggles by one step every [`LIGHT_PERIOD_MS`] (the shell takes the frames of the other
//! brightness from the same cache). Per frame this is still one memcpy plus ≤ 49 spliced
//! MCUs: no scene ever encodes per frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::BytesMut;
use espcam_proto::{Quality, Settings};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use crate::font;

/// MCU size with 4:2:0 chroma subsampling.
const CELL: usize = 16;
/// Most settings combinations kept encoded when no camera uses them.
const CACHE_IDLE_MAX: usize = 48;

/// Why a picture could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    /// The JPEG encoder failed.
    #[error("JPEG encoder failed: {0}")]
    Encode(String),
    /// The encoder's output did not have one restart interval per MCU as requested.
    #[error("unexpected JPEG layout from the encoder: {0}")]
    Layout(&'static str),
    /// The background encoding task died.
    #[error("frame encoding task failed: {0}")]
    Task(String),
}

/// The esp32-camera quality scale (0..=63, lower is better) mapped to the usual 1..=100
/// scale (higher is better): 0 → 100, 12 → 82, 63 → 6.
pub fn jpeg_quality(q: Quality) -> u8 {
    let v = 100 - i32::from(q.get()) * 3 / 2;
    u8::try_from(v.clamp(5, 100)).unwrap_or(50)
}

/// Time the `Moving` scene's object takes to cross the picture once.
pub const MOVE_CROSSING_MS: u64 = 4_000;
/// Time the `Lighting` scene stays at one brightness before stepping to the other.
pub const LIGHT_PERIOD_MS: u64 = 6_000;

/// What the virtual camera is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scene {
    /// The moving test pattern (scrolling gradient, sweeping bar): motion everywhere.
    #[default]
    Pattern,
    /// A still picture; only the text (id, counter, clock) changes.
    Still,
    /// The still picture with a dark square crossing it left to right, over and over.
    Moving,
    /// The still picture, its brightness stepping by one (±40 levels) every
    /// [`LIGHT_PERIOD_MS`]: a lighting change with no motion.
    Lighting,
}

impl Scene {
    /// Every scene, in the order of [`Scene::name`].
    pub const ALL: [Scene; 4] = [Scene::Pattern, Scene::Still, Scene::Moving, Scene::Lighting];

    /// Lower-case name, as the `--scene` flag takes it.
    pub fn name(self) -> &'static str {
        match self {
            Scene::Pattern => "pattern",
            Scene::Still => "still",
            Scene::Moving => "moving",
            Scene::Lighting => "lighting",
        }
    }

    /// The scene called `name` (see [`Scene::name`]).
    pub fn from_name(name: &str) -> Option<Scene> {
        Scene::ALL.into_iter().find(|s| s.name() == name)
    }

    /// `Lighting` only: whether the picture is at the stepped brightness `elapsed_ms` after
    /// the scene began (off for the first period, on for the second, ...).
    pub fn lit_step(self, elapsed_ms: u64) -> bool {
        self == Scene::Lighting && (elapsed_ms / LIGHT_PERIOD_MS) % 2 == 1
    }
}

/// One encoded base frame and where each MCU's bytes are.
#[derive(Debug)]
struct Encoded {
    jpeg: Vec<u8>,
    /// Per MCU in raster order: `(start, end)` of its entropy-coded bytes. The restart
    /// marker after MCU `i` (if any) sits at `end..end + 2`.
    mcus: Vec<(usize, usize)>,
}

/// Everything needed to compose frames for one settings combination. Shared (`Arc`) by all
/// cameras with those settings.
#[derive(Debug)]
pub struct FrameSet {
    settings: Settings,
    width: u16,
    height: u16,
    mcus_x: usize,
    /// Rows of MCUs that are entirely inside the image (text goes only there).
    rows_full: usize,
    frames: Vec<Encoded>,
    /// Per font glyph: the entropy-coded bytes of one MCU showing it; then one more, the
    /// `Moving` scene's object (index [`FrameSet::object_glyph`]).
    glyphs: Vec<Vec<u8>>,
}

impl FrameSet {
    /// Encodes the loop and the glyphs for `settings` (tens of milliseconds at VGA: call it
    /// off the async runtime).
    pub fn build(settings: Settings) -> Result<Self, PictureError> {
        let pixels =
            usize::from(settings.resolution.width()) * usize::from(settings.resolution.height());
        Self::build_loop(settings, if pixels <= 800 * 600 { 30 } else { 10 })
    }

    fn build_loop(settings: Settings, loop_len: usize) -> Result<Self, PictureError> {
        let (w, h) = (settings.resolution.width(), settings.resolution.height());
        let mcus_x = usize::from(w).div_ceil(CELL);
        let mcus_y = usize::from(h).div_ceil(CELL);
        let quality = jpeg_quality(settings.quality);
        let mut frames = Vec::with_capacity(loop_len);
        for phase in 0..loop_len {
            let rgb = render_base(&settings, phase, loop_len);
            let jpeg = encode(&rgb, w, h, quality)?;
            let mcus = mcu_segments(&jpeg, mcus_x * mcus_y)?;
            frames.push(Encoded { jpeg, mcus });
        }
        // The font's glyphs and, after them, the object's solid MCU.
        let n = font::CHARSET.len() + 1;
        let strip = render_glyphs(&settings);
        let width =
            u16::try_from(n * CELL).map_err(|_| PictureError::Layout("glyph strip too wide"))?;
        let glyph_jpeg = encode(&strip, width, CELL as u16, quality)?;
        let glyphs = mcu_segments(&glyph_jpeg, n)?
            .into_iter()
            .map(|(s, e)| glyph_jpeg[s..e].to_vec())
            .collect();
        Ok(Self {
            settings,
            width: w,
            height: h,
            mcus_x,
            rows_full: usize::from(h) / CELL,
            frames,
            glyphs,
        })
    }

    /// The settings these frames show.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Frame width, px.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Frame height, px.
    pub fn height(&self) -> u16 {
        self.height
    }

    /// Number of distinct base frames before the moving pattern repeats.
    pub fn loop_len(&self) -> usize {
        self.frames.len()
    }

    /// Characters that fit on one text line.
    pub fn line_chars(&self) -> usize {
        self.mcus_x.saturating_sub(2)
    }

    /// Appends frame number `index` of the loop to `out`, with `lines` of text drawn in (top
    /// left, one 16-px line each; text that does not fit is cut). A complete JPEG.
    pub fn compose(&self, index: u64, lines: &[&str], out: &mut BytesMut) {
        self.compose_scene(Scene::Pattern, index, 0, lines, out);
    }

    fn object_glyph(&self) -> usize {
        self.glyphs.len() - 1
    }

    /// Side of the `Moving` scene's square object, in MCUs.
    pub fn object_side(&self) -> usize {
        (self.rows_full / 4).clamp(2, self.mcus_x / 3)
    }

    /// `Moving` only: the object's leftmost MCU column `elapsed_ms` into the scene (it enters
    /// at the left edge and leaves at the right, then starts again).
    pub fn object_column(&self, elapsed_ms: u64) -> usize {
        let travel = (self.mcus_x - self.object_side()) as u64 + 1;
        let phase = elapsed_ms % MOVE_CROSSING_MS;
        (phase * travel / MOVE_CROSSING_MS) as usize
    }

    /// Like [`FrameSet::compose`], for `scene` `elapsed_ms` after the scene began. `Pattern`
    /// uses loop frame `index`; the other scenes use frame 0 only (`Lighting`'s brightness
    /// step is the caller's: it composes from the other brightness's set, see the module
    /// docs).
    pub fn compose_scene(
        &self,
        scene: Scene,
        index: u64,
        elapsed_ms: u64,
        lines: &[&str],
        out: &mut BytesMut,
    ) {
        let index = if scene == Scene::Pattern { index } else { 0 };
        let base = &self.frames[(index % self.frames.len() as u64) as usize];
        let max_lines = self.rows_full.saturating_sub(2);
        let mut spots: Vec<(usize, usize)> = Vec::with_capacity(128);
        for (r, line) in lines.iter().take(max_lines).enumerate() {
            for (k, c) in line.bytes().take(self.line_chars()).enumerate() {
                let (mut col, mut row) = (1 + k, 1 + r);
                if self.settings.hmirror {
                    col = self.mcus_x - 1 - col;
                }
                if self.settings.vflip {
                    row = self.rows_full - 1 - row;
                }
                spots.push((row * self.mcus_x + col, font::index(c)));
            }
        }
        if scene == Scene::Moving {
            let side = self.object_side();
            let (x0, y0) = (
                self.object_column(elapsed_ms),
                (self.rows_full - side) / 2 + 1,
            );
            for row in y0..(y0 + side).min(self.rows_full) {
                for col in x0..(x0 + side).min(self.mcus_x) {
                    spots.push((row * self.mcus_x + col, self.object_glyph()));
                }
            }
        }
        // Stable: where text and object meet, the text (pushed first) stays.
        spots.sort_by_key(|s| s.0);
        spots.dedup_by_key(|s| s.0);
        out.reserve(base.jpeg.len() + spots.len() * 64);
        let mut cursor = 0;
        for (mcu, glyph) in spots {
            let Some(&(start, end)) = base.mcus.get(mcu) else {
                continue;
            };
            out.extend_from_slice(&base.jpeg[cursor..start]);
            out.extend_from_slice(&self.glyphs[glyph]);
            cursor = end;
        }
        out.extend_from_slice(&base.jpeg[cursor..]);
    }
}

/// One JPEG of the test pattern with `lines` of text drawn in, for tests and tools that need
/// a real frame of given settings. Encodes from scratch (milliseconds); not for streaming.
pub fn test_jpeg(settings: &Settings, lines: &[&str]) -> Result<Vec<u8>, PictureError> {
    let set = FrameSet::build_loop(*settings, 1)?;
    let mut out = BytesMut::new();
    set.compose(0, lines, &mut out);
    Ok(out.to_vec())
}

/// The frames for `settings`, from the process-wide cache, encoding them (on a blocking
/// thread) if no camera used these settings recently. Concurrent callers share one encode.
pub async fn frame_set(settings: Settings) -> Result<Arc<FrameSet>, PictureError> {
    type Cell = Arc<tokio::sync::OnceCell<Arc<FrameSet>>>;
    // Settings → frames. A `OnceCell` per entry so that 200 cameras switching to the same
    // settings encode once and wait for that one result.
    static CACHE: OnceLock<Mutex<HashMap<Settings, Cell>>> = OnceLock::new();
    let cell = {
        let mut map = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_IDLE_MAX && !map.contains_key(&settings) {
            // Forget sets no camera holds any more.
            map.retain(|_, c| c.get().is_none_or(|set| Arc::strong_count(set) > 1));
        }
        map.entry(settings).or_default().clone()
    };
    cell.get_or_try_init(|| async move {
        tokio::task::spawn_blocking(move || FrameSet::build(settings).map(Arc::new))
            .await
            .map_err(|e| PictureError::Task(e.to_string()))?
    })
    .await
    .cloned()
}

fn encode(rgb: &[u8], w: u16, h: u16, quality: u8) -> Result<Vec<u8>, PictureError> {
    let mut out = Vec::with_capacity(usize::from(w) * usize::from(h) / 4);
    let mut enc = Encoder::new(&mut out, quality);
    // Fixed 16×16 MCUs (the encoder would switch to 4:4:4 above quality 90), and one restart
    // interval per MCU so MCUs can be swapped (see the module docs).
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    enc.set_restart_interval(1);
    enc.encode(rgb, w, h, ColorType::Rgb)
        .map_err(|e| PictureError::Encode(e.to_string()))?;
    Ok(out)
}

/// Finds each MCU's entropy-coded bytes, checking the layout is exactly one restart interval
/// per MCU with correctly numbered markers.
fn mcu_segments(jpeg: &[u8], expected: usize) -> Result<Vec<(usize, usize)>, PictureError> {
    let be16 = |i: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *jpeg.get(i)?,
            *jpeg.get(i + 1)?,
        ])))
    };
    let mut i = 2;
    loop {
        if jpeg.get(i) != Some(&0xFF) {
            return Err(PictureError::Layout("marker expected before the scan"));
        }
        let marker = *jpeg
            .get(i + 1)
            .ok_or(PictureError::Layout("truncated header"))?;
        let len = be16(i + 2).ok_or(PictureError::Layout("truncated header"))?;
        i += 2 + len;
        if marker == 0xDA {
            break;
        }
    }
    let mut mcus = Vec::with_capacity(expected);
    let mut start = i;
    loop {
        let Some(&b) = jpeg.get(i) else {
            return Err(PictureError::Layout("no end of image"));
        };
        if b != 0xFF {
            i += 1;
            continue;
        }
        match jpeg.get(i + 1) {
            Some(0x00) => i += 2,
            Some(&m @ 0xD0..=0xD7) => {
                if usize::from(m - 0xD0) != mcus.len() % 8 {
                    return Err(PictureError::Layout("restart markers out of order"));
                }
                mcus.push((start, i));
                i += 2;
                start = i;
            }
            Some(0xD9) => {
                mcus.push((start, i));
                break;
            }
            _ => return Err(PictureError::Layout("unexpected marker in the scan")),
        }
    }
    if mcus.len() != expected {
        return Err(PictureError::Layout("not one restart interval per MCU"));
    }
    Ok(mcus)
}

/// Brightness as the sensor would apply it: a shift of 40 levels per step.
fn shade(v: i32, settings: &Settings) -> u8 {
    (v + i32::from(settings.brightness.get()) * 40).clamp(0, 255) as u8
}

/// Corner marker colours (top-left, top-right, bottom-left, bottom-right) before flipping:
/// tests find them after a flip to prove the image really flipped.
pub(crate) const CORNERS: [[u8; 3]; 4] =
    [[230, 30, 30], [30, 200, 30], [30, 30, 230], [230, 230, 30]];

/// The moving test pattern for loop frame `phase`, with flips and brightness applied.
fn render_base(settings: &Settings, phase: usize, loop_len: usize) -> Vec<u8> {
    let (w, h) = (
        usize::from(settings.resolution.width()),
        usize::from(settings.resolution.height()),
    );
    let mut rgb = vec![0u8; w * h * 3];
    let shift = phase * 256 / loop_len.max(1);
    let bar_w = (w / 16).max(4);
    let bar_x = phase * w / loop_len.max(1);
    let marker = CELL;
    for y in 0..h {
        // Logical coordinates: what the pixel shows before the sensor flips the image.
        let ly = if settings.vflip { h - 1 - y } else { y };
        let row = &mut rgb[y * w * 3..(y + 1) * w * 3];
        for x in 0..w {
            let lx = if settings.hmirror { w - 1 - x } else { x };
            let corner = match (lx < marker, lx >= w - marker, ly < marker, ly >= h - marker) {
                (true, _, true, _) => Some(0),
                (_, true, true, _) => Some(1),
                (true, _, _, true) => Some(2),
                (_, true, _, true) => Some(3),
                _ => None,
            };
            let px = if let Some(c) = corner {
                CORNERS[c].map(i32::from)
            } else if lx >= bar_x && lx < bar_x + bar_w {
                [235, 235, 235]
            } else {
                [
                    ((lx * 255 / w + shift) % 256) as i32 / 2 + 40,
                    (ly * 255 / h) as i32 / 2 + 40,
                    (((lx + ly) / 2 + 2 * shift) % 256) as i32 / 2 + 40,
                ]
            };
            let p = &mut row[x * 3..x * 3 + 3];
            p[0] = shade(px[0], settings);
            p[1] = shade(px[1], settings);
            p[2] = shade(px[2], settings);
        }
    }
    rgb
}

/// The `Moving` scene's object colour (dark grey, before shading).
const OBJECT: [i32; 3] = [12, 12, 12];

/// One 16×16 cell per font glyph, side by side, flipped and shaded like the frames; then one
/// solid cell of the object's colour.
fn render_glyphs(settings: &Settings) -> Vec<u8> {
    let n = font::CHARSET.len() + 1;
    let w = n * CELL;
    let mut rgb = vec![0u8; w * CELL * 3];
    for y in 0..CELL {
        let ly = if settings.vflip { CELL - 1 - y } else { y };
        for x in 0..w {
            let (g, cx) = (x / CELL, x % CELL);
            let lx = if settings.hmirror { CELL - 1 - cx } else { cx };
            let v = if g == n - 1 {
                OBJECT
            } else if font::ink(g, lx, ly) {
                [250, 250, 250]
            } else {
                [16, 16, 40]
            };
            let p = &mut rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
            for k in 0..3 {
                p[k] = shade(v[k], settings);
            }
        }
    }
    rgb
}

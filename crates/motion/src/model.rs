//! The background model: which cells of a DC image changed, and how much of each zone.
//!
//! Why it exists: a cell (one 8×8 block's mean) "changed" when it differs from what the
//! background predicts for this frame's lighting. Two effects must not count:
//!
//! - **Global lighting steps** (a brightness command, auto-exposure, a cloud): every cell
//!   shifts by about the same amount at once. The model estimates that shift as the
//!   *median* of `frame − background` over the unmasked cells (a moving object covering
//!   less than half the picture cannot move a median far) and predicts
//!   `clamp(background + shift, 0, 255)`: clamping keeps cells that were already near white
//!   (or black) from looking changed when the rest brightens (or darkens).
//! - **Slow changes** (daylight, shadows, an object that stops and stays): the background is
//!   a running average per cell, pulled towards each frame with a rate of
//!   `dt / (adapt_ms + dt)`, so it follows with a time constant of `adapt_ms` whatever the
//!   analysis rate.
//!
//! It must never decide *events* (that is the detector's hysteresis) nor read a clock:
//! the time since the previous frame is an argument.

use alloc::vec::Vec;

use crate::config::{MotionConfig, ZoneSet};
use crate::dc::DcImage;

/// The lighting shift is the median over every this many cells.
const SHIFT_SAMPLE_STEP: usize = 3;

/// Per-cell zone membership, compiled from a configuration for one grid size.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    width: usize,
    height: usize,
    /// Per cell: zones it belongs to; cells outside every zone are still scored when the
    /// configuration has no zones.
    zones: Vec<u32>,
    /// Per cell: ignored (masked).
    masked: Vec<bool>,
    /// Cells per zone (unmasked).
    zone_cells: Vec<u32>,
    /// Unmasked cells.
    live_cells: u32,
}

impl Layout {
    pub(crate) fn new(config: &MotionConfig, width: usize, height: usize) -> Self {
        let n = width * height;
        let mut zones = alloc::vec![0u32; n];
        let mut masked = alloc::vec![false; n];
        let centre = |i: usize| {
            let (x, y) = (i % width, i / width);
            (
                (x as f32 + 0.5) / width as f32,
                (y as f32 + 0.5) / height as f32,
            )
        };
        for (i, m) in masked.iter_mut().enumerate() {
            let (x, y) = centre(i);
            *m = config.mask.iter().any(|r| r.contains(x, y));
        }
        let mut zone_cells = alloc::vec![0u32; config.zones.len()];
        for (z, zone) in config.zones.iter().enumerate() {
            let mut any = false;
            for (i, bits) in zones.iter_mut().enumerate() {
                let (x, y) = centre(i);
                if zone.rect.contains(x, y) {
                    any = true;
                    if !masked[i] {
                        *bits |= 1 << z;
                        zone_cells[z] += 1;
                    }
                }
            }
            // A zone smaller than a cell: the cell under its centre.
            if !any && width > 0 && height > 0 {
                let r = zone.rect;
                let cx = ((r.x0 + r.x1) / 2.0 * width as f32) as usize;
                let cy = ((r.y0 + r.y1) / 2.0 * height as f32) as usize;
                let i = cy.min(height - 1) * width + cx.min(width - 1);
                if !masked[i] {
                    zones[i] |= 1 << z;
                    zone_cells[z] += 1;
                }
            }
        }
        let live_cells = masked.iter().filter(|&&m| !m).count() as u32;
        Self {
            width,
            height,
            zones,
            masked,
            zone_cells,
            live_cells,
        }
    }

    pub(crate) fn fits(&self, width: usize, height: usize) -> bool {
        self.width == width && self.height == height && self.masked.len() == width * height
    }
}

/// What one frame scored.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scores {
    /// Changed fraction of the whole picture (unmasked cells).
    pub(crate) overall: f32,
    /// Changed cells (unmasked).
    pub(crate) changed: u32,
    /// The lighting shift applied, luma levels.
    pub(crate) shift: i16,
}

/// The running background of one camera.
#[derive(Debug, Clone, Default)]
pub(crate) struct Background {
    width: usize,
    height: usize,
    /// Per cell, 8.8 fixed point luma.
    mean: Vec<u16>,
    /// Per cell: changed in the last frame.
    changed: Vec<bool>,
    /// Scratch histogram of `frame − background`, offset by 255.
    hist: Vec<u32>,
}

impl Background {
    /// Whether the model holds a background for this grid.
    pub(crate) fn ready_for(&self, img: &DcImage) -> bool {
        self.width == img.width() && self.height == img.height() && !self.mean.is_empty()
    }

    /// Starts over from `img`.
    pub(crate) fn reset(&mut self, img: &DcImage) {
        self.width = img.width();
        self.height = img.height();
        self.mean.clear();
        self.mean
            .extend(img.pixels().iter().map(|&p| u16::from(p) << 8));
        self.changed.clear();
        self.changed.resize(self.mean.len(), false);
        self.hist.clear();
        self.hist.resize(511, 0);
    }

    /// Per cell: changed in the last frame.
    pub(crate) fn changed(&self) -> &[bool] {
        &self.changed
    }

    /// Scores `img` against the background, writes each zone's changed fraction into
    /// `zone_scores`, then updates the background (`dt_ms` since the previous frame).
    /// Requires [`Background::ready_for`] and a [`Layout`] that fits.
    pub(crate) fn score_and_update(
        &mut self,
        img: &DcImage,
        layout: &Layout,
        config: &MotionConfig,
        dt_ms: u64,
        zone_scores: &mut Vec<f32>,
    ) -> Scores {
        let px = img.pixels();
        let level = |m: u16| i32::from((m + 128) >> 8);

        // 1. The global lighting shift: median of frame − background over live cells. Every
        //    third cell is plenty for a median (and a third of the cost: neighbouring cells
        //    often hit the same bin, which serialises the increments).
        self.hist.clear();
        self.hist.resize(511, 0);
        let sampled = px
            .iter()
            .zip(&self.mean)
            .zip(&layout.masked)
            .step_by(SHIFT_SAMPLE_STEP);
        let mut samples = 0;
        for ((&p, &m), &masked) in sampled {
            if !masked {
                let d = i32::from(p) - level(m);
                self.hist[(d + 255) as usize] += 1;
                samples += 1;
            }
        }
        let shift = median(&self.hist, samples).map_or(0, |m| m as i32 - 255);

        // 2. Changed cells, per zone.
        let delta = i32::from(config.cell_delta);
        let mut counts = [0u32; 32];
        let mut changed_total = 0u32;
        let cells = px
            .iter()
            .zip(&self.mean)
            .zip(&layout.masked)
            .zip(&layout.zones)
            .zip(&mut self.changed);
        for ((((&p, &m), &masked), &zones), changed) in cells {
            let expected = (level(m) + shift).clamp(0, 255);
            // Branch-free: in a busy scene about half the cells change, unpredictably.
            let c = !masked & ((i32::from(p) - expected).abs() > delta);
            *changed = c;
            changed_total += u32::from(c);
            if zones != 0 && c {
                let mut z = zones;
                while z != 0 {
                    counts[z.trailing_zeros() as usize] += 1;
                    z &= z - 1;
                }
            }
        }
        zone_scores.clear();
        zone_scores.extend(layout.zone_cells.iter().zip(counts).map(|(&cells, c)| {
            if cells == 0 {
                0.0
            } else {
                c as f32 / cells as f32
            }
        }));

        // 3. Follow the frame: rate dt / (adapt + dt) in Q15, so that `difference × rate`
        //    (at most 65 280 × 32 768 < 2^31) fits an i32 and the loop vectorises. The new
        //    mean lies between the old one and the frame: no clamping needed.
        let dt = dt_ms.min(u64::from(u32::MAX));
        let rate = (dt << 15) / (u64::from(config.adapt_ms) + dt).max(1);
        let rate = rate.min(1 << 15) as i32;
        for (mean, &p) in self.mean.iter_mut().zip(px) {
            let m = i32::from(*mean);
            let target = i32::from(p) << 8;
            *mean = (m + (((target - m) * rate) >> 15)) as u16;
        }

        Scores {
            overall: if layout.live_cells == 0 {
                0.0
            } else {
                changed_total as f32 / layout.live_cells as f32
            },
            changed: changed_total,
            shift: shift as i16,
        }
    }
}

/// The zones whose score reaches `threshold`.
pub(crate) fn zones_over(zone_scores: &[f32], threshold: f32) -> ZoneSet {
    let mut set = ZoneSet::EMPTY;
    for (i, &s) in zone_scores.iter().enumerate() {
        if s >= threshold {
            set.insert(i);
        }
    }
    set
}

/// Index of the median of a histogram holding `total` samples.
fn median(hist: &[u32], total: u32) -> Option<usize> {
    if total == 0 {
        return None;
    }
    let half = total.div_ceil(2);
    let mut seen = 0;
    for (i, &h) in hist.iter().enumerate() {
        seen += h;
        if seen >= half {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Rect, Zone};

    fn image(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> DcImage {
        let px = (0..w * h).map(|i| f(i % w, i / w)).collect();
        DcImage::from_pixels(w, h, px).unwrap()
    }

    #[test]
    fn a_global_shift_changes_no_cell_and_an_object_does() {
        let config = MotionConfig::default();
        let layout = Layout::new(&config, 20, 10);
        let base = image(20, 10, |x, y| (x * 10 + y * 3) as u8 + 20);
        let mut bg = Background::default();
        bg.reset(&base);
        let mut zs = Vec::new();
        // +40 everywhere, clamped at 255 where the picture was bright already.
        let brighter = image(20, 10, |x, y| ((x * 10 + y * 3) as u32 + 60).min(255) as u8);
        let s = bg.score_and_update(&brighter, &layout, &config, 200, &mut zs);
        assert_eq!((s.changed, s.shift), (0, 40));
        // A 4×3 dark object.
        let object = image(20, 10, |x, y| {
            if (5..9).contains(&x) && (2..5).contains(&y) {
                5
            } else {
                (x * 10 + y * 3) as u8 + 20
            }
        });
        bg.reset(&base);
        let s = bg.score_and_update(&object, &layout, &config, 200, &mut zs);
        assert_eq!((s.changed, s.shift), (12, 0));
        assert!((s.overall - 12.0 / 200.0).abs() < 1e-6);
    }

    #[test]
    fn zones_and_mask_map_to_cells_by_their_centres() {
        let config = MotionConfig {
            zones: alloc::vec![
                Zone {
                    name: "left".into(),
                    rect: Rect::new(0.0, 0.0, 0.5, 1.0),
                },
                Zone {
                    name: "dot".into(),
                    rect: Rect::new(0.91, 0.91, 0.92, 0.92),
                },
            ],
            mask: alloc::vec![Rect::new(0.0, 0.0, 0.25, 1.0)],
            ..Default::default()
        };
        let layout = Layout::new(&config, 8, 4);
        // Left half = columns 0..4, of which 0..2 are masked.
        assert_eq!(layout.zone_cells, [8, 1]);
        assert_eq!(layout.live_cells, 24);
        // The tiny zone is the cell under its centre: (7, 3).
        assert_eq!(layout.zones[3 * 8 + 7], 0b10);
    }

    #[test]
    fn the_background_follows_with_the_configured_time_constant() {
        let config = MotionConfig {
            adapt_ms: 1_000,
            ..Default::default()
        };
        let layout = Layout::new(&config, 4, 4);
        let mut bg = Background::default();
        bg.reset(&image(4, 4, |_, _| 100));
        let mut zs = Vec::new();
        // One dt = adapt step moves half way.
        bg.score_and_update(&image(4, 4, |_, _| 200), &layout, &config, 1_000, &mut zs);
        assert_eq!(bg.mean[0] >> 8, 150);
        // A huge gap adopts the frame.
        bg.score_and_update(&image(4, 4, |_, _| 10), &layout, &config, u64::MAX, &mut zs);
        assert_eq!(bg.mean[0] >> 8, 10);
    }
}

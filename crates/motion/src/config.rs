//! Per-camera motion settings: what counts as motion, where, and for how long.
//!
//! Why it exists: the hub stores one [`MotionConfig`] per camera and may change it at any
//! time (the dashboard draws zones and a mask on the live picture). Everything here is
//! checked by [`MotionConfig::validate`], whose errors name the bad value and the range
//! expected, so the hub can hand them to the user as they are. Rectangles are in normalised
//! picture coordinates (0..=1 from the top left), so a configuration survives a resolution
//! change.
//!
//! It must never hold anything a frame computes (that is the detector's state).

use alloc::string::String;
use alloc::vec::Vec;

/// Most zones per camera: zone sets are 32-bit masks ([`ZoneSet`]).
pub const MAX_ZONES: usize = 32;
/// Most mask rectangles per camera.
pub const MAX_MASK_RECTS: usize = 64;
/// Longest zone name, in bytes.
pub const MAX_ZONE_NAME: usize = 32;

/// A rectangle in normalised picture coordinates: `0 <= x0 < x1 <= 1`, `0 <= y0 < y1 <= 1`,
/// (0, 0) the top-left corner. A cell (one 8×8 block) belongs to it when the cell's centre
/// does.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Rect {
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl Rect {
    /// The whole picture.
    pub const FULL: Rect = Rect {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    };

    /// A rectangle from its edges (not validated: see [`MotionConfig::validate`]).
    pub const fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// Whether the point (`x`, `y`) (normalised) is inside: left/top edges inclusive,
    /// right/bottom exclusive, except at 1.0.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x0
            && y >= self.y0
            && (x < self.x1 || self.x1 >= 1.0)
            && (y < self.y1 || self.y1 >= 1.0)
    }

    fn check(&self) -> Result<(), RectProblem> {
        for (field, value) in [
            ("x0", self.x0),
            ("y0", self.y0),
            ("x1", self.x1),
            ("y1", self.y1),
        ] {
            // `!(0..=1).contains` is also true for NaN.
            if !(0.0..=1.0).contains(&value) {
                return Err(RectProblem::OutOfRange { field, value });
            }
        }
        if self.x0 >= self.x1 {
            return Err(RectProblem::Empty {
                low: "x0",
                high: "x1",
                lo: self.x0,
                hi: self.x1,
            });
        }
        if self.y0 >= self.y1 {
            return Err(RectProblem::Empty {
                low: "y0",
                high: "y1",
                lo: self.y0,
                hi: self.y1,
            });
        }
        Ok(())
    }
}

/// A named area whose motion is scored on its own.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Zone {
    /// 1..=32 bytes of ASCII letters, digits, space, `-`, `_`, `.`.
    pub name: String,
    /// Where it is.
    pub rect: Rect,
}

/// Motion settings of one camera. [`Default`] gives the values documented on each field.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct MotionConfig {
    /// 0..=100 (default 50): how small a changed area counts as motion. A zone (or the
    /// whole picture when there are no zones) triggers when the changed fraction of its
    /// cells reaches `10 % × 0.955^sensitivity`: 10 % at 0, 1 % at 50, 0.1 % at 100 (each
    /// +50 divides the area by ten). See [`MotionConfig::area_threshold`].
    pub sensitivity: u8,
    /// 2..=128 (default 12): how many luma levels (0..=255) a cell's mean must differ from
    /// the background, after the global lighting correction, to count as changed.
    pub cell_delta: u8,
    /// 1..=50 (default 2): consecutive analysed frames that must trigger before motion
    /// starts (K). At 5 analysed frames/s, 2 frames start an event 0.2 s after the motion
    /// began (its start time is the first of those frames).
    pub start_frames: u8,
    /// 100..=3 600 000 ms (default 5 000): how long no frame may trigger before motion
    /// ends (T).
    pub end_after_ms: u32,
    /// 1 000..=3 600 000 ms (default 10 000): time constant of the background's running
    /// average. Slow light changes (sun, clouds, lamps warming up) and objects that stop and
    /// stay are absorbed at this pace; global brightness steps need no adaptation (the
    /// lighting correction removes them at once).
    pub adapt_ms: u32,
    /// At most [`MAX_ZONES`] zones; empty = the whole picture is scored as one area.
    pub zones: Vec<Zone>,
    /// At most [`MAX_MASK_RECTS`] rectangles whose cells are ignored entirely (they are
    /// in no zone and never move the lighting correction).
    pub mask: Vec<Rect>,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            sensitivity: 50,
            cell_delta: 12,
            start_frames: 2,
            end_after_ms: 5_000,
            adapt_ms: 10_000,
            zones: Vec::new(),
            mask: Vec::new(),
        }
    }
}

/// Which rectangle of a configuration is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RectOwner {
    /// The rectangle of zone `n` (0-based).
    Zone(usize),
    /// Mask rectangle `n` (0-based).
    Mask(usize),
}

impl core::fmt::Display for RectOwner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RectOwner::Zone(i) => write!(f, "zone {i} rectangle"),
            RectOwner::Mask(i) => write!(f, "mask rectangle {i}"),
        }
    }
}

/// What is wrong with a rectangle.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum RectProblem {
    /// An edge outside 0..=1 (or not a number).
    #[error("{field} {value} out of range 0..=1")]
    OutOfRange {
        /// `x0`, `y0`, `x1` or `y1`.
        field: &'static str,
        /// The value given.
        value: f32,
    },
    /// The low edge is not below the high edge.
    #[error("{low} {lo} must be below {high} {hi}")]
    Empty {
        /// `x0` or `y0`.
        low: &'static str,
        /// `x1` or `y1`.
        high: &'static str,
        /// The low edge given.
        lo: f32,
        /// The high edge given.
        hi: f32,
    },
}

/// Why a [`MotionConfig`] was refused. Messages name the value and the range expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// [`MotionConfig::sensitivity`] out of range.
    #[error("sensitivity {0} out of range 0..=100")]
    Sensitivity(u8),
    /// [`MotionConfig::cell_delta`] out of range.
    #[error("cell_delta {0} out of range 2..=128")]
    CellDelta(u8),
    /// [`MotionConfig::start_frames`] out of range.
    #[error("start_frames {0} out of range 1..=50")]
    StartFrames(u8),
    /// [`MotionConfig::end_after_ms`] out of range.
    #[error("end_after_ms {0} out of range 100..=3600000")]
    EndAfter(u32),
    /// [`MotionConfig::adapt_ms`] out of range.
    #[error("adapt_ms {0} out of range 1000..=3600000")]
    Adapt(u32),
    /// More than [`MAX_ZONES`] zones.
    #[error("{0} zones; at most 32")]
    TooManyZones(usize),
    /// More than [`MAX_MASK_RECTS`] mask rectangles.
    #[error("{0} mask rectangles; at most 64")]
    TooManyMaskRects(usize),
    /// A zone name that is empty, too long or has other characters than allowed. The name
    /// itself is not repeated (it came from a user and may be anything).
    #[error(
        "zone {index} name ({len} bytes): expected 1..=32 bytes of ASCII letters, digits, space, '-', '_', '.'"
    )]
    ZoneName {
        /// The zone (0-based).
        index: usize,
        /// The name's length in bytes.
        len: usize,
    },
    /// Two zones with the same name.
    #[error("zones {first} and {second} have the same name; expected unique names")]
    DuplicateZoneName {
        /// The first zone with that name.
        first: usize,
        /// The other one.
        second: usize,
    },
    /// A bad rectangle.
    #[error("{owner}: {problem}")]
    Rect {
        /// Which rectangle.
        owner: RectOwner,
        /// What is wrong.
        problem: RectProblem,
    },
}

fn name_ok(name: &str) -> bool {
    (1..=MAX_ZONE_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'_' | b'.'))
}

impl MotionConfig {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sensitivity > 100 {
            return Err(ConfigError::Sensitivity(self.sensitivity));
        }
        if !(2..=128).contains(&self.cell_delta) {
            return Err(ConfigError::CellDelta(self.cell_delta));
        }
        if !(1..=50).contains(&self.start_frames) {
            return Err(ConfigError::StartFrames(self.start_frames));
        }
        if !(100..=3_600_000).contains(&self.end_after_ms) {
            return Err(ConfigError::EndAfter(self.end_after_ms));
        }
        if !(1_000..=3_600_000).contains(&self.adapt_ms) {
            return Err(ConfigError::Adapt(self.adapt_ms));
        }
        if self.zones.len() > MAX_ZONES {
            return Err(ConfigError::TooManyZones(self.zones.len()));
        }
        if self.mask.len() > MAX_MASK_RECTS {
            return Err(ConfigError::TooManyMaskRects(self.mask.len()));
        }
        for (index, zone) in self.zones.iter().enumerate() {
            if !name_ok(&zone.name) {
                return Err(ConfigError::ZoneName {
                    index,
                    len: zone.name.len(),
                });
            }
            if let Some(first) = self.zones[..index].iter().position(|z| z.name == zone.name) {
                return Err(ConfigError::DuplicateZoneName {
                    first,
                    second: index,
                });
            }
            zone.rect.check().map_err(|problem| ConfigError::Rect {
                owner: RectOwner::Zone(index),
                problem,
            })?;
        }
        for (i, rect) in self.mask.iter().enumerate() {
            rect.check().map_err(|problem| ConfigError::Rect {
                owner: RectOwner::Mask(i),
                problem,
            })?;
        }
        Ok(())
    }

    /// The changed fraction of a zone's cells (0..=1) at which it triggers:
    /// `0.1 × 0.955^sensitivity` (0.1 at 0, 0.01 at 50, 0.001 at 100).
    pub fn area_threshold(&self) -> f32 {
        // 10^(-1/50), so that +50 sensitivity divides the area by 10. Computed by repeated
        // multiplication: no libm in no_std.
        const STEP: f32 = 0.954_992_6;
        let mut t = 0.1f32;
        for _ in 0..self.sensitivity.min(100) {
            t *= STEP;
        }
        t
    }
}

/// A set of zones, by index into [`MotionConfig::zones`] (bit `i` = zone `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ZoneSet(pub u32);

impl ZoneSet {
    /// No zone.
    pub const EMPTY: ZoneSet = ZoneSet(0);

    /// Whether zone `i` is in the set.
    pub fn contains(self, i: usize) -> bool {
        i < 32 && self.0 & (1 << i) != 0
    }

    /// Adds zone `i` (ignored above 31).
    pub fn insert(&mut self, i: usize) {
        if i < 32 {
            self.0 |= 1 << i;
        }
    }

    /// Number of zones in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets.
    pub fn union(self, other: ZoneSet) -> ZoneSet {
        ZoneSet(self.0 | other.0)
    }

    /// The zone indices, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..32).filter(move |&i| self.contains(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn zone(name: &str, rect: Rect) -> Zone {
        Zone {
            name: name.into(),
            rect,
        }
    }

    #[test]
    fn defaults_are_valid() {
        MotionConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_value_and_the_range() {
        let cases: [(MotionConfig, &str); 11] = [
            (
                MotionConfig {
                    sensitivity: 101,
                    ..Default::default()
                },
                "sensitivity 101 out of range 0..=100",
            ),
            (
                MotionConfig {
                    cell_delta: 1,
                    ..Default::default()
                },
                "cell_delta 1 out of range 2..=128",
            ),
            (
                MotionConfig {
                    start_frames: 0,
                    ..Default::default()
                },
                "start_frames 0 out of range 1..=50",
            ),
            (
                MotionConfig {
                    end_after_ms: 50,
                    ..Default::default()
                },
                "end_after_ms 50 out of range 100..=3600000",
            ),
            (
                MotionConfig {
                    adapt_ms: 999,
                    ..Default::default()
                },
                "adapt_ms 999 out of range 1000..=3600000",
            ),
            (
                MotionConfig {
                    zones: (0..33)
                        .map(|i| zone(&alloc::format!("z{i}"), Rect::FULL))
                        .collect(),
                    ..Default::default()
                },
                "33 zones; at most 32",
            ),
            (
                MotionConfig {
                    mask: alloc::vec![Rect::FULL; 65],
                    ..Default::default()
                },
                "65 mask rectangles; at most 64",
            ),
            (
                MotionConfig {
                    zones: alloc::vec![zone("door", Rect::FULL), zone("gate/../x", Rect::FULL)],
                    ..Default::default()
                },
                "zone 1 name (9 bytes): expected 1..=32 bytes of ASCII letters, digits, space, '-', '_', '.'",
            ),
            (
                MotionConfig {
                    zones: alloc::vec![zone("door", Rect::FULL), zone("door", Rect::FULL)],
                    ..Default::default()
                },
                "zones 0 and 1 have the same name; expected unique names",
            ),
            (
                MotionConfig {
                    zones: alloc::vec![zone("door", Rect::new(0.0, 0.0, 1.5, 1.0))],
                    ..Default::default()
                },
                "zone 0 rectangle: x1 1.5 out of range 0..=1",
            ),
            (
                MotionConfig {
                    mask: alloc::vec![Rect::FULL, Rect::new(0.5, 0.2, 0.25, 0.3)],
                    ..Default::default()
                },
                "mask rectangle 1: x0 0.5 must be below x1 0.25",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate().unwrap_err().to_string(), message);
        }
        let nan = MotionConfig {
            mask: alloc::vec![Rect::new(f32::NAN, 0.0, 1.0, 1.0)],
            ..Default::default()
        };
        assert_eq!(
            nan.validate().unwrap_err().to_string(),
            "mask rectangle 0: x0 NaN out of range 0..=1"
        );
    }

    #[test]
    fn area_threshold_spans_three_decades() {
        let at = |s| {
            MotionConfig {
                sensitivity: s,
                ..Default::default()
            }
            .area_threshold()
        };
        assert!((at(0) - 0.1).abs() < 1e-6);
        assert!((at(50) - 0.01).abs() < 1e-4);
        assert!((at(100) - 0.001).abs() < 1e-5);
        assert!(at(70) < at(69));
    }

    #[test]
    fn zone_sets() {
        let mut z = ZoneSet::EMPTY;
        assert!(z.is_empty());
        z.insert(3);
        z.insert(31);
        z.insert(40);
        assert_eq!(z.len(), 2);
        assert!(z.contains(3) && z.contains(31) && !z.contains(40) && !z.contains(0));
        assert_eq!(z.iter().collect::<Vec<_>>(), [3, 31]);
        assert_eq!(z.union(ZoneSet(1)).0, 1 | 1 << 3 | 1 << 31);
    }
}

//! The per-camera detector: frames in, scores and motion events out.
//!
//! Why it exists: it ties the DC decoder, the background model and the hysteresis that
//! turns noisy per-frame scores into a few well-placed events:
//!
//! - **Start**: after [`MotionConfig::start_frames`] (K) consecutive analysed frames that
//!   trigger (some zone's — or, without zones, the picture's — changed fraction at or above
//!   [`MotionConfig::area_threshold`]). The event's start time is the *first* of those
//!   frames.
//! - **End**: when no frame has triggered for [`MotionConfig::end_after_ms`] (T), checked on
//!   every frame and by [`Detector::poll`] (a camera that stops sending still ends its event).
//!
//! Time is always an argument (`now_ms`, any monotonic millisecond clock); the detector has
//! no clock, no IO and no threads, so the hub can run one per camera on any executor and
//! tests can script time exactly. It must never block, and it must never panic on any frame.

use alloc::vec::Vec;

use crate::config::{ConfigError, MotionConfig, ZoneSet};
use crate::dc::{DcDecoder, DcImage, DecodeError, DecoderLimits};
use crate::model::{Background, Layout, zones_over};

/// A motion event of one camera.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
pub enum MotionEvent {
    /// Motion started.
    Started {
        /// Time of the first of the K triggering frames, ms.
        at: u64,
        /// Score of the frame that completed the K frames (0..=1).
        score: f32,
        /// Zones that triggered during those K frames (empty without zones).
        zones: ZoneSet,
    },
    /// Motion ended.
    Ended {
        /// When the end was decided: the frame (or [`Detector::poll`]) at least T after the
        /// last triggering frame, ms.
        at: u64,
        /// The matching [`MotionEvent::Started`]'s `at`.
        started_at: u64,
        /// Time of the last triggering frame, ms.
        last_motion_at: u64,
        /// Highest score of the event.
        peak_score: f32,
        /// Time of the frame with that score (keep its JPEG as the thumbnail: see
        /// [`Analysis::is_peak`]).
        peak_frame_at: u64,
        /// Every zone that triggered during the event.
        zones_hit: ZoneSet,
    },
}

/// What one analysed frame gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Analysis {
    /// The frame's motion score, 0..=1: the highest zone score, or the changed fraction of
    /// the whole (unmasked) picture when there are no zones. Per-zone scores:
    /// [`Detector::zone_scores`].
    pub score: f32,
    /// Whether the score reached the area threshold.
    pub triggered: bool,
    /// Zones whose score reached it.
    pub zones: ZoneSet,
    /// Cells that differed from the background (the picture has `width × height` cells,
    /// [`Detector::grid`]).
    pub changed_cells: u32,
    /// Global lighting shift removed before comparing, luma levels.
    pub lighting_shift: i16,
    /// The frame (re)started the background (the first frame, or the first after a change
    /// of resolution or [`Detector::reset`]): it is not scored.
    pub learning: bool,
    /// This frame has the highest score so far of the current event, or of the run of
    /// triggering frames that may become one: a thumbnail keeper replaces its candidate with
    /// this frame, and drops the candidate if the run ends without a `Started`.
    pub is_peak: bool,
    /// An event this frame caused.
    pub event: Option<MotionEvent>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// No motion. `run` triggering frames in a row so far, the first at `first_at`.
    Idle {
        run: u8,
        first_at: u64,
        zones: ZoneSet,
        peak_score: f32,
        peak_at: u64,
    },
    /// Motion.
    Active {
        started_at: u64,
        last_motion_at: u64,
        peak_score: f32,
        peak_at: u64,
        zones_hit: ZoneSet,
    },
}

const IDLE: State = State::Idle {
    run: 0,
    first_at: 0,
    zones: ZoneSet::EMPTY,
    peak_score: 0.0,
    peak_at: 0,
};

/// Motion detection for one camera. Feed it frames with [`Detector::analyse`]; change its
/// settings any time with [`Detector::set_config`].
#[derive(Debug, Clone)]
pub struct Detector {
    config: MotionConfig,
    threshold: f32,
    decoder: DcDecoder,
    /// The last analysed frame's image.
    image: DcImage,
    /// The buffer the next frame decodes into.
    spare: DcImage,
    background: Background,
    layout: Layout,
    /// The layout must be rebuilt (new configuration) before the next frame.
    layout_stale: bool,
    zone_scores: Vec<f32>,
    last_frame_at: Option<u64>,
    state: State,
}

impl Detector {
    /// A detector with `config` (validated) and default decoder limits.
    pub fn new(config: MotionConfig) -> Result<Self, ConfigError> {
        Self::with_limits(config, DecoderLimits::default())
    }

    /// A detector with `config` (validated) and the given decoder limits.
    pub fn with_limits(config: MotionConfig, limits: DecoderLimits) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            threshold: config.area_threshold(),
            config,
            decoder: DcDecoder::new(limits),
            image: DcImage::new(),
            spare: DcImage::new(),
            background: Background::default(),
            layout: Layout::default(),
            layout_stale: true,
            zone_scores: Vec::new(),
            last_frame_at: None,
            state: IDLE,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// Replaces the settings (validated; on error the old ones stay). The background is
    /// kept, and so is a running event: its `zones_hit` are indices into whichever zone list
    /// was in force when they triggered. Zones and mask apply from the next frame.
    pub fn set_config(&mut self, config: MotionConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.threshold = config.area_threshold();
        self.config = config;
        self.layout_stale = true;
        Ok(())
    }

    /// Forgets the background and any running event without emitting it (e.g. the camera
    /// was re-aimed). The next frame starts learning again.
    pub fn reset(&mut self) {
        self.background = Background::default();
        self.last_frame_at = None;
        self.state = IDLE;
    }

    /// Whether an event is running.
    pub fn in_motion(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// Per-zone scores of the last analysed frame, in [`MotionConfig::zones`] order.
    pub fn zone_scores(&self) -> &[f32] {
        &self.zone_scores
    }

    /// The last frame's 1/8-scale luma image.
    pub fn image(&self) -> &DcImage {
        &self.image
    }

    /// Per cell of the last frame (row-major, [`Detector::grid`]): whether it changed.
    pub fn changed_cells(&self) -> &[bool] {
        self.background.changed()
    }

    /// Cells across and down (the DC image's size), 0×0 before the first frame.
    pub fn grid(&self) -> (usize, usize) {
        (self.image.width(), self.image.height())
    }

    /// Analyses one JPEG frame taken at `now_ms`. A frame that does not decode changes
    /// nothing (the error says why).
    pub fn analyse(&mut self, jpeg: &[u8], now_ms: u64) -> Result<Analysis, DecodeError> {
        // Decode into the spare image, so a bad frame leaves the last good one in place.
        self.decoder.decode(jpeg, &mut self.spare)?;
        core::mem::swap(&mut self.image, &mut self.spare);
        Ok(self.step(now_ms))
    }

    /// Analyses a DC image (from [`DcDecoder`] or [`DcImage::from_pixels`]) taken at
    /// `now_ms`.
    pub fn analyse_image(&mut self, image: &DcImage, now_ms: u64) -> Analysis {
        self.image.clone_from(image);
        self.step(now_ms)
    }

    /// Ends a running event whose T has passed with no frame at all (a camera that went
    /// quiet). Call it now and then, e.g. once a second.
    pub fn poll(&mut self, now_ms: u64) -> Option<MotionEvent> {
        self.end_if_quiet(now_ms)
    }

    fn step(&mut self, now_ms: u64) -> Analysis {
        let (w, h) = (self.image.width(), self.image.height());
        if self.layout_stale || !self.layout.fits(w, h) {
            self.layout = Layout::new(&self.config, w, h);
            self.layout_stale = false;
        }
        let mut analysis = Analysis {
            score: 0.0,
            triggered: false,
            zones: ZoneSet::EMPTY,
            changed_cells: 0,
            lighting_shift: 0,
            learning: false,
            is_peak: false,
            event: None,
        };
        if !self.background.ready_for(&self.image) {
            self.background.reset(&self.image);
            self.zone_scores.clear();
            self.zone_scores.resize(self.config.zones.len(), 0.0);
            self.last_frame_at = Some(now_ms);
            analysis.learning = true;
            // Size the spare buffer now, so the next frame decodes without allocating.
            self.spare.clone_from(&self.image);
            // Learning frames never trigger, but a running event may still end.
            analysis.event = self.end_if_quiet(now_ms);
            self.reset_run_if_idle();
            return analysis;
        }
        let dt = self.last_frame_at.map_or(0, |t| now_ms.saturating_sub(t));
        self.last_frame_at = Some(now_ms);
        let scores = self.background.score_and_update(
            &self.image,
            &self.layout,
            &self.config,
            dt,
            &mut self.zone_scores,
        );
        analysis.changed_cells = scores.changed;
        analysis.lighting_shift = scores.shift;
        analysis.zones = zones_over(&self.zone_scores, self.threshold);
        analysis.score = if self.config.zones.is_empty() {
            scores.overall
        } else {
            self.zone_scores.iter().copied().fold(0.0, f32::max)
        };
        analysis.triggered = analysis.score >= self.threshold;
        self.hysteresis(&mut analysis, now_ms);
        analysis
    }

    fn reset_run_if_idle(&mut self) {
        if let State::Idle { .. } = self.state {
            self.state = IDLE;
        }
    }

    fn hysteresis(&mut self, a: &mut Analysis, now: u64) {
        let k = self.config.start_frames;
        match &mut self.state {
            State::Idle {
                run,
                first_at,
                zones,
                peak_score,
                peak_at,
            } => {
                if !a.triggered {
                    self.state = IDLE;
                    return;
                }
                if *run == 0 {
                    *first_at = now;
                    *zones = ZoneSet::EMPTY;
                    *peak_score = 0.0;
                }
                *run = run.saturating_add(1);
                *zones = zones.union(a.zones);
                if *run == 1 || a.score > *peak_score {
                    *peak_score = a.score;
                    *peak_at = now;
                    a.is_peak = true;
                }
                if *run >= k {
                    a.event = Some(MotionEvent::Started {
                        at: *first_at,
                        score: a.score,
                        zones: *zones,
                    });
                    self.state = State::Active {
                        started_at: *first_at,
                        last_motion_at: now,
                        peak_score: *peak_score,
                        peak_at: *peak_at,
                        zones_hit: *zones,
                    };
                }
            }
            State::Active {
                last_motion_at,
                peak_score,
                peak_at,
                zones_hit,
                ..
            } => {
                if a.triggered {
                    *last_motion_at = now;
                    *zones_hit = zones_hit.union(a.zones);
                    if a.score > *peak_score {
                        *peak_score = a.score;
                        *peak_at = now;
                        a.is_peak = true;
                    }
                } else {
                    a.event = self.end_if_quiet(now);
                }
            }
        }
    }

    fn end_if_quiet(&mut self, now: u64) -> Option<MotionEvent> {
        let State::Active {
            started_at,
            last_motion_at,
            peak_score,
            peak_at,
            zones_hit,
        } = self.state
        else {
            return None;
        };
        if now.saturating_sub(last_motion_at) < u64::from(self.config.end_after_ms) {
            return None;
        }
        self.state = IDLE;
        Some(MotionEvent::Ended {
            at: now,
            started_at,
            last_motion_at,
            peak_score,
            peak_frame_at: peak_at,
            zones_hit,
        })
    }
}

//! Motion detection on JPEG frames, without decoding them.
//!
//! The hub runs one [`Detector`] per camera on a few frames per second. Each frame costs a
//! fraction of a millisecond because the JPEG is never fully decoded: the mean of every 8×8
//! luma block is its DC coefficient, so an entropy-decode-only pass yields a 1/8-scale
//! grey picture (VGA → 80×60 cells) — no IDCT, no upsampling, no colour conversion
//! ([`dc`]). A background model with lighting correction marks the cells that changed and
//! scores each zone (`model`); a hysteresis turns scores into [`MotionEvent`]s
//! ([`detector`]). The algorithm and its parameters are explained in `docs/MOTION.md`.
//!
//! ```
//! use espcam_motion::{Detector, MotionConfig, MotionEvent};
//!
//! let mut detector = Detector::new(MotionConfig::default())?;
//! # let frames: Vec<(Vec<u8>, u64)> = Vec::new();
//! for (jpeg, now_ms) in frames {
//!     match detector.analyse(&jpeg, now_ms) {
//!         Ok(a) => match a.event {
//!             Some(MotionEvent::Started { at, zones, .. }) => { /* store, notify */ }
//!             Some(MotionEvent::Ended { peak_frame_at, .. }) => { /* close the event */ }
//!             None => {}
//!         },
//!         Err(e) => { /* not a baseline JPEG: log `e` and go on */ }
//!     }
//! }
//! # Ok::<(), espcam_motion::ConfigError>(())
//! ```
//!
//! `no_std + alloc`, sans-IO: no clock (every call takes `now_ms`), no threads, no async
//! runtime. It must never panic on any input bytes (property tests feed it random and
//! damaged frames) and never allocate per frame once it has seen the largest frame size.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
pub mod dc;
pub mod detector;
mod huffman;
mod model;

pub use config::{
    ConfigError, MAX_MASK_RECTS, MAX_ZONE_NAME, MAX_ZONES, MotionConfig, Rect, RectOwner,
    RectProblem, Zone, ZoneSet,
};
pub use dc::{DcDecoder, DcImage, DecodeError, DecoderLimits, Unsupported, decode_dc};
pub use detector::{Analysis, Detector, MotionEvent};

//! The body of the `motion` fuzz target, as a plain function.
//!
//! Shared by `fuzz_targets/motion.rs` (nightly, `cargo fuzz`) and by
//! `crates/motion/tests/decode.rs` (stable, proptest), which `#[path]`-includes this file, as
//! `bodies.rs` is for proto. It must never depend on anything but `espcam-motion` and
//! `core`/`alloc`.

use espcam_motion::{DcDecoder, DcImage, DecoderLimits, Detector, MotionConfig, decode_dc};

/// Arbitrary bytes as a camera frame: the DC decoder and a detector never panic, and what
/// the decoder accepts has the size its header claims.
pub fn motion(data: &[u8]) {
    // A small pixel limit keeps huge claimed sizes cheap (and exercises the limit).
    let limits = DecoderLimits {
        max_pixels: 1 << 20,
    };
    let mut dec = DcDecoder::new(limits);
    let mut out = DcImage::new();
    if dec.decode(data, &mut out).is_ok() {
        let (fw, fh) = out.frame_size();
        assert!(u32::from(fw) * u32::from(fh) <= limits.max_pixels);
        assert_eq!(out.pixels().len(), out.width() * out.height());
        // The luma plane is at most the frame's size, in blocks.
        assert!(out.width() <= usize::from(fw).div_ceil(8));
        assert!(out.height() <= usize::from(fh).div_ceil(8));
        // Deterministic: the same bytes give the same image, also from a fresh decoder.
        if u32::from(fw) * u32::from(fh) <= 1 << 20 {
            assert_eq!(decode_dc(data).ok().as_ref(), Some(&out));
        }
    }
    let mut d = Detector::with_limits(MotionConfig::default(), limits).expect("default config");
    for t in [0, 200, 400] {
        if let Ok(a) = d.analyse(data, t) {
            assert!((0.0..=1.0).contains(&a.score));
        }
    }
}

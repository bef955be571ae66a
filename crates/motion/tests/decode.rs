//! The DC-only decoder against an independent full decoder, on every layout the cameras and
//! the virtual camera produce, and its refusals and robustness on everything else.

mod support;

/// The `motion` fuzz target's body (`fuzz/motion_bodies.rs`), run here on stable.
#[path = "../../../fuzz/motion_bodies.rs"]
mod motion_bodies;

use espcam_motion::{DcDecoder, DcImage, DecodeError, Unsupported, decode_dc};
use proptest::prelude::*;
use support::{Picture, Sampling, encode, esp_quality, noisy_jpeg, photo_like, virtual_camera};

type Reference = fn(&[u8]) -> (usize, usize, Vec<f64>);

/// Our DC image against a full decode averaged over 8×8 blocks (the blocks wholly inside the
/// picture). Returns (mean absolute difference over at least 100 blocks, else 0; max
/// absolute difference).
fn compare(jpeg: &[u8], reference: Reference) -> (f64, f64) {
    let dc = decode_dc(jpeg).expect("DC decode");
    let (w, h, reference) = reference(jpeg);
    assert_eq!((dc.width(), dc.height()), (w, h), "DC image size");
    let mut sum = 0.0;
    let mut max = 0.0f64;
    let mut n = 0;
    for (i, &r) in reference.iter().enumerate() {
        if r.is_nan() {
            continue;
        }
        let d = (f64::from(dc.pixels()[i]) - r).abs();
        sum += d;
        max = max.max(d);
        n += 1;
    }
    // A mean over a handful of blocks says nothing: report 0 and let `max` speak.
    (if n < 100 { 0.0 } else { sum / f64::from(n) }, max)
}

/// Checks the DC image against zune-jpeg's luma output and jpeg-decoder's RGB output.
fn assert_close(jpeg: &[u8], what: &str) {
    let (mean, max) = compare(jpeg, support::reference_block_means);
    let (mean_rgb, max_rgb) = compare(jpeg, support::reference_block_means_rgb);
    println!(
        "{what}: {} bytes, zune-jpeg luma mean |Δ| {mean:.3} max {max:.2}; \
         jpeg-decoder RGB→Y mean |Δ| {mean_rgb:.3} max {max_rgb:.2}",
        jpeg.len()
    );
    // The DC term is the block mean before the IDCT's rounding and clamping, and ours is
    // rounded to a whole level: a mean |Δ| of 0.25 is that rounding alone. Ringing that clips
    // at 0 or 255 (coarse quantisers; white-on-black text) moves a full decoder's block
    // mean by a few levels.
    assert!(mean < 0.35, "{what}: mean difference {mean} too large");
    assert!(max < 4.0, "{what}: max difference {max} too large");
    // Through RGB, clipped colour channels lose a little more.
    assert!(
        mean_rgb < 0.45,
        "{what}: mean difference {mean_rgb} (RGB) too large"
    );
    assert!(
        max_rgb < 4.5,
        "{what}: max difference {max_rgb} (RGB) too large"
    );
}

#[test]
fn matches_a_full_decoder_for_every_sampling_and_restart_layout() {
    let pic = photo_like(640, 480, 7).with_noise(4.0, &mut support::Rng::new(1));
    for sampling in [
        Sampling::S420,
        Sampling::S422,
        Sampling::S444,
        Sampling::Gray,
    ] {
        for restart in [None, Some(1), Some(7)] {
            let jpeg = encode(&pic, esp_quality(12), sampling, restart);
            assert_close(&jpeg, &format!("{sampling:?} restart {restart:?}"));
        }
    }
}

#[test]
fn matches_a_full_decoder_on_the_fixtures() {
    assert_close(
        &support::virtual_camera_jpeg(640, 480, 3),
        "virtual camera VGA",
    );
    assert_close(&noisy_jpeg(640, 480, 1), "noisy VGA 4:2:2");
    assert_close(&noisy_jpeg(1600, 1200, 2), "noisy UXGA 4:2:2");
    // Quality extremes: coarse DC quantiser (q 63 → 6) and the finest (q 0 → 100).
    let pic = photo_like(320, 240, 3);
    assert_close(&encode(&pic, 6, Sampling::S420, None), "quality 6");
    assert_close(&encode(&pic, 100, Sampling::S420, None), "quality 100");
}

#[test]
fn the_fuzz_body_accepts_every_fixture() {
    for jpeg in sample_frames() {
        motion_bodies::motion(&jpeg);
        assert!(decode_dc(&jpeg).is_ok());
    }
}

#[test]
fn sizes_that_are_not_multiples_of_the_mcu() {
    for (w, h) in [(1, 1), (17, 9), (100, 75), (641, 479), (8, 200)] {
        let pic = photo_like(w, h, u64::from(w));
        for sampling in [Sampling::S420, Sampling::S422, Sampling::Gray] {
            let jpeg = encode(&pic, 80, sampling, Some(3));
            let dc = decode_dc(&jpeg).unwrap();
            assert_eq!(
                (dc.width(), dc.height()),
                (usize::from(w).div_ceil(8), usize::from(h).div_ceil(8))
            );
            assert_eq!(dc.frame_size(), (w, h));
            assert_close(&jpeg, &format!("{w}x{h} {sampling:?}"));
        }
    }
}

#[test]
fn flat_grey_levels_are_exact() {
    // A flat picture has no AC energy: its DC image is the level itself.
    for level in [0u8, 1, 77, 128, 200, 255] {
        let mut pic = Picture::new(64, 48);
        pic.fill(0, 0, 64, 48, [level; 3]);
        let dc = decode_dc(&encode(&pic, 90, Sampling::Gray, None)).unwrap();
        for &v in dc.pixels() {
            assert!(
                (i32::from(v) - i32::from(level)).abs() <= 1,
                "{v} for {level}"
            );
        }
    }
}

/// Removes every DHT segment (what Motion-JPEG streams do).
fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    loop {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
        if marker == 0xDA {
            out.extend_from_slice(&jpeg[i..]);
            return out;
        }
    }
}

#[test]
fn frames_without_huffman_tables_use_the_standard_ones() {
    // jpeg-encoder writes the standard tables of Annex K: dropping them must not change the
    // result, which also checks our copy of those tables symbol by symbol.
    let jpeg = noisy_jpeg(320, 240, 5);
    let stripped = strip_dht(&jpeg);
    assert!(stripped.len() < jpeg.len() - 400);
    assert_eq!(decode_dc(&stripped).unwrap(), decode_dc(&jpeg).unwrap());
}

#[test]
fn optimised_huffman_tables_decode() {
    let pic = photo_like(320, 240, 9).with_noise(5.0, &mut support::Rng::new(2));
    let mut jpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 82);
    enc.set_optimized_huffman_tables(true);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_1);
    enc.encode(&pic.rgb, 320, 240, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    assert_close(&jpeg, "optimised tables");
}

#[test]
fn the_decoder_is_reusable_across_sizes() {
    let mut dec = DcDecoder::default();
    let mut out = DcImage::new();
    for (w, h) in [(640, 480), (160, 120), (800, 600)] {
        let jpeg = support::virtual_camera_jpeg(w, h, 0);
        dec.decode(&jpeg, &mut out).unwrap();
        assert_eq!(out, decode_dc(&jpeg).unwrap());
        assert_eq!(out.pixels().len(), usize::from(w / 8) * usize::from(h / 8));
    }
}

#[test]
fn markers_in_unusual_places() {
    // Fill bytes before markers, a COM segment between DHT and SOS, an APP segment first.
    let jpeg = support::virtual_camera_jpeg(160, 120, 1);
    let expected = decode_dc(&jpeg).unwrap();
    let mut odd = vec![0xFF, 0xD8, 0xFF, 0xE5, 0, 4, 1, 2];
    let mut i = 2;
    loop {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xDA {
            odd.extend_from_slice(&[0xFF, 0xFE, 0, 5, b'h', b'i', b'!']);
            odd.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
            odd.extend_from_slice(&jpeg[i + 1..]);
            break;
        }
        odd.extend_from_slice(&jpeg[i..i + 2 + len]);
        i += 2 + len;
    }
    assert_eq!(decode_dc(&odd).unwrap(), expected);
}

/// The header segments of a JPEG (marker, whole segment bytes) up to SOS, and the rest.
fn segments(jpeg: &[u8]) -> (Vec<(u8, Vec<u8>)>, Vec<u8>) {
    let mut out = Vec::new();
    let mut i = 2;
    loop {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xDA {
            return (out, jpeg[i..].to_vec());
        }
        out.push((marker, jpeg[i..i + 2 + len].to_vec()));
        i += 2 + len;
    }
}

#[test]
fn tables_and_restart_interval_in_any_order_before_the_scan() {
    let jpeg = encode(&photo_like(160, 120, 4), 82, Sampling::S422, Some(3));
    let expected = decode_dc(&jpeg).unwrap();
    let (segs, scan) = segments(&jpeg);
    let markers: Vec<u8> = segs.iter().map(|s| s.0).collect();
    assert!(markers.contains(&0xC4) && markers.contains(&0xDB) && markers.contains(&0xDD));
    // DRI first, then DHT, then SOF, then DQT last (the encoder writes DQT, SOF, DHT, DRI).
    let rank = |m: u8| match m {
        0xDD => 0,
        0xC4 => 1,
        0xC0 => 2,
        0xDB => 3,
        _ => 4,
    };
    let mut reordered = segs.clone();
    reordered.sort_by_key(|s| rank(s.0));
    assert_ne!(reordered, segs);
    let mut odd = vec![0xFF, 0xD8];
    for (_, bytes) in &reordered {
        odd.extend_from_slice(bytes);
    }
    odd.extend_from_slice(&scan);
    assert_eq!(decode_dc(&odd).unwrap(), expected);
    // Without the DRI the restart markers are an error, not silently wrong pixels.
    let mut no_dri = vec![0xFF, 0xD8];
    for (m, bytes) in &segs {
        if *m != 0xDD {
            no_dri.extend_from_slice(bytes);
        }
    }
    no_dri.extend_from_slice(&scan);
    assert_eq!(
        decode_dc(&no_dri),
        Err(DecodeError::Malformed(
            "restart marker without a restart interval (DRI)"
        ))
    );
}

#[test]
fn progressive_and_other_processes_are_refused_by_name() {
    let pic = photo_like(64, 64, 1);
    let mut jpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 80);
    enc.set_progressive(true);
    enc.encode(&pic.rgb, 64, 64, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let err = decode_dc(&jpeg).unwrap_err();
    assert_eq!(err, DecodeError::Unsupported(Unsupported::Progressive));
    assert_eq!(
        err.to_string(),
        "unsupported JPEG: progressive JPEG (SOF2); expected baseline sequential (SOF0/SOF1)"
    );

    // Patch the SOF0 marker of a baseline frame into other processes.
    let baseline = encode(&pic, 80, Sampling::S420, None);
    let sof = baseline.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    for (marker, want) in [
        (0xC3, Unsupported::Lossless),
        (0xC5, Unsupported::Hierarchical),
        (0xC9, Unsupported::Arithmetic),
        (0xCA, Unsupported::Arithmetic),
    ] {
        let mut j = baseline.clone();
        j[sof + 1] = marker;
        assert_eq!(decode_dc(&j), Err(DecodeError::Unsupported(want)));
    }
    // 12-bit precision.
    let mut j = baseline.clone();
    j[sof + 4] = 12;
    let err = decode_dc(&j).unwrap_err();
    assert_eq!(err, DecodeError::Unsupported(Unsupported::Precision(12)));
    assert_eq!(
        err.to_string(),
        "unsupported JPEG: 12-bit samples; expected 8-bit"
    );
}

#[test]
fn truncated_and_foreign_data_are_typed_errors() {
    assert_eq!(decode_dc(b""), Err(DecodeError::NotJpeg));
    assert_eq!(decode_dc(b"\x89PNG\r\n"), Err(DecodeError::NotJpeg));
    let jpeg = support::virtual_camera_jpeg(320, 240, 2);
    // Cut in the middle of the entropy-coded data, and a little before EOI.
    for cut in [jpeg.len() / 2, jpeg.len() - 40, 700] {
        let err = decode_dc(&jpeg[..cut]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated(_)),
            "cut at {cut}: {err}"
        );
    }
    // Without EOI but otherwise whole: every MCU is there, so the picture is.
    assert_eq!(
        decode_dc(&jpeg[..jpeg.len() - 2]),
        Ok(decode_dc(&jpeg).unwrap())
    );
}

#[test]
fn oversized_frames_are_refused_before_allocating() {
    let jpeg = encode(&photo_like(64, 64, 1), 80, Sampling::S420, None);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let mut j = jpeg.clone();
    // 65535 × 65535.
    j[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        decode_dc(&j).unwrap_err().to_string(),
        "image 65535x65535 is larger than the limit of 16777216 pixels"
    );
}

#[test]
fn a_frame_of_the_virtual_camera_has_its_bar_where_it_was_drawn() {
    // Phase 15 of 30: the white bar (40 px wide) starts at x = 320.
    let dc = decode_dc(&support::virtual_camera_jpeg(640, 480, 15)).unwrap();
    let row = 30;
    for bx in 40..45 {
        assert!(dc.get(bx, row).unwrap() > 220, "bar at block {bx}");
    }
    assert!(dc.get(38, row).unwrap() < 200);
    assert!(dc.get(46, row).unwrap() < 200);
    let _ = virtual_camera(16, 16, 0, 30);
}

fn sample_frames() -> Vec<Vec<u8>> {
    vec![
        support::virtual_camera_jpeg(64, 48, 1),
        encode(&photo_like(40, 24, 3), 60, Sampling::S422, Some(2)),
        encode(&photo_like(24, 24, 4), 90, Sampling::Gray, None),
        encode(&photo_like(24, 16, 5), 50, Sampling::S444, Some(1)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut with_soi = vec![0xFF, 0xD8];
        with_soi.extend_from_slice(&data);
        motion_bodies::motion(&data);
        motion_bodies::motion(&with_soi);
    }

    #[test]
    fn never_panics_on_damaged_frames(
        which in 0usize..4,
        cut in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let frames = sample_frames();
        let mut jpeg = frames[which].clone();
        for (at, byte) in flips {
            let i = at.index(jpeg.len());
            jpeg[i] = byte;
        }
        motion_bodies::motion(&jpeg);
        let mut dec = DcDecoder::default();
        let mut out = DcImage::new();
        let _ = dec.decode(&jpeg, &mut out);
        let end = cut.index(jpeg.len() + 1);
        motion_bodies::motion(&jpeg[..end]);
        if dec.decode(&jpeg[..end], &mut out).is_ok() {
            // Whatever decoded has the size its header claims.
            prop_assert_eq!(out.pixels().len(), out.width() * out.height());
        }
    }
}

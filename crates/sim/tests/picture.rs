//! The synthetic sensor's frames are real JPEGs that show their settings: decoded with an
//! independent decoder, they have the right size, flip when flipped, brighten when
//! brightened, shrink when quality drops, and carry readable per-frame text.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use espcam_proto::{Brightness, Quality, Resolution, Settings};
use espcam_sim::{FrameSet, test_jpeg};

fn decode(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let pixels = d.decode().expect("valid JPEG");
    let info = d.info().unwrap();
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    (usize::from(info.width), usize::from(info.height), pixels)
}

fn pixel(img: &(usize, usize, Vec<u8>), x: usize, y: usize) -> [u8; 3] {
    let i = (y * img.0 + x) * 3;
    [img.2[i], img.2[i + 1], img.2[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 40)
}

fn mean(img: &(usize, usize, Vec<u8>)) -> f64 {
    img.2.iter().map(|&v| f64::from(v)).sum::<f64>() / img.2.len() as f64
}

#[test]
fn every_resolution_decodes_at_its_size() {
    for r in Resolution::ALL.into_iter().take(9) {
        let s = Settings {
            resolution: r,
            ..Settings::default()
        };
        let j = test_jpeg(&s, &["CAM-1", "#000001"]).unwrap();
        let info = espcam_proto::jpeg::scan(&j).unwrap();
        assert_eq!(info.len, j.len(), "{r}: exactly one image");
        let img = decode(&j);
        assert_eq!(
            (img.0, img.1),
            (usize::from(r.width()), usize::from(r.height())),
            "{r}"
        );
    }
}

#[test]
fn flips_move_the_corner_markers() {
    let red = [230, 30, 30];
    let green = [30, 200, 30];
    let blue = [30, 30, 230];
    let base = Settings {
        resolution: Resolution::Qvga,
        ..Settings::default()
    };
    let img = decode(&test_jpeg(&base, &[]).unwrap());
    assert!(close(pixel(&img, 4, 4), red), "{:?}", pixel(&img, 4, 4));
    assert!(close(pixel(&img, 315, 4), green));
    assert!(close(pixel(&img, 4, 235), blue));
    let img = decode(
        &test_jpeg(
            &Settings {
                hmirror: true,
                ..base
            },
            &[],
        )
        .unwrap(),
    );
    assert!(
        close(pixel(&img, 4, 4), green),
        "mirrored: {:?}",
        pixel(&img, 4, 4)
    );
    assert!(close(pixel(&img, 315, 4), red));
    let img = decode(
        &test_jpeg(
            &Settings {
                vflip: true,
                ..base
            },
            &[],
        )
        .unwrap(),
    );
    assert!(
        close(pixel(&img, 4, 4), blue),
        "flipped: {:?}",
        pixel(&img, 4, 4)
    );
    assert!(close(pixel(&img, 4, 235), red));
}

#[test]
fn brightness_and_quality_change_the_picture() {
    let at = |b: i64, q: i64| {
        test_jpeg(
            &Settings {
                resolution: Resolution::Qvga,
                brightness: Brightness::new(b).unwrap(),
                quality: Quality::new(q).unwrap(),
                ..Settings::default()
            },
            &[],
        )
        .unwrap()
    };
    let dark = mean(&decode(&at(-2, 12)));
    let normal = mean(&decode(&at(0, 12)));
    let bright = mean(&decode(&at(2, 12)));
    assert!(
        dark + 30.0 < normal && normal + 30.0 < bright,
        "{dark} {normal} {bright}"
    );
    let best = at(0, 0).len();
    let usual = at(0, 12).len();
    let worst = at(0, 63).len();
    assert!(
        best > 2 * usual && 2 * usual > 3 * worst,
        "{best} {usual} {worst}"
    );
}

#[test]
fn composed_frames_are_valid_and_show_their_text() {
    let s = Settings {
        resolution: Resolution::Qvga,
        ..Settings::default()
    };
    let set = FrameSet::build(s).unwrap();
    assert_eq!(set.loop_len(), 30);
    assert_eq!(set.line_chars(), 18);
    let mut a = BytesMut::new();
    set.compose(3, &["1111"], &mut a);
    let mut b = BytesMut::new();
    set.compose(3, &["    "], &mut b);
    let (ia, ib) = (decode(&a), decode(&b));
    assert_eq!((ia.0, ia.1), (320, 240));
    // The glyph '1' at text cell (1, 1) has its stem at cell x 7..=8: white in `a`, dark
    // label background in `b`.
    let stem = pixel(&ia, 16 + 7, 16 + 8);
    let blank = pixel(&ib, 16 + 7, 16 + 8);
    assert!(stem.iter().all(|&v| v > 180), "{stem:?}");
    assert!(blank.iter().all(|&v| v < 80), "{blank:?}");
    // Outside the text the two frames are the same picture.
    assert_eq!(pixel(&ia, 200, 150), pixel(&ib, 200, 150));
    // Different loop positions show motion.
    let mut c = BytesMut::new();
    set.compose(18, &["1111"], &mut c);
    assert_ne!(&a[..], &c[..]);
    decode(&c);
}

#[test]
fn text_follows_flips() {
    let s = Settings {
        resolution: Resolution::Qvga,
        hmirror: true,
        vflip: true,
        ..Settings::default()
    };
    let set = FrameSet::build(s).unwrap();
    let mut a = BytesMut::new();
    set.compose(0, &["1"], &mut a);
    let img = decode(&a);
    // Mirrored and flipped: the first cell is at the bottom right, the stem mirrored too.
    let (cx, cy) = (320 - 32, 240 - 32);
    let stem = pixel(&img, cx + 15 - 7, cy + 15 - 8);
    assert!(stem.iter().all(|&v| v > 180), "{stem:?}");
}

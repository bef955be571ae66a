//! Shared fixtures: real JPEGs at two sizes, made unique per frame number with a COM segment,
//! and the external-tool gate.

#![allow(dead_code, clippy::unwrap_used)]

pub mod crash;

use std::process::Command;

pub const SEC: u64 = 1_000_000;
/// 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000 * SEC;

/// A real JPEG of `w`×`h` with a gradient.
pub fn base_jpeg(w: u16, h: u16, seed: u8) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&[(x as u8).wrapping_add(seed), (y as u8) ^ seed, seed]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// `base` with a COM segment `frame <n>` after SOI: a valid, decodable, unique JPEG.
pub fn numbered(base: &[u8], n: u64) -> Vec<u8> {
    let text = format!("frame {n}");
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xFE];
    v.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(&base[2..]);
    v
}

/// Reads the frame number back from a [`numbered`] JPEG.
pub fn number_of(jpeg: &[u8]) -> Option<u64> {
    if jpeg.len() < 6 || jpeg[2..4] != [0xFF, 0xFE] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    let text = std::str::from_utf8(jpeg.get(6..4 + len)?).ok()?;
    text.strip_prefix("frame ")?.parse().ok()
}

pub fn decode_dims(jpeg: &[u8]) -> (u16, u16) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    d.decode().unwrap();
    let i = d.info().unwrap();
    (i.width, i.height)
}

/// Whether `tool` can run; when it cannot, prints why the test is skipped, or panics if
/// `ESPCAM_REQUIRE_TOOLS=1` (CI).
pub fn have_tool(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("ESPCAM_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{tool} is required (ESPCAM_REQUIRE_TOOLS=1) but cannot run"
        );
        eprintln!("skipping: {tool} not installed");
    }
    ok
}

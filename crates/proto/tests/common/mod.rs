//! Fixtures shared by the proto integration tests (each test file includes this module).
//!
//! Builds small but structurally complete JPEGs: the frame layer checks JPEG *structure*
//! (SOI, segments, SOF size, entropy data, EOI), never pixels, so these are enough to drive
//! every branch of `decode_frame` and `jpeg::scan`. Decodable encoder output is tested in the
//! sim and hub crates.
#![allow(dead_code, clippy::unwrap_used)] // Shared by several test binaries; unwraps are test failures.

use espcam_proto::{FrameFlags, FrameHeader, Settings};

/// A minimal baseline JPEG of `w`×`h`: SOI, APP0 (JFIF), SOF0, SOS, `entropy`, EOI.
///
/// `entropy` is byte-stuffed here (`FF` → `FF 00`) so any bytes give a valid image.
pub fn tiny_jpeg(w: u16, h: u16, entropy: &[u8]) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
    v.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
    v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    for &b in entropy {
        v.push(b);
        if b == 0xFF {
            v.push(0x00);
        }
    }
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// The header a camera would send in front of `jpeg`.
pub fn header_for(jpeg: &[u8], w: u16, h: u16) -> FrameHeader {
    FrameHeader {
        flags: FrameFlags(FrameFlags::SYNTHETIC),
        sequence: 42,
        timestamp_us: 1_700_000_000_123_456,
        width: w,
        height: h,
        jpeg_len: u32::try_from(jpeg.len()).unwrap(),
    }
}

/// Settings used by the golden examples: SVGA, quality 10, brightness -1, vflip on.
pub fn sample_settings() -> Settings {
    Settings {
        resolution: espcam_proto::Resolution::Svga,
        quality: espcam_proto::Quality::new(10).unwrap(),
        brightness: espcam_proto::Brightness::new(-1).unwrap(),
        vflip: true,
        hmirror: false,
    }
}

/// `sample_settings()` on the wire.
pub const SAMPLE_SETTINGS_JSON: &str =
    r#"{"resolution":7,"quality":10,"brightness":-1,"vflip":1,"hmirror":0}"#;

//! The bodies of the fuzz targets, as plain functions.
//!
//! Shared, byte for byte, by the libFuzzer targets in `fuzz_targets/` (nightly, `cargo fuzz`)
//! and by `crates/proto/tests/props.rs` (stable, proptest), which `#[path]`-includes this file:
//! so the bodies always compile and run in `cargo test --workspace`, and a crash input found
//! by the fuzzer can be replayed as a regression test on stable.
//!
//! Each body asserts properties of what decoding *accepted*, not only that nothing panics.
//! It must never depend on anything but `espcam-proto` and `core`/`alloc`.

use espcam_proto::{
    ApMessage, ApRequest, CameraMsg, CommandMsg, FrameHeader, FrameLimits, HEADER_LEN, HubMsg,
    StreamHello, Trailing, decode_frame, jpeg,
};

/// One stream-channel binary message, as a hub receives it.
pub fn frame(data: &[u8]) {
    // The default limit, and one smaller than many inputs so the size check is exercised.
    for limits in [FrameLimits::default(), FrameLimits { max_frame: 64 }] {
        let Ok(f) = decode_frame(data, &limits) else {
            continue;
        };
        assert!(
            data.len() <= limits.max_frame,
            "over the limit yet accepted"
        );
        let info = jpeg::scan(f.jpeg).expect("the image kept from a frame scans on its own");
        assert_eq!(info.len, f.jpeg.len(), "kept image is exactly one JPEG");
        assert_eq!((info.width, info.height), (f.width, f.height));
        let header_len = match f.header {
            Some(h) => {
                let raw = FrameHeader::parse(data).expect("accepted header parses");
                assert_eq!(raw, h);
                let mut again = h.encode();
                // Reserved bytes are ignored on receive, so compare without them.
                again[6..8].copy_from_slice(&data[6..8]);
                assert_eq!(&again[..], &data[..HEADER_LEN], "header re-encodes");
                assert_eq!((h.width, h.height), (f.width, f.height));
                assert_eq!(
                    usize::try_from(h.jpeg_len).ok(),
                    Some(data.len() - HEADER_LEN)
                );
                HEADER_LEN
            }
            None => 0,
        };
        assert_eq!(
            f.jpeg.as_ptr(),
            data[header_len..].as_ptr(),
            "image starts right after the header"
        );
        let rest = data.len() - header_len - f.jpeg.len();
        match f.trailing {
            Trailing::None => assert_eq!(rest, 0),
            Trailing::SecondImage(n) | Trailing::Bytes(n) => assert_eq!(n, rest),
        }
    }
    let _ = jpeg::scan(data);
    let _ = FrameHeader::parse(data);
}

/// One text message, fed to every JSON decoder; what decodes must re-encode to the same value.
pub fn json(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = CameraMsg::from_json(text) {
        assert_eq!(CameraMsg::from_json(&m.to_json()).as_ref(), Ok(&m));
    }
    if let Ok(m) = HubMsg::from_json(text) {
        assert_eq!(HubMsg::from_json(&m.to_json()).as_ref(), Ok(&m));
    }
    if let Ok(m) = StreamHello::from_json(text) {
        assert_eq!(StreamHello::from_json(&m.to_json()).as_ref(), Ok(&m));
    }
    if let Ok(m) = ApMessage::from_json(text) {
        assert_eq!(ApMessage::from_json(&m.to_json()).as_ref(), Ok(&m));
    }
    if let Ok(m) = CommandMsg::from_json(text) {
        assert_eq!(CommandMsg::from_json(&m.to_json()).as_ref(), Ok(&m));
    }
    if let Ok(ApRequest::Command(c)) = ApRequest::parse(text) {
        assert_eq!(
            ApRequest::parse(&c.to_json()).as_ref(),
            Ok(&ApRequest::Command(c))
        );
    }
}

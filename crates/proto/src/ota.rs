//! Firmware updates from the hub (OTA): the hub's `ota` offer, the camera's `ota_progress`
//! and `ota_result` reports, and the validated values they carry.
//!
//! The hub never pushes an image: it offers one (where to fetch it, how big it is, its
//! SHA-256 and the board it was built for) and the camera decides, downloads, verifies and
//! reports. This module only defines the messages and checks their fields; it must never
//! perform a download or decide anything about one (that is `espcam-camera`'s OTA state
//! machine).

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

/// Longest `url` in an offer, bytes. URLs are fetched by a small HTTP client on the camera.
pub const MAX_OTA_URL: usize = 512;
/// Longest firmware version string (`espcam-fw 0.2.0`), bytes.
pub const MAX_OTA_VERSION: usize = 64;
/// Longest board name (`esp32s3-eye`, `virtual`), bytes.
pub const MAX_OTA_BOARD: usize = 32;
/// Longest failure reason a camera sends, bytes (it is shown in dashboards).
pub const MAX_OTA_REASON: usize = 200;

/// A SHA-256 digest, carried on the wire as 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

/// A `sha256` that is not 64 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sha256 {0:?} is invalid: expected 64 hexadecimal digits")]
pub struct DigestError(pub String);

impl Sha256Digest {
    /// Parses 64 hexadecimal digits (either case).
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let bytes = text.as_bytes();
        let bad = || DigestError(text.chars().take(70).collect());
        if bytes.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(bad)?;
            let lo = hex_val(pair[1]).ok_or_else(bad)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Sha256Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hub → camera: "update to this image". Sent on the control link after the welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaOffer {
    /// Where to fetch the image with HTTP `GET` (and `Range` requests): an absolute path
    /// (`/api/firmware/…`) on the hub's HTTP port at the address the camera dialled for
    /// its control link, or an absolute `http://` URL. Unguessable per update: it is the
    /// credential.
    pub url: String,
    /// The image's firmware version, as the camera will report it in its hello.
    pub version: String,
    /// Image size, bytes (1..=u32::MAX).
    pub size: u32,
    /// SHA-256 of the whole image.
    pub sha256: Sha256Digest,
    /// Board the image was built for; a camera refuses an image for another board.
    pub board: String,
}

/// Why an [`OtaOffer`] is refused before any byte is fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// `url` is neither `http://…` nor `/…`, or too long.
    #[error("ota url must be an absolute path or an http:// URL of at most {MAX_OTA_URL} bytes")]
    Url,
    /// `version` is empty or too long.
    #[error("ota version must be 1..={MAX_OTA_VERSION} bytes")]
    Version,
    /// `board` is empty or too long.
    #[error("ota board must be 1..={MAX_OTA_BOARD} bytes")]
    Board,
    /// `size` is 0.
    #[error("ota size must be at least 1 byte")]
    Size,
}

impl OtaOffer {
    /// Checks the fields a peer controls (called by the hub-message decoder).
    pub fn validate(&self) -> Result<(), OfferError> {
        let path = self.url.starts_with('/') && !self.url.starts_with("//");
        if !(path || self.url.starts_with("http://")) || self.url.len() > MAX_OTA_URL {
            return Err(OfferError::Url);
        }
        if self.version.is_empty() || self.version.len() > MAX_OTA_VERSION {
            return Err(OfferError::Version);
        }
        if self.board.is_empty() || self.board.len() > MAX_OTA_BOARD {
            return Err(OfferError::Board);
        }
        if self.size == 0 {
            return Err(OfferError::Size);
        }
        Ok(())
    }
}

/// Camera → hub: how far the download is (rate-limited by the camera, about once a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaProgress {
    /// Bytes downloaded, verified so far and written.
    pub bytes: u32,
    /// The image size from the offer.
    pub total: u32,
}

/// Camera → hub: how an update ended. `ok: true` is sent only by the new firmware, once it
/// has reached the hub again and confirmed itself; `ok: false` by the firmware that keeps
/// running (the old one, after a failed download or a rollback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaResult {
    /// Whether the camera now runs and has confirmed `version`.
    pub ok: bool,
    /// The version the update was for.
    pub version: String,
    /// Why it failed (only when `ok` is false), at most [`MAX_OTA_REASON`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trip_and_errors() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let d = Sha256Digest::parse(hex).unwrap();
        assert_eq!(alloc::format!("{d}"), hex.to_ascii_lowercase());
        assert!(Sha256Digest::parse("abc").is_err());
        assert!(Sha256Digest::parse(&"g".repeat(64)).is_err());
    }

    #[test]
    fn cut_respects_characters() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
    }
}

//! Where a hub-mode camera connects, and whom it trusts there: the hub URL (`ws://` or
//! `wss://`), the two link URLs and the HTTP(S) URL of a firmware image derived from it, and
//! the pinned certificate of a TLS hub (its SHA-256 fingerprint, or a PEM file).
//!
//! Written once for the firmware (which hands the URLs and the pin to esp-idf's WebSocket
//! and HTTP clients) and the simulator (which hands them to tungstenite and rustls), so both
//! build the same URLs from the same configuration and read a fingerprint the same way the
//! hub prints it (`AB:CD:…`, `espcam serve --tls-self-signed`). This module must never open
//! a connection, and never accept a `wss://` target without something to pin.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};

use crate::types::Link;

/// A hub URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Another scheme than `ws://` / `wss://`.
    #[error("hub URL {0:?}: expected ws://HOST[:PORT], wss://HOST[:PORT] or a bare host")]
    Scheme(String),
    /// Nothing where the host goes, or characters no host name or IP has.
    #[error("hub URL {0:?}: expected a host name or IP address after the scheme")]
    Host(String),
    /// A port that is not 1..=65535.
    #[error("hub URL {0:?}: the port must be 1..=65535")]
    Port(String),
    /// A path, query, fragment or user part.
    #[error(
        "hub URL {0:?}: no path, query or user allowed (the camera adds /ws/camera and /ws/stream)"
    )]
    Path(String),
}

/// The hub a camera connects to: scheme, host and the two ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubTarget {
    tls: bool,
    /// As written, IPv6 literals with their brackets.
    host: String,
    control_port: u16,
    stream_port: u16,
}

impl HubTarget {
    /// Reads `url`: `ws://HOST[:PORT]`, `wss://HOST[:PORT]` or a bare `HOST` (plain `ws://`,
    /// as the firmware's older `hub_host` key). A port in the URL is the control port (the
    /// hub's HTTP port, 6971 by default); otherwise `control_port` is used. The stream port
    /// is always `stream_port`: the hub has two ports and a URL names one.
    pub fn parse(url: &str, control_port: u16, stream_port: u16) -> Result<Self, TargetError> {
        let err = |f: fn(String) -> TargetError| f(cut(url));
        let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else if url.contains("://") {
            return Err(err(TargetError::Scheme));
        } else {
            (false, url)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(err(TargetError::Path));
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((addr, "")) => (&rest[..addr.len() + 2], None),
                Some((addr, tail)) => match tail.strip_prefix(':') {
                    Some(p) => (&rest[..addr.len() + 2], Some(p)),
                    None => return Err(err(TargetError::Host)),
                },
                None => return Err(err(TargetError::Host)),
            },
            None => match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let inner = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = !inner.is_empty()
            && inner.len() <= 253
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !host_ok || (!host.starts_with('[') && inner.contains(':')) {
            return Err(err(TargetError::Host));
        }
        let control_port = match port {
            None => control_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p @ 1..) => p,
                _ => return Err(err(TargetError::Port)),
            },
        };
        if control_port == 0 || stream_port == 0 {
            return Err(err(TargetError::Port));
        }
        Ok(Self {
            tls,
            host: host.to_string(),
            control_port,
            stream_port,
        })
    }

    /// Whether the hub speaks TLS (`wss://`, and `https://` for firmware images).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The host as configured.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The WebSocket URL of `link`: `ws[s]://HOST:6971/ws/camera` or `…:6972/ws/stream`.
    pub fn link_url(&self, link: Link) -> String {
        let (port, path) = match link {
            Link::Control => (self.control_port, espcam_proto::CONTROL_PATH),
            Link::Stream => (self.stream_port, espcam_proto::STREAM_PATH),
        };
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}:{port}{path}", self.host)
    }

    /// The URL to fetch a firmware image from: an offer's absolute path goes to the hub's
    /// control port over `http://` (`https://` for a TLS hub); anything else is used as is.
    pub fn image_url(&self, url: &str) -> String {
        offer_url(&self.link_url(Link::Control), url)
    }
}

/// The URL of an offer's `url` for a camera whose control link dialled `control_url`: an
/// absolute path goes to the same host and port (`ws://` → `http://`, `wss://` →
/// `https://`); anything else is used as it is.
pub fn offer_url(control_url: &str, url: &str) -> String {
    if !url.starts_with('/') {
        return url.to_string();
    }
    let (scheme, rest) = match control_url.strip_prefix("wss://") {
        Some(rest) => ("https", rest),
        None => (
            "http",
            control_url.strip_prefix("ws://").unwrap_or(control_url),
        ),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}{url}")
}

/// A certificate pin that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not 32 hex bytes.
    #[error(
        "fingerprint {0:?}: expected the 32-byte SHA-256 in hex as the hub prints it (AB:CD:…, 95 characters) or without colons (64 hex digits)"
    )]
    Fingerprint(String),
    /// No `-----BEGIN CERTIFICATE-----` block.
    #[error(
        "no certificate in it: expected PEM (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)"
    )]
    NoCertificate,
    /// A certificate block whose body is not base64.
    #[error("the certificate block is not valid base64")]
    Base64,
}

/// The SHA-256 of a certificate (its DER bytes): what `espcam serve` prints at start.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Reads `AB:CD:…` (as the hub prints it; any case, surrounding spaces ignored) or the
    /// same 64 hex digits without colons.
    pub fn parse(text: &str) -> Result<Self, PinError> {
        let t = text.trim();
        let bad = || PinError::Fingerprint(cut(text));
        let hex: Vec<u8> = if t.contains(':') {
            if t.len() != 95 || t.split(':').any(|p| p.len() != 2) {
                return Err(bad());
            }
            t.bytes().filter(|&b| b != b':').collect()
        } else {
            t.bytes().collect()
        };
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).ok_or_else(bad);
            *byte = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
        }
        Ok(Self(out))
    }

    /// The fingerprint of a certificate's DER bytes.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The fingerprint of the first certificate in a PEM text.
    pub fn of_pem(pem: &str) -> Result<Self, PinError> {
        Ok(Self::of_der(&pem_certificate(pem)?))
    }

    /// Whether `der` (the certificate a server presented) is the pinned one.
    pub fn matches(&self, der: &[u8]) -> bool {
        // Not secret: a fingerprint is public, so a constant-time compare buys nothing.
        Self::of_der(der) == *self
    }

    /// A TLS stack's per-certificate verify callback (mbedtls' `f_vrfy`): the verification
    /// flags for the certificate at `depth` of the server's chain, `not_trusted` (the
    /// stack's flag) unless it is acceptable. Only the server's own certificate (depth 0)
    /// is checked, against the pin; an absent pin (`None`) accepts nothing at depth 0. The
    /// chain above it does not matter: the pin names the one certificate accepted.
    pub fn verify_flags(pin: Option<&Self>, depth: i32, der: &[u8], not_trusted: u32) -> u32 {
        let ok = depth > 0 || pin.is_some_and(|pin| pin.matches(der));
        if ok { 0 } else { not_trusted }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Whom a hub-mode camera trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A plain `ws://` hub: nothing to verify.
    Plain,
    /// The hub's certificate must have exactly this SHA-256 (the leaf certificate).
    Fingerprint(Fingerprint),
    /// The hub's certificate must chain to this PEM certificate (the hub's self-signed
    /// certificate itself, or the CA that issued it). Kept as the PEM text.
    Pem(String),
}

impl Trust {
    /// What a camera configured with `target` and the optional pins trusts: a `ws://` hub
    /// takes no pin, a `wss://` hub exactly one (a fingerprint or a PEM certificate).
    pub fn for_target(
        target: &HubTarget,
        fingerprint: Option<&str>,
        pem: Option<&str>,
    ) -> Result<Self, TrustError> {
        match (target.tls(), fingerprint, pem) {
            (false, None, None) => Ok(Trust::Plain),
            (false, _, _) => Err(TrustError::PinWithoutTls),
            (true, None, None) => Err(TrustError::NoPin),
            (true, Some(_), Some(_)) => Err(TrustError::TwoPins),
            (true, Some(fp), None) => Ok(Trust::Fingerprint(Fingerprint::parse(fp)?)),
            (true, None, Some(pem)) => {
                Fingerprint::of_pem(pem)?;
                Ok(Trust::Pem(pem.to_string()))
            }
        }
    }

    /// The pinned fingerprint, for logs: given, or that of the PEM certificate.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        match self {
            Trust::Plain => None,
            Trust::Fingerprint(f) => Some(*f),
            Trust::Pem(pem) => Fingerprint::of_pem(pem).ok(),
        }
    }
}

/// Pins that do not fit the hub URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// `wss://` with nothing to pin.
    #[error(
        "a wss:// hub needs its certificate pinned: set hub_cert_sha256 to the SHA-256 fingerprint `espcam serve` prints (or hub_cert to its PEM file)"
    )]
    NoPin,
    /// Both a fingerprint and a PEM file.
    #[error("set hub_cert_sha256 or hub_cert, not both")]
    TwoPins,
    /// A pin for a `ws://` hub, which would silently not be used.
    #[error("a certificate pin is set but the hub URL is ws://: use wss:// (or remove the pin)")]
    PinWithoutTls,
    /// The pin itself is unusable.
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// The DER bytes of the first `CERTIFICATE` block of `pem`.
pub fn pem_certificate(pem: &str) -> Result<Vec<u8>, PinError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN).ok_or(PinError::NoCertificate)? + BEGIN.len();
    let len = pem[start..].find(END).ok_or(PinError::NoCertificate)?;
    base64_decode(&pem[start..start + len]).ok_or(PinError::Base64)
}

/// Standard base64 with padding, whitespace ignored (a PEM body). Twenty lines here instead
/// of the `base64` crate, whose workspace entry turns on `std`, which this crate cannot use.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let chars: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if chars.is_empty() || !chars.len().is_multiple_of(4) {
        return None;
    }
    let body = chars
        .strip_suffix(b"==")
        .or_else(|| chars.strip_suffix(b"="))
        .unwrap_or(&chars);
    let (mut out, mut acc, mut bits) = (Vec::with_capacity(body.len() * 3 / 4), 0u32, 0);
    for &c in body {
        acc = acc << 6 | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Padding bits must be zero (a canonical encoding).
    (acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// At most 100 characters of a peer- or user-supplied text, for error messages.
fn cut(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert_eq!(base64_decode(" TW\nFu ").unwrap(), b"Man");
        assert!(base64_decode("TWF").is_none());
        assert!(base64_decode("TW!u").is_none());
        assert!(base64_decode("TR==").is_none(), "non-zero padding bits");
        assert!(base64_decode("").is_none());
    }
}

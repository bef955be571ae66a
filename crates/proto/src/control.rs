//! The control channel (port 6971, path `/ws/camera`): JSON text messages.
//!
//! Camera → hub: [`CameraMsg`] (`hello`, `telemetry`, `ack`, `ota_progress`, `ota_result`).
//! Hub → camera: [`HubMsg`] (`welcome`, `rejected`, `ota`, or a command).
//!
//! Every message is one WebSocket text message holding one JSON object with a `"type"`
//! field — except commands, which keep the seed's form `{"cmd":...,"value":...}` with an
//! optional `"id"`.

use alloc::string::{String, ToString};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::{CommandError, CommandMsg, kind_of};
use crate::ota::{OtaOffer, OtaProgress, OtaResult};
use crate::settings::{Quality, Settings};

/// The protocol version carried in hellos. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u8 = 1;

/// Longest text message either side accepts on the control channel.
pub const MAX_CONTROL_MESSAGE: usize = 16 * 1024;

/// Longest camera id: 1..=32 characters of `[A-Za-z0-9_-]`.
pub const MAX_CAMERA_ID: usize = 32;

/// A validated camera id: 1..=32 characters of `[A-Za-z0-9_-]`, safe in URLs, file names,
/// metric labels and log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CameraId(String);

/// A camera id that is empty, too long or has characters outside `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("camera id {0:?} is invalid: expected 1..=32 characters of A-Z a-z 0-9 _ -")]
pub struct CameraIdError(pub String);

impl CameraId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, CameraIdError> {
        let ok = !id.is_empty()
            && id.len() <= MAX_CAMERA_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(id.to_string()))
        } else {
            Err(CameraIdError(id.chars().take(40).collect()))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Display for CameraId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CameraId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CameraId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// First message a camera sends on the control channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the camera speaks ([`PROTOCOL_VERSION`]).
    pub proto: u8,
    /// Camera id.
    pub camera: CameraId,
    /// Shared secret; empty when the hub needs none.
    #[serde(default)]
    pub token: String,
    /// Firmware name and version, e.g. `espcam-fw 0.1.0`.
    pub firmware: String,
    /// Sensor model, e.g. `OV3660`, `OV2640`, `virtual`.
    pub sensor: String,
    /// Settings in force on the sensor.
    pub settings: Settings,
    /// The board the firmware was built for (`esp32s3-eye`, `virtual`): which firmware
    /// images fit this camera. Absent from older cameras (they cannot be updated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// This boot runs a freshly installed image that is not confirmed yet: it confirms
    /// itself once welcomed, and rolls back if it cannot reach the hub in time. Omitted
    /// when false.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub ota_pending: bool,
}

/// Health report, sent by the camera once a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Frames per second sent, measured over the last window.
    #[serde(deserialize_with = "finite_f32")]
    pub fps: f32,
    /// Frames sent since boot.
    pub frames_sent: u64,
    /// Frames captured but dropped (link busy, too late) since boot.
    pub frames_dropped: u64,
    /// Free internal heap, bytes.
    pub heap_free: u32,
    /// Free PSRAM, bytes (0 when there is none).
    pub psram_free: u32,
    /// Milliseconds since boot.
    pub uptime_ms: u64,
    /// Wi-Fi signal strength in dBm; `null` when unknown (wired, virtual).
    pub rssi: Option<i16>,
    /// Settings in force (resolution, quality, …), with `quality` as the user chose it: the
    /// best quality the camera may use.
    pub settings: Settings,
    /// The JPEG quality the sensor really uses now, when the camera adapts it to its link
    /// (never better than `settings.quality`, i.e. never a lower number). Absent from older
    /// cameras; equal to `settings.quality` while the link keeps up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_in_force: Option<Quality>,
}

/// A camera's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The command's correlation id (`null` when the command had none).
    pub id: Option<u32>,
    /// The command's name as received (`"quality"`), `null` when it could not be read.
    pub cmd: Option<String>,
    /// Whether the command was applied.
    pub ok: bool,
    /// Settings in force after the command (unchanged when `ok` is false).
    pub settings: Settings,
    /// Why the command failed, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Camera → hub, control channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CameraMsg {
    /// First message on the connection.
    Hello(Hello),
    /// Periodic health report.
    Telemetry(Telemetry),
    /// Answer to a command.
    Ack(Ack),
    /// How far a firmware download is.
    #[serde(rename = "ota_progress")]
    OtaProgress(OtaProgress),
    /// How a firmware update ended.
    #[serde(rename = "ota_result")]
    OtaResult(OtaResult),
}

/// Hub → camera, control or stream channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubMsg {
    /// The hello was accepted.
    Welcome {
        /// The camera id the hub registered.
        camera: CameraId,
    },
    /// The hello was refused; the hub closes the connection after this.
    Rejected {
        /// Human-readable reason, e.g. `wrong token for camera cam-1`.
        reason: String,
    },
    /// A command to apply and ack.
    Command(CommandMsg),
    /// A firmware image to download and install (see [`crate::ota`]).
    Ota(OtaOffer),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum HubTagged {
    Welcome { camera: CameraId },
    Rejected { reason: String },
    Ota(OtaOffer),
}

/// Why a control message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than [`MAX_CONTROL_MESSAGE`].
    #[error("message of {0} bytes exceeds the limit of {MAX_CONTROL_MESSAGE} bytes")]
    TooLong(usize),
    /// Not valid JSON or not of the expected shape.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// A command that failed validation.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Decodes an `f32` that JSON can carry back. serde's own `f32` turns `1e39` into infinity,
/// which serde_json encodes as `null`: a value decoded from a peer could then not be forwarded.
pub(crate) fn finite_f32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = f64::deserialize(d)?;
    // Deliberately lossy: the wire carries f32 values; only overflow to infinity is refused.
    let f = v as f32;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(serde::de::Error::custom(alloc::format!(
            "number {v:e} out of range for fps, expected a finite 32-bit float"
        )))
    }
}

fn check_len(text: &str) -> Result<(), DecodeError> {
    if text.len() > MAX_CONTROL_MESSAGE {
        return Err(DecodeError::TooLong(text.len()));
    }
    Ok(())
}

impl CameraMsg {
    /// Decodes a camera → hub message.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        check_len(text)?;
        serde_json::from_str(text).map_err(|e| DecodeError::Invalid(e.to_string()))
    }

    /// Encodes as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys, no
        // fallible Serialize impls.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl HubMsg {
    /// Decodes a hub → camera message. Any object with a `"cmd"` field is a command (the
    /// seed's form); otherwise `"type"` selects `welcome` or `rejected`.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        check_len(text)?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        let Value::Object(map) = &value else {
            return Err(DecodeError::Invalid(alloc::format!(
                "expected a JSON object, got {}",
                kind_of(&value)
            )));
        };
        if map.contains_key("cmd") {
            return Ok(HubMsg::Command(CommandMsg::from_object(map)?));
        }
        let tagged: HubTagged =
            serde_json::from_value(value).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        Ok(match tagged {
            HubTagged::Welcome { camera } => HubMsg::Welcome { camera },
            HubTagged::Rejected { reason } => HubMsg::Rejected { reason },
            HubTagged::Ota(offer) => {
                offer
                    .validate()
                    .map_err(|e| DecodeError::Invalid(e.to_string()))?;
                HubMsg::Ota(offer)
            }
        })
    }

    /// Encodes as JSON text.
    pub fn to_json(&self) -> String {
        match self {
            HubMsg::Welcome { camera } => serde_json::to_string(&HubTagged::Welcome {
                camera: camera.clone(),
            }),
            HubMsg::Rejected { reason } => serde_json::to_string(&HubTagged::Rejected {
                reason: reason.clone(),
            }),
            HubMsg::Command(c) => return c.to_json(),
            HubMsg::Ota(offer) => serde_json::to_string(&HubTagged::Ota(offer.clone())),
        }
        .unwrap_or_default()
    }
}

/// First message a camera sends on the stream channel (port 6972): ties the connection to a
/// camera. The hub answers with [`HubMsg::Welcome`] or [`HubMsg::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "hello")]
pub struct StreamHello {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub proto: u8,
    /// Camera id; must match the control channel's.
    pub camera: CameraId,
    /// Shared secret; empty when the hub needs none.
    #[serde(default)]
    pub token: String,
}

/// Decode-side wrapper that makes serde check the `"type"` tag of a [`StreamHello`].
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum StreamTagged {
    Hello(StreamHello),
}

impl StreamHello {
    /// Decodes a stream hello. `"type":"hello"` is required: serde's `tag` on a struct only
    /// writes the tag and would accept any or no `"type"` on decode.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        check_len(text)?;
        match serde_json::from_str(text) {
            Ok(StreamTagged::Hello(hello)) => Ok(hello),
            Err(e) => Err(DecodeError::Invalid(e.to_string())),
        }
    }

    /// Encodes as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    #[test]
    fn camera_ids() {
        assert!(CameraId::new("cam-1").is_ok());
        assert!(CameraId::new("Front_Door-2").is_ok());
        for bad in ["", "../etc", "cam 1", "a/b", "ü", &"x".repeat(33)] {
            assert!(CameraId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hub_msg_accepts_seed_command() {
        let m = HubMsg::from_json(r#"{"cmd":"quality","value":10}"#).unwrap();
        assert_eq!(
            m,
            HubMsg::Command(CommandMsg::simple(Command::Quality(
                Quality::new(10).unwrap()
            )))
        );
        let e = HubMsg::from_json(r#"{"cmd":"quality","value":64}"#).unwrap_err();
        assert_eq!(e.to_string(), "quality 64 out of range 0..=63");
    }

    #[test]
    fn too_long_is_refused_before_parsing() {
        let big = alloc::format!("{{\"cmd\":\"{}\"}}", "x".repeat(MAX_CONTROL_MESSAGE));
        assert!(matches!(
            HubMsg::from_json(&big),
            Err(DecodeError::TooLong(_))
        ));
        assert!(matches!(
            CameraMsg::from_json(&big),
            Err(DecodeError::TooLong(_))
        ));
    }
}

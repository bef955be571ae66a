//! The espcam wire protocol: everything that crosses a wire between cameras, the hub and
//! browsers, defined once.
//!
//! `no_std + alloc` and sans-IO: no sockets, no clocks, no threads. The same code runs in the
//! ESP32-S3 firmware, the virtual camera and the hub. The normative description is
//! `docs/PROTOCOL.md`; its examples are checked by this crate's tests.
//!
//! - [`settings`]: validated setting values ([`Resolution`], [`Quality`], [`Brightness`]).
//! - [`command`]: the seed's command table, `{"cmd":"quality","value":10}`.
//! - [`control`]: the JSON control channel (port 6971).
//! - [`stream`]: the binary stream channel (port 6972) and its frame header.
//! - [`jpeg`]: JPEG structure checks (end of image, dimensions).
//! - [`standalone`]: the seed-002 standalone camera at `ws://<camera>/ws`.
//! - [`ota`]: firmware updates from the hub (`ota` offer, `ota_progress`, `ota_result`).
//! - [`close`]: WebSocket close codes and the length rules for close reasons and echoes.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod close;
pub mod command;
pub mod control;
pub mod jpeg;
pub mod ota;
pub mod settings;
pub mod standalone;
pub mod stream;

pub use command::{Command, CommandError, CommandMsg};
pub use control::{
    Ack, CameraId, CameraMsg, DecodeError, Hello, HubMsg, PROTOCOL_VERSION, StreamHello, Telemetry,
};
pub use ota::{OtaOffer, OtaProgress, OtaResult, Sha256Digest};
pub use settings::{Brightness, Quality, Resolution, SettingError, Settings};
pub use standalone::{ApMessage, ApRequest};
pub use stream::{
    Frame, FrameError, FrameFlags, FrameHeader, FrameLimits, HEADER_LEN, Trailing, decode_frame,
    encode_frame,
};

/// Default port of the hub's HTTP server: dashboard, REST, browser and camera control sockets.
pub const CONTROL_PORT: u16 = 6971;
/// Default port of the hub's camera stream socket (binary frames only).
pub const STREAM_PORT: u16 = 6972;
/// Path of the camera control WebSocket on [`CONTROL_PORT`].
pub const CONTROL_PATH: &str = "/ws/camera";
/// Path of the camera stream WebSocket on [`STREAM_PORT`].
pub const STREAM_PATH: &str = "/ws/stream";

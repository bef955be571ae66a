//! The espcam camera's application logic, written once: a sans-IO state machine that runs
//! unchanged in the ESP32-S3 firmware and in the virtual camera (`espcam-sim`).
//!
//! `#![no_std]` + `alloc`, no clock, no sockets, no threads (modelled on `quinn-proto` and
//! smoltcp). Everything the seed firmware's modules decided lives here:
//!
//! - **commands**: parsed and validated with `espcam-proto`, applied through the [`Sensor`]
//!   seam, every one answered with an ack (settings in force, or the error);
//! - **fps control**: captures paced to a target rate; a frame that finds its link still busy
//!   with the previous one is dropped and counted, never queued, and the rate adapts down
//!   (see `pacing`), after JPEG quality has given what it can ([`AdaptiveQuality`]);
//! - **frame sending**: a 28-byte [`FrameHeader`](espcam_proto::FrameHeader) (sequence,
//!   capture time, size) that the shell sends in front of the JPEG without copying it;
//! - **health**: telemetry every second (measured fps, frames sent/dropped, heap, PSRAM,
//!   uptime, RSSI from [`Camera::set_health`]);
//! - **connections**: hub mode (control link, then stream link, each reconnecting with capped
//!   exponential backoff and jitter, [`Backoff`], also used by the hub's pull mode; a network watchdog asks for a restart when the hub has
//!   not welcomed the control link for 5 minutes) or standalone mode (seed 002: up to five clients, the
//!   sixth refused, welcome, heartbeat every second, `ping`/`pong`, `get_stats`, commands).
//!
//! # The shell's loop
//!
//! A shell (firmware task, simulator task) owns one [`Camera`], the sockets and the sensor's
//! frame buffers, and runs:
//!
//! ```text
//! cam = Camera::new(config, sensor, now())          // sensor already in config.settings
//! cam.set_wall_clock(now(), unix_us)                 // when known (SNTP); optional
//! loop {
//!     while let Some(out) = cam.poll_output() {      // always drain before waiting
//!         match out {
//!             Connect { conn, link }  => start opening ws://HUB:6971/ws/camera (Control) or
//!                                        ws://HUB:6972/ws/stream (Stream); remember conn
//!             Text { conn, text }     => send a text message on conn
//!             Close { conn, code, reason } => send a close frame, drop conn, log reason;
//!                                        report nothing more about conn
//!             Capture                 => grab a frame (esp_camera_fb_get), then
//!                 match cam.handle_frame(now(), &CapturedFrame { captured_at, width, height, len }) {
//!                     Send(f) => for conn in f.targets.as_slice():
//!                                  send ONE binary message = f.header (if Some) ++ jpeg
//!                                  (two fragments / a vectored write: never copy the JPEG),
//!                                  each conn on its own (a task, an async send: one slow
//!                                  client must never hold up the others); keep the frame
//!                                  as "newest" until the next Send replaces it
//!                     Drop(_) => release the frame buffer
//!                 }
//!                 (capture error: cam.handle_capture_failed(now()))
//!             Reboot                  => flush pending sends, close everything (close code
//!                                        CLOSE_RESTART), log cam.reboot_reason(), restart
//!             OtaFetch { fetch, url, offset, len } => HTTP GET url (a path: on the hub's
//!                                        port 6971) with Range: bytes=offset-(offset+len-1),
//!                                        off the main loop; report cam.handle_ota_data(now,
//!                                        fetch, &body) for a 206, else handle_ota_failed
//!             SetBootAndReboot        => as Reboot (the sink's finish set the boot slot)
//!             ConfirmImage            => esp_ota_mark_app_valid_cancel_rollback
//!             RollbackAndReboot       => esp_ota_mark_app_invalid_rollback_and_reboot
//!         }
//!     }
//!     wait until cam.poll_timeout() or an event, then report it:
//!         deadline reached        => cam.handle_timeout(now())
//!         link opened             => cam.handle_connected(now(), conn)
//!         link closed / failed    => cam.handle_closed(now(), conn)
//!                                    (a send that failed too: close it with
//!                                    CLOSE_INTERNAL_ERROR first)
//!         close frame received    => cam.handle_close_frame(now(), conn, code)
//!                                    (then perform the Close it answers with)
//!         text message received   => cam.handle_text(now(), conn, &text)
//!         frame send completed    => if let Some(f) = cam.handle_frame_sent(now(), conn) {
//!                                        send the newest frame (f.info) to conn likewise }
//!         client connected (standalone) => match cam.handle_client_open(now()) {
//!                                        Ok(conn) => keep the socket as conn,
//!                                        Err(r)   => close it with r.code, r.reason }
//!     every few seconds: cam.set_health(Health { heap_free, psram_free, rssi })
//! }
//! ```
//!
//! Firmware updates (`ota`): build the camera with [`Camera::with_ota`] and an [`OtaSink`]
//! (the inactive flash slot), and tell it at boot what the boot is ([`Config::ota_boot`]:
//! pending verification, or after a rollback). The core decides every range, timeout, retry
//! and the SHA-256 check; failures abort the sink and are reported to the hub.
//!
//! With feature `std`, [`blocking`] has the threads, queues and main loop of a blocking
//! shell (the firmware's), built on [`Driver`].
//!
//! Binary messages received by the camera are ignored by the protocol; shells drop them.
//! The per-frame path (`handle_timeout` → `Capture` → `handle_frame` → `handle_frame_sent`)
//! performs no heap allocation (proved by `tests/zero_alloc.rs`); text messages (acks,
//! telemetry once a second) allocate their `String`.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod backoff;
#[cfg(feature = "std")]
pub mod blocking;
mod camera;
mod core;
mod driver;
mod firmware_config;
mod hub_mode;
mod ota;
mod pacing;
mod quality;
mod rng;
mod standalone;
mod target;
mod time;
mod types;

pub use backoff::{Backoff, BackoffConfig};
pub use camera::Camera;
pub use driver::{Driver, HEALTH_EVERY, SendFailed, ShellEvent, ShellIo};
pub use firmware_config::{
    BOARD_OTA_FETCH_TIMEOUT, ConfigError, ConfigErrors, FirmwareConfig, MAX_HUBS, RawConfig, Role,
};
pub use ota::{check_image_fits, check_range_status, range_body_limit, range_header};
pub use quality::AdaptiveQuality;
pub use target::{
    Fingerprint, HubTarget, PinError, TargetError, Trust, TrustError, offer_url, pem_certificate,
};
pub use time::Instant;
pub use types::{
    CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_RESTART, CLOSE_TRY_AGAIN,
    CapturedFrame, Config, ConnId, DropReason, FAILOVER_AFTER, FetchId, FrameDecision, FrameSend,
    HANDSHAKE_TIMEOUT, Health, HubConfig, Link, LinkStatus, Mode, NETWORK_WATCHDOG, NoOta, OtaBoot,
    OtaConfig, OtaSink, OtaSinkError, Output, Refused, Sensor, SensorError, Setting,
    StandaloneConfig, Stats, TICK, Targets,
};

//! Firmware updates as the hub's state sees them: what was offered to each camera, how far
//! its download is, and how it ended — from the camera's own `ota_progress` and
//! `ota_result` reports and the version in its hellos.
//!
//! The images, their grants and the HTTP side live in `crate::firmware` and
//! `crate::http::firmware`; this module only records and publishes (as [`Event::Ota`]). It
//! must never decide whether an update succeeded on its own guess: success is the camera's
//! `ota_result` with `ok: true`, sent by the new image once it confirmed itself.

use espcam_proto::{CameraId, HubMsg, OtaOffer, OtaProgress, OtaResult};
use serde::Serialize;

use crate::state::Hub;
use crate::state::camera::{Camera, State};
use crate::state::clock::now_us;
use crate::state::error::CommandError;
use crate::state::event::Event;

/// Where an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtaPhase {
    /// Sent to the camera; no report yet.
    Offered,
    /// Downloading (see `bytes` / `total`).
    Downloading,
    /// Every byte in and verified: the camera installs the image and restarts.
    Rebooting,
    /// The new image said hello and is confirming itself.
    Confirming,
    /// The camera runs and confirmed the new version.
    Done,
    /// It failed; the camera keeps (or went back to) its previous firmware.
    Failed,
}

/// The latest firmware update of one camera, as `GET /api/cameras` reports it (`ota`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtaStatus {
    /// The firmware image's id in the hub's library.
    pub firmware: String,
    /// The version being installed.
    pub version: String,
    /// The version the camera ran when the update was offered.
    pub from: Option<String>,
    /// Where it is.
    pub phase: OtaPhase,
    /// Bytes downloaded and verified.
    pub bytes: u32,
    /// Image size.
    pub total: u32,
    /// Why it failed (camera's words, cut to 200 bytes).
    pub error: Option<String>,
    /// When it was offered, ms since the Unix epoch.
    pub started_ms: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_ms: u64,
}

/// A hello arrived: a new image saying hello (pending) is confirming itself.
pub(super) fn on_hello(st: &mut State, firmware: Option<&str>, pending: bool) {
    if let Some(o) = &mut st.ota
        && matches!(o.phase, OtaPhase::Rebooting | OtaPhase::Downloading)
        && pending
        && firmware == Some(o.version.as_str())
    {
        o.phase = OtaPhase::Confirming;
        o.updated_ms = now_us() / 1000;
    }
}

impl Hub {
    /// Sends `offer` (image `firmware_id`) to `camera`'s control link and records it.
    /// Refused when the camera is offline, its link is full, or an update is running.
    pub fn send_ota(
        &self,
        camera: &str,
        firmware_id: &str,
        offer: OtaOffer,
    ) -> Result<OtaStatus, CommandError> {
        let cam = self.camera(camera).ok_or_else(|| {
            CommandError::UnknownCamera(espcam_proto::close::echo(camera, 40).into())
        })?;
        let status = {
            let mut st = cam.lock();
            let Some(link) = st.control.as_ref().map(|l| l.commands.clone()) else {
                return Err(CommandError::Offline(cam.id.clone()));
            };
            let now_ms = now_us() / 1000;
            let status = OtaStatus {
                firmware: firmware_id.to_string(),
                version: offer.version.clone(),
                from: st.firmware.clone(),
                phase: OtaPhase::Offered,
                bytes: 0,
                total: offer.size,
                error: None,
                started_ms: now_ms,
                updated_ms: now_ms,
            };
            if link.try_send(HubMsg::Ota(offer)).is_err() {
                return Err(CommandError::Busy(cam.id.clone()));
            }
            st.ota = Some(status.clone());
            status
        };
        self.emit_ota(&cam.id, status.clone());
        Ok(status)
    }

    /// The camera reported download progress.
    pub fn on_ota_progress(&self, camera: &Camera, p: OtaProgress) {
        let status = {
            let mut st = camera.lock();
            let Some(o) = &mut st.ota else { return };
            if !matches!(o.phase, OtaPhase::Offered | OtaPhase::Downloading) {
                return;
            }
            o.bytes = p.bytes.min(p.total);
            o.total = p.total;
            o.phase = if p.total > 0 && p.bytes >= p.total {
                OtaPhase::Rebooting
            } else {
                OtaPhase::Downloading
            };
            o.updated_ms = now_us() / 1000;
            o.clone()
        };
        self.emit_ota(&camera.id, status);
    }

    /// The camera reported how an update ended.
    pub fn on_ota_result(&self, camera: &Camera, r: OtaResult) {
        let status = {
            let mut st = camera.lock();
            let now_ms = now_us() / 1000;
            let error = r
                .error
                .as_deref()
                .map(|e| espcam_proto::ota::cut(e, espcam_proto::ota::MAX_OTA_REASON).to_string());
            let o = st.ota.get_or_insert_with(|| OtaStatus {
                // A report about an update this hub did not start (another hub, or before
                // a restart of this one).
                firmware: String::new(),
                version: r.version.clone(),
                from: None,
                phase: OtaPhase::Offered,
                bytes: 0,
                total: 0,
                error: None,
                started_ms: now_ms,
                updated_ms: now_ms,
            });
            o.phase = if r.ok {
                OtaPhase::Done
            } else {
                OtaPhase::Failed
            };
            o.error = if r.ok { None } else { error };
            o.updated_ms = now_ms;
            o.clone()
        };
        self.emit_ota(&camera.id, status);
    }

    fn emit_ota(&self, camera: &CameraId, status: OtaStatus) {
        self.emit(Event::Ota {
            camera: camera.clone(),
            status,
        });
    }
}

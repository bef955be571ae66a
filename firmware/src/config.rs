//! The build-time configuration from `cfg.toml`: the values `build.rs` checked and exported,
//! read back into the core's typed [`FirmwareConfig`] by the same function that checked
//! them (`espcam_camera::FirmwareConfig::parse`, tested on the host). Must never hold a
//! default for a secret, nor a rule of its own.

use espcam_camera::{ConfigErrors, FirmwareConfig, RawConfig};

use crate::boards::{self, Board};

/// The PEM file `hub_cert` names, NUL-terminated as esp-tls wants it (empty when unused).
pub static HUB_CERT_PEM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hub-cert.pem"));

/// The checked configuration (an error here means build.rs and this crate disagree).
pub fn load() -> Result<FirmwareConfig, ConfigErrors> {
    let pem = core::str::from_utf8(HUB_CERT_PEM)
        .ok()
        .map(|p| p.trim_end_matches('\0'));
    FirmwareConfig::parse(&RawConfig {
        mode: env!("ESPCAM_MODE"),
        xclk_mhz: env!("ESPCAM_XCLK_MHZ"),
        wifi_ssid: env!("ESPCAM_WIFI_SSID"),
        wifi_password: env!("ESPCAM_WIFI_PASSWORD"),
        hub_url: env!("ESPCAM_HUB_URL"),
        // build.rs refused an empty list, so empty here means "not set".
        hub_urls: Some(env!("ESPCAM_HUB_URLS")).filter(|s| !s.is_empty()),
        control_port: env!("ESPCAM_CONTROL_PORT"),
        stream_port: env!("ESPCAM_STREAM_PORT"),
        camera_id: env!("ESPCAM_CAMERA_ID"),
        token: env!("ESPCAM_TOKEN"),
        hub_cert_sha256: env!("ESPCAM_HUB_CERT_SHA256"),
        hub_cert_pem: pem.filter(|p| !p.is_empty()),
        ap_ssid: env!("ESPCAM_AP_SSID"),
        ap_password: env!("ESPCAM_AP_PASSWORD"),
    })
}

/// The board selected in cfg.toml (build.rs rejects unknown names).
pub fn board() -> &'static Board {
    boards::by_name(env!("ESPCAM_BOARD")).unwrap_or(&boards::BOARDS[0])
}

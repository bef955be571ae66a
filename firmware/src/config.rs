//! The build-time configuration from `cfg.toml`: the values `build.rs` checked and exported
//! (`$OUT_DIR/cfg.env`, `RawConfig::import`), read back into the core's typed
//! [`FirmwareConfig`] by the same function that checked them
//! (`espcam_camera::FirmwareConfig::parse`, tested on the host). Must never hold a default
//! for a secret, nor a rule of its own.

use espcam_camera::{ConfigErrors, FirmwareConfig, RawConfig};

use crate::boards::{self, Board};

/// The PEM file `hub_cert` names, NUL-terminated as esp-tls wants it (empty when unused).
pub static HUB_CERT_PEM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hub-cert.pem"));

/// The values build.rs checked, one `key=value` a line (`RawConfig::export`).
static EXPORTED: &str = include_str!(concat!(env!("OUT_DIR"), "/cfg.env"));

/// The checked configuration (an error here means build.rs and this crate disagree).
pub fn load() -> Result<FirmwareConfig, ConfigErrors> {
    let pem = core::str::from_utf8(HUB_CERT_PEM).ok();
    let hub_cert_pem = pem
        .map(|p| p.trim_end_matches('\0'))
        .filter(|p| !p.is_empty());
    let raw = RawConfig::import(EXPORTED);
    FirmwareConfig::parse(&RawConfig {
        hub_cert_pem,
        ..raw
    })
}

/// The board selected in cfg.toml (build.rs rejects unknown names).
pub fn board() -> &'static Board {
    boards::by_name(env!("ESPCAM_BOARD")).unwrap_or(&boards::BOARDS[0])
}

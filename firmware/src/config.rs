//! The build-time configuration from `cfg.toml`, as `build.rs` checked and exported it.
//! Must never hold a default for a secret: build.rs refuses to build without them.

use crate::boards::{self, Board};

/// `"hub"` or `"standalone"`.
pub const MODE: &str = env!("ESPCAM_MODE");
const BOARD: &str = env!("ESPCAM_BOARD");
const XCLK_MHZ: &str = env!("ESPCAM_XCLK_MHZ");
pub const WIFI_SSID: &str = env!("ESPCAM_WIFI_SSID");
pub const WIFI_PASSWORD: &str = env!("ESPCAM_WIFI_PASSWORD");
pub const HUB_HOST: &str = env!("ESPCAM_HUB_HOST");
const CONTROL_PORT: &str = env!("ESPCAM_CONTROL_PORT");
const STREAM_PORT: &str = env!("ESPCAM_STREAM_PORT");
pub const CAMERA_ID: &str = env!("ESPCAM_CAMERA_ID");
pub const TOKEN: &str = env!("ESPCAM_TOKEN");
pub const AP_SSID: &str = env!("ESPCAM_AP_SSID");
pub const AP_PASSWORD: &str = env!("ESPCAM_AP_PASSWORD");

// The fallbacks below are unreachable: build.rs rejects values that do not parse.

/// Whether this build is the standalone (access point) topology.
pub fn standalone() -> bool {
    MODE == "standalone"
}

/// The board selected in cfg.toml.
pub fn board() -> &'static Board {
    boards::by_name(BOARD).unwrap_or(&boards::BOARDS[0])
}

/// XCLK in Hz: cfg.toml's `xclk_mhz`, or the board's default when 0.
pub fn xclk_hz() -> u32 {
    match XCLK_MHZ.parse::<u32>() {
        Ok(mhz @ 1..) => mhz * 1_000_000,
        _ => board().xclk_hz,
    }
}

/// The hub's control and stream ports.
pub fn hub_ports() -> (u16, u16) {
    (
        CONTROL_PORT.parse().unwrap_or(espcam_proto::CONTROL_PORT),
        STREAM_PORT.parse().unwrap_or(espcam_proto::STREAM_PORT),
    )
}

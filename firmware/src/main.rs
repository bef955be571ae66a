//! espcam firmware for ESP32-S3 camera boards: the shell around `espcam_camera::Camera`.
//!
//! Brings up Wi-Fi, the camera, the clock and the network, then runs the core's blocking
//! shell loop (`espcam_camera::blocking::run` on the `Driver`): poll, wait for an event at
//! most as long as it says, hand the event over. Every decision (what to send, when to capture, drop, reconnect, ack,
//! update or reboot; which frame a client gets; what a failed send means; the
//! configuration's rules) is the core's and is tested on the host; this crate only performs
//! the I/O behind `ShellIo` and must never make one.

mod boards;
mod camera;
mod clock;
mod config;
mod net;
mod ota;
mod tls;
mod wifi;

use std::sync::mpsc;
use std::time::Duration;

use esp_idf_svc::eventloop::EspSystemEventLoop;
use esp_idf_svc::hal::peripherals::Peripherals;
use esp_idf_svc::hal::task::watchdog::{TWDTConfig, TWDTDriver};
use esp_idf_svc::nvs::EspDefaultNvsPartition;
use esp_idf_svc::sys::{self, EspError};
use espcam_camera::blocking::{self, Shell};
use espcam_camera::{Camera, Driver};
use net::Net;

/// Longest wait between two passes, so the task watchdog is fed and health stays fresh.
const MAX_WAIT: Duration = Duration::from_millis(500);
const FIRMWARE: &str = concat!("espcam-fw ", env!("CARGO_PKG_VERSION"));

fn main() {
    sys::link_patches();
    esp_idf_svc::log::EspLogger::initialize_default();
    let (mode, board) = (env!("ESPCAM_MODE"), config::board().name);
    log::info!("{FIRMWARE} ({mode} mode, board {board})");
    if let Err(e) = run() {
        // Nobody may be there to press reset; a driver that failed once often starts next time.
        log::error!("start-up failed: {e}; restarting in 10 s");
        std::thread::sleep(Duration::from_secs(10));
        esp_idf_svc::hal::reset::restart();
    }
}

fn run() -> Result<(), EspError> {
    let fw = config::load().map_err(|e| {
        log::error!("cfg.toml: {e}");
        EspError::from_infallible::<{ sys::ESP_ERR_INVALID_ARG }>()
    })?;
    let peripherals = Peripherals::take()?;
    let sysloop = EspSystemEventLoop::take()?;
    // Wi-Fi first, camera second: see wifi.rs on brown-outs.
    let nvs = EspDefaultNvsPartition::take()?;
    let _wifi = wifi::start(peripherals.modem, &sysloop, nvs, fw.wifi())?;
    let board = config::board();
    let xclk_hz = fw.xclk_hz.unwrap_or(board.xclk_hz);
    let sensor = camera::CameraSensor::init(board, xclk_hz, &fw.camera_config().settings)?;
    let (name, mhz) = (sensor.name(), xclk_hz / 1_000_000);
    log::info!("camera: {name} on {}, XCLK {mhz} MHz", board.description);

    let (events, rx) = mpsc::channel();
    // Every hub of cfg.toml in order; the core picks one (`hub_index`) and connects there.
    let hubs = fw.hubs_with(tls::pin);
    if let Some(fp) = fw.hubs().iter().find_map(|(_, trust)| trust.fingerprint()) {
        log::info!("tls: a wss:// hub's certificate must have SHA-256 {fp}");
    }
    let (flash, ota_boot) = ota::start(events.clone(), fw.download_trust().map(tls::pin))?;
    // Different per board, so cameras rebooted together do not reconnect in lockstep.
    let seed = unsafe { u64::from(sys::esp_random()) << 32 | u64::from(sys::esp_random()) };
    let cam_config = fw.board_camera_config(FIRMWARE, name, board.name, ota_boot, seed);

    let mut twdt = TWDTDriver::new(peripherals.twdt, &TWDTConfig::default())?;
    // Fed by `Net::feed` at every pass of the loop and after every frame sent.
    let _watchdog = twdt.watch_current_task()?;
    let net = Net::new(events.clone(), fw.standalone())?;
    let mut shell = Shell::new(net, hubs, Some(flash.clone()), events);
    let driver = Driver::new(Camera::with_ota(cam_config, sensor, flash, clock::now()));
    log::info!("espcam: running");
    blocking::run(driver, &mut shell, &rx, MAX_WAIT)
}

//! espcam firmware for ESP32-S3 camera boards: the shell around `espcam_camera::Camera`.
//!
//! Brings up Wi-Fi, the camera, the clock and the network, then runs exactly the loop the
//! core's crate docs describe: drain `poll_output`, do the I/O it asks for, wait for an event
//! or `poll_timeout`, report what happened. Every decision (what to send, when to capture,
//! drop, reconnect, ack or reboot) is the core's and is tested on the host; this crate must
//! never make one.

mod boards;
mod camera;
mod clock;
mod config;
mod net;
mod ota;
mod wifi;

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use esp_idf_svc::eventloop::EspSystemEventLoop;
use esp_idf_svc::hal::peripherals::Peripherals;
use esp_idf_svc::hal::task::watchdog::{TWDTConfig, TWDTDriver, WatchdogSubscription};
use esp_idf_svc::log::EspLogger;
use esp_idf_svc::nvs::EspDefaultNvsPartition;
use esp_idf_svc::sys::{self, EspError};
use espcam_camera::{
    Camera, Config, ConnId, FrameDecision, Health, Instant, Output, Sensor, CLOSE_INTERNAL_ERROR,
    CLOSE_RESTART,
};
use espcam_proto::{CameraId, Settings};
use net::{Event, Net};

/// Longest wait between two passes, so the task watchdog is fed and health stays fresh.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// How often heap, PSRAM and RSSI are read for the core's telemetry.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

fn main() {
    sys::link_patches();
    EspLogger::initialize_default();
    let (version, board) = (env!("CARGO_PKG_VERSION"), config::board().name);
    log::info!("espcam-fw {version} ({} mode, board {board})", config::MODE);
    if let Err(e) = run() {
        // Nobody may be there to press reset; a driver that failed once often starts next time.
        log::error!("start-up failed: {e}; restarting in 10 s");
        std::thread::sleep(Duration::from_secs(10));
        esp_idf_svc::hal::reset::restart();
    }
}

fn run() -> Result<(), EspError> {
    let peripherals = Peripherals::take()?;
    let sysloop = EspSystemEventLoop::take()?;
    // Wi-Fi first, camera second: see wifi.rs on brown-outs.
    let _wifi = wifi::start(peripherals.modem, &sysloop, EspDefaultNvsPartition::take()?)?;
    let (board, xclk_hz, settings) = (config::board(), config::xclk_hz(), Settings::default());
    let sensor = camera::CameraSensor::init(board, xclk_hz, &settings)?;
    let (name, mhz) = (sensor.name(), xclk_hz / 1_000_000);
    log::info!("camera: {name} on {}, XCLK {mhz} MHz", board.description);

    let (events, rx) = mpsc::channel();
    let (flash, ota_boot) = ota::Flash::start(events.clone())?;
    let net = Net::new(events, config::standalone())?;
    let (mut cam_config, wall) = if config::standalone() {
        (Config::standalone(), None)
    } else {
        let id = CameraId::new(config::CAMERA_ID)
            .map_err(|_| EspError::from_infallible::<{ sys::ESP_ERR_INVALID_ARG }>())?;
        // SNTP only in hub mode: an access point has no route to a time server.
        (
            Config::hub(id, config::TOKEN),
            Some(clock::WallClock::start()?),
        )
    };
    cam_config.settings = settings;
    cam_config.firmware = concat!("espcam-fw ", env!("CARGO_PKG_VERSION")).into();
    cam_config.sensor = name.into();
    cam_config.board = Some(board.name.into());
    cam_config.ota_boot = ota_boot;
    // The first range request waits behind the erase of the OTA slot (several seconds).
    cam_config.ota.fetch_timeout = Duration::from_secs(60);
    // Different per board, so cameras rebooted together do not reconnect in lockstep.
    cam_config.seed =
        u64::from(unsafe { sys::esp_random() }) << 32 | u64::from(unsafe { sys::esp_random() });

    let mut twdt = TWDTDriver::new(peripherals.twdt, &TWDTConfig::default())?;
    let mut shell = Shell {
        watchdog: twdt.watch_current_task()?,
        cam: Camera::with_ota(cam_config, sensor, flash, clock::now()),
        net,
        wall,
        next_health: clock::now(),
        newest: None,
    };
    log::info!("espcam: running");
    loop {
        shell.pass(&rx);
    }
}

/// Everything the loop owns.
struct Shell<'w, S: Sensor> {
    /// Fed every pass and after every frame send: a loop stuck for 10 s reboots the board.
    watchdog: WatchdogSubscription<'w>,
    cam: Camera<S, ota::Flash>,
    net: Net,
    wall: Option<clock::WallClock>,
    next_health: Instant,
    /// Standalone: the last frame sent (its sequence and a copy of its JPEG), for clients
    /// the core says are owed it; replaced by every new frame.
    newest: Option<(u32, Arc<[u8]>)>,
}

impl<S: Sensor> Shell<'_, S> {
    /// One turn of the core's loop: outputs, then one wait, then what happened.
    fn pass(&mut self, rx: &Receiver<Event>) {
        let _ = self.watchdog.feed();
        let now = clock::now();
        if now >= self.next_health {
            self.next_health = now + HEALTH_EVERY;
            self.cam.set_health(health());
            if let Some(unix) = self.wall.as_ref().and_then(|w| w.just_synced()) {
                self.cam.set_wall_clock(now, unix);
            }
        }
        while let Some(out) = self.cam.poll_output() {
            self.output(out);
        }
        let wait = match self.cam.poll_timeout() {
            Some(t) => t.saturating_since(clock::now()).min(MAX_WAIT),
            None => MAX_WAIT,
        };
        if let Ok(event) = rx.recv_timeout(wait) {
            self.event(event);
        }
        let now = clock::now();
        if self.cam.poll_timeout().is_some_and(|t| t <= now) {
            self.cam.handle_timeout(now);
        }
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::Connect { conn, link } => self.net.connect(conn, link),
            Output::Text { conn, text } => {
                let sent = self.net.send_text(conn, text);
                self.check(conn, sent);
            }
            Output::Close { conn, code, reason } => {
                log::info!("conn {}: closing ({code}: {reason})", conn.get());
                self.net.close(conn, code, &reason);
            }
            Output::Capture => self.capture(),
            Output::Reboot | Output::SetBootAndReboot => {
                // `SetBootAndReboot`: the sink's `finish` (esp-idf-svc `complete`) already
                // made the new image the boot partition.
                let reason = self.cam.reboot_reason().unwrap_or("unknown");
                log::warn!("rebooting: {reason}");
                self.net.close_all(CLOSE_RESTART, "camera is restarting");
                esp_idf_svc::hal::reset::restart();
            }
            Output::OtaFetch {
                fetch,
                url,
                offset,
                len,
            } => self.cam.ota_sink().fetch(fetch, &url, offset, len),
            Output::ConfirmImage => self.cam.ota_sink().confirm(),
            Output::RollbackAndReboot => {
                log::warn!("rolling back: {}", self.cam.reboot_reason().unwrap_or(""));
                self.net.close_all(CLOSE_RESTART, "camera is restarting");
                self.cam.ota_sink().rollback();
            }
        }
    }

    fn capture(&mut self) {
        let Some(frame) = camera::grab() else {
            return self.cam.handle_capture_failed(clock::now());
        };
        let FrameDecision::Send(send) = self.cam.handle_frame(clock::now(), &frame.describe())
        else {
            return; // dropping `frame` hands the buffer back
        };
        let Some(header) = send.header else {
            // Standalone: one copy for every client's sender thread, and the driver's
            // buffer goes back at once.
            let jpeg: Arc<[u8]> = Arc::from(frame.jpeg());
            drop(frame);
            for &conn in send.targets.as_slice() {
                let sent = self.net.send_to_client(conn, jpeg.clone());
                self.check(conn, sent);
            }
            self.newest = Some((send.info.sequence, jpeg));
            return;
        };
        // The hub's stream link: one zero-copy send in place (the core paces this link).
        for &conn in send.targets.as_slice() {
            let sent = self.net.send_frame(conn, &header, frame.jpeg());
            let _ = self.watchdog.feed();
            if sent.is_ok() {
                self.frame_sent(conn);
            }
            self.check(conn, sent);
        }
    }

    /// `conn` took its frame; a client that missed frames meanwhile gets the newest now.
    fn frame_sent(&mut self, conn: ConnId) {
        let mut next = self.cam.handle_frame_sent(clock::now(), conn);
        while let Some(f) = next.take() {
            match &self.newest {
                Some((seq, jpeg)) if *seq == f.info.sequence => {
                    let sent = self.net.send_to_client(conn, jpeg.clone());
                    self.check(conn, sent);
                }
                // Cannot happen (both sides update on the same Send); never leave a client
                // marked busy with nothing on its way.
                _ => next = self.cam.handle_frame_sent(clock::now(), conn),
            }
        }
    }

    /// A failed send means the socket is gone: release it and tell the core.
    fn check(&mut self, conn: ConnId, sent: Result<(), EspError>) {
        if let Err(e) = sent {
            log::warn!("conn {}: send failed: {e}", conn.get());
            self.net.close(conn, CLOSE_INTERNAL_ERROR, "send failed");
            self.cam.handle_closed(clock::now(), conn);
        }
    }

    fn event(&mut self, event: Event) {
        let now = clock::now();
        match event {
            Event::Connected(conn) => self.cam.handle_connected(now, conn),
            Event::Text(conn, text) => self.cam.handle_text(now, conn, &text),
            Event::FrameSent(conn) => self.frame_sent(conn),
            Event::Closed(conn) => {
                self.net.forget(conn);
                self.cam.handle_closed(now, conn);
            }
            Event::ClientOpen(sender) => match self.cam.handle_client_open(now) {
                Ok(conn) => self.net.adopt(conn, sender),
                Err(r) => self.net.refuse(sender, r.code, r.reason),
            },
            Event::ClientText(fd, text) => {
                if let Some(conn) = self.net.conn_of(fd) {
                    self.cam.handle_text(now, conn, &text);
                }
            }
            Event::OtaData(fetch, Ok(body)) => self.cam.handle_ota_data(now, fetch, &body),
            Event::OtaData(fetch, Err(e)) => self.cam.handle_ota_failed(now, fetch, &e),
            Event::ClientClosed(fd) => {
                if let Some(conn) = self.net.conn_of(fd) {
                    self.net.forget(conn);
                    self.cam.handle_closed(now, conn);
                }
            }
        }
    }
}

/// The health numbers only the platform knows (the core counts uptime itself).
fn health() -> Health {
    let free = |caps| u32::try_from(unsafe { sys::heap_caps_get_free_size(caps) });
    Health {
        heap_free: free(sys::MALLOC_CAP_INTERNAL).unwrap_or(u32::MAX),
        psram_free: free(sys::MALLOC_CAP_SPIRAM).unwrap_or(u32::MAX),
        rssi: wifi::rssi(),
    }
}

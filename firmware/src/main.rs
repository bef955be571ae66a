//! espcam firmware for ESP32-S3 camera boards: the shell around `espcam_camera::Camera`.
//!
//! Brings up Wi-Fi, then the camera, the clock and the links, then runs exactly the loop the
//! core's crate docs describe: drain `poll_output`, do the I/O it asks for, wait for an
//! event or `poll_timeout`, report what happened. Every decision (what to send, when to
//! capture, drop, reconnect, ack or reboot) is the core's and is tested on the host; this
//! file and its seams must never make one.

mod boards;
mod camera;
mod clock;
mod config;
mod health;
mod link;
mod server;
mod wifi;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use esp_idf_svc::eventloop::EspSystemEventLoop;
use esp_idf_svc::hal::peripherals::Peripherals;
use esp_idf_svc::hal::task::watchdog::{TWDTConfig, TWDTDriver, WatchdogSubscription};
use esp_idf_svc::http::server::ws::EspHttpWsDetachedSender;
use esp_idf_svc::log::EspLogger;
use esp_idf_svc::nvs::EspDefaultNvsPartition;
use esp_idf_svc::sys::{self, EspError};
use espcam_camera::{
    Camera, Config, ConnId, FrameDecision, Instant, Output, Sensor, CLOSE_RESTART,
};
use espcam_proto::{CameraId, Settings};

/// What the client tasks and the HTTP server report to the main loop.
pub enum Event {
    /// Hub link `conn` is open.
    Connected(ConnId),
    /// Hub link `conn` received a text message.
    Text(ConnId, String),
    /// Hub link `conn` closed or failed to open.
    Closed(ConnId),
    /// A standalone client connected on socket `fd`.
    ClientOpen(i32, EspHttpWsDetachedSender),
    /// A standalone client on socket `fd` sent a text message.
    ClientText(i32, String),
    /// The standalone client on socket `fd` went away.
    ClientClosed(i32),
}

/// The transport of this build's topology.
enum Net {
    Hub(link::HubLinks),
    Standalone(server::Clients),
}

/// Longest wait between two passes, so the task watchdog is fed and health stays fresh.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// How often heap, PSRAM and RSSI are read for the core's telemetry.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// WebSocket close code "internal error", for a socket whose send failed.
const CLOSE_SEND_FAILED: u16 = 1011;

fn main() {
    sys::link_patches();
    EspLogger::initialize_default();
    log::info!(
        "espcam-fw {} ({} mode, board {})",
        env!("CARGO_PKG_VERSION"),
        config::MODE,
        config::board().name
    );
    if let Err(e) = run() {
        log::error!("start-up failed: {e}; restarting in 10 s");
        std::thread::sleep(Duration::from_secs(10));
        health::reboot();
    }
}

fn run() -> Result<(), EspError> {
    let peripherals = Peripherals::take()?;
    let sysloop = EspSystemEventLoop::take()?;
    let nvs = EspDefaultNvsPartition::take()?;
    // Wi-Fi first, camera second: see wifi.rs on brown-outs.
    let wifi = if config::standalone() {
        wifi::access_point(
            peripherals.modem,
            &sysloop,
            nvs,
            config::AP_SSID,
            config::AP_PASSWORD,
        )?
    } else {
        wifi::station(
            peripherals.modem,
            &sysloop,
            nvs,
            config::WIFI_SSID,
            config::WIFI_PASSWORD,
        )?
    };
    let board = config::board();
    let settings = Settings::default();
    let sensor = camera::CameraSensor::init(board, config::xclk_hz(), &settings)?;
    log::info!(
        "camera: {} on {}, XCLK {} MHz",
        sensor.name(),
        board.description,
        config::xclk_hz() / 1_000_000
    );

    let (events, rx) = mpsc::channel();
    let (mut cam_config, net, wall) = if config::standalone() {
        let clients = server::Clients::start(events)?;
        (Config::standalone(), Net::Standalone(clients), None)
    } else {
        let id = CameraId::new(config::CAMERA_ID)
            .map_err(|_| EspError::from_infallible::<{ sys::ESP_ERR_INVALID_ARG }>())?;
        let links = link::HubLinks::new(config::HUB_HOST, config::hub_ports(), events);
        let wall = clock::WallClock::start()?;
        (Config::hub(id, config::TOKEN), Net::Hub(links), Some(wall))
    };
    cam_config.settings = settings;
    cam_config.firmware = concat!("espcam-fw ", env!("CARGO_PKG_VERSION")).into();
    cam_config.sensor = sensor.name().into();
    // Different per board, so cameras rebooted together do not reconnect in lockstep.
    cam_config.seed =
        u64::from(unsafe { sys::esp_random() }) << 32 | u64::from(unsafe { sys::esp_random() });
    let cam = Camera::new(cam_config, sensor, clock::now());

    let mut twdt = TWDTDriver::new(peripherals.twdt, &TWDTConfig::default())?;
    let watchdog = twdt.watch_current_task()?;
    let mut shell = Shell {
        watchdog,
        cam,
        net,
        wall,
        wifi,
        next_health: clock::now(),
    };
    log::info!("espcam: running");
    loop {
        shell.pass(&rx);
    }
}

/// Everything the loop owns.
struct Shell<'w, S: Sensor> {
    /// Fed every pass and after every send: a loop stuck for 10 s reboots the board.
    watchdog: WatchdogSubscription<'w>,
    cam: Camera<S>,
    net: Net,
    /// SNTP (hub mode; an access point has no route to a time server).
    wall: Option<clock::WallClock>,
    wifi: wifi::Wifi,
    next_health: Instant,
}

impl<S: Sensor> Shell<'_, S> {
    /// One turn of the core's loop: outputs, then one wait, then what happened.
    fn pass(&mut self, rx: &Receiver<Event>) {
        let _ = self.watchdog.feed();
        let now = clock::now();
        if now >= self.next_health {
            self.next_health = now + HEALTH_EVERY;
            self.cam.set_health(health::read(&self.wifi));
            if let Some(unix) = self.wall.as_mut().and_then(|w| w.unix_micros()) {
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
        match rx.recv_timeout(wait) {
            Ok(event) => self.event(event),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        let now = clock::now();
        if self.cam.poll_timeout().is_some_and(|t| t <= now) {
            self.cam.handle_timeout(now);
        }
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::Connect { conn, link } => match &mut self.net {
                Net::Hub(links) => links.connect(conn, link),
                Net::Standalone(_) => self.cam.handle_closed(clock::now(), conn),
            },
            Output::Text { conn, text } => {
                let sent = match &mut self.net {
                    Net::Hub(links) => links.send_text(conn, &text),
                    Net::Standalone(clients) => clients.send_text(conn, &text),
                };
                self.check(conn, sent);
            }
            Output::Close { conn, code, reason } => {
                log::info!("conn {}: closing ({code}: {reason})", conn.get());
                match &mut self.net {
                    Net::Hub(links) => links.close(conn, code, &reason),
                    Net::Standalone(clients) => clients.close(conn, code, &reason),
                }
            }
            Output::Capture => self.capture(),
            Output::Reboot => {
                match &mut self.net {
                    Net::Hub(links) => links.close_all(CLOSE_RESTART, "camera is restarting"),
                    Net::Standalone(c) => c.close_all(CLOSE_RESTART, "camera is restarting"),
                }
                health::reboot();
            }
        }
    }

    fn capture(&mut self) {
        let Some(frame) = camera::grab() else {
            self.cam.handle_capture_failed(clock::now());
            return;
        };
        let FrameDecision::Send(send) = self.cam.handle_frame(clock::now(), &frame.describe())
        else {
            return; // dropping `frame` hands the buffer back
        };
        let header = send.header.as_ref().map(|h| h.as_slice());
        for &conn in send.targets.as_slice() {
            let sent = match &mut self.net {
                Net::Hub(links) => links.send_frame(conn, header, frame.jpeg()),
                Net::Standalone(clients) => clients.send_frame(conn, header, frame.jpeg()),
            };
            let _ = self.watchdog.feed();
            if sent.is_ok() {
                self.cam.handle_frame_sent(clock::now(), conn);
            }
            self.check(conn, sent);
        }
    }

    /// A failed send means the socket is gone: release it and tell the core.
    fn check(&mut self, conn: ConnId, sent: Result<(), EspError>) {
        if let Err(e) = sent {
            log::warn!("conn {}: send failed: {e}", conn.get());
            match &mut self.net {
                Net::Hub(links) => links.close(conn, CLOSE_SEND_FAILED, "send failed"),
                Net::Standalone(clients) => clients.close(conn, CLOSE_SEND_FAILED, "send failed"),
            }
            self.cam.handle_closed(clock::now(), conn);
        }
    }

    fn event(&mut self, event: Event) {
        let now = clock::now();
        match (event, &mut self.net) {
            (Event::Connected(conn), _) => self.cam.handle_connected(now, conn),
            (Event::Text(conn, text), _) => self.cam.handle_text(now, conn, &text),
            (Event::Closed(conn), net) => {
                if let Net::Hub(links) = net {
                    links.forget(conn);
                }
                self.cam.handle_closed(now, conn);
            }
            (Event::ClientOpen(fd, sender), Net::Standalone(clients)) => {
                match self.cam.handle_client_open(now) {
                    Ok(conn) => clients.adopt(conn, fd, sender),
                    Err(r) => clients.refuse(fd, sender, r.code, r.reason),
                }
            }
            (Event::ClientText(fd, text), Net::Standalone(clients)) => {
                if let Some(conn) = clients.conn_of(fd) {
                    self.cam.handle_text(now, conn, &text);
                }
            }
            (Event::ClientClosed(fd), Net::Standalone(clients)) => {
                if let Some(conn) = clients.forget(fd) {
                    self.cam.handle_closed(now, conn);
                }
            }
            // Client events only exist in standalone mode.
            (Event::ClientOpen(..) | Event::ClientText(..) | Event::ClientClosed(_), _) => {}
        }
    }
}

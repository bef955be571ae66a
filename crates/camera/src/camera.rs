//! The camera state machine: every decision a camera makes, none of its I/O.
//!
//! [`Camera`] is driven by its shell (the ESP32-S3 firmware, the virtual camera) through
//! `handle_*` inputs, each carrying the current [`Instant`], and tells the shell what to do
//! through [`Camera::poll_output`] and [`Camera::poll_timeout`]. It decides when to capture,
//! whether a frame goes out or is dropped, what each link says and when it reconnects; the
//! shell only moves bytes. It must never touch a socket, a clock, a thread or `std`, and the
//! per-frame path (`handle_timeout` → `Capture` → `handle_frame` → `handle_frame_sent`) must
//! never allocate.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use core::time::Duration;

use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::standalone::{MAX_CLIENTS, PONG, TOO_MANY_CLIENTS};
use espcam_proto::{
    Ack, ApMessage, ApRequest, CameraId, CameraMsg, CommandMsg, DecodeError, FrameFlags,
    FrameHeader, HEADER_LEN, Hello, HubMsg, PROTOCOL_VERSION, Settings, StreamHello, Telemetry,
};
use serde_json::Value;

use crate::backoff::BackoffConfig;
use crate::pacing::Pacer;
use crate::rng::SplitMix64;
use crate::time::Instant;

/// How often telemetry (hub mode) and heartbeats (standalone mode) go out.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a hub link may take from `Connect` to the hub's welcome before it is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`HubConfig::network_watchdog`]: how long a hub-mode camera may go without a
/// welcomed control link before it asks to be restarted (the seed firmware's network
/// watchdog, which rebooted after a long outage).
pub const NETWORK_WATCHDOG: Duration = Duration::from_secs(5 * 60);

/// WebSocket close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: internal error, e.g. the shell's send on the socket failed.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// WebSocket close code: the camera is restarting.
pub const CLOSE_RESTART: u16 = 1012;
/// WebSocket close code: try again later (client limit reached).
pub const CLOSE_TRY_AGAIN: u16 = 1013;

/// The sensor seam: the one piece of hardware the core talks to directly, so that a command
/// is acknowledged only once the sensor has really taken the new settings.
pub trait Sensor {
    /// Puts `settings` in force. On error the sensor must be left as it was.
    fn apply(&mut self, settings: &Settings) -> Result<(), SensorError>;
}

/// The sensor refused a setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sensor refused {setting}: {reason}")]
pub struct SensorError {
    /// Which setting (`"resolution"`).
    pub setting: &'static str,
    /// Why, e.g. `ESP_ERR_NOT_SUPPORTED` or `not supported by OV2640`.
    pub reason: &'static str,
}

/// Identifies one connection for the life of a [`Camera`]: a hub link attempt or a standalone
/// client. Never reused, so a late event about an old connection is recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u32);

impl ConnId {
    /// The raw number (for logs and shell-side maps).
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// The two hub links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// JSON control channel, `ws://HUB:6971/ws/camera`.
    Control,
    /// Binary stream channel, `ws://HUB:6972/ws/stream`.
    Stream,
}

/// Where a hub link is in its life, for status displays and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Not wanted now (the stream link waits for the control link).
    Idle,
    /// Waiting to reconnect after a failure.
    Backoff,
    /// The shell is opening the WebSocket.
    Connecting,
    /// Hello sent, waiting for the hub's welcome.
    Handshake,
    /// Welcomed by the hub.
    Ready,
}

/// Health numbers only the platform knows; the shell reports them with
/// [`Camera::set_health`] and they go out in the next telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Free internal heap, bytes.
    pub heap_free: u32,
    /// Free PSRAM, bytes.
    pub psram_free: u32,
    /// Wi-Fi signal strength, dBm; `None` when unknown.
    pub rssi: Option<i16>,
}

/// A frame the sensor captured, as the shell describes it. The JPEG bytes stay with the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedFrame {
    /// When the exposure was taken.
    pub captured_at: Instant,
    /// Width, px.
    pub width: u16,
    /// Height, px.
    pub height: u16,
    /// JPEG length, bytes.
    pub len: usize,
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Hub mode: open a WebSocket for `link` (control: `ws://HUB:6971/ws/camera`, stream:
    /// `ws://HUB:6972/ws/stream`), then report [`Camera::handle_connected`] or
    /// [`Camera::handle_closed`] for `conn`.
    Connect {
        /// The new connection's id.
        conn: ConnId,
        /// Which link it is.
        link: Link,
    },
    /// Send one WebSocket text message.
    Text {
        /// Where.
        conn: ConnId,
        /// The message.
        text: String,
    },
    /// Close the connection with a WebSocket close frame. The core has already forgotten it:
    /// do not report its closing.
    Close {
        /// Which connection.
        conn: ConnId,
        /// WebSocket close code ([`CLOSE_NORMAL`], [`CLOSE_TRY_AGAIN`], …).
        code: u16,
        /// Human-readable reason (also worth logging).
        reason: String,
    },
    /// Capture a frame now and report it with [`Camera::handle_frame`] (or
    /// [`Camera::handle_capture_failed`]).
    Capture,
    /// Restart the camera once the outputs before this one are flushed. The core is inert
    /// from now on; the shell builds a new [`Camera`] after the restart.
    Reboot,
}

/// Why a captured frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Every link was still sending the previous frame (counted in `frames_dropped`).
    Busy,
    /// Nobody to send to (the link went away during the capture).
    NoTarget,
    /// The camera is rebooting.
    Rebooting,
}

/// The connections one frame goes to (at most [`MAX_CLIENTS`]); a fixed array so deciding a
/// frame's destinations never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    conns: [ConnId; MAX_CLIENTS],
    len: usize,
}

impl Targets {
    const EMPTY: Targets = Targets {
        conns: [ConnId(0); MAX_CLIENTS],
        len: 0,
    };

    fn push(&mut self, conn: ConnId) {
        if let Some(slot) = self.conns.get_mut(self.len) {
            *slot = conn;
            self.len += 1;
        }
    }

    /// The connections, in no particular order.
    pub fn as_slice(&self) -> &[ConnId] {
        &self.conns[..self.len]
    }
}

/// A frame to send: the shell sends `header` (if any) immediately followed by the JPEG, as
/// one binary WebSocket message, to every target, then reports
/// [`Camera::handle_frame_sent`] per target once its socket took the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSend {
    /// The 28-byte frame header (hub stream); `None` for standalone clients, who get bare
    /// JPEGs as in seed 002.
    pub header: Option<[u8; HEADER_LEN]>,
    /// The header's fields, for logs and tests.
    pub info: FrameHeader,
    /// Where the frame goes.
    pub targets: Targets,
}

/// What to do with a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDecision {
    /// Send it.
    Send(FrameSend),
    /// Release it without sending.
    Drop(DropReason),
}

/// A standalone client the camera turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// WebSocket close code to send ([`CLOSE_TRY_AGAIN`]).
    pub code: u16,
    /// Close reason, e.g. `too many clients (max 5)`.
    pub reason: &'static str,
}

/// Counters for status displays and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Frames handed to at least one link since boot.
    pub frames_sent: u64,
    /// Frames dropped (link busy, capture failed) since boot.
    pub frames_dropped: u64,
    /// Frames per second sent over the last full second.
    pub fps: f32,
    /// Rate the pacer currently aims for (below target after backpressure).
    pub paced_fps: f32,
    /// Configured target rate.
    pub target_fps: u16,
    /// Time since boot.
    pub uptime: Duration,
    /// Standalone clients connected (0 in hub mode).
    pub clients: usize,
}

/// Hub-mode settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// This camera's id.
    pub camera: CameraId,
    /// Shared secret sent in both hellos; empty when the hub needs none.
    pub token: String,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Restart the camera ([`Output::Reboot`]) when the control link has not been welcomed
    /// for this long: since boot, or since it was last lost. A reconnecting link that is
    /// welcomed again disarms it. A wedged Wi-Fi or IP stack that no reconnect can cure is
    /// cured by a restart. `None`: never (standalone mode has no such rule at all).
    pub network_watchdog: Option<Duration>,
}

/// Standalone-mode (seed 002) settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneConfig {
    /// Text of the welcome message each client gets.
    pub welcome: String,
}

/// How the camera reaches its viewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Connects out to a hub: control and stream links.
    Hub(HubConfig),
    /// Serves up to five WebSocket clients itself (seed 002).
    Standalone(StandaloneConfig),
}

/// Everything a camera is configured with at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Hub or standalone.
    pub mode: Mode,
    /// The settings the sensor is in at boot (the shell initialises the sensor with them).
    pub settings: Settings,
    /// Frames per second to aim for (1..; the seed streams 30).
    pub target_fps: u16,
    /// Firmware name and version, sent in the hello.
    pub firmware: String,
    /// Sensor model, sent in the hello (`OV3660`, `virtual`).
    pub sensor: String,
    /// Flags set in every frame header ([`FrameFlags::SYNTHETIC`] for the simulator).
    pub frame_flags: FrameFlags,
    /// Seed of the reconnect-jitter generator; different per camera.
    pub seed: u64,
}

impl Config {
    fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            settings: Settings::default(),
            target_fps: 30,
            firmware: String::from(concat!("espcam-camera ", env!("CARGO_PKG_VERSION"))),
            sensor: String::from("unknown"),
            frame_flags: FrameFlags::default(),
            seed: 0,
        }
    }

    /// Hub mode with defaults: seed-002 settings, 30 fps, 500 ms…30 s backoff, restart
    /// after [`NETWORK_WATCHDOG`] without the hub.
    pub fn hub(camera: CameraId, token: impl Into<String>) -> Self {
        Self::with_mode(Mode::Hub(HubConfig {
            camera,
            token: token.into(),
            backoff: BackoffConfig::default(),
            network_watchdog: Some(NETWORK_WATCHDOG),
        }))
    }

    /// Standalone mode with defaults.
    pub fn standalone() -> Self {
        Self::with_mode(Mode::Standalone(StandaloneConfig {
            welcome: String::from("Connected to 30fps espcam camera stream"),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Idle,
    Backoff { until: Instant },
    Connecting { conn: ConnId, deadline: Instant },
    Handshake { conn: ConnId, deadline: Instant },
    Ready { conn: ConnId, busy: bool },
}

impl LinkState {
    fn conn(&self) -> Option<ConnId> {
        match *self {
            LinkState::Connecting { conn, .. }
            | LinkState::Handshake { conn, .. }
            | LinkState::Ready { conn, .. } => Some(conn),
            LinkState::Idle | LinkState::Backoff { .. } => None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match *self {
            LinkState::Backoff { until } => Some(until),
            LinkState::Connecting { deadline, .. } | LinkState::Handshake { deadline, .. } => {
                Some(deadline)
            }
            LinkState::Idle | LinkState::Ready { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
struct LinkSlot {
    state: LinkState,
    /// Consecutive failures since the last welcome; drives the backoff.
    failures: u32,
}

#[derive(Debug)]
struct HubRole {
    config: HubConfig,
    control: LinkSlot,
    stream: LinkSlot,
    /// Boot, or when the welcomed control link was last lost: the network watchdog counts
    /// from here while the control link is not ready.
    offline_since: Instant,
}

impl HubRole {
    /// When the network watchdog fires, if it is armed.
    fn watchdog_deadline(&self) -> Option<Instant> {
        if matches!(self.control.state, LinkState::Ready { .. }) {
            return None;
        }
        self.config.network_watchdog.map(|w| self.offline_since + w)
    }
}

impl HubRole {
    fn slot(&mut self, link: Link) -> &mut LinkSlot {
        match link {
            Link::Control => &mut self.control,
            Link::Stream => &mut self.stream,
        }
    }

    fn link_of(&self, conn: ConnId) -> Option<Link> {
        if self.control.state.conn() == Some(conn) {
            Some(Link::Control)
        } else if self.stream.state.conn() == Some(conn) {
            Some(Link::Stream)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    conn: ConnId,
    /// A frame is on its way to this client; it gets no other until it is sent.
    busy: bool,
}

#[derive(Debug)]
struct StandaloneRole {
    config: StandaloneConfig,
    clients: [Option<Client>; MAX_CLIENTS],
}

impl StandaloneRole {
    fn count(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    fn find(&mut self, conn: ConnId) -> Option<&mut Option<Client>> {
        self.clients
            .iter_mut()
            .find(|c| c.is_some_and(|c| c.conn == conn))
    }
}

#[derive(Debug)]
enum Role {
    Hub(HubRole),
    Standalone(StandaloneRole),
}

/// The camera. See the crate docs for the loop a shell runs around it.
#[derive(Debug)]
pub struct Camera<S> {
    sensor: S,
    settings: Settings,
    firmware: String,
    sensor_name: String,
    frame_flags: FrameFlags,
    boot: Instant,
    role: Role,
    pacer: Pacer,
    rng: SplitMix64,
    next_conn: u32,
    /// Outputs waiting for the shell, in order. Frames never go through here.
    out: VecDeque<Output>,
    /// A capture is due and the shell has not been told yet (kept out of `out` so the frame
    /// path never touches the queue).
    capture_requested: bool,
    /// The shell is capturing; no second capture is requested until it reports back.
    capture_outstanding: bool,
    sequence: u32,
    frames_sent: u64,
    frames_dropped: u64,
    window_start: Instant,
    window_frames: u32,
    measured_fps: f32,
    next_tick: Instant,
    health: Health,
    /// Unix time minus monotonic time, µs, once the shell knows the wall clock.
    wall_offset: Option<u64>,
    /// Why the camera is restarting, once [`Output::Reboot`] is decided; every input is
    /// ignored from then on.
    reboot: Option<&'static str>,
}

impl<S: Sensor> Camera<S> {
    /// A camera that booted at `now`. `sensor` must already be in `config.settings`.
    pub fn new(config: Config, sensor: S, now: Instant) -> Self {
        let role = match config.mode {
            Mode::Hub(hub) => Role::Hub(HubRole {
                config: hub,
                control: LinkSlot {
                    // Connect at once after boot.
                    state: LinkState::Backoff { until: now },
                    failures: 0,
                },
                stream: LinkSlot {
                    state: LinkState::Idle,
                    failures: 0,
                },
                offline_since: now,
            }),
            Mode::Standalone(config) => Role::Standalone(StandaloneRole {
                config,
                clients: [None; MAX_CLIENTS],
            }),
        };
        Self {
            sensor,
            settings: config.settings,
            firmware: config.firmware,
            sensor_name: config.sensor,
            frame_flags: config.frame_flags,
            boot: now,
            role,
            pacer: Pacer::new(config.target_fps),
            rng: SplitMix64::new(config.seed),
            next_conn: 1,
            out: VecDeque::with_capacity(16),
            capture_requested: false,
            capture_outstanding: false,
            sequence: 0,
            frames_sent: 0,
            frames_dropped: 0,
            window_start: now,
            window_frames: 0,
            measured_fps: 0.0,
            next_tick: now + TICK,
            health: Health::default(),
            wall_offset: None,
            reboot: None,
        }
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next thing the shell must do, or `None` when there is nothing until the next
    /// input or [`Camera::poll_timeout`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        if self.capture_requested && !self.is_rebooting() {
            self.capture_requested = false;
            return Some(Output::Capture);
        }
        None
    }

    /// When [`Camera::handle_timeout`] must be called next; `None` once rebooting.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_rebooting() {
            return None;
        }
        let mut t = self.next_tick;
        if !self.capture_outstanding
            && let Some(c) = self.pacer.next_capture()
        {
            t = t.min(c);
        }
        if let Role::Hub(hub) = &self.role {
            let deadlines = [
                hub.control.state.deadline(),
                hub.stream.state.deadline(),
                hub.watchdog_deadline(),
            ];
            for d in deadlines.into_iter().flatten() {
                t = t.min(d);
            }
        }
        Some(t)
    }

    // ---- inputs --------------------------------------------------------------------------

    /// Time passed: runs whatever is due (captures, reconnects, timeouts, telemetry).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_rebooting() {
            return;
        }
        if let Role::Hub(hub) = &self.role {
            if hub.watchdog_deadline().is_some_and(|d| d <= now) {
                self.reboot = Some("network watchdog: no welcome from the hub for too long");
                self.capture_requested = false;
                self.out.push_back(Output::Reboot);
                return;
            }
            self.hub_timers(now);
        }
        if !self.capture_outstanding && self.pacer.take_due(now) {
            if self.has_free_target() {
                self.capture_requested = true;
                self.capture_outstanding = true;
            } else {
                // The previous frame is still on its way: this one is dropped before it is
                // even captured, and the pacer slows down.
                self.frames_dropped += 1;
                self.pacer.on_drop();
            }
        }
        if self.next_tick <= now {
            self.next_tick = self.next_tick + TICK;
            if self.next_tick <= now {
                self.next_tick = now + TICK;
            }
            self.tick(now);
        }
    }

    /// Hub mode: the WebSocket for `conn` is open.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let Role::Hub(hub) = &mut self.role else {
            return;
        };
        let Some(link) = hub.link_of(conn) else {
            return;
        };
        let slot = hub.slot(link);
        let LinkState::Connecting { deadline, .. } = slot.state else {
            return;
        };
        slot.state = LinkState::Handshake { conn, deadline };
        let text = match link {
            Link::Control => CameraMsg::Hello(Hello {
                proto: PROTOCOL_VERSION,
                camera: hub.config.camera.clone(),
                token: hub.config.token.clone(),
                firmware: self.firmware.clone(),
                sensor: self.sensor_name.clone(),
                settings: self.settings,
            })
            .to_json(),
            Link::Stream => StreamHello {
                proto: PROTOCOL_VERSION,
                camera: hub.config.camera.clone(),
                token: hub.config.token.clone(),
            }
            .to_json(),
        };
        let _ = now;
        self.out.push_back(Output::Text { conn, text });
    }

    /// The connection `conn` closed or failed to open (any mode).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        if self.is_rebooting() {
            return;
        }
        match &mut self.role {
            Role::Hub(hub) => {
                if let Some(link) = hub.link_of(conn) {
                    self.link_failed(now, link);
                }
            }
            Role::Standalone(sa) => {
                if let Some(slot) = sa.find(conn) {
                    *slot = None;
                }
                if sa.count() == 0 {
                    self.pacer.stop();
                }
            }
        }
    }

    /// A text message arrived on `conn`.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        if self.is_rebooting() {
            return;
        }
        match &self.role {
            Role::Hub(hub) => {
                if let Some(link) = hub.link_of(conn) {
                    self.hub_text(now, link, conn, text);
                }
            }
            Role::Standalone(sa) => {
                if sa.clients.iter().flatten().any(|c| c.conn == conn) {
                    self.client_text(now, conn, text);
                }
            }
        }
    }

    /// Standalone mode: a WebSocket client connected. Returns its id, or why it is refused
    /// (the shell sends the close frame). Hub mode refuses everyone.
    pub fn handle_client_open(&mut self, now: Instant) -> Result<ConnId, Refused> {
        let Role::Standalone(sa) = &mut self.role else {
            return Err(Refused {
                code: CLOSE_TRY_AGAIN,
                reason: "camera is in hub mode",
            });
        };
        if self.reboot.is_some() {
            return Err(Refused {
                code: CLOSE_RESTART,
                reason: "camera is restarting",
            });
        }
        let Some(slot) = sa.clients.iter_mut().find(|c| c.is_none()) else {
            return Err(Refused {
                code: CLOSE_TRY_AGAIN,
                reason: TOO_MANY_CLIENTS,
            });
        };
        let conn = ConnId(self.next_conn);
        self.next_conn = self.next_conn.wrapping_add(1);
        *slot = Some(Client { conn, busy: false });
        let text = ApMessage::Welcome {
            message: sa.config.welcome.clone(),
        }
        .to_json();
        self.out.push_back(Output::Text { conn, text });
        self.pacer.start(now);
        Ok(conn)
    }

    /// The frame requested by [`Output::Capture`] is ready. Decides where it goes; never
    /// allocates.
    pub fn handle_frame(&mut self, now: Instant, frame: &CapturedFrame) -> FrameDecision {
        let _ = now;
        self.capture_outstanding = false;
        if self.is_rebooting() {
            return FrameDecision::Drop(DropReason::Rebooting);
        }
        let mut targets = Targets::EMPTY;
        let mut any = false;
        let header_wanted = match &mut self.role {
            Role::Hub(hub) => {
                if let LinkState::Ready { conn, busy } = &mut hub.stream.state {
                    any = true;
                    if !*busy {
                        *busy = true;
                        targets.push(*conn);
                    }
                }
                true
            }
            Role::Standalone(sa) => {
                for c in sa.clients.iter_mut().flatten() {
                    any = true;
                    if !c.busy {
                        c.busy = true;
                        targets.push(c.conn);
                    }
                }
                false
            }
        };
        if targets.len == 0 {
            if !any {
                return FrameDecision::Drop(DropReason::NoTarget);
            }
            self.frames_dropped += 1;
            self.pacer.on_drop();
            return FrameDecision::Drop(DropReason::Busy);
        }
        let mut flags = self.frame_flags.0;
        let timestamp_us = match self.wall_offset {
            Some(off) => off.saturating_add(frame.captured_at.as_micros()),
            None => {
                flags |= FrameFlags::CLOCK_UNSYNCED;
                frame.captured_at.as_micros()
            }
        };
        let info = FrameHeader {
            flags: FrameFlags(flags),
            sequence: self.sequence,
            timestamp_us,
            width: frame.width,
            height: frame.height,
            jpeg_len: u32::try_from(frame.len).unwrap_or(u32::MAX),
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.frames_sent += 1;
        self.window_frames += 1;
        FrameDecision::Send(FrameSend {
            header: header_wanted.then(|| info.encode()),
            info,
            targets,
        })
    }

    /// The capture requested by [`Output::Capture`] failed; counted as a dropped frame.
    pub fn handle_capture_failed(&mut self, now: Instant) {
        let _ = now;
        self.capture_outstanding = false;
        self.frames_dropped += 1;
    }

    /// The socket of `conn` took the frame sent to it: it may have the next one.
    pub fn handle_frame_sent(&mut self, now: Instant, conn: ConnId) {
        let _ = now;
        match &mut self.role {
            Role::Hub(hub) => {
                if let LinkState::Ready { conn: c, busy } = &mut hub.stream.state
                    && *c == conn
                {
                    *busy = false;
                }
            }
            Role::Standalone(sa) => {
                if let Some(Some(c)) = sa.find(conn) {
                    c.busy = false;
                }
            }
        }
    }

    /// Reports free heap, PSRAM and RSSI for the next telemetry.
    pub fn set_health(&mut self, health: Health) {
        self.health = health;
    }

    /// Tells the core the wall-clock time (`unix_micros`, µs since the Unix epoch) at `now`,
    /// e.g. after SNTP. Until then frame headers carry boot-relative times flagged
    /// [`FrameFlags::CLOCK_UNSYNCED`].
    pub fn set_wall_clock(&mut self, now: Instant, unix_micros: u64) {
        self.wall_offset = Some(unix_micros.saturating_sub(now.as_micros()));
    }

    // ---- queries -------------------------------------------------------------------------

    /// Settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Counters at `now`.
    pub fn stats(&self, now: Instant) -> Stats {
        Stats {
            frames_sent: self.frames_sent,
            frames_dropped: self.frames_dropped,
            fps: self.measured_fps,
            paced_fps: self.pacer.current_fps(),
            target_fps: self.pacer.target_fps(),
            uptime: now.saturating_since(self.boot),
            clients: match &self.role {
                Role::Standalone(sa) => sa.count(),
                Role::Hub(_) => 0,
            },
        }
    }

    /// State of a hub link (`Idle` in standalone mode).
    pub fn link_status(&self, link: Link) -> LinkStatus {
        let Role::Hub(hub) = &self.role else {
            return LinkStatus::Idle;
        };
        let slot = match link {
            Link::Control => &hub.control,
            Link::Stream => &hub.stream,
        };
        match slot.state {
            LinkState::Idle => LinkStatus::Idle,
            LinkState::Backoff { .. } => LinkStatus::Backoff,
            LinkState::Connecting { .. } => LinkStatus::Connecting,
            LinkState::Handshake { .. } => LinkStatus::Handshake,
            LinkState::Ready { .. } => LinkStatus::Ready,
        }
    }

    /// Whether [`Output::Reboot`] was issued; the core ignores all inputs from then on.
    pub fn is_rebooting(&self) -> bool {
        self.reboot.is_some()
    }

    /// Why [`Output::Reboot`] was issued (`"reboot command"`, or the network watchdog), for
    /// the shell's log line.
    pub fn reboot_reason(&self) -> Option<&'static str> {
        self.reboot
    }

    /// The sensor.
    pub fn sensor(&self) -> &S {
        &self.sensor
    }

    /// The sensor, mutably (the shell captures through it).
    pub fn sensor_mut(&mut self) -> &mut S {
        &mut self.sensor
    }

    // ---- internals -----------------------------------------------------------------------

    fn has_free_target(&self) -> bool {
        match &self.role {
            Role::Hub(hub) => matches!(hub.stream.state, LinkState::Ready { busy: false, .. }),
            Role::Standalone(sa) => sa.clients.iter().flatten().any(|c| !c.busy),
        }
    }

    fn tick(&mut self, now: Instant) {
        // Rounded to a tenth (integer maths: no float rounding in `core`): people read
        // `29.9`, not `29.99658`, and the value is only as exact as a one-second window.
        let elapsed_us = now.saturating_since(self.window_start).as_micros();
        self.measured_fps = (u128::from(self.window_frames) * 10_000_000 + elapsed_us / 2)
            .checked_div(elapsed_us)
            .map_or(0.0, |tenths| tenths as f32 / 10.0);
        self.window_frames = 0;
        self.window_start = now;
        self.pacer.on_second();
        match &self.role {
            Role::Hub(hub) => {
                if let LinkState::Ready { conn, .. } = hub.control.state {
                    let text = CameraMsg::Telemetry(Telemetry {
                        fps: self.measured_fps,
                        frames_sent: self.frames_sent,
                        frames_dropped: self.frames_dropped,
                        heap_free: self.health.heap_free,
                        psram_free: self.health.psram_free,
                        uptime_ms: u64::try_from(now.saturating_since(self.boot).as_millis())
                            .unwrap_or(u64::MAX),
                        rssi: self.health.rssi,
                        settings: self.settings,
                    })
                    .to_json();
                    self.out.push_back(Output::Text { conn, text });
                }
            }
            Role::Standalone(sa) => {
                let n = sa.count();
                if n > 0 {
                    let text = ApMessage::Heartbeat {
                        fps: self.measured_fps,
                        clients: u8::try_from(n).unwrap_or(u8::MAX),
                    }
                    .to_json();
                    for c in sa.clients.iter().flatten() {
                        self.out.push_back(Output::Text {
                            conn: c.conn,
                            text: text.clone(),
                        });
                    }
                }
            }
        }
    }

    fn hub_timers(&mut self, now: Instant) {
        for link in [Link::Control, Link::Stream] {
            let Role::Hub(hub) = &mut self.role else {
                return;
            };
            match hub.slot(link).state {
                LinkState::Backoff { until } if until <= now => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn = self.next_conn.wrapping_add(1);
                    hub.slot(link).state = LinkState::Connecting {
                        conn,
                        deadline: now + HANDSHAKE_TIMEOUT,
                    };
                    self.out.push_back(Output::Connect { conn, link });
                }
                LinkState::Connecting { conn, deadline }
                | LinkState::Handshake { conn, deadline }
                    if deadline <= now =>
                {
                    self.out.push_back(Output::Close {
                        conn,
                        code: CLOSE_NORMAL,
                        reason: String::from("no welcome from the hub within 10 s"),
                    });
                    self.link_failed(now, link);
                }
                _ => {}
            }
        }
    }

    /// `link` is gone (closed, refused, timed out): schedule its reconnection. Losing the
    /// control link also closes the stream link, which only runs beside a welcomed control
    /// link.
    fn link_failed(&mut self, now: Instant, link: Link) {
        let Role::Hub(hub) = &mut self.role else {
            return;
        };
        let backoff = hub.config.backoff;
        if link == Link::Control && matches!(hub.control.state, LinkState::Ready { .. }) {
            hub.offline_since = now;
        }
        let slot = hub.slot(link);
        slot.failures = slot.failures.saturating_add(1);
        let delay = backoff.delay(slot.failures, &mut self.rng);
        slot.state = LinkState::Backoff { until: now + delay };
        match link {
            Link::Control => {
                if let Some(conn) = hub.stream.state.conn() {
                    self.out.push_back(Output::Close {
                        conn,
                        code: CLOSE_NORMAL,
                        reason: String::from("control link lost"),
                    });
                }
                hub.stream.state = LinkState::Idle;
                self.pacer.stop();
            }
            Link::Stream => self.pacer.stop(),
        }
    }

    fn hub_text(&mut self, now: Instant, link: Link, conn: ConnId, text: &str) {
        match HubMsg::from_json(text) {
            Ok(HubMsg::Welcome { .. }) => {
                let Role::Hub(hub) = &mut self.role else {
                    return;
                };
                let slot = hub.slot(link);
                if let LinkState::Handshake { conn, .. } = slot.state {
                    slot.state = LinkState::Ready { conn, busy: false };
                    slot.failures = 0;
                    match link {
                        // The stream link follows a welcomed control link.
                        Link::Control => {
                            if hub.stream.state == LinkState::Idle {
                                hub.stream.state = LinkState::Backoff { until: now };
                            }
                        }
                        Link::Stream => self.pacer.start(now),
                    }
                }
            }
            Ok(HubMsg::Rejected { reason }) => {
                // A WebSocket close reason holds at most 123 bytes; cut the hub's reason on
                // a character boundary so the shell can send it as it is.
                const PREFIX: &str = "rejected by hub: ";
                let mut end = reason.len().min(123 - PREFIX.len());
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                let reason = alloc::format!("{PREFIX}{}", &reason[..end]);
                self.out.push_back(Output::Close {
                    conn,
                    code: CLOSE_NORMAL,
                    reason,
                });
                self.link_failed(now, link);
            }
            Ok(HubMsg::Command(msg)) => {
                let ack = self.run_command(msg);
                self.send_ack(conn, ack, false);
            }
            Err(DecodeError::Command(e)) => {
                let ack = self.failed_ack(text, e.to_string());
                self.send_ack(conn, ack, false);
            }
            // Anything else from the hub is not for this protocol version: ignored.
            Err(_) => {}
        }
    }

    fn client_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        match ApRequest::parse(text) {
            Ok(ApRequest::Ping) => self.out.push_back(Output::Text {
                conn,
                text: String::from(PONG),
            }),
            Ok(ApRequest::GetStats) => {
                let s = self.stats(now);
                let text = ApMessage::Stats {
                    clients: u8::try_from(s.clients).unwrap_or(u8::MAX),
                    fps: s.fps,
                    frames: s.frames_sent,
                }
                .to_json();
                self.out.push_back(Output::Text { conn, text });
            }
            Ok(ApRequest::Command(msg)) => {
                let ack = self.run_command(msg);
                self.send_ack(conn, ack, true);
            }
            Err(e) => {
                let ack = self.failed_ack(text, e.to_string());
                self.send_ack(conn, ack, true);
            }
        }
    }

    fn send_ack(&mut self, conn: ConnId, ack: Ack, standalone: bool) {
        let text = if standalone {
            ApMessage::Ack(ack).to_json()
        } else {
            CameraMsg::Ack(ack).to_json()
        };
        self.out.push_back(Output::Text { conn, text });
        if self.is_rebooting() {
            self.out.push_back(Output::Reboot);
        }
    }

    /// Applies one command through the sensor and says what happened.
    fn run_command(&mut self, msg: CommandMsg) -> Ack {
        let mut next = self.settings;
        let mut ack = Ack {
            id: msg.id,
            cmd: Some(String::from(msg.command.name())),
            ok: true,
            settings: self.settings,
            error: None,
        };
        if !msg.command.apply(&mut next) {
            // Reboot: acknowledged first, then the shell restarts (see `send_ack`).
            self.reboot = Some("reboot command");
            self.capture_requested = false;
            return ack;
        }
        match self.sensor.apply(&next) {
            Ok(()) => {
                self.settings = next;
                ack.settings = next;
            }
            Err(e) => {
                ack.ok = false;
                ack.error = Some(e.to_string());
            }
        }
        ack
    }

    /// An ack for a message that could not be parsed as a command, with whatever id and
    /// command name could still be read from it.
    fn failed_ack(&self, text: &str, error: String) -> Ack {
        let (id, cmd) = if text.len() <= MAX_CONTROL_MESSAGE {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => (
                    map.get("id")
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok()),
                    map.get("cmd")
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(32).collect::<String>()),
                ),
                _ => (None, None),
            }
        } else {
            (None, None)
        };
        Ack {
            id,
            cmd,
            ok: false,
            settings: self.settings,
            error: Some(error),
        }
    }
}

//! The core's public vocabulary: what a shell gives the camera (configuration, captured
//! frames, health) and what it gets back (outputs, frame decisions, stats).
//!
//! Plain data shared by both roles (`hub_mode`, `standalone`) and the [`Camera`](crate::Camera)
//! façade. Must never hold behaviour beyond constructors and trivial accessors.

use alloc::string::String;
use core::time::Duration;

use espcam_proto::standalone::MAX_CLIENTS;
use espcam_proto::{
    Brightness, CameraId, FrameFlags, FrameHeader, HEADER_LEN, Quality, Resolution, Settings,
};

use crate::backoff::BackoffConfig;
use crate::quality::AdaptiveQuality;
use crate::time::Instant;

/// How often telemetry (hub mode) and heartbeats (standalone mode) go out.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a hub link may take from `Connect` to the hub's welcome before it is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`HubConfig::network_watchdog`]: how long a hub-mode camera may go without a
/// welcomed control link before it asks to be restarted (the seed firmware's network
/// watchdog, which rebooted after a long outage).
pub const NETWORK_WATCHDOG: Duration = Duration::from_secs(5 * 60);

// WebSocket close codes: defined once in `espcam_proto::close`, named here as the camera
// uses them.
/// WebSocket close code: normal closure.
pub const CLOSE_NORMAL: u16 = espcam_proto::close::NORMAL;
/// WebSocket close code: protocol error (the answer to a close frame whose code may not be
/// sent on the wire, such as 1005 or 1006).
pub const CLOSE_PROTOCOL_ERROR: u16 = espcam_proto::close::PROTOCOL;
/// WebSocket close code: internal error, e.g. the shell's send on the socket failed.
pub const CLOSE_INTERNAL_ERROR: u16 = espcam_proto::close::INTERNAL_ERROR;
/// WebSocket close code: the camera is restarting.
pub const CLOSE_RESTART: u16 = espcam_proto::close::RESTART;
/// WebSocket close code: try again later (client limit reached).
pub const CLOSE_TRY_AGAIN: u16 = espcam_proto::close::TRY_AGAIN;

/// The sensor seam: the one piece of hardware the core talks to directly, so that a command
/// is acknowledged only once the sensor has really taken the new settings.
///
/// The core decides what changes: it calls [`Sensor::set`] only for settings that differ
/// from what the sensor has, resolution first, and puts the earlier ones back itself when a
/// later one is refused. A sensor only performs one setting at a time.
pub trait Sensor {
    /// Puts one setting in force. On error the sensor must be left as it was for it.
    fn set(&mut self, setting: Setting) -> Result<(), SensorError>;
}

/// One sensor setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Frame size.
    Resolution(Resolution),
    /// JPEG quality number (lower is better).
    Quality(Quality),
    /// Exposure compensation.
    Brightness(Brightness),
    /// Vertical flip.
    Vflip(bool),
    /// Horizontal mirror.
    Hmirror(bool),
}

impl Setting {
    /// Every setting of `s`, resolution first: what a sensor is initialised with.
    pub fn all(s: &Settings) -> [Setting; 5] {
        [
            Setting::Resolution(s.resolution),
            Setting::Quality(s.quality),
            Setting::Brightness(s.brightness),
            Setting::Vflip(s.vflip),
            Setting::Hmirror(s.hmirror),
        ]
    }

    /// The field's name as in commands (`"resolution"`).
    pub fn name(&self) -> &'static str {
        match self {
            Setting::Resolution(_) => "resolution",
            Setting::Quality(_) => "quality",
            Setting::Brightness(_) => "brightness",
            Setting::Vflip(_) => "vflip",
            Setting::Hmirror(_) => "hmirror",
        }
    }

    /// Writes this setting into `s`.
    pub fn apply_to(self, s: &mut Settings) {
        match self {
            Setting::Resolution(r) => s.resolution = r,
            Setting::Quality(q) => s.quality = q,
            Setting::Brightness(b) => s.brightness = b,
            Setting::Vflip(v) => s.vflip = v,
            Setting::Hmirror(h) => s.hmirror = h,
        }
    }

    /// How a sensor driver with integer setters (esp32-camera's `sensor_t`: `set_quality`,
    /// `set_brightness`, `set_vflip`, `set_hmirror`, in [`Setting::INT_SETTERS`] order) takes
    /// this setting: the setter's index and its argument. `None` for the resolution, which
    /// goes through the driver's frame-size setter.
    pub fn int_setter(&self) -> Option<(usize, i32)> {
        match *self {
            Setting::Resolution(_) => None,
            Setting::Quality(q) => Some((0, i32::from(q.get()))),
            Setting::Brightness(b) => Some((1, i32::from(b.get()))),
            Setting::Vflip(v) => Some((2, i32::from(v))),
            Setting::Hmirror(h) => Some((3, i32::from(h))),
        }
    }

    /// The order of [`Setting::int_setter`]'s indices.
    pub const INT_SETTERS: [&'static str; 4] = ["quality", "brightness", "vflip", "hmirror"];

    /// This setting refused for `reason`.
    pub fn refused(&self, reason: &'static str) -> SensorError {
        SensorError {
            setting: self.name(),
            reason,
        }
    }

    /// What a C setter's answer means: `Some(0)` applied, another number the driver's error,
    /// `None` a setter this sensor does not have.
    pub fn driver_result(&self, ret: Option<i32>) -> Result<(), SensorError> {
        match ret {
            Some(0) => Ok(()),
            Some(_) => Err(self.refused("the camera driver returned an error")),
            None => Err(self.refused("not supported by this sensor")),
        }
    }
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
pub struct ConnId(pub(crate) u32);

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

impl Health {
    /// From the drivers' figures: free bytes as `heap_caps_get_free_size` returns them
    /// (clamped to `u32`) and the RSSI as `esp_wifi_sta_get_rssi` does (`None`: the call
    /// failed, e.g. not joined; out of `i16` counts as unknown).
    pub fn from_driver(heap_free: usize, psram_free: usize, rssi: Option<i32>) -> Self {
        let bytes = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            heap_free: bytes(heap_free),
            psram_free: bytes(psram_free),
            rssi: rssi.and_then(|r| i16::try_from(r).ok()),
        }
    }
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

impl CapturedFrame {
    /// A camera driver's frame buffer as the core takes it: the capture time as a
    /// `timeval` on the monotonic clock (seconds and µs; before 0 counts as 0), the size in
    /// pixels (clamped to `u16`) and the JPEG length.
    pub fn from_driver(tv_sec: i64, tv_usec: i64, width: usize, height: usize, len: usize) -> Self {
        let us = tv_sec.saturating_mul(1_000_000).saturating_add(tv_usec);
        let px = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        Self {
            captured_at: Instant::from_micros(u64::try_from(us).unwrap_or(0)),
            width: px(width),
            height: px(height),
            len,
        }
    }
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
    /// Firmware update: fetch `len` bytes of the image at `offset` with HTTP
    /// `GET url` and `Range: bytes=offset-(offset+len-1)`, then report the body with
    /// [`Camera::handle_ota_data`] (status 206 only), or [`Camera::handle_ota_failed`]. The
    /// core times the request out itself; a late answer for an old `fetch` is ignored.
    OtaFetch {
        /// This request's id, echoed in the answer.
        fetch: FetchId,
        /// The image URL from the hub's offer.
        url: String,
        /// First byte wanted.
        offset: u32,
        /// Bytes wanted (at most [`OtaConfig::chunk`]).
        len: u32,
    },
    /// Firmware update: the new image was written, verified and finished
    /// ([`OtaSink::finish`]); make it the boot partition (if `finish` did not) and restart
    /// once the outputs before this one are flushed. The core is inert from now on; the next
    /// boot is [`OtaBoot::Pending`].
    SetBootAndReboot,
    /// Firmware update: this boot's image reached the hub; mark it valid for good
    /// (`esp_ota_mark_app_valid_cancel_rollback`). Boots after this one are
    /// [`OtaBoot::Normal`].
    ConfirmImage,
    /// Firmware update: this boot's image could not reach the hub within
    /// [`OtaConfig::confirm_window`]; mark it invalid and restart into the previous one
    /// (`esp_ota_mark_app_invalid_rollback_and_reboot`). The next boot is
    /// [`OtaBoot::RolledBack`].
    RollbackAndReboot,
}

/// Identifies one OTA chunk request for the life of a [`Camera`]; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchId(pub(crate) u32);

impl FetchId {
    /// The raw number (for logs and shell-side maps).
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Where the shell writes a firmware image: the inactive OTA partition on the ESP32-S3, a
/// buffer in the simulator. The core calls `begin` once, then `write` with every chunk in
/// order, then exactly one of `finish` (all bytes written and the SHA-256 verified) or
/// `abort` (any failure: the partial image must be discarded and the running firmware kept).
pub trait OtaSink {
    /// Prepares to receive an image of `size` bytes (erases the partition). Fails when the
    /// image cannot fit (no OTA partition, partition smaller than `size`).
    fn begin(&mut self, size: u32) -> Result<(), OtaSinkError>;
    /// Appends `chunk` to the image.
    fn write(&mut self, chunk: &[u8]) -> Result<(), OtaSinkError>;
    /// The whole image is written and verified: validate it (esp-idf checks the image
    /// header and its own checksum) and, where the platform does it in one step, make it
    /// the boot partition.
    fn finish(&mut self) -> Result<(), OtaSinkError>;
    /// Discards what was written. Must not fail; the running firmware stays.
    fn abort(&mut self);
}

/// An [`OtaSink`] refused an image or a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OtaSinkError(pub String);

/// The sink of a camera that cannot update itself: refuses every image.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOta;

impl OtaSink for NoOta {
    fn begin(&mut self, size: u32) -> Result<(), OtaSinkError> {
        Err(OtaSinkError(alloc::format!(
            "this camera has no OTA partition for an image of {size} bytes"
        )))
    }
    fn write(&mut self, _chunk: &[u8]) -> Result<(), OtaSinkError> {
        Err(OtaSinkError(String::from("no update in progress")))
    }
    fn finish(&mut self) -> Result<(), OtaSinkError> {
        Err(OtaSinkError(String::from("no update in progress")))
    }
    fn abort(&mut self) {}
}

/// What kind of boot this is, as far as firmware updates go. The shell finds out at boot
/// (esp-idf: `esp_ota_get_state_partition` of the running partition is
/// `ESP_OTA_IMG_PENDING_VERIFY` → `Pending`; `esp_ota_get_last_invalid_partition` names an
/// image that was rolled back → `RolledBack`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OtaBoot {
    /// A confirmed image.
    #[default]
    Normal,
    /// A freshly installed image, not confirmed yet: it confirms itself once the hub
    /// welcomes it, and rolls back if that does not happen within the confirmation window.
    Pending,
    /// The previous boot's new image was rolled back; this (old) image reports the failure
    /// to the hub once welcomed.
    RolledBack {
        /// The version that was rolled back.
        version: String,
        /// Why, for the hub (e.g. `did not reach the hub within 120 s`).
        reason: String,
    },
}

impl OtaBoot {
    /// What a boot is, from what the bootloader's records say: the running image is still
    /// pending verification (`ESP_OTA_IMG_PENDING_VERIFY`, esp-idf-svc
    /// `SlotState::Unverified`), or an image (`rolled_back`: its version, empty if unknown)
    /// was marked invalid. Pending wins: a pending image has not had its chance yet.
    pub fn detect(pending: bool, rolled_back: Option<String>) -> Self {
        match rolled_back {
            _ if pending => OtaBoot::Pending,
            Some(version) => OtaBoot::RolledBack {
                version,
                reason: String::from(
                    "it did not confirm itself (no welcome from the hub, or a crash)",
                ),
            },
            None => OtaBoot::Normal,
        }
    }
}

/// Firmware-update parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaConfig {
    /// Bytes per HTTP range request.
    pub chunk: u32,
    /// How long one chunk request may take.
    pub fetch_timeout: Duration,
    /// Retries per chunk after a failure (1 s, 2 s, 4 s … apart).
    pub retries: u8,
    /// How long a new image has to reach the hub before it rolls back.
    pub confirm_window: Duration,
    /// Least time between two `ota_progress` reports.
    pub progress_interval: Duration,
}

impl Default for OtaConfig {
    fn default() -> Self {
        Self {
            chunk: 16 * 1024,
            fetch_timeout: Duration::from_secs(15),
            retries: 3,
            confirm_window: Duration::from_secs(120),
            progress_interval: Duration::from_secs(1),
        }
    }
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
    pub(crate) const EMPTY: Targets = Targets {
        conns: [ConnId(0); MAX_CLIENTS],
        len: 0,
    };

    pub(crate) fn push(&mut self, conn: ConnId) {
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
    /// The JPEG quality number the sensor uses now (the chosen one, or a higher number
    /// while adapting to a slow link).
    pub quality_in_force: Quality,
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
    /// How many hubs the shell can reach (at least 1). With more than one, after
    /// [`FAILOVER_AFTER`] control-link failures in a row without a welcome the camera moves
    /// to the next hub; the shell connects to the hub at [`crate::Camera::hub_index`].
    pub hubs: u8,
}

/// Control-link failures in a row (the lost link included) after which a camera with
/// several hubs moves to the next one.
pub const FAILOVER_AFTER: u32 = 2;

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
    /// Trade JPEG quality for frame rate on a slow link (`None`: only the rate adapts).
    pub adaptive_quality: Option<AdaptiveQuality>,
    /// The board this firmware was built for, sent in the hello (`None`: the hub offers this
    /// camera no firmware image).
    pub board: Option<String>,
    /// What this boot is for firmware updates.
    pub ota_boot: OtaBoot,
    /// Firmware-update timing.
    pub ota: OtaConfig,
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
            adaptive_quality: Some(AdaptiveQuality::default()),
            board: None,
            ota_boot: OtaBoot::Normal,
            ota: OtaConfig::default(),
        }
    }

    /// Hub mode with defaults: seed-002 settings, 30 fps, 500 ms…30 s backoff, restart
    /// after [`NETWORK_WATCHDOG`] without the hub, adaptive quality up to 30.
    pub fn hub(camera: CameraId, token: impl Into<String>) -> Self {
        Self::with_mode(Mode::Hub(HubConfig {
            camera,
            token: token.into(),
            backoff: BackoffConfig::default(),
            network_watchdog: Some(NETWORK_WATCHDOG),
            hubs: 1,
        }))
    }

    /// Standalone mode with defaults (30 fps, adaptive quality up to 30).
    pub fn standalone() -> Self {
        Self::with_mode(Mode::Standalone(StandaloneConfig {
            welcome: String::from("Connected to 30fps espcam camera stream"),
        }))
    }
}

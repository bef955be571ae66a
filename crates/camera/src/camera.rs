//! The camera state machine's public face: every decision a camera makes, none of its I/O.
//!
//! [`Camera`] is driven by its shell (the ESP32-S3 firmware, the virtual camera) through
//! `handle_*` inputs, each carrying the current [`Instant`], and tells the shell what to do
//! through [`Camera::poll_output`] and [`Camera::poll_timeout`]. It decides when to capture,
//! whether a frame goes out or is dropped, what each link says and when it reconnects; the
//! shell only moves bytes.
//!
//! This file only routes: what both modes share lives in `core`, what differs in
//! `hub_mode` and `standalone`, each readable on its own. It must never touch a socket, a
//! clock, a thread or `std`, and the per-frame path (`handle_timeout` → `Capture` →
//! `handle_frame` → `handle_frame_sent`) must never allocate.

use alloc::string::String;

use crate::core::{Core, close_reply};
use crate::hub_mode::HubRole;
use crate::ota::Ota;
use crate::standalone::StandaloneRole;
use crate::time::Instant;
use crate::types::{
    CLOSE_TRY_AGAIN, CapturedFrame, Config, ConnId, DropReason, FetchId, FrameDecision, FrameSend,
    Health, Link, LinkStatus, Mode, NoOta, OtaSink, Output, Refused, Sensor, Stats, TICK,
};

// One per camera, built once at boot and never moved on the frame path: boxing the larger
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Role {
    Hub(HubRole),
    Standalone(StandaloneRole),
}

/// Runs `$body` with `$r` bound to whichever role the camera has.
macro_rules! with_role {
    ($role:expr, $r:ident => $body:expr) => {
        match $role {
            Role::Hub($r) => $body,
            Role::Standalone($r) => $body,
        }
    };
}

/// The camera. See the crate docs for the loop a shell runs around it. `O` is where
/// firmware updates are written ([`NoOta`]: this camera cannot update itself).
#[derive(Debug)]
pub struct Camera<S, O = NoOta> {
    core: Core<S>,
    role: Role,
    ota: Ota<O>,
}

impl<S: Sensor> Camera<S> {
    /// A camera that booted at `now` and cannot update its firmware. `sensor` must already
    /// be in `config.settings`.
    pub fn new(config: Config, sensor: S, now: Instant) -> Self {
        Camera::with_ota(config, sensor, NoOta, now)
    }
}

impl<S: Sensor, O: OtaSink> Camera<S, O> {
    /// A camera that booted at `now` and writes firmware updates to `sink`. `sensor` must
    /// already be in `config.settings`.
    pub fn with_ota(config: Config, sensor: S, sink: O, now: Instant) -> Self {
        let mut core = Core::new(&config, sensor, now);
        let mut ota = Ota::new(
            sink,
            config.ota,
            config.board.clone(),
            &config.ota_boot,
            now,
        );
        let role = match config.mode {
            Mode::Hub(hub) => Role::Hub(HubRole::new(hub, now)),
            Mode::Standalone(sa) => {
                ota.confirm_now(&mut core);
                Role::Standalone(StandaloneRole::new(sa))
            }
        };
        Self { core, role, ota }
    }

    /// After an input that may have changed the OTA state: hands it an offer, lets it
    /// report on the welcomed control link.
    fn ota_pump(&mut self, now: Instant) {
        let Role::Hub(hub) = &mut self.role else {
            return;
        };
        if let Some(offer) = hub.take_offer() {
            self.ota.offer(&mut self.core, now, offer);
        }
        let control = hub.control_ready();
        self.ota.pump(&mut self.core, control);
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next thing the shell must do, or `None` when there is nothing until the next
    /// input or [`Camera::poll_timeout`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.core.out.pop_front() {
            return Some(o);
        }
        if self.core.capture_requested && !self.is_rebooting() {
            self.core.capture_requested = false;
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
        let mut t = self.core.next_tick;
        if !self.core.capture_outstanding
            && let Some(c) = self.core.pacer.next_capture()
        {
            t = t.min(c);
        }
        if let Role::Hub(hub) = &self.role
            && let Some(d) = hub.deadline()
        {
            t = t.min(d);
        }
        if let Some(d) = self.ota.deadline() {
            t = t.min(d);
        }
        Some(t)
    }

    // ---- inputs --------------------------------------------------------------------------

    /// Time passed: runs whatever is due (captures, reconnects, timeouts, telemetry).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_rebooting() {
            return;
        }
        if let Role::Hub(hub) = &mut self.role {
            hub.timeout(&mut self.core, now);
            if self.core.is_rebooting() {
                return;
            }
        }
        if self.ota.deadline().is_some_and(|d| d <= now) {
            self.ota.timeout(&mut self.core, now);
            if self.core.is_rebooting() {
                return;
            }
            self.ota_pump(now);
        }
        let core = &mut self.core;
        if !core.capture_outstanding && core.pacer.take_due(now) {
            if with_role!(&self.role, r => r.has_free_target()) {
                core.capture_requested = true;
                core.capture_outstanding = true;
            } else {
                // The previous frame is still on its way: this one is dropped before it is
                // even captured, and the pacer slows down.
                core.count_busy_drop();
            }
        }
        if core.next_tick <= now {
            core.next_tick = core.next_tick + TICK;
            if core.next_tick <= now {
                core.next_tick = now + TICK;
            }
            core.close_window(now);
            match &mut self.role {
                Role::Hub(hub) => hub.tick(core, now),
                Role::Standalone(sa) => sa.tick(core),
            }
        }
    }

    /// Hub mode: the WebSocket for `conn` is open.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        let _ = now;
        if let Role::Hub(hub) = &mut self.role {
            hub.connected(&mut self.core, conn);
        }
    }

    /// The connection `conn` closed or failed to open (any mode).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        if self.is_rebooting() {
            return;
        }
        match &mut self.role {
            Role::Hub(hub) => hub.closed(&mut self.core, now, conn),
            Role::Standalone(sa) => sa.closed(&mut self.core, conn),
        }
    }

    /// The peer sent a WebSocket close frame on `conn`, with its status code if it had one.
    /// The core forgets the connection (as [`Camera::handle_closed`] would, so do not report
    /// that too) and answers with an [`Output::Close`] echoing the code (RFC 6455 §5.5.1);
    /// the shell sends that close frame, then drops the socket.
    pub fn handle_close_frame(&mut self, now: Instant, conn: ConnId, code: Option<u16>) {
        if self.is_rebooting() || !with_role!(&self.role, r => r.knows(conn)) {
            return;
        }
        self.handle_closed(now, conn);
        self.core.close(conn, close_reply(code), String::new());
    }

    /// A text message arrived on `conn`.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        if self.is_rebooting() {
            return;
        }
        with_role!(&mut self.role, r => r.text(&mut self.core, now, conn, text));
        self.ota_pump(now);
    }

    /// Firmware update: the body of the range request `fetch` ([`Output::OtaFetch`]) arrived
    /// with status 206. A body shorter than asked means the image ends there.
    pub fn handle_ota_data(&mut self, now: Instant, fetch: FetchId, body: &[u8]) {
        if self.is_rebooting() {
            return;
        }
        self.ota.data(&mut self.core, now, fetch, body);
        self.ota_pump(now);
    }

    /// Firmware update: the range request `fetch` failed (`reason`: connection refused, an
    /// HTTP status other than 206, a reset). The core retries or gives up.
    pub fn handle_ota_failed(&mut self, now: Instant, fetch: FetchId, reason: &str) {
        if self.is_rebooting() {
            return;
        }
        self.ota.failed(now, fetch, reason);
        self.ota_pump(now);
    }

    /// Firmware update: bytes written and total of the download in progress.
    pub fn ota_progress(&self) -> Option<(u32, u32)> {
        self.ota.progress()
    }

    /// Whether a firmware download is running.
    pub fn ota_busy(&self) -> bool {
        self.ota.busy()
    }

    /// Whether this boot's image still waits for its confirmation.
    pub fn ota_pending(&self) -> bool {
        self.ota.pending()
    }

    /// The firmware-update sink.
    pub fn ota_sink(&self) -> &O {
        &self.ota.sink
    }

    /// The firmware-update sink, mutably.
    pub fn ota_sink_mut(&mut self) -> &mut O {
        &mut self.ota.sink
    }

    /// Standalone mode: a WebSocket client connected. Returns its id, or why it is refused
    /// (the shell sends the close frame). Hub mode refuses everyone.
    pub fn handle_client_open(&mut self, now: Instant) -> Result<ConnId, Refused> {
        match &mut self.role {
            Role::Standalone(sa) => sa.client_open(&mut self.core, now),
            Role::Hub(_) => Err(Refused {
                code: CLOSE_TRY_AGAIN,
                reason: "camera is in hub mode",
            }),
        }
    }

    /// The frame requested by [`Output::Capture`] is ready. Decides where it goes; never
    /// allocates.
    pub fn handle_frame(&mut self, now: Instant, frame: &CapturedFrame) -> FrameDecision {
        let _ = now;
        self.core.capture_outstanding = false;
        if self.is_rebooting() {
            return FrameDecision::Drop(DropReason::Rebooting);
        }
        let Some(targets) = with_role!(&mut self.role, r => r.take_targets()) else {
            return FrameDecision::Drop(DropReason::NoTarget);
        };
        if targets.as_slice().is_empty() {
            self.core.count_busy_drop();
            return FrameDecision::Drop(DropReason::Busy);
        }
        let info = self.core.frame_header(frame);
        let header = match &mut self.role {
            Role::Hub(_) => Some(info.encode()),
            Role::Standalone(sa) => {
                sa.sent_newest(info);
                None
            }
        };
        FrameDecision::Send(FrameSend {
            header,
            info,
            targets,
        })
    }

    /// The capture requested by [`Output::Capture`] failed; counted as a dropped frame.
    pub fn handle_capture_failed(&mut self, now: Instant) {
        let _ = now;
        self.core.capture_outstanding = false;
        self.core.frames_dropped += 1;
    }

    /// The socket of `conn` took the frame sent to it: it may have the next one. In
    /// standalone mode, a client that missed frames while it was sending gets the newest
    /// right away: send `Some(f)` (the last frame [`Camera::handle_frame`] sent, `f.info`
    /// says which) to `conn` as before, and report this again when it is sent. Never
    /// allocates.
    #[must_use = "Some(frame): send the newest frame to this connection now"]
    pub fn handle_frame_sent(&mut self, now: Instant, conn: ConnId) -> Option<FrameSend> {
        let _ = now;
        if self.is_rebooting() {
            return None;
        }
        with_role!(&mut self.role, r => r.frame_sent(conn))
    }

    /// Reports free heap, PSRAM and RSSI for the next telemetry.
    pub fn set_health(&mut self, health: Health) {
        self.core.health = health;
    }

    /// Tells the core the wall-clock time (`unix_micros`, µs since the Unix epoch) at `now`,
    /// e.g. after SNTP. Until then frame headers carry boot-relative times flagged
    /// [`FrameFlags::CLOCK_UNSYNCED`](espcam_proto::FrameFlags::CLOCK_UNSYNCED).
    pub fn set_wall_clock(&mut self, now: Instant, unix_micros: u64) {
        self.core.wall_offset = Some(unix_micros.saturating_sub(now.as_micros()));
    }

    // ---- queries -------------------------------------------------------------------------

    /// Settings as chosen (the sensor's quality may be higher while adapting; see
    /// [`Stats::quality_in_force`]).
    pub fn settings(&self) -> &espcam_proto::Settings {
        &self.core.settings
    }

    /// Counters at `now`.
    pub fn stats(&self, now: Instant) -> Stats {
        Stats {
            frames_sent: self.core.frames_sent,
            frames_dropped: self.core.frames_dropped,
            fps: self.core.fps(),
            paced_fps: self.core.pacer.current_fps(),
            target_fps: self.core.pacer.target_fps(),
            uptime: self.core.uptime(now),
            clients: match &self.role {
                Role::Standalone(sa) => sa.count(),
                Role::Hub(_) => 0,
            },
            quality_in_force: self.core.quality_in_force(),
        }
    }

    /// State of a hub link (`Idle` in standalone mode).
    pub fn link_status(&self, link: Link) -> LinkStatus {
        match &self.role {
            Role::Hub(hub) => hub.link_status(link),
            Role::Standalone(_) => LinkStatus::Idle,
        }
    }

    /// Hub mode: which of the configured hubs (`HubConfig::hubs`) the next
    /// [`Output::Connect`] goes to (0 in standalone mode or with one hub).
    pub fn hub_index(&self) -> usize {
        match &self.role {
            Role::Hub(hub) => hub.hub_index(),
            Role::Standalone(_) => 0,
        }
    }

    /// Whether [`Output::Reboot`] was issued; the core ignores all inputs from then on.
    pub fn is_rebooting(&self) -> bool {
        self.core.is_rebooting()
    }

    /// Why [`Output::Reboot`] was issued (`"reboot command"`, or the network watchdog), for
    /// the shell's log line.
    pub fn reboot_reason(&self) -> Option<&'static str> {
        self.core.reboot
    }

    /// The sensor.
    pub fn sensor(&self) -> &S {
        &self.core.sensor
    }

    /// The sensor, mutably (the shell captures through it).
    pub fn sensor_mut(&mut self) -> &mut S {
        &mut self.core.sensor
    }
}

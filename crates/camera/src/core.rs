//! What both roles share: the sensor and its settings, capture pacing, the frame counters
//! and headers, the fps measurement, commands and their acks, and the queue of outputs.
//!
//! The roles (`hub_mode`, `standalone`) decide who hears what; this module decides what a
//! command does and what a frame's header says, the same way for both. It must never know
//! about links or clients, and [`Core::frame_header`] (the per-frame path) must never
//! allocate.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use core::time::Duration;

use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::{Ack, CommandMsg, FrameFlags, FrameHeader, Settings};
use serde_json::Value;

use crate::pacing::Pacer;
use crate::quality::Governor;
use crate::rng::SplitMix64;
use crate::time::Instant;
use crate::types::{
    CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CapturedFrame, Config, ConnId, Health, Output, Sensor,
    SensorError, Setting, TICK,
};

/// Shortest window an fps figure is computed over, µs.
const MIN_WINDOW_US: u128 = 900_000;

/// The code that answers a peer's close frame (RFC 6455 §5.5.1): its own code echoed, 1000
/// when it had none, 1002 for a code that must never appear on the wire (1005, 1006, 1015,
/// reserved and out-of-range values; §7.4).
pub(crate) fn close_reply(code: Option<u16>) -> u16 {
    match code {
        None => CLOSE_NORMAL,
        Some(c @ (1000..=1003 | 1007..=1013 | 3000..=4999)) => c,
        Some(_) => CLOSE_PROTOCOL_ERROR,
    }
}

/// The shared state of one camera.
#[derive(Debug)]
pub(crate) struct Core<S> {
    pub(crate) sensor: S,
    /// The settings as chosen (commands, boot configuration): what acks and hellos report.
    pub(crate) settings: Settings,
    /// What the sensor really has: `settings` with the adapted quality.
    in_force: Settings,
    quality: Governor,
    pub(crate) firmware: String,
    pub(crate) sensor_name: String,
    /// The board, for the hello.
    pub(crate) board: Option<String>,
    /// This boot's image is not confirmed yet (the hello says so).
    pub(crate) ota_pending: bool,
    frame_flags: FrameFlags,
    pub(crate) boot: Instant,
    pub(crate) pacer: Pacer,
    pub(crate) rng: SplitMix64,
    next_conn: u32,
    /// Outputs waiting for the shell, in order. Frames never go through here.
    pub(crate) out: VecDeque<Output>,
    /// A capture is due and the shell has not been told yet (kept out of `out` so the frame
    /// path never touches the queue).
    pub(crate) capture_requested: bool,
    /// The shell is capturing; no second capture is requested until it reports back.
    pub(crate) capture_outstanding: bool,
    sequence: u32,
    pub(crate) frames_sent: u64,
    pub(crate) frames_dropped: u64,
    window_start: Instant,
    window_frames: u32,
    /// Frames per second over the last closed window; `None` while streaming has just
    /// (re)started and no window was measured yet.
    measured_fps: Option<f32>,
    pub(crate) next_tick: Instant,
    pub(crate) health: Health,
    /// Unix time minus monotonic time, µs, once the shell knows the wall clock.
    pub(crate) wall_offset: Option<u64>,
    /// Why the camera is restarting, once [`Output::Reboot`] is decided; every input is
    /// ignored from then on.
    pub(crate) reboot: Option<&'static str>,
}

impl<S: Sensor> Core<S> {
    pub(crate) fn new(config: &Config, sensor: S, now: Instant) -> Self {
        let quality = Governor::new(config.adaptive_quality, config.settings.quality);
        let mut pacer = Pacer::new(config.target_fps);
        pacer.hold_half_rate(quality.has_headroom());
        Self {
            sensor,
            settings: config.settings,
            in_force: config.settings,
            quality,
            firmware: config.firmware.clone(),
            sensor_name: config.sensor.clone(),
            board: config.board.clone(),
            ota_pending: config.ota_boot == crate::types::OtaBoot::Pending,
            frame_flags: config.frame_flags,
            boot: now,
            pacer,
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
            measured_fps: Some(0.0),
            next_tick: now + TICK,
            health: Health::default(),
            wall_offset: None,
            reboot: None,
        }
    }

    pub(crate) fn is_rebooting(&self) -> bool {
        self.reboot.is_some()
    }

    /// Decides to restart: no more captures; [`Output::Reboot`] is queued by the caller
    /// (after the ack that caused it, if any).
    pub(crate) fn request_reboot(&mut self, reason: &'static str) {
        self.reboot = Some(reason);
        self.capture_requested = false;
    }

    /// A fresh connection id; never reused.
    pub(crate) fn new_conn(&mut self) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn = self.next_conn.wrapping_add(1);
        conn
    }

    pub(crate) fn send_text(&mut self, conn: ConnId, text: String) {
        self.out.push_back(Output::Text { conn, text });
    }

    pub(crate) fn close(&mut self, conn: ConnId, code: u16, reason: impl Into<String>) {
        self.out.push_back(Output::Close {
            conn,
            code,
            reason: reason.into(),
        });
    }

    /// Time since boot, for telemetry.
    pub(crate) fn uptime(&self, now: Instant) -> Duration {
        now.saturating_since(self.boot)
    }

    /// A frame nobody could take: counted, and the pacer slows down.
    pub(crate) fn count_busy_drop(&mut self) {
        self.frames_dropped += 1;
        self.pacer.on_drop();
    }

    /// The header of a frame that goes out, numbered and timestamped; counts it as sent.
    /// Never allocates.
    pub(crate) fn frame_header(&mut self, frame: &CapturedFrame) -> FrameHeader {
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
        info
    }

    /// Frames are wanted from `now` on (a first client, a welcomed stream link). The fps
    /// window restarts here, so the first report measures streaming time only.
    pub(crate) fn start_streaming(&mut self, now: Instant) {
        if self.pacer.next_capture().is_none() {
            self.window_start = now;
            self.window_frames = 0;
            self.measured_fps = None;
        }
        self.pacer.start(now);
    }

    /// Nobody to stream to any more.
    pub(crate) fn stop_streaming(&mut self) {
        self.pacer.stop();
    }

    /// The rate being streamed, for stats, heartbeats and telemetry: the last measured
    /// window, or (right after streaming started, before a window could be measured) the
    /// rate the pacer aims for, never a misleading 0.
    pub(crate) fn fps(&self) -> f32 {
        self.measured_fps
            .unwrap_or_else(|| self.pacer.current_fps())
    }

    /// The once-a-second bookkeeping both roles need before they report: the fps of the
    /// window that just ended, and the pacer's recovery step.
    pub(crate) fn close_window(&mut self, now: Instant) {
        let dropped = self.pacer.on_second();
        if let Some(q) = self.quality.on_second(self.pacer.below_target(), dropped) {
            let mut target = self.in_force;
            target.quality = q;
            if self.put_in_force(target).is_err() {
                self.quality.refused(self.in_force.quality);
            }
        }
        self.pacer.hold_half_rate(self.quality.has_headroom());
        let elapsed_us = now.saturating_since(self.window_start).as_micros();
        // A window that started streaming only moments ago says nothing yet; it is closed at
        // the next tick instead.
        if self.pacer.next_capture().is_some() && elapsed_us < MIN_WINDOW_US {
            return;
        }
        // Rounded to a tenth (integer maths: no float rounding in `core`): people read
        // `29.9`, not `29.99658`, and the value is only as exact as a one-second window.
        self.measured_fps = Some(
            (u128::from(self.window_frames) * 10_000_000 + elapsed_us / 2)
                .checked_div(elapsed_us)
                .map_or(0.0, |tenths| tenths as f32 / 10.0),
        );
        self.window_frames = 0;
        self.window_start = now;
    }

    /// Applies one command through the sensor and says what happened.
    pub(crate) fn run_command(&mut self, msg: CommandMsg) -> Ack {
        let mut next = self.settings;
        let mut ack = Ack {
            id: msg.id,
            cmd: Some(String::from(msg.command.name())),
            ok: true,
            settings: self.settings,
            error: None,
        };
        if !msg.command.apply(&mut next) {
            // Reboot: acknowledged first, then the shell restarts (see `ack_sent`).
            self.request_reboot("reboot command");
            return ack;
        }
        let mut target = next;
        if next.quality == self.settings.quality {
            target.quality = self.in_force.quality;
        }
        match self.put_in_force(target) {
            Ok(()) => {
                if next.quality != self.settings.quality {
                    self.quality.set_chosen(next.quality);
                }
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

    /// Makes the sensor match `target`, one changed setting at a time (resolution first);
    /// if one is refused, the ones already changed are put back, so the sensor is left as
    /// it was.
    fn put_in_force(&mut self, target: Settings) -> Result<(), SensorError> {
        let old = Setting::all(&self.in_force);
        let new = Setting::all(&target);
        for i in 0..new.len() {
            if old[i] == new[i] {
                continue;
            }
            if let Err(e) = self.sensor.set(new[i]) {
                for j in (0..i).rev() {
                    if old[j] != new[j] {
                        let _ = self.sensor.set(old[j]);
                    }
                }
                return Err(e);
            }
        }
        self.in_force = target;
        Ok(())
    }

    /// The JPEG quality the sensor uses now.
    pub(crate) fn quality_in_force(&self) -> espcam_proto::Quality {
        self.in_force.quality
    }

    /// For telemetry: the quality in force, when the camera adapts it.
    pub(crate) fn reported_quality(&self) -> Option<espcam_proto::Quality> {
        self.quality.enabled().then_some(self.in_force.quality)
    }

    /// After an ack went into the queue: a reboot command restarts only now, so the ack
    /// leaves first.
    pub(crate) fn ack_sent(&mut self) {
        if self.is_rebooting() {
            self.out.push_back(Output::Reboot);
        }
    }

    /// An ack for a message that could not be parsed as a command, with whatever id and
    /// command name could still be read from it.
    pub(crate) fn failed_ack(&self, text: &str, error: String) -> Ack {
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

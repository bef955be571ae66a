//! The loop a blocking shell runs around a [`Camera`], written once and tested on the host:
//! which I/O each output means, what a failed send means (the socket is gone: close it and
//! tell the camera), which frame copy a standalone client gets, when health is read, and
//! the order of a restart (close everything first).
//!
//! The ESP32-S3 firmware runs it with threads and blocking sends behind [`ShellIo`]; the
//! virtual camera, being async, performs the same steps in its own task. This module must
//! never touch a socket, a clock or a thread: everything goes through [`ShellIo`].

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::camera::Camera;
use crate::time::Instant;
use crate::types::{
    CLOSE_INTERNAL_ERROR, CLOSE_RESTART, CapturedFrame, ConnId, FetchId, FrameDecision, Health,
    Link, OtaSink, Output, Refused, Sensor,
};

/// How often [`ShellIo::health`] is read for the camera's telemetry.
pub const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// A send that failed: the connection is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFailed;

/// The I/O a blocking shell performs for the [`Driver`].
pub trait ShellIo {
    /// A captured frame, held until dropped (the camera driver's buffer).
    type Frame;
    /// A copy of a frame's JPEG that standalone clients' senders share.
    type Jpeg: Clone;
    /// The monotonic clock (the one captured frames are stamped with).
    fn now(&self) -> Instant;
    /// Which hub (the index into the configured list, [`Camera::hub_index`]) the next
    /// [`ShellIo::connect`] and [`ShellIo::ota_fetch`] go to; told before every poll.
    fn set_hub(&mut self, _index: usize) {}
    /// Starts opening hub `link` as `conn`; report [`ShellEvent::Connected`] or `Closed`.
    fn connect(&mut self, conn: ConnId, link: Link);
    /// Sends (or queues) one text message.
    fn send_text(&mut self, conn: ConnId, text: String) -> Result<(), SendFailed>;
    /// Closes `conn` with a close frame; nothing more is reported about it.
    fn close(&mut self, conn: ConnId, code: u16, reason: &str);
    /// Releases a connection that ended by itself.
    fn forget(&mut self, conn: ConnId);
    /// Closes every connection (before a restart).
    fn close_all(&mut self, code: u16, reason: &str);
    /// Grabs the newest frame; `None` when the sensor failed.
    fn capture(&mut self) -> Option<(CapturedFrame, Self::Frame)>;
    /// Hub stream link: `header` ++ the JPEG as one binary message, returning once the
    /// socket took it (never copy the JPEG).
    fn send_frame(
        &mut self,
        conn: ConnId,
        header: &[u8],
        frame: &Self::Frame,
    ) -> Result<(), SendFailed>;
    /// Standalone: one shared copy of the JPEG; the buffer is released when `frame` drops.
    fn share(&mut self, frame: Self::Frame) -> Self::Jpeg;
    /// Standalone: hands the copy to `conn`'s sender; report [`ShellEvent::FrameSent`]
    /// when it is written. Must not wait for the socket.
    fn send_jpeg(&mut self, conn: ConnId, jpeg: Self::Jpeg) -> Result<(), SendFailed>;
    /// Restarts the board (every connection is closed already); with `rollback`, marks the
    /// running image invalid first so the previous one boots.
    fn restart(&mut self, rollback: bool, reason: &str);
    /// Performs an HTTP range request (see [`Output::OtaFetch`]) off the loop; report
    /// [`ShellEvent::OtaData`].
    fn ota_fetch(&mut self, fetch: FetchId, url: &str, offset: u32, len: u32);
    /// Marks the running image valid for good.
    fn confirm_image(&mut self);
    /// Heap, PSRAM and RSSI now.
    fn health(&mut self) -> Health;
    /// µs since the Unix epoch right after the wall clock synced; otherwise `None`.
    fn wall_clock(&mut self) -> Option<u64>;
}

/// What happened on the shell's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// Hub link `conn` is open.
    Connected(ConnId),
    /// A text message on `conn`.
    Text(ConnId, String),
    /// `conn` closed, failed to open, or its writer failed.
    Closed(ConnId),
    /// The frame handed to `conn` is written.
    FrameSent(ConnId),
    /// A range request ended: the body of a 206, or why not.
    OtaData(FetchId, Result<Vec<u8>, String>),
}

/// A [`Camera`] and the little state its blocking shell needs.
#[derive(Debug)]
pub struct Driver<S, O, J> {
    cam: Camera<S, O>,
    /// Standalone: the last frame's copy, which clients that missed frames get next
    /// ([`Camera::handle_frame_sent`] only ever hands back the newest frame).
    newest: Option<J>,
    next_health: Option<Instant>,
}

impl<S: Sensor, O: OtaSink, J: Clone> Driver<S, O, J> {
    /// Drives `cam`.
    pub fn new(cam: Camera<S, O>) -> Self {
        Self {
            cam,
            newest: None,
            next_health: None,
        }
    }

    /// The camera, for status and tests.
    pub fn camera(&self) -> &Camera<S, O> {
        &self.cam
    }

    /// Before waiting: health when due, then every output. Returns how long the shell may
    /// wait for an event before calling [`Driver::handle`] (at most `max`).
    pub fn poll<I: ShellIo<Jpeg = J>>(&mut self, io: &mut I, max: Duration) -> Duration {
        let now = io.now();
        if self.next_health.is_none_or(|t| now >= t) {
            self.next_health = Some(now + HEALTH_EVERY);
            self.cam.set_health(io.health());
            if let Some(unix) = io.wall_clock() {
                self.cam.set_wall_clock(now, unix);
            }
        }
        // Failover moves the index only while handling events, so it holds for this poll.
        io.set_hub(self.cam.hub_index());
        while let Some(out) = self.cam.poll_output() {
            self.output(io, out);
        }
        let wait = self
            .cam
            .poll_timeout()
            .map(|t| t.saturating_since(io.now()));
        wait.map_or(max, |w| w.min(max))
    }

    /// After the wait: the event, if one came, then whatever deadline is due.
    pub fn handle<I: ShellIo<Jpeg = J>>(&mut self, io: &mut I, event: Option<ShellEvent>) {
        let now = io.now();
        match event {
            None => {}
            Some(ShellEvent::Connected(conn)) => self.cam.handle_connected(now, conn),
            Some(ShellEvent::Text(conn, text)) => self.cam.handle_text(now, conn, &text),
            Some(ShellEvent::FrameSent(conn)) => self.frame_sent(io, conn),
            Some(ShellEvent::Closed(conn)) => {
                io.forget(conn);
                self.cam.handle_closed(now, conn);
            }
            Some(ShellEvent::OtaData(fetch, Ok(body))) => {
                self.cam.handle_ota_data(now, fetch, &body)
            }
            Some(ShellEvent::OtaData(fetch, Err(e))) => self.cam.handle_ota_failed(now, fetch, &e),
        }
        let now = io.now();
        if self.cam.poll_timeout().is_some_and(|t| t <= now) {
            self.cam.handle_timeout(now);
        }
    }

    /// A standalone client connected: admit it (keep its socket as the id) or close it with
    /// the reason.
    pub fn client_open<I: ShellIo<Jpeg = J>>(&mut self, io: &I) -> Result<ConnId, Refused> {
        self.cam.handle_client_open(io.now())
    }

    fn output<I: ShellIo<Jpeg = J>>(&mut self, io: &mut I, out: Output) {
        match out {
            Output::Connect { conn, link } => io.connect(conn, link),
            Output::Text { conn, text } => {
                let sent = io.send_text(conn, text);
                self.check(io, conn, sent);
            }
            Output::Close { conn, code, reason } => io.close(conn, code, &reason),
            Output::Capture => self.capture(io),
            // `SetBootAndReboot`: the sink's `finish` already made the new image the boot
            // partition.
            Output::Reboot | Output::SetBootAndReboot | Output::RollbackAndReboot => {
                io.close_all(CLOSE_RESTART, "camera is restarting");
                let reason = self.cam.reboot_reason().unwrap_or("unknown");
                io.restart(out == Output::RollbackAndReboot, reason);
            }
            Output::OtaFetch {
                fetch,
                url,
                offset,
                len,
            } => io.ota_fetch(fetch, &url, offset, len),
            Output::ConfirmImage => io.confirm_image(),
        }
    }

    fn capture<I: ShellIo<Jpeg = J>>(&mut self, io: &mut I) {
        let Some((info, frame)) = io.capture() else {
            return self.cam.handle_capture_failed(io.now());
        };
        let FrameDecision::Send(send) = self.cam.handle_frame(io.now(), &info) else {
            return; // dropping `frame` releases it
        };
        let Some(header) = send.header else {
            // Standalone: one copy for every client; the frame buffer goes back at once.
            let jpeg = io.share(frame);
            for &conn in send.targets.as_slice() {
                let sent = io.send_jpeg(conn, jpeg.clone());
                self.check(io, conn, sent);
            }
            self.newest = Some(jpeg);
            return;
        };
        // The hub's stream link: sent in place, synchronously (the core paces this link).
        for &conn in send.targets.as_slice() {
            let sent = io.send_frame(conn, &header, &frame);
            if sent.is_ok() {
                self.frame_sent(io, conn);
            }
            self.check(io, conn, sent);
        }
    }

    /// `conn` took its frame; a client that missed frames meanwhile gets the newest now.
    fn frame_sent<I: ShellIo<Jpeg = J>>(&mut self, io: &mut I, conn: ConnId) {
        let owed = self.cam.handle_frame_sent(io.now(), conn);
        if let (Some(_), Some(jpeg)) = (owed, &self.newest) {
            let sent = io.send_jpeg(conn, jpeg.clone());
            self.check(io, conn, sent);
        }
    }

    /// A failed send means the socket is gone: close it and tell the camera.
    fn check<I: ShellIo<Jpeg = J>>(
        &mut self,
        io: &mut I,
        conn: ConnId,
        sent: Result<(), SendFailed>,
    ) {
        if sent.is_err() {
            io.close(conn, CLOSE_INTERNAL_ERROR, "send failed");
            self.cam.handle_closed(io.now(), conn);
        }
    }
}

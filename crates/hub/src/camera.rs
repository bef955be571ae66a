//! One camera as the hub sees it: identity, link state, settings, counters, and the
//! latest-frame slot that viewers read from.
//!
//! A `Camera` outlives its connections: when a camera disconnects and comes back, viewers
//! that were watching it keep their sockets and simply receive frames again. This module
//! must never block or await on anything a viewer controls: ingest only *replaces* the
//! latest frame and never waits for anyone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use espcam_proto::stream::FrameFlags;
use espcam_proto::{Ack, CameraId, CommandMsg, FrameLimits, Settings, Telemetry, decode_frame};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::now_us;

/// How a camera reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The camera connects to the hub (`/ws/camera` + `/ws/stream`).
    Push,
    /// The hub connects to a standalone (seed-002) camera (`espcam serve --pull`).
    Pull,
}

/// One validated frame, shared by every viewer. Cloning the `Arc` is the only per-viewer
/// cost: the JPEG bytes are a zero-copy slice of the message the camera sent.
#[derive(Debug)]
pub struct Frame {
    /// The bare JPEG (SOI..EOI), sliced out of the received message.
    pub jpeg: Bytes,
    /// The camera's sequence number (the hub's own count for bare JPEGs).
    pub seq: u32,
    /// Capture time from the camera's header, µs since the Unix epoch; `None` for bare
    /// JPEGs or when the camera said its clock is not synced.
    pub captured_us: Option<u64>,
    /// When the hub received the message, µs since the Unix epoch.
    pub received_us: u64,
    /// Width from the JPEG itself.
    pub width: u16,
    /// Height from the JPEG itself.
    pub height: u16,
    /// The `?meta=1` JSON, built once by the first viewer that wants it.
    pub(crate) meta: OnceLock<String>,
}

impl Frame {
    /// The `?meta=1` text message that precedes this frame on `/ws/view` (built once per
    /// frame, shared by every viewer).
    pub fn meta_json(&self) -> &str {
        self.meta.get_or_init(|| self.build_meta())
    }

    fn build_meta(&self) -> String {
        serde_json::json!({
            "type": "frame",
            "seq": self.seq,
            "captured_us": self.captured_us,
            "received_us": self.received_us,
            "width": self.width,
            "height": self.height,
            "bytes": self.jpeg.len(),
        })
        .to_string()
    }
}

/// Counters updated on hot paths without a lock.
#[derive(Debug, Default)]
pub struct Counters {
    /// Valid frames received.
    pub frames_in: AtomicU64,
    /// Messages that failed the frame checks and were dropped.
    pub frames_dropped: AtomicU64,
    /// Frames handed to viewers (WebSocket + MJPEG), summed over viewers.
    pub frames_out: AtomicU64,
    /// Frames a slow viewer never got because a newer one replaced them.
    pub frames_skipped: AtomicU64,
    /// Bytes of valid frames received (JPEG bytes).
    pub bytes_in: AtomicU64,
    /// JPEG bytes delivered to viewers.
    pub bytes_out: AtomicU64,
    /// Connected viewers (WebSocket + MJPEG).
    pub viewers: AtomicUsize,
}

/// What the hub holds for a connected control link.
#[derive(Debug)]
pub(crate) struct Link {
    /// Connection number; a task only tears down the link if it is still the current one.
    pub(crate) conn: u64,
    /// Commands to write to the camera. Bounded so a camera that stops reading cannot make
    /// the hub queue commands without limit; senders get a clear error instead.
    pub(crate) commands: mpsc::Sender<CommandMsg>,
    /// Dropping this tells the link's task it was replaced by a newer connection.
    pub(crate) _kick: oneshot::Sender<()>,
}

/// Mutable state behind one short-held lock. Never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) control: Option<Link>,
    /// The stream connection's kick switch and number (same purpose as in [`Link`]).
    pub(crate) stream: Option<(u64, oneshot::Sender<()>)>,
    pub(crate) sensor: Option<String>,
    pub(crate) firmware: Option<String>,
    pub(crate) settings: Option<Settings>,
    pub(crate) telemetry: Option<Telemetry>,
    /// Commands sent and not yet acked, by the hub's correlation id.
    pub(crate) pending: HashMap<u32, oneshot::Sender<Ack>>,
    pub(crate) next_cmd_id: u32,
    /// Frame count for bare JPEGs, which carry no sequence number.
    pub(crate) bare_seq: u32,
    /// Rates computed once a second by the hub's ticker.
    pub(crate) fps_in: f32,
    pub(crate) fps_out: f32,
    pub(crate) last_rate: (u64, u64),
    pub(crate) first_error_logged: bool,
    /// When the last control or stream connection ended, µs since the Unix epoch (0 while
    /// none has): a full registry forgets the camera that left longest ago first.
    pub(crate) left_us: u64,
}

/// A camera known to the hub.
#[derive(Debug)]
pub struct Camera {
    /// The camera's id.
    pub id: CameraId,
    /// How it connects.
    pub source: Source,
    /// The latest frame. A `watch` channel is exactly "newest value + wake the readers":
    /// ingest replaces the value and never waits; each viewer takes the newest one when it is
    /// ready, so a slow viewer skips frames instead of queueing them, and every viewer holds
    /// at most the frame it is sending plus the shared newest one.
    pub(crate) frames: watch::Sender<Option<Arc<Frame>>>,
    /// Counters read by the API and metrics.
    pub counters: Counters,
    pub(crate) state: Mutex<State>,
}

/// Outcome of feeding one stream message to [`Camera::ingest`].
#[derive(Debug)]
pub enum Ingest {
    /// Published to viewers.
    Published,
    /// Failed the protocol checks; counted and dropped.
    Dropped(espcam_proto::FrameError),
}

impl Camera {
    pub(crate) fn new(id: CameraId, source: Source) -> Self {
        Self {
            id,
            source,
            frames: watch::Sender::new(None),
            counters: Counters::default(),
            state: Mutex::new(State::default()),
        }
    }

    /// Locks the state. A panic elsewhere while holding it leaves plain data behind, so a
    /// poisoned lock is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the control link is up.
    pub fn online(&self) -> bool {
        self.lock().control.is_some()
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.frames.borrow().clone()
    }

    /// A receiver that wakes on every new frame.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Frame>>> {
        self.frames.subscribe()
    }

    /// Checks one stream message and, if it is a valid frame, makes it the newest frame.
    /// Never waits for viewers.
    pub fn ingest(&self, msg: Bytes, limits: &FrameLimits) -> Ingest {
        let received_us = now_us();
        let (header, start, len, width, height) = match decode_frame(&msg, limits) {
            Ok(f) => {
                // `jpeg` borrows from `msg`; its offset lets us slice `msg` without a copy.
                let start = f.jpeg.as_ptr() as usize - msg.as_ptr() as usize;
                (f.header, start, f.jpeg.len(), f.width, f.height)
            }
            Err(e) => {
                self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                return Ingest::Dropped(e);
            }
        };
        let (seq, captured_us) = match header {
            Some(h) => {
                let synced = !h.flags.has(FrameFlags::CLOCK_UNSYNCED);
                (h.sequence, synced.then_some(h.timestamp_us))
            }
            None => {
                let mut st = self.lock();
                st.bare_seq = st.bare_seq.wrapping_add(1);
                (st.bare_seq, None)
            }
        };
        let frame = Frame {
            jpeg: msg.slice(start..start + len),
            seq,
            captured_us,
            received_us,
            width,
            height,
            meta: OnceLock::new(),
        };
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_in
            .fetch_add(len as u64, Ordering::Relaxed);
        self.frames.send_replace(Some(Arc::new(frame)));
        Ingest::Published
    }

    /// Called by ingest after publishing a frame: when anyone is watching, yields once so
    /// the viewers just woken run before the next message is read. Without it, a camera
    /// whose frames arrive in bursts (several per read) has each burst read completely
    /// first, and every viewer skips all but the burst's last frame. This is a single
    /// scheduler yield, never a wait on a viewer.
    pub(crate) async fn let_viewers_run(&self) {
        if self.counters.viewers.load(Ordering::Relaxed) > 0 {
            tokio::task::yield_now().await;
        }
    }

    /// The dimensions frames should have under the settings in force, when known.
    pub(crate) fn expected_dims(&self) -> Option<(u16, u16)> {
        self.lock()
            .settings
            .map(|s| (s.resolution.width(), s.resolution.height()))
    }

    /// Logs a dropped frame: the first one on this camera at `warn`, later ones at `debug`,
    /// so a broken camera cannot flood the log.
    pub(crate) fn log_dropped(&self, e: &espcam_proto::FrameError) {
        let first = !std::mem::replace(&mut self.lock().first_error_logged, true);
        if first {
            tracing::warn!(
                "camera {}: invalid frame dropped: {e} (further ones logged at debug level)",
                self.id
            );
        } else {
            tracing::debug!("camera {}: invalid frame dropped: {e}", self.id);
        }
    }

    /// Snapshot of everything the API reports about this camera.
    pub fn info(&self) -> CameraInfo {
        let st = self.lock();
        let latest = self.frames.borrow();
        let c = &self.counters;
        CameraInfo {
            id: self.id.clone(),
            online: st.control.is_some(),
            source: self.source,
            sensor: st.sensor.clone(),
            firmware: st.firmware.clone(),
            settings: st.settings,
            telemetry: st.telemetry.clone(),
            width: latest.as_ref().map(|f| f.width),
            height: latest.as_ref().map(|f| f.height),
            fps_in: round1(st.fps_in),
            fps_out: round1(st.fps_out),
            viewers: c.viewers.load(Ordering::Relaxed),
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_out: c.frames_out.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            last_frame_us: latest.as_ref().map(|f| f.received_us),
        }
    }

    /// Recomputes `fps_in`/`fps_out` over the last `secs` seconds. Called by the ticker.
    pub(crate) fn update_rates(&self, secs: f32) {
        let frames_in = self.counters.frames_in.load(Ordering::Relaxed);
        let frames_out = self.counters.frames_out.load(Ordering::Relaxed);
        let mut st = self.lock();
        let (prev_in, prev_out) = st.last_rate;
        st.fps_in = frames_in.saturating_sub(prev_in) as f32 / secs;
        st.fps_out = frames_out.saturating_sub(prev_out) as f32 / secs;
        st.last_rate = (frames_in, frames_out);
    }

    /// Resolves a pending command with the camera's ack and records the settings in force.
    /// Returns whether the settings changed.
    pub(crate) fn on_ack(&self, ack: Ack) -> bool {
        let mut st = self.lock();
        let changed = st.settings != Some(ack.settings);
        st.settings = Some(ack.settings);
        if let Some(id) = ack.id
            && let Some(tx) = st.pending.remove(&id)
        {
            // The waiter may have timed out and gone; nothing to do then.
            let _ = tx.send(ack);
        }
        changed
    }
}

fn round1(x: f32) -> f32 {
    (x * 10.0).round() / 10.0
}

/// What `GET /api/cameras/{id}` reports (see docs/API.md).
#[derive(Debug, Clone, Serialize)]
pub struct CameraInfo {
    /// Camera id.
    pub id: CameraId,
    /// Whether the control link is up.
    pub online: bool,
    /// `push` or `pull`.
    pub source: Source,
    /// Sensor model from the camera's hello.
    pub sensor: Option<String>,
    /// Firmware from the camera's hello.
    pub firmware: Option<String>,
    /// Settings in force, when known.
    pub settings: Option<Settings>,
    /// Latest telemetry, when any.
    pub telemetry: Option<Telemetry>,
    /// Width of the newest frame.
    pub width: Option<u16>,
    /// Height of the newest frame.
    pub height: Option<u16>,
    /// Frames per second received.
    pub fps_in: f32,
    /// Frames per second delivered, summed over viewers.
    pub fps_out: f32,
    /// Connected viewers.
    pub viewers: usize,
    /// Valid frames received.
    pub frames_in: u64,
    /// Frames delivered, summed over viewers.
    pub frames_out: u64,
    /// Invalid frames dropped.
    pub frames_dropped: u64,
    /// JPEG bytes received.
    pub bytes_in: u64,
    /// JPEG bytes delivered.
    pub bytes_out: u64,
    /// When the newest frame arrived, µs since the Unix epoch.
    pub last_frame_us: Option<u64>,
}

/// Counts a viewer for as long as it lives.
#[derive(Debug)]
pub(crate) struct ViewerGuard(pub(crate) Arc<Camera>);

impl ViewerGuard {
    pub(crate) fn new(camera: Arc<Camera>) -> Self {
        camera.counters.viewers.fetch_add(1, Ordering::Relaxed);
        Self(camera)
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.counters.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

//! One camera as the hub sees it: identity, link state, settings, counters, telemetry
//! history, and the latest-frame slot and taps that viewers and internal consumers read.
//!
//! A `Camera` outlives its connections: when a camera disconnects and comes back, viewers
//! that were watching it keep their sockets and simply receive frames again. Its mutable
//! state is private to the state layer (`pub(super)`): `ingest` and `http` change it only
//! through the methods here and on [`crate::state::Hub`]. This module must never block or
//! await on anything a viewer controls: ingest only *replaces* the latest frame and offers
//! it to taps without waiting for anyone.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use espcam_proto::stream::FrameFlags;
use espcam_proto::{
    Ack, CameraId, FrameError, FrameLimits, HubMsg, Settings, Telemetry, decode_frame,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::state::clock::now_us;
use crate::state::tap::{DropPolicy, EverySender, FrameTap};

/// How a camera reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The camera connects to the hub (`/ws/camera` + `/ws/stream`).
    Push,
    /// The hub connects to a standalone (seed-002) camera (`espcam serve --pull`).
    Pull,
}

/// A message is kept as a zero-copy slice only when the JPEG is nearly all of it; past this
/// much surrounding data the JPEG is copied out, so a camera padding its messages cannot make
/// the hub hold megabytes for a small picture.
const MAX_KEPT_PADDING: usize = 1024;

/// One validated frame, shared by every viewer and tap. Cloning the `Arc` is the only
/// per-consumer cost.
#[derive(Debug)]
pub struct Frame {
    /// The bare JPEG (SOI..EOI): a slice of the received message, or a copy when the message
    /// carried more than a header around it.
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
    /// The hub's count of valid frames from this camera, this one included (taps use the
    /// gaps to count what they missed).
    pub index: u64,
    /// A per-frame text an output layer builds once and shares between its consumers (the
    /// viewer socket's `?meta=1` message). Opaque here.
    text: OnceLock<String>,
}

impl Frame {
    /// A frame built by hand (tests, and consumers replaying recorded frames).
    pub fn new(jpeg: Bytes, seq: u32, captured_us: Option<u64>, received_us: u64) -> Self {
        let (width, height) =
            espcam_proto::jpeg::scan(&jpeg).map_or((0, 0), |i| (i.width, i.height));
        Self {
            jpeg,
            seq,
            captured_us,
            received_us,
            width,
            height,
            index: 0,
            text: OnceLock::new(),
        }
    }

    /// The frame's shared text, built by `build` the first time it is asked for.
    pub fn cached_text(&self, build: impl FnOnce(&Frame) -> String) -> &str {
        self.text.get_or_init(|| build(self))
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
pub(super) struct Link {
    /// Connection number; a task only tears down the link if it is still the current one.
    pub(super) conn: u64,
    /// Commands to write to the camera. Bounded so a camera that stops reading cannot make
    /// the hub queue commands without limit; senders get a clear error instead.
    pub(super) commands: mpsc::Sender<HubMsg>,
    /// Dropping this tells the link's task it was replaced by a newer connection.
    pub(super) _kick: oneshot::Sender<()>,
}

/// One telemetry-history sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// When, ms since the Unix epoch.
    pub t_ms: u64,
    /// Frames per second received by the hub.
    pub fps: f32,
    /// Kilobits per second of JPEG received.
    pub kbps: f32,
    /// Free heap reported by the camera, bytes.
    pub heap_free: Option<u32>,
    /// Free PSRAM reported by the camera, bytes.
    pub psram_free: Option<u32>,
    /// Wi-Fi signal, dBm.
    pub rssi: Option<i16>,
}

/// Samples kept at one per second (one hour).
pub const HISTORY_FINE: usize = 3600;
/// Samples kept at one per minute (one day), each the mean of a minute of fine samples.
pub const HISTORY_COARSE: usize = 1440;

/// The last hour at 1 s and the last day at 1 min.
#[derive(Debug, Default)]
pub(super) struct History {
    fine: VecDeque<Sample>,
    coarse: VecDeque<Sample>,
    /// Fine samples not yet folded into a coarse one.
    pending: Vec<Sample>,
}

impl History {
    fn push(&mut self, s: Sample) {
        if self.fine.len() == HISTORY_FINE {
            self.fine.pop_front();
        }
        self.fine.push_back(s);
        self.pending.push(s);
        if self.pending.len() >= 60 {
            let n = self.pending.len() as f32;
            let mean = |f: fn(&Sample) -> f32| self.pending.iter().map(f).sum::<f32>() / n;
            let last = self.pending[self.pending.len() - 1];
            let coarse = Sample {
                t_ms: last.t_ms,
                fps: mean(|s| s.fps),
                kbps: mean(|s| s.kbps),
                heap_free: last.heap_free,
                psram_free: last.psram_free,
                rssi: last.rssi,
            };
            self.pending.clear();
            if self.coarse.len() == HISTORY_COARSE {
                self.coarse.pop_front();
            }
            self.coarse.push_back(coarse);
        }
    }
}

/// Mutable state behind one short-held lock. Never held across an `.await`.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) control: Option<Link>,
    /// The stream connection's kick switch and number (same purpose as in [`Link`]).
    pub(super) stream: Option<(u64, oneshot::Sender<()>)>,
    pub(super) sensor: Option<String>,
    pub(super) firmware: Option<String>,
    /// Board from the hello (which firmware images fit), and the latest firmware update.
    pub(super) board: Option<String>,
    pub(super) ota: Option<super::ota::OtaStatus>,
    pub(super) settings: Option<Settings>,
    pub(super) telemetry: Option<Telemetry>,
    /// Commands sent and not yet acked, by the hub's correlation id.
    pub(super) pending: HashMap<u32, oneshot::Sender<Ack>>,
    pub(super) next_cmd_id: u32,
    /// Frame count for bare JPEGs, which carry no sequence number.
    pub(super) bare_seq: u32,
    /// Rates computed once a second by the hub's ticker.
    pub(super) fps_in: f32,
    pub(super) fps_out: f32,
    pub(super) kbps_in: f32,
    pub(super) last_rate: (u64, u64, u64),
    pub(super) first_error_logged: bool,
    /// When the last control or stream connection ended, µs since the Unix epoch (0 while
    /// none has): a full registry forgets the camera that left longest ago first.
    pub(super) left_us: u64,
    pub(super) history: History,
}

/// A camera known to the hub.
#[derive(Debug)]
pub struct Camera {
    /// The camera's id.
    pub id: CameraId,
    /// How it connects.
    pub source: Source,
    /// The latest frame. A `watch` channel is exactly "newest value + wake the readers":
    /// ingest replaces the value and never waits; each `Newest` tap takes the newest one when
    /// it is ready, so a slow viewer skips frames instead of queueing them.
    frames: watch::Sender<Option<Arc<Frame>>>,
    /// `Every` taps (recorders): offered each frame without waiting.
    every: Mutex<Vec<EverySender>>,
    /// Counters read by the API and metrics.
    pub counters: Counters,
    pub(super) state: Mutex<State>,
    /// Its frames are relayed from another hub, which analyses and records them itself.
    relayed: AtomicBool,
}

/// Outcome of feeding one stream message to [`Camera::ingest`].
#[derive(Debug)]
pub enum Ingest {
    /// Published to viewers and taps.
    Published,
    /// Failed the protocol checks; counted and dropped.
    Dropped(FrameError),
}

impl Camera {
    pub(super) fn new(id: CameraId, source: Source) -> Self {
        Self {
            id,
            source,
            frames: watch::Sender::new(None),
            every: Mutex::new(Vec::new()),
            counters: Counters::default(),
            state: Mutex::new(State::default()),
            relayed: AtomicBool::new(false),
        }
    }

    /// Marks the camera's frames as relayed from another hub (cluster mode) or not: the
    /// hub's own motion analysis leaves relayed cameras to the hub that holds them.
    pub fn set_relayed(&self, relayed: bool) {
        self.relayed.store(relayed, Ordering::Relaxed);
    }

    /// Whether the camera's frames are relayed from another hub.
    pub fn relayed(&self) -> bool {
        self.relayed.load(Ordering::Relaxed)
    }

    /// Locks the state. A panic elsewhere while holding it leaves plain data behind, so a
    /// poisoned lock is still usable.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the control link is up.
    pub fn online(&self) -> bool {
        self.lock().control.is_some()
    }

    /// The settings in force, when known.
    pub fn settings(&self) -> Option<Settings> {
        self.lock().settings
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.frames.borrow().clone()
    }

    /// Follows this camera's frames under `policy` (see [`crate::state::tap`]).
    pub fn tap(&self, policy: DropPolicy) -> FrameTap {
        match policy {
            DropPolicy::Newest => FrameTap::newest(self.frames.subscribe()),
            DropPolicy::Every { capacity } => {
                let (tx, rx) = mpsc::channel(capacity.max(1));
                self.every
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(EverySender(tx));
                FrameTap::every(rx)
            }
        }
    }

    /// A receiver that wakes on every new frame (for waits on "a frame newer than X").
    pub fn watch_frames(&self) -> watch::Receiver<Option<Arc<Frame>>> {
        self.frames.subscribe()
    }

    /// Checks one stream message and, if it is a valid frame, makes it the newest frame and
    /// offers it to every tap. Never waits for anyone.
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
        let jpeg = if msg.len() - len > MAX_KEPT_PADDING {
            Bytes::copy_from_slice(&msg[start..start + len])
        } else {
            msg.slice(start..start + len)
        };
        let index = self.counters.frames_in.fetch_add(1, Ordering::Relaxed) + 1;
        self.counters
            .bytes_in
            .fetch_add(len as u64, Ordering::Relaxed);
        let frame = Arc::new(Frame {
            jpeg,
            seq,
            captured_us,
            received_us,
            width,
            height,
            index,
            text: OnceLock::new(),
        });
        {
            let mut every = self.every.lock().unwrap_or_else(|e| e.into_inner());
            if !every.is_empty() {
                every.retain(|tap| tap.offer(&frame));
            }
        }
        self.frames.send_replace(Some(frame));
        Ingest::Published
    }

    /// Called by ingest after publishing a frame: when anyone is watching, yields once so
    /// the viewers just woken run before the next message is read. Without it, a camera
    /// whose frames arrive in bursts (several per read) has each burst read completely
    /// first, and every viewer skips all but the burst's last frame. This is a single
    /// scheduler yield, never a wait on a viewer.
    pub async fn let_viewers_run(&self) {
        if self.counters.viewers.load(Ordering::Relaxed) > 0 {
            tokio::task::yield_now().await;
        }
    }

    /// The dimensions frames should have under the settings in force, when known.
    pub fn expected_dims(&self) -> Option<(u16, u16)> {
        self.lock()
            .settings
            .map(|s| (s.resolution.width(), s.resolution.height()))
    }

    /// Whether this is the first invalid frame on this camera (so it is logged at `warn`;
    /// later ones at `debug`, so a broken camera cannot flood the log).
    pub fn first_dropped(&self) -> bool {
        !std::mem::replace(&mut self.lock().first_error_logged, true)
    }

    /// Records the latest telemetry.
    pub(super) fn set_telemetry(&self, t: Telemetry) {
        self.lock().telemetry = Some(t);
    }

    /// Records what a standalone camera said about itself in its welcome.
    pub fn set_firmware(&self, firmware: String) {
        self.lock().firmware = Some(firmware);
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
            board: st.board.clone(),
            ota: st.ota.clone(),
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

    /// The telemetry history: the last hour at 1 s (`fine`) and the last day at 1 min
    /// (`coarse`), oldest first.
    pub fn history(&self) -> (Vec<Sample>, Vec<Sample>) {
        let st = self.lock();
        (
            st.history.fine.iter().copied().collect(),
            st.history.coarse.iter().copied().collect(),
        )
    }

    /// Recomputes rates over the last `secs` seconds and, while online, records a history
    /// sample. Called by the ticker.
    pub(super) fn update_rates(&self, secs: f32, now_ms: u64) {
        let frames_in = self.counters.frames_in.load(Ordering::Relaxed);
        let frames_out = self.counters.frames_out.load(Ordering::Relaxed);
        let bytes_in = self.counters.bytes_in.load(Ordering::Relaxed);
        let mut st = self.lock();
        let (prev_in, prev_out, prev_bytes) = st.last_rate;
        st.fps_in = frames_in.saturating_sub(prev_in) as f32 / secs;
        st.fps_out = frames_out.saturating_sub(prev_out) as f32 / secs;
        st.kbps_in = bytes_in.saturating_sub(prev_bytes) as f32 * 8.0 / 1000.0 / secs;
        st.last_rate = (frames_in, frames_out, bytes_in);
        if st.control.is_some() {
            let t = st.telemetry.as_ref();
            let sample = Sample {
                t_ms: now_ms,
                fps: round1(st.fps_in),
                kbps: st.kbps_in.round(),
                heap_free: t.map(|t| t.heap_free),
                psram_free: t.map(|t| t.psram_free),
                rssi: t.and_then(|t| t.rssi),
            };
            st.history.push(sample);
        }
    }

    /// Resolves a pending command with the camera's ack and records the settings in force.
    /// Returns whether the settings changed.
    pub(super) fn on_ack(&self, ack: Ack) -> bool {
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

    /// Counts a viewer for as long as the guard lives.
    pub fn viewer_guard(self: &Arc<Self>) -> ViewerGuard {
        self.counters.viewers.fetch_add(1, Ordering::Relaxed);
        ViewerGuard(self.clone())
    }

    /// Counts a frame delivered to a viewer (and the frames it skipped to get it).
    pub fn count_delivered(&self, bytes: usize, skipped: u64) {
        let c = &self.counters;
        c.frames_out.fetch_add(1, Ordering::Relaxed);
        c.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        if skipped > 0 {
            c.frames_skipped.fetch_add(skipped, Ordering::Relaxed);
        }
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
    /// Board from the camera's hello (which firmware images fit it).
    pub board: Option<String>,
    /// The latest firmware update: progress, or how it ended.
    pub ota: Option<super::ota::OtaStatus>,
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

/// Counts a viewer for as long as it lives ([`Camera::viewer_guard`]).
#[derive(Debug)]
pub struct ViewerGuard(Arc<Camera>);

impl ViewerGuard {
    /// The camera being watched.
    pub fn camera(&self) -> &Arc<Camera> {
        &self.0
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.counters.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        // The smallest structure the frame checks accept: SOI, SOF0 with the size, SOS,
        // one entropy byte, EOI.
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8];
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[1, 1, 0x11, 0]);
        v.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x12, 0xFF, 0xD9]);
        v
    }

    #[tokio::test]
    async fn taps_follow_their_policy_and_count_what_they_missed() {
        let cam = Camera::new(CameraId::new("c").unwrap(), Source::Push);
        let limits = FrameLimits::default();
        let mut newest = cam.tap(DropPolicy::Newest);
        let mut every = cam.tap(DropPolicy::Every { capacity: 3 });
        for _ in 0..5 {
            assert!(matches!(
                cam.ingest(Bytes::from(jpeg(8, 8)), &limits),
                Ingest::Published
            ));
        }
        // Newest: only the fifth frame; the first one it sees counts no miss.
        let t = newest.next().await.unwrap();
        assert_eq!((t.frame.index, t.missed), (5, 0));
        // Every: frames 1..=3 queued, 4 and 5 did not fit.
        for i in 1..=3 {
            let t = every.next().await.unwrap();
            assert_eq!((t.frame.index, t.missed), (i, 0));
        }
        cam.ingest(Bytes::from(jpeg(8, 8)), &limits);
        let t = every.next().await.unwrap();
        assert_eq!((t.frame.index, t.missed), (6, 2));
        let t = newest.next().await.unwrap();
        assert_eq!((t.frame.index, t.missed), (6, 0));
        // The same bytes for both: no copy.
        assert_eq!(t.frame.jpeg.as_ptr(), cam.latest().unwrap().jpeg.as_ptr());
        // A dropped tap is forgotten by ingest.
        drop(every);
        cam.ingest(Bytes::from(jpeg(8, 8)), &limits);
        assert!(cam.every.lock().unwrap().is_empty());
    }

    #[test]
    fn padding_around_a_jpeg_is_not_kept() {
        let cam = Camera::new(CameraId::new("c").unwrap(), Source::Push);
        let limits = FrameLimits::default();
        let j = jpeg(8, 8);
        let mut padded = j.clone();
        padded.extend(std::iter::repeat_n(0u8, 100_000));
        cam.ingest(Bytes::from(padded), &limits);
        let f = cam.latest().unwrap();
        assert_eq!(&f.jpeg[..], &j[..]);
        // A copy of exactly the JPEG: its allocation is not the 100 KB message.
        let exact = Bytes::from(j.clone());
        let ptr = exact.as_ptr();
        cam.ingest(exact, &limits);
        assert_eq!(cam.latest().unwrap().jpeg.as_ptr(), ptr);
    }

    #[test]
    fn history_keeps_an_hour_fine_and_folds_minutes() {
        let mut h = History::default();
        for i in 0..(HISTORY_FINE as u64 + 120) {
            h.push(Sample {
                t_ms: i * 1000,
                fps: (i % 2) as f32 * 30.0,
                kbps: 100.0,
                heap_free: None,
                psram_free: None,
                rssi: None,
            });
        }
        assert_eq!(h.fine.len(), HISTORY_FINE);
        assert_eq!(h.fine.front().unwrap().t_ms, 120_000);
        assert_eq!(h.coarse.len(), (HISTORY_FINE + 120) / 60);
        assert_eq!(h.coarse[0].fps, 15.0);
        assert_eq!(h.coarse[0].t_ms, 59_000);
    }
}

//! Recording: every camera's frames to disk through `espcam-record`, per camera in the mode
//! its owner chose — `off`, `continuous`, or `events` (while an event is active, with a
//! pre-roll from memory and a post-roll) — plus manual recordings (`POST .../record`).
//!
//! A service beside `ingest` and `http`, built on `state` only: each camera's frames are
//! followed through a [`DropPolicy::Every`] tap (so every frame is seen or counted as missed)
//! that a task per camera hands to one of a few dedicated writer threads (a camera always to
//! the same one), because an fsync blocks the thread that calls it for milliseconds to a
//! second: the async runtime, ingest and viewers never wait for the disk. The writer thread
//! drains its taps every [`BATCH`] (100 ms) without being woken per frame, decides per frame
//! (modes, events, pre-roll kept as shared `Arc<Frame>`s, no copy) and appends each camera's
//! new frames in one `writev`. A tap holds at most [`TAP_CAPACITY`] frames; when the thread
//! falls further behind (a slow sync), ingest counts the frames as missed instead of
//! queueing them without bound. A write error (full disk, unwritable directory) stops recording for
//! that camera, is reported in the log (once, then at most once a minute while it lasts), the
//! API and the metrics; a full disk wakes retention at once (its free-disk floor makes
//! room); recording resumes by itself once a write succeeds again; what was durable stays
//! playable throughout; live view is not affected.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use espcam_proto::CameraId;
use espcam_record::{Recordings, Writer};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

pub use crate::config::{Mode, RecordingConfig};
use crate::state::Hub;
use crate::state::camera::{Camera, Frame};
use crate::state::clock::now_us;
use crate::state::tap::{DropPolicy, FrameTap, TapClosed};

/// Writer threads. A sync blocks its thread for as long as the disk takes (tens to hundreds
/// of ms on a loaded disk), and one camera needs one a second: with one thread, 50 cameras
/// on a slow disk queued faster than the syncs completed. Cameras are spread over the
/// threads by their id, so one camera's frames stay in order on one thread, and the
/// filesystem runs the threads' syncs side by side.
const WRITERS: usize = 4;
/// Thread names (at most 15 bytes, Linux's limit, so `/proc/PID/task/*/comm` shows them
/// whole: the benchmark finds the writers' CPU time by this prefix).
const WRITER_NAMES: [&str; WRITERS] = [
    "rec-writer-0",
    "rec-writer-1",
    "rec-writer-2",
    "rec-writer-3",
];
/// Jobs queued for each writer thread: cameras to follow, the timelapse's frames (counted
/// as missed beyond it), closes.
const QUEUE: usize = 512;
/// Frames a camera's tap holds before ingest counts misses: about two seconds at 30 fps,
/// twenty drains.
const TAP_CAPACITY: usize = 64;
/// After a failed write, how long a camera waits before trying again.
const ERROR_PAUSE_US: u64 = 5_000_000;
/// While a camera's recording keeps failing, at most one log line per this interval.
const ERROR_LOG_EVERY_US: u64 = 60_000_000;

/// What the API shows of one camera's recording.
#[derive(Debug, Clone, Serialize)]
pub struct CameraRecording {
    /// The mode in force.
    pub mode: Mode,
    /// Whether a manual recording is running.
    pub manual: bool,
    /// Whether an event is active (events mode).
    pub event_active: bool,
    /// Whether frames are being recorded right now.
    pub recording: bool,
    /// The last write error, while recording is stopped by it.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct CameraCtl {
    mode: Mode,
    manual: bool,
    /// Events mode: record until this time (µs); extended by every event, then by the
    /// post-roll.
    event_until_us: u64,
    event_active: bool,
    recording: bool,
    error: Option<String>,
    /// Don't try writing again before this time after an error.
    paused_until_us: u64,
    /// When the last error was logged, and the failures since.
    logged_us: u64,
    unlogged: u64,
    /// Whether the current failure was logged (then its end is logged too).
    episode_logged: bool,
}

enum Job {
    /// A camera to follow: the writer thread drains its tap from now on.
    Follow(Box<Follower>),
    /// One frame to record whatever the modes say (the timelapse's).
    Frame(CameraId, Arc<Frame>),
    /// Drain the camera's tap a last time, close its segment and stop following it.
    Close(CameraId),
}

/// A camera followed by a writer thread: its tap, drained every [`BATCH`], its pre-roll
/// and whether it was recording.
struct Follower {
    id: CameraId,
    tap: FrameTap,
    /// Dropped with the follower: the camera's follow task, waiting for that, then ends.
    _alive: oneshot::Sender<()>,
    /// Events mode: the pre-roll, shared frames (no copy).
    ring: VecDeque<Arc<Frame>>,
    was_recording: bool,
    /// The frames of this drain to record (kept to reuse its allocation).
    batch: Vec<Arc<Frame>>,
}

/// How often a writer thread drains its cameras' taps, appending each camera's new frames
/// in one `writev`. A frame waits in its tap (shared, not copied) for at most this long
/// before it reaches the page cache; it becomes durable at the next group commit anyway,
/// up to a second later. Draining on a timer instead of being woken per frame is what
/// takes the hand-off's cost per frame to almost nothing (`docs/BENCHMARKS.md`).
const BATCH: Duration = Duration::from_millis(100);

/// Handle to the recorder. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Taken out (and so closed) when the hub stops, like the snapshot store, so a new hub
    /// can open the same data directory.
    recordings: Mutex<Option<Recordings>>,
    config: RecordingConfig,
    cameras: Mutex<HashMap<CameraId, CameraCtl>>,
    /// The writer threads; stopping them drains their queues and closes every segment.
    writers: std::sync::OnceLock<Vec<crate::worker::Worker<Job>>>,
    /// Frames the queue had no room for, per camera (added to the writer's count).
    missed: Mutex<HashMap<CameraId, u64>>,
    /// Wakes retention at once when a write found the disk full.
    retention_now: tokio::sync::Notify,
}

impl Recorder {
    /// Starts the recorder for `hub`: the writer thread, one task per camera (present and
    /// future), the commit ticker and retention.
    pub fn start(hub: &Hub, recordings: Recordings, config: RecordingConfig) -> Self {
        let inner = Arc::new(Inner {
            recordings: Mutex::new(Some(recordings.clone())),
            config,
            cameras: Mutex::new(HashMap::new()),
            writers: std::sync::OnceLock::new(),
            missed: Mutex::new(HashMap::new()),
            retention_now: tokio::sync::Notify::new(),
        });
        let rec = Recorder(inner);
        let writers = WRITER_NAMES
            .iter()
            .map(|name| {
                let ctl = Ctl(rec.0.clone());
                let recordings = recordings.clone();
                crate::worker::Worker::spawn(name, QUEUE, move |rx| {
                    writer_thread(&ctl, &recordings, rx)
                })
            })
            .collect();
        let _ = rec.0.writers.set(writers);
        tokio::spawn(rec.clone().supervise(hub.clone()));
        tokio::spawn(rec.clone().retention(hub.shutdown_signal()));
        rec
    }

    /// The recordings library (for playback, listing and export); `None` once stopped.
    pub fn recordings(&self) -> Option<Recordings> {
        self.0
            .recordings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops recording: every queued frame is written, every segment closed, the library
    /// closed. Waits for the writer thread (blocking; call from `spawn_blocking`).
    pub fn stop(&self) {
        for w in self.0.writers.get().into_iter().flatten() {
            w.stop();
        }
        self.0
            .recordings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Queues `job` on the writer thread of its camera.
    fn send(&self, job: Job) -> bool {
        self.writer(&job).is_some_and(|w| w.send(job))
    }

    /// The writer thread of the job's camera.
    fn writer(&self, job: &Job) -> Option<&crate::worker::Worker<Job>> {
        let writers = self.0.writers.get()?;
        let id = match job {
            Job::Follow(f) => &f.id,
            Job::Frame(id, _) | Job::Close(id) => id,
        };
        let shard = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            id.hash(&mut h);
            h.finish() as usize % writers.len().max(1)
        };
        writers.get(shard)
    }

    /// The camera's recording state.
    pub fn camera(&self, id: &CameraId) -> CameraRecording {
        let mut map = self.lock();
        let c = self.ctl(&mut map, id);
        CameraRecording {
            mode: c.mode,
            manual: c.manual,
            event_active: c.event_active,
            recording: c.recording,
            error: c.error.clone(),
        }
    }

    /// Sets the camera's mode.
    pub fn set_mode(&self, id: &CameraId, mode: Mode) {
        let mut map = self.lock();
        self.ctl(&mut map, id).mode = mode;
        info!("camera {id}: recording mode {mode:?}");
    }

    /// Starts or stops a manual recording.
    pub fn set_manual(&self, id: &CameraId, on: bool) {
        let mut map = self.lock();
        self.ctl(&mut map, id).manual = on;
        info!(
            "camera {id}: manual recording {}",
            if on { "started" } else { "stopped" }
        );
    }

    /// Marks an event (motion, …) active on the camera until `until_us`: in events mode the
    /// camera records until then plus the post-roll.
    pub fn event(&self, id: &CameraId, active: bool) {
        let mut map = self.lock();
        let post = self.0.config.post_roll.as_micros() as u64;
        let c = self.ctl(&mut map, id);
        c.event_active = active;
        if !active {
            c.event_until_us = now_us() + post;
        } else {
            c.event_until_us = u64::MAX;
        }
    }

    /// Records `frame` under `track` whatever the modes say (the timelapse's kept frames;
    /// `track` is a pseudo-camera id). Dropped and counted like any frame when the queue is
    /// full.
    pub fn append(&self, track: &CameraId, frame: Arc<Frame>) {
        if !self.send(Job::Frame(track.clone(), frame)) {
            *self
                .0
                .missed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(track.clone())
                .or_default() += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CameraId, CameraCtl>> {
        self.0.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ctl<'m>(
        &self,
        map: &'m mut HashMap<CameraId, CameraCtl>,
        id: &CameraId,
    ) -> &'m mut CameraCtl {
        // Looked up before inserting, so that the writer threads' look-ups (one per camera
        // per drain) never clone the id.
        if !map.contains_key(id) {
            let mode = self
                .0
                .config
                .modes
                .get(id)
                .copied()
                .unwrap_or(self.0.config.default_mode);
            map.insert(
                id.clone(),
                CameraCtl {
                    mode,
                    ..CameraCtl::default()
                },
            );
        }
        match map.get_mut(id) {
            Some(c) => c,
            None => unreachable!("inserted just above, under the same lock"),
        }
    }

    /// What decides whether `id` records, as it stands now (one lock per drain, not per
    /// frame).
    fn decision(&self, id: &CameraId) -> Decision {
        let mut map = self.lock();
        let c = self.ctl(&mut map, id);
        Decision {
            manual: c.manual,
            mode: c.mode,
            event_active: c.event_active,
            event_until_us: c.event_until_us,
            paused_until_us: c.paused_until_us,
        }
    }

    /// Starts a task per camera, for the cameras known now and those that appear later; at
    /// the end, has every followed camera's segment closed.
    async fn supervise(self, hub: Hub) {
        let spawner = self.clone();
        let stop = hub.clone();
        let followed = crate::follow::follow_cameras(
            hub,
            None,
            || {},
            move |cam| {
                Some(tokio::spawn(
                    spawner.clone().follow(cam, stop.shutdown_signal()),
                ))
            },
        )
        .await;
        for id in followed {
            self.send(Job::Close(id));
        }
    }

    /// One camera: hands its tap to the camera's writer thread, which drains it, decides
    /// and records, and waits until that thread lets it go (the camera is gone for good)
    /// or the hub stops. Holds neither the camera nor the tap: a camera the registry
    /// forgets drops the tap's sender, the writer thread sees the tap closed and drops the
    /// follower, and this task ends.
    async fn follow(self, cam: Arc<Camera>, mut stop: watch::Receiver<bool>) {
        let tap = cam.tap(DropPolicy::Every {
            capacity: TAP_CAPACITY,
        });
        let id = cam.id.clone();
        drop(cam);
        let (alive, released) = oneshot::channel();
        let follower = Follower {
            id: id.clone(),
            tap,
            _alive: alive,
            ring: VecDeque::new(),
            was_recording: false,
            batch: Vec::new(),
        };
        // Never dropped: while the writer's queue is full (a slow sync behind timelapse
        // frames) the camera waits a drain for room, so it is recorded once there is.
        let job = Job::Follow(Box::new(follower));
        let queued = match self.writer(&job) {
            Some(w) => w.send_when_room(job, BATCH, &mut stop).await,
            None => false,
        };
        if !queued {
            if !*stop.borrow() {
                warn!("camera {id}: not recorded: the recorder is stopped");
            }
            return;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = released => {}
        }
    }

    /// A write failed: recording pauses for the camera, and is tried again after
    /// [`ERROR_PAUSE_US`]. Logged at the first failure, then at most once a minute while it
    /// keeps failing. A full disk wakes retention, whose free-disk floor makes room.
    fn failed(&self, id: &CameraId, error: &str, disk_full: bool) {
        let now = now_us();
        {
            let mut map = self.lock();
            let c = self.ctl(&mut map, id);
            let new = c.error.is_none();
            if c.logged_us == 0 || now >= c.logged_us + ERROR_LOG_EVERY_US {
                if new {
                    warn!(
                        "camera {id}: recording stopped: {error} (live view continues; retrying every {} s)",
                        ERROR_PAUSE_US / 1_000_000
                    );
                } else {
                    warn!(
                        "camera {id}: recording still stopped: {error} ({} more failed attempts)",
                        c.unlogged + 1
                    );
                }
                c.logged_us = now;
                c.unlogged = 0;
                c.episode_logged = true;
            } else {
                c.unlogged += 1;
                c.episode_logged &= !new;
            }
            c.error = Some(error.to_string());
            c.paused_until_us = now + ERROR_PAUSE_US;
        }
        if disk_full {
            self.0.retention_now.notify_one();
        }
    }

    async fn retention(self, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(self.0.config.retention_every);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = every.tick() => {}
                _ = self.0.retention_now.notified() => {
                    info!("retention: a recording found the disk full, making room");
                }
            }
            let Some(rec) = self.recordings() else { return };
            let policy = self.0.config.retention.clone();
            let report = tokio::task::spawn_blocking(move || {
                rec.apply_retention(
                    &policy,
                    now_us(),
                    espcam_record::retention::FreeSpace::Measure,
                )
            })
            .await;
            match report {
                Ok(Ok(r)) if !r.deleted.is_empty() => {
                    for d in &r.deleted {
                        info!("retention deleted {d:?}");
                    }
                    info!(
                        "retention: {} segment(s) deleted, {} bytes freed",
                        r.deleted.len(),
                        r.bytes_freed()
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!("retention failed: {e}"),
                Err(e) => warn!("retention task failed: {e}"),
            }
        }
    }
}

/// The writer thread's view of the recorder: its per-camera state, without the queue
/// sender (so that dropping the sender ends the thread).
#[derive(Debug)]
struct Ctl(Arc<Inner>);

impl Ctl {
    fn failed(&self, id: &CameraId, error: &espcam_record::WriteError) {
        Recorder(self.0.clone()).failed(id, &error.to_string(), error.is_disk_full());
    }
}

/// A camera's recording settings at one moment (see [`Recorder::decision`]).
#[derive(Debug, Clone, Copy)]
struct Decision {
    manual: bool,
    mode: Mode,
    event_active: bool,
    event_until_us: u64,
    paused_until_us: u64,
}

impl Decision {
    /// Whether a frame received at `t` (µs) is recorded.
    fn wants(&self, t: u64) -> bool {
        let want = self.manual
            || self.mode == Mode::Continuous
            || (self.mode == Mode::Events && (self.event_active || t < self.event_until_us));
        want && t >= self.paused_until_us
    }
}

/// One writer thread: follows its cameras' taps, draining them every [`BATCH`] (each
/// camera's new frames in one append), group-commits, and handles the jobs in between.
fn writer_thread(ctl: &Ctl, recordings: &Recordings, rx: std_mpsc::Receiver<Job>) {
    let mut writers: HashMap<CameraId, Writer> = HashMap::new();
    let mut followers: Vec<Follower> = Vec::new();
    let mut next = std::time::Instant::now() + BATCH;
    loop {
        let wait = next.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Job::Follow(f)) => {
                // A camera that came back (a new tap) replaces its old follower.
                followers.retain(|o| o.id != f.id);
                followers.push(*f);
            }
            Ok(Job::Frame(id, frame)) => {
                write(ctl, recordings, &mut writers, &id, &[frame], 0);
            }
            Ok(Job::Close(id)) => {
                if let Some(i) = followers.iter().position(|f| f.id == id) {
                    let mut f = followers.swap_remove(i);
                    drain(ctl, recordings, &mut writers, &mut f);
                }
                close(&mut writers, &id);
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = std::time::Instant::now();
        if now < next {
            continue;
        }
        next = now + BATCH;
        followers.retain_mut(|f| {
            let open = drain(ctl, recordings, &mut writers, f);
            if !open {
                close(&mut writers, &f.id);
            }
            open
        });
        // Group commit, also for cameras that went quiet since their last frame.
        let now_us = now_us();
        for (id, w) in &mut writers {
            if let Err(e) = w.flush_if_due(now_us) {
                ctl.failed(id, &e);
            }
        }
    }
    // Stopping: what the taps still hold, then every segment closed.
    for mut f in followers {
        drain(ctl, recordings, &mut writers, &mut f);
    }
    for (_, mut w) in writers {
        let _ = w.close();
    }
}

fn close(writers: &mut HashMap<CameraId, Writer>, id: &CameraId) {
    if let Some(mut w) = writers.remove(id)
        && let Err(e) = w.close()
    {
        warn!("camera {id}: closing its recording segment failed: {e}");
    }
}

/// Takes every frame waiting in `f`'s tap, decides for each whether it is recorded (the
/// pre-roll first when recording starts; the segment closed when it stops) and appends
/// the recorded ones in one batch. Returns `false` once the tap is closed.
fn drain(
    ctl: &Ctl,
    recordings: &Recordings,
    writers: &mut HashMap<CameraId, Writer>,
    f: &mut Follower,
) -> bool {
    let rec = Recorder(ctl.0.clone());
    let pre_roll = ctl.0.config.pre_roll.as_micros() as u64;
    let decision = rec.decision(&f.id);
    let recording_before = f.was_recording;
    let mut missed = 0;
    let open = loop {
        let t = match f.tap.try_next() {
            Ok(Some(t)) => t,
            Ok(None) => break true,
            Err(TapClosed) => break false,
        };
        let at = t.frame.received_us;
        let want = decision.wants(at);
        if want {
            if !f.was_recording {
                // Starting: the pre-roll first, oldest first.
                f.batch.extend(f.ring.drain(..));
            }
            missed += t.missed;
            f.batch.push(t.frame);
        } else {
            if f.was_recording {
                write(ctl, recordings, writers, &f.id, &f.batch, missed);
                f.batch.clear();
                missed = 0;
                close(writers, &f.id);
            }
            // The pre-roll is only worth its memory in events mode.
            if decision.mode == Mode::Events {
                f.ring.push_back(t.frame);
            } else {
                f.ring.clear();
            }
            while f
                .ring
                .front()
                .is_some_and(|r| r.received_us + pre_roll < at)
            {
                f.ring.pop_front();
            }
        }
        f.was_recording = want;
    };
    if !f.batch.is_empty() {
        write(ctl, recordings, writers, &f.id, &f.batch, missed);
        f.batch.clear();
    }
    if f.was_recording != recording_before {
        rec.lock()
            .entry(f.id.clone())
            .and_modify(|c| c.recording = f.was_recording);
    }
    open
}

/// Appends `frames` (in order) to the camera's writer, opening it if needed, noting the
/// frames missed before them.
fn write(
    ctl: &Ctl,
    recordings: &Recordings,
    writers: &mut HashMap<CameraId, Writer>,
    id: &CameraId,
    frames: &[Arc<Frame>],
    missed: u64,
) {
    // Nothing to append (a stop right after a failed batch): an empty append would succeed
    // and be taken for the end of the failure, clearing the error while nothing is written.
    if frames.is_empty() {
        return;
    }
    // Looked up first: the id is cloned only when the camera's writer is created.
    if !writers.contains_key(id) {
        match recordings.writer(id) {
            Ok(w) => writers.insert(id.clone(), w),
            Err(e) => return ctl.failed(id, &e),
        };
    }
    let Some(w) = writers.get_mut(id) else {
        return;
    };
    let queue_missed = ctl
        .0
        .missed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id)
        .unwrap_or(0);
    if missed + queue_missed > 0 {
        w.note_missed(missed + queue_missed);
    }
    let batch: Vec<espcam_record::Frame<'_>> = frames
        .iter()
        .map(|frame| espcam_record::Frame {
            jpeg: &frame.jpeg,
            captured_us: frame.captured_us,
            received_us: frame.received_us,
            width: frame.width,
            height: frame.height,
        })
        .collect();
    let result = w
        .append_batch(&batch)
        .and_then(|_| w.flush_if_due(now_us()));
    match result {
        Ok(_) => {
            let mut map = ctl.0.cameras.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = map.get_mut(id)
                && let Some(e) = c.error.take()
                && std::mem::take(&mut c.episode_logged)
            {
                info!("camera {id}: recording resumed (after: {e})");
            }
        }
        Err(e) => {
            // The writer stays: it starts a new segment at the next attempt, after closing
            // the one the failure interrupted (whose durable frames stay readable).
            ctl.failed(id, &e);
        }
    }
}

//! Motion analysis: every camera's frames through `espcam-motion` at a few frames a second,
//! turned into stored events (with the peak frame as thumbnail), bus events
//! (`MotionStarted` / `MotionEnded`) and the recorder's `events` mode.
//!
//! A service beside `recorder` and `ingest`, built on `state` only. One task per camera
//! follows a [`DropPolicy::Newest`] tap and offers at most `fps` frames a second to one
//! dedicated analysis thread through a bounded queue; the thread owns every camera's
//! [`Detector`] and writes the events database (blocking SQLite calls never run on the async
//! runtime). A camera whose previous frame is still waiting for analysis skips frames, and a
//! full queue drops the frame: a slow analysis never delays viewers, ingest or other
//! cameras — it analyses fewer frames, counted in `skipped`. This module must never wait for
//! the analysis thread from an async task, nor copy a frame's bytes (frames are shared
//! `Arc<Frame>`s; the kept thumbnail is the same `Bytes`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use espcam_motion::{Detector, MotionConfig, MotionEvent, ZoneSet};
use espcam_proto::CameraId;
use espcam_store::events::{EventEnd, EventStore, NewEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::recorder::Recorder;
use crate::state::Hub;
use crate::state::camera::{Camera, Frame};
use crate::state::clock::now_us;
use crate::state::event::{Event, MotionInfo};
use crate::state::tap::DropPolicy;

/// Frames queued for the analysis thread, all cameras together; beyond it frames are
/// skipped (about a second of 50 cameras at 1 fps, or 13 cameras at 5 fps).
const QUEUE: usize = 64;
/// How often running events are checked for an end when frames stop (and retention runs
/// every `RETENTION_EVERY` of these).
const POLL: Duration = Duration::from_secs(1);
const RETENTION_EVERY: u32 = 600;
/// Largest analysis rate a camera may ask for.
pub const MAX_FPS: u16 = 30;

/// One camera's motion settings (`[motion]`, `[motion.camera.ID]`, `PUT .../motion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraMotion {
    /// Whether frames are analysed (default true).
    pub enabled: bool,
    /// Frames analysed per second, 1..=30 (default 5).
    pub fps: u16,
    /// The detector's settings (see docs/MOTION.md).
    pub detector: MotionConfig,
}

impl Default for CameraMotion {
    fn default() -> Self {
        Self {
            enabled: true,
            fps: 5,
            detector: MotionConfig::default(),
        }
    }
}

impl CameraMotion {
    /// Checks every value; the message names the bad one and the range expected.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_FPS).contains(&self.fps) {
            return Err(format!("fps {} out of range 1..={MAX_FPS}", self.fps));
        }
        self.detector
            .validate()
            .map_err(|e| format!("detector: {e}"))
    }
}

/// `[motion]` in espcam.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionFile {
    /// Analysis on or off for cameras without their own section (default on).
    pub enabled: Option<bool>,
    /// Analysed frames per second (default 5).
    pub fps: Option<u16>,
    /// Detector defaults.
    pub detector: Option<MotionConfig>,
    /// Delete events older than this many days (default 30).
    pub max_age_days: Option<u64>,
    /// Keep at most this many events (default 10000).
    pub max_events: Option<u32>,
    /// Webhook URLs told about every camera's events (`http://` only).
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// The hub's URL as webhook receivers reach it (`http://hub.lan:6971`), for the links
    /// in webhook bodies (default: the listening address).
    pub public_url: Option<String>,
    /// Keep one frame every this many seconds per camera as its timelapse track (default
    /// off).
    pub timelapse_every_s: Option<u64>,
    /// Per camera: its settings (replacing the defaults) and extra webhooks.
    #[serde(default)]
    pub camera: HashMap<CameraId, CameraMotionFile>,
}

/// `[motion.camera.ID]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraMotionFile {
    /// Analysis on or off (default: `[motion] enabled`).
    pub enabled: Option<bool>,
    /// Analysed frames per second (default: `[motion] fps`).
    pub fps: Option<u16>,
    /// Detector settings (default: `[motion.detector]`).
    pub detector: Option<MotionConfig>,
    /// Webhooks for this camera's events, besides the global ones.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Timelapse interval for this camera, seconds (0: off; default: `[motion]`'s).
    pub timelapse_every_s: Option<u64>,
}

/// The motion configuration in force at start-up.
#[derive(Debug, Clone)]
pub struct MotionSettings {
    /// Settings of cameras without their own.
    pub default: CameraMotion,
    /// Per camera.
    pub cameras: HashMap<CameraId, CameraMotion>,
    /// Event retention: age.
    pub max_age: Duration,
    /// Event retention: count.
    pub max_events: u32,
    /// Webhooks for every camera.
    pub webhooks: Vec<String>,
    /// Webhooks per camera (besides the global ones).
    pub camera_webhooks: HashMap<CameraId, Vec<String>>,
    /// The hub's URL for links in webhook bodies.
    pub public_url: Option<String>,
    /// Timelapse interval of cameras without their own (`None`: off).
    pub timelapse_every: Option<Duration>,
    /// Per camera timelapse interval (`None`: off for that camera).
    pub camera_timelapse: HashMap<CameraId, Option<Duration>>,
}

impl MotionSettings {
    /// The camera's timelapse interval, if it keeps one.
    pub fn timelapse(&self, id: &CameraId) -> Option<Duration> {
        self.camera_timelapse
            .get(id)
            .copied()
            .unwrap_or(self.timelapse_every)
    }
}

impl Default for MotionSettings {
    fn default() -> Self {
        Self {
            default: CameraMotion::default(),
            cameras: HashMap::new(),
            max_age: Duration::from_secs(30 * 86_400),
            max_events: 10_000,
            webhooks: Vec::new(),
            camera_webhooks: HashMap::new(),
            public_url: None,
            timelapse_every: None,
            camera_timelapse: HashMap::new(),
        }
    }
}

impl MotionSettings {
    /// Validates `[motion]` over the defaults.
    pub fn from_file(f: &MotionFile) -> Result<Self, String> {
        let d = Self::default();
        let default = CameraMotion {
            enabled: f.enabled.unwrap_or(d.default.enabled),
            fps: f.fps.unwrap_or(d.default.fps),
            detector: f.detector.clone().unwrap_or_default(),
        };
        default.validate()?;
        let mut cameras = HashMap::new();
        let mut camera_webhooks = HashMap::new();
        for (id, c) in &f.camera {
            let m = CameraMotion {
                enabled: c.enabled.unwrap_or(default.enabled),
                fps: c.fps.unwrap_or(default.fps),
                detector: c
                    .detector
                    .clone()
                    .unwrap_or_else(|| default.detector.clone()),
            };
            m.validate().map_err(|e| format!("camera {id}: {e}"))?;
            cameras.insert(id.clone(), m);
            for url in &c.webhooks {
                crate::webhook::check_url(url).map_err(|e| format!("camera {id}: {e}"))?;
            }
            if !c.webhooks.is_empty() {
                camera_webhooks.insert(id.clone(), c.webhooks.clone());
            }
        }
        for url in &f.webhooks {
            crate::webhook::check_url(url)?;
        }
        let every = |s: Option<u64>, what: &str| -> Result<Option<Duration>, String> {
            match s {
                None | Some(0) => Ok(None),
                Some(n) if n <= 86_400 => Ok(Some(Duration::from_secs(n))),
                Some(n) => Err(format!(
                    "{what}timelapse_every_s {n} out of range 0..=86400"
                )),
            }
        };
        let timelapse_every = every(f.timelapse_every_s, "")?;
        let mut camera_timelapse = HashMap::new();
        for (id, c) in &f.camera {
            if c.timelapse_every_s.is_some() {
                camera_timelapse.insert(
                    id.clone(),
                    every(c.timelapse_every_s, &format!("camera {id}: "))?,
                );
            }
        }
        let days = f.max_age_days.unwrap_or(30);
        if !(1..=36_500).contains(&days) {
            return Err(format!("max_age_days {days} out of range 1..=36500"));
        }
        let max_events = f.max_events.unwrap_or(d.max_events);
        if max_events == 0 {
            return Err("max_events 0 out of range 1..=4294967295".into());
        }
        Ok(Self {
            default,
            cameras,
            max_age: Duration::from_secs(days * 86_400),
            max_events,
            webhooks: f.webhooks.clone(),
            camera_webhooks,
            public_url: f.public_url.clone(),
            timelapse_every,
            camera_timelapse,
        })
    }
}

/// What the API shows of one camera's analysis.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MotionStatus {
    /// Whether an event is running.
    pub in_motion: bool,
    /// The running event's id.
    pub event: Option<i64>,
    /// Frames analysed.
    pub analysed: u64,
    /// Frames not analysed because the analysis was still busy (the rate is kept anyway).
    pub skipped: u64,
    /// Frames the detector could not read.
    pub decode_errors: u64,
    /// Score of the last analysed frame.
    pub last_score: f32,
}

#[derive(Debug, Default)]
struct CameraCtl {
    settings: Option<CameraMotion>,
    status: MotionStatus,
}

enum Job {
    Frame(CameraId, Arc<Frame>, Arc<AtomicBool>),
    Config(CameraId, CameraMotion),
    Poll(bool),
}

/// Handle to the motion service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Motion(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    hub: Hub,
    settings: MotionSettings,
    cameras: Mutex<HashMap<CameraId, CameraCtl>>,
    events: Option<Arc<EventStore>>,
    /// The analysis thread; stopping it ends running events.
    thread: std::sync::OnceLock<crate::worker::Worker<Job>>,
}

impl Motion {
    /// Starts the service: the analysis thread, one task per camera (present and future), the
    /// poll ticker. `events` is the opened events database (`None`: events are still
    /// detected and published, not stored); `recorder` gets every event's start and end.
    pub fn start(
        hub: &Hub,
        settings: MotionSettings,
        events: Option<EventStore>,
        recorder: Option<Recorder>,
    ) -> Self {
        let motion = Motion(Arc::new(Inner {
            hub: hub.clone(),
            settings,
            cameras: Mutex::new(HashMap::new()),
            events: events.map(Arc::new),
            thread: std::sync::OnceLock::new(),
        }));
        let worker = Worker {
            motion: motion.clone(),
            recorder,
            cams: HashMap::new(),
        };
        let thread = crate::worker::Worker::spawn("espcam-motion", QUEUE, move |rx| worker.run(rx));
        let _ = motion.0.thread.set(thread);
        tokio::spawn(motion.clone().supervise());
        motion
    }

    /// The events database, if it opened.
    pub fn events(&self) -> Option<Arc<EventStore>> {
        self.0.events.clone()
    }

    /// The service's start-up configuration (webhooks, retention).
    pub fn settings(&self) -> &MotionSettings {
        &self.0.settings
    }

    /// Stops the service: running events are ended (and stored), the thread joined
    /// (blocking; call from `spawn_blocking`).
    pub fn stop(&self) {
        if let Some(t) = self.0.thread.get() {
            t.stop();
        }
    }

    fn send(&self, job: Job) -> bool {
        self.0.thread.get().is_some_and(|t| t.send(job))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CameraId, CameraCtl>> {
        self.0.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The camera's settings in force.
    pub fn camera(&self, id: &CameraId) -> (CameraMotion, MotionStatus) {
        let map = self.lock();
        let c = map.get(id);
        let settings = c
            .and_then(|c| c.settings.clone())
            .unwrap_or_else(|| self.configured(id));
        (settings, c.map(|c| c.status.clone()).unwrap_or_default())
    }

    fn configured(&self, id: &CameraId) -> CameraMotion {
        self.0
            .settings
            .cameras
            .get(id)
            .cloned()
            .unwrap_or_else(|| self.0.settings.default.clone())
    }

    /// Changes the camera's settings at run time (validated first; the background and a
    /// running event are kept when only the detector's values change). `Err` names the bad
    /// value. The change is not written back to espcam.toml.
    pub fn set_camera(&self, id: &CameraId, settings: CameraMotion) -> Result<(), String> {
        settings.validate()?;
        self.lock().entry(id.clone()).or_default().settings = Some(settings.clone());
        info!("camera {id}: motion settings changed");
        // Config jobs must not be lost to a full queue: retry off the caller's thread.
        let me = self.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                if me.send(Job::Config(id.clone(), settings.clone())) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            warn!("camera {id}: motion settings could not reach the analysis thread");
        });
        Ok(())
    }

    fn update(&self, id: &CameraId, f: impl FnOnce(&mut MotionStatus)) {
        f(&mut self.lock().entry(id.clone()).or_default().status);
    }

    async fn supervise(self) {
        let hub = self.0.hub.clone();
        let (ticker, spawner) = (self.clone(), self.clone());
        let mut ticks = 0u32;
        crate::follow::follow_cameras(
            hub.clone(),
            Some(POLL),
            move || {
                ticks = ticks.wrapping_add(1);
                ticker.send(Job::Poll(ticks % RETENTION_EVERY == 1));
            },
            move |cam| {
                // A relayed camera is analysed by the hub that holds it (cluster mode).
                if cam.relayed() {
                    return None;
                }
                Some(tokio::spawn(
                    spawner.clone().follow(cam, hub.shutdown_signal()),
                ))
            },
        )
        .await;
    }

    /// One camera: at most `fps` frames a second to the analysis thread, skipping while the
    /// previous one waits. Holds the tap, not the camera (like the recorder).
    async fn follow(self, cam: Arc<Camera>, mut stop: watch::Receiver<bool>) {
        let mut tap = cam.tap(DropPolicy::Newest);
        let id = cam.id.clone();
        drop(cam);
        let busy = Arc::new(AtomicBool::new(false));
        loop {
            let t = tokio::select! {
                _ = stop.changed() => return,
                t = tap.next() => match t { Some(t) => t, None => return },
            };
            let (settings, _) = self.camera(&id);
            if settings.enabled {
                if busy.load(Ordering::Acquire) {
                    self.update(&id, |s| s.skipped += 1);
                } else {
                    busy.store(true, Ordering::Release);
                    if !self.send(Job::Frame(id.clone(), t.frame, busy.clone())) {
                        busy.store(false, Ordering::Release);
                        self.update(&id, |s| s.skipped += 1);
                    }
                }
            }
            // The rate: the next frame taken is the newest one after this pause.
            let pause = Duration::from_micros(1_000_000 / u64::from(settings.fps.max(1)));
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Opens `events.sqlite` in the hub's data directory (off the runtime) and starts the
/// service; without the database events are still detected, published and recorded.
pub async fn start_service(hub: &Hub, recorder: Option<Recorder>, base_url: &str) -> Motion {
    let dir = hub.config().data_dir.clone();
    let opened = tokio::task::spawn_blocking(move || EventStore::open(&dir)).await;
    let events = match opened {
        Ok(Ok(db)) => Some(db),
        Ok(Err(e)) => {
            warn!("motion events will not be stored: {e}");
            None
        }
        Err(e) => {
            warn!("motion events will not be stored: {e}");
            None
        }
    };
    let recorder_for_timelapse = recorder.clone();
    let motion = Motion::start(hub, hub.config().motion.clone(), events, recorder);
    crate::webhook::start(hub, motion.settings(), base_url);
    if let Some(r) = &recorder_for_timelapse {
        crate::timelapse::start(hub, r.clone(), motion.settings().clone());
    }
    motion
}

/// The analysis thread's per-camera state.
struct CamState {
    detector: Detector,
    /// The frame of the highest score of the current run or event (the thumbnail).
    peak: Option<Arc<Frame>>,
    /// The running event: stored id and what the bus was told.
    running: Option<MotionInfo>,
}

struct Worker {
    motion: Motion,
    recorder: Option<Recorder>,
    cams: HashMap<CameraId, CamState>,
}

impl Worker {
    fn run(mut self, rx: std_mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            match job {
                Job::Frame(id, frame, busy) => {
                    self.analyse(&id, &frame);
                    busy.store(false, Ordering::Release);
                }
                Job::Config(id, settings) => self.configure(&id, settings),
                Job::Poll(retention) => {
                    let now = now_ms();
                    let ids: Vec<CameraId> = self.cams.keys().cloned().collect();
                    for id in ids {
                        let ev = self.cams.get_mut(&id).and_then(|c| c.detector.poll(now));
                        if let Some(ev) = ev {
                            self.event(&id, ev);
                        }
                    }
                    if retention {
                        self.retention(now);
                    }
                }
            }
        }
        // Stopping: close running events so none stays open in the database.
        let now = now_ms();
        let ids: Vec<CameraId> = self.cams.keys().cloned().collect();
        for id in ids {
            self.end_now(&id, now);
        }
    }

    fn state(&mut self, id: &CameraId) -> Option<&mut CamState> {
        if !self.cams.contains_key(id) {
            let (settings, _) = self.motion.camera(id);
            match Detector::new(settings.detector) {
                Ok(detector) => {
                    self.cams.insert(
                        id.clone(),
                        CamState {
                            detector,
                            peak: None,
                            running: None,
                        },
                    );
                }
                Err(e) => {
                    warn!("camera {id}: motion detection off: {e}");
                    return None;
                }
            }
        }
        self.cams.get_mut(id)
    }

    fn configure(&mut self, id: &CameraId, settings: CameraMotion) {
        if !settings.enabled {
            self.end_now(id, now_ms());
            self.cams.remove(id);
            return;
        }
        if let Some(c) = self.cams.get_mut(id)
            && let Err(e) = c.detector.set_config(settings.detector)
        {
            warn!("camera {id}: motion settings refused: {e}");
        }
    }

    fn analyse(&mut self, id: &CameraId, frame: &Arc<Frame>) {
        let Some(c) = self.state(id) else { return };
        let at = frame.received_us / 1000;
        let a = match c.detector.analyse(&frame.jpeg, at) {
            Ok(a) => a,
            Err(e) => {
                let n = {
                    let mut n = 0;
                    self.motion.update(id, |s| {
                        s.decode_errors += 1;
                        n = s.decode_errors;
                    });
                    n
                };
                if n.is_power_of_two() {
                    warn!("camera {id}: frame not analysed ({n} so far): {e}");
                }
                return;
            }
        };
        if a.is_peak {
            c.peak = Some(frame.clone());
        }
        self.motion.update(id, |s| {
            s.analysed += 1;
            s.last_score = a.score;
        });
        if let Some(ev) = a.event {
            self.event(id, ev);
        }
    }

    fn zone_names(&self, id: &CameraId, zones: ZoneSet) -> Vec<String> {
        let Some(c) = self.cams.get(id) else {
            return Vec::new();
        };
        let cfg = c.detector.config();
        zones
            .iter()
            .filter_map(|i| cfg.zones.get(i).map(|z| z.name.clone()))
            .collect()
    }

    fn event(&mut self, id: &CameraId, ev: MotionEvent) {
        match ev {
            MotionEvent::Started { at, score, zones } => {
                let zones = self.zone_names(id, zones);
                let Some(c) = self.cams.get_mut(id) else {
                    return;
                };
                let peak_ms = c.peak.as_ref().map_or(at, |f| f.received_us / 1000);
                let stored = self.motion.0.events.as_ref().map(|db| {
                    db.start(&NewEvent {
                        camera: id.as_str(),
                        started_ms: ms_i64(at),
                        peak_score: score,
                        peak_ms: ms_i64(peak_ms),
                        zones: &zones,
                        thumb: c.peak.as_ref().map(|f| &f.jpeg[..]),
                    })
                });
                let event_id = match stored {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => {
                        warn!("camera {id}: motion event not stored: {e}");
                        0
                    }
                    None => 0,
                };
                let info = MotionInfo {
                    camera: id.clone(),
                    id: event_id,
                    started_ms: at,
                    ended_ms: None,
                    last_motion_ms: None,
                    peak_score: score,
                    peak_ms,
                    zones,
                    node: None,
                };
                c.running = Some(info.clone());
                info!("camera {id}: motion started (event {event_id})");
                if let Some(r) = &self.recorder {
                    r.event(id, true);
                }
                self.motion.update(id, |s| {
                    s.in_motion = true;
                    s.event = Some(event_id);
                });
                self.motion.0.hub.emit(Event::MotionStarted(Box::new(info)));
            }
            MotionEvent::Ended {
                at,
                started_at,
                last_motion_at,
                peak_score,
                peak_frame_at,
                zones_hit,
            } => {
                let zones = self.zone_names(id, zones_hit);
                let Some(c) = self.cams.get_mut(id) else {
                    return;
                };
                let running = c.running.take();
                let peak = c.peak.take();
                let thumb = peak
                    .as_ref()
                    .filter(|f| f.received_us / 1000 == peak_frame_at)
                    .map(|f| &f.jpeg[..]);
                let event_id = running.as_ref().map_or(0, |r| r.id);
                if event_id > 0
                    && let Some(db) = &self.motion.0.events
                    && let Err(e) = db.end(
                        event_id,
                        &EventEnd {
                            ended_ms: ms_i64(at),
                            last_motion_ms: ms_i64(last_motion_at),
                            peak_score,
                            peak_ms: ms_i64(peak_frame_at),
                            zones: &zones,
                            thumb,
                        },
                    )
                {
                    warn!("camera {id}: motion event end not stored: {e}");
                }
                self.finish(
                    id,
                    MotionInfo {
                        camera: id.clone(),
                        id: event_id,
                        started_ms: started_at,
                        ended_ms: Some(at),
                        last_motion_ms: Some(last_motion_at),
                        peak_score,
                        peak_ms: peak_frame_at,
                        zones,
                        node: None,
                    },
                );
            }
        }
    }

    fn finish(&mut self, id: &CameraId, info: MotionInfo) {
        info!("camera {id}: motion ended (event {})", info.id);
        if let Some(r) = &self.recorder {
            r.event(id, false);
        }
        self.motion.update(id, |s| {
            s.in_motion = false;
            s.event = None;
        });
        self.motion.0.hub.emit(Event::MotionEnded(Box::new(info)));
    }

    /// Ends a running event now (camera disabled, hub stopping).
    fn end_now(&mut self, id: &CameraId, now: u64) {
        let Some(c) = self.cams.get_mut(id) else {
            return;
        };
        let Some(mut info) = c.running.take() else {
            return;
        };
        c.peak = None;
        info.ended_ms = Some(now);
        info.last_motion_ms = Some(now);
        if info.id > 0
            && let Some(db) = &self.motion.0.events
            && let Err(e) = db.end(
                info.id,
                &EventEnd {
                    ended_ms: ms_i64(now),
                    last_motion_ms: ms_i64(now),
                    peak_score: info.peak_score,
                    peak_ms: ms_i64(info.peak_ms),
                    zones: &info.zones,
                    thumb: None,
                },
            )
        {
            warn!("camera {id}: motion event end not stored: {e}");
        }
        self.finish(id, info);
    }

    fn retention(&self, now: u64) {
        let Some(db) = &self.motion.0.events else {
            return;
        };
        let s = &self.motion.0.settings;
        let age = i64::try_from(s.max_age.as_millis()).unwrap_or(i64::MAX);
        match db.apply_retention(ms_i64(now), Some(age), Some(s.max_events)) {
            Ok(0) => {}
            Ok(n) => info!("event retention deleted {n} event(s)"),
            Err(e) => warn!("event retention failed: {e}"),
        }
    }
}

fn now_ms() -> u64 {
    now_us() / 1000
}

fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Overrides};

    fn load(text: &str) -> Result<Config, String> {
        let file = Config::parse_file(text, Path::new("espcam.toml")).map_err(|e| e.to_string())?;
        Config::from_parts(file, Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn motion_section_parses_with_defaults_and_per_camera() {
        let c = load(
            r#"
            [motion]
            fps = 3
            webhooks = ["http://127.0.0.1:9000/hook"]
            timelapse_every_s = 60
            [motion.detector]
            sensitivity = 70
            [motion.camera.porch]
            enabled = false
            timelapse_every_s = 0
            detector = { end_after_ms = 2000, zones = [{ name = "door", rect = { x0 = 0.0, y0 = 0.0, x1 = 0.5, y1 = 1.0 } }] }
            "#,
        )
        .unwrap();
        let m = &c.motion;
        assert_eq!((m.default.fps, m.default.detector.sensitivity), (3, 70));
        let porch = CameraId::new("porch").unwrap();
        let p = &m.cameras[&porch];
        assert!(!p.enabled);
        assert_eq!((p.fps, p.detector.end_after_ms), (3, 2000));
        assert_eq!(p.detector.zones[0].name, "door");
        assert_eq!(m.timelapse(&porch), None);
        assert_eq!(
            m.timelapse(&CameraId::new("yard").unwrap()),
            Some(Duration::from_secs(60))
        );
        assert_eq!(Config::default().motion.default, CameraMotion::default());
    }

    #[test]
    fn bad_motion_values_are_named() {
        let e = load("[motion]\nfps = 0").unwrap_err();
        assert!(e.contains("fps 0 out of range 1..=30"), "{e}");
        let e = load("[motion.detector]\ncell_delta = 1").unwrap_err();
        assert!(e.contains("cell_delta 1 out of range 2..=128"), "{e}");
        let e = load("[motion]\nwebhooks = [\"https://x/h\"]").unwrap_err();
        assert!(e.contains("expected an http:// URL"), "{e}");
        let e = load("[motion.camera.porch]\nfps = 31").unwrap_err();
        assert!(
            e.contains("camera porch: fps 31 out of range 1..=30"),
            "{e}"
        );
        let e = load("[motion]\nfsp = 3").unwrap_err();
        assert!(e.contains("unknown field `fsp`"), "{e}");
    }
}

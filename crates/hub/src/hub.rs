//! The hub's shared state: the camera registry, camera admission (ids and tokens), link
//! bookkeeping, commands with acks, the browser event feed, and the snapshot store handle.
//!
//! Handlers and connection tasks hold a cheap [`Hub`] clone. Locks here are `std` locks
//! held for a few field updates and never across an `.await`; nothing in this module waits
//! on a viewer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use espcam_proto::{Ack, CameraId, Command, CommandMsg, PROTOCOL_VERSION, Settings};
use espcam_store::Store;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::info;

use crate::camera::{Camera, Link, Source};
use crate::clock::now_us;
use crate::config::Config;
use crate::error::CommandError;
use crate::metrics::Histogram;
use crate::ui;

/// Commands queued per camera link before senders get [`CommandError::Busy`].
const COMMAND_QUEUE: usize = 16;
/// Events buffered per browser socket before it is told it lagged and resynced.
const EVENT_BUFFER: usize = 256;

/// Handle to the hub's shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: Config,
    cameras: RwLock<BTreeMap<CameraId, Arc<Camera>>>,
    /// Pre-serialized JSON events for every `/ws/ui` socket (online, offline, settings,
    /// telemetry). A broadcast channel because every browser wants every event; it is
    /// bounded, and a browser that falls behind gets `Lagged` and a fresh camera list
    /// instead of holding the hub's memory.
    events: broadcast::Sender<Arc<str>>,
    /// Relay latency of every delivered WebSocket frame.
    relay_latency: Histogram,
    /// The snapshot store. Taken out (and so closed) when the server stops, so a new hub can
    /// open the same data directory while stray connection tasks still hold a `Hub`.
    store: Mutex<Option<Arc<Store>>>,
    /// Flipped to `true` when the server stops; every long-lived connection task watches it
    /// so that stopping the server also ends WebSockets and pull clients.
    shutdown: watch::Sender<bool>,
    /// Source of connection numbers (see [`Link::conn`]).
    next_conn: AtomicU64,
    ui_clients: AtomicUsize,
}

/// What a camera presented to be admitted.
#[derive(Debug)]
pub struct Admission<'a> {
    /// Protocol version.
    pub proto: u8,
    /// Camera id.
    pub camera: &'a CameraId,
    /// Token (empty when none).
    pub token: &'a str,
}

/// A control link the hub has attached; the connection task owns it.
#[derive(Debug)]
pub struct Attached {
    /// The camera.
    pub camera: Arc<Camera>,
    /// This connection's number.
    pub conn: u64,
    /// Commands to write to the camera.
    pub commands: mpsc::Receiver<CommandMsg>,
    /// Resolves when a newer connection replaced this one.
    pub kicked: oneshot::Receiver<()>,
}

impl Hub {
    /// Creates the hub state. `store` is `None` when snapshots are unavailable.
    pub fn new(config: Config, store: Option<Store>) -> Self {
        let mut cameras = BTreeMap::new();
        for c in &config.cameras {
            cameras.insert(
                c.id.clone(),
                Arc::new(Camera::new(c.id.clone(), Source::Push)),
            );
        }
        for p in &config.pull {
            cameras.insert(
                p.id.clone(),
                Arc::new(Camera::new(p.id.clone(), Source::Pull)),
            );
        }
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self(Arc::new(Inner {
            config,
            cameras: RwLock::new(cameras),
            events,
            relay_latency: Histogram::default(),
            store: Mutex::new(store.map(Arc::new)),
            shutdown: watch::Sender::new(false),
            next_conn: AtomicU64::new(1),
            ui_clients: AtomicUsize::new(0),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// Every known camera, sorted by id.
    pub fn cameras(&self) -> Vec<Arc<Camera>> {
        let map = self.0.cameras.read().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }

    /// The camera with this id.
    pub fn camera(&self, id: &str) -> Option<Arc<Camera>> {
        let map = self.0.cameras.read().unwrap_or_else(|e| e.into_inner());
        // Ids in the map are valid; an invalid string simply is not there.
        CameraId::new(id).ok().and_then(|id| map.get(&id).cloned())
    }

    /// Checks a camera's hello: protocol version, allowed id, token (in constant time).
    /// The error is the close reason sent to the camera.
    pub fn admit(&self, a: &Admission<'_>) -> Result<(), String> {
        if a.proto != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {} unsupported, expected {PROTOCOL_VERSION}",
                a.proto
            ));
        }
        let allowed = &self.0.config.cameras;
        if allowed.is_empty() {
            return Ok(());
        }
        match allowed.iter().find(|c| &c.id == a.camera) {
            None => Err(format!(
                "camera {} is not in this hub's camera list",
                a.camera
            )),
            Some(c) if !constant_time_eq(c.token.as_bytes(), a.token.as_bytes()) => {
                if a.token.is_empty() {
                    Err(format!("missing token for camera {}", a.camera))
                } else {
                    Err(format!("wrong token for camera {}", a.camera))
                }
            }
            Some(_) => Ok(()),
        }
    }

    /// Finds or creates the camera entry for an admitted camera.
    pub(crate) fn register(&self, id: &CameraId, source: Source) -> Result<Arc<Camera>, String> {
        let mut map = self.0.cameras.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(id) {
            if c.source != source {
                return Err(format!(
                    "camera id {id} is used by a {} camera",
                    if c.source == Source::Pull {
                        "pulled"
                    } else {
                        "pushing"
                    }
                ));
            }
            return Ok(c.clone());
        }
        let forgotten = if map.len() >= self.0.config.max_cameras {
            match self.forget_one_gone(&mut map) {
                Some(gone) => Some(gone),
                None => {
                    return Err(format!(
                        "too many cameras: this hub tracks at most {}",
                        self.0.config.max_cameras
                    ));
                }
            }
        } else {
            None
        };
        let c = Arc::new(Camera::new(id.clone(), source));
        map.insert(id.clone(), c.clone());
        drop(map);
        if let Some(gone) = forgotten {
            info!("forgot camera {gone} (gone, nobody watching) to make room for camera {id}");
            // Browsers replace their list on a `cameras` event, so the forgotten one leaves it.
            self.emit(ui::cameras_event(self));
        }
        Ok(c)
    }

    /// Makes room in a full registry by forgetting one camera that left: a pushing camera
    /// not in the configured list that nothing holds any more — no control or stream
    /// connection, no viewer, no request in flight, so the map's `Arc` is the only one (and
    /// no other can be taken while the map is write-locked). The one that left longest ago
    /// goes. Without this, the first `max_cameras` ids ever seen would lock every other
    /// camera out until a restart. Its saved snapshots are in the store and stay there.
    fn forget_one_gone(&self, map: &mut BTreeMap<CameraId, Arc<Camera>>) -> Option<CameraId> {
        let listed = |id: &CameraId| self.0.config.cameras.iter().any(|c| &c.id == id);
        let gone = map
            .iter()
            .filter(|(id, c)| c.source == Source::Push && Arc::strong_count(c) == 1 && !listed(id))
            .min_by_key(|(_, c)| c.lock().left_us)
            .map(|(id, _)| id.clone())?;
        map.remove(&gone);
        Some(gone)
    }

    pub(crate) fn next_conn(&self) -> u64 {
        self.0.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes `camera`'s control link this connection, replacing (and kicking) any older one,
    /// and marks the camera online.
    pub(crate) fn attach_control(
        &self,
        camera: Arc<Camera>,
        sensor: Option<String>,
        firmware: Option<String>,
        settings: Option<Settings>,
    ) -> Attached {
        let conn = self.next_conn();
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (kick, kicked) = oneshot::channel();
        {
            let mut st = camera.lock();
            // Replacing the link drops the old kick sender (ending the old task) and the old
            // pending acks (their waiters see the camera went away).
            st.pending.clear();
            st.control = Some(Link {
                conn,
                commands: tx,
                _kick: kick,
            });
            st.sensor = sensor;
            st.firmware = firmware;
            if settings.is_some() {
                st.settings = settings;
            }
            st.telemetry = None;
        }
        self.emit(ui::online_event(&camera.info()));
        Attached {
            camera,
            conn,
            commands,
            kicked,
        }
    }

    /// Marks the camera offline if `conn` is still its control link.
    pub(crate) fn detach_control(&self, camera: &Camera, conn: u64, reason: &str) -> bool {
        {
            let mut st = camera.lock();
            if st.control.as_ref().map(|l| l.conn) != Some(conn) {
                return false;
            }
            st.control = None;
            st.pending.clear();
            st.left_us = now_us();
        }
        self.emit(ui::offline_event(&camera.id, reason));
        true
    }

    /// Makes this the camera's stream connection, kicking any older one.
    pub(crate) fn attach_stream(&self, camera: &Camera) -> (u64, oneshot::Receiver<()>) {
        let conn = self.next_conn();
        let (kick, kicked) = oneshot::channel();
        camera.lock().stream = Some((conn, kick));
        (conn, kicked)
    }

    /// Forgets the stream connection if `conn` is still the current one.
    pub(crate) fn detach_stream(&self, camera: &Camera, conn: u64) {
        let mut st = camera.lock();
        if st.stream.as_ref().map(|s| s.0) == Some(conn) {
            st.stream = None;
            st.left_us = now_us();
        }
    }

    /// Sends `command` to the camera and waits for its ack.
    pub async fn command(&self, camera: &str, command: Command) -> Result<Ack, CommandError> {
        let cam = self
            .camera(camera)
            .ok_or_else(|| CommandError::UnknownCamera(camera.chars().take(40).collect()))?;
        let (id, link, rx) = {
            let mut st = cam.lock();
            let Some(link) = st.control.as_ref().map(|l| l.commands.clone()) else {
                return Err(CommandError::Offline(cam.id.clone()));
            };
            st.next_cmd_id = st.next_cmd_id.wrapping_add(1);
            let id = st.next_cmd_id;
            let (tx, rx) = oneshot::channel();
            st.pending.insert(id, tx);
            (id, link, rx)
        };
        let msg = CommandMsg {
            id: Some(id),
            camera: None,
            command,
        };
        if link.try_send(msg).is_err() {
            cam.lock().pending.remove(&id);
            return Err(CommandError::Busy(cam.id.clone()));
        }
        let timeout = self.0.config.ack_timeout;
        let ack = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(ack)) => ack,
            // The link went away (camera disconnected or was replaced) before acking.
            Ok(Err(_)) => {
                return Err(CommandError::Disconnected {
                    camera: cam.id.clone(),
                    command: command.to_string(),
                });
            }
            Err(_) => {
                cam.lock().pending.remove(&id);
                return Err(CommandError::AckTimeout {
                    camera: cam.id.clone(),
                    command: command.to_string(),
                    ms: timeout.as_millis(),
                });
            }
        };
        if ack.ok {
            Ok(ack)
        } else {
            Err(CommandError::Refused {
                camera: cam.id.clone(),
                command: command.to_string(),
                message: ack.error.unwrap_or_else(|| "no reason given".into()),
            })
        }
    }

    /// Records an ack from a camera and tells browsers if the settings changed.
    pub(crate) fn on_ack(&self, camera: &Camera, ack: Ack) {
        let settings = ack.settings;
        if camera.on_ack(ack) {
            self.emit(ui::settings_event(&camera.id, &settings));
        }
    }

    /// Records settings reported outside an ack (telemetry), telling browsers on change.
    pub(crate) fn on_settings(&self, camera: &Camera, settings: Settings) {
        let changed = {
            let mut st = camera.lock();
            let changed = st.settings != Some(settings);
            st.settings = Some(settings);
            changed
        };
        if changed {
            self.emit(ui::settings_event(&camera.id, &settings));
        }
    }

    /// Sends an event to every browser socket. Never waits.
    pub(crate) fn emit(&self, event: String) {
        // An error only means no browser is connected.
        let _ = self.0.events.send(event.into());
    }

    /// Whether any browser socket is listening (so the ticker can skip work).
    pub(crate) fn has_ui_clients(&self) -> bool {
        self.0.events.receiver_count() > 0
    }

    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<Arc<str>> {
        self.0.events.subscribe()
    }

    pub(crate) fn ui_clients(&self) -> usize {
        self.0.ui_clients.load(Ordering::Relaxed)
    }

    pub(crate) fn ui_client_guard(&self) -> UiGuard {
        self.0.ui_clients.fetch_add(1, Ordering::Relaxed);
        UiGuard(self.clone())
    }

    /// The relay latency histogram.
    pub fn relay_latency(&self) -> &Histogram {
        &self.0.relay_latency
    }

    /// The snapshot store, unless snapshots are unavailable or the hub stopped.
    pub fn store(&self) -> Option<Arc<Store>> {
        self.0
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A receiver that changes to `true` when the hub stops.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }

    /// Stops every connection task and closes the store.
    pub fn stop(&self) {
        self.0.shutdown.send_replace(true);
        self.0
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Once a second: recompute rates, push telemetry to browsers.
    pub(crate) async fn tick(&self, period: Duration) {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.shutdown_signal();
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => return,
            }
            let now = tokio::time::Instant::now();
            let secs = now.duration_since(last).as_secs_f32().max(0.001);
            last = now;
            let ui = self.has_ui_clients();
            for cam in self.cameras() {
                cam.update_rates(secs);
                if ui && cam.online() {
                    self.emit(ui::telemetry_event(&cam.info()));
                }
            }
        }
    }
}

/// Counts a `/ws/ui` socket while it lives.
#[derive(Debug)]
pub(crate) struct UiGuard(Hub);

impl Drop for UiGuard {
    fn drop(&mut self) {
        self.0.0.ui_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Compares secrets without an early exit, so the time taken does not reveal how many
/// leading bytes matched. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CameraAuth;

    fn hub_with(cameras: Vec<CameraAuth>) -> Hub {
        let mut c = Config::for_tests("unused");
        c.cameras = cameras;
        Hub::new(c, None)
    }

    #[test]
    fn admission() {
        let id = CameraId::new("cam-1").unwrap();
        let other = CameraId::new("cam-2").unwrap();
        let open = hub_with(vec![]);
        let a = |camera, token| Admission {
            proto: 1,
            camera,
            token,
        };
        assert_eq!(open.admit(&a(&id, "")), Ok(()));
        let locked = hub_with(vec![CameraAuth {
            id: id.clone(),
            token: "s3cret".into(),
        }]);
        assert_eq!(locked.admit(&a(&id, "s3cret")), Ok(()));
        assert_eq!(
            locked.admit(&a(&id, "nope")).unwrap_err(),
            "wrong token for camera cam-1"
        );
        assert_eq!(
            locked.admit(&a(&id, "")).unwrap_err(),
            "missing token for camera cam-1"
        );
        assert_eq!(
            locked.admit(&a(&other, "s3cret")).unwrap_err(),
            "camera cam-2 is not in this hub's camera list"
        );
        let v2 = Admission {
            proto: 2,
            camera: &id,
            token: "",
        };
        assert_eq!(
            open.admit(&v2).unwrap_err(),
            "protocol version 2 unsupported, expected 1"
        );
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

//! The hub's shared state: the camera registry, camera admission (ids and tokens), link
//! bookkeeping, commands with acks, the event bus, and the snapshot store handle.
//!
//! This is the bottom layer of the hub. `ingest` (cameras) and `http` (people and tools)
//! build on it; it imports neither, nor any network or HTTP crate, and it builds no JSON —
//! `crates/nostd-check/tests/hub_layers.rs` fails the build's tests if it does. Handlers and
//! connection tasks hold a cheap [`Hub`] clone. Locks here are `std` locks held for a few
//! field updates and never across an `.await`; nothing in this layer waits on a viewer.
//!
//! - [`camera`]: one camera, its counters, history and latest-frame slot.
//! - [`tap`]: following a camera's frames with an explicit drop policy.
//! - [`event`]: the typed events on the bus.
//! - [`error`]: admission and command errors.
//! - [`access`]: the auth database, the login mode, audit, warning limits.

pub mod access;
pub mod camera;
pub mod clock;
pub mod error;
pub mod event;
pub mod histogram;
pub mod node_recordings;
pub mod nodes;
pub mod ota;
pub mod tap;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use espcam_proto::{
    Ack, CameraId, Command, CommandMsg, HubMsg, PROTOCOL_VERSION, Settings, Telemetry,
};
use espcam_store::Store;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::info;

use crate::config::Config;
use access::Access;
use camera::{Camera, Link, Source};
use clock::now_us;
use error::{AdmissionError, CommandError, RemoveError};
use event::{CommandFailure, Event, Origin};
use histogram::Histogram;

/// Commands queued per camera link before senders get [`CommandError::Busy`].
const COMMAND_QUEUE: usize = 16;
/// Events buffered per subscriber before it is told it lagged and must resync.
const EVENT_BUFFER: usize = 256;

/// Handle to the hub's shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: Config,
    cameras: RwLock<BTreeMap<CameraId, Arc<Camera>>>,
    /// The event bus. A broadcast channel because every subscriber (each browser, later the
    /// recorder, MQTT, other hubs) wants every event; bounded, so a subscriber that falls
    /// behind gets `Lagged` and resyncs from the state instead of holding the hub's memory.
    events: broadcast::Sender<Event>,
    /// Relay latency of every delivered WebSocket frame.
    relay_latency: Histogram,
    /// The snapshot store. Taken out (and so closed) when the server stops, so a new hub can
    /// open the same data directory while stray connection tasks still hold a `Hub`.
    store: Mutex<Option<Arc<Store>>>,
    /// Flipped to `true` when the server stops; every long-lived connection task watches it
    /// so that stopping the server also ends WebSockets and pull clients.
    shutdown: watch::Sender<bool>,
    /// Source of connection and client numbers.
    next_conn: AtomicU64,
    ui_clients: AtomicUsize,
    /// Login mode, the auth database, audit and warning limits.
    access: Access,
}

/// How a hello that passed [`Hub::admit`] is vouched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Listed in `[[camera]]` with the token it presented.
    Listed,
    /// No camera list and no login required: any valid id is admitted (trusted networks).
    Open,
    /// Not listed and login is required: admit it only if pairing says it is accepted
    /// (`ingest` asks the auth database, which blocks, before calling [`Hub::register`]).
    NeedsPairing,
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

/// What a camera said about itself when its control link came up.
#[derive(Debug, Clone, Default)]
pub struct LinkInfo {
    /// Sensor model.
    pub sensor: Option<String>,
    /// Firmware description.
    pub firmware: Option<String>,
    /// Settings in force, when the camera reports them.
    pub settings: Option<Settings>,
    /// Board, when the camera reports it (firmware updates).
    pub board: Option<String>,
    /// The camera runs a new image that confirms itself once welcomed.
    pub ota_pending: bool,
    /// The link relays a camera held by another hub (cluster mode; [`Camera::relayed`]).
    pub relayed: bool,
}

/// A control link the hub has attached; the connection task owns it.
#[derive(Debug)]
pub struct Attached {
    /// The camera.
    pub camera: Arc<Camera>,
    /// This connection's number.
    pub conn: u64,
    /// Commands to write to the camera, in the order they were sent.
    pub commands: mpsc::Receiver<HubMsg>,
    /// Resolves when a newer connection replaced this one.
    pub kicked: oneshot::Receiver<()>,
}

/// A command queued to a camera: [`PendingCommand::wait`] for its ack.
#[derive(Debug)]
#[must_use = "a command's answer arrives only through wait()"]
pub struct PendingCommand {
    hub: Hub,
    camera: Arc<Camera>,
    command: Command,
    hub_id: u32,
    rx: oneshot::Receiver<Ack>,
    origin: Origin,
    client_id: Option<u64>,
}

impl Hub {
    /// Creates the hub state without an auth database (no login, no pairing, no audit).
    /// `store` is `None` when snapshots are unavailable.
    pub fn new(config: Config, store: Option<Store>) -> Self {
        Self::with_access(config, store, Access::none())
    }

    /// Creates the hub state with its access control.
    pub fn with_access(config: Config, store: Option<Store>, access: Access) -> Self {
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
            access,
        }))
    }

    /// Access control: login mode, auth database, audit, warning limits.
    pub fn access(&self) -> &Access {
        &self.0.access
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

    /// Checks a camera's hello: protocol version, allowed id, token (in constant time). A
    /// listed camera must present its token; an unlisted one is admitted as before when no
    /// login is required (none if a camera list exists), and needs pairing when it is.
    pub fn admit(&self, a: &Admission<'_>) -> Result<Admitted, AdmissionError> {
        if a.proto != PROTOCOL_VERSION {
            return Err(AdmissionError::ProtocolVersion(a.proto));
        }
        let allowed = &self.0.config.cameras;
        let listed = allowed.iter().find(|c| &c.id == a.camera);
        if listed.is_none() && self.0.config.pull.iter().any(|p| &p.id == a.camera) {
            return Err(AdmissionError::SourceConflict {
                camera: a.camera.clone(),
                held_by: Source::Pull,
            });
        }
        if listed.is_none() && self.0.access.login_required() {
            return Ok(Admitted::NeedsPairing);
        }
        if allowed.is_empty() {
            return Ok(Admitted::Open);
        }
        match listed {
            None => Err(AdmissionError::NotListed(a.camera.clone())),
            Some(c) if !constant_time_eq(c.token.as_bytes(), a.token.as_bytes()) => {
                if a.token.is_empty() {
                    Err(AdmissionError::MissingToken(a.camera.clone()))
                } else {
                    Err(AdmissionError::WrongToken(a.camera.clone()))
                }
            }
            Some(_) => Ok(Admitted::Listed),
        }
    }

    /// Finds or creates the camera entry for an admitted camera.
    pub fn register(&self, id: &CameraId, source: Source) -> Result<Arc<Camera>, AdmissionError> {
        let mut map = self.0.cameras.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(id) {
            if c.source != source {
                return Err(AdmissionError::SourceConflict {
                    camera: id.clone(),
                    held_by: c.source,
                });
            }
            return Ok(c.clone());
        }
        let forgotten = if map.len() >= self.0.config.max_cameras {
            match self.forget_one_gone(&mut map) {
                Some(gone) => Some(gone),
                None => return Err(AdmissionError::RegistryFull(self.0.config.max_cameras)),
            }
        } else {
            None
        };
        let c = Arc::new(Camera::new(id.clone(), source));
        map.insert(id.clone(), c.clone());
        drop(map);
        if let Some(gone) = forgotten {
            info!("forgot camera {gone} (gone, nobody watching) to make room for camera {id}");
            self.emit(Event::CamerasChanged);
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
        let gone = map
            .iter()
            .filter(|(id, c)| {
                c.source == Source::Push && Arc::strong_count(c) == 1 && !self.configured(id)
            })
            .min_by_key(|(_, c)| c.lock().left_us)
            .map(|(id, _)| id.clone())?;
        map.remove(&gone);
        Some(gone)
    }

    fn configured(&self, id: &CameraId) -> bool {
        let c = &self.0.config;
        c.cameras.iter().any(|c| &c.id == id) || c.pull.iter().any(|p| &p.id == id)
    }

    /// Removes a camera that is not connected and not configured (an admin clearing out a
    /// camera that left for good). Its saved snapshots stay in the store.
    pub fn remove_camera(&self, id: &str) -> Result<CameraId, RemoveError> {
        let unknown = || RemoveError::UnknownCamera(espcam_proto::close::echo(id, 40).into());
        let id = CameraId::new(id).map_err(|_| unknown())?;
        let mut map = self.0.cameras.write().unwrap_or_else(|e| e.into_inner());
        let cam = map.get(&id).ok_or_else(unknown)?;
        if self.configured(&id) {
            return Err(RemoveError::Configured(id));
        }
        if cam.online() || cam.lock().stream.is_some() {
            return Err(RemoveError::Online(id));
        }
        map.remove(&id);
        drop(map);
        info!("camera {id} removed");
        self.emit(Event::CamerasChanged);
        Ok(id)
    }

    /// A fresh number for a connection or client.
    pub fn next_conn(&self) -> u64 {
        self.0.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes `camera`'s control link this connection, replacing (and kicking) any older one,
    /// and marks the camera online.
    pub fn attach_control(&self, camera: Arc<Camera>, link: LinkInfo) -> Attached {
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
            st.sensor = link.sensor;
            ota::on_hello(&mut st, link.firmware.as_deref(), link.ota_pending);
            st.firmware = link.firmware;
            st.board = link.board;
            if link.settings.is_some() {
                st.settings = link.settings;
            }
            st.telemetry = None;
        }
        // Before the online event: its subscribers (motion analysis) look at it.
        camera.set_relayed(link.relayed);
        self.emit(Event::Online(Box::new(camera.info())));
        Attached {
            camera,
            conn,
            commands,
            kicked,
        }
    }

    /// Marks the camera offline if `conn` is still its control link.
    pub fn detach_control(&self, camera: &Camera, conn: u64, reason: &str) -> bool {
        {
            let mut st = camera.lock();
            if st.control.as_ref().map(|l| l.conn) != Some(conn) {
                return false;
            }
            st.control = None;
            st.pending.clear();
            st.left_us = now_us();
        }
        self.emit(Event::Offline {
            camera: camera.id.clone(),
            reason: reason.to_string(),
        });
        true
    }

    /// Makes this the camera's stream connection, kicking any older one.
    pub fn attach_stream(&self, camera: &Camera) -> (u64, oneshot::Receiver<()>) {
        let conn = self.next_conn();
        let (kick, kicked) = oneshot::channel();
        camera.lock().stream = Some((conn, kick));
        (conn, kicked)
    }

    /// Forgets the stream connection if `conn` is still the current one.
    pub fn detach_stream(&self, camera: &Camera, conn: u64) {
        let mut st = camera.lock();
        if st.stream.as_ref().map(|s| s.0) == Some(conn) {
            st.stream = None;
            st.left_us = now_us();
        }
    }

    /// Queues `command` to the camera at once, without waiting: commands sent one after the
    /// other through this method reach the camera in that order (one FIFO queue per link,
    /// written by one task). `origin` and `client_id` say who asked; the answer is also
    /// published on the bus as [`Event::Command`] when [`PendingCommand::wait`] ends.
    pub fn send_command(
        &self,
        origin: Origin,
        client_id: Option<u64>,
        camera: &str,
        command: Command,
    ) -> Result<PendingCommand, CommandError> {
        let cam = self.camera(camera).ok_or_else(|| {
            CommandError::UnknownCamera(espcam_proto::close::echo(camera, 40).into())
        })?;
        let mut st = cam.lock();
        let Some(link) = st.control.as_ref().map(|l| l.commands.clone()) else {
            return Err(CommandError::Offline(cam.id.clone()));
        };
        st.next_cmd_id = st.next_cmd_id.wrapping_add(1);
        let hub_id = st.next_cmd_id;
        let msg = CommandMsg {
            id: Some(hub_id),
            camera: None,
            command,
        };
        // Under the camera's lock, so two senders cannot interleave between taking an id
        // and queueing; `try_send` never waits.
        if link.try_send(HubMsg::Command(msg)).is_err() {
            return Err(CommandError::Busy(cam.id.clone()));
        }
        let (tx, rx) = oneshot::channel();
        st.pending.insert(hub_id, tx);
        drop(st);
        Ok(PendingCommand {
            hub: self.clone(),
            camera: cam,
            command,
            hub_id,
            rx,
            origin,
            client_id,
        })
    }

    /// Sends `command` to the camera and waits for its ack (REST: one request at a time).
    pub async fn command(&self, camera: &str, command: Command) -> Result<Ack, CommandError> {
        self.send_command(Origin::Api, None, camera, command)?
            .wait()
            .await
    }

    /// Records an ack from a camera and publishes the settings if they changed.
    pub fn on_ack(&self, camera: &Camera, ack: Ack) {
        let settings = ack.settings;
        if camera.on_ack(ack) {
            self.emit(Event::Settings {
                camera: camera.id.clone(),
                settings,
            });
        }
    }

    /// Records a camera's telemetry, publishing its settings if they changed.
    pub fn on_telemetry(&self, camera: &Camera, telemetry: Telemetry) {
        self.on_settings(camera, telemetry.settings);
        camera.set_telemetry(telemetry);
    }

    /// Records settings reported outside an ack, publishing them on change.
    pub fn on_settings(&self, camera: &Camera, settings: Settings) {
        let changed = {
            let mut st = camera.lock();
            let changed = st.settings != Some(settings);
            st.settings = Some(settings);
            changed
        };
        if changed {
            self.emit(Event::Settings {
                camera: camera.id.clone(),
                settings,
            });
        }
    }

    /// Publishes an event to every subscriber. Never waits.
    pub fn emit(&self, event: Event) {
        // An error only means nobody is subscribed.
        let _ = self.0.events.send(event);
    }

    /// Subscribes to the event bus. A subscriber that falls more than a few hundred events
    /// behind gets `Lagged` and should resync from [`Hub::cameras`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.events.subscribe()
    }

    /// Whether anyone listens to the bus (so the ticker can skip work).
    pub fn has_subscribers(&self) -> bool {
        self.0.events.receiver_count() > 0
    }

    /// Connected browser sockets.
    pub fn ui_clients(&self) -> usize {
        self.0.ui_clients.load(Ordering::Relaxed)
    }

    /// Counts a browser socket while the guard lives, and gives it a client number.
    pub fn ui_client_guard(&self) -> UiGuard {
        self.0.ui_clients.fetch_add(1, Ordering::Relaxed);
        UiGuard {
            hub: self.clone(),
            id: self.next_conn(),
        }
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

    /// Once a `period`: recompute rates, record history, publish telemetry.
    pub async fn tick(&self, period: Duration) {
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
            let listened = self.has_subscribers();
            let now_ms = now_us() / 1000;
            for cam in self.cameras() {
                cam.update_rates(secs, now_ms);
                if listened && cam.online() {
                    self.emit(Event::Telemetry(Box::new(cam.info())));
                }
            }
        }
    }
}

impl PendingCommand {
    /// The hub's correlation id for this command.
    pub fn hub_id(&self) -> u32 {
        self.hub_id
    }

    /// Waits for the camera's ack (at most the configured ack timeout) and publishes the
    /// outcome on the bus.
    pub async fn wait(self) -> Result<Ack, CommandError> {
        let cam = &self.camera;
        let timeout = self.hub.0.config.ack_timeout;
        let result = match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(ack)) if ack.ok => Ok(ack),
            Ok(Ok(ack)) => Err(CommandError::Refused {
                camera: cam.id.clone(),
                command: self.command.to_string(),
                message: ack.error.unwrap_or_else(|| "no reason given".into()),
            }),
            // The link went away (camera disconnected or was replaced) before acking.
            Ok(Err(_)) => Err(CommandError::Disconnected {
                camera: cam.id.clone(),
                command: self.command.to_string(),
            }),
            Err(_) => {
                cam.lock().pending.remove(&self.hub_id);
                Err(CommandError::AckTimeout {
                    camera: cam.id.clone(),
                    command: self.command.to_string(),
                    ms: timeout.as_millis(),
                })
            }
        };
        self.hub.emit(Event::Command {
            origin: self.origin,
            id: self.client_id,
            camera: cam.id.to_string(),
            result: match &result {
                Ok(ack) => Ok(ack.settings),
                Err(e) => Err(CommandFailure {
                    error: e.clone(),
                    settings: matches!(e, CommandError::Refused { .. })
                        .then(|| cam.settings())
                        .flatten(),
                }),
            },
        });
        result
    }
}

/// Counts a browser socket while it lives.
#[derive(Debug)]
pub struct UiGuard {
    hub: Hub,
    /// This client's number (its commands' answers carry it as [`Origin::Ui`]).
    pub id: u64,
}

impl Drop for UiGuard {
    fn drop(&mut self) {
        self.hub.0.ui_clients.fetch_sub(1, Ordering::Relaxed);
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
        assert_eq!(open.admit(&a(&id, "")), Ok(Admitted::Open));
        let locked = hub_with(vec![CameraAuth {
            id: id.clone(),
            token: "s3cret".into(),
            record: None,
        }]);
        assert_eq!(locked.admit(&a(&id, "s3cret")), Ok(Admitted::Listed));
        let err = |r: Result<Admitted, AdmissionError>| r.unwrap_err().to_string();
        assert_eq!(
            err(locked.admit(&a(&id, "nope"))),
            "wrong token for camera cam-1"
        );
        assert_eq!(
            err(locked.admit(&a(&id, ""))),
            "missing token for camera cam-1"
        );
        assert_eq!(
            err(locked.admit(&a(&other, "s3cret"))),
            "camera cam-2 is not in this hub's camera list"
        );
        let v2 = Admission {
            proto: 2,
            camera: &id,
            token: "",
        };
        assert_eq!(
            err(open.admit(&v2)),
            "protocol version 2 unsupported, expected 1"
        );
    }

    #[test]
    fn with_login_required_unlisted_cameras_need_pairing_and_listed_ones_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let auth = espcam_auth::Auth::open_with(dir.path(), espcam_auth::AuthOptions::for_tests())
            .unwrap();
        let mut c = Config::for_tests(dir.path());
        let id = CameraId::new("cam-1").unwrap();
        c.cameras = vec![CameraAuth {
            id: id.clone(),
            token: "s3cret".into(),
            record: None,
        }];
        c.pull = vec!["cam-ap=ws://192.168.4.1/ws".parse().unwrap()];
        let access = Access::new(
            std::sync::Arc::new(auth),
            espcam_auth::ModeDecision::Required,
        );
        let hub = Hub::with_access(c, None, access);
        let a = |camera, token| Admission {
            proto: 1,
            camera,
            token,
        };
        assert_eq!(hub.admit(&a(&id, "s3cret")), Ok(Admitted::Listed));
        assert_eq!(
            hub.admit(&a(&id, "nope")),
            Err(AdmissionError::WrongToken(id.clone()))
        );
        let other = CameraId::new("cam-2").unwrap();
        assert_eq!(hub.admit(&a(&other, "t")), Ok(Admitted::NeedsPairing));
        let ap = CameraId::new("cam-ap").unwrap();
        assert!(matches!(
            hub.admit(&a(&ap, "t")),
            Err(AdmissionError::SourceConflict { .. })
        ));
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    /// Regression (issue 10.1): commands sent one after another reach the camera's link in
    /// that order, whatever the order in which their senders then wait.
    #[tokio::test]
    async fn commands_are_queued_in_the_order_sent() {
        let hub = hub_with(vec![]);
        let id = CameraId::new("cam-1").unwrap();
        let cam = hub.register(&id, Source::Push).unwrap();
        let mut att = hub.attach_control(cam, LinkInfo::default());
        let mut pending = Vec::new();
        for q in 1..=8i64 {
            let c = Command::Quality(espcam_proto::Quality::new(q).unwrap());
            pending.push(hub.send_command(Origin::Ui(1), None, "cam-1", c).unwrap());
        }
        let mut got = Vec::new();
        while let Ok(m) = att.commands.try_recv() {
            if let HubMsg::Command(m) = m {
                got.push(m.command.to_string());
            }
        }
        let want: Vec<String> = (1..=8).map(|q| format!("quality {q}")).collect();
        assert_eq!(got, want);
        drop(pending);
    }

    #[test]
    fn only_a_camera_that_left_and_is_not_configured_can_be_removed() {
        let hub = hub_with(vec![CameraAuth {
            id: CameraId::new("listed").unwrap(),
            token: String::new(),
            record: None,
        }]);
        let id = CameraId::new("cam-1").unwrap();
        let cam = hub.register(&id, Source::Push).unwrap();
        let att = hub.attach_control(cam.clone(), LinkInfo::default());
        assert!(matches!(
            hub.remove_camera("cam-1"),
            Err(RemoveError::Online(_))
        ));
        hub.detach_control(&cam, att.conn, "bye");
        assert!(matches!(
            hub.remove_camera("listed"),
            Err(RemoveError::Configured(_))
        ));
        assert!(matches!(
            hub.remove_camera("nope"),
            Err(RemoveError::UnknownCamera(_))
        ));
        assert_eq!(hub.remove_camera("cam-1").unwrap().as_str(), "cam-1");
        assert!(hub.camera("cam-1").is_none());
    }
}

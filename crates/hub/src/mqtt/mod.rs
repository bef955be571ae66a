//! MQTT and Home Assistant: a service beside the recorder that mirrors the hub onto an MQTT
//! broker with Home Assistant discovery, and turns commands from there into the same
//! commands the dashboard sends.
//!
//! Why it exists: Home Assistant users get every camera as a device — image, sensors,
//! settings, buttons, motion — without writing YAML ([docs/HOME_ASSISTANT.md]).
//!
//! How it stays harmless: it builds only on `state` (the event bus, `Camera::latest()`,
//! `Hub::send_command`). Nothing it does can delay a frame, a viewer or a command: every
//! publication goes into a bounded [`outbox::Outbox`] where a newer message for the same
//! topic replaces the waiting one (state topics are retained, so the newest value is the one
//! that matters; an image waiting for a slow broker is replaced by the next one), and only
//! the pump task waits for the broker. Images come from the camera's newest-frame slot once
//! an interval — shared bytes, no copy, no tap that could hold frames. A lagging event
//! subscription resynchronises from the registry. After every (re)connection — with the
//! camera core's backoff between attempts — all discovery configs and states are published
//! again, so a broker that lost its retained messages is repaired.
//!
//! It must never: block the runtime on the broker, queue without bound while disconnected,
//! log a password, or bypass validation (`Command::from_parts`) and acks for a setting.
//!
//! Motion: `Event::MotionStarted`/`MotionEnded` from the hub's motion analysis drive the
//! motion binary sensor, and a start publishes the newest image at once ([`Mqtt::motion`]).

pub mod config;
pub mod discovery;
pub mod outbox;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use espcam_camera::{Backoff, BackoffConfig};
use espcam_proto::{CameraId, Command, Settings};
use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::recorder::Recorder;
use crate::state::Hub;
use crate::state::camera::CameraInfo;
use crate::state::event::{Event, Origin};
use config::MqttConfig;
use discovery::{CameraDevice, Topics};
use outbox::Outbox;

/// Distinct topics that may wait in the outbox (about 20 per camera for 256 cameras, plus
/// the discovery configs after a reconnect).
const OUTBOX_TOPICS: usize = 16_384;
/// Requests between the pump and the client's event loop; small, so that almost everything
/// waits in the outbox, where newer values replace older ones.
const CLIENT_CHANNEL: usize = 16;
/// How often the recording storage figures are read.
const STORAGE_EVERY: Duration = Duration::from_secs(30);
/// Longest command payload read (a resolution name or a number).
const MAX_COMMAND_PAYLOAD: usize = 64;

/// Handle to the MQTT service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mqtt(Arc<Service>);

/// The service's shared state (see the module docs).
#[derive(Debug)]
pub struct Service {
    hub: Hub,
    recorder: Option<Recorder>,
    config: MqttConfig,
    topics: Topics,
    outbox: Outbox,
    client: AsyncClient,
    connected: AtomicBool,
    /// Cameras whose discovery configs went out, with what their device block said, so a
    /// hello that changes the firmware re-announces and a removed camera is cleared.
    announced: Mutex<HashMap<CameraId, CameraDevice>>,
    /// Per camera: bytes in and when, at the previous telemetry (for the bitrate).
    rates: Mutex<HashMap<CameraId, (u64, Instant)>>,
    /// Retained values that change rarely but are looked at often (recording state, cameras
    /// online): the last one queued, so an unchanged value is not sent again every second.
    /// Cleared on (re)connection, when everything is published again.
    sent: Mutex<HashMap<String, Bytes>>,
    /// Per camera: index of the last frame published as an image.
    last_image: Mutex<HashMap<CameraId, u64>>,
    stop: watch::Sender<bool>,
    /// The connection task, awaited by [`Mqtt::stop`] so the clean disconnect goes out.
    connection_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Mqtt {
    /// Starts the service for `hub`: the connection, the pump, the event follower and the
    /// image ticker. Returns at once; the broker may be down.
    pub fn start(hub: &Hub, recorder: Option<Recorder>, config: MqttConfig) -> Self {
        let topics = Topics::new(&config);
        let mut opts = MqttOptions::new(&config.client_id, &config.host, config.port);
        opts.set_keep_alive(Duration::from_secs(15));
        opts.set_last_will(LastWill::new(
            topics.hub_status(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        // Images are whole JPEGs; commands coming in are small.
        let max_out = hub
            .config()
            .limits
            .max_frame
            .saturating_add(4096)
            .max(65_536);
        opts.set_max_packet_size(64 * 1024, max_out);
        if let Some((u, p)) = &config.credentials {
            opts.set_credentials(u, p);
        }
        let (client, eventloop) = AsyncClient::new(opts, CLIENT_CHANNEL);
        let svc = Arc::new(Service {
            hub: hub.clone(),
            recorder,
            topics,
            outbox: Outbox::new(OUTBOX_TOPICS),
            client,
            connected: AtomicBool::new(false),
            announced: Mutex::new(HashMap::new()),
            rates: Mutex::new(HashMap::new()),
            last_image: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
            stop: watch::Sender::new(false),
            connection_task: Mutex::new(None),
            config,
        });
        info!(
            "mqtt: publishing to {}:{} (topics {}/…, discovery {}/…)",
            svc.config.host, svc.config.port, svc.config.topic_prefix, svc.config.discovery_prefix
        );
        let conn = tokio::spawn(svc.clone().connection(eventloop));
        *svc.connection_task
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(conn);
        tokio::spawn(svc.clone().pump());
        tokio::spawn(svc.clone().follow(hub.subscribe()));
        tokio::spawn(svc.clone().ticker());
        Mqtt(svc)
    }

    /// Whether the broker connection is up.
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed)
    }

    /// Messages waiting for the broker.
    pub fn waiting(&self) -> usize {
        self.0.outbox.len()
    }

    /// Messages replaced by newer ones before the broker took them, and dropped by the bound.
    pub fn replaced_dropped(&self) -> (u64, u64) {
        (self.0.outbox.replaced(), self.0.outbox.dropped())
    }

    /// Motion started (`true`) or ended on a camera: the motion binary sensor's state, and on
    /// a start the newest image at once. The hook for `Event::MotionStarted/MotionEnded`.
    pub fn motion(&self, camera: &CameraId, active: bool) {
        self.0.motion(camera, active);
    }

    /// Stops the service: `offline` on the hub's availability topic and a clean disconnect
    /// (the last will is then not sent), waiting at most `within`. Stopping the hub does
    /// the same; this waits for it.
    pub async fn stop(&self, within: Duration) {
        self.0.stop.send_replace(true);
        let task = self
            .0
            .connection_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(within, t).await;
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "ON" } else { "OFF" }
}

/// Peer or broker text for a log line: escaped and cut.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    format!("{out:?}")
}

impl Service {
    fn publish(&self, topic: String, payload: impl Into<Bytes>, retain: bool) {
        self.outbox.push(topic, payload.into(), retain);
    }

    /// Publishes a retained value unless it is the one queued last for this topic.
    fn publish_changed(&self, topic: String, payload: impl Into<Bytes>) {
        let payload = payload.into();
        {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            if sent.get(&topic) == Some(&payload) {
                return;
            }
            sent.insert(topic.clone(), payload.clone());
        }
        self.publish(topic, payload, true);
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow() || *self.hub.shutdown_signal().borrow()
    }

    /// Waits until the service or the hub stops.
    async fn stopped(&self) {
        let mut a = self.stop.subscribe();
        let mut b = self.hub.shutdown_signal();
        if *a.borrow() || *b.borrow() {
            return;
        }
        tokio::select! {
            _ = a.changed() => {}
            _ = b.changed() => {}
        }
    }

    /// Owns the client's event loop: connects, reconnects with backoff, takes commands in.
    async fn connection(self: Arc<Self>, mut el: EventLoop) {
        let mut backoff = Backoff::new(BackoffConfig {
            stable: Duration::from_secs(10),
            ..BackoffConfig::default()
        });
        let epoch = Instant::now();
        let ms = || epoch.elapsed().as_millis() as u64;
        let mut warned = false;
        loop {
            let polled = tokio::select! {
                r = el.poll() => r,
                _ = self.stopped() => break,
            };
            match polled {
                Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.connected(ms());
                    warned = false;
                    info!(
                        "mqtt: connected to {}:{}",
                        self.config.host, self.config.port
                    );
                    self.connected.store(true, Ordering::Relaxed);
                    // Subscribing goes through the channel this task drains: not awaited here.
                    tokio::spawn(self.clone().on_connect());
                }
                Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => self.incoming(p),
                Ok(_) => {}
                Err(e) => {
                    let was = self.connected.swap(false, Ordering::Relaxed);
                    if was || !warned {
                        warn!(
                            "mqtt: broker {}:{}: {e} (retrying with backoff; frames and viewers are unaffected)",
                            self.config.host, self.config.port
                        );
                        warned = true;
                    } else {
                        debug!("mqtt: {e}");
                    }
                    let delay = backoff.failed(ms(), fastrand::u64(..));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stopped() => break,
                    }
                }
            }
        }
        if !self.connected.swap(false, Ordering::Relaxed) {
            return;
        }
        // A clean goodbye: the retained `offline`, then DISCONNECT (so no last will).
        let _ =
            self.client
                .try_publish(self.topics.hub_status(), QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(ev) = el.poll().await {
                if matches!(ev, rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }

    /// After a (re)connection: subscriptions, then every config and state again.
    async fn on_connect(self: Arc<Self>) {
        let subs = [
            rumqttc::SubscribeFilter::new(self.topics.command_filter(), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new(self.topics.ha_status(), QoS::AtLeastOnce),
        ];
        if let Err(e) = self.client.subscribe_many(subs).await {
            warn!("mqtt: could not subscribe: {e}");
        }
        self.publish(self.topics.hub_status(), "online", true);
        self.announce_all();
    }

    /// Every discovery config and state, as after a (re)connection.
    fn announce_all(self: &Arc<Self>) {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clear();
        for (topic, v) in discovery::hub_configs(&self.topics) {
            self.publish(topic, v.to_string(), true);
        }
        self.lock_announced().clear();
        for cam in self.hub.cameras() {
            let info = cam.info();
            self.announce(&info);
            self.camera_state(&info);
        }
        self.publish_hub_state(true);
    }

    fn lock_announced(&self) -> std::sync::MutexGuard<'_, HashMap<CameraId, CameraDevice>> {
        self.announced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a camera's discovery configs if they are not out yet or its device changed.
    fn announce(&self, info: &CameraInfo) {
        let dev = CameraDevice::new(info.sensor.as_deref(), info.firmware.as_deref());
        {
            let mut a = self.lock_announced();
            let known = a.get(&info.id);
            // A camera that has not said hello yet keeps the device block it had.
            if known == Some(&dev) || (known.is_some() && info.sensor.is_none()) {
                return;
            }
            a.insert(info.id.clone(), dev.clone());
        }
        for (topic, v) in discovery::camera_configs(&self.topics, &info.id, &dev) {
            self.publish(topic, v.to_string(), true);
        }
        self.publish(self.topics.camera(&info.id, "motion"), "OFF", true);
    }

    /// Every state topic of a camera.
    fn camera_state(&self, info: &CameraInfo) {
        let id = &info.id;
        self.publish(
            self.topics.camera(id, "online"),
            if info.online { "online" } else { "offline" },
            true,
        );
        if let Some(s) = info.settings {
            self.settings(id, &s);
        }
        self.recording_state(id);
        if info.telemetry.is_some() {
            self.telemetry(info);
        }
    }

    fn recording_state(&self, id: &CameraId) {
        if let Some(r) = &self.recorder {
            let st = r.camera(id);
            self.publish_changed(
                self.topics.camera(id, "recording"),
                on_off(st.manual || st.recording),
            );
        }
    }

    fn settings(&self, id: &CameraId, s: &Settings) {
        let t = &self.topics;
        self.publish(t.camera(id, "resolution"), s.resolution.name(), true);
        self.publish(t.camera(id, "quality"), s.quality.get().to_string(), true);
        self.publish(
            t.camera(id, "brightness"),
            s.brightness.get().to_string(),
            true,
        );
        self.publish(t.camera(id, "vflip"), on_off(s.vflip), true);
        self.publish(t.camera(id, "hmirror"), on_off(s.hmirror), true);
    }

    /// The settings in force now (after a refused or failed command).
    fn true_settings(&self, id: &CameraId) {
        if let Some(s) = self.hub.camera(id.as_str()).and_then(|c| c.settings()) {
            self.settings(id, &s);
        }
    }

    fn telemetry(&self, info: &CameraInfo) {
        let now = Instant::now();
        let kbps = {
            let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            let prev = r.insert(info.id.clone(), (info.bytes_in, now));
            match prev {
                Some((b, at)) if info.bytes_in >= b => {
                    let secs = now.duration_since(at).as_secs_f64().max(0.001);
                    ((info.bytes_in - b) as f64 * 8.0 / 1000.0 / secs).round()
                }
                _ => 0.0,
            }
        };
        let t = info.telemetry.as_ref();
        let v = json!({
            "fps": (info.fps_in * 10.0).round() / 10.0,
            "bitrate_kbps": kbps,
            "rssi": t.and_then(|t| t.rssi),
            "heap_free": t.map(|t| t.heap_free),
            "psram_free": t.map(|t| t.psram_free),
            "uptime_s": t.map(|t| t.uptime_ms / 1000),
            "viewers": info.viewers,
        });
        self.publish(
            self.topics.camera(&info.id, "telemetry"),
            v.to_string(),
            true,
        );
    }

    /// Cameras online, and the recording storage figures when `storage` is set (read on a
    /// blocking thread: the recordings index is SQLite).
    fn publish_hub_state(self: &Arc<Self>, storage: bool) {
        let online = self.hub.cameras().iter().filter(|c| c.online()).count();
        self.publish_changed(self.topics.hub("cameras_online"), online.to_string());
        let Some(lib) = storage
            .then(|| self.recorder.as_ref().and_then(|r| r.recordings()))
            .flatten()
        else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let read = tokio::task::spawn_blocking(move || {
                let used = lib
                    .usage()
                    .ok()
                    .map(|u| u.iter().map(|u| u.bytes).sum::<u64>());
                (used, lib.disk_free().ok())
            })
            .await;
            if let Ok((used, free)) = read {
                if let Some(u) = used {
                    me.publish(me.topics.hub("recording_used_bytes"), u.to_string(), true);
                }
                if let Some(f) = free {
                    me.publish(me.topics.hub("disk_free_bytes"), f.to_string(), true);
                }
            }
        });
    }

    fn motion(&self, id: &CameraId, active: bool) {
        self.publish(self.topics.camera(id, "motion"), on_off(active), true);
        if active && let Some(cam) = self.hub.camera(id.as_str()) {
            self.image(&cam, true);
        }
    }

    /// The camera's newest frame on its image topic, unless it went out already.
    fn image(&self, cam: &crate::state::camera::Camera, force: bool) {
        let Some(f) = cam.latest() else { return };
        {
            let mut last = self.last_image.lock().unwrap_or_else(|e| e.into_inner());
            if !force && last.get(&cam.id) == Some(&f.index) {
                return;
            }
            last.insert(cam.id.clone(), f.index);
        }
        self.publish(self.topics.camera(&cam.id, "image"), f.jpeg.clone(), false);
    }

    /// Cameras no longer in the registry: their discovery configs and states are cleared
    /// (empty retained payloads), so Home Assistant removes the device.
    fn forget_removed(&self) {
        let present: std::collections::HashSet<CameraId> =
            self.hub.cameras().iter().map(|c| c.id.clone()).collect();
        let gone: Vec<CameraId> = {
            let mut a = self.lock_announced();
            let gone: Vec<CameraId> = a
                .keys()
                .filter(|id| !present.contains(*id))
                .cloned()
                .collect();
            for id in &gone {
                a.remove(id);
            }
            gone
        };
        for id in gone {
            info!("mqtt: camera {id} removed: clearing its Home Assistant device");
            self.sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.topics.camera(&id, "recording"));
            for topic in discovery::camera_config_topics(&self.topics, &id) {
                self.publish(topic, Bytes::new(), true);
            }
            for leaf in [
                "online",
                "telemetry",
                "resolution",
                "quality",
                "brightness",
                "vflip",
                "hmirror",
                "recording",
                "motion",
            ] {
                self.publish(self.topics.camera(&id, leaf), Bytes::new(), true);
            }
        }
    }

    /// Follows the event bus.
    async fn follow(self: Arc<Self>, mut rx: broadcast::Receiver<Event>) {
        loop {
            let ev = tokio::select! {
                r = rx.recv() => r,
                _ = self.stopped() => return,
            };
            match ev {
                Ok(ev) => self.on_event(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!("mqtt: missed {n} events; resynchronising from the registry");
                    self.forget_removed();
                    for cam in self.hub.cameras() {
                        let info = cam.info();
                        self.announce(&info);
                        self.camera_state(&info);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// One event from the bus.
    pub fn on_event(self: &Arc<Self>, ev: Event) {
        match ev {
            Event::Online(info) => {
                self.announce(&info);
                self.camera_state(&info);
                self.publish_hub_state(false);
            }
            Event::Offline { camera, .. } => {
                self.publish(self.topics.camera(&camera, "online"), "offline", true);
                self.publish_hub_state(false);
            }
            Event::Settings { camera, settings } => self.settings(&camera, &settings),
            Event::Telemetry(info) => {
                self.announce(&info);
                self.telemetry(&info);
                self.recording_state(&info.id);
            }
            Event::Command {
                origin: Origin::Mqtt,
                camera,
                result: Err(f),
                ..
            } => {
                if let Ok(id) = CameraId::new(&camera) {
                    self.true_settings(&id);
                }
                debug!("mqtt: command to camera {}: {}", shown(&camera), f.error);
            }
            Event::CamerasChanged => {
                self.forget_removed();
                self.publish_hub_state(false);
            }
            Event::MotionStarted(m) => self.motion(&m.camera, true),
            Event::MotionEnded(m) => self.motion(&m.camera, false),
            _ => {}
        }
    }

    /// Images once an interval, storage figures now and then.
    async fn ticker(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.config.image_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut storage_at = Instant::now();
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = self.stopped() => return,
            }
            for cam in self.hub.cameras() {
                if cam.online() {
                    self.image(&cam, false);
                }
            }
            if storage_at.elapsed() >= STORAGE_EVERY {
                storage_at = Instant::now();
                self.publish_hub_state(true);
            }
        }
    }

    /// Hands messages from the outbox to the client; the only task that waits for the broker.
    async fn pump(self: Arc<Self>) {
        loop {
            let m = tokio::select! {
                m = self.outbox.pop() => m,
                _ = self.stopped() => return,
            };
            // Retained state at least once; images and telemetry are superseded anyway.
            let qos = if m.retain && !m.topic.ends_with("/telemetry") {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            };
            let sent = tokio::select! {
                r = self.client.publish_bytes(m.topic, qos, m.retain, m.payload) => r,
                _ = self.stopped() => return,
            };
            if sent.is_err() && self.stopping() {
                return;
            }
        }
    }

    /// A message from the broker: a command, or Home Assistant coming online.
    fn incoming(self: &Arc<Self>, p: Publish) {
        let topic = p.topic.as_str();
        let payload = &p.payload[..p.payload.len().min(MAX_COMMAND_PAYLOAD)];
        let payload = String::from_utf8_lossy(payload).trim().to_string();
        if topic == self.topics.ha_status() {
            if payload == "online" {
                info!("mqtt: Home Assistant (re)started: publishing discovery again");
                self.publish(self.topics.hub_status(), "online", true);
                self.announce_all();
            }
            return;
        }
        let Some((camera, leaf)) = self.topics.parse_command(topic) else {
            return;
        };
        let Ok(id) = CameraId::new(camera) else {
            warn!("mqtt: command for invalid camera id {}", shown(camera));
            return;
        };
        match leaf {
            "recording" => self.recording_command(&id, &payload),
            "snapshot" => {
                tokio::spawn(self.clone().snapshot(id));
            }
            _ => self.camera_command(&id, leaf, &payload),
        }
    }

    fn recording_command(&self, id: &CameraId, payload: &str) {
        // Whatever happens, Home Assistant hears the state in force again.
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.topics.camera(id, "recording"));
        let Some(r) = &self.recorder else {
            warn!("mqtt: camera {id}: recording is unavailable on this hub");
            self.recording_state(id);
            return;
        };
        match payload {
            "ON" | "OFF" => r.set_manual(id, payload == "ON"),
            other => warn!(
                "mqtt: camera {id}: recording payload {} is invalid: expected ON or OFF",
                shown(other)
            ),
        }
        self.recording_state(id);
    }

    /// A setting or reboot, validated like the dashboard's, sent through the hub's command
    /// path; the state topics show the value in force once the camera answered.
    fn camera_command(self: &Arc<Self>, id: &CameraId, leaf: &str, payload: &str) {
        let value = match leaf {
            "quality" | "brightness" => match payload.parse::<f64>() {
                // Home Assistant may send `12.0` for an integer step.
                Ok(n) if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e9 => {
                    Value::from(n as i64)
                }
                _ => Value::String(payload.to_string()),
            },
            "vflip" | "hmirror" => match payload {
                "ON" => Value::Bool(true),
                "OFF" => Value::Bool(false),
                other => Value::String(other.to_string()),
            },
            _ => Value::String(payload.to_string()),
        };
        let command = match Command::from_parts(leaf, Some(&value)) {
            Ok(c) => c,
            Err(e) => {
                warn!(
                    "mqtt: camera {id}: command {} refused: {e}",
                    shown(&format!("{leaf}={payload}"))
                );
                self.true_settings(id);
                return;
            }
        };
        let pending = match self
            .hub
            .send_command(Origin::Mqtt, None, id.as_str(), command)
        {
            Ok(p) => p,
            Err(e) => {
                warn!("mqtt: camera {id}: {command}: {e}");
                self.true_settings(id);
                return;
            }
        };
        let me = self.clone();
        let id = id.clone();
        tokio::spawn(async move {
            match pending.wait().await {
                Ok(ack) => {
                    me.settings(&id, &ack.settings);
                    me.audit(&id, command).await;
                }
                Err(e) => {
                    warn!("mqtt: camera {id}: {command}: {e}");
                    me.true_settings(&id);
                }
            }
        });
    }

    async fn audit(&self, id: &CameraId, command: Command) {
        use espcam_auth::{Actor, AuditAction};
        let action = match command {
            Command::Reboot => AuditAction::Reboot,
            _ => AuditAction::Settings,
        };
        // No MQTT actor exists in the audit log yet: the detail says where it came from.
        self.hub
            .access()
            .audit(
                &Actor::Anonymous,
                action,
                id.as_str(),
                &format!("via MQTT: {command}"),
                None,
            )
            .await;
    }

    async fn snapshot(self: Arc<Self>, id: CameraId) {
        let (Some(cam), Some(store)) = (self.hub.camera(id.as_str()), self.hub.store()) else {
            warn!("mqtt: camera {id}: no snapshot: unknown camera or snapshots unavailable");
            return;
        };
        let Some(frame) = cam.latest() else {
            warn!("mqtt: camera {id}: no snapshot: no frame received yet");
            return;
        };
        let cam_id = id.clone();
        let saved = tokio::task::spawn_blocking(move || {
            store.save(espcam_store::NewSnapshot {
                camera: &cam_id,
                taken_at_us: frame.captured_us.unwrap_or(frame.received_us),
                jpeg: &frame.jpeg,
            })
        })
        .await;
        match saved {
            Ok(Ok(snap)) => {
                info!(
                    "snapshot {} saved from camera {} (MQTT)",
                    snap.id, snap.camera
                );
                self.hub.emit(Event::SnapshotSaved(snap));
            }
            Ok(Err(e)) => warn!("mqtt: camera {id}: could not save snapshot: {e}"),
            Err(e) => warn!("mqtt: camera {id}: snapshot task failed: {e}"),
        }
    }
}

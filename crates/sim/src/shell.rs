//! The virtual camera's shell: one tokio task per camera that owns an `espcam-camera` core,
//! performs its outputs with real WebSockets, and feeds back what happened. Per-connection
//! tasks move bytes; every decision (pacing, acks, backoff, client limits) stays in the core.
//!
//! This module must never decide protocol behaviour itself; only the faults injected from a
//! [`CameraHandle`](crate::CameraHandle) deliberately break the rules.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use espcam_camera::{
    CLOSE_NORMAL, CLOSE_RESTART, Camera, CapturedFrame, Config, ConnId, FetchId, FrameDecision,
    Health, Instant, Link, LinkStatus, Output, Sensor, SensorError, Setting,
};
use espcam_proto::{HEADER_LEN, Settings};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::ota::{SimFlash, Slots, fetch_range};
use crate::picture::{FrameSet, PictureError, Scene, frame_set};
use crate::{CameraStatus, Fault, HubEndpoint};

/// Largest message a virtual camera accepts from a peer: commands and hub replies are small.
pub(crate) const MAX_INBOUND: usize = 64 * 1024;
/// Messages queued towards one connection before it counts as stuck and is dropped.
const CONN_QUEUE: usize = 32;

pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_INBOUND))
        .max_frame_size(Some(MAX_INBOUND))
}

/// The synthetic sensor: takes settings at once; the frames for them are fetched (and if
/// needed encoded) by the shell at the next capture.
#[derive(Debug)]
pub(crate) struct VirtualSensor {
    settings: Settings,
    frames: Option<Arc<FrameSet>>,
}

impl Sensor for VirtualSensor {
    fn set(&mut self, setting: Setting) -> Result<(), SensorError> {
        setting.apply_to(&mut self.settings);
        Ok(())
    }
}

/// What the per-connection tasks tell the camera task.
pub(crate) enum Event {
    Connected(ConnId),
    Closed(ConnId),
    Text(ConnId, String),
    Sent(ConnId),
    /// The peer sent a close frame (with this code); the connection task waits for the
    /// core's answer.
    CloseFrame(ConnId, Option<u16>),
    /// A firmware range request ended.
    OtaData(FetchId, Result<Bytes, String>),
}

/// Standalone mode: a WebSocket client that finished its handshake on `/ws`.
pub(crate) type NewClient = Box<WebSocketStream<TcpStream>>;

/// Capacity of a boot's event channel; readers wait when it is full, which pushes back on
/// their peers through TCP instead of buffering without bound.
const EVENTS: usize = 256;

/// What the camera task tells one connection task.
enum ConnCmd {
    Send(Message),
    /// A frame; report `Sent` once the socket took it.
    Frame(Bytes),
    Close(u16, String),
    /// Drop the TCP connection without a close frame (camera lost power / Wi-Fi).
    Vanish,
}

/// What a [`CameraHandle`](crate::CameraHandle) tells the camera task.
pub(crate) enum Control {
    Fault(Fault),
    /// Close every connection properly and end.
    Stop,
}

/// Where the camera's links go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Hub {
        /// Each hub's URLs and TLS, in failover order (at least one).
        hubs: Vec<HubEndpoint>,
    },
    Standalone,
}

pub(crate) struct ShellConfig {
    pub(crate) core: Config,
    pub(crate) target: Target,
    pub(crate) label: String,
    pub(crate) reboot_delay: Duration,
    pub(crate) scene: Scene,
    /// Size of the virtual OTA partition, bytes.
    pub(crate) ota_capacity: u32,
}

pub(crate) struct Shell {
    config: ShellConfig,
    cam: Camera<VirtualSensor, SimFlash>,
    /// Which firmware boots, across reboots.
    slots: Slots,
    /// Origin of the core's clock: the current boot.
    boot: tokio::time::Instant,
    /// Senders to the live connection tasks, by the core's connection id.
    conns: HashMap<ConnId, mpsc::Sender<ConnCmd>>,
    /// Cloned into every connection task so they can report back. A new channel per boot:
    /// connection ids restart with each core, so a late event from the previous boot's
    /// connections must not reach the new core (it goes to the dropped receiver instead).
    events_tx: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    /// Standalone mode: clients accepted by the listener task, for the core to admit.
    clients_rx: Option<mpsc::Receiver<NewClient>>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    status: watch::Sender<CameraStatus>,
    boots: u32,
    captures: u64,
    truncate_next: bool,
    /// Bytes per second every link may carry (0: unlimited); read by the connection tasks.
    throttle: Arc<AtomicU32>,
    /// The last frame sent (its sequence and bytes), for clients the core says are owed
    /// it; replaced by every new frame, so never more than one is held.
    newest: Option<(u32, Bytes)>,
    /// What the camera looks at, and since when (the scene's own clock; kept over reboots).
    scene: (Scene, tokio::time::Instant),
    /// `Lighting` scene: the frames at the stepped brightness, for the current settings.
    lit_frames: Option<Arc<FrameSet>>,
}

impl Shell {
    pub(crate) fn new(
        config: ShellConfig,
        clients_rx: Option<mpsc::Receiver<NewClient>>,
        control_rx: mpsc::UnboundedReceiver<Control>,
        status: watch::Sender<CameraStatus>,
    ) -> Self {
        let boot = tokio::time::Instant::now();
        let scene = config.scene;
        let confirm = config.core.ota.confirm_window.as_secs();
        let slots = Slots::new(config.core.firmware.clone(), confirm);
        let cam = Self::boot_core(&config, &slots, Instant::ZERO);
        let (events_tx, events_rx) = mpsc::channel(EVENTS);
        Self {
            config,
            cam,
            slots,
            boot,
            conns: HashMap::new(),
            events_tx,
            events_rx,
            clients_rx,
            control_rx,
            status,
            boots: 1,
            captures: 0,
            truncate_next: false,
            throttle: Arc::new(AtomicU32::new(0)),
            newest: None,
            scene: (scene, boot),
            lit_frames: None,
        }
    }

    fn boot_core(
        config: &ShellConfig,
        slots: &Slots,
        now: Instant,
    ) -> Camera<VirtualSensor, SimFlash> {
        let sensor = VirtualSensor {
            settings: config.core.settings,
            frames: None,
        };
        let mut core = config.core.clone();
        core.firmware = slots.running.clone();
        core.ota_boot = slots.boot.clone();
        let flash = SimFlash::new(config.ota_capacity);
        let mut cam = Camera::with_ota(core, sensor, flash, now);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        cam.set_wall_clock(now, unix);
        cam.set_health(Health {
            heap_free: 200_000,
            psram_free: 8_000_000,
            rssi: None,
        });
        cam
    }

    fn now(&self) -> Instant {
        let us = self.boot.elapsed().as_micros();
        Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    pub(crate) async fn run(mut self) {
        // Sensor start-up: have the frames for the boot settings ready before the first
        // capture, as a real camera initialises its sensor before it connects.
        if let Err(e) = self.frames().await {
            tracing::warn!(camera = %self.config.label, error = %e, "sensor start-up failed");
        }
        loop {
            self.drain().await;
            if self.cam.is_rebooting() {
                self.reboot().await;
                continue;
            }
            self.publish();
            let deadline = self
                .cam
                .poll_timeout()
                .map(|t| self.boot + Duration::from_micros(t.as_micros()));
            tokio::select! {
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.cam.handle_timeout(now);
                }
                Some(ev) = self.events_rx.recv() => self.event(ev),
                Some(ws) = next_client(&mut self.clients_rx) => self.client(ws),
                ctl = self.control_rx.recv() => match ctl {
                    Some(Control::Fault(f)) => self.fault(f).await,
                    Some(Control::Stop) | None => {
                        self.close_all(CLOSE_NORMAL, "camera stopping").await;
                        return;
                    }
                },
            }
        }
    }

    fn event(&mut self, ev: Event) {
        let now = self.now();
        match ev {
            Event::Connected(c) => self.cam.handle_connected(now, c),
            Event::Closed(c) => {
                self.conns.remove(&c);
                self.cam.handle_closed(now, c);
            }
            Event::Text(c, t) => self.cam.handle_text(now, c, &t),
            Event::Sent(c) => {
                // A client that missed frames while busy gets the newest one next.
                let mut next = self.cam.handle_frame_sent(now, c);
                while let Some(f) = next.take() {
                    match &self.newest {
                        Some((seq, bytes)) if *seq == f.info.sequence => {
                            let bytes = bytes.clone();
                            self.send(c, ConnCmd::Frame(bytes));
                        }
                        // Cannot happen (both sides update on the same Send), but a client
                        // must never stay marked busy with nothing on its way.
                        _ => next = self.cam.handle_frame_sent(now, c),
                    }
                }
            }
            Event::CloseFrame(c, code) => self.cam.handle_close_frame(now, c, code),
            Event::OtaData(fetch, Ok(body)) => self.cam.handle_ota_data(now, fetch, &body),
            Event::OtaData(fetch, Err(e)) => self.cam.handle_ota_failed(now, fetch, &e),
        }
    }

    fn client(&mut self, ws: NewClient) {
        let now = self.now();
        match self.cam.handle_client_open(now) {
            Ok(conn) => self.spawn_conn(conn, ConnSource::Accepted(ws)),
            Err(refused) => {
                tokio::spawn(refuse(*ws, refused.code, refused.reason));
            }
        }
    }

    /// The hub the core is on now (its failover index into the list); `None` standalone.
    fn hub(&self) -> Option<&HubEndpoint> {
        let Target::Hub { hubs } = &self.config.target else {
            return None;
        };
        hubs.get(self.cam.hub_index()).or(hubs.first())
    }

    /// Performs every pending output of the core.
    async fn drain(&mut self) {
        while let Some(out) = self.cam.poll_output() {
            match out {
                Output::Connect { conn, link } => {
                    let Some(hub) = self.hub() else {
                        continue;
                    };
                    let url = match link {
                        Link::Control => hub.control_url.clone(),
                        Link::Stream => hub.stream_url.clone(),
                    };
                    let tls = hub.tls.clone();
                    self.spawn_conn(conn, ConnSource::Connect(url, tls));
                }
                Output::Text { conn, text } => self.send(conn, ConnCmd::Send(Message::text(text))),
                Output::Close { conn, code, reason } => {
                    tracing::debug!(camera = %self.config.label, conn = conn.get(), code, %reason, "closing");
                    if let Some(tx) = self.conns.remove(&conn) {
                        let _ = tx.try_send(ConnCmd::Close(code, reason));
                    }
                }
                Output::Capture => self.capture().await,
                // Handled by `run` once everything before it was sent.
                Output::Reboot => {}
                Output::OtaFetch {
                    fetch,
                    url,
                    offset,
                    len,
                } => {
                    let events = self.events_tx.clone();
                    // Over `https://` from a `wss://` hub, with the links' pin.
                    let (url, tls) = match self.hub() {
                        Some(hub) => (crate::ota::resolve(&hub.control_url, &url), hub.tls.clone()),
                        None => (url, None),
                    };
                    tokio::spawn(async move {
                        let r = fetch_range(&tls, &url, offset, len).await;
                        let _ = events.send(Event::OtaData(fetch, r)).await;
                    });
                }
                Output::SetBootAndReboot => {
                    if let Some(v) = self.cam.ota_sink().finished() {
                        tracing::info!(camera = %self.config.label, version = %v, "firmware installed");
                        self.slots.installed(v.to_string());
                    }
                }
                Output::ConfirmImage => {
                    tracing::info!(camera = %self.config.label, version = %self.slots.running, "firmware confirmed");
                    self.slots.confirmed();
                }
                Output::RollbackAndReboot => {
                    let why = format!(
                        "{} did not reach the hub within {} s",
                        self.slots.running,
                        self.config.core.ota.confirm_window.as_secs()
                    );
                    tracing::warn!(camera = %self.config.label, %why, "rolling back");
                    self.slots.rollback(why);
                }
            }
        }
    }

    async fn capture(&mut self) {
        let now = self.now();
        let frames = match self.frames().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(camera = %self.config.label, error = %e, "capture failed");
                self.cam.handle_capture_failed(now);
                return;
            }
        };
        let (scene, since) = self.scene;
        let elapsed = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let frames = if scene.lit_step(elapsed) {
            self.lit_frames().await.unwrap_or(frames)
        } else {
            frames
        };
        let seq = self.cam.stats(now).frames_sent;
        // What the sensor really uses (the quality may be adapted to the link).
        let s = self.cam.sensor().settings;
        let clock = wall_clock_text();
        let seq_text = format!("#{seq:06}");
        let settings_text = format!(
            "{} Q{} B{:+}",
            s.resolution.name(),
            s.quality.get(),
            s.brightness.get()
        );
        let lines = [
            self.config.label.as_str(),
            &seq_text,
            &clock,
            &settings_text,
        ];
        let mut buf = BytesMut::with_capacity(HEADER_LEN + 64 * 1024);
        buf.resize(HEADER_LEN, 0);
        frames.compose_scene(scene, self.captures, elapsed, &lines, &mut buf);
        self.captures += 1;
        let frame = CapturedFrame {
            captured_at: now,
            width: frames.width(),
            height: frames.height(),
            len: buf.len() - HEADER_LEN,
        };
        let FrameDecision::Send(send) = self.cam.handle_frame(now, &frame) else {
            return;
        };
        if let Some(h) = send.header {
            buf[..HEADER_LEN].copy_from_slice(&h);
        }
        let mut bytes = buf.freeze();
        if send.header.is_none() {
            bytes = bytes.slice(HEADER_LEN..);
        }
        if std::mem::take(&mut self.truncate_next) {
            bytes.truncate(bytes.len() / 2);
        }
        for conn in send.targets.as_slice() {
            self.send(*conn, ConnCmd::Frame(bytes.clone()));
        }
        self.newest = Some((send.info.sequence, bytes));
    }

    /// The encoded frames for the sensor's current settings.
    async fn frames(&mut self) -> Result<Arc<FrameSet>, PictureError> {
        let settings = self.cam.sensor().settings;
        if let Some(f) = &self.cam.sensor().frames
            && *f.settings() == settings
        {
            return Ok(f.clone());
        }
        let f = frame_set(settings).await?;
        self.cam.sensor_mut().frames = Some(f.clone());
        Ok(f)
    }

    /// `Lighting` scene: the frames one brightness step up from the settings (down at the
    /// top of the range), from the shared cache.
    async fn lit_frames(&mut self) -> Result<Arc<FrameSet>, PictureError> {
        let mut settings = self.cam.sensor().settings;
        let b = settings.brightness.get();
        let stepped = if b < 2 { b + 1 } else { b - 1 };
        settings.brightness =
            espcam_proto::Brightness::new(i64::from(stepped)).unwrap_or(settings.brightness);
        if let Some(f) = &self.lit_frames
            && *f.settings() == settings
        {
            return Ok(f.clone());
        }
        let f = frame_set(settings).await?;
        self.lit_frames = Some(f.clone());
        Ok(f)
    }

    fn send(&mut self, conn: ConnId, cmd: ConnCmd) {
        let Some(tx) = self.conns.get(&conn) else {
            return;
        };
        if tx.try_send(cmd).is_err() {
            // The connection is stuck or gone: treat it as lost rather than queue forever.
            if let Some(tx) = self.conns.remove(&conn) {
                let _ = tx.try_send(ConnCmd::Vanish);
            }
            let now = self.now();
            self.cam.handle_closed(now, conn);
        }
    }

    fn spawn_conn(&mut self, conn: ConnId, source: ConnSource) {
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        self.conns.insert(conn, tx);
        let throttle = self.throttle.clone();
        tokio::spawn(run_conn(conn, source, self.events_tx.clone(), rx, throttle));
    }

    async fn close_all(&mut self, code: u16, reason: &str) {
        for (_, tx) in self.conns.drain() {
            let _ = tx.send(ConnCmd::Close(code, reason.to_string())).await;
        }
    }

    async fn reboot(&mut self) {
        tracing::info!(camera = %self.config.label, "rebooting");
        self.close_all(CLOSE_RESTART, "camera restarting").await;
        self.publish_offline();
        tokio::time::sleep(self.config.reboot_delay).await;
        // Events about the old boot's connections are stale: the new core never issued them.
        (self.events_tx, self.events_rx) = mpsc::channel(EVENTS);
        self.boot = tokio::time::Instant::now();
        self.slots.restart();
        self.cam = Self::boot_core(&self.config, &self.slots, Instant::ZERO);
        self.boots += 1;
        self.captures = 0;
        self.newest = None;
        let _ = self.frames().await;
    }

    async fn fault(&mut self, fault: Fault) {
        tracing::info!(camera = %self.config.label, ?fault, "injecting fault");
        match fault {
            Fault::DropLinks => {
                let now = self.now();
                for (conn, tx) in std::mem::take(&mut self.conns) {
                    let _ = tx.try_send(ConnCmd::Vanish);
                    self.cam.handle_closed(now, conn);
                }
            }
            Fault::Stall(d) => {
                self.publish();
                tokio::time::sleep(d).await;
            }
            Fault::TruncateNextFrame => self.truncate_next = true,
            Fault::Garbage => {
                let garbage = Bytes::from_static(b"\x00\x01garbage\xff\xfe not a frame");
                let conns: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in conns {
                    self.send(conn, ConnCmd::Send(Message::Binary(garbage.clone())));
                    self.send(conn, ConnCmd::Send(Message::text("{garbage")));
                }
            }
            Fault::Reboot => self.reboot().await,
            Fault::Throttle(rate) => self.throttle.store(rate.unwrap_or(0), Ordering::Relaxed),
            Fault::Scene(scene) => self.scene = (scene, tokio::time::Instant::now()),
        }
    }

    fn status_now(&self) -> CameraStatus {
        let now = self.now();
        let stats = self.cam.stats(now);
        CameraStatus {
            id: self.config.label.clone(),
            boots: self.boots,
            settings: *self.cam.settings(),
            control: self.cam.link_status(Link::Control),
            stream: self.cam.link_status(Link::Stream),
            clients: stats.clients,
            frames_sent: stats.frames_sent,
            frames_dropped: stats.frames_dropped,
            quality_in_force: stats.quality_in_force.get(),
            firmware: self.slots.running.clone(),
            ota: self.cam.ota_progress(),
        }
    }

    fn publish(&self) {
        let next = self.status_now();
        self.status.send_if_modified(|s| {
            if *s == next {
                false
            } else {
                *s = next;
                true
            }
        });
    }

    fn publish_offline(&self) {
        let mut next = self.status_now();
        next.control = LinkStatus::Idle;
        next.stream = LinkStatus::Idle;
        next.clients = 0;
        self.status.send_replace(next);
    }
}

async fn next_client(rx: &mut Option<mpsc::Receiver<NewClient>>) -> Option<NewClient> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// `HH:MM:SS.mmm` UTC, drawn into frames.
fn wall_clock_text() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

enum ConnSource {
    /// Hub mode: dial this URL (with this TLS configuration for `wss://`).
    Connect(String, Option<Arc<rustls::ClientConfig>>),
    /// Standalone mode: a client already accepted.
    Accepted(Box<WebSocketStream<TcpStream>>),
}

async fn run_conn(
    conn: ConnId,
    source: ConnSource,
    events: mpsc::Sender<Event>,
    mut cmds: mpsc::Receiver<ConnCmd>,
    throttle: Arc<AtomicU32>,
) {
    match source {
        ConnSource::Accepted(ws) => pump(conn, *ws, events, cmds, throttle).await,
        ConnSource::Connect(url, tls) => {
            let connect = tokio_tungstenite::connect_async_tls_with_config(
                url.as_str(),
                Some(ws_config()),
                true,
                tls.map(tokio_tungstenite::Connector::Rustls),
            );
            tokio::select! {
                r = connect => match r {
                    Ok((ws, _)) => {
                        if events.send(Event::Connected(conn)).await.is_ok() {
                            pump(conn, ws, events, cmds, throttle).await;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(conn = conn.get(), %url, error = %e, "connect failed");
                        let _ = events.send(Event::Closed(conn)).await;
                    }
                },
                // The core gave up on this attempt (handshake timeout) or the camera stopped.
                _ = cmds.recv() => {}
            }
        }
    }
}

/// Moves messages between one WebSocket and the camera task until either side ends.
async fn pump<S>(
    conn: ConnId,
    mut ws: WebSocketStream<S>,
    events: mpsc::Sender<Event>,
    mut cmds: mpsc::Receiver<ConnCmd>,
    throttle: Arc<AtomicU32>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Set once the peer's close frame arrived: nothing more is read (tungstenite would
    // flush its own reply on the next read), and the core's answer comes as `Close`.
    let mut peer_closed = false;
    loop {
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                Some(ConnCmd::Send(m)) => {
                    if ws.send(m).await.is_err() {
                        break;
                    }
                }
                Some(ConnCmd::Frame(b)) => {
                    let len = b.len();
                    if ws.send(Message::Binary(b)).await.is_err() {
                        break;
                    }
                    // A throttled link: the send completes once the bytes would have left.
                    let rate = throttle.load(Ordering::Relaxed);
                    if rate > 0 {
                        let secs = len as f64 / f64::from(rate);
                        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                    }
                    if events.send(Event::Sent(conn)).await.is_err() {
                        return;
                    }
                }
                Some(ConnCmd::Close(code, reason)) => {
                    // After a peer's close, tungstenite has queued the reply (the peer's
                    // code echoed, 1002 for a forbidden one: what the core decided) and
                    // `close` only flushes it.
                    let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(reason) };
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        let _ = ws.close(Some(frame)).await;
                        // Wait for the peer's close reply (or its end) so the close is clean.
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return;
                }
                // Dropped without a close frame; the camera task already knows.
                Some(ConnCmd::Vanish) | None => return,
            },
            msg = ws.next(), if !peer_closed => match msg {
                Some(Ok(Message::Text(t))) => {
                    if events.send(Event::Text(conn, t.to_string())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    if events.send(Event::CloseFrame(conn, code)).await.is_err() {
                        return;
                    }
                    peer_closed = true;
                }
                Some(Err(_)) | None => break,
                // Binary messages, pings and pongs carry nothing for the camera.
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = events.send(Event::Closed(conn)).await;
}

async fn refuse(mut ws: WebSocketStream<TcpStream>, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws.close(Some(frame)).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

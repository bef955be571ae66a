//! Virtual espcam cameras: the real camera core (`espcam-camera`) in a tokio shell, with a
//! synthetic sensor that produces real JPEGs. Lets anyone run espcam end to end without an
//! ESP32, and lets the hub's tests talk to cameras that behave exactly like the firmware.
//!
//! Every protocol decision is the core's; this crate only does I/O, draws pictures and
//! injects faults on request. It must never implement camera behaviour of its own.
//!
//! # Running cameras in-process
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use espcam_sim::{ApCamera, ApCameraConfig, Fault, HubCamera, HubCameraConfig};
//! use espcam_proto::CameraId;
//!
//! // Hub mode, like the seed-000 firmware: control ws://HOST:6971/ws/camera,
//! // stream ws://HOST:6972/ws/stream, reconnecting with backoff for ever.
//! let cfg = HubCameraConfig::new("127.0.0.1", 6971, 6972, CameraId::new("cam-1").unwrap(), "token");
//! let cam = HubCamera::spawn(cfg);
//! cam.wait_for(|s| s.stream == espcam_sim::LinkStatus::Ready).await;
//! cam.inject(Fault::DropLinks);          // vanish from the network; it reconnects
//! cam.kill();                            // vanish for good (no close frames)
//!
//! // Standalone mode, like seed 002: ws://127.0.0.1:PORT/ws, bare JPEG binary messages.
//! let ap = ApCamera::bind("127.0.0.1:0".parse().unwrap(), ApCameraConfig::default()).await?;
//! println!("watch {}", ap.url().unwrap());
//! ap.stop().await;                        // close every client properly
//! # Ok(()) }
//! ```
//!
//! - [`HubCamera::spawn`] / [`ApCamera::bind`] return a [`CameraHandle`]: status
//!   ([`CameraStatus`], also as a `watch` channel), fault injection ([`Fault`]), `stop` (clean
//!   close) and `kill` (abrupt). Dropping the handle kills the camera.
//! - [`test_jpeg`] renders one real frame for given [`Settings`](espcam_proto::Settings), for
//!   tests that need a JPEG of known size; [`frame_set`] gives the cached, composable loop
//!   the cameras stream from (see [`picture`] for how frames stay cheap).

mod font;
pub mod ota;
pub mod picture;
mod shell;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use espcam_camera::{Config, HubConfig, Mode, StandaloneConfig};
use espcam_proto::{CameraId, FrameFlags, Settings};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

pub use espcam_camera::{AdaptiveQuality, BackoffConfig, LinkStatus};
pub use picture::{FrameSet, PictureError, Scene, frame_set, jpeg_quality, test_jpeg};
pub use tls::{PinTlsError, pinned_tls};

use shell::{Control, Shell, ShellConfig, Target};

/// Firmware string virtual cameras report in their hello.
pub const FIRMWARE: &str = concat!("espcam-sim ", env!("CARGO_PKG_VERSION"));
/// Sensor model virtual cameras report.
pub const SENSOR: &str = "virtual";

/// A deliberate misbehaviour, for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Drop every connection without a close frame (Wi-Fi lost); the core notices and, in
    /// hub mode, reconnects with backoff.
    DropLinks,
    /// Freeze the camera for this long: nothing is read or sent, sockets stay open.
    Stall(Duration),
    /// Send the next frame cut in half (the header still declares the full length).
    TruncateNextFrame,
    /// Send one garbage binary message and one garbage text message on every connection.
    Garbage,
    /// Restart now, as the `reboot` command does (new uptime, reconnect).
    Reboot,
    /// Make every link carry at most this many bytes per second (a frame's send completes
    /// only once its bytes would have left), as a weak Wi-Fi link does; `None` lifts it.
    Throttle(Option<u32>),
    /// Change what the camera looks at (see [`Scene`]); the scene's clock restarts. Not a
    /// fault of the camera, but the world in front of it: it survives reboots.
    Scene(Scene),
}

/// What a virtual camera is doing, published after every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraStatus {
    /// Camera id (the label drawn into frames).
    pub id: String,
    /// Boots so far, 1 after start; +1 per reboot.
    pub boots: u32,
    /// Settings in force.
    pub settings: Settings,
    /// Hub control link (`Idle` in standalone mode).
    pub control: LinkStatus,
    /// Hub stream link (`Idle` in standalone mode).
    pub stream: LinkStatus,
    /// Standalone clients connected.
    pub clients: usize,
    /// Frames sent since the last boot.
    pub frames_sent: u64,
    /// Frames dropped since the last boot.
    pub frames_dropped: u64,
    /// JPEG quality number the sensor uses now (above `settings.quality` while the core
    /// adapts to a slow link).
    pub quality_in_force: u8,
    /// The firmware version running (changes after an update's reboot).
    pub firmware: String,
    /// A firmware download in progress: bytes written, total.
    pub ota: Option<(u32, u32)>,
}

/// A running virtual camera. Dropping it kills the camera (like [`CameraHandle::kill`]).
#[derive(Debug)]
pub struct CameraHandle {
    id: String,
    local_addr: Option<SocketAddr>,
    /// Faults and stop requests for the camera task; unbounded because they are rare and
    /// `inject` must not block or fail while the camera is stalled.
    control: mpsc::UnboundedSender<Control>,
    status: watch::Receiver<CameraStatus>,
    task: Option<JoinHandle<()>>,
    listener: Option<JoinHandle<()>>,
}

impl CameraHandle {
    /// The camera id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Standalone mode: the address the camera listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Standalone mode: `ws://ADDR/ws`.
    pub fn url(&self) -> Option<String> {
        self.local_addr
            .map(|a| format!("ws://{a}{}", espcam_proto::standalone::PATH))
    }

    /// The latest status.
    pub fn status(&self) -> CameraStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<CameraStatus> {
        self.status.clone()
    }

    /// Waits until the status satisfies `pred` (wrap in `tokio::time::timeout`). Returns the
    /// matching status; if the camera ended, the last one.
    pub async fn wait_for(&self, pred: impl Fn(&CameraStatus) -> bool) -> CameraStatus {
        let mut rx = self.status.clone();
        let found = rx.wait_for(|s| pred(s)).await.map(|s| s.clone());
        found.unwrap_or_else(|_| rx.borrow().clone())
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) {
        let _ = self.control.send(Control::Fault(fault));
    }

    /// Stops the camera cleanly: every connection gets a close frame (1000, "camera
    /// stopping"). Returns once the camera task ended.
    pub async fn stop(mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Kills the camera abruptly: sockets are dropped without close frames, as if it lost
    /// power.
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for CameraHandle {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
        if let Some(l) = &self.listener {
            l.abort();
        }
    }
}

/// A hub-mode virtual camera's configuration.
#[derive(Debug, Clone)]
pub struct HubCameraConfig {
    /// Control socket URL, e.g. `ws://127.0.0.1:6971/ws/camera`.
    pub control_url: String,
    /// Stream socket URL, e.g. `ws://127.0.0.1:6972/ws/stream`.
    pub stream_url: String,
    /// Camera id.
    pub id: CameraId,
    /// Token sent in the hellos.
    pub token: String,
    /// Settings at boot (and after every reboot).
    pub settings: Settings,
    /// Target frames per second.
    pub fps: u16,
    /// Jitter seed; differ per camera so reconnects spread out.
    pub seed: u64,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// How long a reboot keeps the camera off the network.
    pub reboot_delay: Duration,
    /// JPEG quality adaptation on a slow link (the core's default; `None`: off).
    pub adaptive_quality: Option<AdaptiveQuality>,
    /// Further hubs, tried in order after the first when a hub disappears (the core's
    /// failover, `HubConfig::hubs`).
    pub more_hubs: Vec<HubEndpoint>,
    /// What the camera looks at first ([`Fault::Scene`] changes it).
    pub scene: Scene,
    /// The firmware version at the first boot ([`FIRMWARE`]); updates replace it.
    pub firmware: String,
    /// Size of the virtual OTA partition, bytes (4 MiB): larger images are refused.
    pub ota_capacity: u32,
    /// How long an updated image may take to reach the hub before it rolls back.
    pub ota_confirm_window: Duration,
    /// For `wss://` URLs: the TLS client configuration (which certificate to trust, as a
    /// real camera pins the hub's); `None` for `ws://`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// One hub a camera may connect to: its two socket URLs and, for `wss://`, whom to trust.
#[derive(Debug, Clone)]
pub struct HubEndpoint {
    /// Control socket URL, e.g. `ws://127.0.0.1:6971/ws/camera`.
    pub control_url: String,
    /// Stream socket URL, e.g. `ws://127.0.0.1:6972/ws/stream`.
    pub stream_url: String,
    /// For `wss://` URLs: the TLS client configuration; `None` for `ws://`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl HubEndpoint {
    /// A plain `ws://` hub at `host` with the hub's default socket paths.
    pub fn plain(host: &str, http_port: u16, stream_port: u16) -> Self {
        Self {
            control_url: format!("ws://{host}:{http_port}{}", espcam_proto::CONTROL_PATH),
            stream_url: format!("ws://{host}:{stream_port}{}", espcam_proto::STREAM_PATH),
            tls: None,
        }
    }
}

impl HubCameraConfig {
    /// Config for a hub at `host` with the given control and stream ports.
    pub fn new(
        host: &str,
        control_port: u16,
        stream_port: u16,
        id: CameraId,
        token: impl Into<String>,
    ) -> Self {
        Self {
            control_url: format!("ws://{host}:{control_port}{}", espcam_proto::CONTROL_PATH),
            stream_url: format!("ws://{host}:{stream_port}{}", espcam_proto::STREAM_PATH),
            seed: id.as_str().bytes().fold(0xE5CA_u64, |h, b| {
                h.wrapping_mul(0x100_0000_01B3).wrapping_add(u64::from(b))
            }),
            id,
            token: token.into(),
            settings: Settings::default(),
            fps: 30,
            backoff: BackoffConfig::default(),
            reboot_delay: Duration::from_millis(300),
            adaptive_quality: Some(AdaptiveQuality::default()),
            more_hubs: Vec::new(),
            scene: Scene::default(),
            firmware: FIRMWARE.to_string(),
            ota_capacity: 4 << 20,
            ota_confirm_window: espcam_camera::OtaConfig::default().confirm_window,
            tls: None,
        }
    }

    /// Config for the hub `target`, trusting what `trust` pins: the same URLs and pin a
    /// board built with that `hub_url` and `hub_cert_sha256` / `hub_cert` uses
    /// (`espcam_camera::FirmwareConfig`).
    pub fn for_target(
        target: &espcam_camera::HubTarget,
        trust: &espcam_camera::Trust,
        id: CameraId,
        token: impl Into<String>,
    ) -> Result<Self, PinTlsError> {
        let mut config = Self::new(target.host(), 1, 1, id, token);
        config.control_url = target.link_url(espcam_camera::Link::Control);
        config.stream_url = target.link_url(espcam_camera::Link::Stream);
        config.tls = match trust {
            espcam_camera::Trust::Plain => None,
            pin => Some(pinned_tls(pin)?),
        };
        Ok(config)
    }
}

/// Hub-mode virtual cameras.
#[derive(Debug)]
pub struct HubCamera;

impl HubCamera {
    /// Starts a camera that connects to the hub (and keeps reconnecting). Must be called
    /// inside a tokio runtime.
    pub fn spawn(config: HubCameraConfig) -> CameraHandle {
        let mut core = Config::hub(config.id.clone(), config.token);
        let mut hubs = vec![HubEndpoint {
            control_url: config.control_url,
            stream_url: config.stream_url,
            tls: config.tls,
        }];
        hubs.extend(config.more_hubs);
        if let Mode::Hub(HubConfig {
            backoff, hubs: n, ..
        }) = &mut core.mode
        {
            *backoff = config.backoff;
            *n = u8::try_from(hubs.len()).unwrap_or(u8::MAX);
        }
        let mut core = with_common(
            core,
            config.settings,
            config.fps,
            config.seed,
            config.adaptive_quality,
        );
        core.firmware = config.firmware;
        core.board = Some(ota::BOARD.to_string());
        core.ota.confirm_window = config.ota_confirm_window;
        let shell = ShellConfig {
            core,
            target: Target::Hub { hubs },
            label: config.id.as_str().to_string(),
            reboot_delay: config.reboot_delay,
            scene: config.scene,
            ota_capacity: config.ota_capacity,
        };
        start(shell, None, None)
    }
}

/// A standalone (seed-002) virtual camera's configuration.
#[derive(Debug, Clone)]
pub struct ApCameraConfig {
    /// Id drawn into the frames.
    pub id: CameraId,
    /// Settings at boot.
    pub settings: Settings,
    /// Target frames per second.
    pub fps: u16,
    /// How long a reboot keeps the camera away.
    pub reboot_delay: Duration,
    /// JPEG quality adaptation on a slow link (the core's default; `None`: off).
    pub adaptive_quality: Option<AdaptiveQuality>,
    /// What the camera looks at first ([`Fault::Scene`] changes it).
    pub scene: Scene,
}

impl Default for ApCameraConfig {
    fn default() -> Self {
        Self {
            id: CameraId::new("cam-ap").unwrap_or_else(|_| unreachable!("valid literal id")),
            settings: Settings::default(),
            fps: 30,
            reboot_delay: Duration::from_millis(300),
            adaptive_quality: Some(AdaptiveQuality::default()),
            scene: Scene::default(),
        }
    }
}

/// Standalone-mode (seed 002) virtual cameras.
#[derive(Debug)]
pub struct ApCamera;

impl ApCamera {
    /// Serves the seed-002 protocol at `ws://ADDR/ws` (bind port 0 for tests; see
    /// [`CameraHandle::local_addr`]). Other paths get HTTP 404.
    pub async fn bind(addr: SocketAddr, config: ApCameraConfig) -> std::io::Result<CameraHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let mut core = Config::standalone();
        core.mode = Mode::Standalone(StandaloneConfig {
            welcome: format!(
                "Connected to {}fps espcam virtual camera {}",
                config.fps, config.id
            ),
        });
        let shell = ShellConfig {
            core: with_common(
                core,
                config.settings,
                config.fps,
                0,
                config.adaptive_quality,
            ),
            target: Target::Standalone,
            label: config.id.as_str().to_string(),
            reboot_delay: config.reboot_delay,
            scene: config.scene,
            ota_capacity: 0,
        };
        Ok(start(shell, Some(listener), Some(local)))
    }
}

fn with_common(
    mut core: Config,
    settings: Settings,
    fps: u16,
    seed: u64,
    adaptive_quality: Option<AdaptiveQuality>,
) -> Config {
    core.settings = settings;
    core.adaptive_quality = adaptive_quality;
    core.target_fps = fps.max(1);
    core.seed = seed;
    core.firmware = FIRMWARE.to_string();
    core.sensor = SENSOR.to_string();
    core.frame_flags = FrameFlags(FrameFlags::SYNTHETIC);
    core
}

fn start(
    config: ShellConfig,
    listener: Option<TcpListener>,
    local_addr: Option<SocketAddr>,
) -> CameraHandle {
    let id = config.label.clone();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let initial = CameraStatus {
        id: id.clone(),
        boots: 1,
        settings: config.core.settings,
        control: LinkStatus::Idle,
        stream: LinkStatus::Idle,
        clients: 0,
        frames_sent: 0,
        frames_dropped: 0,
        quality_in_force: config.core.settings.quality.get(),
        firmware: config.core.firmware.clone(),
        ota: None,
    };
    let (status_tx, status_rx) = watch::channel(initial);
    let (listener, clients_rx) = match listener {
        Some(l) => {
            // Handshaken clients waiting for the camera task; small, as the core admits at
            // most five anyway.
            let (tx, rx) = mpsc::channel(8);
            (Some(tokio::spawn(accept_loop(l, tx))), Some(rx))
        }
        None => (None, None),
    };
    let shell = Shell::new(config, clients_rx, control_rx, status_tx);
    CameraHandle {
        id,
        local_addr,
        control: control_tx,
        status: status_rx,
        task: Some(tokio::spawn(shell.run())),
        listener,
    }
}

/// Accepts standalone clients: WebSocket handshake on `/ws` only, then hands the socket to
/// the camera task, which asks the core whether to keep it.
async fn accept_loop(listener: TcpListener, clients: mpsc::Sender<shell::NewClient>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors and similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let clients = clients.clone();
        tokio::spawn(async move {
            // The error type is fixed by tungstenite's handshake callback.
            #[allow(clippy::result_large_err)]
            let check_path = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                if req.uri().path() == espcam_proto::standalone::PATH {
                    Ok(resp)
                } else {
                    let mut e = ErrorResponse::new(Some(
                        "not found: the camera serves ws://HOST/ws\n".into(),
                    ));
                    *e.status_mut() = StatusCode::NOT_FOUND;
                    Err(e)
                }
            };
            let accepted = tokio::time::timeout(
                Duration::from_secs(10),
                tokio_tungstenite::accept_hdr_async_with_config(
                    tcp,
                    check_path,
                    Some(shell::ws_config()),
                ),
            )
            .await;
            if let Ok(Ok(ws)) = accepted {
                let _ = clients.send(Box::new(ws)).await;
            }
        });
    }
}

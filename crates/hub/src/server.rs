//! The two listeners and their routers, and [`run`]: what `espcam serve` calls.
//!
//! Port 6971 serves everything people and camera control links use; port 6972 serves only
//! the camera stream socket, so frame traffic never shares a listener with the dashboard.
//! An error on one connection ends only that connection; `run` returns only when the
//! shutdown future resolves or a listener fails.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use espcam_store::Store;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::Config;
use crate::net::listener::HubListener;
use crate::net::serve::DoorLimits;
use crate::recorder::Recorder;
use crate::state::Hub;
use crate::state::access::Access;
use crate::{http, ingest};

/// Why the hub could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener could not bind.
    #[error(
        "could not listen on {addr} for {what}: {io} (is another espcam running? pick another port with --port / --stream-port)"
    )]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error (in the message, not a `source`, so it is not printed twice).
        io: std::io::Error,
    },
    /// The snapshot store could not be opened.
    #[error("could not open the data directory: {0}")]
    Store(#[from] espcam_store::OpenError),
    /// The auth database could not be opened.
    #[error("could not open the auth database: {0}")]
    Auth(#[from] espcam_auth::OpenError),
    /// The first admin could not be created.
    #[error("could not create the first admin user: {0}")]
    InitialAdmin(#[from] espcam_auth::UserError),
    /// Cluster mode could not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// TLS was asked for and cannot be set up (the hub never falls back to plain text).
    #[error("TLS: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
    /// A server failed.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// The hub's two bound sockets. Bind them first (tests bind port 0 and read the ports).
#[derive(Debug)]
pub struct Listeners {
    /// Port 6971: HTTP, dashboard, REST, browser sockets, camera control.
    pub http: TcpListener,
    /// Port 6972: camera stream.
    pub stream: TcpListener,
}

impl Listeners {
    /// Binds both listeners as configured.
    pub async fn bind(config: &Config) -> Result<Self, RunError> {
        let bind = |what, port| async move {
            let addr = SocketAddr::new(config.bind, port);
            TcpListener::bind(addr)
                .await
                .map_err(|io| RunError::Bind { what, addr, io })
        };
        Ok(Self {
            http: bind("HTTP", config.port).await?,
            stream: bind("the camera stream", config.stream_port).await?,
        })
    }

    /// The addresses actually bound.
    pub fn local_addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.http.local_addr()?, self.stream.local_addr()?))
    }
}

/// The router for port 6971: the HTTP layer's routes and the camera control socket.
pub fn app(hub: Hub) -> Router {
    http::router(hub.clone())
        .merge(ingest::control_routes(hub))
        .layer(axum::middleware::map_response(http::error::json_errors))
}

/// The router for port 6972: the camera stream socket and a health check.
pub fn stream_app(hub: Hub) -> Router {
    ingest::stream_routes(hub).merge(http::health_routes())
}

/// Opens the auth database beside the store, decides whether login is required (from
/// `auth` and the bind address), creates the first admin when login is required and no
/// user exists, and says so in the log.
async fn open_access(config: &Config, bound: &[std::net::IpAddr]) -> Result<Access, RunError> {
    use espcam_auth::{Auth, ModeDecision, decide_mode};
    let dir = config.data_dir.clone();
    let mode = decide_mode(config.auth, bound);
    let options = espcam_auth::AuthOptions {
        session: config.sessions,
        ..espcam_auth::AuthOptions::default()
    };
    let (auth, admin) = tokio::task::spawn_blocking(move || -> Result<_, RunError> {
        let auth = Auth::open_with(&dir, options)?;
        let admin = match mode {
            ModeDecision::Required => auth.ensure_initial_admin(crate::state::clock::now_us())?,
            _ => None,
        };
        Ok((auth, admin))
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    match mode {
        ModeDecision::Required => {
            info!(
                "login required on every door (auth = \"{}\", listening on {}); unlisted cameras wait for an admin to accept them",
                match config.auth {
                    espcam_auth::AuthMode::On => "on",
                    _ => "auto",
                },
                config.bind
            );
            if let Some(admin) = admin {
                warn!(
                    "first start: created user {} with password {} — note it now, it is not shown again (change it with `espcam user passwd {}`)",
                    admin.name,
                    admin.password.expose(),
                    admin.name
                );
            }
        }
        ModeDecision::LoopbackOnly => info!(
            "no login: the hub listens on loopback only ({}); to open it to the network safely, see \"Exposing the hub\" in the README",
            config.bind
        ),
        ModeDecision::Disabled => warn!(
            "auth = \"off\": NO LOGIN on any door — anyone who can reach {} can watch and control every camera",
            config.bind
        ),
    }
    Ok(Access::new(std::sync::Arc::new(auth), mode))
}

/// Opens the store in the configured data directory and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let dir = config.data_dir.clone();
    let (store, report) = tokio::task::spawn_blocking(move || Store::open_with_report(&dir))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    if report.is_clean() {
        info!("data directory {}", config.data_dir.display());
    } else {
        warn!(
            "data directory {}: repaired after an unclean stop: {report:?}",
            config.data_dir.display()
        );
    }
    let (http_addr, stream_addr) = listeners.local_addrs()?;
    let access = open_access(&config, &[http_addr.ip(), stream_addr.ip()]).await?;
    serve(
        Hub::with_access(config, Some(store), access),
        listeners,
        shutdown,
    )
    .await
}

/// Loads or generates the TLS certificate when asked for, and logs what cameras pin.
async fn tls_setup(
    hub: &Hub,
    http_addr: SocketAddr,
) -> Result<Option<crate::net::tls::Tls>, RunError> {
    let config = hub.config();
    let mut names = config.hostnames.clone();
    if !http_addr.ip().is_unspecified() {
        names.push(http_addr.ip().to_string());
    }
    let (source, dir) = (config.tls.clone(), config.data_dir.clone());
    let tls = tokio::task::spawn_blocking(move || crate::net::tls::setup(&source, &dir, &names))
        .await
        .map_err(|e| RunError::Serve(std::io::Error::other(e.to_string())))??;
    if let Some(t) = &tls {
        info!(
            "TLS on both ports with {} (SHA-256 fingerprint {}): cameras connect with wss:// and pin this certificate",
            t.cert_path.display(),
            t.fingerprint
        );
    }
    Ok(tls)
}

/// Serves `hub` on `listeners` until `shutdown` resolves, then stops every connection.
pub async fn serve(
    hub: Hub,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (http_addr, stream_addr) = listeners.local_addrs()?;
    info!(
        "hub listening on {http_addr} (dashboard, API, camera control {}) and {stream_addr} (camera stream {})",
        espcam_proto::CONTROL_PATH,
        espcam_proto::STREAM_PATH
    );
    if hub.config().cameras.is_empty() && !hub.access().login_required() {
        info!(
            "no [[camera]] list configured: any camera id is accepted without a token (trusted networks only)"
        );
    }
    tokio::spawn({
        let hub = hub.clone();
        async move { hub.tick(Duration::from_secs(1)).await }
    });
    // Summaries of the warnings the per-peer limits held back.
    tokio::spawn({
        let hub = hub.clone();
        async move {
            let mut stop = hub.shutdown_signal();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every.tick() => hub.access().flush_warnings(),
                    _ = stop.changed() => return,
                }
            }
        }
    });
    // Credentials revoked by `espcam user|token` beside the running hub end open streams.
    tokio::spawn({
        let hub = hub.clone();
        async move {
            let stop = hub.shutdown_signal();
            hub.access()
                .follow_outside_changes(Duration::from_millis(250), stop)
                .await
        }
    });
    for target in hub.config().pull.clone() {
        info!("pulling camera {} from {}", target.id, target.url);
        tokio::spawn(ingest::pull::run(hub.clone(), target));
    }
    tokio::spawn({
        let hub = hub.clone();
        async move {
            shutdown.await;
            hub.stop();
        }
    });
    if let Some((from, to)) = crate::net::raise_fd_limit() {
        info!("open-file limit raised from {from} to {to}");
    }
    let (http_limits, stream_limits) = door_limits(hub.config());
    info!(
        "connection limits: HTTP port {} in all, {} per address; stream port {} in all; request heads within {} ms",
        http_limits.max_connections,
        http_limits.max_per_address,
        stream_limits.max_connections,
        http_limits.header_timeout.as_millis()
    );
    let recorder = start_recorder(&hub).await;
    // Links in webhook bodies: the configured public URL, else this listener's address.
    let base_url = hub.config().motion.public_url.clone().unwrap_or_else(|| {
        let ip = if http_addr.ip().is_unspecified() {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            http_addr.ip()
        };
        format!("http://{}", std::net::SocketAddr::new(ip, http_addr.port()))
    });
    let motion = crate::motion::start_service(&hub, recorder.clone(), &base_url).await;
    let mqtt = hub
        .config()
        .mqtt
        .clone()
        .map(|c| crate::mqtt::Mqtt::start(&hub, recorder.clone(), c));
    let mut router = app(hub.clone());
    if let Some(r) = &recorder {
        router = router.layer(axum::Extension(r.clone()));
    }
    if let Some(c) = hub.config().cluster.clone() {
        let cluster = crate::cluster::Cluster::start(hub.clone(), c).await?;
        cluster.set_node_service(std::sync::Arc::new(LocalNode {
            hub: hub.clone(),
            gate: std::sync::Arc::new(crate::http::snapshot_quota::SnapshotGate::new(
                hub.config().snapshots,
            )),
        }));
        cluster.set_recording_service(std::sync::Arc::new(
            crate::http::node_recordings::LocalRecordings::new(
                hub.clone(),
                recorder.clone(),
                Some(motion.clone()),
            ),
        ));
        router = router.layer(axum::Extension(crate::http::nodes::Nodes(
            std::sync::Arc::new(ClusterNodes(cluster)),
        )));
    }
    router = router.layer(axum::Extension(motion.clone()));
    match crate::firmware::Firmware::open(&hub.config().data_dir) {
        Ok(f) => router = router.layer(axum::Extension(f)),
        Err(e) => warn!("firmware updates unavailable: {e}"),
    }
    let tls = tls_setup(&hub, http_addr).await?;
    let acceptor = tls.as_ref().map(|t| t.acceptor.clone());
    let timeout = hub.config().viewer_timeout;
    let http = tokio::spawn(crate::net::serve::serve(
        HubListener::new(listeners.http, timeout),
        router,
        http_limits,
        hub.shutdown_signal(),
        acceptor.clone(),
    ));
    let stream = tokio::spawn(crate::net::serve::serve(
        HubListener::new(listeners.stream, timeout),
        stream_app(hub.clone()),
        stream_limits,
        hub.shutdown_signal(),
        acceptor,
    ));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shown = if http_addr.ip().is_unspecified() {
        format!("{scheme}://localhost:{}/", http_addr.port())
    } else {
        format!("{scheme}://{http_addr}/")
    };
    info!("dashboard: open {shown} in a browser");
    let (a, b) = tokio::join!(http, stream);
    hub.stop();
    let _ = tokio::task::spawn_blocking(move || motion.stop()).await;
    if let Some(m) = mqtt {
        m.stop(Duration::from_secs(2)).await;
    }
    if let Some(r) = recorder {
        let _ = tokio::task::spawn_blocking(move || r.stop()).await;
    }
    info!("hub stopped");
    for r in [a, b] {
        r.map_err(|e| RunError::Serve(std::io::Error::other(e.to_string())))?;
    }
    Ok(())
}

/// The cluster's directory as the HTTP layer reads it (the wiring is the one place that
/// knows both).
#[derive(Debug)]
struct ClusterNodes(crate::cluster::Cluster);

impl crate::http::nodes::NodeDirectory for ClusterNodes {
    fn this_node(&self) -> &str {
        self.0.this_node()
    }

    fn remote_node(&self, camera: &str) -> Option<String> {
        self.0.remote_node(camera)
    }

    fn ask(
        &self,
        node: &str,
        request: crate::state::nodes::NodeRequest,
    ) -> crate::state::nodes::AnswerFuture {
        let (cluster, node) = (self.0.clone(), node.to_string());
        Box::pin(async move { cluster.ask(&node, &request).await })
    }

    fn ask_recordings(
        &self,
        node: &str,
        request: crate::state::node_recordings::RecordingRequest,
    ) -> crate::state::node_recordings::RecordingFuture {
        let (cluster, node) = (self.0.clone(), node.to_string());
        Box::pin(async move { cluster.ask_recordings(&node, &request).await })
    }

    fn known_nodes(&self) -> Vec<String> {
        self.0.known_nodes()
    }
}

/// Answers the other nodes' snapshot requests with this hub's own HTTP handlers.
#[derive(Debug)]
struct LocalNode {
    hub: Hub,
    gate: std::sync::Arc<crate::http::snapshot_quota::SnapshotGate>,
}

impl crate::state::nodes::NodeService for LocalNode {
    fn serve(
        &self,
        request: crate::state::nodes::NodeRequest,
    ) -> crate::state::nodes::AnswerFuture {
        let (hub, gate) = (self.hub.clone(), self.gate.clone());
        Box::pin(async move { crate::http::remote::serve_local(&hub, Some(gate), request).await })
    }
}

/// Opens the recordings in the data directory (recovering segments left open by a crash)
/// and starts the recorder. Without them the hub still serves live video.
async fn start_recorder(hub: &Hub) -> Option<Recorder> {
    let dir = hub.config().data_dir.clone();
    let opened = tokio::task::spawn_blocking(move || espcam_record::Recordings::open(&dir)).await;
    match opened {
        Ok(Ok((recordings, report))) => {
            if !report.is_clean() {
                warn!("recordings repaired after an unclean stop: {report}");
            }
            Some(Recorder::start(
                hub,
                recordings,
                hub.config().recording.clone(),
            ))
        }
        Ok(Err(e)) => {
            warn!("recording unavailable: {e}");
            None
        }
        Err(e) => {
            warn!("recording unavailable: {e}");
            None
        }
    }
}

/// The two ports' connection budgets. The stream port holds about one connection per camera
/// (two while one reconnects); the HTTP port gets what is left of the process's file
/// descriptors, so that descriptors run out for no one: past its budget a port closes new
/// connections at once, and the other port keeps working.
fn door_limits(config: &Config) -> (DoorLimits, DoorLimits) {
    let stream_total = config.max_cameras.saturating_mul(2).saturating_add(16);
    let fds = crate::net::fd_soft_limit().unwrap_or(1024);
    let http_total = config
        .max_connections
        .min(fds.saturating_sub(stream_total + 64).max(32));
    let http = DoorLimits {
        max_connections: http_total,
        max_per_address: config.max_connections_per_address.min(http_total),
        header_timeout: config.header_timeout,
    };
    let stream = DoorLimits {
        max_connections: stream_total,
        max_per_address: stream_total,
        header_timeout: config.header_timeout,
    };
    (http, stream)
}

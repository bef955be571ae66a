//! `espcam serve`: the hub. Parses flags (with `ESPCAM_*` environment fallbacks), loads
//! `espcam.toml`, binds the two ports, optionally starts virtual cameras (`--demo`), and
//! runs `espcam_hub::run` until Ctrl-C or SIGTERM. No behaviour of its own beyond wiring.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use espcam_hub::{Config, Listeners, Overrides};

/// Flags of `espcam serve`. Precedence: flags > `ESPCAM_*` environment > `espcam.toml` >
/// defaults.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file [default: ./espcam.toml when it exists].
    #[arg(long, value_name = "FILE", env = "ESPCAM_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0, all interfaces; 127.0.0.1 with --demo].
    /// Any address but loopback turns login on (see --auth).
    #[arg(long, value_name = "ADDR", env = "ESPCAM_BIND")]
    bind: Option<IpAddr>,
    /// Login: auto (required unless every listener is on loopback), on, or off (no login
    /// anywhere: logged as a warning at every start) [default: auto].
    #[arg(long, value_name = "MODE", env = "ESPCAM_AUTH")]
    auth: Option<espcam_auth::AuthMode>,
    /// HTTP port: dashboard, REST API, browser sockets, camera control [default: 6971].
    #[arg(long, value_name = "PORT", env = "ESPCAM_PORT")]
    port: Option<u16>,
    /// Camera stream port (binary frames only) [default: 6972].
    #[arg(long, value_name = "PORT", env = "ESPCAM_STREAM_PORT")]
    stream_port: Option<u16>,
    /// Where snapshots are kept [default: ./espcam-data].
    #[arg(long, value_name = "DIR", env = "ESPCAM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// How long a settings change waits for the camera's ack, in ms [default: 3000].
    #[arg(long, value_name = "MS", env = "ESPCAM_ACK_TIMEOUT_MS")]
    ack_timeout_ms: Option<u64>,
    /// Pull frames from a standalone (seed-002) camera: ID=ws://HOST/ws. Repeatable; in
    /// ESPCAM_PULL, separate several with commas.
    #[arg(
        long = "pull",
        value_name = "ID=URL",
        env = "ESPCAM_PULL",
        value_delimiter = ','
    )]
    pull: Vec<String>,
    /// Serve both ports over TLS with this certificate chain (PEM, leaf first); needs
    /// --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        env = "ESPCAM_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(
        long,
        value_name = "FILE",
        env = "ESPCAM_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Serve both ports over TLS with a self-signed certificate generated once and kept in
    /// the data directory (tls/cert.pem); its SHA-256 fingerprint is printed at start.
    #[arg(long, env = "ESPCAM_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Publish cameras to an MQTT broker with Home Assistant discovery:
    /// mqtt://HOST[:PORT], or mqtts://HOST[:PORT] for TLS (see docs/HOME_ASSISTANT.md;
    /// more keys in `[mqtt]`).
    #[arg(long, value_name = "URL", env = "ESPCAM_MQTT")]
    mqtt: Option<String>,
    /// User name for the MQTT broker.
    #[arg(long, value_name = "NAME", env = "ESPCAM_MQTT_USER")]
    mqtt_user: Option<String>,
    /// Password for the MQTT broker (prefer the environment variable to the flag).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "ESPCAM_MQTT_PASSWORD",
        hide_env_values = true
    )]
    mqtt_password: Option<String>,
    /// MQTT client id, also the hub's device id in Home Assistant [default: espcam-hub].
    #[arg(long, value_name = "ID", env = "ESPCAM_MQTT_CLIENT_ID")]
    mqtt_client_id: Option<String>,
    /// PEM CA certificate that signs the broker's certificate, for mqtts:// [default: the
    /// system's trusted roots].
    #[arg(long, value_name = "FILE", env = "ESPCAM_MQTT_CA_FILE")]
    mqtt_ca_file: Option<PathBuf>,
    /// Start N virtual cameras in this process (demo-1 … demo-N), no hardware needed.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1", env = "ESPCAM_DEMO")]
    demo: Option<u16>,
    /// Join a cluster of hubs on NATS (JetStream enabled): nats://HOST:4222. Every hub then
    /// lists, shows and controls every camera of the cluster (docs/CLUSTER.md).
    #[arg(long, value_name = "URL", env = "ESPCAM_CLUSTER")]
    cluster: Option<String>,
    /// This hub's name in the cluster [default: the host name].
    #[arg(long, value_name = "NAME", env = "ESPCAM_NODE")]
    node: Option<String>,
}

/// Runs the hub until Ctrl-C / SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let demo = args.demo.unwrap_or(0);
    if demo > 64 {
        anyhow::bail!("--demo {demo} out of range 0..=64");
    }
    let overrides = Overrides {
        bind: args.bind,
        port: args.port,
        stream_port: args.stream_port,
        data_dir: args.data_dir,
        ack_timeout_ms: args.ack_timeout_ms,
        pull: args.pull,
        auth: args.auth,
        cluster: args.cluster,
        node: args.node,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_self_signed: args.tls_self_signed,
        // The demo is for the machine it runs on unless asked otherwise (--bind or the
        // file's `bind`): no login needed, nothing exposed.
        default_bind: (demo > 0).then_some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        mqtt: espcam_hub::mqtt::config::MqttOverrides {
            url: args.mqtt,
            user: args.mqtt_user,
            password: args.mqtt_password,
            client_id: args.mqtt_client_id,
            ca_file: args.mqtt_ca_file,
        },
    };
    let mut config = Config::load(args.config.as_deref(), overrides)?;
    if demo > 0 {
        demo::trust(&mut config, demo)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    rt.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        let (http, stream) = listeners.local_addrs()?;
        // Kept alive until the hub stops: dropping a handle stops its camera.
        let _demo = if demo > 0 {
            demo::spawn(&config, demo, reachable(http), reachable(stream))?
        } else {
            Vec::new()
        };
        espcam_hub::run(config, listeners, shutdown_signal()).await?;
        Ok(())
    })
}

/// The address a local client uses to reach a listener bound to `addr`.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// Virtual cameras for `--demo`: espcam-sim's hub-mode cameras, connecting over loopback
/// like real ones would over Wi-Fi.
mod demo {
    use std::net::SocketAddr;

    use espcam_hub::Config;
    use espcam_hub::config::CameraAuth;
    use espcam_proto::CameraId;
    use espcam_sim::{CameraHandle, HubCamera, HubCameraConfig, Scene};

    /// When login will be required, gives each virtual camera not in `[[camera]]` a random
    /// token in the configuration, so the hub admits its own demo cameras without pairing.
    /// Without login they are admitted as any camera is, and the list stays as it was (a
    /// list would refuse every other camera).
    pub fn trust(config: &mut Config, n: u16) -> anyhow::Result<()> {
        let mode = espcam_auth::decide_mode(config.auth, &[config.bind]);
        if !mode.login_required() {
            return Ok(());
        }
        for i in 1..=n {
            let id = CameraId::new(&format!("demo-{i}"))?;
            if config.cameras.iter().any(|c| c.id == id) {
                continue;
            }
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes)
                .map_err(|e| anyhow::anyhow!("no randomness for a demo camera token: {e}"))?;
            let token = bytes.iter().map(|b| format!("{b:02x}")).collect();
            config.cameras.push(CameraAuth {
                id,
                token,
                record: None,
            });
        }
        Ok(())
    }

    /// Starts cameras `demo-1`..`demo-n` (with the token the config lists for that id, if
    /// any). Dropping a handle stops its camera, so the caller keeps them.
    pub fn spawn(
        config: &Config,
        n: u16,
        http: SocketAddr,
        stream: SocketAddr,
    ) -> anyhow::Result<Vec<CameraHandle>> {
        let host = match http {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let mut cams = Vec::new();
        for i in 1..=n {
            let id = CameraId::new(&format!("demo-{i}"))?;
            let token = config
                .cameras
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.token.clone())
                .unwrap_or_default();
            let mut cfg = HubCameraConfig::new(&host, http.port(), stream.port(), id, token);
            // Someone walks past every 15 s and the picture is still in between, so a
            // newcomer sees motion events start and end (the moving test pattern would keep
            // one open for ever).
            cfg.scene = Scene::Passing;
            cams.push(HubCamera::spawn(cfg));
        }
        if n == 1 {
            tracing::info!("started virtual camera demo-1");
        } else {
            tracing::info!("started {n} virtual cameras: demo-1 … demo-{n}");
        }
        Ok(cams)
    }
}

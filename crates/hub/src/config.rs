//! Hub configuration: defaults, an optional `espcam.toml`, and overrides from flags and
//! `ESPCAM_*` variables (the `espcam` binary turns those into [`Overrides`]).
//!
//! Precedence: flags > environment > file > defaults. Everything is validated here, once,
//! so the server never starts with a half-valid configuration. This module must never read
//! the environment or the command line itself: the binary does that.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;

use espcam_auth::AuthMode;
use espcam_proto::{CameraId, FrameLimits};
use espcam_record::RetentionPolicy;
use serde::{Deserialize, Serialize};

/// Default configuration file name, looked up in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "espcam.toml";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "espcam-data";

/// A camera's recording mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nothing is recorded (except manual recordings).
    #[default]
    Off,
    /// Every frame is recorded.
    Continuous,
    /// Frames are recorded while an event is active, with pre- and post-roll.
    Events,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Mode::Off),
            "continuous" => Ok(Mode::Continuous),
            "events" => Ok(Mode::Events),
            other => Err(format!(
                "recording mode {:?} is invalid: expected off, continuous or events",
                espcam_proto::close::echo(other, 40)
            )),
        }
    }
}

/// Recording settings (`[recording]` in espcam.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Mode of cameras without their own.
    pub default_mode: Mode,
    /// Modes of particular cameras.
    pub modes: HashMap<CameraId, Mode>,
    /// Seconds kept in memory before an event starts, recorded when it does.
    pub pre_roll: Duration,
    /// Seconds recorded after an event ends.
    pub post_roll: Duration,
    /// What retention keeps.
    pub retention: RetentionPolicy,
    /// How often retention runs.
    pub retention_every: Duration,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            default_mode: Mode::Off,
            modes: HashMap::new(),
            pre_roll: Duration::from_secs(5),
            post_roll: Duration::from_secs(10),
            retention: RetentionPolicy {
                global: espcam_record::Limits {
                    max_age_us: Some(7 * 24 * 3600 * 1_000_000),
                    max_bytes: None,
                },
                min_free_bytes: 1024 * 1024 * 1024,
                ..RetentionPolicy::default()
            },
            retention_every: Duration::from_secs(60),
        }
    }
}

/// A camera allowed to connect, with its shared secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraAuth {
    /// Camera id.
    pub id: CameraId,
    /// Token the camera must present; empty means none.
    #[serde(default)]
    pub token: String,
    /// This camera's recording mode (else `[recording] mode`).
    #[serde(default)]
    pub record: Option<Mode>,
}

/// `[recording]` in espcam.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingFile {
    /// Mode of cameras without their own: off (default), continuous, events.
    pub mode: Option<Mode>,
    /// Seconds kept in memory before an event, recorded when it starts (default 5).
    pub pre_roll_s: Option<u64>,
    /// Seconds recorded after an event ends (default 10).
    pub post_roll_s: Option<u64>,
    /// Delete recordings older than this many days (default 7).
    pub max_age_days: Option<u64>,
    /// Keep at most this many bytes of recordings in all.
    pub max_bytes: Option<u64>,
    /// Keep at most this many bytes per camera.
    pub max_bytes_per_camera: Option<u64>,
    /// Delete the oldest recordings while the disk has less free space than this many MiB
    /// (default 1024).
    pub min_free_mib: Option<u64>,
}

/// A standalone (seed-002) camera the hub connects to: `cam-ap=ws://192.168.4.1/ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullTarget {
    /// The id the camera gets in the hub.
    pub id: CameraId,
    /// Its WebSocket URL.
    pub url: String,
}

impl std::str::FromStr for PullTarget {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = |why: String| ConfigError::Pull(s.chars().take(200).collect(), why);
        let (id, url) = s.split_once('=').ok_or_else(|| bad("missing '='".into()))?;
        let id = CameraId::new(id.trim()).map_err(|e| bad(e.to_string()))?;
        let url = url.trim();
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| bad("the URL must start with ws://".into()))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("the URL has no host".into()));
        }
        Ok(Self {
            id,
            url: url.to_string(),
        })
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// A `--pull` / `pull = [...]` entry is malformed.
    #[error(
        "pull target {0:?} is invalid: {1}; expected ID=ws://HOST[:PORT]/PATH, e.g. cam-ap=ws://192.168.4.1/ws"
    )]
    Pull(String, String),
    /// Two entries for the same camera.
    #[error("camera {0} is listed twice")]
    Duplicate(String),
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

/// The `espcam.toml` file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub bind: Option<IpAddr>,
    /// HTTP port.
    pub port: Option<u16>,
    /// Camera stream port.
    pub stream_port: Option<u16>,
    /// Data directory (snapshots).
    pub data_dir: Option<PathBuf>,
    /// Milliseconds to wait for a camera's ack.
    pub ack_timeout_ms: Option<u64>,
    /// Milliseconds a viewer may take to accept one frame before it is dropped.
    pub viewer_timeout_ms: Option<u64>,
    /// Milliseconds of silence after which a camera link is considered dead.
    pub camera_timeout_ms: Option<u64>,
    /// Milliseconds between the hub's pings on a browser socket (default 15000).
    pub ping_interval_ms: Option<u64>,
    /// Milliseconds after which a browser socket from which nothing arrived (no pong, no
    /// message) is closed (default 45000).
    pub idle_timeout_ms: Option<u64>,
    /// Largest accepted frame message, bytes.
    pub max_frame_bytes: Option<usize>,
    /// Most cameras the hub tracks.
    pub max_cameras: Option<usize>,
    /// Open connections on the HTTP port, in all (also capped by the process's file
    /// descriptor limit).
    pub max_connections: Option<usize>,
    /// Open connections on the HTTP port from one client address.
    pub max_connections_per_address: Option<usize>,
    /// Milliseconds a client has to send a request head; also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout_ms: Option<u64>,
    /// `"auto"` (login unless every listener is on loopback), `"on"` or `"off"`.
    pub auth: Option<String>,
    /// Origins other than the hub's own whose pages may use the browser sockets and change
    /// state, e.g. `["https://ha.example:8123"]`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Names the hub is reached by besides IP addresses and `localhost` (against DNS
    /// rebinding: any other `Host` is refused), e.g. `["espcam.lan"]`.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Cameras allowed to connect (none listed: any valid id, trusted networks only).
    #[serde(default)]
    pub camera: Vec<CameraAuth>,
    /// Recording settings.
    #[serde(default)]
    pub recording: RecordingFile,
    /// Motion detection, events and webhooks (`[motion]`, `[motion.camera.ID]`).
    #[serde(default)]
    pub motion: crate::motion::MotionFile,
    /// Snapshot quota and rate (`[snapshots]`).
    #[serde(default)]
    pub snapshots: SnapshotsFile,
    /// Standalone cameras to pull from, `"id=ws://host/ws"`.
    #[serde(default)]
    pub pull: Vec<String>,
    /// Cluster mode (several hubs as one, on NATS): see docs/CLUSTER.md.
    pub cluster: Option<crate::cluster::config::ClusterFile>,
    /// MQTT and Home Assistant discovery (`[mqtt]`).
    #[serde(default)]
    pub mqtt: Option<crate::mqtt::config::MqttFile>,
}

/// Values from flags or the environment; `None` leaves the file's or the default value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--bind` / `ESPCAM_BIND`.
    pub bind: Option<IpAddr>,
    /// `--port` / `ESPCAM_PORT`.
    pub port: Option<u16>,
    /// `--stream-port` / `ESPCAM_STREAM_PORT`.
    pub stream_port: Option<u16>,
    /// `--data-dir` / `ESPCAM_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--ack-timeout-ms` / `ESPCAM_ACK_TIMEOUT_MS`.
    pub ack_timeout_ms: Option<u64>,
    /// `--pull` (repeatable) / `ESPCAM_PULL`: added to the file's list.
    pub pull: Vec<String>,
    /// `--auth` / `ESPCAM_AUTH`.
    pub auth: Option<AuthMode>,
    /// `--tls-cert FILE` (PEM): with `tls_key`, both ports speak TLS.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key FILE` (PEM).
    pub tls_key: Option<PathBuf>,
    /// `--tls-self-signed`: TLS with a certificate generated once and kept in the data
    /// directory.
    pub tls_self_signed: bool,
    /// The bind address when neither a flag nor the file sets one (`serve --demo` passes
    /// loopback, so the demo is local unless asked otherwise).
    pub default_bind: Option<IpAddr>,
    /// `--cluster` / `ESPCAM_CLUSTER`: NATS URL; turns cluster mode on.
    pub cluster: Option<String>,
    /// `--node` / `ESPCAM_NODE`: this hub's node name in the cluster.
    pub node: Option<String>,
    /// `--mqtt*` / `ESPCAM_MQTT*`.
    pub mqtt: crate::mqtt::config::MqttOverrides,
}

/// The validated configuration the hub runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address both listeners bind to.
    pub bind: IpAddr,
    /// HTTP port (dashboard, REST, browser and camera control sockets).
    pub port: u16,
    /// Camera stream port.
    pub stream_port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Cameras allowed to connect; empty accepts any valid id.
    pub cameras: Vec<CameraAuth>,
    /// Standalone cameras to pull from.
    pub pull: Vec<PullTarget>,
    /// How long a settings change waits for the camera's ack.
    pub ack_timeout: Duration,
    /// How long one frame may take to go out to a viewer before the viewer is dropped.
    pub viewer_timeout: Duration,
    /// Silence after which a camera link is closed as dead (cameras send telemetry or
    /// heartbeats every second).
    pub camera_timeout: Duration,
    /// How often the hub pings a browser socket (`/ws/ui`, `/ws/view`, `/ws/playback`).
    pub ping_interval: Duration,
    /// A browser socket from which nothing arrived (no pong, no message) for this long is
    /// closed with [`espcam_proto::close::IDLE`]; always longer than `ping_interval`.
    pub idle_timeout: Duration,
    /// Frame checks.
    pub limits: FrameLimits,
    /// Most cameras tracked at once, so a flood of made-up ids cannot grow memory.
    pub max_cameras: usize,
    /// Open connections on the HTTP port, in all.
    pub max_connections: usize,
    /// Open connections on the HTTP port from one client address.
    pub max_connections_per_address: usize,
    /// Time a client has to send a request head, on both ports.
    pub header_timeout: Duration,
    /// Recording modes, pre/post-roll and retention.
    pub recording: RecordingConfig,
    /// Snapshot quota per camera and how fast snapshots may be saved.
    pub snapshots: SnapshotQuota,
    /// TLS on both ports.
    pub tls: TlsSource,
    /// Whether login is required: see [`espcam_auth::decide_mode`].
    pub auth: AuthMode,
    /// Other origins allowed to use the browser sockets and change state, normalised
    /// (`https://ha.example:8123`).
    pub allowed_origins: Vec<String>,
    /// Names the hub answers to besides IP addresses and `localhost`.
    pub hostnames: Vec<String>,
    /// Cluster mode; `None` (the default) is a hub on its own, with no NATS.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
    /// Motion detection defaults, per-camera settings, event retention, webhooks.
    pub motion: crate::motion::MotionSettings,
    /// MQTT and Home Assistant discovery; `None`: off.
    pub mqtt: Option<crate::mqtt::config::MqttConfig>,
    /// How long dashboard sessions live. Not in `espcam.toml`: the defaults (idle 24 h,
    /// at most 7 days) are the policy; tests shorten them to see sessions expire.
    pub sessions: espcam_auth::SessionPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: espcam_proto::CONTROL_PORT,
            stream_port: espcam_proto::STREAM_PORT,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            cameras: Vec::new(),
            pull: Vec::new(),
            ack_timeout: Duration::from_millis(3000),
            viewer_timeout: Duration::from_millis(5000),
            camera_timeout: Duration::from_millis(5000),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            limits: FrameLimits::default(),
            max_cameras: 256,
            max_connections: 1024,
            max_connections_per_address: 256,
            header_timeout: Duration::from_secs(10),
            recording: RecordingConfig::default(),
            snapshots: SnapshotQuota::default(),
            tls: TlsSource::Off,
            auth: AuthMode::Auto,
            allowed_origins: Vec::new(),
            hostnames: Vec::new(),
            cluster: None,
            motion: crate::motion::MotionSettings::default(),
            mqtt: None,
            sessions: espcam_auth::SessionPolicy::default(),
        }
    }
}

impl Config {
    /// A configuration for tests: loopback, ephemeral ports, the given data directory.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            stream_port: 0,
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// Loads `path` (or `./espcam.toml` when `path` is `None` and the file exists), then
    /// applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => Some(read_file(p)?),
            None => {
                let p = Path::new(DEFAULT_CONFIG_FILE);
                if p.exists() {
                    Some(read_file(p)?)
                } else {
                    None
                }
            }
        };
        Self::from_parts(file.unwrap_or_default(), overrides)
    }

    /// Parses the text of an `espcam.toml`.
    pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Combines a file's values and overrides over the defaults, and validates.
    pub fn from_parts(file: FileConfig, o: Overrides) -> Result<Self, ConfigError> {
        let d = Self::default();
        let ms = |v: Option<u64>, default: Duration, name: &str| -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(n) if (1..=600_000).contains(&n) => Ok(Duration::from_millis(n)),
                Some(n) => Err(ConfigError::Invalid(format!(
                    "{name} {n} out of range 1..=600000"
                ))),
            }
        };
        let mut seen = std::collections::HashSet::new();
        for c in &file.camera {
            if !seen.insert(c.id.clone()) {
                return Err(ConfigError::Duplicate(c.id.to_string()));
            }
        }
        let mut pull = Vec::new();
        for p in file.pull.iter().chain(o.pull.iter()) {
            let t: PullTarget = p.parse()?;
            if pull.iter().any(|q: &PullTarget| q.id == t.id) {
                return Err(ConfigError::Duplicate(t.id.to_string()));
            }
            pull.push(t);
        }
        let max_frame = file.max_frame_bytes.unwrap_or(d.limits.max_frame);
        if !(1024..=16 * 1024 * 1024).contains(&max_frame) {
            return Err(ConfigError::Invalid(format!(
                "max_frame_bytes {max_frame} out of range 1024..=16777216"
            )));
        }
        let max_cameras = file.max_cameras.unwrap_or(d.max_cameras);
        if max_cameras == 0 {
            return Err(ConfigError::Invalid(
                "max_cameras must be at least 1".into(),
            ));
        }
        if let Some(t) = pull
            .iter()
            .find(|t| file.camera.iter().any(|c| c.id == t.id))
        {
            return Err(ConfigError::Invalid(format!(
                "camera id {} is both a pushing [[camera]] and a --pull target; give the pulled camera another id",
                t.id
            )));
        }
        let count = |v: Option<usize>, default: usize, name: &str| match v {
            None => Ok(default),
            Some(n) if (1..=1_000_000).contains(&n) => Ok(n),
            Some(n) => Err(ConfigError::Invalid(format!(
                "{name} {n} out of range 1..=1000000"
            ))),
        };
        let recording = recording_config(&file, d.recording)?;
        let motion = crate::motion::MotionSettings::from_file(&file.motion)
            .map_err(|e| ConfigError::Invalid(format!("[motion]: {e}")))?;
        let auth = match (o.auth, file.auth.as_deref()) {
            (Some(m), _) => m,
            (None, Some(s)) => s
                .parse::<AuthMode>()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            (None, None) => d.auth,
        };
        let allowed_origins = file
            .allowed_origins
            .iter()
            .map(|o| {
                espcam_auth::normalize_origin(o)
                    .map_err(|e| ConfigError::Invalid(format!("allowed_origins: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut hostnames = Vec::new();
        for h in &file.hostnames {
            let name = h.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            if !valid {
                return Err(ConfigError::Invalid(format!(
                    "hostnames: {:?} is not a host name: expected letters, digits, '-', '.' such as espcam.lan",
                    h.chars().take(80).collect::<String>()
                )));
            }
            hostnames.push(name);
        }
        let cluster = crate::cluster::config::resolve(file.cluster.as_ref(), o.cluster, o.node)?;
        let ping_interval = ms(file.ping_interval_ms, d.ping_interval, "ping_interval_ms")?;
        let idle_timeout = ms(file.idle_timeout_ms, d.idle_timeout, "idle_timeout_ms")?;
        if idle_timeout <= ping_interval {
            return Err(ConfigError::Invalid(format!(
                "idle_timeout_ms {} must be longer than ping_interval_ms {}: a socket must get at least one ping before it counts as silent",
                idle_timeout.as_millis(),
                ping_interval.as_millis()
            )));
        }
        Ok(Self {
            bind: o.bind.or(file.bind).or(o.default_bind).unwrap_or(d.bind),
            port: o.port.or(file.port).unwrap_or(d.port),
            stream_port: o.stream_port.or(file.stream_port).unwrap_or(d.stream_port),
            data_dir: o.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            cameras: file.camera,
            pull,
            ack_timeout: ms(
                o.ack_timeout_ms.or(file.ack_timeout_ms),
                d.ack_timeout,
                "ack_timeout_ms",
            )?,
            viewer_timeout: ms(
                file.viewer_timeout_ms,
                d.viewer_timeout,
                "viewer_timeout_ms",
            )?,
            camera_timeout: ms(
                file.camera_timeout_ms,
                d.camera_timeout,
                "camera_timeout_ms",
            )?,
            ping_interval,
            idle_timeout,
            limits: FrameLimits { max_frame },
            max_cameras,
            max_connections: count(file.max_connections, d.max_connections, "max_connections")?,
            max_connections_per_address: count(
                file.max_connections_per_address,
                d.max_connections_per_address,
                "max_connections_per_address",
            )?,
            header_timeout: ms(
                file.header_timeout_ms,
                d.header_timeout,
                "header_timeout_ms",
            )?,
            recording,
            snapshots: snapshot_quota(&file.snapshots, d.snapshots)?,
            tls: match (o.tls_cert, o.tls_key, o.tls_self_signed) {
                (None, None, false) => TlsSource::Off,
                (None, None, true) => TlsSource::SelfSigned,
                (Some(cert), Some(key), false) => TlsSource::Files { cert, key },
                (Some(_), Some(_), true) => {
                    return Err(ConfigError::Invalid(
                        "--tls-self-signed and --tls-cert/--tls-key exclude each other: pick one"
                            .into(),
                    ));
                }
                _ => {
                    return Err(ConfigError::Invalid(
                        "--tls-cert and --tls-key go together: give both PEM files".into(),
                    ));
                }
            },
            auth,
            allowed_origins,
            hostnames,
            cluster,
            motion,
            mqtt: crate::mqtt::config::MqttConfig::resolve(file.mqtt.as_ref(), &o.mqtt)?,
            sessions: d.sessions,
        })
    }
}

/// Where the hub's TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsSource {
    /// Plain HTTP and WebSocket (`ws://`).
    #[default]
    Off,
    /// A certificate chain and its private key, PEM files.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, RSA or EC).
        key: PathBuf,
    },
    /// Generated once, kept in `<data dir>/tls/`.
    SelfSigned,
}

impl TlsSource {
    /// Whether the ports speak TLS.
    pub fn enabled(&self) -> bool {
        !matches!(self, Self::Off)
    }
}

/// `[snapshots]` in espcam.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsFile {
    /// Snapshots kept per camera (default 1000); past it the oldest are deleted.
    pub max_per_camera: Option<u64>,
    /// Bytes of snapshots kept per camera (default 256 MiB); past it the oldest are deleted.
    pub max_bytes_per_camera: Option<u64>,
    /// Milliseconds between saves of one camera once its burst is used (default 1000).
    pub min_interval_ms: Option<u64>,
    /// Saves of one camera allowed back to back before `min_interval_ms` applies (default 10).
    pub burst: Option<u32>,
}

/// Snapshot quota and rate per camera (see docs/SECURITY.md, "Snapshots").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotQuota {
    /// Snapshots kept per camera; saving one more deletes that camera's oldest.
    pub max_per_camera: u64,
    /// Bytes kept per camera; saving past it deletes that camera's oldest. A single frame
    /// larger than this is refused (507).
    pub max_bytes_per_camera: u64,
    /// Sustained rate: one save per this interval and camera (a token bucket).
    pub min_interval: Duration,
    /// Size of that bucket: saves allowed back to back.
    pub burst: u32,
}

impl Default for SnapshotQuota {
    fn default() -> Self {
        Self {
            max_per_camera: 1000,
            max_bytes_per_camera: 256 * 1024 * 1024,
            min_interval: Duration::from_millis(1000),
            burst: 10,
        }
    }
}

fn snapshot_quota(f: &SnapshotsFile, d: SnapshotQuota) -> Result<SnapshotQuota, ConfigError> {
    let range = |v: Option<u64>, default: u64, name: &str, lo: u64, hi: u64| match v {
        None => Ok(default),
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        Some(n) => Err(ConfigError::Invalid(format!(
            "snapshots.{name} {n} out of range {lo}..={hi}"
        ))),
    };
    Ok(SnapshotQuota {
        max_per_camera: range(
            f.max_per_camera,
            d.max_per_camera,
            "max_per_camera",
            1,
            10_000_000,
        )?,
        max_bytes_per_camera: range(
            f.max_bytes_per_camera,
            d.max_bytes_per_camera,
            "max_bytes_per_camera",
            1024,
            1 << 50,
        )?,
        min_interval: Duration::from_millis(range(
            f.min_interval_ms,
            d.min_interval.as_millis() as u64,
            "min_interval_ms",
            0,
            3_600_000,
        )?),
        burst: range(f.burst.map(u64::from), u64::from(d.burst), "burst", 1, 1000)? as u32,
    })
}

fn recording_config(file: &FileConfig, d: RecordingConfig) -> Result<RecordingConfig, ConfigError> {
    let r = &file.recording;
    let secs = |v: Option<u64>, default: Duration, name: &str| match v {
        None => Ok(default),
        Some(n) if n <= 3600 => Ok(Duration::from_secs(n)),
        Some(n) => Err(ConfigError::Invalid(format!(
            "recording.{name} {n} out of range 0..=3600"
        ))),
    };
    let mut retention = d.retention;
    if let Some(days) = r.max_age_days {
        if !(1..=3650).contains(&days) {
            return Err(ConfigError::Invalid(format!(
                "recording.max_age_days {days} out of range 1..=3650"
            )));
        }
        retention.global.max_age_us = Some(days * 24 * 3600 * 1_000_000);
    }
    if let Some(b) = r.max_bytes {
        retention.global.max_bytes = Some(b);
    }
    if let Some(b) = r.max_bytes_per_camera {
        retention.default_camera.max_bytes = Some(b);
    }
    if let Some(m) = r.min_free_mib {
        retention.min_free_bytes = m.saturating_mul(1024 * 1024);
    }
    Ok(RecordingConfig {
        default_mode: r.mode.unwrap_or(d.default_mode),
        modes: file
            .camera
            .iter()
            .filter_map(|c| c.record.map(|m| (c.id.clone(), m)))
            .collect(),
        pre_roll: secs(r.pre_roll_s, d.pre_roll, "pre_roll_s")?,
        post_roll: secs(r.post_roll_s, d.post_roll, "post_roll_s")?,
        retention,
        retention_every: d.retention_every,
    })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Config::parse_file(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seed() {
        let c = Config::from_parts(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!((c.port, c.stream_port), (6971, 6972));
        assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.data_dir, PathBuf::from("espcam-data"));
    }

    #[test]
    fn browser_socket_liveness_is_configurable_and_checked() {
        let c = Config::from_parts(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.ping_interval, Duration::from_secs(15));
        assert_eq!(c.idle_timeout, Duration::from_secs(45));
        let file = Config::parse_file(
            "ping_interval_ms = 200\nidle_timeout_ms = 1000",
            Path::new("espcam.toml"),
        )
        .unwrap();
        let c = Config::from_parts(file, Overrides::default()).unwrap();
        assert_eq!(c.ping_interval, Duration::from_millis(200));
        assert_eq!(c.idle_timeout, Duration::from_millis(1000));
        let file = Config::parse_file(
            "ping_interval_ms = 5000\nidle_timeout_ms = 5000",
            Path::new("espcam.toml"),
        )
        .unwrap();
        let e = Config::from_parts(file, Overrides::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("idle_timeout_ms 5000 must be longer than ping_interval_ms 5000"),
            "{e}"
        );
    }

    #[test]
    fn flags_beat_file() {
        let file = Config::parse_file(
            r#"
            port = 8000
            stream_port = 8001
            data_dir = "/var/lib/espcam"
            pull = ["cam-ap=ws://192.168.4.1/ws"]
            [[camera]]
            id = "cam-1"
            token = "s3cret"
            "#,
            Path::new("espcam.toml"),
        )
        .unwrap();
        let o = Overrides {
            port: Some(9000),
            pull: vec!["cam-b=ws://10.0.0.2:81/ws".into()],
            ..Overrides::default()
        };
        let c = Config::from_parts(file, o).unwrap();
        assert_eq!((c.port, c.stream_port), (9000, 8001));
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/espcam"));
        assert_eq!(c.cameras[0].token, "s3cret");
        assert_eq!(c.pull.len(), 2);
        assert_eq!(c.pull[1].url, "ws://10.0.0.2:81/ws");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = Config::parse_file("prot = 1", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("unknown field `prot`"), "{e}");
        let e = Config::parse_file("[[camera]]\nid = \"../etc\"", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("camera id"), "{e}");
        let e = "cam=http://x/ws".parse::<PullTarget>().unwrap_err();
        assert!(e.to_string().contains("must start with ws://"), "{e}");
        let e = "nocam".parse::<PullTarget>().unwrap_err();
        assert!(e.to_string().contains("missing '='"), "{e}");
        let file = FileConfig {
            ack_timeout_ms: Some(0),
            ..FileConfig::default()
        };
        let e = Config::from_parts(file, Overrides::default()).unwrap_err();
        assert_eq!(e.to_string(), "ack_timeout_ms 0 out of range 1..=600000");
        // Regression (issue 9.8): a --pull id equal to a configured [[camera]] id was accepted,
        // and the two cameras fought over one registry entry.
        let file = Config::parse_file("[[camera]]\nid = \"porch\"", Path::new("x.toml")).unwrap();
        let o = Overrides {
            pull: vec!["porch=ws://192.168.4.1/ws".into()],
            ..Overrides::default()
        };
        let e = Config::from_parts(file, o).unwrap_err();
        assert!(
            e.to_string()
                .contains("camera id porch is both a pushing [[camera]] and a --pull target"),
            "{e}"
        );
        let text = "[recording]\nmode = \"sometimes\"";
        let e = Config::parse_file(text, Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
        let text = "[recording]\nmax_age_days = 0";
        let file = Config::parse_file(text, Path::new("x.toml")).unwrap();
        let e = Config::from_parts(file, Overrides::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "recording.max_age_days 0 out of range 1..=3650"
        );
    }

    #[test]
    fn auth_settings_parse_and_flags_win() {
        let text = r#"
            auth = "off"
            allowed_origins = ["HTTPS://HA.example:443", "http://10.0.0.5:8123"]
            hostnames = ["Espcam.LAN."]
        "#;
        let file = Config::parse_file(text, Path::new("espcam.toml")).unwrap();
        let c = Config::from_parts(file, Overrides::default()).unwrap();
        assert_eq!(c.auth, AuthMode::Off);
        assert_eq!(
            c.allowed_origins,
            ["https://ha.example", "http://10.0.0.5:8123"]
        );
        assert_eq!(c.hostnames, ["espcam.lan"]);
        let file = Config::parse_file(text, Path::new("espcam.toml")).unwrap();
        let o = Overrides {
            auth: Some(AuthMode::On),
            ..Overrides::default()
        };
        assert_eq!(Config::from_parts(file, o).unwrap().auth, AuthMode::On);
        let bad = |text: &str| {
            let file = Config::parse_file(text, Path::new("x.toml")).unwrap();
            Config::from_parts(file, Overrides::default())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(r#"auth = "maybe""#),
            "auth = \"maybe\" is not a mode: expected \"auto\", \"on\" or \"off\""
        );
        assert!(
            bad(r#"allowed_origins = ["ha.example"]"#)
                .starts_with("allowed_origins: malformed origin"),
            "{}",
            bad(r#"allowed_origins = ["ha.example"]"#)
        );
        assert!(bad(r#"hostnames = ["a b"]"#).starts_with("hostnames: \"a b\" is not a host name"));
    }

    #[test]
    fn the_demo_default_bind_yields_to_flags_and_file() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let demo = || Overrides {
            default_bind: Some(lo),
            ..Overrides::default()
        };
        let c = Config::from_parts(FileConfig::default(), demo()).unwrap();
        assert_eq!(c.bind, lo);
        let file = Config::parse_file(r#"bind = "0.0.0.0""#, Path::new("x.toml")).unwrap();
        assert!(
            Config::from_parts(file, demo())
                .unwrap()
                .bind
                .is_unspecified()
        );
        let o = Overrides {
            bind: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            ..demo()
        };
        assert!(
            Config::from_parts(FileConfig::default(), o)
                .unwrap()
                .bind
                .is_unspecified()
        );
    }
}

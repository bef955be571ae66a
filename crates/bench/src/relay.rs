//! The relay under test, as a child process: the real hub (`espcam serve` on loopback with
//! its own ports and a throw-away data directory) or the minimal baseline relay
//! (`espcam-bench` itself, see `baseline.rs`), so the figures are the real binary's and the
//! load generator never shares an allocator or a runtime with what it measures.
//!
//! It must never outlive the benchmark: dropping [`RelayProcess`] kills it and removes its
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long the relay may take to become ready after it was started: the hub creates its
/// databases with synchronous writes, and on the shared machine's loaded disk those syncs
/// took up to 40 s at times.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one REST request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest REST response body read (the camera list of a benchmark is a few hundred bytes).
const MAX_BODY: usize = 1024 * 1024;

/// What to start.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `exe serve …`: an espcam hub binary.
    Hub(PathBuf),
    /// The same, recording every camera continuously (an `espcam.toml` with
    /// `[recording] mode = "continuous"` in its working directory).
    HubRecording(PathBuf),
    /// `exe --serve-baseline PORT STREAM_PORT`: this benchmark binary's minimal relay.
    Baseline(PathBuf),
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Hub(exe) => write!(f, "{} serve", exe.display()),
            Kind::HubRecording(exe) => {
                write!(f, "{} serve, recording every camera", exe.display())
            }
            Kind::Baseline(_) => f.write_str("the minimal tokio-tungstenite baseline relay"),
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    kind: Kind,
    /// HTTP port (viewers, camera control; REST for the hub).
    pub port: u16,
    /// Camera stream port.
    pub stream_port: u16,
    dir: PathBuf,
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl RelayProcess {
    /// Starts the relay on two free loopback ports with a fresh directory.
    pub fn spawn(kind: &Kind) -> anyhow::Result<Self> {
        let dir = fresh_dir()?;
        let (port, stream_port) = free_ports()?;
        let log = std::fs::File::create(dir.join("relay.log")).context("creating the log")?;
        if matches!(kind, Kind::Hub(_) | Kind::HubRecording(_)) {
            // Every viewer connects from 127.0.0.1, and a WebSocket holds its place in the
            // hub's connection budget (256 per address by default): lift the budget so that
            // it is the relay that is measured, not its refusals (the file-descriptor limit
            // still caps the total).
            let mut toml =
                String::from("max_connections = 1000000\nmax_connections_per_address = 1000000\n");
            if matches!(kind, Kind::HubRecording(_)) {
                toml.push_str("[recording]\nmode = \"continuous\"\n");
            }
            std::fs::write(dir.join("espcam.toml"), toml).context("writing the hub's config")?;
        }
        let mut cmd = match kind {
            Kind::Hub(exe) | Kind::HubRecording(exe) => {
                let mut cmd = Command::new(exe);
                cmd.arg("serve")
                    .args(["--bind", "127.0.0.1"])
                    .args(["--port", &port.to_string()])
                    .args(["--stream-port", &stream_port.to_string()])
                    .arg("--data-dir")
                    .arg(dir.join("data"));
                cmd
            }
            Kind::Baseline(exe) => {
                let mut cmd = Command::new(exe);
                cmd.arg("--serve-baseline")
                    .arg(port.to_string())
                    .arg(stream_port.to_string());
                cmd
            }
        };
        // The user's ESPCAM_* settings (a config file, demo cameras, pull targets) would
        // change what is measured: the relay gets only the flags above.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ESPCAM_") {
                cmd.env_remove(key);
            }
        }
        let exe = match kind {
            Kind::Hub(e) | Kind::HubRecording(e) | Kind::Baseline(e) => e.clone(),
        };
        let child = cmd
            // Its own working directory, so no `espcam.toml` of the user's is picked up.
            .current_dir(&dir)
            .env("ESPCAM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("opening the log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            child,
            kind: kind.clone(),
            port,
            stream_port,
            dir,
            http,
        })
    }

    /// What runs.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The process id, for `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the relay serves: the hub answers `GET /healthz` with 200; the baseline
    /// (which has no REST API) accepts connections on both ports.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the relay exited at start ({status}):\n{}", self.log_tail());
            }
            let ready = match self.kind {
                Kind::Hub(_) | Kind::HubRecording(_) => {
                    matches!(self.get("/healthz").await, Ok((200, _)))
                }
                Kind::Baseline(_) => {
                    let a = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await;
                    let b = tokio::net::TcpStream::connect(("127.0.0.1", self.stream_port)).await;
                    a.is_ok() && b.is_ok()
                }
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the relay was not ready within {} s:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path` on the HTTP port: status and body (lossy UTF-8, at most [`MAX_BODY`]).
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let uri: hyper::Uri = format!("http://127.0.0.1:{}{path}", self.port)
            .parse()
            .with_context(|| format!("bad request path {path:?}"))?;
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let res = self.http.get(uri).await?;
            let status = res.status().as_u16();
            let body = http_body_util::Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the response body: {e}"))?
                .to_bytes();
            anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
        })
        .await
        .with_context(|| format!("GET {path} timed out"))?
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the relay's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("relay.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new empty directory under the system temp directory.
fn fresh_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0..1000u32 {
        let dir = base.join(format!("espcam-bench-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("no free temporary directory name under {}", base.display())
}

/// Two distinct free loopback ports. Both listeners are held until both ports are known, so
/// they differ; the relay binds them right after (a tiny race with other programs, harmless
/// for a benchmark: it fails loudly and is retried).
fn free_ports() -> anyhow::Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// The hub binary to measure when `--hub-exe` is not given: `espcam` next to this
/// benchmark's own executable (both land in `target/release/` with `cargo build --release`).
pub fn default_hub_exe() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding the benchmark's own executable")?;
    let dir = me
        .parent()
        .context("the benchmark's executable has no directory")?;
    let exe = dir.join(format!("espcam{}", std::env::consts::EXE_SUFFIX));
    if exe.is_file() {
        return Ok(exe);
    }
    bail!(
        "no hub binary at {}: build it first with `cargo build --release -p espcam` \
         (same profile as this benchmark), or pass --hub-exe PATH",
        exe.display()
    )
}

/// Checks that `exe` exists, for a clear error before anything is started, and returns
/// it absolute.
pub fn check_exe(exe: &Path) -> anyhow::Result<PathBuf> {
    if !exe.is_file() {
        bail!("{} is not a file: expected an espcam binary", exe.display());
    }
    // Made absolute here: the relay runs in a working directory of its own, where a
    // relative `--hub-exe target/release/espcam` would name nothing.
    std::fs::canonicalize(exe).with_context(|| format!("resolving {}", exe.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relative `--hub-exe` names the same file once the relay runs in its own working
    /// directory (it failed with "No such file or directory" before).
    #[test]
    fn a_relative_hub_exe_is_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("espcam");
        std::fs::write(&exe, b"").unwrap();
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(&exe, &cwd);
        let resolved = check_exe(&relative).unwrap();
        assert!(resolved.is_absolute(), "{}", resolved.display());
        assert_eq!(resolved, std::fs::canonicalize(&exe).unwrap());
        assert!(check_exe(Path::new("no/such/espcam")).is_err());
    }

    /// `target` relative to `base` (both absolute), with `..` as needed.
    fn pathdiff(target: &Path, base: &Path) -> PathBuf {
        let t: Vec<_> = target.components().collect();
        let b: Vec<_> = base.components().collect();
        let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut p = PathBuf::new();
        for _ in common..b.len() {
            p.push("..");
        }
        for c in &t[common..] {
            p.push(c);
        }
        p
    }
}

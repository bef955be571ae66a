//! The hub under test, as a child process: `espcam serve` on loopback with its own ports and
//! a throw-away data directory, so the figures are the real binary's and the load generator
//! never shares an allocator or a runtime with it.
//!
//! It must never outlive the benchmark: dropping [`HubProcess`] kills it and removes its
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the hub may take to answer `/healthz` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `espcam serve`.
#[derive(Debug)]
pub struct HubProcess {
    child: Child,
    /// HTTP port (dashboard, REST, viewers, camera control).
    pub port: u16,
    /// Camera stream port.
    pub stream_port: u16,
    dir: PathBuf,
}

impl HubProcess {
    /// Starts `exe serve` on two free loopback ports with a fresh data directory.
    pub fn spawn(exe: &Path) -> anyhow::Result<Self> {
        let dir = fresh_dir()?;
        let (port, stream_port) = free_ports()?;
        let log = std::fs::File::create(dir.join("hub.log")).context("creating the hub log")?;
        let data = dir.join("data");
        let mut cmd = Command::new(exe);
        // The user's ESPCAM_* settings (a config file, demo cameras, pull targets) would
        // change what is measured: the hub under test gets only the flags below.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ESPCAM_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .arg("serve")
            .args(["--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--stream-port", &stream_port.to_string()])
            .arg("--data-dir")
            .arg(&data)
            // Its own working directory, so no `espcam.toml` of the user's is picked up.
            .current_dir(&dir)
            .env("ESPCAM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("opening the hub log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        Ok(Self {
            child,
            port,
            stream_port,
            dir,
        })
    }

    /// The hub's process id, for `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET /healthz` answers 200.
    pub async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the hub exited at start ({status}):\n{}", self.log_tail());
            }
            if let Ok((200, _)) = self.get("/healthz").await {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the hub did not answer /healthz within {} s:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path` on the HTTP port: status and body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw))
            .await
            .context("HTTP response timed out")??;
        parse_response(&raw)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the hub's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("hub.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for HubProcess {
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
/// they differ; the hub binds them right after (a tiny race with other programs, harmless
/// for a benchmark: it fails loudly).
fn free_ports() -> anyhow::Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Status and body of an HTTP/1.1 response (`Content-Length` or chunked).
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("HTTP response without a header end")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("HTTP response without a status")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return Ok((status, body.to_string()));
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").context("bad chunk")?;
        let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if size == 0 {
            return Ok((status, out));
        }
        out.push_str(after.get(..size).context("short chunk")?);
        rest = after.get(size + 2..).context("short chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!(r, (200, "ok".to_string()));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r, (404, "abcde".to_string()));
        assert!(parse_response(b"garbage").is_err());
    }
}

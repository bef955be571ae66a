//! A Debian `nats-server -js` for the cluster tests and benchmark: started on a free
//! loopback port with a temporary store, stopped by pid (never by name).

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn nats_binary() -> Option<PathBuf> {
    let candidates = ["/usr/sbin/nats-server", "/usr/bin/nats-server"];
    if let Some(p) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v nats-server"])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// `nats-server` for this test, or `None` (skip) when absent and not required.
pub fn require_nats() -> Option<PathBuf> {
    match nats_binary() {
        Some(p) => Some(p),
        None if std::env::var("ESPCAM_REQUIRE_TOOLS").as_deref() == Ok("1") => {
            panic!("nats-server not found and ESPCAM_REQUIRE_TOOLS=1 (apt install nats-server)")
        }
        None => {
            eprintln!("SKIPPED: nats-server not installed (apt install nats-server)");
            None
        }
    }
}

/// A `nats-server -js` child process on 127.0.0.1, killed by pid when dropped.
pub struct Nats {
    bin: PathBuf,
    pub port: u16,
    dir: PathBuf,
    /// Extra command-line options (e.g. `--user`, `--pass`).
    extra: Vec<String>,
    child: Option<Child>,
}

impl Nats {
    pub fn start(bin: &Path, dir: &Path) -> Self {
        Self::start_with(bin, dir, &[])
    }

    /// Like [`Nats::start`], with extra `nats-server` options.
    pub fn start_with(bin: &Path, dir: &Path, extra: &[&str]) -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = Self {
            bin: bin.to_path_buf(),
            port,
            dir: dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        n.restart();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start listening on {addr}");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

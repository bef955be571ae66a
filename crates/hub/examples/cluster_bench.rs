//! Cross-hub relay cost, measured in one run against a real `nats-server -js`:
//! one camera pushing to hub A, `--viewers` viewers on A and as many on hub B (B gets the
//! frames through NATS), all reading at once for `--secs` seconds after a warm-up. Each
//! frame carries its send time in a JPEG comment segment, so a viewer takes the frame's age
//! (camera send → viewer holds the whole message; one process, one clock) from the bare
//! JPEG alone, on either hub. Prints p50/p99/max age per hub, B − A, and how many messages
//! crossed NATS on the camera's frame subject (counted by a subscriber of this process)
//! against frames sent: a frame must cross once per interested node, whatever the number
//! of viewers there.
//!
//! `cargo run --release -p espcam-hub --example cluster_bench -- [--viewers 100] [--fps 15] [--secs 15] [--hub-exe target/release/espcam]`
//!
//! With `--hub-exe PATH` the two hubs are separate `PATH serve --cluster … --node …`
//! processes (loopback, their own ports, data directories and an `espcam.toml` raising the
//! per-address connection limit and turning motion analysis off, `ESPCAM_*` cleared);
//! without it they run in this process (one runtime with the viewers).
//!
//! A benchmark, not a test: nothing here asserts a speed. Bounded in time; the NATS server
//! is stopped by pid.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::nats::Nats;
use common::{CamOpts, TestHub, control_hello, framed, hello_exchange, now_us, stream_hello, ws};
use espcam_hub::Config;
use espcam_hub::cluster::ClusterConfig;
use espcam_proto::{CameraMsg, Resolution, Telemetry};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A hub under test: in this process, or an `espcam serve` child process.
enum Hub {
    InProcess(TestHub, #[allow(dead_code)] tempfile::TempDir),
    Process {
        child: std::process::Child,
        http: std::net::SocketAddr,
        stream: std::net::SocketAddr,
        _dir: tempfile::TempDir,
    },
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Hub {
    async fn start(exe: Option<&str>, nats: &Nats, node: &str, viewers: u64) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let Some(exe) = exe else {
            let hub = TestHub::start(config(dir.path(), nats, node, viewers)).await;
            return Hub::InProcess(hub, dir);
        };
        let limit = viewers as usize + 16;
        std::fs::write(
            dir.path().join("espcam.toml"),
            format!(
                "max_connections = {}\nmax_connections_per_address = {}\n\n[motion]\nenabled = false\n",
                limit.max(1024),
                limit.max(256)
            ),
        )
        .unwrap();
        let (port, stream_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("serve")
            .args(["--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--stream-port", &stream_port.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--cluster", &nats.url(), "--node", node]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ESPCAM_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .current_dir(dir.path())
            .env("ESPCAM_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
        let http: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let stream = format!("127.0.0.1:{stream_port}").parse().unwrap();
        let mut hub = Hub::Process {
            child,
            http,
            stream,
            _dir: dir,
        };
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(http).await.is_ok() {
                return hub;
            }
            if let Hub::Process { child, _dir, .. } = &mut hub
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(_dir.path().join("hub.log")).unwrap_or_default();
                panic!("hub {node} exited ({status}):\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("hub {node} did not listen on {http} within 60 s");
    }

    fn http(&self) -> std::net::SocketAddr {
        match self {
            Hub::InProcess(h, _) => h.http,
            Hub::Process { http, .. } => *http,
        }
    }

    fn stream(&self) -> std::net::SocketAddr {
        match self {
            Hub::InProcess(h, _) => h.stream,
            Hub::Process { stream, .. } => *stream,
        }
    }

    async fn get(&self, path: &str) -> common::Resp {
        common::http(self.http(), "GET", path, None).await
    }

    fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.http())
    }

    async fn stop(self) {
        match self {
            Hub::InProcess(h, _) => h.stop().await,
            Hub::Process { mut child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

/// `jpeg` with a COM segment right after SOI holding `ECSTAMP!` and the send time (µs).
fn stamped(jpeg: &[u8], sent_us: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(jpeg.len() + 20);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE, 0, 18]);
    out.extend_from_slice(b"ECSTAMP!");
    out.extend_from_slice(&sent_us.to_be_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn read_stamp(jpeg: &[u8]) -> Option<u64> {
    let s = jpeg.get(6..22)?;
    (&s[..8] == b"ECSTAMP!").then(|| u64::from_be_bytes(s[8..16].try_into().unwrap()))
}

fn config(dir: &std::path::Path, nats: &Nats, node: &str, viewers: u64) -> Config {
    let mut c = Config::for_tests(dir);
    // Every viewer comes from 127.0.0.1.
    c.max_connections_per_address = c.max_connections_per_address.max(viewers as usize + 16);
    c.max_connections = c.max_connections.max(viewers as usize + 16);
    // A relay benchmark: no motion analysis of the frames.
    c.motion.default.enabled = false;
    c.cluster = Some(ClusterConfig::new(nats.url(), node));
    c
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let viewers = arg("--viewers", 100);
    let fps = arg("--fps", 15);
    let secs = arg("--secs", 15);
    let Some(bin) = common::nats::nats_binary() else {
        eprintln!("nats-server not installed (apt install nats-server)");
        std::process::exit(2);
    };
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(&bin, store.path());
    let exe = arg_str("--hub-exe");
    let a = Hub::start(exe.as_deref(), &nats, "hub-a", viewers).await;
    let b = Hub::start(exe.as_deref(), &nats, "hub-b", viewers).await;

    // The camera: QVGA JPEGs with a send stamp, at `fps`.
    let mut opts = CamOpts::new("cam-1");
    opts.settings.resolution = Resolution::Qvga;
    let jpeg = common::jpeg(320, 240, 12);
    let mut control = ws(&format!("ws://{}/ws/camera", a.http())).await;
    hello_exchange(&mut control, control_hello(&opts)).await;
    let mut stream = ws(&format!("ws://{}/ws/stream", a.stream())).await;
    hello_exchange(&mut stream, stream_hello("cam-1", "")).await;
    let sent = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let cam = {
        let (sent, measuring, settings) = (sent.clone(), measuring.clone(), opts.settings);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / fps.max(1)));
            let mut telemetry = tokio::time::interval(Duration::from_millis(500));
            let mut seq = 0u32;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        seq = seq.wrapping_add(1);
                        let j = stamped(&jpeg, now_us());
                        if stream.send(Message::Binary(framed(seq, &j, 320, 240).into())).await.is_err() {
                            return;
                        }
                        if measuring.load(Ordering::Relaxed) {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ = telemetry.tick() => {
                        let t = CameraMsg::Telemetry(Telemetry {
                            fps: fps as f32, frames_sent: u64::from(seq), frames_dropped: 0,
                            heap_free: 100_000, psram_free: 0, uptime_ms: 1, rssi: None,
                            settings, quality_in_force: None,
                        });
                        if control.send(Message::Text(t.to_json().into())).await.is_err() {
                            return;
                        }
                    }
                    m = control.next() => if m.is_none() { return },
                }
            }
        })
    };
    // B lists the camera once A's directory entry is there.
    for _ in 0..200 {
        let r = b.get("/api/cameras/cam-1").await;
        if r.status == 200 && r.json()["online"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A counter of the camera's frames on NATS.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut sub = client.subscribe("espcam.frames.cam-1").await.unwrap();
    let crossed = Arc::new(AtomicU64::new(0));
    {
        let (crossed, measuring) = (crossed.clone(), measuring.clone());
        tokio::spawn(async move {
            while sub.next().await.is_some() {
                if measuring.load(Ordering::Relaxed) {
                    crossed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    // Viewers on both hubs, at once.
    let mut tasks = Vec::new();
    for (hub, name) in [(&a, "A"), (&b, "B")] {
        for _ in 0..viewers {
            let url = hub.ws_url("/ws/view/cam-1");
            let measuring = measuring.clone();
            tasks.push(tokio::spawn(async move {
                let mut v = ws(&url).await;
                let mut ages = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(secs + 8);
                while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, v.next()).await {
                    if let Message::Binary(j) = m {
                        let at = now_us();
                        if measuring.load(Ordering::Relaxed)
                            && let Some(s) = read_stamp(&j)
                        {
                            ages.push(at.saturating_sub(s));
                        }
                    }
                }
                (name, ages)
            }));
        }
    }
    // Warm-up: every viewer connected, B's subscription up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    for t in tasks {
        let (name, ages) = t.await.unwrap();
        if name == "A" {
            on_a.extend(ages)
        } else {
            on_b.extend(ages)
        }
    }
    cam.abort();
    on_a.sort_unstable();
    on_b.sort_unstable();
    let sent = sent.load(Ordering::Relaxed);
    let crossed = crossed.load(Ordering::Relaxed);
    println!(
        "1 camera (QVGA, {} B frames, {fps} fps) on hub A; {viewers} viewers on A and {viewers} on B, {secs} s measured; hubs {}",
        common::jpeg(320, 240, 12).len() + 18,
        match &exe {
            Some(e) => format!("as separate processes ({e} serve --cluster)"),
            None => "in this process".into(),
        }
    );
    println!("hub    frames   p50 ms   p99 ms   max ms");
    for (name, ages) in [("A", &on_a), ("B", &on_b)] {
        println!(
            "{name:<5} {:>7} {:>8.2} {:>8.2} {:>8.2}",
            ages.len(),
            percentile(ages, 0.5),
            percentile(ages, 0.99),
            percentile(ages, 1.0)
        );
    }
    println!(
        "B − A: p50 {:+.2} ms, p99 {:+.2} ms",
        percentile(&on_b, 0.5) - percentile(&on_a, 0.5),
        percentile(&on_b, 0.99) - percentile(&on_a, 0.99)
    );
    println!(
        "frames sent {sent}, messages on espcam.frames.cam-1 {crossed} ({:.2} per frame, 1 interested node)",
        crossed as f64 / sent.max(1) as f64
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    a.stop().await;
    b.stop().await;
    drop(nats);
}

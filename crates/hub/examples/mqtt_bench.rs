//! MQTT service cost and isolation, measured in one run against a real mosquitto:
//!
//! 1. CPU: the same hub with N virtual cameras, without MQTT and with it (1 image/s per
//!    camera plus telemetry), alternating twice; process CPU time (user + system, from
//!    /proc/self/stat) per wall second, so the figures hold on a shared machine.
//! 2. Isolation: viewers' frames/s over `--freeze` seconds with the broker answering, then
//!    with it frozen (SIGSTOP), and the process's memory before and after.
//!
//! `cargo run --release -p espcam-hub --example mqtt_bench -- [--cameras 50] [--secs 15] [--freeze 60]`
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/broker.rs"]
mod broker;

use std::time::{Duration, Instant};

use broker::{Broker, Client};
use espcam_hub::mqtt::config::MqttConfig;
use espcam_hub::{Config, Listeners};
use espcam_proto::{CameraId, Resolution};
use espcam_sim::{CameraHandle, HubCamera, HubCameraConfig};
use futures_util::StreamExt;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

/// User + system CPU seconds of this process.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 after the name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(0, |v| v.parse().unwrap())
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), espcam_hub::RunError>>,
    http: std::net::SocketAddr,
    _cams: Vec<CameraHandle>,
}

async fn start(dir: &std::path::Path, mqtt: Option<u16>, cameras: u64) -> Running {
    let mut config = Config::for_tests(dir);
    config.mqtt = mqtt.map(|p| MqttConfig::new("127.0.0.1", p));
    let listeners = Listeners::bind(&config).await.unwrap();
    let (http, stream) = listeners.local_addrs().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(espcam_hub::run(config, listeners, async {
        let _ = rx.await;
    }));
    let cams = (1..=cameras)
        .map(|i| {
            let mut c = HubCameraConfig::new(
                "127.0.0.1",
                http.port(),
                stream.port(),
                CameraId::new(&format!("cam-{i}")).unwrap(),
                "",
            );
            c.settings.resolution = Resolution::Qvga;
            c.fps = 10;
            HubCamera::spawn(c)
        })
        .collect();
    // Let every camera connect and the rates settle.
    tokio::time::sleep(Duration::from_secs(4)).await;
    Running {
        stop,
        task,
        http,
        _cams: cams,
    }
}

impl Running {
    async fn stop(self) {
        drop(self._cams);
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn measure(secs: u64) -> f64 {
    let (c0, t0) = (cpu_secs(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_secs() - c0) / t0.elapsed().as_secs_f64()
}

async fn viewer_fps(http: std::net::SocketAddr, cams: &[String], secs: u64) -> Vec<f64> {
    let mut tasks = Vec::new();
    for id in cams {
        let url = format!("ws://{http}/ws/view/{id}");
        tasks.push(tokio::spawn(async move {
            // A camera may still be connecting: retry for a while.
            let mut tries = 0;
            let mut ws = loop {
                match tokio_tungstenite::connect_async(url.as_str()).await {
                    Ok((ws, _)) => break ws,
                    Err(e) if tries < 100 => {
                        tries += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("viewer {url}: {e}"),
                }
            };
            let until = tokio::time::Instant::now() + Duration::from_secs(secs);
            let mut n = 0u64;
            while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await {
                n += u64::from(m.is_binary());
            }
            n as f64 / secs as f64
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cameras = arg("--cameras", 50);
    let secs = arg("--secs", 15);
    let freeze = arg("--freeze", 60);
    let Some(broker) = Broker::start() else {
        return;
    };
    let sub = Client::connect(broker.port, "bench-ha", &["espcam/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    println!("{cameras} virtual cameras, QVGA at 10 fps; {secs} s per CPU phase");

    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..2 {
        let hub = start(&dir.path().join(format!("off{round}")), None, cameras).await;
        off.push(measure(secs).await);
        hub.stop().await;
        let hub = start(
            &dir.path().join(format!("on{round}")),
            Some(broker.port),
            cameras,
        )
        .await;
        let images0: usize = (1..=cameras)
            .map(|i| sub.seen.count(&format!("espcam/camera/cam-{i}/image")))
            .sum();
        let t0 = Instant::now();
        on.push(measure(secs).await);
        let images: usize = (1..=cameras)
            .map(|i| sub.seen.count(&format!("espcam/camera/cam-{i}/image")))
            .sum::<usize>()
            - images0;
        println!(
            "round {round}: without MQTT {:.1} % of one core, with MQTT {:.1} % ({:.1} images/s reached the subscriber)",
            off[round] * 100.0,
            on[round] * 100.0,
            images as f64 / t0.elapsed().as_secs_f64()
        );
        hub.stop().await;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "MQTT adds {:.2} % of one core for {cameras} cameras (mean without {:.1} %, with {:.1} %)",
        (mean(&on) - mean(&off)) * 100.0,
        mean(&off) * 100.0,
        mean(&on) * 100.0
    );

    // Isolation: viewers on 5 cameras, broker answering, then frozen.
    let hub = start(&dir.path().join("freeze"), Some(broker.port), cameras).await;
    let watched: Vec<String> = (1..=cameras.min(5)).map(|i| format!("cam-{i}")).collect();
    let normal = viewer_fps(hub.http, &watched, freeze).await;
    // Measured while the broker is frozen only: this process's test subscriber keeps every
    // message it received before, and receives nothing while the broker is frozen.
    let rss0 = rss_kib();
    broker.pause();
    let frozen = viewer_fps(hub.http, &watched, freeze).await;
    let rss1 = rss_kib();
    broker.resume();
    println!(
        "viewer frames/s over {freeze} s: broker answering {:.2?}, broker frozen {:.2?}; RSS {} KiB at the freeze, {} KiB at its end",
        normal, frozen, rss0, rss1
    );
    hub.stop().await;
}

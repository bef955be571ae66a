//! Virtual-camera benchmark: prints figures, asserts nothing (see docs/BENCHMARKS.md).
//!
//! ```text
//! cargo bench -p espcam-sim --bench sim
//! ESPCAM_BENCH_CAMERAS=300 ESPCAM_BENCH_SECS=20 cargo bench -p espcam-sim --bench sim
//! ```
//!
//! 1. Core: per-frame cost of the `espcam-camera` state machine (hub mode, both links up),
//!    driven on a virtual clock: timeout → Capture → handle_frame → handle_frame_sent.
//! 2. Pictures: encoding one VGA loop frame vs composing one frame (base frame + spliced
//!    text MCUs), which is what a virtual camera does per frame.
//! 3. Cameras: N hub-mode virtual cameras at VGA 30 fps streaming to an in-process sink hub
//!    over loopback WebSockets (the sink decodes every frame with `espcam_proto::decode_frame`
//!    and shares the same 2 cores), for a bounded time; prints delivered fps and CPU use.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use bytes::BytesMut;
use espcam_camera::{
    Camera, CapturedFrame, Config, FrameDecision, Instant, Output, Sensor, SensorError, Setting,
};
use espcam_proto::{CameraId, FrameLimits, Settings, decode_frame};
use espcam_sim::{FrameSet, HubCamera, HubCameraConfig, LinkStatus, test_jpeg};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let cameras: usize = env("ESPCAM_BENCH_CAMERAS", 200);
    let secs: u64 = env("ESPCAM_BENCH_SECS", 10);
    println!(
        "espcam-sim benchmark ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    core_cost();
    picture_cost();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(many_cameras(cameras, secs));
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct NullSensor;
impl Sensor for NullSensor {
    fn set(&mut self, _: Setting) -> Result<(), SensorError> {
        Ok(())
    }
}

fn core_cost() {
    let mut now = Instant::from_millis(1);
    let mut cam = Camera::new(
        Config::hub(CameraId::new("cam-1").expect("valid id"), ""),
        NullSensor,
        now,
    );
    // Bring both links up.
    for _ in 0..2 {
        cam.handle_timeout(now);
        while let Some(o) = cam.poll_output() {
            if let Output::Connect { conn, .. } = o {
                cam.handle_connected(now, conn);
                cam.handle_text(now, conn, r#"{"type":"welcome","camera":"cam-1"}"#);
            }
        }
    }
    let frames = 2_000_000u64;
    let mut sent = 0u64;
    let start = StdInstant::now();
    while sent < frames {
        let Some(t) = cam.poll_timeout() else { break };
        now = t;
        cam.handle_timeout(now);
        while let Some(o) = cam.poll_output() {
            if o == Output::Capture {
                let f = CapturedFrame {
                    captured_at: now,
                    width: 640,
                    height: 480,
                    len: 20_000,
                };
                if let FrameDecision::Send(s) = cam.handle_frame(now, &f) {
                    black_box(&s.header);
                    sent += 1;
                    for c in s.targets.as_slice() {
                        let _ = cam.handle_frame_sent(now, *c);
                    }
                }
            }
        }
    }
    let el = start.elapsed();
    println!(
        "core: {sent} frames ({:.0} s of camera time incl. telemetry) in {:.3} s = {:.0} ns/frame",
        now.as_micros() as f64 / 1e6,
        el.as_secs_f64(),
        el.as_nanos() as f64 / sent as f64
    );
}

fn picture_cost() {
    let vga = Settings::default();
    let start = StdInstant::now();
    let n = 20;
    let mut size = 0;
    for _ in 0..n {
        size = black_box(test_jpeg(&vga, &["CAM-1"]).expect("encode")).len();
    }
    let encode = start.elapsed() / n;
    let start = StdInstant::now();
    let set = FrameSet::build(vga).expect("build");
    let build = start.elapsed();
    let frames = 20_000u64;
    let mut out = BytesMut::with_capacity(64 * 1024);
    let start = StdInstant::now();
    for i in 0..frames {
        out.clear();
        let seq = format!("#{i:06}");
        set.compose(
            i,
            &["CAM-123", &seq, "12:34:56.789", "VGA Q12 B+0"],
            &mut out,
        );
        black_box(&out);
    }
    let compose = start.elapsed() / frames as u32;
    println!(
        "pictures (VGA, quality 12): encode one frame {:.2} ms ({size} bytes); build a {}-frame loop {:.0} ms; compose one frame with 4 text lines {:.1} µs ({} bytes)",
        encode.as_secs_f64() * 1e3,
        set.loop_len(),
        build.as_secs_f64() * 1e3,
        compose.as_secs_f64() * 1e6,
        out.len()
    );
}

/// CPU time (user + system) this process used so far, from /proc (Linux only).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every mainstream Linux configuration.
    Some(Duration::from_millis((utime + stime) * 10))
}

async fn many_cameras(n: usize, secs: u64) {
    let control = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let stream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (cport, sport) = (
        control.local_addr().expect("bound").port(),
        stream.local_addr().expect("bound").port(),
    );
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    tokio::spawn(sink(control, None));
    tokio::spawn(sink(
        stream,
        Some((frames.clone(), bytes.clone(), bad.clone())),
    ));

    let start = StdInstant::now();
    let cams: Vec<_> = (1..=n)
        .map(|i| {
            let mut cfg = HubCameraConfig::new(
                "127.0.0.1",
                cport,
                sport,
                CameraId::new(&format!("cam-{i}")).expect("valid id"),
                "",
            );
            cfg.settings = Settings::default();
            cfg.fps = 30;
            HubCamera::spawn(cfg)
        })
        .collect();
    for c in &cams {
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            c.wait_for(|s| s.stream == LinkStatus::Ready),
        )
        .await;
    }
    let online = cams
        .iter()
        .filter(|c| c.status().stream == LinkStatus::Ready)
        .count();
    println!(
        "cameras: {online}/{n} streaming after {:.1} s; measuring {secs} s at VGA 30 fps",
        start.elapsed().as_secs_f64()
    );
    // Let start-up effects (first frames, pacing) settle: the figure is the steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (f0, b0, cpu0, t0) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        cpu_time(),
        StdInstant::now(),
    );
    let drops0: u64 = cams.iter().map(|c| c.status().frames_dropped).sum();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (f1, b1, cpu1, el) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        cpu_time(),
        t0.elapsed(),
    );
    let drops1: u64 = cams.iter().map(|c| c.status().frames_dropped).sum();
    let fps = (f1 - f0) as f64 / el.as_secs_f64();
    let target = n as f64 * 30.0;
    println!(
        "cameras: {n} × VGA 30 fps: delivered {fps:.0} fps of {target:.0} target ({:.1}%), {:.1} MB/s, {} dropped by pacing, {} invalid frames",
        100.0 * fps / target,
        (b1 - b0) as f64 / el.as_secs_f64() / 1e6,
        drops1 - drops0,
        bad.load(Ordering::Relaxed)
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu = (b - a).as_secs_f64() / el.as_secs_f64();
        println!(
            "cameras: process CPU {:.0}% of one core (cameras + sink hub + loopback), {:.1} µs CPU per delivered frame, ≈{:.0} VGA 30 fps cameras per fully used core",
            cpu * 100.0,
            1e6 * cpu / fps.max(1.0),
            fps / 30.0 / cpu.max(1e-9)
        );
    }
    for c in cams {
        c.kill();
    }
}

/// A minimal hub: welcomes every hello; on the stream port decodes and counts every frame.
async fn sink(
    listener: TcpListener,
    counters: Option<(Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>)>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Text(t) if t.contains("\"hello\"") => {
                        let _ = ws
                            .send(Message::text(r#"{"type":"welcome","camera":"x"}"#))
                            .await;
                    }
                    Message::Binary(b) => {
                        if let Some((frames, bytes, bad)) = &counters {
                            match decode_frame(&b, &FrameLimits::default()) {
                                Ok(_) => {
                                    frames.fetch_add(1, Ordering::Relaxed);
                                    bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                                }
                                Err(_) => {
                                    bad.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
    }
}

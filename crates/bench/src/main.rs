//! `espcam-bench`: the hub relay benchmark.
//!
//! Starts the real hub (`espcam serve`, the binary given by `--hub-exe`) as a child process
//! on loopback, then from this process connects C virtual cameras pushing S-byte frames at
//! F fps and V viewers on `/ws/view/{camera}?meta=1`, and measures for D seconds after a
//! warm-up: delivered frames/s, relay latency (camera send → viewer holds the whole
//! message; both ends are in this process, so one clock), the relay's CPU time per delivered
//! frame and its resident memory (from `/proc`), and frames viewers skipped. The `stalled`
//! scenario makes a fraction of the viewers stop reading and watches the others' latency and
//! the hub's memory over time.
//!
//! The machine it runs on is shared and noisy, so absolute figures drift: `--baseline` runs
//! the same load against a minimal relay (`baseline.rs`) and `--compare-exe` against a second
//! hub binary, scenario by scenario in the same run, and prints hub ÷ other for latency and
//! CPU per delivered frame. Results go to `docs/BENCHMARKS.md` by hand.
//!
//! This is a benchmark, never a test: nothing here asserts a speed. Every run is bounded in
//! time (warm-up + duration + set-up timeouts) and cleans up its child processes and files.

mod baseline;
mod frame;
mod load;
mod procfs;
mod relay;
mod viewer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use espcam_proto::CameraId;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use self::frame::Template;
use self::load::{CameraCounters, Phase};
use self::relay::{Kind, RelayProcess};
use self::viewer::{Clients, ViewerSpec};

/// espcam-bench: measure the hub's relay (start it, push frames, fan out to viewers, print
/// figures), optionally next to a baseline relay or another hub binary in the same run.
#[derive(Debug, Parser)]
#[command(name = "espcam-bench", version, about, long_about = None)]
struct BenchArgs {
    /// The hub binary to measure [default: `espcam` next to this executable, i.e.
    /// `target/release/espcam` after `cargo build --release -p espcam`].
    #[arg(long, value_name = "PATH")]
    hub_exe: Option<PathBuf>,
    /// Also run every scenario against a minimal tokio-tungstenite relay (same ingest
    /// protocol subset, latest-frame fan-out) and print hub ÷ baseline.
    #[arg(long)]
    baseline: bool,
    /// Also run every scenario against this second hub binary (e.g. a build of an older
    /// commit) and print hub ÷ compare.
    #[arg(long, value_name = "PATH")]
    compare_exe: Option<PathBuf>,
    /// Measure the hub recording every camera continuously (`[recording] mode =
    /// "continuous"`, real fsyncs into its throw-away data directory) against the same hub
    /// with recording off (target `rec-off`), and print on ÷ off.
    #[arg(long)]
    recording: bool,
    /// Run every scenario this many times (targets back to back each time), so ratios and
    /// differences come with their spread; `--recording` then also prints the median of the
    /// on − off figures.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Internal: serve the baseline relay on these ports (how `--baseline` starts it).
    #[arg(long, hide = true, num_args = 2, value_names = ["PORT", "STREAM_PORT"])]
    serve_baseline: Option<Vec<u16>>,
    /// Scenario: `custom` uses the flags below; the named ones fix cameras, viewers, fps and
    /// stalled fraction (frame size and duration still apply); `all` runs every named one.
    #[arg(long, value_enum, default_value_t = Scenario::Custom)]
    scenario: Scenario,
    /// Cameras pushing frames.
    #[arg(long, default_value_t = 1)]
    cameras: u32,
    /// Viewers, spread evenly over the cameras.
    #[arg(long, default_value_t = 10)]
    viewers: u32,
    /// Frames per second per camera; 0 sends as fast as the hub accepts (a flood).
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// JPEG size in bytes (each stream message adds the 28-byte header).
    #[arg(long, default_value_t = 10_240)]
    frame_size: usize,
    /// Measured seconds per scenario [default: 10; 30 for `stalled`, long enough for the
    /// hub's socket buffers to fill and its viewer timeout to act].
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Fraction of viewers (0..=1) that stop reading when measuring starts.
    #[arg(long, default_value_t = 0.0)]
    stalled_fraction: f64,
    /// Connect viewers without `?meta=1` (bare JPEG messages only).
    #[arg(long)]
    no_meta: bool,
    /// Worker threads of the load generator's viewers and control sockets. One by default:
    /// on the 2-core machine one thread used 70 % of a core where two used 75–79 % for the
    /// same `saturate` load (fewer cross-thread wake-ups), with the same `v500` latency.
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The standard scenarios (see `docs/BENCHMARKS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Only the flags.
    Custom,
    /// 1 camera × 10 viewers at 30 fps.
    V10,
    /// 1 camera × 100 viewers at 30 fps.
    V100,
    /// 1 camera × 500 viewers at 30 fps.
    V500,
    /// 1 camera × 10 viewers, the camera sending as fast as the hub accepts (saturation).
    Saturate,
    /// 1 camera × 100 viewers at 30 fps, half of them stalled.
    Stalled,
    /// Every named scenario, one fresh hub each.
    All,
}

/// One scenario's parameters, validated.
#[derive(Debug, Clone, Serialize)]
struct Spec {
    name: String,
    cameras: u32,
    viewers: u32,
    stalled: u32,
    fps: f64,
    frame_size: usize,
    duration_s: f64,
    warmup_s: f64,
    meta: bool,
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Default, Serialize)]
struct Latency {
    samples: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    mean_us: f64,
}

/// One scenario's figures against one target.
#[derive(Debug, Clone, Serialize)]
struct Report {
    /// `hub`, `compare` or `baseline`.
    target: &'static str,
    spec: Spec,
    /// Seconds actually measured.
    measured_s: f64,
    frames_sent: u64,
    sent_per_s: f64,
    /// Frames received by the viewers that kept reading.
    frames_delivered: u64,
    delivered_per_s: f64,
    latency: Latency,
    /// Frames the reading viewers never got (the hub skipped them to send a newer one).
    frames_skipped: u64,
    /// Relay CPU time (user + system) per delivered frame, µs (10 ms tick resolution overall).
    server_cpu_us_per_frame: f64,
    /// Hub CPU use during the window, % of one core.
    server_cpu_percent: f64,
    rss_idle_kib: u64,
    /// Highest RSS sampled during the measured window.
    rss_loaded_kib: u64,
    rss_peak_kib: u64,
    /// (loaded − idle) / viewers.
    bytes_per_viewer: u64,
    /// RSS once per second through the window, KiB.
    rss_series_kib: Vec<u64>,
    /// Viewers the hub still counted at the end (stalled ones it dropped are gone).
    hub_viewers_at_end: Option<u64>,
    /// Viewer connections that ended early, with the first reason.
    viewer_errors: u64,
    first_error: Option<String>,
    /// The load generator's own CPU use during the window, % of one core: it shares the
    /// machine with the hub, so a busy generator also inflates the latency it measures.
    load_cpu_percent: f64,
    /// 1-minute load average of the machine before the scenario started.
    loadavg_before: Option<f64>,
    /// Viewers the hub counted, once per second (stalled scenarios only).
    hub_viewers_series: Vec<u64>,
    /// The relay's CPU time in the window, the recording writer threads (`rec-writer-N`)
    /// apart from the rest.
    threads: procfs::ThreadSplit,
    /// What the recorder did in the window, from the hub's `/metrics` (`None`: no metrics).
    recorder: Option<RecorderFigures>,
}

/// The hub's recording writer threads are named `rec-writer-0` … `rec-writer-3`.
const WRITER_PREFIX: &str = "rec-writer-";

/// The recorder's counters from the hub's `/metrics` (totals over cameras).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct RecorderFigures {
    frames: u64,
    missed: u64,
    fsyncs: u64,
    write_syscalls: u64,
}

impl RecorderFigures {
    fn since(&self, earlier: &RecorderFigures) -> RecorderFigures {
        RecorderFigures {
            frames: self.frames.saturating_sub(earlier.frames),
            missed: self.missed.saturating_sub(earlier.missed),
            fsyncs: self.fsyncs.saturating_sub(earlier.fsyncs),
            write_syscalls: self.write_syscalls.saturating_sub(earlier.write_syscalls),
        }
    }
}

/// One relay the scenarios run against.
#[derive(Debug, Clone)]
struct Target {
    /// `hub`, `compare` or `baseline`.
    name: &'static str,
    kind: Kind,
}

fn main() -> std::process::ExitCode {
    let args = BenchArgs::parse();
    let result = match &args.serve_baseline {
        Some(ports) => baseline::serve(ports),
        None => run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let specs = specs(args)?;
    if !(1..=20).contains(&args.repeat) {
        bail!("repeat {} out of range 1..=20", args.repeat);
    }
    // Repeated scenarios are named `name#1`, `name#2`, …: reports pair up by name.
    let specs: Vec<Spec> = specs
        .into_iter()
        .flat_map(|s| {
            (1..=args.repeat).map(move |i| {
                let mut s = s.clone();
                if args.repeat > 1 {
                    s.name = format!("{}#{i}", s.name);
                }
                s
            })
        })
        .collect();
    let hub = match &args.hub_exe {
        Some(p) => relay::check_exe(p)?,
        None => relay::default_hub_exe()?,
    };
    let mut targets = vec![Target {
        name: "hub",
        kind: if args.recording {
            Kind::HubRecording(hub.clone())
        } else {
            Kind::Hub(hub.clone())
        },
    }];
    if args.recording {
        targets.push(Target {
            name: "rec-off",
            kind: Kind::Hub(hub),
        });
    }
    if let Some(p) = &args.compare_exe {
        targets.push(Target {
            name: "compare",
            kind: Kind::Hub(relay::check_exe(p)?),
        });
    }
    if args.baseline {
        let me = std::env::current_exe().context("finding this benchmark's executable")?;
        targets.push(Target {
            name: "baseline",
            kind: Kind::Baseline(me),
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.load_threads.max(1))
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    let mut reports = Vec::new();
    for spec in specs {
        // Targets run back to back per scenario, so each ratio compares runs minutes apart
        // at most, under the same background load.
        for target in &targets {
            eprintln!(
                "bench {} [{}]: {} camera(s) × {} viewer(s){} at {} fps, {} B frames, {} s ...",
                spec.name,
                target.name,
                spec.cameras,
                spec.viewers,
                if spec.stalled > 0 {
                    format!(" ({} stalled)", spec.stalled)
                } else {
                    String::new()
                },
                fps_label(spec.fps),
                spec.frame_size,
                spec.duration_s
            );
            let report = rt
                .block_on(run_scenario(target, &spec))
                .with_context(|| format!("scenario {} against the {}", spec.name, target.name))?;
            reports.push(report);
        }
    }
    for target in &targets {
        let mine: Vec<Report> = reports
            .iter()
            .filter(|r| r.target == target.name)
            .cloned()
            .collect();
        if targets.len() > 1 {
            println!("\n{} ({}):\n", target.name, target.kind);
        }
        print!("{}", table(&mine));
    }
    for other in targets.iter().skip(1) {
        print!("{}", ratio_table(&reports, other.name));
    }
    if args.recording {
        print!("{}", recording_table(&reports));
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string(&reports).context("encoding the results")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn specs(a: &BenchArgs) -> anyhow::Result<Vec<Spec>> {
    if let Some(d) = a.duration
        && !(d > 0.0 && d <= 600.0)
    {
        bail!("duration {d} out of range: expected 0 < seconds <= 600");
    }
    if !(0.0..=60.0).contains(&a.warmup) {
        bail!("warmup {} out of range 0..=60 seconds", a.warmup);
    }
    let max_frame = espcam_proto::stream::DEFAULT_MAX_FRAME - espcam_proto::HEADER_LEN;
    if a.frame_size > max_frame {
        bail!(
            "frame size {} exceeds the hub's limit of {max_frame} bytes",
            a.frame_size
        );
    }
    // Builds the frame once up front so a size that cannot hold the test JPEG is refused
    // before any hub is started.
    Template::new(a.frame_size)?;
    let make =
        |name: &str, cameras: u32, viewers: u32, fps: f64, stalled: f64| -> anyhow::Result<Spec> {
            if !(1..=64).contains(&cameras) {
                bail!("cameras {cameras} out of range 1..=64");
            }
            if viewers > 5000 {
                bail!("viewers {viewers} out of range 0..=5000");
            }
            if !(0.0..=100_000.0).contains(&fps) {
                bail!("fps {fps} out of range 0..=100000 (0: unlimited)");
            }
            if !(0.0..=1.0).contains(&stalled) {
                bail!("stalled fraction {stalled} out of range 0..=1");
            }
            Ok(Spec {
                name: name.to_string(),
                cameras,
                viewers,
                stalled: (f64::from(viewers) * stalled).round() as u32,
                fps,
                frame_size: a.frame_size,
                duration_s: a
                    .duration
                    .unwrap_or(if stalled > 0.0 { 30.0 } else { 10.0 }),
                warmup_s: a.warmup,
                meta: !a.no_meta,
            })
        };
    let named = |s: Scenario| match s {
        Scenario::V10 => make("v10", 1, 10, 30.0, 0.0),
        Scenario::V100 => make("v100", 1, 100, 30.0, 0.0),
        Scenario::V500 => make("v500", 1, 500, 30.0, 0.0),
        // 0 fps = flood: the camera sends as fast as the hub reads, so the hub (not a pacing
        // rate) decides how many frames are delivered.
        Scenario::Saturate => make("saturate", 1, 10, 0.0, 0.0),
        Scenario::Stalled => make("stalled", 1, 100, 30.0, 0.5),
        Scenario::Custom | Scenario::All => {
            make("custom", a.cameras, a.viewers, a.fps, a.stalled_fraction)
        }
    };
    match a.scenario {
        Scenario::All => [
            Scenario::V10,
            Scenario::V100,
            Scenario::V500,
            Scenario::Saturate,
            Scenario::Stalled,
        ]
        .into_iter()
        .map(named)
        .collect(),
        s => Ok(vec![named(s)?]),
    }
}

async fn run_scenario(target: &Target, spec: &Spec) -> anyhow::Result<Report> {
    let mut hub = start_relay(&target.kind).await?;
    let pid = hub.pid();
    // Let start-up allocations settle before the idle reading.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = procfs::memory(pid)?;
    let loadavg_before = procfs::loadavg();

    // Sent to every task: viewers record only while `Measure`; everyone stops at `Done`.
    let (phase_tx, phase_rx) = watch::channel(Phase::Warmup);
    let template = Template::new(spec.frame_size)?;
    let counters = Arc::new(CameraCounters::default());
    let mut controls = JoinSet::new();
    let mut senders = Vec::new();
    let mut ids = Vec::new();
    for i in 0..spec.cameras {
        let id = CameraId::new(&format!("bench-{i}")).context("camera id")?;
        let control = load::connect_camera(hub.port, &id)
            .await
            .with_context(|| format!("connecting camera {id}"))?;
        controls.spawn(load::control_loop(control, phase_rx.clone()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        senders.push(
            load::spawn_sender(
                hub.stream_port,
                id.clone(),
                template.clone(),
                spec.fps,
                phase_rx.clone(),
                counters.clone(),
                ready_tx,
            )
            .context("starting a camera thread")?,
        );
        ready_rx
            .await
            .context("camera thread ended")?
            .with_context(|| format!("connecting camera {id}'s stream"))?;
        ids.push(id);
    }
    // Viewers can only open `/ws/view/{camera}` once the hub knows the camera, which the
    // welcomes above guarantee.
    let viewers = connect_viewers(&hub, spec, &ids, &phase_rx).await?;

    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let recorder0 = recorder_figures(&hub).await;
    let split0 = procfs::thread_split(pid, WRITER_PREFIX)?;
    let cpu0 = procfs::cpu_time_us(pid)?;
    let own = std::process::id();
    let load_cpu0 = procfs::cpu_time_us(own)?;
    let mut viewer_series = Vec::new();
    let t0 = Instant::now();
    phase_tx.send_replace(Phase::Measure);

    let mut series = Vec::new();
    let mut loaded = 0u64;
    let window = Duration::from_secs_f64(spec.duration_s);
    let mut next_series = Duration::ZERO;
    while t0.elapsed() < window {
        let m = procfs::memory(pid)?;
        loaded = loaded.max(m.rss_kib);
        if t0.elapsed() >= next_series {
            series.push(m.rss_kib);
            if spec.stalled > 0 {
                viewer_series.extend(hub_viewer_count(&hub).await);
            }
            next_series += Duration::from_secs(1);
        }
        if !hub.running() {
            bail!("the {} exited under load:\n{}", target.name, hub.log_tail());
        }
        let left = window.saturating_sub(t0.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
    let cpu1 = procfs::cpu_time_us(pid)?;
    let split1 = procfs::thread_split(pid, WRITER_PREFIX)?;
    let recorder1 = recorder_figures(&hub).await;
    let hub_viewers = hub_viewer_count(&hub).await;
    let recorder = recorder0.zip(recorder1).map(|(a, b)| b.since(&a));
    if matches!(hub.kind(), Kind::HubRecording(_)) {
        match &recorder {
            Some(r) => eprintln!(
                "  recorder (measured window): {} frames recorded, {} missed, {} fsyncs, {} write syscalls",
                r.frames, r.missed, r.fsyncs, r.write_syscalls
            ),
            None => eprintln!("  recorder: no /metrics"),
        }
    }
    let load_cpu1 = procfs::cpu_time_us(own)?;
    let measured = t0.elapsed().as_secs_f64();
    let peak = procfs::memory(pid)?.peak_kib;
    phase_tx.send_replace(Phase::Done);

    let mut latency = load::histogram();
    let (mut delivered, mut skipped, mut errors, mut first_error) = (0u64, 0u64, 0u64, None);
    for outcome in viewers.join_all().await {
        let r = outcome.result;
        if let Some(e) = r.error {
            errors += 1;
            first_error.get_or_insert(e);
        }
        if outcome.stalled {
            continue;
        }
        latency
            .add(&r.latency)
            .context("merging latency histograms")?;
        delivered += r.frames;
        skipped += r.skipped;
    }
    // Senders see `Done` within 50 ms; a join that does not return in time is reported.
    let joined = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            senders.into_iter().map(|h| h.join()).collect::<Vec<_>>()
        }),
    )
    .await
    .context("camera threads did not stop within 10 s")?
    .context("joining camera threads")?;
    for r in joined {
        match r {
            Ok(result) => result.context("camera stream")?,
            Err(_) => bail!("a camera thread panicked"),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), controls.join_all()).await;
    let sent = counters.sent.load(Ordering::Relaxed);
    let cpu_us = cpu1.saturating_sub(cpu0) as f64;
    Ok(Report {
        target: target.name,
        spec: spec.clone(),
        measured_s: measured,
        frames_sent: sent,
        sent_per_s: sent as f64 / measured,
        frames_delivered: delivered,
        delivered_per_s: delivered as f64 / measured,
        latency: Latency {
            samples: latency.len(),
            p50_us: latency.value_at_quantile(0.5),
            p99_us: latency.value_at_quantile(0.99),
            p999_us: latency.value_at_quantile(0.999),
            max_us: latency.max(),
            mean_us: latency.mean(),
        },
        frames_skipped: skipped,
        server_cpu_us_per_frame: if delivered > 0 {
            cpu_us / delivered as f64
        } else {
            0.0
        },
        server_cpu_percent: cpu_us / (measured * 1e6) * 100.0,
        rss_idle_kib: idle.rss_kib,
        rss_loaded_kib: loaded,
        rss_peak_kib: peak,
        bytes_per_viewer: if spec.viewers > 0 {
            loaded.saturating_sub(idle.rss_kib) * 1024 / u64::from(spec.viewers)
        } else {
            0
        },
        rss_series_kib: series,
        hub_viewers_at_end: hub_viewers,
        viewer_errors: errors,
        first_error,
        load_cpu_percent: load_cpu1.saturating_sub(load_cpu0) as f64 / (measured * 1e6) * 100.0,
        loadavg_before,
        hub_viewers_series: viewer_series,
        threads: split1.since(&split0),
        recorder,
    })
}

/// Starts the relay. The free ports are picked by binding port 0 and released just before
/// the relay binds them; if another program takes one in between, the relay exits at start
/// and is retried on new ports.
async fn start_relay(kind: &Kind) -> anyhow::Result<RelayProcess> {
    let mut last = None;
    for _ in 0..3 {
        let mut relay = RelayProcess::spawn(kind)?;
        match relay.wait_ready().await {
            Ok(()) => return Ok(relay),
            Err(e) if !relay.running() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("the relay did not start")))
}

/// A finished viewer task. Stalled viewers' frames are not counted: they stopped reading.
struct ViewerOutcome {
    stalled: bool,
    result: viewer::ViewerResult,
}

/// Connects all viewers (a bounded number at a time, as a crowd of browsers would not all
/// arrive in one millisecond either) and starts their receive loops.
async fn connect_viewers(
    hub: &RelayProcess,
    spec: &Spec,
    ids: &[CameraId],
    phase: &watch::Receiver<Phase>,
) -> anyhow::Result<JoinSet<ViewerOutcome>> {
    // Bounds concurrent handshakes so the hub's accept backlog never overflows.
    let handshakes = Arc::new(Semaphore::new(64));
    let clients = Clients::new();
    let mut connecting = JoinSet::new();
    for v in 0..spec.viewers {
        let camera = &ids[v as usize % ids.len()];
        let vspec = ViewerSpec {
            port: hub.port,
            path: format!(
                "/ws/view/{camera}{}",
                if spec.meta { "?meta=1" } else { "" }
            ),
            // Every other viewer, so stalled ones are spread over cameras and time.
            stalled: stalled_index(v, spec.viewers, spec.stalled),
        };
        let handshakes = handshakes.clone();
        let clients = clients.clone();
        connecting.spawn(async move {
            let _permit = handshakes.acquire_owned().await;
            viewer::connect(&clients, &vspec)
                .await
                .map(|v| (v, vspec.stalled))
        });
    }
    let mut running = JoinSet::new();
    while let Some(joined) = connecting.join_next().await {
        let (v, stalled) = joined.context("viewer task")??;
        let phase = phase.clone();
        running.spawn(async move {
            ViewerOutcome {
                stalled,
                result: viewer::view_loop(v, phase).await,
            }
        });
    }
    Ok(running)
}

/// Whether viewer `v` of `n` is one of the `stalled` ones, spread evenly.
fn stalled_index(v: u32, n: u32, stalled: u32) -> bool {
    // Viewer v is stalled when the running count of stalled ones steps up at v.
    let before = u64::from(v) * u64::from(stalled) / u64::from(n.max(1));
    let after = (u64::from(v) + 1) * u64::from(stalled) / u64::from(n.max(1));
    after > before
}

/// Sum of `viewers` over the hub's cameras, from `GET /api/cameras` (`None` for the
/// baseline, which has no REST API).
async fn hub_viewer_count(hub: &RelayProcess) -> Option<u64> {
    if matches!(hub.kind(), Kind::Baseline(_)) {
        return None;
    }
    let (status, body) = hub.get("/api/cameras").await.ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.as_array()?
        .iter()
        .map(|c| c.get("viewers").and_then(serde_json::Value::as_u64))
        .sum()
}

/// The recorder's counters from the hub's `/metrics`; `None` for the baseline or when the
/// hub does not answer.
async fn recorder_figures(hub: &RelayProcess) -> Option<RecorderFigures> {
    if matches!(hub.kind(), Kind::Baseline(_)) {
        return None;
    }
    let Ok((200, text)) = hub.get("/metrics").await else {
        return None;
    };
    let total = |name: &str| -> u64 {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    Some(RecorderFigures {
        frames: total("espcam_record_frames_total"),
        missed: total("espcam_record_frames_missed_total"),
        fsyncs: total("espcam_record_fsyncs_total"),
        write_syscalls: total("espcam_record_write_syscalls_total"),
    })
}

/// What recording costs, recording on (`hub`) minus off (`rec-off`), scenario by scenario,
/// per recorded frame: (a) CPU added on the hub's threads other than the recording
/// writers, (b) the writers' user CPU, (c) the writers' system CPU (the `writev`s and
/// `fdatasync`s, beside their wake-ups); plus the write and sync system calls, frames
/// missed and the viewers' p99. Each side's CPU is taken per second of its own window
/// before subtracting.
fn recording_table(reports: &[Report]) -> String {
    let mut out = String::from(
        "\nrecording cost (on − off, per recorded frame; CPU at 10 ms tick resolution):\n\n\
         | scenario | cameras × viewers | frames recorded/s | missed | fsyncs per camera per s | write syscalls per frame | (a) other threads µs (user + sys) | (b) writers user µs | (c) writers sys µs | (a) + (b) µs | p99 on / off ms | p99 Δ ms | load on / off |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut rows: Vec<(String, [f64; 8])> = Vec::new();
    for on in reports.iter().filter(|r| r.target == "hub") {
        let Some(off) = reports
            .iter()
            .find(|r| r.target == "rec-off" && r.spec.name == on.spec.name)
        else {
            continue;
        };
        let Some(rec) = on.recorder else { continue };
        if rec.frames == 0 {
            continue;
        }
        let rate = rec.frames as f64 / on.measured_s;
        // µs per second added by recording, per recorded frame.
        let per = |a: u64, b: u64| (a as f64 / on.measured_s - b as f64 / off.measured_s) / rate;
        let (t, u) = (&on.threads, &off.threads);
        let ou = per(t.other_user_us, u.other_user_us);
        let os = per(t.other_system_us, u.other_system_us);
        let wu = per(t.named_user_us, u.named_user_us);
        let ws = per(t.named_system_us, u.named_system_us);
        let dp99 = (on.latency.p99_us as f64 - off.latency.p99_us as f64) / 1000.0;
        let load = |r: &Report| {
            r.loadavg_before
                .map_or_else(|| "?".into(), |l| format!("{l:.2}"))
        };
        out.push_str(&format!(
            "| {} | {} × {} | {:.0} | {} | {:.2} | {:.3} | {:.2} ({:.2} + {:.2}) | {:.2} | {:.2} | {:.2} | {} / {} | {:+.2} | {} / {} |\n",
            on.spec.name,
            on.spec.cameras,
            on.spec.viewers,
            rate,
            rec.missed,
            rec.fsyncs as f64 / f64::from(on.spec.cameras) / on.measured_s,
            rec.write_syscalls as f64 / rec.frames as f64,
            ou + os,
            ou,
            os,
            wu,
            ws,
            ou + os + wu,
            ms(on.latency.p99_us),
            ms(off.latency.p99_us),
            dp99,
            load(on),
            load(off),
        ));
        let base = on
            .spec
            .name
            .split('#')
            .next()
            .unwrap_or_default()
            .to_string();
        rows.push((base, [ou + os, ou, os, wu, ws, ou + os + wu, dp99, rate]));
    }
    // Medians over repeats, per scenario.
    let mut bases: Vec<&str> = rows.iter().map(|(b, _)| b.as_str()).collect();
    bases.dedup();
    for base in bases {
        let mine: Vec<&[f64; 8]> = rows
            .iter()
            .filter(|(b, _)| b == base)
            .map(|(_, v)| v)
            .collect();
        if mine.len() < 2 {
            continue;
        }
        let med = |i: usize| {
            let mut v: Vec<f64> = mine.iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        };
        out.push_str(&format!(
            "| **{base}: median of {}** | | {:.0} | | | | {:.2} ({:.2} + {:.2}) | {:.2} | {:.2} | **{:.2}** | | {:+.2} | |\n",
            mine.len(),
            med(7),
            med(0),
            med(1),
            med(2),
            med(3),
            med(4),
            med(5),
            med(6),
        ));
    }
    out
}

fn fps_label(fps: f64) -> String {
    if fps == 0.0 {
        "max".into()
    } else {
        format!("{fps}")
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The results as a Markdown table (pasted into `docs/BENCHMARKS.md` as is), then the
/// stalled scenarios' time series and the machine's load.
fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| scenario | cameras × viewers | fps | frame | sent/s | delivered/s | p50 ms | p99 ms | p99.9 ms | max ms | skipped | relay CPU µs/frame | relay CPU % | load gen CPU % | RSS idle MiB | RSS loaded MiB | KiB/viewer | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let s = &r.spec;
        let viewers = if s.stalled > 0 {
            format!("{} × {} ({} stalled)", s.cameras, s.viewers, s.stalled)
        } else {
            format!("{} × {}", s.cameras, s.viewers)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} B | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} |\n",
            s.name,
            viewers,
            fps_label(s.fps),
            s.frame_size,
            r.sent_per_s,
            r.delivered_per_s,
            ms(r.latency.p50_us),
            ms(r.latency.p99_us),
            ms(r.latency.p999_us),
            ms(r.latency.max_us),
            r.frames_skipped,
            r.server_cpu_us_per_frame,
            r.server_cpu_percent,
            r.load_cpu_percent,
            r.rss_idle_kib as f64 / 1024.0,
            r.rss_loaded_kib as f64 / 1024.0,
            r.bytes_per_viewer as f64 / 1024.0,
            r.viewer_errors,
        ));
    }
    let join = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(" ");
    for r in reports.iter().filter(|r| r.spec.stalled > 0) {
        out.push_str(&format!(
            "\n{}: hub RSS each second (MiB): {}\n{}: viewers the hub served each second: {}\n",
            r.spec.name,
            join(
                &mut r
                    .rss_series_kib
                    .iter()
                    .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            ),
            r.spec.name,
            join(&mut r.hub_viewers_series.iter().map(u64::to_string)),
        ));
    }
    let loads: Vec<String> = reports
        .iter()
        .map(|r| {
            let l = r
                .loadavg_before
                .map_or_else(|| "?".into(), |l| format!("{l:.2}"));
            format!("{} {l}", r.spec.name)
        })
        .collect();
    out.push_str(&format!(
        "\nload average (1 min) before each scenario: {}\n",
        loads.join(", ")
    ));
    if let Some(e) = reports.iter().find_map(|r| r.first_error.as_deref()) {
        out.push_str(&format!("first viewer error: {e}\n"));
    }
    out
}

/// hub ÷ `other` per scenario, as a Markdown table: below 1.0 the hub is faster (or
/// cheaper) than `other` in that run.
fn ratio_table(reports: &[Report], other: &str) -> String {
    let mut out = format!(
        "\nhub ÷ {other} (same run, scenario by scenario):\n\n\
         | scenario | p50 | p99 | CPU µs/frame | delivered/s | hub p99 ms | {other} p99 ms | hub CPU µs/frame | {other} CPU µs/frame |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "–".into()
        }
    };
    for h in reports.iter().filter(|r| r.target == "hub") {
        let Some(o) = reports
            .iter()
            .find(|r| r.target == other && r.spec.name == h.spec.name)
        else {
            continue;
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |\n",
            h.spec.name,
            ratio(h.latency.p50_us as f64, o.latency.p50_us as f64),
            ratio(h.latency.p99_us as f64, o.latency.p99_us as f64),
            ratio(h.server_cpu_us_per_frame, o.server_cpu_us_per_frame),
            ratio(h.delivered_per_s, o.delivered_per_s),
            ms(h.latency.p99_us),
            ms(o.latency.p99_us),
            h.server_cpu_us_per_frame,
            o.server_cpu_us_per_frame,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_viewers_are_spread_and_counted_exactly() {
        for (n, k) in [(100u32, 50u32), (10, 3), (7, 7), (5, 0), (1, 1)] {
            let picked: Vec<u32> = (0..n).filter(|&v| stalled_index(v, n, k)).collect();
            assert_eq!(picked.len() as u32, k, "{n} {k}");
        }
        let half: Vec<u32> = (0..6).filter(|&v| stalled_index(v, 6, 3)).collect();
        assert_eq!(half, vec![1, 3, 5]);
    }
}

//! The camera side of the benchmark: virtual cameras that push stamped frames at a fixed
//! rate as real WebSocket clients on loopback, plus the clock and phase every load task
//! shares. The viewers are in `viewer.rs`.
//!
//! Everything here is a client of the hub's public protocol (the same bytes a board or a
//! browser sends); it must never reach into the hub's memory or files, so the figures are
//! what a real deployment would see.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use espcam_proto::{
    CameraId, CameraMsg, Hello, HubMsg, PROTOCOL_VERSION, Settings, StreamHello, Telemetry,
};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::frame::Template;

/// Where a run is: viewers record only while `Measure`, so connection set-up and warm-up
/// do not count, and everything stops at `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting and warming up.
    Warmup,
    /// The measured window.
    Measure,
    /// Stop.
    Done,
}

/// Highest latency the histograms hold, µs; larger values are clamped (and would show as
/// this maximum in the report).
const MAX_LATENCY_US: u64 = 60_000_000;
/// How long one client connection (TCP + WebSocket handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Wall-clock µs since the Unix epoch: cameras stamp frames with it and viewers compare,
/// which is valid because both run in this one process.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A new latency histogram (µs, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .expect("constant bounds satisfy low >= 1 and high >= 2 * low")
}

/// Returns once the run is `Done` (or the orchestrator is gone). The `Ref` that
/// `wait_for` yields is dropped here: it is not `Send` and must not live across an await.
async fn until_done(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Done).await;
}

/// Counters the cameras share with the orchestrator.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames sent during the measured window.
    pub sent: AtomicU64,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects `camera`'s control socket and waits for the welcome (which registers the camera,
/// so viewers can open it).
pub async fn connect_camera(port: u16, camera: &CameraId) -> anyhow::Result<Ws> {
    let mut control = connect(&format!(
        "ws://127.0.0.1:{port}{}",
        espcam_proto::CONTROL_PATH
    ))
    .await
    .context("camera control socket")?;
    let hello = CameraMsg::Hello(Hello {
        proto: PROTOCOL_VERSION,
        camera: camera.clone(),
        token: String::new(),
        firmware: "espcam-bench".into(),
        sensor: "virtual".into(),
        settings: Settings::default(),
        board: None,
        ota_pending: false,
    });
    control.send(Message::Text(hello.to_json().into())).await?;
    expect_welcome(&mut control)
        .await
        .context("control hello")?;

    Ok(control)
}

async fn connect(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .with_context(|| format!("connecting to {url} timed out"))?
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

async fn expect_welcome(ws: &mut Ws) -> anyhow::Result<()> {
    loop {
        let msg = tokio::time::timeout(CONNECT_TIMEOUT, ws.next())
            .await
            .context("no answer to hello")?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                return match HubMsg::from_json(t.as_str()) {
                    Ok(HubMsg::Welcome { .. }) => Ok(()),
                    Ok(HubMsg::Rejected { reason }) => bail!("hub rejected the camera: {reason}"),
                    other => bail!("expected a welcome, got {other:?}"),
                };
            }
            Some(Ok(Message::Close(c))) => bail!("hub closed the connection: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("hub closed the connection"),
        }
    }
}

/// Keeps the control link alive: telemetry once a second (the hub drops silent cameras),
/// and reads whatever the hub sends so its writes never block.
pub async fn control_loop(mut control: Ws, mut phase: watch::Receiver<Phase>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let started = now_us();
    loop {
        tokio::select! {
            () = until_done(&mut phase) => return,
            _ = tick.tick() => {
                let t = CameraMsg::Telemetry(Telemetry {
                    fps: 0.0,
                    frames_sent: 0,
                    frames_dropped: 0,
                    heap_free: 0,
                    psram_free: 0,
                    uptime_ms: (now_us() - started) / 1000,
                    rssi: None,
                    settings: Settings::default(),
                    quality_in_force: None,
                });
                if control.send(Message::Text(t.to_json().into())).await.is_err() {
                    return;
                }
            }
            msg = control.next() => if !matches!(msg, Some(Ok(_))) { return },
        }
    }
}

/// Starts a camera's frame sender on its own OS thread: connects the stream socket, sends
/// the stream hello, then sends stamped frames at `fps` (0: as fast as the hub takes them)
/// until `Done`. `ready` fires once the hub welcomed the stream.
///
/// A thread with a blocking socket, not a task: tokio's timer has millisecond resolution,
/// which would send high rates in bursts that the hub's latest-frame slot collapses into one
/// frame; `thread::sleep` paces to within tens of microseconds.
pub fn spawn_sender(
    stream_port: u16,
    camera: CameraId,
    mut template: Template,
    fps: f64,
    phase: watch::Receiver<Phase>,
    counters: Arc<CameraCounters>,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    std::thread::Builder::new()
        .name(format!("bench-{camera}"))
        .spawn(move || {
            let mut ws = match connect_stream_blocking(stream_port, &camera) {
                Ok(ws) => {
                    let _ = ready.send(Ok(()));
                    ws
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    let _ = ready.send(Err(e));
                    bail!("{msg}");
                }
            };
            let period = (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps));
            let mut next = Instant::now();
            let mut seq = 0u64;
            loop {
                if let Some(p) = period {
                    // Sleep in slices so `Done` is seen promptly even at low rates.
                    loop {
                        if *phase.borrow() == Phase::Done {
                            break;
                        }
                        let now = Instant::now();
                        if now >= next {
                            break;
                        }
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    }
                    let now = Instant::now();
                    // Fell more than two periods behind: skip ahead instead of bursting,
                    // as a camera sends its newest frame.
                    if now > next + 2 * p {
                        next = now;
                    }
                    next += p;
                }
                let now_phase = *phase.borrow();
                if now_phase == Phase::Done {
                    break;
                }
                seq += 1;
                let msg = Bytes::copy_from_slice(template.stamp(seq, now_us()));
                ws.send(Message::Binary(msg)).context("sending a frame")?;
                if now_phase == Phase::Measure {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = ws.close(None);
            let _ = ws.flush();
            Ok(())
        })
}

type BlockingWs = tokio_tungstenite::tungstenite::WebSocket<std::net::TcpStream>;

fn connect_stream_blocking(stream_port: u16, camera: &CameraId) -> anyhow::Result<BlockingWs> {
    let url = format!("ws://127.0.0.1:{stream_port}{}", espcam_proto::STREAM_PATH);
    let tcp = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], stream_port)),
        CONNECT_TIMEOUT,
    )
    .with_context(|| format!("connecting to {url}"))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    let (mut ws, _) = tokio_tungstenite::tungstenite::client(url.as_str(), tcp)
        .map_err(|e| anyhow::anyhow!("WebSocket handshake with {url}: {e}"))?;
    let hello = StreamHello {
        proto: PROTOCOL_VERSION,
        camera: camera.clone(),
        token: String::new(),
    };
    ws.send(Message::Text(hello.to_json().into()))?;
    loop {
        match ws.read().context("waiting for the stream welcome")? {
            Message::Text(t) => {
                return match HubMsg::from_json(t.as_str()) {
                    Ok(HubMsg::Welcome { .. }) => Ok(ws),
                    Ok(HubMsg::Rejected { reason }) => bail!("hub rejected the stream: {reason}"),
                    other => bail!("expected a welcome, got {other:?}"),
                };
            }
            Message::Close(c) => bail!("hub closed the stream: {c:?}"),
            _ => {}
        }
    }
}

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
    /// Address to listen on [default: 0.0.0.0, all interfaces].
    #[arg(long, value_name = "ADDR", env = "ESPCAM_BIND")]
    bind: Option<IpAddr>,
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
    #[arg(long = "pull", value_name = "ID=URL", env = "ESPCAM_PULL", value_delimiter = ',')]
    pull: Vec<String>,
    /// Start N virtual cameras in this process (demo-1 … demo-N), no hardware needed.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1", env = "ESPCAM_DEMO")]
    demo: Option<u16>,
}

/// Runs the hub until Ctrl-C / SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        bind: args.bind,
        port: args.port,
        stream_port: args.stream_port,
        data_dir: args.data_dir,
        ack_timeout_ms: args.ack_timeout_ms,
        pull: args.pull,
    };
    let config = Config::load(args.config.as_deref(), overrides)?;
    let demo = args.demo.unwrap_or(0);
    if demo > 64 {
        anyhow::bail!("--demo {demo} out of range 0..=64");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    rt.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        let (http, stream) = listeners.local_addrs()?;
        if demo > 0 {
            let hub_http = reachable(http);
            let hub_stream = reachable(stream);
            demo::spawn(&config, demo, hub_http, hub_stream);
        }
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

/// Virtual cameras for `--demo`.
// Interim: a minimal push camera until espcam-sim's `HubCamera` lands; then this module
// becomes a call into espcam-sim.
mod demo {
    use std::net::SocketAddr;
    use std::time::Duration;

    use espcam_hub::Config;
    use espcam_proto::stream::FrameFlags;
    use espcam_proto::{
        Ack, CameraId, CameraMsg, FrameHeader, Hello, HubMsg, Settings, StreamHello, Telemetry,
        encode_frame,
    };
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    /// Starts `n` cameras `demo-1`..`demo-n`, each reconnecting forever.
    pub fn spawn(config: &Config, n: u16, http: SocketAddr, stream: SocketAddr) {
        for i in 1..=n {
            let id = format!("demo-{i}");
            let token = config
                .cameras
                .iter()
                .find(|c| c.id.as_str() == id)
                .map(|c| c.token.clone())
                .unwrap_or_default();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = run_camera(&id, &token, http, stream).await {
                        tracing::debug!("demo camera {id}: {e}");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    }

    fn now_us() -> u64 {
        espcam_hub::clock::now_us()
    }

    fn picture(w: u16, h: u16, q: u8, t: u32, s: &Settings) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
        let shift = (t * 4) as usize;
        let b = (i32::from(s.brightness.get()) * 30) as i16;
        for y in 0..h {
            for x in 0..w {
                let xx = if s.hmirror { w - 1 - x } else { x };
                let yy = if s.vflip { h - 1 - y } else { y };
                let px = |v: usize| (v as i16 + b).clamp(0, 255) as u8;
                rgb.extend_from_slice(&[
                    px((usize::from(xx) + shift) % 256),
                    px(usize::from(yy) % 256),
                    px((usize::from(xx) ^ usize::from(yy)) % 256),
                ]);
            }
        }
        let mut out = Vec::new();
        let quality = 100u8.saturating_sub(q).max(5);
        let _ = jpeg_encoder::Encoder::new(&mut out, quality).encode(
            &rgb,
            w,
            h,
            jpeg_encoder::ColorType::Rgb,
        );
        out
    }

    async fn run_camera(
        id: &str,
        token: &str,
        http: SocketAddr,
        stream: SocketAddr,
    ) -> Result<(), String> {
        let camera = CameraId::new(id).map_err(|e| e.to_string())?;
        let mut settings = Settings::default();
        let (mut control, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws/camera"))
            .await
            .map_err(|e| e.to_string())?;
        let hello = CameraMsg::Hello(Hello {
            proto: 1,
            camera: camera.clone(),
            token: token.into(),
            firmware: "espcam demo".into(),
            sensor: "virtual".into(),
            settings,
        });
        control
            .send(Message::Text(hello.to_json().into()))
            .await
            .map_err(|e| e.to_string())?;
        let (mut frames, _) = tokio_tungstenite::connect_async(format!("ws://{stream}/ws/stream"))
            .await
            .map_err(|e| e.to_string())?;
        let sh = StreamHello {
            proto: 1,
            camera,
            token: token.into(),
        };
        frames
            .send(Message::Text(sh.to_json().into()))
            .await
            .map_err(|e| e.to_string())?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut tele = tokio::time::interval(Duration::from_secs(1));
        let mut seq = 0u32;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    seq = seq.wrapping_add(1);
                    let (w, h) = (settings.resolution.width(), settings.resolution.height());
                    let s = settings;
                    let j = tokio::task::spawn_blocking(move || picture(w, h, s.quality.get(), seq, &s))
                        .await
                        .map_err(|e| e.to_string())?;
                    let head = FrameHeader {
                        flags: FrameFlags(FrameFlags::SYNTHETIC),
                        sequence: seq,
                        timestamp_us: now_us(),
                        width: w,
                        height: h,
                        jpeg_len: j.len() as u32,
                    };
                    frames.send(Message::Binary(encode_frame(&head, &j).into())).await.map_err(|e| e.to_string())?;
                }
                _ = tele.tick() => {
                    let t = CameraMsg::Telemetry(Telemetry {
                        fps: 10.0, frames_sent: u64::from(seq), frames_dropped: 0, heap_free: 200_000,
                        psram_free: 0, uptime_ms: 0, rssi: None, settings,
                    });
                    control.send(Message::Text(t.to_json().into())).await.map_err(|e| e.to_string())?;
                }
                m = control.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(HubMsg::Command(c)) = HubMsg::from_json(t.as_str()) {
                            c.command.apply(&mut settings);
                            let ack = CameraMsg::Ack(Ack { id: c.id, cmd: Some(c.command.name().into()), ok: true, settings, error: None });
                            control.send(Message::Text(ack.to_json().into())).await.map_err(|e| e.to_string())?;
                        } else if let Ok(HubMsg::Rejected { reason }) = HubMsg::from_json(t.as_str()) {
                            return Err(reason);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return Err("control link closed".into()),
                },
                m = frames.next() => match m {
                    Some(Ok(_)) => {}
                    _ => return Err("stream link closed".into()),
                },
            }
        }
    }
}

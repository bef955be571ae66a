//! `espcam sim`: run virtual cameras (the `espcam-sim` crate) from the command line. Only
//! argument parsing and wiring; every behaviour is in `espcam-sim`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use espcam_proto::{CameraId, Quality, Resolution, Settings};
use espcam_sim::{
    ApCamera, ApCameraConfig, CameraHandle, Fault, HubCamera, HubCameraConfig, Scene,
};

/// How the virtual camera reaches viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimMode {
    /// Connect out to a hub (control + stream sockets), like the seed-000 firmware.
    Hub,
    /// Serve the seed-002 standalone protocol at ws://LISTEN/ws.
    Ap,
}

/// Run virtual cameras that produce real JPEG frames.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Hub mode: connect to this hub, HOST or HOST:PORT (PORT = control port, default 6971).
    #[arg(long, value_name = "HOST[:PORT]")]
    hub: Option<String>,
    /// Hub mode: the hub's stream port.
    #[arg(long, default_value_t = espcam_proto::STREAM_PORT)]
    stream_port: u16,
    /// `hub` (default when --hub is given) or `ap` (standalone, seed 002).
    #[arg(long, value_enum)]
    mode: Option<SimMode>,
    /// AP mode: address to serve ws://LISTEN/ws on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Camera id; with --count N the cameras are PREFIX-1 … PREFIX-N.
    #[arg(long, default_value = "cam-1")]
    id: String,
    /// Token sent to the hub.
    #[arg(long, env = "ESPCAM_TOKEN", default_value = "", hide_env_values = true)]
    token: String,
    /// Number of cameras (hub mode).
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Target frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u16,
    /// Resolution at boot: index 0..=12 or name (QVGA, VGA, …).
    #[arg(long, default_value = "VGA")]
    resolution: String,
    /// JPEG quality at boot, 0..=63 (lower = better).
    #[arg(long, default_value_t = 12)]
    quality: i64,
    /// What the cameras look at: `pattern` (moving test pattern, the default), `still`,
    /// `moving` (a dark square crossing a still picture every 4 s) or `lighting` (still,
    /// brightness stepping every 6 s). A schedule cycles through scenes:
    /// `still:20,moving:6` (seconds each, repeated).
    #[arg(long, default_value = "pattern", value_delimiter = ',', value_parser = parse_scene)]
    scene: Vec<(Scene, u64)>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let settings = Settings {
        resolution: Resolution::from_name(&args.resolution)?,
        quality: Quality::new(args.quality)?,
        ..Settings::default()
    };
    let mode = match (args.mode, &args.hub) {
        (Some(SimMode::Hub), None) => bail!("hub mode needs --hub HOST[:PORT]"),
        (Some(SimMode::Ap), Some(_)) => bail!("--hub cannot be used with --mode ap"),
        (Some(m), _) => m,
        (None, Some(_)) => SimMode::Hub,
        (None, None) => bail!(
            "give --hub HOST[:PORT] to connect to a hub, or --mode ap to serve ws://127.0.0.1:8080/ws"
        ),
    };
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if mode == SimMode::Ap && args.count != 1 {
        bail!("--count works in hub mode only; start one `espcam sim --mode ap` per address");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let cams = match mode {
            SimMode::Hub => spawn_hub(&args, settings)?,
            SimMode::Ap => {
                let cfg = ApCameraConfig {
                    id: CameraId::new(&args.id)?,
                    settings,
                    fps: args.fps,
                    scene: args.scene[0].0,
                    ..ApCameraConfig::default()
                };
                let cam = ApCamera::bind(args.listen, cfg)
                    .await
                    .with_context(|| format!("listening on {}", args.listen))?;
                println!(
                    "virtual camera {} serving {} (binary = JPEG; text: ping, get_stats, JSON commands)",
                    args.id,
                    cam.url().unwrap_or_default()
                );
                vec![cam]
            }
        };
        supervise(cams, args.duration, &args.scene).await
    })
}

fn spawn_hub(args: &SimArgs, settings: Settings) -> anyhow::Result<Vec<CameraHandle>> {
    let hub = args.hub.as_deref().unwrap_or_default();
    let (host, port) = split_host_port(hub)?;
    let ids: Vec<String> = if args.count == 1 {
        vec![args.id.clone()]
    } else {
        let prefix = args
            .id
            .rsplit_once('-')
            .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(args.id.as_str(), |(p, _)| p);
        (1..=args.count).map(|i| format!("{prefix}-{i}")).collect()
    };
    let mut cams = Vec::with_capacity(ids.len());
    for id in ids {
        let mut cfg = HubCameraConfig::new(
            &host,
            port,
            args.stream_port,
            CameraId::new(&id)?,
            args.token.clone(),
        );
        cfg.settings = settings;
        cfg.fps = args.fps;
        cfg.scene = args.scene[0].0;
        cams.push(HubCamera::spawn(cfg));
    }
    println!(
        "{} virtual camera(s) connecting to ws://{host}:{port}{} and ws://{host}:{}{}",
        cams.len(),
        espcam_proto::CONTROL_PATH,
        args.stream_port,
        espcam_proto::STREAM_PATH
    );
    Ok(cams)
}

/// `HOST`, `HOST:PORT`, `[v6]:PORT` → (host for a URL, control port).
fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let s = s.trim().trim_start_matches("ws://").trim_end_matches('/');
    if s.is_empty() {
        bail!("--hub needs a host, e.g. --hub 192.168.1.10 or --hub localhost:6971");
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && !host.is_empty()
        && !host.ends_with(':')
        && (host.starts_with('[') || !host.contains(':'))
    {
        let port = port
            .parse()
            .with_context(|| format!("--hub {s}: port {port:?} is not a number 1..=65535"))?;
        return Ok((host.to_string(), port));
    }
    Ok((s.to_string(), espcam_proto::CONTROL_PORT))
}

/// One `--scene` item: `NAME` or `NAME:SECONDS`.
fn parse_scene(item: &str) -> Result<(Scene, u64), String> {
    let (name, secs) = match item.split_once(':') {
        Some((n, s)) => (
            n,
            s.parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                format!("scene duration {s:?} is not a whole number of seconds above 0")
            })?,
        ),
        None => (item, 0),
    };
    let names: Vec<&str> = Scene::ALL.iter().map(|s| s.name()).collect();
    let scene = Scene::from_name(name).ok_or_else(|| {
        format!(
            "unknown scene {name:?}; expected one of {}",
            names.join(", ")
        )
    })?;
    Ok((scene, secs))
}

async fn supervise(
    cams: Vec<CameraHandle>,
    duration: Option<u64>,
    scenes: &[(Scene, u64)],
) -> anyhow::Result<()> {
    if scenes.len() > 1 && scenes.iter().any(|s| s.1 == 0) {
        bail!("a scene schedule needs a duration for every scene, e.g. still:20,moving:6");
    }
    // The schedule: the first scene is already in force; step through the rest, repeating.
    let mut next_scene = 0usize;
    let scene_timer = tokio::time::sleep(Duration::from_secs(scenes.first().map_or(0, |s| s.1)));
    tokio::pin!(scene_timer);
    let scheduled = scenes.len() > 1;
    let end = async {
        match duration {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(end);
    let mut report = tokio::time::interval(Duration::from_secs(5));
    report.tick().await;
    let mut last = 0u64;
    loop {
        tokio::select! {
            _ = &mut end => break,
            () = &mut scene_timer, if scheduled => {
                next_scene = (next_scene + 1) % scenes.len();
                let (scene, secs) = scenes[next_scene];
                for cam in &cams {
                    cam.inject(Fault::Scene(scene));
                }
                tracing::info!(scene = scene.name(), seconds = secs, "scene");
                scene_timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(secs));
            }
            _ = report.tick() => {
                let statuses: Vec<_> = cams.iter().map(CameraHandle::status).collect();
                let frames: u64 = statuses.iter().map(|s| s.frames_sent).sum();
                let online = statuses
                    .iter()
                    .filter(|s| s.stream == espcam_sim::LinkStatus::Ready || s.clients > 0)
                    .count();
                tracing::info!(
                    cameras = cams.len(),
                    streaming = online,
                    fps = (frames.saturating_sub(last)) as f64 / 5.0,
                    "virtual cameras"
                );
                last = frames;
            }
        }
    }
    for cam in cams {
        cam.stop().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn scene_items() {
        use espcam_sim::Scene;
        assert_eq!(super::parse_scene("moving:6"), Ok((Scene::Moving, 6)));
        assert_eq!(super::parse_scene("still"), Ok((Scene::Still, 0)));
        assert!(
            super::parse_scene("still:0")
                .unwrap_err()
                .contains("above 0")
        );
        assert!(super::parse_scene("dance").unwrap_err().contains("still"));
    }

    #[test]
    fn hub_addresses() {
        assert_eq!(
            split_host_port("10.0.0.2").unwrap(),
            ("10.0.0.2".into(), 6971)
        );
        assert_eq!(
            split_host_port("localhost:7000").unwrap(),
            ("localhost".into(), 7000)
        );
        assert_eq!(
            split_host_port("[::1]:7000").unwrap(),
            ("[::1]".into(), 7000)
        );
        assert!(split_host_port("host:http").is_err());
        assert!(split_host_port("").is_err());
    }
}

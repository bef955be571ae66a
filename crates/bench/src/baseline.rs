//! The baseline relay of `--baseline`: the smallest honest relay of the same protocol
//! subset the benchmark drives, so hub ÷ baseline says what the hub's features (checks,
//! metrics, viewer timeouts, the dashboard's plumbing) cost over "tokio-tungstenite and a
//! latest-frame slot", measured in the same run on the same noisy machine.
//!
//! It speaks: `/ws/camera` (hello → welcome, then reads and drops telemetry), `/ws/stream`
//! (stream hello → welcome, then each binary message is checked with
//! `espcam_proto::decode_frame` like the hub does and replaces the camera's newest frame),
//! `/ws/view/{camera}[?meta=1]` (the newest frame, preceded by the same metadata text as
//! the hub's). A viewer skips to the newest frame (a `watch` of shared `Bytes`), as in the
//! hub. It has no REST API, no viewer timeout and no limits: it must never be used for
//! anything but this benchmark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use bytes::Bytes;
use espcam_proto::{CameraMsg, FrameLimits, HubMsg, StreamHello, decode_frame};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// A relayed frame: the viewer's metadata text and the bare JPEG, shared by every viewer.
type Relayed = Option<Arc<(Utf8Bytes, Bytes)>>;
/// Each camera's newest frame, by camera id.
type Cameras = Arc<Mutex<HashMap<String, watch::Sender<Relayed>>>>;

/// Serves the baseline relay on `127.0.0.1:{port}` and `:{stream_port}` until killed.
pub fn serve(ports: &[u16]) -> anyhow::Result<()> {
    let &[port, stream_port] = ports else {
        bail!("--serve-baseline takes two ports, got {}", ports.len());
    };
    let rt = tokio::runtime::Runtime::new().context("starting the baseline's runtime")?;
    rt.block_on(async move {
        let http = TcpListener::bind(("127.0.0.1", port)).await?;
        let stream = TcpListener::bind(("127.0.0.1", stream_port)).await?;
        let cameras = Cameras::default();
        tokio::spawn(accept(http, cameras.clone()));
        accept(stream, cameras).await
    })
}

async fn accept(listener: TcpListener, cameras: Cameras) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let cameras = cameras.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(tcp, cameras).await {
                eprintln!("baseline connection: {e:#}");
            }
        });
    }
}

fn slot(cameras: &Cameras, id: &str) -> watch::Sender<Relayed> {
    let mut map = cameras.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(id.to_string())
        .or_insert_with(|| watch::channel(None).0)
        .clone()
}

// The callback's error type is tungstenite's (an HTTP response); it is never built here.
#[allow(clippy::result_large_err)]
async fn connection(tcp: TcpStream, cameras: Cameras) -> anyhow::Result<()> {
    let mut path = String::new();
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, res: Response| {
        path = req.uri().to_string();
        Ok(res)
    })
    .await?;
    if let Some(rest) = path.strip_prefix("/ws/view/") {
        let (camera, query) = rest.split_once('?').unwrap_or((rest, ""));
        let meta = query.split('&').any(|kv| kv == "meta=1");
        return view(ws, slot(&cameras, camera).subscribe(), meta).await;
    }
    let Some(Ok(Message::Text(hello))) = ws.next().await else {
        bail!("no hello on {path:?}");
    };
    let camera = if path == espcam_proto::STREAM_PATH {
        StreamHello::from_json(&hello)?.camera
    } else {
        match CameraMsg::from_json(&hello)? {
            CameraMsg::Hello(h) => h.camera,
            other => bail!("expected a hello, got {other:?}"),
        }
    };
    let welcome = HubMsg::Welcome {
        camera: camera.clone(),
    };
    ws.send(Message::Text(welcome.to_json().into())).await?;
    let slot = slot(&cameras, camera.as_str());
    while let Some(msg) = ws.next().await {
        let Message::Binary(msg) = msg? else { continue };
        let f = decode_frame(&msg, &FrameLimits::default())?;
        let meta = serde_json::json!({
            "type": "frame",
            "seq": f.header.map(|h| h.sequence),
            "captured_us": f.header.map(|h| h.timestamp_us),
            "received_us": crate::load::now_us(),
            "width": f.width,
            "height": f.height,
            "bytes": f.jpeg.len(),
        });
        let jpeg = msg.slice_ref(f.jpeg);
        slot.send_replace(Some(Arc::new((meta.to_string().into(), jpeg))));
    }
    Ok(())
}

async fn view(
    mut ws: WebSocketStream<TcpStream>,
    mut rx: watch::Receiver<Relayed>,
    meta: bool,
) -> anyhow::Result<()> {
    rx.mark_changed();
    loop {
        tokio::select! {
            changed = rx.changed() => {
                changed?;
                let Some(frame) = rx.borrow_and_update().clone() else { continue };
                if meta {
                    ws.feed(Message::Text(frame.0.clone())).await?;
                }
                ws.send(Message::Binary(frame.1.clone())).await?;
            }
            msg = ws.next() => if !matches!(msg, Some(Ok(_))) { return Ok(()) },
        }
    }
}

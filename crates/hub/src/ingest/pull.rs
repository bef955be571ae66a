//! Pull mode: the hub as a client of a standalone (seed-002) camera at `ws://<camera>/ws`,
//! so such a camera appears in the hub like any other.
//!
//! One task per target: connect, treat the socket as both control link (JSON commands out,
//! acks in) and stream (bare JPEGs in, checked like any frame), and reconnect with
//! exponential backoff when it drops. The camera is online while this socket is up. This
//! module must never hammer an unreachable camera: every failed attempt waits at least the
//! current backoff.

use std::sync::Arc;
use std::time::Duration;

use espcam_camera::{Backoff, BackoffConfig};
use espcam_proto::ApMessage;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};

use super::link::{self, CAMERA_WRITE_TIMEOUT, CameraSocket, Flow, Inbound};
use crate::config::PullTarget;
use crate::state::camera::{Camera, Ingest};
use crate::state::{Hub, LinkInfo};
use crate::text::for_log;

/// A session that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a pulled camera is called until it says more: seed-002 cameras send no hello.
pub(crate) const PULLED_SENSOR: &str = "standalone camera (seed 002)";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl CameraSocket for Ws {
    async fn recv(&mut self) -> Option<Result<Inbound, String>> {
        loop {
            return match self.next().await? {
                Err(e) => Some(Err(e.to_string())),
                Ok(Message::Text(t)) => Some(Ok(Inbound::Text(t.as_str().to_string()))),
                Ok(Message::Binary(b)) => Some(Ok(Inbound::Binary(b))),
                Ok(Message::Close(_)) => Some(Ok(Inbound::Closed)),
                Ok(_) => continue,
            };
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.send(Message::Text(text.into()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: code.into(),
            reason: espcam_proto::close::close_reason(reason).into(),
        };
        let _ = tokio::time::timeout(
            CAMERA_WRITE_TIMEOUT,
            WebSocketStream::close(self, Some(frame)),
        )
        .await;
    }
}

/// Runs the pull client for `target` until the hub stops.
pub(crate) async fn run(hub: Hub, target: PullTarget) {
    let Some(cam) = hub.camera(target.id.as_str()) else {
        warn!("pull target {} is not registered; not pulling", target.id);
        return;
    };
    let mut stop = hub.shutdown_signal();
    // The same backoff as the camera core's (0.5 s doubling to 30 s), with a session of
    // STABLE resetting it; equal jitter so that pulled cameras are not all retried at once.
    let mut backoff = Backoff::new(BackoffConfig {
        stable: STABLE,
        ..BackoffConfig::default()
    });
    let epoch = Instant::now();
    let ms = || epoch.elapsed().as_millis() as u64;
    loop {
        let mut on_connect = || backoff.connected(ms());
        let outcome = tokio::select! {
            r = session(&hub, &cam, &target, &mut on_connect) => r,
            _ = stop.changed() => return,
        };
        match outcome {
            Ok(reason) => info!("pulled camera {} disconnected: {reason}", cam.id),
            Err(e) => debug!("pulled camera {} at {}: {e}", cam.id, target.url),
        }
        if *stop.borrow() {
            return;
        }
        let delay = backoff.failed(ms(), fastrand::u64(..));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One connection. `Err` when it never came up, `Ok(reason)` when it came up and ended.
async fn session(
    hub: &Hub,
    cam: &Arc<Camera>,
    target: &PullTarget,
    connected: &mut impl FnMut(),
) -> Result<String, String> {
    let limits = hub.config().limits;
    let hard_cap = limits.max_frame.saturating_mul(2);
    let config = WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap));
    let (mut ws, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(target.url.as_str(), Some(config), false),
    )
    .await
    .map_err(|_| format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| format!("connect failed: {e}"))?;
    connected();
    let mut att = hub.attach_control(
        cam.clone(),
        LinkInfo {
            sensor: Some(PULLED_SENSOR.into()),
            firmware: None,
            settings: None,
            ..LinkInfo::default()
        },
    );
    info!("pulled camera {} connected at {}", cam.id, target.url);
    let link = link::Link {
        socket: &mut ws,
        hub,
        kicked: &mut att.kicked,
        commands: Some(&mut att.commands),
        idle: hub.config().camera_timeout,
        idle_what: "message",
    };
    let reason = link::run(link, cam, |msg| match msg {
        Inbound::Binary(b) => match cam.ingest(b, &limits) {
            Ingest::Published => Flow::Published,
            Ingest::Dropped(e) => {
                link::log_dropped(cam, &e);
                Flow::Continue
            }
        },
        Inbound::Text(t) => {
            match ApMessage::from_json(&t) {
                Ok(ApMessage::Ack(a)) => hub.on_ack(cam, a),
                Ok(ApMessage::Welcome { message }) => {
                    // The seed's welcome is free text for people ("Connected to ESP32-S3
                    // camera"), not a firmware version: log it, do not show it as one.
                    debug!("pulled camera {} says: {}", cam.id, for_log(&message));
                }
                Ok(_) => {}
                Err(e) => debug!(
                    "pulled camera {}: text message ignored: {}",
                    cam.id,
                    for_log(&e.to_string())
                ),
            }
            Flow::Continue
        }
        Inbound::Closed => Flow::Continue,
    })
    .await;
    CameraSocket::close(&mut ws, espcam_proto::close::NORMAL, "hub closing the link").await;
    hub.detach_control(cam, att.conn, &reason);
    Ok(reason)
}

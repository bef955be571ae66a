//! Pull mode: the hub as a client of a standalone (seed-002) camera at `ws://<camera>/ws`,
//! so such a camera appears in the hub like any other.
//!
//! One task per target: connect, treat the socket as both control link (JSON commands out,
//! acks in) and stream (bare JPEGs in, checked like any frame), and reconnect with
//! exponential backoff when it drops. The camera is online while this socket is up. This
//! module must never hammer an unreachable camera: every failed attempt waits at least the
//! current backoff.

use std::time::Duration;

use espcam_proto::ApMessage;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, info, warn};

use crate::camera::{Camera, Ingest};
use crate::config::PullTarget;
use crate::hub::Hub;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the pull client for `target` until the hub stops.
pub(crate) async fn run(hub: Hub, target: PullTarget) {
    let Some(cam) = hub.camera(target.id.as_str()) else {
        warn!("pull target {} is not registered; not pulling", target.id);
        return;
    };
    let mut stop = hub.shutdown_signal();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            r = session(&hub, &cam, &target) => r,
            _ = stop.changed() => return,
        };
        match outcome {
            Ok(reason) => info!("pulled camera {} disconnected: {reason}", cam.id),
            Err(e) => debug!("pulled camera {} at {}: {e}", cam.id, target.url),
        }
        if started.elapsed() >= STABLE {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection. `Err` when it never came up, `Ok(reason)` when it came up and ended.
async fn session(
    hub: &Hub,
    cam: &std::sync::Arc<Camera>,
    target: &PullTarget,
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
    let mut att = hub.attach_control(cam.clone(), Some("standalone".into()), None, None);
    info!("pulled camera {} connected at {}", cam.id, target.url);
    let idle = hub.config().camera_timeout;
    let reason = loop {
        tokio::select! {
            _ = &mut att.kicked => break "replaced".to_string(),
            Some(cmd) = att.commands.recv() => {
                let sent = tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::Text(cmd.to_json().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break "could not send a command".to_string();
                }
            }
            msg = tokio::time::timeout(idle, ws.next()) => match msg {
                Err(_) => break format!("nothing received for {} ms", idle.as_millis()),
                Ok(None) => break "connection closed".to_string(),
                Ok(Some(Err(e))) => break format!("connection error: {e}"),
                Ok(Some(Ok(Message::Close(_)))) => break "camera closed the connection".to_string(),
                Ok(Some(Ok(Message::Binary(b)))) => match cam.ingest(b, &limits) {
                    Ingest::Published => cam.let_viewers_run().await,
                    Ingest::Dropped(e) => cam.log_dropped(&e),
                },
                Ok(Some(Ok(Message::Text(t)))) => match ApMessage::from_json(t.as_str()) {
                    Ok(ApMessage::Ack(a)) => hub.on_ack(cam, a),
                    Ok(ApMessage::Welcome { message }) => {
                        cam.lock().firmware = Some(message.chars().take(80).collect());
                    }
                    Ok(_) => {}
                    Err(e) => debug!("pulled camera {}: text message ignored: {e}", cam.id),
                },
                Ok(Some(Ok(_))) => {}
            },
        }
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.close(None)).await;
    hub.detach_control(cam, att.conn, &reason);
    Ok(reason)
}

//! Camera connections pushed to the hub: the control socket (`/ws/camera`, port 6971) and
//! the stream socket (`/ws/stream`, port 6972).
//!
//! Both start with a hello that is checked (version, id, token) before anything else; a
//! refused camera gets `{"type":"rejected","reason":...}` and close code 1008 with the same
//! reason, and one log line. After that, an error in one message ends at most that
//! connection — a bad frame does not even do that: it is counted and dropped. Ingest never
//! waits for viewers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::{CameraMsg, DecodeError, HubMsg, StreamHello};
use tracing::{debug, info, warn};

use crate::camera::{Camera, Ingest, Source};
use crate::hub::{Admission, Hub};
use crate::listener::PeerAddr;

/// Read buffer for camera sockets: frames are tens of KiB and there are few cameras, so a
/// bigger buffer means fewer reads.
const CAMERA_READ_BUFFER: usize = 64 * 1024;
/// How long a camera may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write to a camera may take before the link is considered dead.
const CAMERA_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /ws/camera`: the camera control channel.
pub(crate) async fn control_ws(
    State(hub): State<Hub>,
    ConnectInfo(PeerAddr(addr)): ConnectInfo<PeerAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_CONTROL_MESSAGE)
        .max_frame_size(MAX_CONTROL_MESSAGE)
        .on_upgrade(move |socket| control_conn(hub, socket, addr))
}

/// `GET /ws/stream`: the camera stream channel.
pub(crate) async fn stream_ws(
    State(hub): State<Hub>,
    ConnectInfo(PeerAddr(addr)): ConnectInfo<PeerAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    // Messages up to twice the frame limit are read and then refused by the frame checks
    // (counted, connection kept); only beyond that does the WebSocket layer close the
    // connection, which bounds the memory one camera can make the hub allocate.
    let hard_cap = hub.config().limits.max_frame.saturating_mul(2);
    ws.read_buffer_size(CAMERA_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_upgrade(move |socket| stream_conn(hub, socket, addr))
}

/// Sends the refusal and closes with 1008; logs one line.
pub(crate) async fn reject(
    socket: &mut WebSocket,
    addr: SocketAddr,
    channel: &str,
    reason: String,
) {
    warn!("refused camera {channel} connection from {addr}: {reason}");
    let text = HubMsg::Rejected {
        reason: reason.clone(),
    }
    .to_json();
    let _ = tokio::time::timeout(CAMERA_WRITE_TIMEOUT, async {
        socket.send(Message::Text(text.into())).await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::POLICY,
                reason: close_reason(&reason).into(),
            })))
            .await
    })
    .await;
}

/// Checks a hello (version, id, token), registers the camera and answers `welcome`; a
/// refused hello gets [`reject`]ed. `None` when the connection is over.
async fn welcome(
    hub: &Hub,
    socket: &mut WebSocket,
    addr: SocketAddr,
    channel: &str,
    admission: &Admission<'_>,
) -> Option<Arc<Camera>> {
    let camera = match hub
        .admit(admission)
        .and_then(|()| hub.register(admission.camera, Source::Push))
    {
        Ok(c) => c,
        Err(reason) => {
            reject(socket, addr, channel, reason).await;
            return None;
        }
    };
    let welcome = HubMsg::Welcome {
        camera: camera.id.clone(),
    }
    .to_json();
    socket.send(Message::Text(welcome.into())).await.ok()?;
    Some(camera)
}

/// A close reason fits in 123 bytes; cut on a character boundary.
pub(crate) fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// Waits for the first text message, for at most [`HELLO_TIMEOUT`] in total: a deadline, not
/// a per-message timer, so a peer that keeps sending pings cannot hold a connection open
/// without ever saying hello.
async fn first_text(socket: &mut WebSocket) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => return Err(format!("no hello within {} s", HELLO_TIMEOUT.as_secs())),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                return Err("connection closed before hello".into());
            }
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_string()),
            Ok(Some(Ok(Message::Binary(_)))) => {
                return Err("expected a JSON hello first, got a binary message".into());
            }
            Ok(Some(Ok(_))) => {} // ping/pong before hello: fine
        }
    }
}

async fn control_conn(hub: Hub, mut socket: WebSocket, addr: SocketAddr) {
    let hello = match first_text(&mut socket)
        .await
        .and_then(|t| match CameraMsg::from_json(&t) {
            Ok(CameraMsg::Hello(h)) => Ok(h),
            Ok(_) => Err("expected a hello first".to_string()),
            Err(DecodeError::Invalid(m)) => Err(format!("invalid hello: {m}")),
            Err(e) => Err(format!("invalid hello: {e}")),
        }) {
        Ok(h) => h,
        Err(reason) => return reject(&mut socket, addr, "control", reason).await,
    };
    let admission = Admission {
        proto: hello.proto,
        camera: &hello.camera,
        token: &hello.token,
    };
    let Some(camera) = welcome(&hub, &mut socket, addr, "control", &admission).await else {
        return;
    };
    let mut att = hub.attach_control(
        camera,
        Some(hello.sensor.clone()),
        Some(hello.firmware.clone()),
        Some(hello.settings),
    );
    let camera = att.camera.clone();
    info!(
        "camera {} connected from {addr} ({}, {}, {})",
        camera.id, hello.sensor, hello.firmware, hello.settings.resolution
    );
    let mut stop = hub.shutdown_signal();
    let idle = hub.config().camera_timeout;
    let reason: String = loop {
        tokio::select! {
            _ = &mut att.kicked => {
                let _ = close(&mut socket, close_code::NORMAL, "replaced by a new connection").await;
                break "replaced by a new connection".into();
            }
            _ = stop.changed() => {
                let _ = close(&mut socket, close_code::AWAY, "hub shutting down").await;
                break "hub shutting down".into();
            }
            Some(cmd) = att.commands.recv() => {
                let sent = tokio::time::timeout(
                    CAMERA_WRITE_TIMEOUT,
                    socket.send(Message::Text(cmd.to_json().into())),
                ).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break "could not send a command".into();
                }
            }
            msg = tokio::time::timeout(idle, socket.recv()) => match msg {
                Err(_) => break format!("no message for {} ms", idle.as_millis()),
                Ok(None) => break "connection closed".into(),
                Ok(Some(Err(e))) => break format!("connection error: {e}"),
                Ok(Some(Ok(Message::Close(_)))) => break "camera closed the connection".into(),
                Ok(Some(Ok(Message::Text(t)))) => match CameraMsg::from_json(t.as_str()) {
                    Ok(CameraMsg::Telemetry(t)) => {
                        hub.on_settings(&camera, t.settings);
                        camera.lock().telemetry = Some(t);
                    }
                    Ok(CameraMsg::Ack(a)) => hub.on_ack(&camera, a),
                    Ok(CameraMsg::Hello(_)) => debug!("camera {}: repeated hello ignored", camera.id),
                    Err(e) => warn!("camera {}: bad control message ignored: {e}", camera.id),
                },
                Ok(Some(Ok(Message::Binary(_)))) => {
                    debug!("camera {}: binary message on the control channel ignored", camera.id);
                }
                Ok(Some(Ok(_))) => {}
            },
        }
    };
    if hub.detach_control(&camera, att.conn, &reason) {
        info!("camera {} disconnected: {reason}", camera.id);
    } else {
        debug!(
            "camera {} old control connection ended: {reason}",
            camera.id
        );
    }
}

async fn stream_conn(hub: Hub, mut socket: WebSocket, addr: SocketAddr) {
    let hello = match first_text(&mut socket).await.and_then(|t| {
        StreamHello::from_json(&t).map_err(|e| match e {
            DecodeError::Invalid(m) => format!("invalid stream hello: {m}"),
            e => format!("invalid stream hello: {e}"),
        })
    }) {
        Ok(h) => h,
        Err(reason) => return reject(&mut socket, addr, "stream", reason).await,
    };
    let admission = Admission {
        proto: hello.proto,
        camera: &hello.camera,
        token: &hello.token,
    };
    let Some(camera) = welcome(&hub, &mut socket, addr, "stream", &admission).await else {
        return;
    };
    let (conn, mut kicked) = hub.attach_stream(&camera);
    info!("camera {} stream connected from {addr}", camera.id);
    let limits = hub.config().limits;
    let idle = hub.config().camera_timeout;
    let mut stop = hub.shutdown_signal();
    let reason: String = loop {
        tokio::select! {
            _ = &mut kicked => {
                let _ = close(&mut socket, close_code::NORMAL, "replaced by a new connection").await;
                break "replaced by a new connection".into();
            }
            _ = stop.changed() => {
                let _ = close(&mut socket, close_code::AWAY, "hub shutting down").await;
                break "hub shutting down".into();
            }
            msg = tokio::time::timeout(idle, socket.recv()) => match msg {
                Err(_) => break format!("no frame for {} ms", idle.as_millis()),
                Ok(None) => break "connection closed".into(),
                Ok(Some(Err(e))) => break format!("connection error: {e}"),
                Ok(Some(Ok(Message::Close(_)))) => break "camera closed the connection".into(),
                Ok(Some(Ok(Message::Binary(b)))) => match camera.ingest(b, &limits) {
                    Ingest::Published => camera.let_viewers_run().await,
                    Ingest::Dropped(e) => camera.log_dropped(&e),
                },
                Ok(Some(Ok(Message::Text(_)))) => {
                    debug!("camera {}: text message on the stream channel ignored", camera.id);
                }
                Ok(Some(Ok(_))) => {}
            },
        }
    };
    hub.detach_stream(&camera, conn);
    info!("camera {} stream disconnected: {reason}", camera.id);
}

pub(crate) async fn close(
    socket: &mut WebSocket,
    code: u16,
    reason: &str,
) -> Result<(), axum::Error> {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: close_reason(reason).into(),
    }));
    match tokio::time::timeout(CAMERA_WRITE_TIMEOUT, socket.send(frame)).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

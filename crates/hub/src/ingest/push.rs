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

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use espcam_proto::close::{POLICY, close_reason};
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::{CameraMsg, DecodeError, HubMsg, StreamHello};
use tracing::{debug, info, warn};

use super::admission;
use super::link::{self, CAMERA_WRITE_TIMEOUT, CameraSocket, Flow, Inbound};
use crate::net::listener::PeerAddr;
use crate::state::access::Warning;
use crate::state::camera::{Camera, Ingest, Source};
use crate::state::{Admission, Hub, LinkInfo};
use crate::text::for_log;

/// Read buffer for camera sockets: frames are tens of KiB and there are few cameras, so a
/// bigger buffer means fewer reads.
const CAMERA_READ_BUFFER: usize = 64 * 1024;
/// How long a camera may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

impl CameraSocket for WebSocket {
    async fn recv(&mut self) -> Option<Result<Inbound, String>> {
        loop {
            return match WebSocket::recv(self).await? {
                Err(e) => Some(Err(e.to_string())),
                Ok(Message::Text(t)) => Some(Ok(Inbound::Text(t.as_str().to_string()))),
                Ok(Message::Binary(b)) => Some(Ok(Inbound::Binary(b))),
                Ok(Message::Close(_)) => Some(Ok(Inbound::Closed)),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            };
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.send(Message::Text(text.into()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn close(&mut self, code: u16, reason: &str) {
        crate::net::ws::close(self, code, reason).await;
    }
}

/// `GET /ws/camera`: the camera control channel.
pub(super) async fn control_ws(
    State(hub): State<Hub>,
    ConnectInfo(PeerAddr(addr)): ConnectInfo<PeerAddr>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = admission::refuse_browser(&headers, addr, &hub) {
        return refused;
    }
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_CONTROL_MESSAGE)
        .max_frame_size(MAX_CONTROL_MESSAGE)
        .on_upgrade(move |socket| control_conn(hub, socket, addr))
}

/// `GET /ws/stream`: the camera stream channel.
pub(super) async fn stream_ws(
    State(hub): State<Hub>,
    ConnectInfo(PeerAddr(addr)): ConnectInfo<PeerAddr>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = admission::refuse_browser(&headers, addr, &hub) {
        return refused;
    }
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

/// Sends the refusal and closes with 1008; logs one line (a few per peer every 10 s, the
/// rest summarised).
async fn reject(
    hub: &Hub,
    socket: &mut WebSocket,
    addr: SocketAddr,
    channel: &str,
    reason: String,
) {
    if hub.access().should_warn(Warning::RefusedHello, addr.ip()) {
        warn!(
            "refused camera {channel} connection from {addr}: {}",
            for_log(&reason)
        );
    }
    let text = HubMsg::Rejected {
        reason: reason.clone(),
    }
    .to_json();
    let _ = tokio::time::timeout(CAMERA_WRITE_TIMEOUT, async {
        socket.send(Message::Text(text.into())).await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: POLICY,
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
    let camera = match admission::admit(hub, admission, addr)
        .await
        .and_then(|()| hub.register(admission.camera, Source::Push))
    {
        Ok(c) => c,
        Err(reason) => {
            reject(hub, socket, addr, channel, reason.to_string()).await;
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

/// Waits for the first text message, for at most [`HELLO_TIMEOUT`] in total: a deadline, not
/// a per-message timer, so a peer that keeps sending pings cannot hold a connection open
/// without ever saying hello.
async fn first_text(socket: &mut WebSocket) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    match tokio::time::timeout_at(deadline, CameraSocket::recv(socket)).await {
        Err(_) => Err(format!("no hello within {} s", HELLO_TIMEOUT.as_secs())),
        Ok(None | Some(Err(_)) | Some(Ok(Inbound::Closed))) => {
            Err("connection closed before hello".into())
        }
        Ok(Some(Ok(Inbound::Text(t)))) => Ok(t),
        Ok(Some(Ok(Inbound::Binary(_)))) => {
            Err("expected a JSON hello first, got a binary message".into())
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
        Err(reason) => return reject(&hub, &mut socket, addr, "control", reason).await,
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
        LinkInfo {
            sensor: Some(hello.sensor.clone()),
            firmware: Some(hello.firmware.clone()),
            settings: Some(hello.settings),
            board: hello.board.clone(),
            ota_pending: hello.ota_pending,
        },
    );
    let camera = att.camera.clone();
    info!(
        "camera {} connected from {addr} ({}, {}, {})",
        camera.id,
        for_log(&hello.sensor),
        for_log(&hello.firmware),
        hello.settings.resolution
    );
    let link = link::Link {
        socket: &mut socket,
        hub: &hub,
        kicked: &mut att.kicked,
        commands: Some(&mut att.commands),
        idle: hub.config().camera_timeout,
        idle_what: "message",
    };
    let reason = link::run(link, &camera, |msg| {
        match msg {
            Inbound::Text(t) => match CameraMsg::from_json(&t) {
                Ok(CameraMsg::Telemetry(t)) => hub.on_telemetry(&camera, t),
                Ok(CameraMsg::Ack(a)) => hub.on_ack(&camera, a),
                Ok(CameraMsg::OtaProgress(p)) => hub.on_ota_progress(&camera, p),
                Ok(CameraMsg::OtaResult(r)) => hub.on_ota_result(&camera, r),
                Ok(CameraMsg::Hello(_)) => debug!("camera {}: repeated hello ignored", camera.id),
                Err(e) => {
                    if hub.access().should_warn(Warning::BadMessage, addr.ip()) {
                        warn!(
                            "camera {}: bad control message ignored: {}",
                            camera.id,
                            for_log(&e.to_string())
                        );
                    }
                }
            },
            Inbound::Binary(_) => {
                debug!(
                    "camera {}: binary message on the control channel ignored",
                    camera.id
                );
            }
            Inbound::Closed => {}
        }
        Flow::Continue
    })
    .await;
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
        Err(reason) => return reject(&hub, &mut socket, addr, "stream", reason).await,
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
    let link = link::Link {
        socket: &mut socket,
        hub: &hub,
        kicked: &mut kicked,
        commands: None,
        idle: hub.config().camera_timeout,
        idle_what: "frame",
    };
    let reason = link::run(link, &camera, |msg| match msg {
        Inbound::Binary(b) => match camera.ingest(b, &limits) {
            Ingest::Published => Flow::Published,
            Ingest::Dropped(e) => {
                link::log_dropped(&camera, &e);
                Flow::Continue
            }
        },
        Inbound::Text(_) => {
            debug!(
                "camera {}: text message on the stream channel ignored",
                camera.id
            );
            Flow::Continue
        }
        Inbound::Closed => Flow::Continue,
    })
    .await;
    hub.detach_stream(&camera, conn);
    info!("camera {} stream disconnected: {reason}", camera.id);
}

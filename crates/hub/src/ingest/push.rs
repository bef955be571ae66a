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

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use espcam_proto::close::{POLICY, TOO_BIG, close_reason};
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::{CameraMsg, DecodeError, HubMsg, StreamHello};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame as RawClose, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as RawMessage, Utf8Bytes};
use tracing::{debug, info, warn};

use super::admission;
use super::hello;
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

/// The stream socket: tungstenite on the upgraded connection, created after the hello was
/// read by [`hello::read_hello`] with its small cap.
type StreamSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

impl CameraSocket for StreamSocket {
    async fn recv(&mut self) -> Option<Result<Inbound, String>> {
        loop {
            return match self.next().await? {
                Err(e) => Some(Err(e.to_string())),
                Ok(RawMessage::Text(t)) => Some(Ok(Inbound::Text(t.as_str().to_string()))),
                Ok(RawMessage::Binary(b)) => Some(Ok(Inbound::Binary(b))),
                Ok(RawMessage::Close(_)) => Some(Ok(Inbound::Closed)),
                Ok(RawMessage::Ping(_) | RawMessage::Pong(_) | RawMessage::Frame(_)) => continue,
            };
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.send(RawMessage::Text(text.into()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = RawMessage::Close(Some(RawClose {
            code: code.into(),
            reason: Utf8Bytes::from(close_reason(reason).to_string()),
        }));
        let _ = tokio::time::timeout(CAMERA_WRITE_TIMEOUT, self.send(frame)).await;
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

/// `GET /ws/stream`: the camera stream channel. The upgrade is accepted here rather than
/// through axum's `WebSocket`, so the hello can be read with a smaller cap than the frames
/// after it ([`hello`]).
pub(super) async fn stream_ws(
    State(hub): State<Hub>,
    ConnectInfo(PeerAddr(addr)): ConnectInfo<PeerAddr>,
    mut req: Request,
) -> Response {
    if let Some(refused) = admission::refuse_browser(req.headers(), addr, &hub) {
        return refused;
    }
    let (response, on_upgrade) = match crate::net::upgrade::accept(&mut req) {
        Ok(x) => x,
        Err(refusal) => return refusal.into_response(),
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => stream_conn(hub, TokioIo::new(upgraded), addr).await,
            Err(e) => debug!("camera stream upgrade from {addr} failed: {e}"),
        }
    });
    response
}

/// Sends the refusal and closes with `code` (1008 for a refused hello); logs one line (a
/// few per peer every 10 s, the rest summarised).
async fn reject(
    hub: &Hub,
    socket: &mut impl CameraSocket,
    addr: SocketAddr,
    channel: &str,
    code: u16,
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
    if tokio::time::timeout(CAMERA_WRITE_TIMEOUT, socket.send_text(text))
        .await
        .is_ok_and(|sent| sent.is_ok())
    {
        socket.close(code, &reason).await;
    }
}

/// Checks a hello (version, id, token), registers the camera and answers `welcome`; a
/// refused hello gets [`reject`]ed. `None` when the connection is over.
async fn welcome(
    hub: &Hub,
    socket: &mut impl CameraSocket,
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
            reject(hub, socket, addr, channel, POLICY, reason.to_string()).await;
            return None;
        }
    };
    let welcome = HubMsg::Welcome {
        camera: camera.id.clone(),
    }
    .to_json();
    socket.send_text(welcome).await.ok()?;
    Some(camera)
}

/// Waits for the first text message, for at most [`HELLO_TIMEOUT`] in total: a deadline, not
/// a per-message timer, so a peer that keeps sending pings cannot hold a connection open
/// without ever saying hello. A refusal carries its close code: 1009 for a hello over the
/// control socket's 16 KiB cap (refused from the frame header, before its payload is read),
/// else 1008.
async fn first_text(socket: &mut WebSocket) -> Result<String, (u16, String)> {
    let deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    let closed = || (POLICY, "connection closed before hello".to_string());
    loop {
        return match tokio::time::timeout_at(deadline, WebSocket::recv(socket)).await {
            Err(_) => Err((
                POLICY,
                format!("no hello within {} s", HELLO_TIMEOUT.as_secs()),
            )),
            Ok(None | Some(Ok(Message::Close(_)))) => Err(closed()),
            Ok(Some(Err(e))) => match e.into_inner().downcast::<WsError>() {
                Ok(e) if matches!(*e, WsError::Capacity(_)) => Err((
                    TOO_BIG,
                    format!("hello exceeds the limit of {MAX_CONTROL_MESSAGE} bytes"),
                )),
                _ => Err(closed()),
            },
            Ok(Some(Ok(Message::Text(t)))) => Ok(t.as_str().to_string()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => Err((
                POLICY,
                "expected a JSON hello first, got a binary message".into(),
            )),
        };
    }
}

async fn control_conn(hub: Hub, mut socket: WebSocket, addr: SocketAddr) {
    let hello = match first_text(&mut socket)
        .await
        .and_then(|t| match CameraMsg::from_json(&t) {
            Ok(CameraMsg::Hello(h)) => Ok(h),
            Ok(_) => Err((POLICY, "expected a hello first".to_string())),
            Err(DecodeError::Invalid(m)) => Err((POLICY, format!("invalid hello: {m}"))),
            Err(e) => Err((POLICY, format!("invalid hello: {e}"))),
        }) {
        Ok(h) => h,
        Err((code, reason)) => {
            return reject(&hub, &mut socket, addr, "control", code, reason).await;
        }
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
            relayed: false,
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

/// The stream socket's configuration once the hello is read: messages up to twice the frame
/// limit are read and then refused by the frame checks (counted, connection kept); only
/// beyond that does the WebSocket layer close the connection, which bounds the memory an
/// admitted camera can make the hub allocate.
fn stream_config(hub: &Hub) -> WebSocketConfig {
    let hard_cap = hub.config().limits.max_frame.saturating_mul(2);
    WebSocketConfig::default()
        .read_buffer_size(CAMERA_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap))
}

async fn stream_conn(hub: Hub, mut io: TokioIo<hyper::upgrade::Upgraded>, addr: SocketAddr) {
    let read = tokio::time::timeout(HELLO_TIMEOUT, hello::read_hello(&mut io)).await;
    // The hello was read exactly: tungstenite carries on where it ended.
    let mut socket =
        StreamSocket::from_raw_socket(io, Role::Server, Some(stream_config(&hub))).await;
    let text = match read {
        Ok(Ok(t)) => t,
        Err(_) => {
            let reason = format!("no hello within {} s", HELLO_TIMEOUT.as_secs());
            return reject(&hub, &mut socket, addr, "stream", POLICY, reason).await;
        }
        Ok(Err(e)) => {
            match e.close_code() {
                Some(code) => reject(&hub, &mut socket, addr, "stream", code, e.to_string()).await,
                None => debug!("camera stream from {addr} ended before its hello: {e}"),
            }
            return;
        }
    };
    let hello = match StreamHello::from_json(&text).map_err(|e| match e {
        DecodeError::Invalid(m) => format!("invalid stream hello: {m}"),
        e => format!("invalid stream hello: {e}"),
    }) {
        Ok(h) => h,
        Err(reason) => return reject(&hub, &mut socket, addr, "stream", POLICY, reason).await,
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

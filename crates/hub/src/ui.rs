//! `GET /ws/ui`: the browser's control socket, and the JSON events it carries.
//!
//! Browser → hub: the seed's commands with a `camera` field,
//! `{"camera":"cam-1","cmd":"quality","value":10,"id":7}`. Hub → browser: `cameras` on
//! connect, then `online`, `offline`, `settings`, `telemetry` for every camera, and `ack` /
//! `error` answers to this socket's own commands (see docs/API.md). A browser that cannot
//! keep up with events is resynced with a fresh `cameras` list, never buffered without
//! bound; one that stalls is dropped.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::{CameraId, CommandMsg, Settings};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::camera::CameraInfo;
use crate::error::CommandError;
use crate::hub::Hub;
use crate::ingest::close;

/// Commands one browser socket may have waiting for acks at once.
const MAX_IN_FLIGHT: usize = 8;

pub(crate) fn cameras_event(hub: &Hub) -> String {
    let cameras: Vec<CameraInfo> = hub.cameras().iter().map(|c| c.info()).collect();
    json!({ "type": "cameras", "cameras": cameras }).to_string()
}

pub(crate) fn online_event(info: &CameraInfo) -> String {
    json!({ "type": "online", "camera": info }).to_string()
}

pub(crate) fn offline_event(camera: &CameraId, reason: &str) -> String {
    json!({ "type": "offline", "camera": camera, "reason": reason }).to_string()
}

pub(crate) fn settings_event(camera: &CameraId, settings: &Settings) -> String {
    json!({ "type": "settings", "camera": camera, "settings": settings }).to_string()
}

pub(crate) fn telemetry_event(info: &CameraInfo) -> String {
    json!({ "type": "telemetry", "camera": info }).to_string()
}

/// A snapshot was saved (by any client): galleries open on its camera add it.
pub(crate) fn snapshot_event(snapshot: &espcam_store::Snapshot) -> String {
    json!({ "type": "snapshot", "snapshot": snapshot }).to_string()
}

/// A snapshot was deleted (by any client): galleries drop it.
pub(crate) fn snapshot_deleted_event(id: i64) -> String {
    json!({ "type": "snapshot_deleted", "id": id }).to_string()
}

fn error_event(camera: Option<&str>, id: Option<u64>, message: &str) -> String {
    json!({ "type": "error", "camera": camera, "id": id, "message": message }).to_string()
}

/// `GET /ws/ui`.
pub(crate) async fn ui_ws(State(hub): State<Hub>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_CONTROL_MESSAGE)
        .max_frame_size(MAX_CONTROL_MESSAGE)
        .on_upgrade(move |socket| ui_conn(hub, socket))
}

async fn ui_conn(hub: Hub, mut socket: WebSocket) {
    let _guard = hub.ui_client_guard();
    let mut events = hub.subscribe_events();
    // Answers to this socket's commands, from the tasks waiting for acks. Bounded together
    // with `in_flight`: at most MAX_IN_FLIGHT answers can be pending.
    let (reply_tx, mut replies) = mpsc::channel::<String>(MAX_IN_FLIGHT);
    // Caps commands waiting for acks, so one browser cannot spawn unbounded tasks.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut stop = hub.shutdown_signal();
    let timeout = hub.config().viewer_timeout;
    let mut out = Some(cameras_event(&hub));
    loop {
        if let Some(text) = out.take() {
            let sent = tokio::time::timeout(timeout, socket.send(Message::Text(text.into()))).await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
        tokio::select! {
            _ = stop.changed() => {
                let _ = close(&mut socket, close_code::AWAY, "hub shutting down").await;
                return;
            }
            ev = events.recv() => match ev {
                Ok(text) => out = Some(text.to_string()),
                Err(broadcast::error::RecvError::Lagged(_)) => out = Some(cameras_event(&hub)),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(reply) = replies.recv() => out = Some(reply),
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => {
                    out = handle_command(&hub, t.as_str(), &reply_tx, &in_flight);
                }
                Some(Ok(Message::Binary(_))) => {
                    out = Some(error_event(None, None, "binary messages are not accepted on /ws/ui; send JSON commands"));
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Validates a browser command and starts it. Returns an immediate error event, if any.
fn handle_command(
    hub: &Hub,
    text: &str,
    replies: &mpsc::Sender<String>,
    in_flight: &Arc<Semaphore>,
) -> Option<String> {
    // Best-effort camera and id, so even a malformed command's error can be matched up.
    let raw: Option<Value> = serde_json::from_str(text).ok();
    let raw_camera = raw
        .as_ref()
        .and_then(|v| v.get("camera"))
        .and_then(Value::as_str)
        .map(|s| s.chars().take(40).collect::<String>());
    let raw_id = raw
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_u64);
    let msg = match CommandMsg::from_json(text) {
        Ok(m) => m,
        Err(e) => return Some(error_event(raw_camera.as_deref(), raw_id, &e.to_string())),
    };
    let id = msg.id.map(u64::from);
    // Echoed in the answer: cut to 40 characters like every other echo of user input, so a
    // 16 KiB "camera" is not sent back whole. Valid ids have at most 32, so none is changed.
    let Some(camera) = msg.camera.map(|c| c.chars().take(40).collect::<String>()) else {
        return Some(error_event(
            None,
            id,
            "command has no \"camera\" field; expected e.g. {\"camera\":\"cam-1\",\"cmd\":\"quality\",\"value\":10}",
        ));
    };
    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
        return Some(error_event(
            Some(&camera),
            id,
            "too many commands waiting for acks; wait for answers before sending more",
        ));
    };
    let hub = hub.clone();
    let replies = replies.clone();
    tokio::spawn(async move {
        let reply = match hub.command(&camera, msg.command).await {
            Ok(ack) => ack_event(&camera, id, true, &ack.settings, None),
            Err(CommandError::Refused { message, .. }) => {
                let settings = hub
                    .camera(&camera)
                    .and_then(|c| c.lock().settings)
                    .unwrap_or_default();
                ack_event(&camera, id, false, &settings, Some(&message))
            }
            Err(e) => error_event(Some(&camera), id, &e.to_string()),
        };
        // The socket may have gone; then nobody wants the answer.
        let _ = replies.send(reply).await;
        drop(permit);
    });
    None
}

fn ack_event(
    camera: &str,
    id: Option<u64>,
    ok: bool,
    settings: &Settings,
    error: Option<&str>,
) -> String {
    json!({
        "type": "ack",
        "camera": camera,
        "id": id,
        "ok": ok,
        "settings": settings,
        "error": error,
    })
    .to_string()
}

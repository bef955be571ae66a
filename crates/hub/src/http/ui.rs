//! `GET /ws/ui`: the browser's control socket, and the one place the hub's typed events
//! ([`Event`]) become the JSON browsers read.
//!
//! Browser → hub: the seed's commands with a `camera` field,
//! `{"camera":"cam-1","cmd":"quality","value":10,"id":7}`. Hub → browser: `cameras` on
//! connect, then `online`, `offline`, `settings`, `telemetry`, `snapshot`,
//! `snapshot_deleted` for every camera, and `ack` / `error` answers to this socket's own
//! commands (see docs/API.md). Commands are queued to the camera in the order this socket
//! received them (the wait for each ack then runs on its own). A browser that cannot keep
//! up with events is resynced with a fresh `cameras` list, never buffered without bound;
//! one that stalls is dropped. Each command is checked against the caller's role
//! (`reboot` needs `Reboot`, the settings `Settings`; a viewer gets an `error` answer) and
//! audited once the camera acknowledged it (a reboot once it is queued). The socket closes
//! with 1008 when the credential it was opened with ends, and a role changed meanwhile
//! counts from the next command (`revoke.rs`). The hub pings it every `ping_interval` and
//! closes it with 1001 when nothing arrived for `idle_timeout` (`net/liveness.rs`).

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use espcam_auth::{Action, AuditAction};
use espcam_proto::close::{AWAY, ECHO_CHARS, IDLE, echo};
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::{Command, CommandMsg, Settings};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::http::nodes::Nodes;
use tokio::sync::{Semaphore, broadcast};

use crate::http::api::snapshot_json;
use crate::http::auth::{Caller, forbidden_message};
use crate::http::revoke::CredentialWatch;
use crate::net::liveness::{Due, Liveness};
use crate::net::ws::close;
use crate::state::Hub;
use crate::state::camera::CameraInfo;
use crate::state::error::CommandError;
use crate::state::event::{CommandFailure, Event, Origin};

/// Commands one browser socket may have waiting for acks at once.
const MAX_IN_FLIGHT: usize = 8;

/// A camera's JSON, with `node` (and `source: "remote"`) in cluster mode, as the REST API
/// gives it, so the dashboard knows which cameras another hub holds.
fn info_json(nodes: Option<&Nodes>, info: &CameraInfo) -> Value {
    match nodes {
        Some(n) => n.annotate(info),
        None => serde_json::to_value(info).unwrap_or(Value::Null),
    }
}

/// The `cameras` message: every known camera.
pub(crate) fn cameras_json(hub: &Hub, nodes: Option<&Nodes>) -> String {
    let cameras: Vec<Value> = hub
        .cameras()
        .iter()
        .map(|c| info_json(nodes, &c.info()))
        .collect();
    json!({ "type": "cameras", "cameras": cameras }).to_string()
}

/// The JSON for one event, as this browser socket (client `me`) should see it; `None` for
/// events that are not for it (answers to other clients' commands).
pub(crate) fn event_json(
    hub: &Hub,
    nodes: Option<&Nodes>,
    event: &Event,
    me: u64,
) -> Option<String> {
    let kind = event.name();
    let v = match event {
        Event::Online(info) => json!({ "type": kind, "camera": info_json(nodes, info) }),
        Event::Offline { camera, reason } => {
            json!({ "type": kind, "camera": camera, "reason": reason })
        }
        Event::Settings { camera, settings } => {
            json!({ "type": kind, "camera": camera, "settings": settings })
        }
        Event::Telemetry(info) => json!({ "type": kind, "camera": info_json(nodes, info) }),
        Event::Command {
            origin,
            id,
            camera,
            result,
        } => {
            if *origin != Origin::Ui(me) {
                return None;
            }
            return Some(match result {
                Ok(settings) => ack_json(camera, *id, true, settings, None),
                Err(CommandFailure {
                    error: CommandError::Refused { message, .. },
                    settings,
                }) => ack_json(
                    camera,
                    *id,
                    false,
                    &settings.unwrap_or_default(),
                    Some(message),
                ),
                Err(f) => error_json(Some(camera), *id, &f.error.to_string()),
            });
        }
        Event::SnapshotSaved(s) => json!({ "type": kind, "snapshot": snapshot_json(s) }),
        Event::SnapshotDeleted(id) => json!({ "type": kind, "id": id }),
        Event::CamerasChanged => return Some(cameras_json(hub, nodes)),
        Event::MotionStarted(m) | Event::MotionEnded(m) => {
            json!({ "type": kind, "camera": m.camera, "event": crate::http::events::event_json(m) })
        }
        Event::Ota { camera, status } => json!({ "type": kind, "camera": camera, "ota": status }),
        Event::RemoteSnapshotSaved { node, snapshot } => {
            json!({ "type": kind, "node": node, "snapshot": crate::http::remote::snapshot_json(node, snapshot) })
        }
        Event::RemoteSnapshotDeleted { node, id } => {
            json!({ "type": kind, "node": node, "id": id })
        }
    };
    Some(v.to_string())
}

fn error_json(camera: Option<&str>, id: Option<u64>, message: &str) -> String {
    json!({ "type": "error", "camera": camera, "id": id, "message": message }).to_string()
}

fn ack_json(
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

/// `GET /ws/ui`.
pub(crate) async fn ui_ws(
    State(hub): State<Hub>,
    Extension(caller): Extension<Caller>,
    nodes: Option<Extension<Nodes>>,
    ws: WebSocketUpgrade,
) -> Response {
    let nodes = nodes.map(|Extension(n)| n);
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_CONTROL_MESSAGE)
        .max_frame_size(MAX_CONTROL_MESSAGE)
        .on_upgrade(move |socket| ui_conn(hub, nodes, socket, caller))
}

async fn ui_conn(hub: Hub, nodes: Option<Nodes>, mut socket: WebSocket, mut caller: Caller) {
    let nodes = nodes.as_ref();
    // Ends the socket when its credential ends; keeps the role commands are checked with
    // up to date.
    let mut watch = CredentialWatch::start(Some(&caller), Action::View);
    let guard = hub.ui_client_guard();
    let me = guard.id;
    let mut events = hub.subscribe();
    // Caps commands waiting for acks, so one browser cannot spawn unbounded tasks.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut stop = hub.shutdown_signal();
    let timeout = hub.config().viewer_timeout;
    let mut live = Liveness::new(hub.config().ping_interval, hub.config().idle_timeout);
    let mut out = Some(cameras_json(&hub, nodes));
    loop {
        if let Some(text) = out.take() {
            let sent = tokio::time::timeout(timeout, socket.send(Message::Text(text.into()))).await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
        tokio::select! {
            _ = stop.changed() => {
                close(&mut socket, AWAY, "hub shutting down").await;
                return;
            }
            why = watch.ended() => {
                close(&mut socket, espcam_proto::close::POLICY, &why).await;
                return;
            }
            due = live.due() => match due {
                Due::Silent => {
                    tracing::debug!("/ws/ui from {} closed: {}", caller.addr, live.reason());
                    close(&mut socket, IDLE, &live.reason()).await;
                    return;
                }
                Due::Ping => {
                    let sent = tokio::time::timeout(timeout, socket.send(Message::Ping(Default::default()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return;
                    }
                }
            },
            ev = events.recv() => match ev {
                Ok(event) => out = event_json(&hub, nodes, &event, me),
                Err(broadcast::error::RecvError::Lagged(_)) => out = Some(cameras_json(&hub, nodes)),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            msg = socket.recv() => {
                if matches!(msg, Some(Ok(_))) {
                    // Pongs included: anything from the client shows it is there.
                    live.heard();
                }
                match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(t))) => {
                        if let Some(p) = watch.principal() {
                            caller.principal = p;
                        }
                        out = handle_command(&hub, me, t.as_str(), &in_flight, &caller);
                    }
                    Some(Ok(Message::Binary(_))) => {
                        out = Some(error_json(None, None, "binary messages are not accepted on /ws/ui; send JSON commands"));
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// Validates a browser command and queues it to the camera at once (so commands keep the
/// order they arrived in); the wait for the ack runs on its own and its answer comes back
/// through the event bus. Returns an immediate error message, if any.
fn handle_command(
    hub: &Hub,
    me: u64,
    text: &str,
    in_flight: &Arc<Semaphore>,
    caller: &Caller,
) -> Option<String> {
    // Best-effort camera and id, so even a malformed command's error can be matched up.
    let raw: Option<Value> = serde_json::from_str(text).ok();
    let raw_camera = raw
        .as_ref()
        .and_then(|v| v.get("camera"))
        .and_then(Value::as_str)
        .map(|s| echo(s, ECHO_CHARS).to_string());
    let raw_id = raw
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_u64);
    let msg = match CommandMsg::from_json(text) {
        Ok(m) => m,
        Err(e) => return Some(error_json(raw_camera.as_deref(), raw_id, &e.to_string())),
    };
    let id = msg.id.map(u64::from);
    // Echoed in the answer: cut like every other echo of user input, so a 16 KiB "camera"
    // is not sent back whole. Valid ids have at most 32 characters, so none is changed.
    let Some(camera) = msg.camera.map(|c| echo(&c, ECHO_CHARS).to_string()) else {
        return Some(error_json(
            None,
            id,
            "command has no \"camera\" field; expected e.g. {\"camera\":\"cam-1\",\"cmd\":\"quality\",\"value\":10}",
        ));
    };
    let (action, audit) = match msg.command {
        Command::Reboot => (Action::Reboot, AuditAction::Reboot),
        _ => (Action::Settings, AuditAction::Settings),
    };
    if !caller.principal.allows(action) {
        return Some(error_json(
            Some(&camera),
            id,
            &forbidden_message(&caller.principal, action),
        ));
    }
    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
        return Some(error_json(
            Some(&camera),
            id,
            "too many commands waiting for acks; wait for answers before sending more",
        ));
    };
    let detail = msg.command.to_string();
    let pending = match hub.send_command(Origin::Ui(me), id, &camera, msg.command) {
        Ok(p) => p,
        Err(e) => return Some(error_json(Some(&camera), id, &e.to_string())),
    };
    let (hub, actor, addr) = (hub.clone(), caller.principal.actor.clone(), caller.addr);
    tokio::spawn(async move {
        // A camera may reboot before it can ack: its reboot is audited when queued.
        let audit_now = audit == AuditAction::Reboot;
        if audit_now {
            hub.access()
                .audit(&actor, audit, &camera, &detail, Some(addr))
                .await;
        }
        // The answer reaches this socket as an `Event::Command` on the bus.
        let acked = pending.wait().await.is_ok();
        drop(permit);
        if acked && !audit_now {
            hub.access()
                .audit(&actor, audit, &camera, &detail, Some(addr))
                .await;
        }
    });
    None
}

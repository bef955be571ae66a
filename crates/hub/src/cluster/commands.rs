//! Commands across hubs. A proxy's control link ([`proxy_link`]) takes the commands the
//! hub queued to a remote camera, in order, and sends each by NATS request to the holding
//! node's responder ([`responder`]), which queues it to the camera as any client would and
//! replies with the camera's ack or the error; the ack is then recorded here with the local
//! command id, so the local waiter (REST, browser socket) gets it as if the camera were
//! connected here. The responder only serves cameras connected to its own hub (never a
//! proxy), so a command crosses NATS at most once.

use espcam_proto::{Ack, CameraId, CommandMsg, HubMsg};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::cluster::{Cluster, command_subject};
use crate::state::Attached;
use crate::state::error::CommandError;
use crate::state::event::Origin;

/// Largest command request accepted.
const MAX_REQUEST: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    camera: CameraId,
    /// The command as the camera's control channel carries it (`HubMsg` JSON).
    command: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Reply {
    Ack(Ack),
    Error { kind: String, message: String },
}

/// Forwards a proxy's queued commands to the holding node, one at a time (so they reach
/// the camera in the order sent). Ends when a real connection replaces the proxy's link.
pub(super) async fn proxy_link(cluster: Cluster, mut attached: Attached) {
    let id = attached.camera.id.clone();
    loop {
        let msg = tokio::select! {
            m = attached.commands.recv() => m,
            _ = &mut attached.kicked => None,
        };
        let Some(msg) = msg else { break };
        let Some(node) = cluster.holder(&id) else {
            break;
        };
        match msg {
            HubMsg::Command(msg) => forward(&cluster, &attached, &node, msg).await,
            // Firmware updates are offered by the node that holds the camera (it serves the
            // image); one queued to a proxy is dropped and its status never advances.
            other => warn!(
                "cluster: {} for camera {id} not sent: offer it on node {node:?}, which holds it",
                message_kind(&other)
            ),
        }
    }
    cluster.release_proxy(&id, attached.conn);
}

fn message_kind(m: &HubMsg) -> &'static str {
    match m {
        HubMsg::Welcome { .. } => "welcome",
        HubMsg::Rejected { .. } => "rejection",
        HubMsg::Command(_) => "command",
        HubMsg::Ota(_) => "firmware offer",
    }
}

async fn forward(cluster: &Cluster, attached: &Attached, node: &str, msg: CommandMsg) {
    let hub = cluster.hub();
    let cam = &attached.camera;
    let local_id = msg.id;
    let wire = CommandMsg {
        id: None,
        camera: None,
        command: msg.command,
    };
    let req = Request {
        camera: cam.id.clone(),
        command: HubMsg::Command(wire).to_json(),
    };
    let body = serde_json::to_vec(&req).unwrap_or_default();
    let answer = cluster
        .0
        .client
        .request(command_subject(node), body.into())
        .await;
    let reply = match answer {
        Ok(m) if m.payload.len() <= MAX_REQUEST => serde_json::from_slice::<Reply>(&m.payload).ok(),
        Ok(_) => None,
        Err(e) => {
            // No answer: the local waiter times out (504), as for a camera that is silent.
            debug!(
                "cluster: command to camera {} on node {node:?}: {e}",
                cam.id
            );
            return;
        }
    };
    match reply {
        Some(Reply::Ack(mut ack)) => {
            ack.id = local_id;
            hub.on_ack(cam, ack);
        }
        Some(Reply::Error { kind, message }) => {
            debug!(
                "cluster: node {node:?} answered {kind} for camera {}: {}",
                cam.id,
                crate::text::for_log(&message)
            );
            if kind == "offline" || kind == "unknown" || kind == "disconnected" {
                // The camera is not there any more: the waiters see it went away (409);
                // the next directory pass shows it again wherever it is.
                hub.detach_control(cam, attached.conn, "its node says it is offline");
            }
        }
        None => warn!(
            "cluster: unreadable answer from node {node:?} for camera {}",
            cam.id
        ),
    }
}

/// Answers command requests for cameras connected to this hub.
pub(super) async fn responder(cluster: Cluster) {
    let subject = command_subject(cluster.node());
    crate::cluster::serve_requests(
        cluster,
        subject,
        "commands",
        |cluster, payload| async move {
            let reply = answer(&cluster, &payload).await;
            serde_json::to_vec(&reply).unwrap_or_default().into()
        },
    )
    .await;
}

async fn answer(cluster: &Cluster, payload: &[u8]) -> Reply {
    let err = |kind: &str, message: String| Reply::Error {
        kind: kind.into(),
        message,
    };
    if payload.len() > MAX_REQUEST {
        return err("invalid", format!("request of {} bytes", payload.len()));
    }
    let Ok(req) = serde_json::from_slice::<Request>(payload) else {
        return err("invalid", "expected {\"camera\",\"command\"}".into());
    };
    let command = match HubMsg::from_json(&req.command) {
        Ok(HubMsg::Command(c)) => c.command,
        _ => return err("invalid", "expected a command".into()),
    };
    if cluster.is_proxy(&req.camera) {
        return err(
            "unknown",
            format!("camera {} is not on this node", req.camera),
        );
    }
    let sent = cluster
        .hub()
        .send_command(Origin::Internal, None, req.camera.as_str(), command);
    let result = match sent {
        Ok(p) => p.wait().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(ack) => Reply::Ack(ack),
        Err(CommandError::Refused { message, .. }) => {
            // `wait` turns a negative ack into `Refused`; the camera's ack is what the
            // asking node needs, so it is rebuilt with the settings in force.
            match cluster.hub().camera(req.camera.as_str()) {
                Some(cam) => Reply::Ack(Ack {
                    id: None,
                    cmd: Some(command.name().to_string()),
                    ok: false,
                    settings: cam.settings().unwrap_or_default(),
                    error: Some(message),
                }),
                None => err("unknown", "camera gone".into()),
            }
        }
        Err(e) => {
            let kind = match &e {
                CommandError::UnknownCamera(_) => "unknown",
                CommandError::Offline(_) => "offline",
                CommandError::Disconnected { .. } => "disconnected",
                CommandError::AckTimeout { .. } => "timeout",
                CommandError::Busy(_) => "busy",
                CommandError::Refused { .. } => "refused",
            };
            err(kind, e.to_string())
        }
    }
}

//! The hub's typed events: what happened to cameras, commands and snapshots.
//!
//! Defined here, emitted by [`crate::state::Hub`] (and by the layers through its methods),
//! serialised for browsers in exactly one place (`http::ui`). Every later subscriber —
//! recording, MQTT, webhooks, other hubs — takes the same events from the same bus
//! ([`crate::state::Hub::subscribe`]). The bus is a bounded broadcast: a subscriber that falls
//! behind is told how many events it missed (`Lagged`) and resynchronises from the state;
//! the hub never waits for a subscriber. Nothing here is JSON.

use espcam_proto::{CameraId, Settings};
use espcam_store::Snapshot;

use crate::state::camera::CameraInfo;
use crate::state::error::CommandError;

/// Who sent a command, so its answer reaches the one that asked (a browser socket shows only
/// the answers to its own commands) and an audit log can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A REST request.
    Api,
    /// The browser socket with this client number.
    Ui(u64),
    /// The hub itself (or a subscriber acting for it).
    Internal,
    /// The MQTT service, for a command that came from the broker (Home Assistant).
    Mqtt,
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// A camera's control link came up.
    Online(Box<CameraInfo>),
    /// A camera's control link went down.
    Offline {
        /// The camera.
        camera: CameraId,
        /// Why, for people.
        reason: String,
    },
    /// The settings in force changed (from an ack or from telemetry).
    Settings {
        /// The camera.
        camera: CameraId,
        /// The new settings.
        settings: Settings,
    },
    /// Once a second per online camera: its state and counters.
    Telemetry(Box<CameraInfo>),
    /// A command got its answer (ack, refusal, or no answer).
    Command {
        /// Who sent it.
        origin: Origin,
        /// The sender's own id for it, if it gave one.
        id: Option<u64>,
        /// The camera as named by the sender (cut to 40 characters).
        camera: String,
        /// The outcome: the settings in force after a positive ack, or the error. For a
        /// refusal, `settings` are the settings still in force.
        result: Result<Settings, CommandFailure>,
    },
    /// A snapshot was saved (by any client).
    SnapshotSaved(Snapshot),
    /// A snapshot was deleted (by any client).
    SnapshotDeleted(i64),
    /// The set of known cameras changed other than by a camera coming online (one was
    /// forgotten or removed): subscribers re-read the list.
    CamerasChanged,
    /// Motion started on a camera (the hub's motion analysis).
    MotionStarted(Box<MotionInfo>),
    /// A camera's motion event ended.
    MotionEnded(Box<MotionInfo>),
    /// A snapshot was saved on another node of the cluster (it stays there; this hub serves
    /// it at `/api/nodes/{node}/snapshots/{id}.jpg`).
    RemoteSnapshotSaved {
        /// The node that saved it.
        node: String,
        /// The snapshot as that node indexed it (its id is that node's).
        snapshot: Snapshot,
    },
    /// A snapshot was deleted on another node of the cluster.
    RemoteSnapshotDeleted {
        /// The node.
        node: String,
        /// That node's snapshot id.
        id: i64,
    },
    /// A firmware update moved on (offered, progress, rebooting, done, failed).
    Ota {
        /// The camera.
        camera: CameraId,
        /// Where the update is now.
        status: crate::state::ota::OtaStatus,
    },
}

/// A motion event as the bus carries it. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionInfo {
    /// The camera.
    pub camera: CameraId,
    /// The stored event's id (`/api/events/{id}`); 0 when the events database is
    /// unavailable.
    pub id: i64,
    /// First triggering frame.
    pub started_ms: u64,
    /// When the end was decided (`MotionEnded` only).
    pub ended_ms: Option<u64>,
    /// Last triggering frame (`MotionEnded` only).
    pub last_motion_ms: Option<u64>,
    /// Highest score so far (changed fraction of the zone, 0..=1).
    pub peak_score: f32,
    /// When the peak frame was received.
    pub peak_ms: u64,
    /// Names of the zones that triggered so far.
    pub zones: Vec<String>,
    /// The node that analysed the camera, when it is another hub of the cluster: the id
    /// and the event's links then belong to that node's events database, not this hub's.
    pub node: Option<String>,
}

/// A command that did not get a positive ack.
#[derive(Debug, Clone)]
pub struct CommandFailure {
    /// Why.
    pub error: CommandError,
    /// For a refusal, the settings the camera still has in force.
    pub settings: Option<Settings>,
}

impl Event {
    /// The event's name as the browser socket and docs/API.md call it.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Online(_) => "online",
            Event::Offline { .. } => "offline",
            Event::Settings { .. } => "settings",
            Event::Telemetry(_) => "telemetry",
            Event::Command {
                result:
                    Ok(_)
                    | Err(CommandFailure {
                        error: CommandError::Refused { .. },
                        ..
                    }),
                ..
            } => "ack",
            Event::Command { .. } => "error",
            Event::SnapshotSaved(_) => "snapshot",
            Event::SnapshotDeleted(_) => "snapshot_deleted",
            Event::CamerasChanged => "cameras",
            Event::MotionStarted(_) => "motion_start",
            Event::MotionEnded(_) => "motion_end",
            Event::Ota { .. } => "ota",
            Event::RemoteSnapshotSaved { .. } => "remote_snapshot",
            Event::RemoteSnapshotDeleted { .. } => "remote_snapshot_deleted",
        }
    }
}

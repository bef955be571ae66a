//! Events across hubs: each node publishes the typed events of the cameras and snapshots
//! it holds on `espcam.events.<node>`, and every node turns the other nodes' events into
//! events of its own bus, so a browser on any hub sees every camera's events.
//!
//! What crosses: a held camera's online / offline / settings and motion start / end, and
//! this node's snapshots saved / deleted. A receiving node applies a camera event only to
//! its proxy of that camera *held by the sender* (so a late or stray event of a camera that
//! moved is ignored): offline drops the proxy at once (instead of after the directory TTL),
//! settings update it, online wakes the directory pass that creates it, motion is
//! re-emitted as is. Snapshots become [`Event::RemoteSnapshotSaved`] /
//! [`Event::RemoteSnapshotDeleted`] with the sender's name, since their ids are the
//! sender's.
//!
//! It must never publish an event of a proxy or a remote snapshot (those came from NATS:
//! no loops), and never wait on NATS in the hub's bus (its own task, a bounded bus: a slow
//! link loses events here, counted in the log, and the directory still converges).

use espcam_proto::{CameraId, Settings};
use espcam_store::{Snapshot, SnapshotId};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use crate::cluster::Cluster;
use crate::state::event::{Event, MotionInfo};

/// Largest event message accepted.
const MAX_EVENT: usize = 16 * 1024;
/// Longest reason or zone name carried.
const MAX_TEXT: usize = 200;

/// Subject of a node's events.
pub fn events_subject(node: &str) -> String {
    format!("espcam.events.{node}")
}

/// One event as it crosses NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    Online {
        camera: CameraId,
    },
    Offline {
        camera: CameraId,
        reason: String,
        /// The sender's clock when it went offline (Unix ms), to tell its older directory
        /// entries from newer ones.
        #[serde(default)]
        at_ms: u64,
    },
    Settings {
        camera: CameraId,
        settings: Settings,
    },
    MotionStart {
        motion: WireMotion,
    },
    MotionEnd {
        motion: WireMotion,
    },
    Snapshot {
        snapshot: WireSnapshot,
    },
    SnapshotDeleted {
        id: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireMotion {
    camera: CameraId,
    id: i64,
    started_ms: u64,
    ended_ms: Option<u64>,
    last_motion_ms: Option<u64>,
    peak_score: f32,
    peak_ms: u64,
    zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireSnapshot {
    id: i64,
    camera: CameraId,
    taken_at_us: u64,
    bytes: u64,
    width: u16,
    height: u16,
}

fn cut(s: &str) -> String {
    espcam_proto::close::echo(s, MAX_TEXT).to_string()
}

impl From<&MotionInfo> for WireMotion {
    fn from(m: &MotionInfo) -> Self {
        Self {
            camera: m.camera.clone(),
            id: m.id,
            started_ms: m.started_ms,
            ended_ms: m.ended_ms,
            last_motion_ms: m.last_motion_ms,
            peak_score: m.peak_score,
            peak_ms: m.peak_ms,
            zones: m.zones.iter().take(16).map(|z| cut(z)).collect(),
        }
    }
}

impl WireMotion {
    /// The event on this node's bus: `node`'s, so its id and links are that node's.
    fn into_info(self, node: &str) -> MotionInfo {
        MotionInfo {
            camera: self.camera,
            id: self.id,
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            last_motion_ms: self.last_motion_ms,
            peak_score: self.peak_score,
            peak_ms: self.peak_ms,
            zones: self.zones.iter().take(16).map(|z| cut(z)).collect(),
            node: Some(node.to_string()),
        }
    }
}

impl Cluster {
    /// Whether `camera` is connected to this hub (not a proxy, not relayed).
    fn holds(&self, camera: &CameraId) -> bool {
        !self.is_proxy(camera)
            && self
                .hub()
                .camera(camera.as_str())
                .is_some_and(|c| !c.relayed())
    }

    /// The wire form of a bus event this node should publish; `None` for the others.
    fn outgoing(&self, e: &Event) -> Option<Wire> {
        let w = match e {
            Event::Online(info) if self.holds(&info.id) => Wire::Online {
                camera: info.id.clone(),
            },
            Event::Offline { camera, reason } if self.holds(camera) => Wire::Offline {
                camera: camera.clone(),
                reason: cut(reason),
                at_ms: crate::state::clock::now_us() / 1000,
            },
            Event::Settings { camera, settings } if self.holds(camera) => Wire::Settings {
                camera: camera.clone(),
                settings: *settings,
            },
            Event::MotionStarted(m) if self.holds(&m.camera) => Wire::MotionStart {
                motion: m.as_ref().into(),
            },
            Event::MotionEnded(m) if self.holds(&m.camera) => Wire::MotionEnd {
                motion: m.as_ref().into(),
            },
            Event::SnapshotSaved(s) => Wire::Snapshot {
                snapshot: WireSnapshot {
                    id: s.id.get(),
                    camera: s.camera.clone(),
                    taken_at_us: s.taken_at_us,
                    bytes: s.bytes,
                    width: s.width,
                    height: s.height,
                },
            },
            Event::SnapshotDeleted(id) => Wire::SnapshotDeleted { id: *id },
            _ => return None,
        };
        Some(w)
    }

    /// Applies another node's event to this node's proxies and bus.
    fn incoming(&self, node: &str, w: Wire) {
        let held_by_sender =
            |id: &CameraId| self.lock().proxies.get(id).is_some_and(|p| p.node == node);
        let hub = self.hub();
        match w {
            Wire::Online { camera } => {
                if !held_by_sender(&camera) {
                    self.0.directory_now.notify_one();
                }
            }
            Wire::Offline {
                camera,
                reason,
                at_ms,
            } => {
                if held_by_sender(&camera) {
                    // The sender's directory entries up to then still say online: the
                    // directory pass must not bring the proxy back from one of them.
                    self.lock()
                        .gone
                        .insert(camera.clone(), (node.to_string(), at_ms));
                    let why = format!("offline on node {node}: {}", cut(&reason));
                    self.drop_proxy(&camera, &why);
                }
            }
            Wire::Settings { camera, settings } => {
                if held_by_sender(&camera)
                    && let Some(cam) = hub.camera(camera.as_str())
                {
                    hub.on_settings(&cam, settings);
                }
            }
            Wire::MotionStart { motion } => {
                if held_by_sender(&motion.camera) {
                    hub.emit(Event::MotionStarted(Box::new(motion.into_info(node))));
                }
            }
            Wire::MotionEnd { motion } => {
                if held_by_sender(&motion.camera) {
                    hub.emit(Event::MotionEnded(Box::new(motion.into_info(node))));
                }
            }
            Wire::Snapshot { snapshot: s } => {
                let Some(id) = SnapshotId::new(s.id) else {
                    return;
                };
                hub.emit(Event::RemoteSnapshotSaved {
                    node: node.to_string(),
                    snapshot: Snapshot {
                        id,
                        camera: s.camera,
                        taken_at_us: s.taken_at_us,
                        bytes: s.bytes,
                        width: s.width,
                        height: s.height,
                    },
                });
            }
            Wire::SnapshotDeleted { id } => hub.emit(Event::RemoteSnapshotDeleted {
                node: node.to_string(),
                id,
            }),
        }
    }
}

/// Publishes this node's events until the hub stops.
pub(super) async fn publisher(cluster: Cluster) {
    let mut bus = cluster.hub().subscribe();
    let mut stop = cluster.hub().shutdown_signal();
    let subject = events_subject(cluster.node());
    loop {
        let e = tokio::select! {
            e = bus.recv() => e,
            _ = stop.changed() => break,
        };
        let e = match e {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                warn!("cluster: {n} events not forwarded to the other nodes (bus overrun)");
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let Some(w) = cluster.outgoing(&e) else {
            continue;
        };
        let Ok(body) = serde_json::to_vec(&w) else {
            continue;
        };
        if let Err(e) = cluster.0.client.publish(subject.clone(), body.into()).await {
            debug!("cluster: event not forwarded: {e}");
        }
    }
}

/// Applies the other nodes' events until the hub stops.
pub(super) async fn receiver(cluster: Cluster) {
    let mut sub = match cluster.0.client.subscribe("espcam.events.*").await {
        Ok(s) => s,
        Err(e) => {
            warn!("cluster: cannot follow the other nodes' events: {e}");
            return;
        }
    };
    let mut stop = cluster.hub().shutdown_signal();
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.changed() => None,
        };
        let Some(msg) = msg else { break };
        let Some(node) = msg.subject.as_str().strip_prefix("espcam.events.") else {
            continue;
        };
        if node == cluster.node() || !crate::cluster::config::valid_node(node) {
            continue;
        }
        if msg.payload.len() > MAX_EVENT {
            debug!(
                "cluster: event of {} bytes from node {node} ignored",
                msg.payload.len()
            );
            continue;
        }
        match serde_json::from_slice::<Wire>(&msg.payload) {
            Ok(w) => cluster.incoming(node, w),
            Err(e) => debug!("cluster: unreadable event from node {node}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_events_are_tagged_json() {
        let w = Wire::Offline {
            camera: CameraId::new("cam-1").unwrap(),
            reason: "gone".into(),
            at_ms: 7,
        };
        let j = serde_json::to_string(&w).unwrap();
        assert_eq!(
            j,
            r#"{"type":"offline","camera":"cam-1","reason":"gone","at_ms":7}"#
        );
        assert_eq!(serde_json::from_str::<Wire>(&j).unwrap(), w);
        assert!(serde_json::from_str::<Wire>(r#"{"type":"reboot"}"#).is_err());
    }
}

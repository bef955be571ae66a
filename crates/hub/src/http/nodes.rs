//! Which node of a cluster holds each camera, as the HTTP layer sees it: a small trait the
//! cluster service implements and hands to the router as an `Extension`, so this layer adds
//! a `node` field to the camera JSON without knowing anything about NATS. Without cluster
//! mode there is no extension and the camera JSON is exactly as before.

use std::sync::Arc;

use serde_json::Value;

use crate::state::camera::CameraInfo;
use crate::state::node_recordings::{RecordingFuture, RecordingRequest};
use crate::state::nodes::{AnswerFuture, NodeRequest};

/// Read-only view of the cluster's camera directory.
pub trait NodeDirectory: Send + Sync + std::fmt::Debug {
    /// This hub's node name.
    fn this_node(&self) -> &str;
    /// The node holding `camera`, when another node does (`None`: this node, or unknown).
    fn remote_node(&self, camera: &str) -> Option<String>;
    /// Asks `node` about the material it keeps (snapshots); its API's answer, or 502/504.
    fn ask(&self, node: &str, request: NodeRequest) -> AnswerFuture;
    /// Asks `node` about the recordings it keeps; its answer, or 404/503/504.
    fn ask_recordings(&self, node: &str, request: RecordingRequest) -> RecordingFuture;
    /// Every node named in the directory since this hub started, this one included, sorted.
    fn known_nodes(&self) -> Vec<String>;
}

/// The extension the router carries in cluster mode.
#[derive(Debug, Clone)]
pub struct Nodes(pub Arc<dyn NodeDirectory>);

impl Nodes {
    /// The camera JSON with `node` (and `source: "remote"` for a camera held elsewhere).
    pub(crate) fn annotate(&self, info: &CameraInfo) -> Value {
        let mut v = serde_json::to_value(info).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            match self.0.remote_node(info.id.as_str()) {
                Some(node) => {
                    map.insert("node".into(), Value::String(node));
                    map.insert("source".into(), Value::String("remote".into()));
                }
                None => {
                    map.insert("node".into(), Value::String(self.0.this_node().into()));
                }
            }
        }
        v
    }
}

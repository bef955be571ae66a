//! Requests one hub of a cluster answers for another: the plain data both ends share.
//!
//! Exists so that the cluster service (which carries these over NATS) and the HTTP layer
//! (which asks them on behalf of a browser, and answers them for another node) agree on
//! one shape without importing each other. Nothing here does I/O, and nothing here knows
//! NATS or HTTP beyond a status number: an answer is what the holding node's own API
//! would have answered.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Longest query string forwarded to another node.
pub const MAX_QUERY: usize = 512;

/// What one node asks another about the material that node keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NodeRequest {
    /// Take a snapshot of a camera connected to that node, and keep it there.
    TakeSnapshot {
        /// The camera, as the asking client named it.
        camera: String,
    },
    /// That node's `GET /api/snapshots?{query}`.
    ListSnapshots {
        /// The raw query string (at most [`MAX_QUERY`] bytes).
        query: String,
    },
    /// That node's `GET /api/snapshots/{file}` (`12.jpg`).
    SnapshotJpeg {
        /// The file name.
        file: String,
    },
}

/// The answering node's response, as its own API gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body is a JPEG (otherwise JSON).
    pub jpeg: bool,
    /// The body.
    pub body: Bytes,
}

/// A boxed answer in the making.
pub type AnswerFuture = Pin<Box<dyn Future<Output = NodeAnswer> + Send>>;

/// Answers [`NodeRequest`]s for this hub's own material (implemented with the HTTP layer's
/// handlers, handed to the cluster service by `server`).
pub trait NodeService: Send + Sync + std::fmt::Debug {
    /// Answers one request.
    fn serve(&self, request: NodeRequest) -> AnswerFuture;
}

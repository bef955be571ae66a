//! Recordings across hubs: one node asks another, by NATS request/reply on
//! `espcam.rec.<node>`, for the spans, an export (opened as a session and read chunk by
//! chunk by offset) or a batch of frames to play back (pulled by time cursor) of the
//! recordings that node keeps. Recordings stay on the node that made them; the asking node
//! only relays (docs/CLUSTER.md).
//!
//! The answering side hands the request to the [`RecordingService`] that `server` installed
//! (the HTTP layer's own handlers); this module carries bytes, bounds them by the NATS
//! server's `max_payload`, and maps transport failures to statuses. It never forwards a
//! request it received (no loops): the service answers from this node's own files only.
//!
//! Request: JSON ([`RecordingRequest`], at most 1 KiB). Reply: status (u16 BE), body kind
//! (one byte: 0 JSON, 1 export bytes, 2 frame batch), body ([`RecordingAnswer::encode`]).

use std::sync::Arc;

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::state::node_recordings::{
    BodyKind, RecordingAnswer, RecordingRequest, RecordingService,
};
use crate::state::nodes::MAX_QUERY;

/// Largest request accepted.
const MAX_REQUEST: usize = 1024;
/// Bytes of an answer besides its body (status and kind), plus room for NATS headers.
const OVERHEAD: usize = 3 + 512;

/// Subject of a node's recordings responder.
pub fn recordings_subject(node: &str) -> String {
    format!("espcam.rec.{node}")
}

/// An error answer in the API's shape, `{"error": message}`.
fn failure(status: u16, message: impl Into<String>) -> RecordingAnswer {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    RecordingAnswer {
        status,
        kind: BodyKind::Json,
        body: Bytes::from(body),
    }
}

impl Cluster {
    /// Installs what answers other nodes' requests about this node's recordings.
    pub fn set_recording_service(&self, service: Arc<dyn RecordingService>) {
        let _ = self.0.recordings.set(service);
    }

    /// Every node named in the directory since this hub started, this one included, sorted
    /// (where recordings may be: a camera's recordings stay on each node that held it).
    pub fn known_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().seen_nodes.iter().cloned().collect();
        if !v.iter().any(|n| n == self.node()) {
            v.push(self.node().to_string());
        }
        v.sort();
        v
    }

    /// Asks `node` about its recordings and waits for the answer: 404 for a name no node
    /// can have or that was never seen in the directory, 503 when a node seen before no
    /// longer answers (it is down), 504 when it does not answer in time.
    pub async fn ask_recordings(&self, node: &str, request: &RecordingRequest) -> RecordingAnswer {
        if !crate::cluster::config::valid_node(node) {
            return failure(
                404,
                format!(
                    "no node {:?}: node names are letters, digits, - and _",
                    espcam_proto::close::echo(node, 40)
                ),
            );
        }
        let body = match serde_json::to_vec(request) {
            Ok(b) => b,
            Err(e) => return failure(500, format!("request not encoded: {e}")),
        };
        let shown = crate::text::for_log(node);
        match self
            .0
            .client
            .request(recordings_subject(node), body.into())
            .await
        {
            Ok(m) => RecordingAnswer::decode(m.payload)
                .unwrap_or_else(|| failure(502, format!("node {shown} sent an unreadable answer"))),
            Err(e) => {
                use async_nats::client::RequestErrorKind as K;
                match e.kind() {
                    K::TimedOut => failure(
                        504,
                        format!(
                            "node {shown} did not answer in time: its recordings are unavailable"
                        ),
                    ),
                    K::NoResponders if self.seen_node(node) => failure(
                        503,
                        format!(
                            "node {shown} does not answer (it is down?): its recordings are unavailable until it is back"
                        ),
                    ),
                    K::NoResponders => failure(
                        404,
                        format!("no node named {shown} answers in the cluster, and none was seen"),
                    ),
                    _ => failure(502, format!("node {shown}: {e}")),
                }
            }
        }
    }
}

/// Answers other nodes' requests about this node's recordings.
pub(super) async fn responder(cluster: Cluster) {
    let subject = recordings_subject(cluster.node());
    crate::cluster::serve_requests(
        cluster,
        subject,
        "recording requests",
        |cluster, payload| async move {
            let max = cluster
                .0
                .client
                .server_info()
                .max_payload
                .saturating_sub(OVERHEAD);
            let answer = answer(&cluster, &payload, max).await;
            let answer = if answer.body.len() > max {
                failure(
                    502,
                    format!(
                        "answer of {} bytes is larger than the NATS server's max_payload allows ({max} bytes)",
                        answer.body.len()
                    ),
                )
            } else {
                answer
            };
            answer.encode()
        },
    )
    .await;
}

async fn answer(cluster: &Cluster, payload: &[u8], max: usize) -> RecordingAnswer {
    if payload.len() > MAX_REQUEST {
        return failure(
            400,
            format!("request of {} bytes: at most {MAX_REQUEST}", payload.len()),
        );
    }
    let Ok(request) = serde_json::from_slice::<RecordingRequest>(payload) else {
        return failure(400, "expected a recordings request");
    };
    if let RecordingRequest::Spans { query, .. } | RecordingRequest::ExportOpen { query, .. } =
        &request
        && query.len() > MAX_QUERY
    {
        return failure(
            400,
            format!("query of {} bytes: at most {MAX_QUERY}", query.len()),
        );
    }
    match cluster.0.recordings.get() {
        Some(s) => s.serve(request, max).await,
        None => failure(503, "recordings are unavailable on that node"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_and_unknown_operations_refused() {
        let r = RecordingRequest::ExportRead {
            session: 7,
            offset: 100,
            max: 4096,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"export_read","session":7,"offset":100,"max":4096}"#
        );
        assert_eq!(serde_json::from_str::<RecordingRequest>(&s).unwrap(), r);
        assert!(serde_json::from_str::<RecordingRequest>(r#"{"op":"delete_all"}"#).is_err());
        let f = failure(503, "down");
        assert_eq!(f.kind, BodyKind::Json);
        assert_eq!(&f.body[..], br#"{"error":"down"}"#);
    }
}

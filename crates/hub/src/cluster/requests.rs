//! Snapshots across hubs: one node asks another, by NATS request/reply on
//! `espcam.node.<node>`, to take a snapshot of a camera it holds, to list its snapshots or
//! to send one's JPEG. Snapshots stay on the node that made them; the asking node only
//! relays the answer (docs/CLUSTER.md).
//!
//! The answering side hands the request to the [`NodeService`] that `server` installed
//! (the HTTP layer's own handlers, so the answer is exactly what that node's API gives);
//! this module only carries bytes. It must never answer for a camera it does not hold
//! (a proxy's snapshot would be taken from relayed frames and kept on the wrong node) and
//! never forward a request it received (no loops).
//!
//! Reply framing: status (u16, big-endian), one flag byte (1: the body is a JPEG), body.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::cluster::Cluster;
use crate::state::nodes::{MAX_QUERY, NodeAnswer, NodeRequest, NodeService};

/// Largest request accepted.
const MAX_REQUEST: usize = 1024;

/// Subject of a node's request responder.
pub fn node_subject(node: &str) -> String {
    format!("espcam.node.{node}")
}

/// An error answer in the API's shape, `{"error": message}`.
fn failure(status: u16, message: impl Into<String>) -> NodeAnswer {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    NodeAnswer {
        status,
        jpeg: false,
        body: Bytes::from(body),
    }
}

fn encode(a: &NodeAnswer) -> Bytes {
    let mut b = BytesMut::with_capacity(3 + a.body.len());
    b.put_u16(a.status);
    b.put_u8(u8::from(a.jpeg));
    b.extend_from_slice(&a.body);
    b.freeze()
}

fn decode(mut payload: Bytes) -> Option<NodeAnswer> {
    if payload.len() < 3 {
        return None;
    }
    let head = payload.split_to(3);
    let status = u16::from_be_bytes([head[0], head[1]]);
    if !(100..=599).contains(&status) || head[2] > 1 {
        return None;
    }
    Some(NodeAnswer {
        status,
        jpeg: head[2] == 1,
        body: payload,
    })
}

impl Cluster {
    /// Installs what answers other nodes' requests about this node's material.
    pub fn set_node_service(&self, service: Arc<dyn NodeService>) {
        let _ = self.0.service.set(service);
    }

    /// Asks `node` and waits for its answer: 502 when no hub of that name answers, 504
    /// when it does not answer in time.
    pub async fn ask(&self, node: &str, request: &NodeRequest) -> NodeAnswer {
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
        match self.0.client.request(node_subject(node), body.into()).await {
            Ok(m) => decode(m.payload)
                .unwrap_or_else(|| failure(502, format!("node {shown} sent an unreadable answer"))),
            Err(e) => {
                use async_nats::client::RequestErrorKind as K;
                match e.kind() {
                    K::TimedOut => failure(504, format!("node {shown} did not answer in time")),
                    K::NoResponders => failure(
                        502,
                        format!("no hub named {shown} answers in the cluster (is it down?)"),
                    ),
                    _ => failure(502, format!("node {shown}: {e}")),
                }
            }
        }
    }
}

/// Answers other nodes' requests about this node's material.
pub(super) async fn responder(cluster: Cluster) {
    let subject = node_subject(cluster.node());
    crate::cluster::serve_requests(cluster, subject, "snapshot requests", |cluster, payload| async move {
        let answer = answer(&cluster, &payload).await;
        let max = cluster.0.client.server_info().max_payload;
        let answer = if answer.body.len() + 3 > max {
            failure(
                502,
                format!(
                    "answer of {} bytes is larger than the NATS server's max_payload ({max} bytes)",
                    answer.body.len()
                ),
            )
        } else {
            answer
        };
        encode(&answer)
    })
    .await;
}

async fn answer(cluster: &Cluster, payload: &[u8]) -> NodeAnswer {
    if payload.len() > MAX_REQUEST {
        return failure(400, format!("request of {} bytes", payload.len()));
    }
    let Ok(request) = serde_json::from_slice::<NodeRequest>(payload) else {
        return failure(400, "expected a snapshot request");
    };
    match &request {
        NodeRequest::TakeSnapshot { camera } => {
            let held = espcam_proto::CameraId::new(camera)
                .is_ok_and(|id| !cluster.is_proxy(&id) && cluster.hub().camera(camera).is_some());
            if !held {
                return failure(
                    404,
                    format!(
                        "camera {} is not connected to node {:?}",
                        espcam_proto::close::echo(camera, 40),
                        cluster.node()
                    ),
                );
            }
        }
        NodeRequest::ListSnapshots { query } if query.len() > MAX_QUERY => {
            return failure(400, format!("query of {} bytes", query.len()));
        }
        _ => {}
    }
    match cluster.0.service.get() {
        Some(s) => s.serve(request).await,
        None => failure(503, "snapshots are unavailable on that node"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_survive_the_framing() {
        let a = NodeAnswer {
            status: 201,
            jpeg: true,
            body: Bytes::from_static(&[0xFF, 0xD8, 1, 2]),
        };
        assert_eq!(decode(encode(&a)), Some(a));
        assert_eq!(decode(Bytes::from_static(&[0, 200])), None);
        assert_eq!(decode(Bytes::from_static(&[0, 42, 0])), None, "status 42");
        assert_eq!(decode(Bytes::from_static(&[0, 200, 7])), None, "flag 7");
    }
}

//! Snapshots of other nodes of a cluster, served through this hub.
//!
//! Snapshots stay on the node that made them. This module lets a client of any hub take
//! one of a camera another node holds (`POST /api/cameras/{id}/snapshots` on a remote
//! camera is asked of its node), list a node's snapshots (`GET /api/nodes/{node}/snapshots`)
//! and fetch one's JPEG (`GET /api/nodes/{node}/snapshots/{id}.jpg`). It knows nothing of
//! NATS: it asks through the [`Nodes`] extension, and answers other nodes' requests
//! ([`serve_local`]) by calling this hub's own handlers, so an answer is exactly what that
//! node's API gives. It must never ask another node on behalf of a request that came from a
//! node (no loops: [`serve_local`] calls the handlers without the extension), and never
//! pass a node's answer on without bounding it (the NATS payload limit bounds it).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use espcam_store::Snapshot;
use serde_json::Value;

use crate::http::api;
use crate::http::error::ApiError;
use crate::http::nodes::Nodes;
use crate::http::snapshot_quota::SnapshotGate;
use crate::state::Hub;
use crate::state::nodes::{MAX_QUERY, NodeAnswer, NodeRequest};

/// Largest local answer turned into a [`NodeAnswer`] (the NATS payload limit is lower).
const MAX_ANSWER: usize = 16 << 20;

/// The API's `Snapshot` object for a snapshot kept on `node`: with `node`, and a `url`
/// through this hub.
pub(crate) fn snapshot_json(node: &str, s: &Snapshot) -> Value {
    relocate(node, api::snapshot_json(s))
}

/// A snapshot object as `node` answered it, made to point through this hub.
fn relocate(node: &str, mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        if let Some(id) = m.get("id").and_then(Value::as_i64) {
            m.insert(
                "url".into(),
                Value::String(format!("/api/nodes/{node}/snapshots/{id}.jpg")),
            );
        }
        m.insert("node".into(), Value::String(node.into()));
    }
    v
}

fn not_clustered() -> ApiError {
    ApiError::NotFound("this hub is not in cluster mode (espcam serve --cluster)".into())
}

/// A node's answer as this hub's response; JSON snapshot objects are relocated.
fn respond(node: &str, a: NodeAnswer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if a.jpeg {
        let mut r = (status, Body::from(a.body)).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        return r;
    }
    let v: Value = serde_json::from_slice(&a.body).unwrap_or_else(
        |_| serde_json::json!({ "error": format!("node {node} sent an unreadable answer") }),
    );
    let v = if status.is_success() {
        match v {
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|i| relocate(node, i)).collect())
            }
            other => relocate(node, other),
        }
    } else {
        v
    };
    (status, axum::Json(v)).into_response()
}

/// `POST /api/cameras/{id}/snapshots` for a camera held by `node`: taken and kept there.
pub(crate) async fn take_remote(nodes: &Nodes, node: &str, camera: &str) -> Response {
    let a = nodes
        .0
        .ask(
            node,
            NodeRequest::TakeSnapshot {
                camera: camera.to_string(),
            },
        )
        .await;
    respond(node, a)
}

/// `GET /api/nodes/{node}/snapshots?camera=&limit=&before=`: that node's snapshots.
pub(crate) async fn list(
    State(hub): State<Hub>,
    nodes: Option<Extension<Nodes>>,
    Path(node): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Some(Extension(nodes)) = nodes else {
        return Err(not_clustered());
    };
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY {
        return Err(ApiError::BadRequest(format!(
            "query of {} bytes: at most {MAX_QUERY}",
            query.len()
        )));
    }
    if node == nodes.0.this_node() {
        let a = serve_local(&hub, None, NodeRequest::ListSnapshots { query }).await;
        return Ok(respond(&node, a));
    }
    let a = nodes
        .0
        .ask(&node, NodeRequest::ListSnapshots { query })
        .await;
    Ok(respond(&node, a))
}

/// `GET /api/nodes/{node}/snapshots/{id}.jpg`: a snapshot kept on that node.
pub(crate) async fn jpeg(
    State(hub): State<Hub>,
    nodes: Option<Extension<Nodes>>,
    Path((node, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Some(Extension(nodes)) = nodes else {
        return Err(not_clustered());
    };
    let request = NodeRequest::SnapshotJpeg { file };
    let a = if node == nodes.0.this_node() {
        serve_local(&hub, None, request).await
    } else {
        nodes.0.ask(&node, request).await
    };
    Ok(respond(&node, a))
}

/// Answers another node's request with this hub's own handlers. `gate` is the snapshot rate
/// limit for snapshots taken on request (the asking node applied its own as well).
pub(crate) async fn serve_local(
    hub: &Hub,
    gate: Option<Arc<SnapshotGate>>,
    request: NodeRequest,
) -> NodeAnswer {
    let r = match request {
        NodeRequest::TakeSnapshot { camera } => {
            let gate = gate.unwrap_or_else(|| Arc::new(SnapshotGate::new(hub.config().snapshots)));
            api::post_snapshot(State(hub.clone()), Extension(gate), None, Path(camera))
                .await
                .into_response()
        }
        NodeRequest::ListSnapshots { query } => {
            let uri = format!("/api/snapshots?{query}");
            match uri
                .parse::<axum::http::Uri>()
                .ok()
                .and_then(|u| Query::<api::ListQuery>::try_from_uri(&u).ok())
            {
                Some(q) => api::list_snapshots(State(hub.clone()), q)
                    .await
                    .into_response(),
                None => ApiError::BadRequest("expected camera=, limit= and before=".into())
                    .into_response(),
            }
        }
        NodeRequest::SnapshotJpeg { file } => api::get_snapshot_jpg(State(hub.clone()), Path(file))
            .await
            .into_response(),
    };
    let status = r.status().as_u16();
    let jpeg = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"image/jpeg");
    match axum::body::to_bytes(r.into_body(), MAX_ANSWER).await {
        Ok(body) => NodeAnswer { status, jpeg, body },
        Err(e) => NodeAnswer {
            status: 500,
            jpeg: false,
            body: serde_json::json!({ "error": format!("answer not read: {e}") })
                .to_string()
                .into(),
        },
    }
}

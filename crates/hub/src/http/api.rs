//! REST handlers: cameras, settings, reboot, snapshots, health and metrics.
//!
//! Handlers are thin: they parse and validate the request (with proto's validators), call
//! the [`Hub`] or the store, and return JSON. Store calls block on disk, so they run on
//! `spawn_blocking`. No path or id from a request reaches the filesystem before it is
//! parsed into a [`SnapshotId`] or [`CameraId`]; the store builds every path itself.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use espcam_proto::close::echo;
use espcam_proto::{Ack, CameraId, Command};
use espcam_store::{Before, NewSnapshot, Snapshot, SnapshotId, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use crate::http::error::ApiError;
use crate::http::snapshot_quota::{self, SnapshotGate};
use crate::http::view::{current_frame, find_camera};
use crate::state::Hub;
use crate::state::camera::CameraInfo;
use crate::state::error::CommandError;
use crate::state::event::Event;

/// Setting names accepted by `POST /api/cameras/{id}/settings`, in the order they are
/// applied (resolution first, so a quality change is acked at the new size).
const SETTINGS: [&str; 5] = ["resolution", "quality", "brightness", "vflip", "hmirror"];
/// Largest REST request body (settings JSON).
pub(crate) const MAX_BODY: usize = 16 * 1024;
/// How long a client may take to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics`; with the recorder's figures when it runs (the index and the disk are read
/// off the runtime).
pub(crate) async fn metrics(
    State(hub): State<Hub>,
    rec: Option<axum::Extension<crate::recorder::Recorder>>,
) -> Response {
    let rec = rec.map(|axum::Extension(r)| r);
    let lib = rec.as_ref().and_then(|r| r.recordings());
    let figures = match (rec, lib) {
        (Some(rec), Some(lib)) => {
            let failing = hub
                .cameras()
                .iter()
                .map(|c| (c.id.to_string(), rec.camera(&c.id).error.is_some()))
                .collect();
            tokio::task::spawn_blocking(move || crate::http::metrics::RecordingFigures {
                metrics: lib.metrics(),
                usage: lib.usage().ok(),
                disk_free: lib.disk_free().ok(),
                failing,
            })
            .await
            .ok()
        }
        _ => None,
    };
    let mut r = crate::http::metrics::render(&hub, figures.as_ref()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `GET /api/cameras` (in cluster mode each camera also says which `node` holds it).
pub(crate) async fn list_cameras(
    State(hub): State<Hub>,
    nodes: Option<axum::Extension<crate::http::nodes::Nodes>>,
) -> Response {
    let cameras = hub.cameras();
    let infos = cameras.iter().map(|c| c.info());
    match nodes {
        None => Json(infos.collect::<Vec<CameraInfo>>()).into_response(),
        Some(n) => Json(infos.map(|i| n.annotate(&i)).collect::<Vec<Value>>()).into_response(),
    }
}

/// `GET /api/cameras/{camera}`.
pub(crate) async fn get_camera(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
    nodes: Option<axum::Extension<crate::http::nodes::Nodes>>,
) -> Result<Response, ApiError> {
    let info = find_camera(&hub, &camera)?.info();
    Ok(match nodes {
        None => Json(info).into_response(),
        Some(n) => Json(n.annotate(&info)).into_response(),
    })
}

/// `DELETE /api/cameras/{camera}`: forgets a camera that has left and is not configured.
/// Its saved snapshots stay unless `?snapshots=delete` is given.
pub(crate) async fn delete_camera(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
    Query(q): Query<DeleteCameraQuery>,
) -> Result<Response, ApiError> {
    let delete_snapshots = match q.snapshots.as_deref() {
        None | Some("keep") => false,
        Some("delete") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "snapshots {:?} is invalid: expected keep or delete",
                echo(other, 40)
            )));
        }
    };
    let id = hub.remove_camera(&camera)?;
    let mut deleted = 0u64;
    if delete_snapshots && let Some(store) = hub.store() {
        let cam = id.clone();
        deleted = blocking(move || delete_all_snapshots(&store, &cam)).await?;
        tracing::info!("deleted {deleted} snapshot(s) of removed camera {id}");
    }
    Ok(Json(json!({ "removed": id, "snapshots_deleted": deleted })).into_response())
}

fn delete_all_snapshots(store: &Store, camera: &CameraId) -> Result<u64, ApiError> {
    let mut n = 0;
    loop {
        let q = espcam_store::Query {
            camera: Some(camera.clone()),
            limit: Some(espcam_store::MAX_LIMIT),
            before: None,
        };
        let page = store
            .list(&q)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if page.is_empty() {
            return Ok(n);
        }
        for s in page {
            if store
                .delete(s.id)
                .map_err(|e| ApiError::Internal(e.to_string()))?
            {
                n += 1;
            }
        }
    }
}

/// Query of `DELETE /api/cameras/{camera}`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeleteCameraQuery {
    snapshots: Option<String>,
}

/// `GET /api/cameras/{camera}/telemetry`: the hub's history of the camera's health — the
/// last hour at one sample per second (`fine`) and the last day at one per minute
/// (`coarse`), oldest first.
pub(crate) async fn get_telemetry(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    let (fine, coarse) = cam.history();
    Ok(Json(json!({
        "camera": cam.id,
        "interval_ms": { "fine": 1000, "coarse": 60_000 },
        "fine": fine,
        "coarse": coarse,
    })))
}

/// Parses a settings body into commands, in [`SETTINGS`] order.
pub fn parse_settings(body: &[u8]) -> Result<Vec<Command>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::BadRequest(
            "body must be a JSON object such as {\"quality\":10}".into(),
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown setting {:?}; expected any of resolution, quality, brightness, vflip, hmirror",
            echo(unknown, 40)
        )));
    }
    let mut commands = Vec::new();
    for name in SETTINGS {
        if let Some(v) = map.get(name) {
            commands.push(
                Command::from_parts(name, Some(v))
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?,
            );
        }
    }
    if commands.is_empty() {
        return Err(ApiError::BadRequest(
            "no settings given; expected any of resolution, quality, brightness, vflip, hmirror"
                .into(),
        ));
    }
    Ok(commands)
}

/// Reads a request body of at most `limit` bytes within [`BODY_TIMEOUT`].
///
/// Why not the `Bytes` extractor: it waits for the body without a time limit and only
/// notices an oversized one after reading past the limit, so a client announcing a 10 MB
/// body and sending ten bytes held its request open forever. Here an announced length over
/// the limit is refused at once, and a body that stops arriving is given up on.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody as _;
    use futures_util::StreamExt as _;
    let too_large = || {
        ApiError::TooLarge(format!(
            "request body over {limit} bytes; settings bodies are small JSON objects"
        ))
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let mut chunks = body.into_data_stream();
    let read = async {
        let mut buf = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .map_err(|_| {
            ApiError::Timeout(format!(
                "request body not received within {} s",
                BODY_TIMEOUT.as_secs()
            ))
        })?
}

/// `POST /api/cameras/{camera}/settings`.
pub(crate) async fn post_settings(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    let body = read_body(body, MAX_BODY).await?;
    let commands = parse_settings(&body)?;
    if !cam.online() {
        return Err(CommandError::Offline(cam.id.clone()).into());
    }
    let detail: Vec<String> = commands.iter().map(ToString::to_string).collect();
    let mut last: Option<Ack> = None;
    for c in commands {
        last = Some(hub.command(cam.id.as_str(), c).await?);
    }
    let settings = last.map(|a| a.settings);
    let mut r = Json(json!({ "settings": settings })).into_response();
    // What the audit log records for this change (the guard writes it).
    r.extensions_mut().insert(crate::http::auth::AuditNote {
        target: None,
        detail: detail.join(", "),
    });
    Ok(r)
}

/// `POST /api/cameras/{camera}/reboot`: queued, answered before the camera acks (it may
/// reboot before it can).
pub(crate) async fn post_reboot(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
) -> Result<Response, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    if !cam.online() {
        return Err(CommandError::Offline(cam.id.clone()).into());
    }
    // Queued now (so it keeps its place after earlier commands); the ack is not awaited.
    let pending = hub.send_command(
        crate::state::event::Origin::Api,
        None,
        cam.id.as_str(),
        Command::Reboot,
    )?;
    let id = cam.id.clone();
    tokio::spawn(async move {
        if let Err(e) = pending.wait().await {
            tracing::debug!("reboot of camera {id}: {e}");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "ok": true }))).into_response())
}

fn store(hub: &Hub) -> Result<Arc<Store>, ApiError> {
    hub.store()
        .ok_or_else(|| ApiError::Unavailable("snapshots are unavailable on this hub".into()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("snapshot task failed: {e}")))?
}

/// `POST /api/cameras/{camera}/snapshots`: saves the newest frame.
pub(crate) async fn post_snapshot(
    State(hub): State<Hub>,
    Extension(gate): Extension<Arc<SnapshotGate>>,
    nodes: Option<Extension<crate::http::nodes::Nodes>>,
    Path(camera): Path<String>,
) -> Result<Response, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    let quota = gate.quota();
    if let Err(wait) = gate.take(&cam.id, std::time::Instant::now()) {
        return Ok(snapshot_quota::too_fast(&cam.id, quota, wait));
    }
    // Cluster mode: a camera held by another node is snapshotted there, and kept there.
    if let Some(Extension(nodes)) = &nodes
        && let Some(node) = nodes.0.remote_node(cam.id.as_str())
    {
        return Ok(crate::http::remote::take_remote(nodes, &node, cam.id.as_str()).await);
    }
    let store = store(&hub)?;
    let frame = current_frame(&cam).await?;
    if frame.jpeg.len() as u64 > quota.max_bytes_per_camera {
        return Ok(snapshot_quota::too_big(&cam.id, frame.jpeg.len(), quota));
    }
    let id = cam.id.clone();
    let (snap, pruned) = blocking(move || {
        let snap = store
            .save(NewSnapshot {
                camera: &id,
                taken_at_us: frame.captured_us.unwrap_or(frame.received_us),
                jpeg: &frame.jpeg,
            })
            .map_err(|e| ApiError::Internal(format!("could not save snapshot: {e}")))?;
        // The new snapshot is saved either way; a failed clean-up is logged, not an error.
        let pruned = snapshot_quota::prune(&store, &id, snap.id, quota).unwrap_or_else(|e| {
            tracing::warn!("snapshot retention for camera {id}: {e}");
            Vec::new()
        });
        Ok((snap, pruned))
    })
    .await?;
    tracing::info!("snapshot {} saved from camera {}", snap.id, snap.camera);
    if !pruned.is_empty() {
        tracing::info!(
            "deleted the {} oldest snapshot(s) of camera {} (quota: {} snapshots, {} bytes)",
            pruned.len(),
            snap.camera,
            quota.max_per_camera,
            quota.max_bytes_per_camera
        );
    }
    let body = snapshot_json(&snap);
    for old in pruned {
        hub.emit(Event::SnapshotDeleted(old.get()));
    }
    hub.emit(Event::SnapshotSaved(snap));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The API's `Snapshot` object: `{"id","camera","taken_at_us","bytes","width","height","url"}`.
pub(crate) fn snapshot_json(s: &Snapshot) -> Value {
    json!({
        "id": s.id.get(),
        "camera": s.camera,
        "taken_at_us": s.taken_at_us,
        "bytes": s.bytes,
        "width": s.width,
        "height": s.height,
        "url": format!("/api/snapshots/{}.jpg", s.id),
    })
}

/// Query of `GET /api/snapshots`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    camera: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

/// `GET /api/snapshots?camera=&limit=&before=`.
pub(crate) async fn list_snapshots(
    State(hub): State<Hub>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let query = list_query(&q)?;
    let store = store(&hub)?;
    let list = blocking(move || {
        store
            .list(&query)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    let list: Vec<Value> = list.iter().map(snapshot_json).collect();
    Ok(Json(list).into_response())
}

/// Checks the query of `GET /api/snapshots`. A parameter that is present must be valid:
/// `camera=` with no value is an error, not "every camera".
fn list_query(q: &ListQuery) -> Result<espcam_store::Query, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let camera = q
        .camera
        .as_deref()
        .map(|c| {
            CameraId::new(c).map_err(|e| bad(format!("camera {:?} is invalid: {e}", echo(c, 40))))
        })
        .transpose()?;
    let max = espcam_store::MAX_LIMIT;
    let limit = q
        .limit
        .as_deref()
        .map(|s| match s.parse::<u64>() {
            Err(_) => Err(bad(format!(
                "limit {:?} is not a number: expected a whole number in 1..={max}",
                echo(s, 40)
            ))),
            Ok(n) if !(1..=u64::from(max)).contains(&n) => {
                Err(bad(format!("limit {n} out of range 1..={max}")))
            }
            Ok(n) => Ok(n as u32),
        })
        .transpose()?;
    let before = q
        .before
        .as_deref()
        .map(|s| {
            s.parse::<SnapshotId>().map(Before::Id).map_err(|()| {
                bad(format!(
                    "before {:?} is invalid: expected a snapshot id (a whole number ≥ 1)",
                    echo(s, 40)
                ))
            })
        })
        .transpose()?;
    Ok(espcam_store::Query {
        camera,
        limit,
        before,
    })
}

/// Parses a snapshot path segment in its one canonical form: `12.jpg` for the image, `12`
/// for the resource (DELETE). Leading zeros, a missing or extra `.jpg` are refused, so one
/// snapshot has exactly one URL of each kind (the image is cached as immutable).
fn parse_id(raw: &str, jpg: bool) -> Result<SnapshotId, ApiError> {
    let digits = if jpg {
        raw.strip_suffix(".jpg")
    } else {
        Some(raw)
    };
    digits
        .filter(|d| !d.starts_with('0'))
        .and_then(|d| d.parse::<SnapshotId>().ok())
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no snapshot {:?}: expected {}",
                echo(raw, 40),
                if jpg {
                    "/api/snapshots/{id}.jpg with the snapshot's id, such as 12.jpg"
                } else {
                    "/api/snapshots/{id} with the snapshot's id, such as 12 (no .jpg)"
                }
            ))
        })
}

/// `GET /api/snapshots/{id}.jpg`.
pub(crate) async fn get_snapshot_jpg(
    State(hub): State<Hub>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&file, true)?;
    let store = store(&hub)?;
    let bytes = blocking(move || {
        store
            .read_jpeg(id)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no snapshot {id}")))?;
    let mut r = Body::from(bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    // A snapshot id is never reused, so its bytes never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}

/// `DELETE /api/snapshots/{id}`.
pub(crate) async fn delete_snapshot(
    State(hub): State<Hub>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&raw, false)?;
    let store = store(&hub)?;
    let deleted = blocking(move || {
        store
            .delete(id)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    if deleted {
        tracing::info!("snapshot {id} deleted");
        hub.emit(Event::SnapshotDeleted(id.get()));
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no snapshot {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_body() {
        let c = parse_settings(br#"{"quality":10,"resolution":"VGA"}"#).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name(), "resolution");
        let err = |b: &[u8]| parse_settings(b).unwrap_err().to_string();
        assert_eq!(err(br#"{"quality":70}"#), "quality 70 out of range 0..=63");
        assert!(err(br#"{"zoom":1}"#).starts_with("unknown setting \"zoom\""));
        assert!(err(b"{}").starts_with("no settings given"));
        assert!(err(b"[1]").starts_with("body must be a JSON object"));
        assert!(err(b"{nope").starts_with("body is not valid JSON"));
        assert!(err(br#"{"reboot":1}"#).starts_with("unknown setting \"reboot\""));
    }
}

//! REST handlers: cameras, settings, reboot, snapshots, health and metrics.
//!
//! Handlers are thin: they parse and validate the request (with proto's validators), call
//! the [`Hub`] or the store, and return JSON. Store calls block on disk, so they run on
//! `spawn_blocking`. No path or id from a request reaches the filesystem before it is
//! parsed into a [`SnapshotId`] or [`CameraId`]; the store builds every path itself.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use espcam_proto::{Ack, Command};
use espcam_store::{NewSnapshot, SnapshotId, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use crate::camera::CameraInfo;
use crate::error::{ApiError, CommandError};
use crate::hub::Hub;
use crate::view::{current_frame, find_camera};

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

/// `GET /metrics`.
pub(crate) async fn metrics(State(hub): State<Hub>) -> Response {
    let mut r = crate::metrics::render(&hub).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `GET /api/cameras`.
pub(crate) async fn list_cameras(State(hub): State<Hub>) -> Json<Vec<CameraInfo>> {
    Json(hub.cameras().iter().map(|c| c.info()).collect())
}

/// `GET /api/cameras/{camera}`.
pub(crate) async fn get_camera(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
) -> Result<Json<CameraInfo>, ApiError> {
    Ok(Json(find_camera(&hub, &camera)?.info()))
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
            unknown.chars().take(40).collect::<String>()
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
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    let body = read_body(body, MAX_BODY).await?;
    let commands = parse_settings(&body)?;
    if !cam.online() {
        return Err(CommandError::Offline(cam.id.clone()).into());
    }
    let mut last: Option<Ack> = None;
    for c in commands {
        last = Some(hub.command(cam.id.as_str(), c).await?);
    }
    let settings = last.map(|a| a.settings);
    Ok(Json(json!({ "settings": settings })))
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
    let id = cam.id.to_string();
    tokio::spawn(async move {
        if let Err(e) = hub.command(&id, Command::Reboot).await {
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
    Path(camera): Path<String>,
) -> Result<Response, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    let store = store(&hub)?;
    let frame = current_frame(&cam).await?;
    let id = cam.id.clone();
    let snap = blocking(move || {
        store
            .save(NewSnapshot {
                camera: &id,
                taken_at_us: frame.captured_us.unwrap_or(frame.received_us),
                jpeg: &frame.jpeg,
            })
            .map_err(|e| ApiError::Internal(format!("could not save snapshot: {e}")))
    })
    .await?;
    tracing::info!("snapshot {} saved from camera {}", snap.id, snap.camera);
    hub.emit(crate::ui::snapshot_event(&snap));
    Ok((StatusCode::CREATED, Json(snap)).into_response())
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
    let query = espcam_store::Query::from_params(
        q.camera.as_deref(),
        q.limit.as_deref(),
        q.before.as_deref(),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = store(&hub)?;
    let list = blocking(move || {
        store
            .list(&query)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    Ok(Json(list).into_response())
}

fn parse_id(raw: &str, jpg: bool) -> Result<SnapshotId, ApiError> {
    let parsed = if jpg {
        SnapshotId::from_jpg_name(raw)
    } else {
        raw.strip_suffix(".jpg").unwrap_or(raw).parse().ok()
    };
    parsed.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no snapshot {:?}: expected a snapshot id such as {}",
            raw.chars().take(40).collect::<String>(),
            if jpg { "12.jpg" } else { "12" }
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
        hub.emit(crate::ui::snapshot_deleted_event(id.get()));
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

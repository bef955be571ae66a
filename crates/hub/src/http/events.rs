//! Motion over HTTP: a camera's motion settings (`GET/PUT /api/cameras/{camera}/motion`) and
//! the stored events (`/api/events…`, thumbnails), plus the one JSON shape of an event that
//! the REST API, the browser socket and webhooks share ([`event_json`]).
//!
//! Events link to their recording: the playback socket and an export from a few seconds
//! before the start to a few seconds after the end (the recorder's pre/post-roll). The
//! database is blocking SQLite, so every call runs on `spawn_blocking`. This module must
//! never echo a user's zone names into an error (espcam-motion's errors do not).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use espcam_proto::close::echo;
use espcam_store::events::{EventQuery, EventStore, StoredEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::recordings::{blocking, camera_id, parse_time};
use crate::motion::{CameraMotion, Motion};
use crate::state::Hub;
use crate::state::event::MotionInfo;

/// Largest body of `PUT .../motion` (32 zones and 64 mask rectangles fit easily).
const MAX_BODY: usize = 32 * 1024;
/// Seconds of recording linked before an event's start and after its end.
const CLIP_MARGIN_MS: u64 = 5_000;

fn motion(m: Option<Extension<Motion>>) -> Result<Motion, ApiError> {
    m.map(|Extension(m)| m)
        .ok_or_else(|| ApiError::Unavailable("motion detection is unavailable on this hub".into()))
}

fn db(m: &Motion) -> Result<std::sync::Arc<EventStore>, ApiError> {
    m.events()
        .ok_or_else(|| ApiError::Unavailable("the events database is unavailable".into()))
}

/// Links of an event: thumbnail, playback from its start, export of its clip.
fn links(id: i64, camera: &str, started_ms: u64, ended_ms: Option<u64>) -> Value {
    let from = started_ms.saturating_sub(CLIP_MARGIN_MS);
    let to = ended_ms.map(|e| e + CLIP_MARGIN_MS);
    let export = match to {
        Some(to) => format!("/api/cameras/{camera}/export?from={from}&to={to}"),
        None => format!("/api/cameras/{camera}/export?from={from}"),
    };
    json!({
        "self": format!("/api/events/{id}"),
        "thumb": format!("/api/events/{id}/thumb.jpg"),
        "playback": format!("/ws/playback/{camera}?from={from}"),
        "export": export,
    })
}

/// An event from the bus, as browsers and webhooks see it. Another node's event goes out
/// with its `node` and no links: its id, thumbnail and clip are that node's, and this hub's
/// `/api/events/{id}` is another event (the dashboard's thumbnail of it was a 404).
pub(crate) fn event_json(m: &MotionInfo) -> Value {
    let mut v = json!({
        "id": m.id,
        "camera": m.camera,
        "started_ms": m.started_ms,
        "ended_ms": m.ended_ms,
        "last_motion_ms": m.last_motion_ms,
        "peak_score": m.peak_score,
        "peak_ms": m.peak_ms,
        "zones": m.zones,
        "links": {},
    });
    match &m.node {
        Some(node) => v["node"] = json!(node),
        None => v["links"] = links(m.id, m.camera.as_str(), m.started_ms, m.ended_ms),
    }
    v
}

fn stored_json(e: &StoredEvent) -> Value {
    let ms = |v: i64| u64::try_from(v).unwrap_or(0);
    json!({
        "id": e.id,
        "camera": e.camera,
        "started_ms": e.started_ms,
        "ended_ms": e.ended_ms,
        "last_motion_ms": e.last_motion_ms,
        "peak_score": e.peak_score,
        "peak_ms": e.peak_ms,
        "zones": e.zones,
        "thumb_bytes": e.thumb_bytes,
        "links": links(e.id, &e.camera, ms(e.started_ms), e.ended_ms.map(ms)),
    })
}

/// `GET /api/cameras/{camera}/motion`: settings in force and the analysis's counters.
pub(crate) async fn get_motion(
    State(hub): State<Hub>,
    m: Option<Extension<Motion>>,
    Path(camera): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = motion(m)?;
    let id = camera_id(&hub, &camera)?;
    let (settings, status) = m.camera(&id);
    Ok(Json(
        json!({ "camera": id, "settings": settings, "status": status }),
    ))
}

/// `PUT /api/cameras/{camera}/motion` with a whole [`CameraMotion`] (missing fields take
/// their defaults). 400 names the bad value.
pub(crate) async fn put_motion(
    State(hub): State<Hub>,
    m: Option<Extension<Motion>>,
    Path(camera): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let m = motion(m)?;
    let id = camera_id(&hub, &camera)?;
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge(format!(
            "request body over {MAX_BODY} bytes"
        )));
    }
    let settings: CameraMotion = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"enabled\": bool, \"fps\": 1..=30, \"detector\": {{\"sensitivity\": 0..=100, ...}}}}: {e}"
        ))
    })?;
    m.set_camera(&id, settings).map_err(ApiError::BadRequest)?;
    let (settings, status) = m.camera(&id);
    Ok(Json(
        json!({ "camera": id, "settings": settings, "status": status }),
    ))
}

/// Query of `GET /api/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    camera: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/events?camera=&from=&to=&limit=`: newest first.
pub(crate) async fn list(
    State(hub): State<Hub>,
    m: Option<Extension<Motion>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let db = db(&motion(m)?)?;
    let camera = match &q.camera {
        Some(c) => Some(camera_id(&hub, c)?.to_string()),
        None => None,
    };
    let ms = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|s| parse_time(name, s).map(|us| i64::try_from(us / 1000).unwrap_or(i64::MAX)))
            .transpose()
    };
    let query = EventQuery {
        camera,
        from_ms: ms("from", &q.from)?,
        to_ms: ms("to", &q.to)?,
        limit: q.limit,
    };
    let rows = blocking(move || {
        db.list(&query).map_err(|e| match e {
            espcam_store::events::EventsError::Limit(_) => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        })
    })
    .await?;
    let events: Vec<Value> = rows.iter().map(stored_json).collect();
    Ok(Json(json!({ "events": events })))
}

/// The events of `camera` overlapping `from_us..to_us`, newest first, as `GET /api/events`
/// lists them: the markers of `GET /api/cameras/{camera}/recordings`. None when the hub
/// has no motion detection or no events database.
pub(crate) async fn in_range(
    m: Option<Extension<Motion>>,
    camera: &espcam_proto::CameraId,
    from_us: u64,
    to_us: u64,
) -> Result<Vec<Value>, ApiError> {
    let Some(db) = m.and_then(|Extension(m)| m.events()) else {
        return Ok(Vec::new());
    };
    let ms = |us: u64| i64::try_from(us / 1000).unwrap_or(i64::MAX);
    let query = EventQuery {
        camera: Some(camera.to_string()),
        from_ms: Some(ms(from_us)),
        // `to` is exclusive in µs; an event starting in its last millisecond still counts.
        to_ms: Some(ms(to_us.saturating_add(999))),
        limit: Some(espcam_store::events::EVENTS_MAX_LIMIT),
    };
    let rows = blocking(move || {
        db.list(&query)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    Ok(rows.iter().map(stored_json).collect())
}

fn event_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>().ok().filter(|&n| n > 0).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no event {:?}: ids are numbers from 1",
            echo(s, 30)
        ))
    })
}

/// `GET /api/events/{id}`.
pub(crate) async fn get_event(
    m: Option<Extension<Motion>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let db = db(&motion(m)?)?;
    let id = event_id(&id)?;
    let e = blocking(move || db.get(id).map_err(|e| ApiError::Internal(e.to_string()))).await?;
    e.map(|e| Json(stored_json(&e)))
        .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))
}

/// `GET /api/events/{id}/thumb.jpg`: the peak frame.
pub(crate) async fn thumb(
    m: Option<Extension<Motion>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let db = db(&motion(m)?)?;
    let id = event_id(&id)?;
    let t = blocking(move || db.thumb(id).map_err(|e| ApiError::Internal(e.to_string()))).await?;
    let jpeg = t.ok_or_else(|| ApiError::NotFound(format!("no thumbnail for event {id}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        jpeg,
    )
        .into_response())
}

/// `DELETE /api/events/{id}` (admin).
pub(crate) async fn delete_event(
    m: Option<Extension<Motion>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let db = db(&motion(m)?)?;
    let id = event_id(&id)?;
    let gone =
        blocking(move || db.delete(id).map_err(|e| ApiError::Internal(e.to_string()))).await?;
    if gone {
        Ok(Json(json!({ "deleted": id })))
    } else {
        Err(ApiError::NotFound(format!("no event {id}")))
    }
}

//! Firmware updates over HTTP: the library (`GET`/`POST /api/firmware`), starting updates
//! (`POST /api/cameras/{camera}/update`, `POST /api/firmware/{id}/rollout`), and the image
//! download cameras perform (`GET /api/firmware/{id}/image?key=…`, with `Range`).
//!
//! Thin: the library is [`crate::firmware::Firmware`], the bookkeeping
//! [`crate::state::Hub::send_ota`]; the camera decides everything about the download. The
//! image route has no credential of its own: the per-update key in its URL is one (128
//! random bits, one camera, one image, one hour; see docs/SECURITY.md), so this module must
//! never serve an image without checking it.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use espcam_proto::close::echo;
use espcam_proto::{OtaOffer, Sha256Digest};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::firmware::{Firmware, FirmwareError, FirmwareImage, MAX_IMAGE};
use crate::http::api::read_body;
use crate::http::error::ApiError;
use crate::http::view::find_camera;
use crate::state::Hub;
use crate::state::ota::OtaPhase;

/// Largest range one image request may ask for (the reference camera asks for 16 KiB).
const MAX_RANGE: u64 = 1024 * 1024;

fn library(f: Option<Extension<Firmware>>) -> Result<Firmware, ApiError> {
    f.map(|Extension(f)| f)
        .ok_or_else(|| ApiError::Unavailable("firmware updates are unavailable on this hub".into()))
}

fn lib_error(e: FirmwareError) -> ApiError {
    match e {
        FirmwareError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        FirmwareError::Io { .. } | FirmwareError::Index { .. } | FirmwareError::Random(_) => {
            ApiError::Internal(e.to_string())
        }
        _ => ApiError::BadRequest(e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FirmwareError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("firmware task failed: {e}")))?
        .map_err(lib_error)
}

/// `GET /api/firmware`.
pub(crate) async fn list(f: Option<Extension<Firmware>>) -> Result<Response, ApiError> {
    let lib = library(f)?;
    let all = blocking(move || lib.list()).await?;
    Ok(Json(all).into_response())
}

/// Query of `POST /api/firmware`.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    version: Option<String>,
    board: Option<String>,
}

/// `POST /api/firmware?version=V&board=B`: the body is the image, streamed to a temporary
/// file and hashed as it comes, refused past [`MAX_IMAGE`].
pub(crate) async fn upload(
    f: Option<Extension<Firmware>>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let lib = library(f)?;
    let mut staging = Some(blocking(move || lib.stage()).await?);
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        let mut s = staging
            .take()
            .ok_or_else(|| ApiError::Internal("upload state lost".into()))?;
        if s.size() + chunk.len() as u64 > MAX_IMAGE {
            return Err(ApiError::TooLarge(format!(
                "image over the limit of {MAX_IMAGE} bytes"
            )));
        }
        staging = Some(
            blocking(move || {
                s.write(&chunk)?;
                Ok(s)
            })
            .await?,
        );
    }
    let s = staging.ok_or_else(|| ApiError::Internal("upload state lost".into()))?;
    let image = blocking(move || s.finish(q.version, q.board)).await?;
    tracing::info!(
        "firmware {} added: {} for {}, {} bytes",
        image.id,
        crate::text::for_log(&image.version),
        image.board,
        image.size
    );
    let mut r = (StatusCode::CREATED, Json(image.clone())).into_response();
    r.extensions_mut().insert(crate::http::auth::AuditNote {
        target: Some(image.id.clone()),
        detail: format!("firmware {} for {}", image.version, image.board),
    });
    Ok(r)
}

/// Query of the image route.
#[derive(Debug, Deserialize)]
pub(crate) struct ImageQuery {
    key: Option<String>,
}

/// `GET /api/firmware/{id}/image?key=K`: the image, or the one `Range: bytes=A-B` of it.
pub(crate) async fn image(
    f: Option<Extension<Firmware>>,
    Path(id): Path<String>,
    Query(q): Query<ImageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lib = library(f)?;
    let key = q.key.unwrap_or_default();
    let not_found = || {
        ApiError::NotFound(format!(
            "no firmware download {:?} with this key (updates expire after an hour and when the hub restarts)",
            echo(&id, 20)
        ))
    };
    let (img, _camera) = {
        let (lib, id) = (lib.clone(), id.clone());
        tokio::task::spawn_blocking(move || lib.check_grant(&id, &key))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or_else(not_found)?
    };
    let size = u64::from(img.size);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => Some(parse_range(r, size)?),
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    if range.is_none() && size > MAX_RANGE * 16 {
        return Err(ApiError::BadRequest("ask for the image in ranges".into()));
    }
    let path = lib.image_path(&img);
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; (end + 1 - start) as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("reading firmware {}: {e}", img.id)))?;
    let mut r = Response::new(Body::from(bytes));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}

/// `bytes=A-B` (or `bytes=A-`) within an image of `size` bytes; the end is clamped to the
/// image, a start at or past it is refused (416 as a 400 with the reason).
fn parse_range(text: &str, size: u64) -> Result<(u64, u64), ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "range {:?} not understood: expected bytes=START-END within {size} bytes",
            echo(text, 40)
        ))
    };
    let spec = text.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = match b.trim() {
        "" => size.saturating_sub(1),
        b => b.parse().map_err(|_| bad())?,
    };
    if start >= size || end < start {
        return Err(bad());
    }
    let end = end.min(size - 1).min(start + MAX_RANGE - 1);
    Ok((start, end))
}

/// Body of `POST /api/cameras/{camera}/update`.
#[derive(Debug, Deserialize)]
struct UpdateBody {
    firmware: String,
}

/// Starts updating `camera` to `img`: checks it fits, grants the download, sends the offer.
fn start_update(
    hub: &Hub,
    lib: &Firmware,
    camera: &str,
    img: &FirmwareImage,
) -> Result<Value, ApiError> {
    let cam = find_camera(hub, camera)?;
    let info = cam.info();
    match info.board.as_deref() {
        None => {
            return Err(ApiError::BadRequest(format!(
                "camera {} reports no board: its firmware cannot be updated from the hub",
                cam.id
            )));
        }
        Some(b) if b != img.board => {
            return Err(ApiError::BadRequest(format!(
                "firmware {} is for board {}, camera {} is {}",
                img.id,
                img.board,
                cam.id,
                echo(b, 32)
            )));
        }
        Some(_) => {}
    }
    if let Some(o) = &info.ota
        && matches!(
            o.phase,
            OtaPhase::Offered | OtaPhase::Downloading | OtaPhase::Rebooting | OtaPhase::Confirming
        )
        && crate::state::clock::now_us() / 1000 < o.updated_ms + 120_000
    {
        return Err(ApiError::Command(crate::state::error::CommandError::Busy(
            cam.id.clone(),
        )));
    }
    let sha256 = Sha256Digest::parse(&img.sha256)
        .map_err(|e| ApiError::Internal(format!("firmware index: {e}")))?;
    let key = lib.grant(img, cam.id.as_str()).map_err(lib_error)?;
    let offer = OtaOffer {
        url: format!("/api/firmware/{}/image?key={key}", img.id),
        version: img.version.clone(),
        size: img.size,
        sha256,
        board: img.board.clone(),
    };
    let status = hub.send_ota(cam.id.as_str(), &img.id, offer)?;
    tracing::info!(
        "camera {}: firmware update to {} started",
        cam.id,
        crate::text::for_log(&img.version)
    );
    Ok(json!({ "camera": cam.id, "ota": status }))
}

async fn find_image(lib: &Firmware, id: &str) -> Result<FirmwareImage, ApiError> {
    let (l, i) = (lib.clone(), id.to_string());
    blocking(move || l.get(&i))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown firmware {:?}", echo(id, 20))))
}

/// `POST /api/cameras/{camera}/update` `{"firmware": ID}`: 202 with the update's status.
pub(crate) async fn update(
    State(hub): State<Hub>,
    f: Option<Extension<Firmware>>,
    Path(camera): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let lib = library(f)?;
    let body = read_body(body, 1024).await?;
    let req: UpdateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid body ({e}): expected {{\"firmware\":\"ID\"}} with an id from GET /api/firmware"
        ))
    })?;
    let img = find_image(&lib, &req.firmware).await?;
    let v = start_update(&hub, &lib, &camera, &img)?;
    let mut r = (StatusCode::ACCEPTED, Json(v)).into_response();
    r.extensions_mut().insert(crate::http::auth::AuditNote {
        target: None,
        detail: format!("firmware {} ({})", img.id, img.version),
    });
    Ok(r)
}

/// `POST /api/firmware/{id}/rollout`: updates every online camera of the image's board that
/// runs another version; 202 with what started and what was skipped, and why.
pub(crate) async fn rollout(
    State(hub): State<Hub>,
    f: Option<Extension<Firmware>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let lib = library(f)?;
    let img = find_image(&lib, &id).await?;
    let (mut started, mut skipped) = (Vec::new(), Vec::new());
    for cam in hub.cameras() {
        let info = cam.info();
        if info.board.as_deref() != Some(img.board.as_str()) {
            continue;
        }
        let reason = if !info.online {
            Some("offline".to_string())
        } else if info.firmware.as_deref() == Some(img.version.as_str()) {
            Some(format!("already runs {}", img.version))
        } else {
            match start_update(&hub, &lib, cam.id.as_str(), &img) {
                Ok(v) => {
                    started.push(v);
                    None
                }
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(reason) = reason {
            skipped.push(json!({ "camera": cam.id, "reason": reason }));
        }
    }
    let mut r = (
        StatusCode::ACCEPTED,
        Json(json!({ "firmware": img, "started": started, "skipped": skipped })),
    )
        .into_response();
    r.extensions_mut().insert(crate::http::auth::AuditNote {
        target: Some(img.id.clone()),
        detail: format!("rollout of {} to board {}", img.version, img.board),
    });
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000).unwrap(), (0, 99));
        assert_eq!(parse_range("bytes=900-2000", 1000).unwrap(), (900, 999));
        assert_eq!(parse_range("bytes=10-", 1000).unwrap(), (10, 999));
        assert!(parse_range("bytes=1000-1001", 1000).is_err());
        assert!(parse_range("items=0-1", 1000).is_err());
        assert!(parse_range("bytes=5-1", 1000).is_err());
    }
}

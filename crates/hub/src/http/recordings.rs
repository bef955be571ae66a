//! Recordings over HTTP: spans, modes and manual recording, export as AVI/MKV, and the
//! playback socket (recorded frames in the live viewer's message format, paced at 1×–8× or
//! as fast as the client reads, with seek; pinged, and closed with 1001 when nothing arrived
//! for the idle timeout, `net/liveness.rs`).
//!
//! Times in requests are RFC 3339 (`2026-12-01T21:00:00Z`) or Unix milliseconds. Every
//! library call blocks on disk, so it runs on `spawn_blocking`; an export streams from the
//! segment files chunk by chunk, never through a temporary copy.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use espcam_proto::CameraId;
use espcam_proto::close::echo;
use espcam_record::ExportFormat;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::revoke::CredentialWatch;
use crate::http::view::find_camera;
use crate::net::liveness::{Due, Liveness};
use crate::recorder::{Mode, Recorder};
use crate::state::Hub;
use crate::state::clock::now_us;

/// Largest body of `POST .../record`.
const MAX_BODY: usize = 1024;

fn recorder(r: Option<Extension<Recorder>>) -> Result<Recorder, ApiError> {
    r.map(|Extension(r)| r)
        .ok_or_else(|| ApiError::Unavailable("recording is unavailable on this hub".into()))
}

fn library(rec: &Recorder) -> Result<espcam_record::Recordings, ApiError> {
    rec.recordings().ok_or_else(|| {
        ApiError::Unavailable("recording has stopped: the hub is shutting down".into())
    })
}

/// Parses a time: Unix milliseconds (digits only) or RFC 3339. Returns µs since the epoch.
pub(crate) fn parse_time(name: &str, s: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "{name} {:?} is not a time: expected RFC 3339 (2026-12-01T21:00:00Z) or Unix milliseconds",
            echo(s, 40)
        ))
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1000))
            .ok_or_else(bad);
    }
    rfc3339_us(s).ok_or_else(bad)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → µs since the Unix epoch.
fn rfc3339_us(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        micros = digits.parse().ok()?;
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if *c == b'+' { o } else { -o }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    u64::try_from(secs.checked_mul(1_000_000)?.checked_add(micros)?).ok()
}

/// Query with a time range.
#[derive(Debug, Deserialize)]
pub(crate) struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    /// Timelapse only: playback rate of the export.
    fps: Option<u32>,
}

/// A [`RangeQuery`] from a raw query string (another node's request).
pub(crate) fn range_query(query: &str) -> Result<RangeQuery, ApiError> {
    format!("/?{query}")
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| Query::<RangeQuery>::try_from_uri(&u).ok())
        .map(|Query(q)| q)
        .ok_or_else(|| ApiError::BadRequest("expected from=, to= and format=".into()))
}

fn range(q: &RangeQuery, default_span_us: u64) -> Result<(u64, u64), ApiError> {
    let to = match q.to.as_deref() {
        Some(t) => parse_time("to", t)?,
        None => now_us() + 1,
    };
    let from = match q.from.as_deref() {
        Some(f) => parse_time("from", f)?,
        None => to.saturating_sub(default_span_us),
    };
    if from >= to {
        return Err(ApiError::BadRequest(format!(
            "from ({from} µs) must be before to ({to} µs)"
        )));
    }
    Ok((from, to))
}

pub(crate) fn camera_id(hub: &Hub, camera: &str) -> Result<CameraId, ApiError> {
    // Recordings outlive a camera's entry in the registry: a valid id is enough.
    match find_camera(hub, camera) {
        Ok(c) => Ok(c.id.clone()),
        Err(e) => CameraId::new(camera).map_err(|_| e),
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("recording task failed: {e}")))?
}

/// `GET /api/cameras/{camera}/recordings?from=&to=`: recorded spans (merged across
/// segments), the camera's motion events in the range (the timeline's markers, as
/// `GET /api/events` shows them; none without motion detection), the camera's recording
/// state and storage. Default range: the last 24 h.
pub(crate) async fn list(
    State(hub): State<Hub>,
    rec: Option<Extension<Recorder>>,
    motion: Option<Extension<crate::motion::Motion>>,
    Path(camera): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    let rec = recorder(rec)?;
    let id = camera_id(&hub, &camera)?;
    let (from, to) = range(&q, 24 * 3600 * 1_000_000)?;
    let state = rec.camera(&id);
    let r = library(&rec)?;
    let cam = id.clone();
    let (spans, usage) = blocking(move || {
        let spans = r
            .spans(&cam, from, to)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let usage = r
            .usage()
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .into_iter()
            .find(|u| u.camera == cam);
        Ok((spans, usage))
    })
    .await?;
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| json!({"start_us": s.start_us, "end_us": s.end_us, "frames": s.frames}))
        .collect();
    let events = crate::http::events::in_range(motion, &id, from, to).await?;
    Ok(Json(json!({
        "camera": id,
        "from_us": from,
        "to_us": to,
        "state": state,
        "spans": spans,
        "events": events,
        "usage": usage.map(|u| json!({"segments": u.segments, "frames": u.frames, "bytes": u.bytes, "oldest_us": u.oldest_us, "newest_us": u.newest_us})),
    })))
}

/// Body of `POST /api/cameras/{camera}/record`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordBody {
    recording: Option<bool>,
    mode: Option<String>,
}

/// `POST /api/cameras/{camera}/record` with `{"recording": true|false}` (manual recording)
/// and/or `{"mode": "off"|"continuous"|"events"}`.
pub(crate) async fn post_record(
    State(hub): State<Hub>,
    rec: Option<Extension<Recorder>>,
    Path(camera): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let rec = recorder(rec)?;
    let cam = find_camera(&hub, &camera)?;
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge(format!(
            "request body over {MAX_BODY} bytes"
        )));
    }
    let b: RecordBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"recording\": true|false}} and/or {{\"mode\": \"off\"|\"continuous\"|\"events\"}}: {e}"
        ))
    })?;
    if b.recording.is_none() && b.mode.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to do: give \"recording\" (true/false) or \"mode\"".into(),
        ));
    }
    if let Some(m) = &b.mode {
        let mode: Mode = m.parse().map_err(ApiError::BadRequest)?;
        rec.set_mode(&cam.id, mode);
    }
    if let Some(on) = b.recording {
        rec.set_manual(&cam.id, on);
    }
    Ok(Json(
        json!({ "camera": cam.id, "state": rec.camera(&cam.id) }),
    ))
}

/// `GET /api/recordings`: storage per camera, disk free, recorder counters.
pub(crate) async fn overview(rec: Option<Extension<Recorder>>) -> Result<Json<Value>, ApiError> {
    let rec = recorder(rec)?;
    let r = library(&rec)?;
    let (usage, free) = blocking(move || {
        let usage = r.usage().map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok((usage, r.disk_free().ok()))
    })
    .await?;
    let m = library(&rec)?.metrics();
    let cameras: Vec<Value> = usage
        .iter()
        .map(|u| json!({"camera": u.camera, "segments": u.segments, "frames": u.frames, "bytes": u.bytes, "oldest_us": u.oldest_us, "newest_us": u.newest_us}))
        .collect();
    Ok(Json(json!({
        "cameras": cameras,
        "bytes": usage.iter().map(|u| u.bytes).sum::<u64>(),
        "disk_free_bytes": free,
        "frames_recorded": m.frames,
        "frames_missed": m.frames_missed,
        "fsyncs": m.fsyncs,
        "write_errors": m.write_errors,
    })))
}

/// `GET /api/cameras/{camera}/export?from=&to=&format=avi|mkv`: a standard file built on
/// the fly from the segments. A resolution change inside the range: the file holds the
/// first run of frames of one size, and `X-Espcam-Parts` lists every run (`from-to` µs) so
/// the client can fetch the others.
pub(crate) async fn export(
    State(hub): State<Hub>,
    rec: Option<Extension<Recorder>>,
    Path(camera): Path<String>,
    Query(q): Query<RangeQuery>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let rec = recorder(rec)?;
    let id = camera_id(&hub, &camera)?;
    export_of(rec, id, &q, None, caller.as_deref()).await
}

/// `GET /api/cameras/{camera}/timelapse?from=&to=&fps=&format=`: the camera's timelapse
/// track (one frame kept every `[motion] timelapse_every_s`) as AVI/MKV played at `fps`
/// (1..=60, default 10). Default range: the last 24 h.
pub(crate) async fn timelapse(
    State(hub): State<Hub>,
    rec: Option<Extension<Recorder>>,
    Path(camera): Path<String>,
    Query(mut q): Query<RangeQuery>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let rec = recorder(rec)?;
    let id = camera_id(&hub, &camera)?;
    let fps = q.fps.unwrap_or(10);
    if !(1..=60).contains(&fps) {
        return Err(ApiError::BadRequest(format!(
            "fps {fps} out of range 1..=60"
        )));
    }
    let tl = crate::timelapse::track_id(&id).ok_or_else(|| {
        ApiError::NotFound(format!("camera id {id} is too long for a timelapse track"))
    })?;
    if q.from.is_none() {
        let to = match q.to.as_deref() {
            Some(t) => parse_time("to", t)?,
            None => now_us() + 1,
        };
        q.from = Some((to.saturating_sub(24 * 3600 * 1_000_000) / 1000).to_string());
    }
    export_of(rec, tl, &q, Some(fps), caller.as_deref()).await
}

/// Plans an export of `id` in `q`'s range (the file's layout; no frame read yet).
pub(crate) async fn plan_export(
    rec: &Recorder,
    id: &CameraId,
    q: &RangeQuery,
    fps: Option<u32>,
) -> Result<(espcam_record::Export, ExportFormat), ApiError> {
    let format = match q.format.as_deref() {
        None => ExportFormat::Mkv,
        Some(f) => ExportFormat::from_name(f).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "format {:?} is invalid: expected avi or mkv",
                echo(f, 20)
            ))
        })?,
    };
    let (from, to) = range(q, 3600 * 1_000_000)?;
    let r = library(rec)?;
    let cam = id.clone();
    let exp = blocking(move || {
        r.export_at(&cam, from, to, format, fps)
            .map_err(|e| match e {
                espcam_record::ExportError::NoFrames => ApiError::NotFound(e.to_string()),
                espcam_record::ExportError::BadRange { .. }
                | espcam_record::ExportError::TooManyFrames(_)
                | espcam_record::ExportError::TooLargeForAvi(_) => {
                    ApiError::BadRequest(e.to_string())
                }
                other => ApiError::Internal(other.to_string()),
            })
    })
    .await?;
    Ok((exp, format))
}

/// The `X-Espcam-Parts` header of an export: every run of one size, `from-to` µs.
pub(crate) fn parts_header(exp: &espcam_record::Export) -> String {
    let parts: Vec<String> = exp
        .parts()
        .iter()
        .map(|p| format!("{}-{}", p.from_us, p.to_us))
        .collect();
    parts.join(",")
}

/// An export's response headers: type, exact length, download name, parts.
pub(crate) fn export_headers(
    resp: &mut Response,
    content_type: &str,
    len: u64,
    name: &str,
    parts: &str,
) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(parts) {
        h.insert("x-espcam-parts", v);
    }
}

/// The export and timelapse downloads: the file streamed as it is built. The body fails
/// (hyper then drops the connection, so the client sees a cut-off download, never a
/// complete-looking one) when the credential it was requested with ends (`revoke.rs`), like
/// the other streams: a long download does not outlive a revoked token or a logout.
async fn export_of(
    rec: Recorder,
    id: CameraId,
    q: &RangeQuery,
    fps: Option<u32>,
    caller: Option<&Caller>,
) -> Result<Response, ApiError> {
    let (mut exp, format) = plan_export(&rec, &id, q, fps).await?;
    let len = exp.len();
    let name = exp.file_name(&id);
    let parts = parts_header(&exp);
    // Stream chunk by chunk from a blocking task through a small channel.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let chunk = exp.next_chunk();
            let done = !matches!(chunk, Ok(Some(_)));
            let item = match chunk {
                Ok(Some(c)) => Ok(c),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if tx.blocking_send(item).is_err() || done {
                break;
            }
        }
    });
    // Dropping `rx` (the body failed or the client left) stops the exporter at its next
    // chunk.
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let stream = until_revoked(Box::pin(stream), caller);
    let mut resp = Body::from_stream(stream).into_response();
    export_headers(&mut resp, format.content_type(), len, &name, &parts);
    Ok(resp)
}

/// `stream`, failing with the reason once the credential of `caller` ends: a download (local
/// or through another node) does not outlive a revoked token or a logout.
pub(crate) fn until_revoked<T, S>(
    stream: S,
    caller: Option<&Caller>,
) -> impl futures_util::Stream<Item = std::io::Result<T>> + Send + 'static
where
    S: futures_util::Stream<Item = std::io::Result<T>> + Send + Unpin + 'static,
    T: Send + 'static,
{
    use futures_util::StreamExt;
    let watch = CredentialWatch::start(caller, espcam_auth::Action::Recordings);
    futures_util::stream::unfold(Some((stream, watch)), |state| async move {
        let (mut stream, mut watch) = state?;
        tokio::select! {
            biased;
            why = watch.ended() => {
                let e = std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
                Some((Err(e), None))
            }
            item = stream.next() => item.map(|i| (i, Some((stream, watch)))),
        }
    })
}

/// Query of the playback socket.
#[derive(Debug, Deserialize)]
pub(crate) struct PlaybackQuery {
    pub(crate) from: Option<String>,
    pub(crate) speed: Option<String>,
    pub(crate) meta: Option<String>,
}

impl PlaybackQuery {
    /// `from` (default: a minute ago, µs), the speed and whether to send metadata.
    pub(crate) fn read(&self) -> Result<(u64, Speed, bool), ApiError> {
        let from = match self.from.as_deref() {
            Some(f) => parse_time("from", f)?,
            None => now_us().saturating_sub(60_000_000),
        };
        let speed =
            parse_speed(self.speed.as_deref().unwrap_or("1")).map_err(ApiError::BadRequest)?;
        let meta = matches!(self.meta.as_deref(), Some("1" | "true"));
        Ok((from, speed, meta))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Speed {
    Times(f64),
    /// As fast as the client reads.
    Max,
}

pub(crate) fn parse_speed(s: &str) -> Result<Speed, String> {
    match s {
        "1" => Ok(Speed::Times(1.0)),
        "2" => Ok(Speed::Times(2.0)),
        "4" => Ok(Speed::Times(4.0)),
        "8" => Ok(Speed::Times(8.0)),
        "max" => Ok(Speed::Max),
        other => Err(format!(
            "speed {:?} is invalid: expected 1, 2, 4, 8 or max",
            echo(other, 20)
        )),
    }
}

/// `GET /ws/playback/{camera}?from=&speed=1|2|4|8|max&meta=1`: recorded frames as binary
/// messages (a bare JPEG each, like `/ws/view`), with `?meta=1` a JSON text message before
/// each (`{"type":"frame","captured_us","received_us","width","height","bytes"}`). The client
/// may send `{"seek": TIME}` and `{"speed": "2"}`. At the end of what is recorded the hub
/// sends `{"type":"end","received_us":…}` once and then follows new frames as they become
/// durable.
pub(crate) async fn playback_ws(
    State(hub): State<Hub>,
    rec: Option<Extension<Recorder>>,
    Path(camera): Path<String>,
    Query(q): Query<PlaybackQuery>,
    caller: Option<Extension<Caller>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let rec = recorder(rec)?;
    let id = camera_id(&hub, &camera)?;
    let (from, speed, meta) = q.read()?;
    let source = Source::local(rec, id, from).await?;
    Ok(serve_playback(
        &hub,
        ws,
        source,
        speed,
        meta,
        caller.as_deref(),
    ))
}

/// A recorded frame to play.
#[derive(Debug, Clone)]
pub(crate) struct PlayFrame {
    pub(crate) jpeg: axum::body::Bytes,
    pub(crate) received_us: u64,
    pub(crate) captured_us: Option<u64>,
    pub(crate) width: u16,
    pub(crate) height: u16,
}

/// Where a playback socket's frames come from: this hub's recordings, or another node's
/// pulled in batches through the cluster.
#[derive(Debug)]
pub(crate) enum Source {
    /// This hub's recordings.
    Local {
        rec: Recorder,
        camera: CameraId,
        cursor: Option<espcam_record::Cursor>,
    },
    /// Another node's.
    Remote(crate::http::node_recordings::RemoteFrames),
}

impl Source {
    /// This hub's recordings of `camera`, positioned at `from`.
    pub(crate) async fn local(
        rec: Recorder,
        camera: CameraId,
        from: u64,
    ) -> Result<Self, ApiError> {
        let cursor = local_cursor(&rec, &camera, from).await?;
        Ok(Self::Local {
            rec,
            camera,
            cursor: Some(cursor),
        })
    }

    /// The next frame; `None` at the end of what is recorded now.
    async fn next(&mut self) -> Result<Option<PlayFrame>, String> {
        match self {
            Self::Local { cursor, .. } => {
                let Some(mut c) = cursor.take() else {
                    return Err("the recordings are no longer readable".into());
                };
                let (c, f) = tokio::task::spawn_blocking(move || {
                    let f = c.next_frame();
                    (c, f)
                })
                .await
                .map_err(|e| format!("recording task failed: {e}"))?;
                *cursor = Some(c);
                let f = f.map_err(|e| e.to_string())?;
                Ok(f.map(|f| PlayFrame {
                    jpeg: f.jpeg.into(),
                    received_us: f.received_us,
                    captured_us: f.captured_us,
                    width: f.width,
                    height: f.height,
                }))
            }
            Self::Remote(r) => r.next().await,
        }
    }

    /// Moves to the frame at or before `t_us`. `false` when the recordings are gone.
    async fn seek(&mut self, t_us: u64) -> bool {
        match self {
            Self::Local {
                rec,
                camera,
                cursor,
            } => match local_cursor(rec, camera, t_us).await {
                Ok(c) => {
                    *cursor = Some(c);
                    true
                }
                Err(_) => false,
            },
            Self::Remote(r) => {
                r.seek(t_us);
                true
            }
        }
    }
}

async fn local_cursor(
    rec: &Recorder,
    camera: &CameraId,
    t_us: u64,
) -> Result<espcam_record::Cursor, ApiError> {
    let r = library(rec)?;
    let cam = camera.clone();
    blocking(move || {
        let mut c = r.cursor(&cam);
        let _ = c.seek(t_us);
        Ok(c)
    })
    .await
}

/// Upgrades to the playback socket over `source` (the auth guard has checked `Origin` and
/// the credential; the socket ends when that credential does, and is pinged and closed with
/// 1001 when the client goes silent).
pub(crate) fn serve_playback(
    hub: &Hub,
    ws: WebSocketUpgrade,
    source: Source,
    speed: Speed,
    meta: bool,
    caller: Option<&Caller>,
) -> Response {
    let stop = hub.shutdown_signal();
    let live = Liveness::new(hub.config().ping_interval, hub.config().idle_timeout);
    let mut watch = CredentialWatch::start(caller, espcam_auth::Action::Recordings);
    ws.max_message_size(espcam_proto::control::MAX_CONTROL_MESSAGE)
        .on_upgrade(move |mut socket| async move {
            let mut p = Playback {
                socket: &mut socket,
                source,
                speed,
                base: None,
                live,
            };
            // Ends when the credential it was opened with does.
            let (code, why) = tokio::select! {
                end = p.run(meta, stop) => match end {
                    Some(close) => close,
                    None => return,
                },
                why = watch.ended() => (espcam_proto::close::POLICY, why),
            };
            crate::net::ws::close(&mut socket, code, &why).await;
        })
}

/// One playback socket.
struct Playback<'a> {
    socket: &'a mut WebSocket,
    source: Source,
    speed: Speed,
    /// Pacing: recorded time `.0` was shown at wall time `.1`.
    base: Option<(u64, tokio::time::Instant)>,
    live: Liveness,
}

/// What a client message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// The client closed or the socket failed.
    Gone,
    /// Nothing that changes what comes next (a pong, an unknown message).
    Same,
    /// A seek or a new speed: the frame in hand is stale.
    Moved,
}

impl Playback<'_> {
    /// Streams until the client leaves or the hub stops (`None`), or until the socket must
    /// be closed with the returned code and reason (the client went silent).
    async fn run(
        &mut self,
        meta: bool,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<(u16, String)> {
        let mut at_end = false;
        loop {
            // What the client sent meanwhile: at full speed the loop below never waits, so
            // its pongs (and seeks) are read here.
            while let Some(msg) = self.socket.recv().now_or_never() {
                if self.client(msg).await == Client::Gone {
                    return None;
                }
            }
            if let Some(due) = self.live.now()
                && let Err(end) = self.on_due(due).await
            {
                return end;
            }
            let frame = tokio::select! {
                _ = stop.changed() => return None,
                f = self.source.next() => f,
            };
            let frame = match frame {
                Ok(Some(f)) => {
                    at_end = false;
                    f
                }
                Ok(None) => {
                    if !at_end {
                        at_end = true;
                        let end = json!({"type": "end", "received_us": now_us()}).to_string();
                        self.socket.send(Message::Text(end.into())).await.ok()?;
                    }
                    // Wait for newer durable frames, or a seek.
                    tokio::select! {
                        _ = stop.changed() => return None,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                        msg = self.socket.recv() => {
                            if self.client(msg).await == Client::Gone {
                                return None;
                            }
                        }
                    }
                    continue;
                }
                Err(e) => {
                    let err = json!({"type": "error", "message": e}).to_string();
                    let _ = self.socket.send(Message::Text(err.into())).await;
                    return None;
                }
            };
            if let Speed::Times(x) = self.speed {
                let (rec0, wall0) = *self
                    .base
                    .get_or_insert((frame.received_us, tokio::time::Instant::now()));
                let due = wall0
                    + Duration::from_micros(
                        (frame.received_us.saturating_sub(rec0) as f64 / x) as u64,
                    );
                let wait = tokio::time::sleep_until(due);
                tokio::pin!(wait);
                let moved = loop {
                    tokio::select! {
                        _ = stop.changed() => return None,
                        () = &mut wait => break false,
                        due = self.live.due() => {
                            if let Err(end) = self.on_due(due).await {
                                return end;
                            }
                        }
                        msg = self.socket.recv() => match self.client(msg).await {
                            Client::Gone => return None,
                            Client::Same => {}
                            Client::Moved => break true,
                        },
                    }
                };
                if moved {
                    continue;
                }
            }
            if meta {
                let m = json!({
                    "type": "frame",
                    "captured_us": frame.captured_us,
                    "received_us": frame.received_us,
                    "width": frame.width,
                    "height": frame.height,
                    "bytes": frame.jpeg.len(),
                })
                .to_string();
                self.socket.send(Message::Text(m.into())).await.ok()?;
            }
            self.socket.send(Message::Binary(frame.jpeg)).await.ok()?;
        }
    }

    /// Acts on a liveness verdict: sends the ping that is due, or gives the close for a
    /// silent client. `Err(None)`: the ping could not be sent, the socket is done.
    async fn on_due(&mut self, due: Due) -> Result<(), Option<(u16, String)>> {
        match due {
            Due::Ping => self
                .socket
                .send(Message::Ping(Default::default()))
                .await
                .map_err(|_| None),
            Due::Silent => {
                tracing::debug!("playback socket closed: {}", self.live.reason());
                Err(Some((espcam_proto::close::IDLE, self.live.reason())))
            }
        }
    }

    /// Handles one client message (a seek, a speed, a pong).
    async fn client(&mut self, msg: Option<Result<Message, axum::Error>>) -> Client {
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Client::Gone,
            Some(Ok(_)) => {
                self.live.heard();
                return Client::Same;
            }
        };
        self.live.heard();
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            return Client::Same;
        };
        let mut moved = Client::Same;
        if let Some(s) = v.get("speed").and_then(|s| {
            s.as_str()
                .map(str::to_string)
                .or_else(|| s.as_u64().map(|n| n.to_string()))
        }) && let Ok(sp) = parse_speed(&s)
        {
            self.speed = sp;
            self.base = None;
            moved = Client::Moved;
        }
        let seek = v.get("seek").and_then(|t| {
            t.as_u64()
                .and_then(|ms| ms.checked_mul(1000))
                .or_else(|| t.as_str().and_then(|s| parse_time("seek", s).ok()))
        });
        if let Some(t) = seek {
            if !self.source.seek(t).await {
                return Client::Gone;
            }
            self.base = None;
            moved = Client::Moved;
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_unix_ms() {
        assert_eq!(
            parse_time("t", "1764622800000").unwrap(),
            1_764_622_800_000_000
        );
        assert_eq!(
            rfc3339_us("2026-12-01T21:00:00Z"),
            Some(1_796_158_800_000_000)
        );
        assert_eq!(
            rfc3339_us("2026-12-01T22:00:00.5+01:00"),
            Some(1_796_158_800_500_000)
        );
        assert_eq!(rfc3339_us("1970-01-01T00:00:00Z"), Some(0));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-01T00:00:00",
            "12:00",
        ] {
            assert!(parse_time("from", bad).is_err(), "{bad}");
        }
        let e = parse_time("from", "soon").unwrap_err().to_string();
        assert!(e.contains("from \"soon\" is not a time"), "{e}");
    }
}

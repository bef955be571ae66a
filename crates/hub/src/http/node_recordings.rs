//! Recordings of other nodes of a cluster, served through this hub.
//!
//! Recordings stay on the node that made them. This module lets a client of any hub list a
//! node's spans of a camera (`GET /api/nodes/{node}/cameras/{camera}/recordings`), download
//! an export (`GET /api/nodes/{node}/cameras/{camera}/export`) and play them back
//! (`GET /ws/nodes/{node}/playback/{camera}`), each answering exactly as the local route
//! does. It knows nothing of NATS: it asks through the [`Nodes`] extension, and answers
//! other nodes' requests ([`LocalRecordings`]) with this hub's own handlers.
//!
//! Nothing large is held in memory on either side: an export crosses as chunks of at most
//! [`MAX_CHUNK`] bytes, each read only when the HTTP body wants the next one (the holding
//! node keeps the export open as a session, reaped after [`SESSION_IDLE`]); playback pulls
//! at most [`MAX_BATCH_FRAMES`] frames at a time and paces them here. A node that stops
//! answering mid-export ends the HTTP body with an error (the client sees a short file);
//! mid-playback the socket sends `{"type":"error"}` and closes. It must never ask another
//! node on behalf of a request that came from a node (no loops: [`LocalRecordings`] uses
//! only this hub's files).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use espcam_proto::CameraId;
use serde_json::Value;
use tracing::warn;

use crate::http::error::ApiError;
use crate::http::nodes::Nodes;
use crate::http::recordings::{self, PlayFrame, PlaybackQuery, Source};
use crate::recorder::Recorder;
use crate::state::Hub;
use crate::state::node_recordings::{
    BatchFrame, BodyKind, ExportOpened, FrameBatch, MAX_BATCH_FRAMES, MAX_CHUNK, RecordingAnswer,
    RecordingRequest, RecordingService,
};
use crate::state::nodes::MAX_QUERY;

/// An export session the asking node stopped reading is dropped after this long.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(60);
/// Exports a node serves to other nodes at once.
const MAX_SESSIONS: usize = 8;
/// Largest local JSON answer turned into a [`RecordingAnswer`].
const MAX_JSON: usize = 4 << 20;

fn not_clustered() -> ApiError {
    ApiError::NotFound("this hub is not in cluster mode (espcam serve --cluster)".into())
}

/// The query to forward: at most [`MAX_QUERY`] bytes, without `token=` (a credential for
/// this hub, never sent on to another).
fn checked_query(query: Option<String>) -> Result<String, ApiError> {
    let query = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("token"))
        .collect::<Vec<_>>()
        .join("&");
    if query.len() > MAX_QUERY {
        return Err(ApiError::BadRequest(format!(
            "query of {} bytes: at most {MAX_QUERY}",
            query.len()
        )));
    }
    Ok(query)
}

/// A camera id as a client gave it: 404 when no camera can have it (as the local routes).
fn valid_camera(camera: &str) -> Result<(), ApiError> {
    CameraId::new(camera).map(|_| ()).map_err(|e| {
        ApiError::NotFound(format!(
            "no camera {:?}: {e}",
            espcam_proto::close::echo(camera, 40)
        ))
    })
}

/// A node's JSON answer as this hub's response (`node` added to a successful object).
fn respond_json(node: &str, a: &RecordingAnswer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if a.kind != BodyKind::Json {
        return error_response(
            StatusCode::BAD_GATEWAY,
            &format!("node {node} sent an unexpected answer"),
        );
    }
    let mut v: Value = serde_json::from_slice(&a.body).unwrap_or_else(
        |_| serde_json::json!({ "error": format!("node {node} sent an unreadable answer") }),
    );
    if status.is_success()
        && let Value::Object(m) = &mut v
    {
        m.insert("node".into(), Value::String(node.into()));
    }
    (status, axum::Json(v)).into_response()
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The message of a node's JSON error answer.
fn message_of(a: &RecordingAnswer) -> String {
    serde_json::from_slice::<Value>(&a.body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("answer {} without an error message", a.status))
}

/// `GET /api/nodes`: `{"node": this hub's name, "nodes": [every node seen, sorted]}`, the
/// places a camera's recordings may be (each node that held it keeps its own). Without
/// cluster mode `{"node": null, "nodes": []}` (the dashboard asks on every camera page).
pub(crate) async fn nodes(nodes: Option<Extension<Nodes>>) -> axum::Json<Value> {
    axum::Json(match nodes {
        Some(Extension(nodes)) => serde_json::json!({
            "node": nodes.0.this_node(),
            "nodes": nodes.0.known_nodes(),
        }),
        None => serde_json::json!({ "node": null, "nodes": [] }),
    })
}

/// `GET /api/nodes/{node}/cameras/{camera}/recordings?from=&to=`: that node's recorded
/// spans of the camera, as its `GET /api/cameras/{camera}/recordings` answers, plus `node`.
pub(crate) async fn list(
    State(hub): State<Hub>,
    nodes: Option<Extension<Nodes>>,
    rec: Option<Extension<Recorder>>,
    motion: Option<Extension<crate::motion::Motion>>,
    Path((node, camera)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Some(Extension(nodes)) = nodes else {
        return Err(not_clustered());
    };
    let query = checked_query(query)?;
    valid_camera(&camera)?;
    if node == nodes.0.this_node() {
        let q = recordings::range_query(&query)?;
        let mut r = recordings::list(State(hub), rec, motion, Path(camera), Query(q))
            .await?
            .0;
        if let Value::Object(m) = &mut r {
            m.insert("node".into(), Value::String(node));
        }
        return Ok(axum::Json(r).into_response());
    }
    let a = nodes
        .0
        .ask_recordings(&node, RecordingRequest::Spans { camera, query })
        .await;
    Ok(respond_json(&node, &a))
}

/// `GET /api/nodes/{node}/cameras/{camera}/export?from=&to=&format=avi|mkv`: that node's
/// export, streamed through this hub chunk by chunk (same headers as the local export).
pub(crate) async fn export(
    State(hub): State<Hub>,
    nodes: Option<Extension<Nodes>>,
    rec: Option<Extension<Recorder>>,
    Path((node, camera)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    caller: Option<Extension<crate::http::auth::Caller>>,
) -> Result<Response, ApiError> {
    let Some(Extension(nodes)) = nodes else {
        return Err(not_clustered());
    };
    let query = checked_query(query)?;
    valid_camera(&camera)?;
    if node == nodes.0.this_node() {
        let q = recordings::range_query(&query)?;
        return recordings::export(State(hub), rec, Path(camera), Query(q), caller).await;
    }
    let a = nodes
        .0
        .ask_recordings(&node, RecordingRequest::ExportOpen { camera, query })
        .await;
    if a.status != 200 {
        return Ok(respond_json(&node, &a));
    }
    let Ok(opened) = serde_json::from_slice::<ExportOpened>(&a.body) else {
        return Ok(error_response(
            StatusCode::BAD_GATEWAY,
            &format!("node {node} sent an unreadable export"),
        ));
    };
    let reader = RemoteExport {
        nodes,
        node,
        session: opened.session,
        offset: 0,
        len: opened.len,
        done: false,
    };
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        r.next_chunk().await.map(|item| (item, r))
    });
    let stream = recordings::until_revoked(Box::pin(stream), caller.as_deref());
    let mut resp = Body::from_stream(stream).into_response();
    recordings::export_headers(
        &mut resp,
        &opened.content_type,
        opened.len,
        &opened.file_name,
        &opened.parts,
    );
    Ok(resp)
}

/// Reads an export session on another node, one chunk per call.
#[derive(Debug)]
struct RemoteExport {
    nodes: Nodes,
    node: String,
    session: u64,
    offset: u64,
    len: u64,
    done: bool,
}

impl RemoteExport {
    /// The next chunk, an error (then the end), or `None` once every byte came.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.done {
            return None;
        }
        if self.offset >= self.len {
            self.done = true;
            return None;
        }
        let a = self
            .nodes
            .0
            .ask_recordings(
                &self.node,
                RecordingRequest::ExportRead {
                    session: self.session,
                    offset: self.offset,
                    max: MAX_CHUNK as u32,
                },
            )
            .await;
        let left = self.len - self.offset;
        let failed = if a.status != 200 {
            Some(message_of(&a))
        } else if a.kind != BodyKind::Bytes || a.body.is_empty() {
            Some("an answer that is not the export's bytes".into())
        } else if a.body.len() as u64 > left {
            Some(format!("{} bytes where {left} were left", a.body.len()))
        } else {
            None
        };
        if let Some(why) = failed {
            // The session is gone, or the node is: nothing to close.
            self.done = true;
            warn!(
                "export from node {} ended after {} of {} bytes: {}",
                crate::text::for_log(&self.node),
                self.offset,
                self.len,
                crate::text::for_log(&why)
            );
            return Some(Err(std::io::Error::other(format!(
                "node {} stopped the export after {} of {} bytes: {why}",
                self.node, self.offset, self.len
            ))));
        }
        self.offset += a.body.len() as u64;
        Some(Ok(a.body))
    }
}

impl Drop for RemoteExport {
    fn drop(&mut self) {
        // The client went away before the end: let the holding node close the session now
        // rather than after SESSION_IDLE.
        if self.done || self.offset >= self.len {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (nodes, node, session) = (self.nodes.clone(), self.node.clone(), self.session);
        rt.spawn(async move {
            nodes
                .0
                .ask_recordings(&node, RecordingRequest::ExportClose { session })
                .await;
        });
    }
}

/// `GET /ws/nodes/{node}/playback/{camera}?from=&speed=&meta=`: the playback socket over
/// that node's recordings (same messages, speeds and seek as `/ws/playback/{camera}`).
/// The first batch is asked before the upgrade, so an unknown or unreachable node is an
/// HTTP error (404, 503, 504), not a socket that closes at once.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn playback_ws(
    State(hub): State<Hub>,
    nodes: Option<Extension<Nodes>>,
    rec: Option<Extension<Recorder>>,
    Path((node, camera)): Path<(String, String)>,
    Query(q): Query<PlaybackQuery>,
    caller: Option<Extension<crate::http::auth::Caller>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Some(Extension(nodes)) = nodes else {
        return Err(not_clustered());
    };
    valid_camera(&camera)?;
    let (from, speed, meta) = q.read()?;
    let source = if node == nodes.0.this_node() {
        let rec = rec
            .map(|Extension(r)| r)
            .ok_or_else(|| ApiError::Unavailable("recording is unavailable on this hub".into()))?;
        let id = recordings::camera_id(&hub, &camera)?;
        Source::local(rec, id, from).await?
    } else {
        let mut r = RemoteFrames::new(nodes, node.clone(), camera, from);
        if let Err(a) = r.fill().await {
            return Ok(respond_json(&node, &a));
        }
        Source::Remote(r)
    };
    Ok(recordings::serve_playback(
        &hub,
        ws,
        source,
        speed,
        meta,
        caller.as_deref(),
    ))
}

/// Another node's recorded frames, pulled in batches by time cursor.
#[derive(Debug)]
pub(crate) struct RemoteFrames {
    nodes: Nodes,
    node: String,
    camera: String,
    at_us: u64,
    after: bool,
    buf: VecDeque<PlayFrame>,
}

impl RemoteFrames {
    fn new(nodes: Nodes, node: String, camera: String, from: u64) -> Self {
        Self {
            nodes,
            node,
            camera,
            at_us: from,
            after: false,
            buf: VecDeque::new(),
        }
    }

    /// Asks for the next batch; the node's error answer when it fails.
    async fn fill(&mut self) -> Result<(), RecordingAnswer> {
        let a = self
            .nodes
            .0
            .ask_recordings(
                &self.node,
                RecordingRequest::Frames {
                    camera: self.camera.clone(),
                    at_us: self.at_us,
                    after: self.after,
                    max_frames: MAX_BATCH_FRAMES,
                    max_bytes: MAX_CHUNK as u32 * 2,
                },
            )
            .await;
        if a.status != 200 || a.kind != BodyKind::Frames {
            return Err(a);
        }
        let batch = FrameBatch::decode(a.body.clone()).map_err(|e| RecordingAnswer {
            status: 502,
            kind: BodyKind::Json,
            body: serde_json::json!({ "error": format!("node {}: {e}", self.node) })
                .to_string()
                .into(),
        })?;
        if let Some(last) = batch.frames.last() {
            self.at_us = last.received_us;
            self.after = true;
        }
        self.buf.extend(batch.frames.into_iter().map(|f| PlayFrame {
            jpeg: f.jpeg,
            received_us: f.received_us,
            captured_us: f.captured_us,
            width: f.width,
            height: f.height,
        }));
        Ok(())
    }

    /// The next frame; `None` at the end of what that node has recorded now.
    pub(crate) async fn next(&mut self) -> Result<Option<PlayFrame>, String> {
        if self.buf.is_empty() {
            self.fill().await.map_err(|a| message_of(&a))?;
        }
        Ok(self.buf.pop_front())
    }

    /// Moves to the frame at or before `t_us`.
    pub(crate) fn seek(&mut self, t_us: u64) {
        self.buf.clear();
        self.at_us = t_us;
        self.after = false;
    }
}

/// Answers other nodes' recording requests with this hub's own recordings.
#[derive(Debug)]
pub(crate) struct LocalRecordings {
    hub: Hub,
    recorder: Option<Recorder>,
    motion: Option<crate::motion::Motion>,
    exports: std::sync::Arc<Mutex<Sessions>>,
}

#[derive(Debug, Default)]
struct Sessions {
    next: u64,
    open: HashMap<u64, Session>,
}

#[derive(Debug)]
struct Session {
    /// `None` while a read is under way.
    export: Option<Box<Reading>>,
    used: Instant,
}

/// An export being read, with the part of a chunk that did not fit the last answer.
#[derive(Debug)]
struct Reading {
    export: espcam_record::Export,
    sent: u64,
    carry: Vec<u8>,
}

impl LocalRecordings {
    pub(crate) fn new(
        hub: Hub,
        recorder: Option<Recorder>,
        motion: Option<crate::motion::Motion>,
    ) -> Self {
        let first = crate::state::clock::now_us();
        Self {
            hub,
            recorder,
            motion,
            exports: std::sync::Arc::new(Mutex::new(Sessions {
                next: first,
                open: HashMap::new(),
            })),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.exports.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn answer(&self, request: RecordingRequest, max_body: usize) -> RecordingAnswer {
        match self.try_answer(request, max_body).await {
            Ok(a) => a,
            Err(e) => from_response(e.into_response()).await,
        }
    }

    fn recorder(&self) -> Result<Recorder, ApiError> {
        self.recorder
            .clone()
            .ok_or_else(|| ApiError::Unavailable("recording is unavailable on that node".into()))
    }

    async fn try_answer(
        &self,
        request: RecordingRequest,
        max_body: usize,
    ) -> Result<RecordingAnswer, ApiError> {
        match request {
            RecordingRequest::Spans { camera, query } => {
                let q = recordings::range_query(&query)?;
                let r = recordings::list(
                    State(self.hub.clone()),
                    self.recorder.clone().map(Extension),
                    self.motion.clone().map(Extension),
                    Path(camera),
                    Query(q),
                )
                .await?;
                Ok(from_response(r.into_response()).await)
            }
            RecordingRequest::ExportOpen { camera, query } => {
                let rec = self.recorder()?;
                let id = recordings::camera_id(&self.hub, &camera)?;
                let q = recordings::range_query(&query)?;
                let (export, format) = recordings::plan_export(&rec, &id, &q, None).await?;
                let opened = {
                    let mut s = self.sessions();
                    let now = Instant::now();
                    s.open
                        .retain(|_, v| now.duration_since(v.used) < SESSION_IDLE);
                    if s.open.len() >= MAX_SESSIONS {
                        return Err(ApiError::Unavailable(format!(
                            "{MAX_SESSIONS} exports to other nodes are under way on that node: try again later"
                        )));
                    }
                    s.next += 1;
                    let session = s.next;
                    let opened = ExportOpened {
                        session,
                        len: export.len(),
                        file_name: export.file_name(&id),
                        content_type: format.content_type().into(),
                        parts: recordings::parts_header(&export),
                    };
                    s.open.insert(
                        session,
                        Session {
                            export: Some(Box::new(Reading {
                                export,
                                sent: 0,
                                carry: Vec::new(),
                            })),
                            used: now,
                        },
                    );
                    opened
                };
                let body = serde_json::to_vec(&opened)
                    .map_err(|e| ApiError::Internal(format!("export not described: {e}")))?;
                Ok(RecordingAnswer {
                    status: 200,
                    kind: BodyKind::Json,
                    body: body.into(),
                })
            }
            RecordingRequest::ExportRead {
                session,
                offset,
                max,
            } => self.read_export(session, offset, max, max_body).await,
            RecordingRequest::ExportClose { session } => {
                self.sessions().open.remove(&session);
                Ok(RecordingAnswer {
                    status: 200,
                    kind: BodyKind::Json,
                    body: Bytes::from_static(b"{}"),
                })
            }
            RecordingRequest::Frames {
                camera,
                at_us,
                after,
                max_frames,
                max_bytes,
            } => {
                let rec = self.recorder()?;
                let id = recordings::camera_id(&self.hub, &camera)?;
                let frames = max_frames.clamp(1, MAX_BATCH_FRAMES) as usize;
                // Room for the batch's headers within what the transport carries.
                let limit = (max_bytes as usize).min(max_body.saturating_sub(3 + frames * 32));
                let r = rec.recordings().ok_or_else(|| {
                    ApiError::Unavailable("recording has stopped: the hub is shutting down".into())
                })?;
                let batch =
                    recordings::blocking(move || read_batch(&r, &id, at_us, after, frames, limit))
                        .await?;
                Ok(RecordingAnswer {
                    status: 200,
                    kind: BodyKind::Frames,
                    body: batch.encode(),
                })
            }
        }
    }

    async fn read_export(
        &self,
        session: u64,
        offset: u64,
        max: u32,
        max_body: usize,
    ) -> Result<RecordingAnswer, ApiError> {
        let mut reading = {
            let mut s = self.sessions();
            let Some(sess) = s.open.get_mut(&session) else {
                return Err(ApiError::NotFound(format!(
                    "no export session {session} on that node (ended, or idle for over {} s)",
                    SESSION_IDLE.as_secs()
                )));
            };
            sess.used = Instant::now();
            sess.export.take().ok_or_else(|| {
                ApiError::BadRequest(format!("export session {session} is already being read"))
            })?
        };
        if reading.sent != offset {
            let sent = reading.sent;
            self.put_back(session, reading);
            return Err(ApiError::BadRequest(format!(
                "export session {session} is at byte {sent}, not {offset}"
            )));
        }
        let limit = (max as usize).clamp(1, MAX_CHUNK).min(max_body.max(1));
        let (reading, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = fill_chunk(&mut reading, limit);
            (reading, chunk)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("export task failed: {e}")))?;
        match chunk {
            Ok(bytes) => {
                if reading.sent >= reading.export.len() {
                    self.sessions().open.remove(&session);
                } else {
                    self.put_back(session, reading);
                }
                Ok(RecordingAnswer {
                    status: 200,
                    kind: BodyKind::Bytes,
                    body: bytes.into(),
                })
            }
            Err(e) => {
                self.sessions().open.remove(&session);
                Err(ApiError::Internal(format!(
                    "export failed on that node: {e}"
                )))
            }
        }
    }

    fn put_back(&self, session: u64, reading: Box<Reading>) {
        if let Some(s) = self.sessions().open.get_mut(&session) {
            s.export = Some(reading);
        }
    }
}

/// Up to `limit` bytes of the export from where it stands (blocking: reads segments).
fn fill_chunk(r: &mut Reading, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = std::mem::take(&mut r.carry);
    while out.len() < limit {
        match r.export.next_chunk()? {
            Some(c) => out.extend_from_slice(&c),
            None => break,
        }
    }
    if out.len() > limit {
        r.carry = out.split_off(limit);
    }
    r.sent += out.len() as u64;
    if out.is_empty() {
        return Err(std::io::Error::other(format!(
            "export ended at byte {} of {}",
            r.sent,
            r.export.len()
        )));
    }
    Ok(out)
}

/// Frames of `camera` from the cursor `at_us` (see [`RecordingRequest::Frames`]): at most
/// `frames` frames and `limit` JPEG bytes (at least one frame, unless that one alone is
/// over `limit`: refused, since it cannot cross).
fn read_batch(
    r: &espcam_record::Recordings,
    camera: &CameraId,
    at_us: u64,
    after: bool,
    frames: usize,
    limit: usize,
) -> Result<FrameBatch, ApiError> {
    let mut c = r.cursor(camera);
    c.seek(at_us)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut batch = FrameBatch::default();
    let mut bytes = 0usize;
    loop {
        if batch.frames.len() >= frames {
            return Ok(batch);
        }
        let Some(f) = c
            .next_frame()
            .map_err(|e| ApiError::Internal(e.to_string()))?
        else {
            batch.end = true;
            return Ok(batch);
        };
        if after && f.received_us <= at_us {
            continue;
        }
        if bytes + f.jpeg.len() > limit {
            if batch.frames.is_empty() {
                return Err(ApiError::TooLarge(format!(
                    "a recorded frame of {} bytes is larger than a cluster message carries ({limit} bytes)",
                    f.jpeg.len()
                )));
            }
            return Ok(batch);
        }
        bytes += f.jpeg.len();
        batch.frames.push(BatchFrame {
            received_us: f.received_us,
            captured_us: f.captured_us,
            width: f.width,
            height: f.height,
            jpeg: f.jpeg.into(),
        });
    }
}

/// A local response as an answer to another node.
async fn from_response(r: Response) -> RecordingAnswer {
    let status = r.status().as_u16();
    match axum::body::to_bytes(r.into_body(), MAX_JSON).await {
        Ok(body) => RecordingAnswer {
            status,
            kind: BodyKind::Json,
            body,
        },
        Err(e) => RecordingAnswer {
            status: 500,
            kind: BodyKind::Json,
            body: serde_json::json!({ "error": format!("answer not read: {e}") })
                .to_string()
                .into(),
        },
    }
}

impl RecordingService for LocalRecordings {
    fn serve(
        &self,
        request: RecordingRequest,
        max_body: usize,
    ) -> crate::state::node_recordings::RecordingFuture {
        let this = Self {
            hub: self.hub.clone(),
            recorder: self.recorder.clone(),
            motion: self.motion.clone(),
            exports: self.exports.clone(),
        };
        Box::pin(async move { this.answer(request, max_body).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::nodes::{AnswerFuture, NodeRequest};
    use std::sync::Arc;

    /// A holding node that sends `chunks` of an export, then is gone (503); it records the
    /// requests it got.
    #[derive(Debug, Default)]
    struct Dying {
        chunks: Vec<&'static [u8]>,
        asked: Mutex<Vec<RecordingRequest>>,
    }

    impl crate::http::nodes::NodeDirectory for Dying {
        fn this_node(&self) -> &str {
            "hub-b"
        }
        fn remote_node(&self, _: &str) -> Option<String> {
            None
        }
        fn ask(&self, _: &str, _: NodeRequest) -> AnswerFuture {
            unreachable!("no snapshot requests here")
        }
        fn known_nodes(&self) -> Vec<String> {
            vec!["hub-a".into(), "hub-b".into()]
        }
        fn ask_recordings(
            &self,
            _: &str,
            request: RecordingRequest,
        ) -> crate::state::node_recordings::RecordingFuture {
            let answer = match &request {
                RecordingRequest::ExportRead { offset, .. } => {
                    let mut at = 0u64;
                    let mut found = None;
                    for c in &self.chunks {
                        if at == *offset {
                            found = Some(*c);
                        }
                        at += c.len() as u64;
                    }
                    match found {
                        Some(c) => RecordingAnswer {
                            status: 200,
                            kind: BodyKind::Bytes,
                            body: Bytes::from_static(c),
                        },
                        None => RecordingAnswer {
                            status: 503,
                            kind: BodyKind::Json,
                            body: Bytes::from_static(br#"{"error":"node hub-a does not answer"}"#),
                        },
                    }
                }
                _ => RecordingAnswer {
                    status: 200,
                    kind: BodyKind::Json,
                    body: Bytes::from_static(b"{}"),
                },
            };
            self.asked.lock().unwrap().push(request);
            Box::pin(async move { answer })
        }
    }

    fn reader(nodes: &Arc<Dying>, len: u64) -> RemoteExport {
        RemoteExport {
            nodes: Nodes(nodes.clone()),
            node: "hub-a".into(),
            session: 9,
            offset: 0,
            len,
            done: false,
        }
    }

    async fn body_of(r: RemoteExport) -> Result<Bytes, axum::Error> {
        let stream = futures_util::stream::unfold(r, |mut r| async move {
            r.next_chunk().await.map(|item| (item, r))
        });
        axum::body::to_bytes(Body::from_stream(stream), usize::MAX).await
    }

    #[tokio::test]
    async fn an_export_reads_every_chunk_and_ends_with_an_error_when_the_node_dies() {
        let nodes = Arc::new(Dying {
            chunks: vec![b"abc", b"defg", b"h"],
            ..Default::default()
        });
        assert_eq!(&body_of(reader(&nodes, 8)).await.unwrap()[..], b"abcdefgh");
        // Each chunk was asked from where the last ended.
        let offsets: Vec<u64> = nodes
            .asked
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| match r {
                RecordingRequest::ExportRead { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(offsets, [0, 3, 7]);

        // The file announces more than the node sends before it dies: the body fails.
        let e = body_of(reader(&nodes, 20)).await.unwrap_err().to_string();
        assert!(e.contains("stopped the export after 8 of 20 bytes"), "{e}");
        assert!(e.contains("does not answer"), "{e}");
    }

    #[test]
    fn a_token_in_the_query_is_not_forwarded() {
        assert_eq!(
            checked_query(Some("from=1&token=ecam_secret&to=2&format=mkv".into())).unwrap(),
            "from=1&to=2&format=mkv"
        );
        assert_eq!(checked_query(Some("token=x".into())).unwrap(), "");
        assert_eq!(checked_query(None).unwrap(), "");
        assert!(checked_query(Some("a".repeat(MAX_QUERY + 1))).is_err());
    }

    #[tokio::test]
    async fn a_client_that_goes_away_closes_the_session_on_the_node() {
        let nodes = Arc::new(Dying {
            chunks: vec![b"abc", b"def"],
            ..Default::default()
        });
        let mut r = reader(&nodes, 6);
        assert_eq!(&r.next_chunk().await.unwrap().unwrap()[..], b"abc");
        drop(r);
        for _ in 0..100 {
            if nodes
                .asked
                .lock()
                .unwrap()
                .contains(&RecordingRequest::ExportClose { session: 9 })
            {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("no export_close: {:?}", nodes.asked.lock().unwrap());
    }
}

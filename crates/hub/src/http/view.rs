//! Viewer outputs: `/ws/view/{camera}` (a bare JPEG per binary message, optional metadata),
//! `stream.mjpg` (multipart MJPEG) and `snapshot.jpg` (the newest frame).
//!
//! Each viewer is one task reading the camera's latest-frame slot when it is ready for the
//! next frame, so a slow viewer skips to the newest frame and holds at most two (the one
//! being written and the shared newest). A viewer whose write does not complete within the
//! viewer timeout is dropped. Nothing here may make a camera's ingest wait or copy a JPEG
//! per viewer (the WebSocket layer copies it into the socket buffer; `Bytes` are shared).
//! The viewer socket and MJPEG end (close 1008, or the body ends between parts) when the
//! credential they were opened with does (`revoke.rs`). The viewer socket is pinged every
//! `ping_interval` and closed with 1001 when nothing (not even a pong) arrived for
//! `idle_timeout` (`net/liveness.rs`); a stalled writer is the viewer timeout's, above.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use espcam_auth::Action;
use espcam_proto::ApMessage;
use espcam_proto::close::echo;
use espcam_proto::standalone::{ApRequest, PONG};
use serde::Deserialize;
use tracing::{debug, info};

use crate::http::auth::Caller;
use crate::http::dormant::Dormant;
use crate::http::error::ApiError;
use crate::http::revoke::CredentialWatch;
use crate::http::viewer_ws;
use crate::net::liveness::{Due, Liveness};
use crate::state::Hub;
use crate::state::camera::{Camera, Frame, ViewerGuard};
use crate::state::clock::now_us;
use crate::state::tap::{DropPolicy, FrameTap};

/// How long `snapshot.jpg` waits for a frame at the resolution in force.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);
/// The MJPEG part boundary.
const BOUNDARY: &str = "espcamframe";

pub(crate) fn find_camera(hub: &Hub, id: &str) -> Result<Arc<Camera>, ApiError> {
    hub.camera(id)
        .ok_or_else(|| ApiError::NotFound(format!("unknown camera {:?}", echo(id, 40))))
}

/// Query of `/ws/view/{camera}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ViewQuery {
    /// `1`/`true`: precede each frame with a JSON text message describing it.
    meta: Option<String>,
}

/// `GET /ws/view/{camera}`.
pub(crate) async fn view_ws(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
    Query(q): Query<ViewQuery>,
    caller: Option<Extension<Caller>>,
    mut req: Request,
) -> Response {
    let cam = match find_camera(&hub, &camera) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let meta = matches!(q.meta.as_deref(), Some("1" | "true"));
    let (response, on_upgrade) = match viewer_ws::accept(&mut req) {
        Ok(x) => x,
        Err(r) => return viewer_ws::refusal_response(r),
    };
    let watch = CredentialWatch::start(caller.as_deref(), Action::View);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => view_conn(hub, cam, viewer_ws::Io::new(upgraded), meta, watch).await,
            Err(e) => debug!("viewer upgrade failed: {e}"),
        }
    });
    response
}

async fn view_conn(
    hub: Hub,
    cam: Arc<Camera>,
    mut io: viewer_ws::Io,
    meta: bool,
    mut watch: CredentialWatch,
) {
    let _guard = cam.viewer_guard();
    // A viewer skips to the newest frame; the first one is the newest already received.
    let mut tap = cam.tap(DropPolicy::Newest);
    let timeout = hub.config().viewer_timeout;
    let mut stop = hub.shutdown_signal();
    // Once-in-a-lifetime signals, polled only when they fire rather than on every frame
    // (the shutdown channel's waiter lock is shared by every connection; see `dormant`).
    let mut stopping = Dormant::new(stop.changed());
    let mut ended = Dormant::new(watch.ended());
    let mut reader = viewer_ws::Reader::default();
    let mut incoming = Vec::new();
    let mut live = Liveness::new(hub.config().ping_interval, hub.config().idle_timeout);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopping => {
                let close = viewer_ws::send_close(&mut io, viewer_ws::CLOSE_AWAY, "hub shutting down");
                let _ = tokio::time::timeout(timeout, close).await;
                return;
            }
            why = &mut ended => {
                let close = viewer_ws::send_close(&mut io, espcam_proto::close::POLICY, &why);
                let _ = tokio::time::timeout(timeout, close).await;
                return;
            }
            due = live.due() => match due {
                Due::Silent => {
                    let why = live.reason();
                    debug!("viewer of camera {} closed: {why}", cam.id);
                    let close = viewer_ws::send_close(&mut io, espcam_proto::close::IDLE, &why);
                    let _ = tokio::time::timeout(timeout, close).await;
                    return;
                }
                Due::Ping => {
                    let sent = tokio::time::timeout(timeout, viewer_ws::send_ping(&mut io)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return;
                    }
                }
            },
            tapped = tap.next() => {
                let Some(t) = tapped else { return };
                let frame = t.frame;
                let text = meta.then(|| frame.cached_text(meta_json).as_bytes());
                let sent = tokio::time::timeout(timeout, viewer_ws::send_binary(&mut io, text, &frame.jpeg)).await;
                match sent {
                    Ok(Ok(())) => {
                        cam.count_delivered(frame.jpeg.len(), t.missed);
                        hub.relay_latency()
                            .record(now_us().saturating_sub(frame.received_us));
                    }
                    Ok(Err(_)) => return,
                    Err(_) => {
                        info!(
                            "viewer of camera {} dropped: a frame took over {} ms to send",
                            cam.id,
                            timeout.as_millis()
                        );
                        return;
                    }
                }
            }
            read = reader.read(&mut io) => {
                if !matches!(read, Ok(true)) {
                    return;
                }
                // Any frame, pongs included, shows the client is there.
                live.heard();
                let processed = tokio::time::timeout(timeout, reader.process(&mut io, &mut incoming)).await;
                if !matches!(processed, Ok(Ok(()))) {
                    return;
                }
                for msg in incoming.drain(..) {
                    let viewer_ws::Incoming::Text(t) = msg else { return };
                    if let Some(reply) = seed_reply(&cam, &t) {
                        let sent = tokio::time::timeout(timeout, viewer_ws::send_text(&mut io, &reply)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The `?meta=1` text message that precedes a frame on `/ws/view` (built once per frame,
/// shared by every viewer through [`Frame::cached_text`]).
fn meta_json(f: &Frame) -> String {
    serde_json::json!({
        "type": "frame",
        "seq": f.seq,
        "captured_us": f.captured_us,
        "received_us": f.received_us,
        "width": f.width,
        "height": f.height,
        "bytes": f.jpeg.len(),
    })
    .to_string()
}

/// Answers the seed-002 client requests: `ping` → `pong`, `get_stats` → stats JSON.
/// Commands are not taken on the viewer socket (use `/ws/ui` or the REST API).
fn seed_reply(cam: &Camera, text: &str) -> Option<String> {
    match ApRequest::parse(text) {
        Ok(ApRequest::Ping) => Some(PONG.to_string()),
        Ok(ApRequest::GetStats) => {
            let info = cam.info();
            Some(
                ApMessage::Stats {
                    clients: u8::try_from(info.viewers).unwrap_or(u8::MAX),
                    fps: info.fps_in,
                    frames: info.frames_in,
                }
                .to_json(),
            )
        }
        _ => {
            debug!("viewer of camera {}: text message ignored", cam.id);
            None
        }
    }
}

/// `GET /api/cameras/{camera}/snapshot.jpg`: the newest frame, never one from before the
/// resolution in force.
pub(crate) async fn snapshot_jpg(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
) -> Result<Response, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    let frame = current_frame(&cam).await?;
    Ok(jpeg_response(&frame))
}

/// The newest frame whose size matches the camera's settings in force; waits briefly for
/// one after a resolution change. Falls back to the newest frame if it arrived after the
/// request started (fresh, just not of the expected size).
pub(crate) async fn current_frame(cam: &Camera) -> Result<Arc<Frame>, ApiError> {
    let started = now_us();
    let matches = |f: &Frame, expected: Option<(u16, u16)>| {
        expected.is_none_or(|dims| dims == (f.width, f.height))
    };
    let mut rx = cam.watch_frames();
    if let Some(f) = rx.borrow_and_update().clone()
        && matches(&f, cam.expected_dims())
    {
        return Ok(f);
    }
    let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
    while let Ok(Ok(())) = tokio::time::timeout_at(deadline, rx.changed()).await {
        if let Some(f) = rx.borrow_and_update().clone()
            && matches(&f, cam.expected_dims())
        {
            return Ok(f);
        }
    }
    match cam.latest() {
        Some(f) if f.received_us >= started => Ok(f),
        Some(_) => Err(ApiError::Unavailable(format!(
            "no frame from camera {} at its current resolution yet",
            cam.id
        ))),
        None => Err(ApiError::Unavailable(format!(
            "no frame from camera {} yet",
            cam.id
        ))),
    }
}

fn jpeg_response(frame: &Frame) -> Response {
    let mut r = Body::from(frame.jpeg.clone()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-espcam-seq", HeaderValue::from(frame.seq));
    h.insert("x-espcam-received-us", HeaderValue::from(frame.received_us));
    if let Some(c) = frame.captured_us {
        h.insert("x-espcam-captured-us", HeaderValue::from(c));
    }
    h.insert("x-espcam-width", HeaderValue::from(frame.width));
    h.insert("x-espcam-height", HeaderValue::from(frame.height));
    r
}

/// `GET /api/cameras/{camera}/stream.mjpg`: `multipart/x-mixed-replace` MJPEG.
pub(crate) async fn stream_mjpg(
    State(hub): State<Hub>,
    Path(camera): Path<String>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let cam = find_camera(&hub, &camera)?;
    let mut stop = hub.shutdown_signal();
    let mut watch = CredentialWatch::start(caller.as_deref(), Action::View);
    let state = Mjpeg {
        tap: cam.tap(DropPolicy::Newest),
        guard: cam.viewer_guard(),
        // Polled only when they fire, not for every part (see `dormant`); each owns its
        // receiver (the credential watch ends with the body).
        stopping: Dormant::new(Box::pin(async move {
            let _ = stop.changed().await;
        })),
        ended: Dormant::new(Box::pin(async move {
            watch.ended().await;
        })),
        pending: Vec::with_capacity(2),
    };
    // hyper polls the stream only when the socket can take more, so a slow client simply
    // is not polled: it holds at most the frame in flight, and skips to the newest frame.
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(chunk), st))
    });
    let mut r = Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(concat!(
            "multipart/x-mixed-replace; boundary=",
            "espcamframe"
        )),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// A once-a-lifetime signal of an MJPEG body.
type Signal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

struct Mjpeg {
    guard: ViewerGuard,
    tap: FrameTap,
    /// Resolves when the hub stops.
    stopping: Dormant<Signal>,
    /// Resolves when the credential it was opened with ends: the body ends, between
    /// parts, when it does.
    ended: Dormant<Signal>,
    /// The rest of the current part, in reverse order (popped from the end).
    pending: Vec<Bytes>,
}

impl Mjpeg {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.pending.pop() {
            return Some(b);
        }
        let t = tokio::select! {
            _ = &mut self.stopping => return None,
            _ = &mut self.ended => return None,
            t = self.tap.next() => t?,
        };
        let frame = t.frame;
        // Counted when handed to hyper, which polls this stream only when the socket can
        // take more: the frames a slow client skipped are the tap's `missed`.
        self.guard
            .camera()
            .count_delivered(frame.jpeg.len(), t.missed);
        let head = part_header(&frame);
        self.pending.push(Bytes::from_static(b"\r\n"));
        self.pending.push(frame.jpeg.clone());
        Some(Bytes::from(head))
    }
}

/// One MJPEG part's header. `X-Timestamp` is the hub's receive time in seconds (what
/// other MJPEG servers send); `X-Espcam-Captured-Us` the camera's capture time when its clock
/// is synced, `X-Espcam-Received-Us` and `X-Espcam-Seq` as on `snapshot.jpg` (docs/API.md).
fn part_header(frame: &Frame) -> String {
    use std::fmt::Write as _;
    let mut head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {:.6}\r\nX-Espcam-Seq: {}\r\nX-Espcam-Received-Us: {}\r\n",
        frame.jpeg.len(),
        frame.received_us as f64 / 1e6,
        frame.seq,
        frame.received_us,
    );
    if let Some(c) = frame.captured_us {
        let _ = write!(head, "X-Espcam-Captured-Us: {c}\r\n");
    }
    head.push_str("\r\n");
    head
}

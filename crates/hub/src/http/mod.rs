//! People and tools into the hub: the dashboard's files, the REST API, the viewer outputs
//! (`/ws/view`, MJPEG, `snapshot.jpg`), the browser socket `/ws/ui` and `/metrics`.
//!
//! Built on the `state` layer only (it never touches `ingest`). Handlers are thin: parse and
//! validate, call [`crate::state::Hub`] or the store, and shape the answer — this layer is
//! the only place that turns hub state and events into JSON or HTTP status codes.
//!
//! - [`api`]: REST handlers; [`error`]: [`ApiError`] and its status codes.
//! - [`view`] and [`viewer_ws`]: viewer outputs; the viewer WebSocket is written directly on
//!   the upgraded connection (one `writev` per frame, no copy).
//! - [`ui`]: the browser socket, and the one place events are serialised.
//! - [`recordings`]: spans, export, the playback socket; [`thumb`]: snapshot thumbnails.
//! - [`remote`] and [`node_recordings`]: another cluster node's snapshots and recordings,
//!   served through this hub.
//! - [`metrics`]: Prometheus text. [`assets`]: the embedded dashboard.
//! - [`auth`]: credentials, permissions and audit at every route (one middleware), login,
//!   and the admin routes; [`security`]: the door table, `Host` and `Origin` checks, and
//!   the security headers; [`revoke`]: open streams end when their credential does.

pub(crate) mod api;
pub(crate) mod assets;
pub(crate) mod auth;
mod dormant;
pub mod error;
pub(crate) mod events;
pub(crate) mod firmware;
pub(crate) mod metrics;
pub(crate) mod node_recordings;
pub mod nodes;
pub(crate) mod recordings;
pub(crate) mod remote;
pub(crate) mod revoke;
pub(crate) mod security;
pub(crate) mod snapshot_quota;
pub(crate) mod thumb;
pub(crate) mod ui;
pub(crate) mod view;
pub(crate) mod viewer_ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

pub use error::ApiError;
use error::{error_body, json_errors};

use crate::state::Hub;

/// The HTTP routes of port 6971 (the camera control socket is added by `server`). Every
/// route passes [`auth::guard`] (the door table in [`security::door`]); every response
/// carries the security headers.
pub fn router(hub: Hub) -> Router {
    let gate = std::sync::Arc::new(auth::Gate::new(hub.clone()));
    let api = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/cameras", get(api::list_cameras))
        .route(
            "/api/cameras/{camera}",
            get(api::get_camera).delete(api::delete_camera),
        )
        .route("/api/cameras/{camera}/settings", post(api::post_settings))
        .route("/api/cameras/{camera}/reboot", post(api::post_reboot))
        .route("/api/cameras/{camera}/telemetry", get(api::get_telemetry))
        .route(
            "/api/cameras/{camera}/snapshot.jpg",
            get(view::snapshot_jpg),
        )
        .route("/api/cameras/{camera}/stream.mjpg", get(view::stream_mjpg))
        .route("/api/cameras/{camera}/snapshots", post(api::post_snapshot))
        .route("/api/snapshots", get(api::list_snapshots))
        .route(
            "/api/snapshots/{file}",
            get(api::get_snapshot_jpg).delete(api::delete_snapshot),
        )
        .route("/api/recordings", get(recordings::overview))
        .route("/api/cameras/{camera}/recordings", get(recordings::list))
        .route(
            "/api/cameras/{camera}/record",
            post(recordings::post_record),
        )
        .route("/api/cameras/{camera}/export", get(recordings::export))
        .route(
            "/api/cameras/{camera}/timelapse",
            get(recordings::timelapse),
        )
        .route("/ws/playback/{camera}", get(recordings::playback_ws))
        .route("/api/snapshots/{id}/thumb.jpg", get(thumb::get_thumb))
        .route("/api/nodes/{node}/snapshots", get(remote::list))
        .route("/api/nodes/{node}/snapshots/{file}", get(remote::jpeg))
        .route("/api/nodes", get(node_recordings::nodes))
        .route(
            "/api/nodes/{node}/cameras/{camera}/recordings",
            get(node_recordings::list),
        )
        .route(
            "/api/nodes/{node}/cameras/{camera}/export",
            get(node_recordings::export),
        )
        .route(
            "/ws/nodes/{node}/playback/{camera}",
            get(node_recordings::playback_ws),
        )
        .route(
            "/api/cameras/{camera}/motion",
            get(events::get_motion).put(events::put_motion),
        )
        .route("/api/events", get(events::list))
        .route(
            "/api/events/{id}",
            get(events::get_event).delete(events::delete_event),
        )
        .route("/api/events/{id}/thumb.jpg", get(events::thumb))
        .route("/ws/view/{camera}", get(view::view_ws))
        .route("/ws/ui", get(ui::ui_ws))
        .route("/api/firmware", get(firmware::list).post(firmware::upload))
        .route("/api/firmware/{id}/image", get(firmware::image))
        .route("/api/firmware/{id}/rollout", post(firmware::rollout))
        .route("/api/cameras/{camera}/update", post(firmware::update))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(api::MAX_BODY))
        .layer(axum::Extension(std::sync::Arc::new(
            snapshot_quota::SnapshotGate::new(hub.config().snapshots),
        )))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(hub);
    api.merge(assets::router())
        .merge(auth::routes(gate.clone()))
        .route_layer(axum::middleware::from_fn_with_state(gate, auth::guard))
        .layer(axum::middleware::map_response(security::security_headers))
}

/// `GET /healthz` alone (the stream port answers it too).
pub fn health_routes() -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .fallback(not_found)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let path = espcam_proto::close::echo(uri.path(), 100);
    error_body(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}"))
}

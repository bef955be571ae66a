//! Cameras into the hub: the push channels (`/ws/camera` on port 6971, `/ws/stream` on
//! 6972) and pull mode (the hub as a client of standalone seed-002 cameras).
//!
//! Built on the `state` layer only (it never touches `http`). Every camera connection, of
//! whichever kind, runs the same loop ([`link::run`]): commands out in order, messages in,
//! an idle timeout, replacement by a newer connection, hub shutdown. Ingest never waits for
//! viewers: a frame is handed to [`crate::state::camera::Camera::ingest`], which only
//! replaces the newest frame and offers it to taps.

mod admission;
mod hello;
mod link;
pub(crate) mod pull;
mod push;

use axum::Router;
use axum::routing::get;

use crate::state::Hub;

/// The camera control route, served on port 6971 beside the HTTP API.
pub fn control_routes(hub: Hub) -> Router {
    Router::new()
        .route(espcam_proto::CONTROL_PATH, get(push::control_ws))
        .with_state(hub)
}

/// The camera stream route, the only thing on port 6972 (besides a health check).
pub fn stream_routes(hub: Hub) -> Router {
    Router::new()
        .route(espcam_proto::STREAM_PATH, get(push::stream_ws))
        .with_state(hub)
}

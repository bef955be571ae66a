//! The espcam hub: cameras connect to it, people watch and control through it.
//!
//! - [`server`]: the listeners, routers and [`run`] (what `espcam serve` calls).
//! - [`hub`]: shared state — camera registry, admission, commands with acks, events.
//! - [`camera`]: one camera, its counters and its latest-frame slot (the fan-out).
//! - `ingest`: camera control (`/ws/camera`) and stream (`/ws/stream`) sockets.
//! - `pull`: the hub as a client of standalone (seed-002) cameras.
//! - `view`: `/ws/view/{camera}`, `stream.mjpg`, `snapshot.jpg`; `viewer_ws`: the viewer
//!   WebSocket written directly on the upgraded connection (one `writev` per frame, no copy).
//! - [`listener`]: TCP listener with `TCP_NODELAY` and a write-stall timeout per connection.
//! - `ui`: the browser control socket `/ws/ui`.
//! - `api`: REST handlers; [`error`]: errors and their HTTP mapping; [`metrics`].
//! - [`config`]: defaults, `espcam.toml`, overrides.
//!
//! The hub must never let one camera or viewer hurt another: ingest never waits for
//! viewers, every viewer's buffering is bounded, and an error on a connection ends only
//! that connection. The HTTP and WebSocket API is documented in docs/API.md.

mod api;
mod assets;
pub mod camera;
pub mod clock;
pub mod config;
pub mod error;
pub mod hub;
mod ingest;
pub mod listener;
pub mod metrics;
mod pull;
pub mod server;
mod ui;
mod view;
mod viewer_ws;

pub use api::parse_settings;
pub use camera::{Camera, CameraInfo, Frame, Source};
pub use config::{Config, ConfigError, Overrides, PullTarget};
pub use hub::Hub;
pub use server::{Listeners, RunError, app, run, serve, stream_app};

//! The espcam hub: cameras connect to it, people watch and control through it.
//!
//! Three one-way layers (ARCHITECTURE.md; `crates/nostd-check/tests/hub_layers.rs` checks
//! the rule):
//!
//! - [`state`]: the shared state — camera registry, admission, commands with acks, the typed
//!   event bus, frame taps, counters. Imports neither of the layers above it, no network or
//!   HTTP crate, and builds no JSON.
//! - [`ingest`]: cameras in — push (`/ws/camera`, `/ws/stream`) and pull (seed-002
//!   cameras), all through one connection loop.
//! - [`http`]: people and tools in — REST, viewer outputs, the browser socket (where events
//!   become JSON), metrics, the dashboard's files.
//!
//! [`recorder`] is a service beside `ingest` and `http`: it follows frames through taps
//! and writes them with `espcam-record` on its own thread. [`mqtt`] is another: it
//! publishes cameras, their telemetry and images to an MQTT broker with Home Assistant
//! discovery, and turns commands from there into the same commands the dashboard sends.
//!
//! Beside them: [`config`] (defaults, `espcam.toml`, overrides), [`net`] (the TCP listener
//! both servers use), [`text`] (peer text made safe for logs), and [`server`], which wires
//! the layers to the two ports ([`run`] is what `espcam serve` calls).
//!
//! The hub must never let one camera or viewer hurt another: ingest never waits for
//! viewers, every viewer's buffering is bounded, and an error on a connection ends only
//! that connection. The HTTP and WebSocket API is documented in docs/API.md.

pub mod cluster;
pub mod config;
pub mod firmware;
mod follow;
pub mod http;
pub mod ingest;
pub mod motion;
pub mod mqtt;
pub mod net;
pub mod recorder;
pub mod server;
pub mod state;
pub mod text;
pub mod timelapse;
pub mod webhook;
mod worker;

pub use config::{Config, ConfigError, Overrides, PullTarget};
pub use http::api::parse_settings;
pub use server::{Listeners, RunError, app, run, serve, stream_app};
pub use state::Hub;
pub use state::camera::{Camera, CameraInfo, Frame, Source};

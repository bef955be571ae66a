//! Sockets below both `ingest` and `http`: the TCP listener every connection comes through,
//! and small WebSocket helpers both use.

pub mod listener;
pub mod ws;

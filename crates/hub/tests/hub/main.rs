//! End-to-end tests of the hub on loopback: real sockets, real JPEGs, real files. One test
//! binary (one link) with a module per area.
// Helpers here are test code too: unwrap is an assertion.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod support;

mod api;
mod control;
mod ingest;
mod motion;
mod recording;
mod viewers;

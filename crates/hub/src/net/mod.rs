//! Sockets below both `ingest` and `http`: the TCP listener every connection comes through,
//! and small WebSocket helpers both use.

pub mod listener;
pub(crate) mod liveness;
pub mod serve;
pub mod tls;
pub(crate) mod upgrade;
pub mod ws;

/// The process's soft limit on open file descriptors (Linux: `/proc/self/limits`), when it
/// can be read.
pub fn fd_soft_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

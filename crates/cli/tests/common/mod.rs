//! What the tests of the real `espcam` binary share: a hub process that dies with the test,
//! free loopback ports, a plain HTTP/1.1 GET and "wait until it answers".
//!
//! Plain `std` on purpose: these tests drive the shipped binary from the outside, as a user
//! or a script would, so they use no code of the hub.

// Any failure in these helpers is a test failure.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the hub (SIGKILL) when the test ends, however it ends.
pub struct Hub(pub Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `espcam serve` on loopback with ports `port`/`stream_port`, data in `data`, run from
/// `cwd`, with no `ESPCAM_*` settings from the developer's environment and its output
/// discarded; add arguments before spawning.
pub fn serve(data: &Path, cwd: &Path, port: u16, stream_port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_espcam"));
    c.arg("serve")
        .args(["--port", &port.to_string()])
        .args(["--stream-port", &stream_port.to_string()])
        .arg("--data-dir")
        .arg(data)
        .env_remove("ESPCAM_CONFIG")
        .env_remove("ESPCAM_BIND")
        .env_remove("ESPCAM_AUTH")
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET on 127.0.0.1: (status, body, chunked encoding undone). `None`
/// while the hub is not listening yet or the answer is not HTTP.
pub fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = &raw[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        return Some((status, dechunk(body)?));
    }
    Some((status, body.to_vec()))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let len = usize::from_str_radix(std::str::from_utf8(&b[..eol]).ok()?.trim(), 16).ok()?;
        if len == 0 {
            break;
        }
        out.extend_from_slice(b.get(eol + 2..eol + 2 + len)?);
        b = b.get(eol + 2 + len + 2..)?;
    }
    Some(out)
}

/// Polls `path` until it answers 200 (or fails the test after 60 s).
pub fn wait_ok(port: u16, path: &str) -> Vec<u8> {
    let started = Instant::now();
    loop {
        if let Some((200, body)) = get(port, path) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "GET {path} never answered 200"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! Recording survives `kill -9` of the hub itself (issue 11's crash test, bounded form): the
//! real `espcam serve --demo` records its camera continuously and is SIGKILLed at a random
//! moment, three times. After each restart every frame the hub had reported as recorded
//! (readers only ever see frames that were fsynced) is still there, and an export of
//! everything decodes without a single torn frame.
//!
//! The full 30-cycle version of the same check is `cargo run --release -p espcam-record
//! --example crash` (library level, figures in docs/BENCHMARKS.md).

// Any failure in these helpers is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
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
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut b = &body[..];
        while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
            let len =
                usize::from_str_radix(std::str::from_utf8(&b[..eol]).ok()?.trim(), 16).ok()?;
            if len == 0 {
                break;
            }
            out.extend_from_slice(b.get(eol + 2..eol + 2 + len)?);
            b = b.get(eol + 2 + len + 2..)?;
        }
        body = out;
    }
    Some((status, body))
}

fn start(dir: &std::path::Path, port: u16, stream_port: u16) -> Hub {
    Hub(Command::new(env!("CARGO_BIN_EXE_espcam"))
        .args(["serve", "--demo", "--bind", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args(["--stream-port", &stream_port.to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("ESPCAM_CONFIG")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

/// Frames recorded (durable) for demo-1, from the recordings API; `None` until it answers.
fn recorded(port: u16) -> Option<(u64, u64, u64)> {
    let (status, body) = get(port, "/api/cameras/demo-1/recordings?from=0")?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let spans = v["spans"].as_array()?;
    let frames = spans.iter().filter_map(|s| s["frames"].as_u64()).sum();
    let first = spans.first()?["start_us"].as_u64()?;
    let last = spans.last()?["end_us"].as_u64()?;
    Some((frames, first, last))
}

#[test]
fn recordings_survive_kill_9_of_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("espcam.toml"),
        "[recording]\nmode = \"continuous\"\n",
    )
    .unwrap();
    let mut durable_before_kill = 0u64;
    for cycle in 0..3u64 {
        let (port, stream_port) = (free_port(), free_port());
        let hub = start(dir.path(), port, stream_port);
        // Wait until this run has committed frames of its own.
        let started = Instant::now();
        loop {
            if let Some((frames, _, _)) = recorded(port) {
                assert!(
                    frames >= durable_before_kill,
                    "cycle {cycle}: {frames} frames after restart, {durable_before_kill} were durable before the kill"
                );
                if frames > durable_before_kill + 20 {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cycle {cycle}: nothing recorded"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // A random moment, then the last durable count the hub reports, then SIGKILL.
        std::thread::sleep(Duration::from_millis(200 + fastrand::u64(..1200)));
        durable_before_kill = recorded(port).unwrap().0;
        drop(hub); // Child::kill sends SIGKILL
    }
    // Restart once more: everything durable is there, and the export decodes whole.
    let (port, stream_port) = (free_port(), free_port());
    let _hub = start(dir.path(), port, stream_port);
    let started = Instant::now();
    let (frames, first, last) = loop {
        if let Some(r) = recorded(port) {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(frames >= durable_before_kill);
    // Export up to the last frame recorded before the final restart's own frames would
    // change the count: the range of the spans seen just now.
    let path = format!(
        "/api/cameras/demo-1/export?from={}&to={}&format=mkv",
        first / 1000,
        last / 1000 + 1
    );
    let (status, body) = get(port, &path).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let file = dir.path().join("all.mkv");
    std::fs::write(&file, &body).unwrap();
    // ffprobe decodes every frame (-count_frames); any torn or corrupt JPEG is an error.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&file)
        .output();
    match out {
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() && stderr.trim().is_empty(),
                "ffprobe: {stderr}"
            );
            let n: u64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
            assert!(
                n >= frames,
                "export decoded {n} frames, {frames} were recorded"
            );
        }
        Err(e) => {
            assert!(
                std::env::var_os("ESPCAM_REQUIRE_TOOLS").is_none(),
                "ffprobe is required (ESPCAM_REQUIRE_TOOLS is set): {e}"
            );
            eprintln!("skipping the decode check: ffprobe not found ({e})");
        }
    }
}

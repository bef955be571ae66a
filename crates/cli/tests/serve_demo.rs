//! The README's main command, `espcam serve --demo`, run as the real binary: the dashboard
//! is served, a demo camera comes online, and its snapshot is a real 640×480 JPEG. Only the
//! address is changed (loopback, free ports) and the data directory is a temporary one.

// Any failure in these helpers is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Hub, free_port, get, serve, wait_ok};

#[test]
fn serve_demo_shows_a_live_virtual_camera() {
    let data = tempfile::tempdir().unwrap();
    let (port, stream_port) = (free_port(), free_port());
    let _hub = Hub(serve(data.path(), data.path(), port, stream_port)
        .args(["--demo", "--bind", "127.0.0.1"])
        .spawn()
        .unwrap());

    let page = String::from_utf8(wait_ok(port, "/")).unwrap();
    assert!(
        page.contains("<title>") && page.contains("espcam"),
        "{page}"
    );

    let jpeg = wait_ok(port, "/api/cameras/demo-1/snapshot.jpg");
    let mut decoder = jpeg_decoder::Decoder::new(&jpeg[..]);
    decoder.decode().unwrap();
    let info = decoder.info().unwrap();
    assert_eq!((info.width, info.height), (640, 480));

    let cameras: serde_json::Value =
        serde_json::from_slice(&wait_ok(port, "/api/cameras")).unwrap();
    assert_eq!(cameras[0]["id"], "demo-1");
    assert_eq!(cameras[0]["online"], true);
}

/// `serve --demo` without `--bind` listens on loopback only, so it needs no login (and the
/// dashboard says so).
#[test]
fn serve_demo_binds_loopback_by_default() {
    let data = tempfile::tempdir().unwrap();
    let (port, stream_port) = (free_port(), free_port());
    let _hub = Hub(serve(data.path(), data.path(), port, stream_port)
        .arg("--demo")
        .spawn()
        .unwrap());
    let who: serde_json::Value = serde_json::from_slice(&wait_ok(port, "/api/whoami")).unwrap();
    assert_eq!(who["auth"], "loopback", "{who}");
    wait_ok(port, "/api/cameras/demo-1/snapshot.jpg");
}

/// With login required (`--auth on`, as on any non-loopback address) the demo camera is
/// still admitted (the hub gives it a token), the first start prints the `admin` password
/// once, every door wants a credential, and logging in with that password shows the video.
#[test]
fn serve_demo_with_login_prints_the_first_password_and_still_streams() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let (port, stream_port) = (free_port(), free_port());
    let mut child = serve(data.path(), data.path(), port, stream_port)
        .args(["--demo", "--auth", "on"])
        .env("NO_COLOR", "1")
        .env("ESPCAM_LOG", "info")
        .current_dir(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let _hub = Hub(child);
    let mut lines = Vec::new();
    let password = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no admin password printed:\n{}", lines.join("\n")));
        if let Some(rest) = line.split("created user admin with password ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        lines.push(line);
    };
    assert_eq!(password.len(), 24, "{password}");
    let (status, _) = loop {
        if let Some(r) = get(port, "/api/cameras/demo-1/snapshot.jpg") {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 401);
    let page = String::from_utf8(wait_ok(port, "/")).unwrap();
    assert!(page.contains("login-form"), "{page}");
    // Log in as a browser would, then read the frame with the session cookie.
    let body = format!(r#"{{"user":"admin","password":"{password}"}}"#);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let cookie = raw
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let started = Instant::now();
    let jpeg = loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /api/cameras/demo-1/snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        if raw.starts_with(b"HTTP/1.1 200") {
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            break raw[split + 4..].to_vec();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut decoder = jpeg_decoder::Decoder::new(&jpeg[..]);
    decoder.decode().unwrap();
    assert_eq!(decoder.info().unwrap().width, 640);
}

/// The demo's camera behaves like a real one in front of a door: someone passes, a motion
/// event starts, and it ends once the picture is still again (the moving test pattern used to
/// keep one event open for ever).
#[test]
fn serve_demo_motion_events_start_and_end() {
    let data = tempfile::tempdir().unwrap();
    let (port, stream_port) = (free_port(), free_port());
    let _hub = Hub(serve(data.path(), data.path(), port, stream_port)
        .args(["--demo", "--bind", "127.0.0.1"])
        .spawn()
        .unwrap());
    wait_ok(port, "/api/cameras/demo-1/snapshot.jpg");
    // The picture is still for 11 s, then someone crosses it in 4 s; the event ends after
    // 5 s of stillness, and the next crossing is 11 s after the first.
    let started = Instant::now();
    let event = loop {
        let list: serde_json::Value =
            serde_json::from_slice(&wait_ok(port, "/api/events?camera=demo-1")).unwrap();
        let ended = list["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["ended_ms"].is_u64())
            .cloned();
        if let Some(e) = ended {
            break e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no demo motion event ended within 40 s: {list}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let (start, end, last) = (
        event["started_ms"].as_u64().unwrap(),
        event["ended_ms"].as_u64().unwrap(),
        event["last_motion_ms"].as_u64().unwrap(),
    );
    assert!(
        (2_000..=6_000).contains(&(last - start)),
        "motion lasted {} ms, expected about the 4 s crossing: {event}",
        last - start
    );
    assert!(
        (4_500..=6_500).contains(&(end - last)),
        "ended {} ms after the last motion (T = 5 s): {event}",
        end - last
    );
    // Between crossings the camera is still: no event runs.
    let m: serde_json::Value =
        serde_json::from_slice(&wait_ok(port, "/api/cameras/demo-1/motion")).unwrap();
    assert_eq!(m["status"]["in_motion"], false, "{m}");
    let thumb = wait_ok(port, &format!("/api/events/{}/thumb.jpg", event["id"]));
    let mut decoder = jpeg_decoder::Decoder::new(&thumb[..]);
    decoder.decode().unwrap();
    assert_eq!(decoder.info().unwrap().width, 640);
}

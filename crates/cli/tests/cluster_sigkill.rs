//! Issue 13, failover with a real process death: two `espcam serve --cluster` processes on
//! one Debian `nats-server -js`, a virtual camera given both hubs; hub A is killed with
//! SIGKILL and the camera must move to hub B, which lists it as its own and serves its
//! frames. Needs nats-server (skipped with a message when absent, required when
//! `ESPCAM_REQUIRE_TOOLS=1`).
#![allow(clippy::unwrap_used)]

#[path = "../../hub/tests/common/nats.rs"]
#[allow(dead_code)]
mod nats;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use espcam_proto::{CameraId, Resolution};
use espcam_sim::{HubCamera, HubCameraConfig, HubEndpoint};

/// Kills the hub when the test ends, however it ends.
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

fn serve(nats: &str, node: &str, http: u16, stream: u16, data: &std::path::Path) -> Hub {
    Hub(Command::new(env!("CARGO_BIN_EXE_espcam"))
        .args(["serve", "--bind", "127.0.0.1"])
        .args(["--port", &http.to_string()])
        .args(["--stream-port", &stream.to_string()])
        .args(["--cluster", nats, "--node", node])
        .arg("--data-dir")
        .arg(data)
        .env_remove("ESPCAM_CONFIG")
        .env_remove("ESPCAM_CLUSTER")
        .env_remove("ESPCAM_NODE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

/// `GET path` on 127.0.0.1:`port`: (status, body); (0, empty) when nothing answers.
fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, Vec::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Vec::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut body = buf[end + 4..].to_vec();
    if chunked {
        let mut out = Vec::new();
        let mut raw = &body[..];
        while let Some(nl) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&raw[..nl]).unwrap().trim(), 16)
                .unwrap_or(0);
            if size == 0 || raw.len() < nl + 2 + size {
                break;
            }
            out.extend_from_slice(&raw[nl + 2..nl + 2 + size]);
            raw = &raw[nl + 2 + size + 2..];
        }
        body = out;
    }
    (status, body)
}

/// Polls `GET /api/cameras/cam-1` on `port` until `pred` holds, for at most `secs`.
async fn wait_camera(
    port: u16,
    secs: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        let (status, body) = tokio::task::spawn_blocking(move || get(port, "/api/cameras/cam-1"))
            .await
            .unwrap();
        if status == 200 {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if pred(&v) {
                return v;
            }
            last = v.to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("camera never reached the expected state on port {port} within {secs} s: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_holding_hub_moves_the_camera() {
    let Some(bin) = nats::require_nats() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let nats = nats::Nats::start(&bin, store.path());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_http, a_stream, b_http, b_stream) = (free_port(), free_port(), free_port(), free_port());
    let mut hub_a = serve(&nats.url(), "hub-a", a_http, a_stream, da.path());
    let _hub_b = serve(&nats.url(), "hub-b", b_http, b_stream, db.path());

    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        a_http,
        a_stream,
        CameraId::new("cam-1").unwrap(),
        "",
    );
    cfg.settings.resolution = Resolution::Qqvga;
    cfg.fps = 10;
    cfg.more_hubs = vec![HubEndpoint::plain("127.0.0.1", b_http, b_stream)];
    cfg.backoff.initial = Duration::from_millis(200);
    let _cam = HubCamera::spawn(cfg);

    // Both hubs list it, held by A.
    wait_camera(a_http, 60, |v| v["online"] == true && v["node"] == "hub-a").await;
    wait_camera(b_http, 30, |v| v["online"] == true && v["node"] == "hub-a").await;

    // SIGKILL of hub A: the camera moves to B, which holds it and serves its frames.
    hub_a.0.kill().unwrap();
    hub_a.0.wait().unwrap();
    let killed = Instant::now();
    let v = wait_camera(b_http, 30, |v| {
        v["online"] == true && v["node"] == "hub-b" && v["source"] == "push"
    })
    .await;
    eprintln!(
        "camera on hub B {:?} after the SIGKILL of hub A",
        killed.elapsed()
    );
    assert_eq!(v["node"], "hub-b", "{v}");
    let (status, jpeg) =
        tokio::task::spawn_blocking(move || get(b_http, "/api/cameras/cam-1/snapshot.jpg"))
            .await
            .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&jpeg));
    let mut d = jpeg_decoder::Decoder::new(&jpeg[..]);
    d.decode().unwrap();
    let info = d.info().unwrap();
    assert_eq!((info.width, info.height), (160, 120));
}

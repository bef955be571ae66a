//! Shared fixtures for the hub's end-to-end tests: a real hub on `127.0.0.1:0`, a minimal
//! test camera speaking the push protocol with real JPEGs, raw socket helpers, and a fake
//! standalone (seed-002) camera for pull mode.
// Test fixtures: a failed setup step should panic loudly, like a failed assertion.
#![allow(dead_code, clippy::unwrap_used)]

pub mod nats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use espcam_hub::{Config, Listeners};
use espcam_proto::stream::FrameFlags;
use espcam_proto::{
    Ack, ApMessage, ApRequest, CameraId, CameraMsg, Command, FrameHeader, Hello, HubMsg, Settings,
    StreamHello, Telemetry, encode_frame,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A hub running in this process.
pub struct TestHub {
    pub http: SocketAddr,
    pub stream: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), espcam_hub::RunError>>>,
}

impl TestHub {
    pub async fn start(config: Config) -> Self {
        let listeners = Listeners::bind(&config).await.unwrap();
        let (http, stream) = listeners.local_addrs().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(espcam_hub::run(config, listeners, async {
            let _ = rx.await;
        }));
        Self {
            http,
            stream,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn start_in(dir: &Path) -> Self {
        Self::start(Config::for_tests(dir)).await
    }

    /// Stops the hub and waits until it has released its data directory.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.http, path)
    }

    pub async fn get(&self, path: &str) -> Resp {
        http(self.http, "GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Resp {
        http(self.http, "POST", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        http(self.http, "DELETE", path, None).await
    }

    /// Polls `GET /api/cameras/{id}` until `pred` holds (bounded).
    pub async fn wait_camera(
        &self,
        id: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..200 {
            let r = self.get(&format!("/api/cameras/{id}")).await;
            if r.status == 200 {
                let v = r.json();
                if pred(&v) {
                    return v;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("camera {id} never reached the expected state");
    }
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

/// One HTTP/1.1 request with `Connection: close` (no client library needed).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response within 10 s")
        .unwrap();
    parse_response(&buf)
}

/// Parses a raw HTTP/1.1 response.
pub fn parse_response(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let raw = &buf[end..];
    let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..nl]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[nl + 2..nl + 2 + size]);
        raw = &raw[nl + 2 + size + 2..];
    }
}

/// A real JPEG of `w`×`h` (a gradient), at the esp32 quality scale `q` (0 = best).
pub fn jpeg(w: u16, h: u16, q: u8) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, 128]);
        }
    }
    let mut out = Vec::new();
    let quality = 100u8.saturating_sub(q.min(63));
    jpeg_encoder::Encoder::new(&mut out, quality.max(1))
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// Decodes a JPEG, returning its size.
pub fn decode(j: &[u8]) -> (u16, u16) {
    let mut d = jpeg_decoder::Decoder::new(j);
    let pixels = d.decode().expect("a decodable JPEG");
    let info = d.info().unwrap();
    assert!(!pixels.is_empty());
    (info.width, info.height)
}

pub fn now_us() -> u64 {
    espcam_hub::state::clock::now_us()
}

/// Options for [`TestCamera`].
#[derive(Clone)]
pub struct CamOpts {
    pub id: String,
    pub token: String,
    pub settings: Settings,
    pub fps: u32,
}

impl CamOpts {
    pub fn new(id: &str) -> Self {
        let settings = Settings {
            resolution: espcam_proto::Resolution::Qqvga,
            ..Settings::default()
        };
        Self {
            id: id.into(),
            token: String::new(),
            settings,
            fps: 30,
        }
    }
}

/// Connects a WebSocket client.
pub async fn ws(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Sends a hello and returns the hub's first answer and, on rejection, the close frame.
pub async fn hello_exchange(ws: &mut Ws, hello: String) -> (HubMsg, Option<(u16, String)>) {
    ws.send(Message::Text(hello.into())).await.unwrap();
    let first = next_text(ws).await;
    let msg = HubMsg::from_json(&first).unwrap();
    let close = if matches!(msg, HubMsg::Rejected { .. }) {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => {
                    break Some((u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    } else {
        None
    };
    (msg, close)
}

pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
        {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

pub async fn next_binary(ws: &mut Ws) -> Bytes {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
        {
            Some(Ok(Message::Binary(b))) => return b,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected binary, got {other:?}"),
        }
    }
}

pub fn control_hello(o: &CamOpts) -> String {
    CameraMsg::Hello(Hello {
        proto: 1,
        camera: CameraId::new(&o.id).unwrap(),
        token: o.token.clone(),
        firmware: "test-cam 0".into(),
        sensor: "virtual".into(),
        settings: o.settings,
        board: None,
        ota_pending: false,
    })
    .to_json()
}

pub fn stream_hello(id: &str, token: &str) -> String {
    StreamHello {
        proto: 1,
        camera: CameraId::new(id).unwrap(),
        token: token.into(),
    }
    .to_json()
}

/// A framed message (header + JPEG).
pub fn framed(seq: u32, j: &[u8], w: u16, h: u16) -> Vec<u8> {
    encode_frame(
        &FrameHeader {
            flags: FrameFlags(FrameFlags::SYNTHETIC),
            sequence: seq,
            timestamp_us: now_us(),
            width: w,
            height: h,
            jpeg_len: j.len() as u32,
        },
        j,
    )
}

/// A push camera: control + stream links, real JPEGs at its current resolution, acks every
/// command. Dropping it (or [`TestCamera::kill`]) cuts both connections abruptly.
pub struct TestCamera {
    pub id: String,
    pub settings: Arc<Mutex<Settings>>,
    /// Every command received, in arrival order (`"quality 8"`).
    pub received: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl TestCamera {
    pub async fn connect(hub: &TestHub, opts: CamOpts) -> Self {
        Self::try_connect(hub, opts).await.unwrap()
    }

    /// Connects; `Err` holds the rejection reason.
    pub async fn try_connect(hub: &TestHub, opts: CamOpts) -> Result<Self, String> {
        let mut control = ws(&format!("ws://{}/ws/camera", hub.http)).await;
        match hello_exchange(&mut control, control_hello(&opts)).await {
            (HubMsg::Welcome { .. }, _) => {}
            (HubMsg::Rejected { reason }, _) => return Err(reason),
            (other, _) => panic!("unexpected {other:?}"),
        }
        let mut stream = ws(&format!("ws://{}/ws/stream", hub.stream)).await;
        match hello_exchange(&mut stream, stream_hello(&opts.id, &opts.token)).await {
            (HubMsg::Welcome { .. }, _) => {}
            (HubMsg::Rejected { reason }, _) => return Err(reason),
            (other, _) => panic!("unexpected {other:?}"),
        }
        let settings = Arc::new(Mutex::new(opts.settings));
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(run_camera(
            control,
            stream,
            settings.clone(),
            received.clone(),
            opts.fps,
        ));
        Ok(Self {
            id: opts.id,
            settings,
            received,
            task,
        })
    }

    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for TestCamera {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_camera(
    mut control: Ws,
    mut stream: Ws,
    settings: Arc<Mutex<Settings>>,
    received: Arc<Mutex<Vec<String>>>,
    fps: u32,
) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(fps.max(1))));
    let mut telemetry = tokio::time::interval(Duration::from_millis(500));
    let mut cache: HashMap<(u16, u16, u8), Vec<u8>> = HashMap::new();
    let mut seq = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let s = *settings.lock().unwrap();
                let (w, h) = (s.resolution.width(), s.resolution.height());
                let j = cache.entry((w, h, s.quality.get())).or_insert_with(|| jpeg(w, h, s.quality.get()));
                seq = seq.wrapping_add(1);
                if stream.send(Message::Binary(framed(seq, j, w, h).into())).await.is_err() {
                    return;
                }
            }
            _ = telemetry.tick() => {
                let s = *settings.lock().unwrap();
                let t = CameraMsg::Telemetry(Telemetry {
                    fps: fps as f32, frames_sent: u64::from(seq), frames_dropped: 0,
                    heap_free: 100_000, psram_free: 0, uptime_ms: 1, rssi: None, settings: s,
                    quality_in_force: None,
                });
                if control.send(Message::Text(t.to_json().into())).await.is_err() {
                    return;
                }
            }
            msg = control.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let HubMsg::Command(c) = HubMsg::from_json(&t).unwrap() else { continue };
                    received.lock().unwrap().push(c.command.to_string());
                    let ack = {
                        let mut s = settings.lock().unwrap();
                        c.command.apply(&mut s);
                        Ack { id: c.id, cmd: Some(c.command.name().into()), ok: true, settings: *s, error: None }
                    };
                    if control.send(Message::Text(CameraMsg::Ack(ack).to_json().into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            msg = stream.next() => match msg {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// A fake standalone (seed-002) camera: `ws://127.0.0.1:P/ws`, bare JPEGs, welcome,
/// heartbeats, acks. Accepts one client at a time.
pub struct ApCamera {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ApCamera {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut settings = Settings {
                resolution: espcam_proto::Resolution::Qqvga,
                ..Settings::default()
            };
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    continue;
                };
                let welcome = ApMessage::Welcome {
                    message: "Connected to 30fps drone camera stream".into(),
                };
                if ws
                    .send(Message::Text(welcome.to_json().into()))
                    .await
                    .is_err()
                {
                    continue;
                }
                let mut tick = tokio::time::interval(Duration::from_millis(33));
                let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let j = jpeg(settings.resolution.width(), settings.resolution.height(), 12);
                            if ws.send(Message::Binary(j.into())).await.is_err() { break; }
                        }
                        _ = heartbeat.tick() => {
                            let hb = ApMessage::Heartbeat { fps: 30.0, clients: 1 };
                            if ws.send(Message::Text(hb.to_json().into())).await.is_err() { break; }
                        }
                        msg = ws.next() => match msg {
                            Some(Ok(Message::Text(t))) => {
                                if let Ok(ApRequest::Command(c)) = ApRequest::parse(&t) {
                                    let ok = !matches!(c.command, Command::Reboot);
                                    c.command.apply(&mut settings);
                                    let ack = ApMessage::Ack(Ack { id: c.id, cmd: Some(c.command.name().into()), ok, settings, error: None });
                                    if ws.send(Message::Text(ack.to_json().into())).await.is_err() { break; }
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                    }
                }
            }
        });
        Self { addr, task }
    }
}

impl Drop for ApCamera {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A WebSocket client written by hand on a raw TCP socket, for what a well-behaved client
/// library refuses to send (invalid UTF-8, frames cut in the middle, never reading).
pub struct RawWs {
    pub tcp: TcpStream,
}

impl RawWs {
    /// Connects and performs the upgrade handshake on `tcp` (already connected).
    pub async fn handshake(mut tcp: TcpStream, path: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        // Read the response head byte by byte so no frame after it is swallowed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut b))
                .await
                .expect("handshake answer within 5 s")
                .unwrap();
            assert_eq!(n, 1, "connection closed during the handshake");
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Self { tcp }
    }

    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        Self::handshake(TcpStream::connect(addr).await.unwrap(), path).await
    }

    /// Writes one masked client frame (`fin` set).
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.tcp.write_all(&client_frame(opcode, payload)).await
    }

    /// Reads whatever the server sends until it closes the TCP connection (or 10 s pass),
    /// and returns the server frames as `(opcode, payload)`.
    pub async fn read_until_closed(&mut self) -> Vec<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the server did not close the connection");
        server_frames(&buf)
    }
}

/// A masked client frame with `fin` set and the whole payload.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xFA, 0x21, 0x3D];
    let mut v = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

/// Parses unmasked server frames; a cut-off last frame is ignored.
pub fn server_frames(mut buf: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while buf.len() >= 2 {
        let (len, at) = match buf[1] & 0x7F {
            126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (usize::from(n), 2),
        };
        if buf.len() < at + len {
            break;
        }
        out.push((buf[0] & 0x0F, buf[at..at + len].to_vec()));
        buf = &buf[at + len..];
    }
    out
}

/// The close code of the first close frame in `frames`, with its reason.
pub fn close_of(frames: &[(u8, Vec<u8>)]) -> Option<(u16, String)> {
    frames.iter().find(|(op, _)| *op == 0x8).map(|(_, p)| {
        let code = p
            .get(..2)
            .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
        (
            code,
            String::from_utf8_lossy(p.get(2..).unwrap_or(&[])).into_owned(),
        )
    })
}

/// Reads one metric's value from `/metrics`.
pub async fn metric(hub: &TestHub, name: &str) -> Option<f64> {
    let text = hub.get("/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits (bounded) until `pred(metric)` holds.
pub async fn wait_metric(hub: &TestHub, name: &str, pred: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..400 {
        if let Some(v) = metric(hub, name).await
            && pred(v)
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("metric {name} never reached the expected value");
}

/// Runs ffprobe on `file`, returning (frames, width, height); `None` (with a message) when
/// ffprobe is not installed and ESPCAM_REQUIRE_TOOLS is not set.
pub fn ffprobe(file: &std::path::Path) -> Option<(u64, u64, u64)> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "json",
        ])
        .arg(file)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var_os("ESPCAM_REQUIRE_TOOLS").is_none(),
                "ffprobe is required (ESPCAM_REQUIRE_TOOLS is set): {e}"
            );
            eprintln!("skipping the ffprobe checks: ffprobe not found ({e}); apt install ffmpeg");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    let frames = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    Some((
        frames,
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
    ))
}

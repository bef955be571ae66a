//! The benchmark's viewers: real WebSocket clients of `/ws/view/{camera}` that do as little
//! work per frame as honestly possible, so the load generator leaves the shared cores to
//! the relay it measures.
//!
//! The upgrade goes through hyper-util's client (checking `101` and
//! `Sec-WebSocket-Accept`); frames are read with `fastwebsockets`, the codec the hub's
//! viewer path uses. Server frames are not masked, so a binary message's payload is handed
//! over as a slice of the codec's read buffer: the stamp is read from its first bytes and
//! nothing is copied. A frame's latency is taken when the codec returns it ("the viewer holds
//! the whole message").
//!
//! This module must never reach into the relay (it speaks only the public protocol), and must
//! never keep a frame: each is dropped as soon as its stamp is read.

use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use fastwebsockets::{OpCode, Role, WebSocket, WebSocketError};
use futures_util::{Stream, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::Empty;
use hyper::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::frame::read_stamp;
use super::load::{Phase, histogram, now_us};

/// Receive buffer of stalled viewers' sockets: small, as on a slow phone link, so the
/// relay's send path actually fills up within a short run instead of after megabytes of
/// kernel buffering.
const STALLED_RCVBUF: usize = 4096;
/// How long one viewer connection (TCP + WebSocket handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP clients viewers upgrade through: one for readers, one whose sockets get the
/// small receive buffer of stalled viewers.
#[derive(Debug, Clone)]
pub struct Clients {
    reading: Client<HttpConnector, Empty<Bytes>>,
    stalled: Client<HttpConnector, Empty<Bytes>>,
}

impl Clients {
    pub fn new() -> Self {
        let build = |rcvbuf: Option<usize>| {
            let mut c = HttpConnector::new();
            c.set_nodelay(true);
            c.set_recv_buffer_size(rcvbuf);
            Client::builder(TokioExecutor::new()).build(c)
        };
        Self {
            reading: build(None),
            stalled: build(Some(STALLED_RCVBUF)),
        }
    }
}

/// How a viewer behaves.
#[derive(Debug, Clone)]
pub struct ViewerSpec {
    /// Relay HTTP port.
    pub port: u16,
    /// `/ws/view/{camera}[?meta=1]`.
    pub path: String,
    /// Stops reading when the measured window starts (keeps the socket open).
    pub stalled: bool,
}

type Ws = WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

/// A viewer whose upgrade succeeded.
pub struct Viewer {
    ws: Ws,
    stalled: bool,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("stalled", &self.stalled)
            .finish_non_exhaustive()
    }
}

/// What one viewer saw during the measured window.
#[derive(Debug)]
pub struct ViewerResult {
    /// Relay latency of each frame, camera send → whole message received, µs.
    pub latency: Histogram<u64>,
    /// Binary messages (frames) received.
    pub frames: u64,
    /// Frames of its camera that it never received (gaps in the sequence).
    pub skipped: u64,
    /// Text (`?meta=1`) messages received.
    pub meta: u64,
    /// Why the connection ended early, if it did.
    pub error: Option<String>,
}

/// Connects one viewer and completes the WebSocket upgrade.
pub async fn connect(clients: &Clients, spec: &ViewerSpec) -> anyhow::Result<Viewer> {
    let url = format!("ws://127.0.0.1:{}{}", spec.port, spec.path);
    let client = if spec.stalled {
        &clients.stalled
    } else {
        &clients.reading
    };
    let ws = tokio::time::timeout(CONNECT_TIMEOUT, upgrade(client, spec))
        .await
        .with_context(|| format!("connecting viewer to {url} timed out"))?
        .with_context(|| format!("connecting viewer to {url}"))?;
    Ok(Viewer {
        ws,
        stalled: spec.stalled,
    })
}

/// The client side of the opening handshake (RFC 6455 §4.1) through hyper's client.
async fn upgrade(
    client: &Client<HttpConnector, Empty<Bytes>>,
    spec: &ViewerSpec,
) -> anyhow::Result<Ws> {
    let key = generate_key();
    let req = hyper::Request::get(format!("http://127.0.0.1:{}{}", spec.port, spec.path))
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_KEY, &key)
        .header(SEC_WEBSOCKET_VERSION, "13")
        .body(Empty::new())
        .context("building the upgrade request")?;
    let mut res = client.request(req).await?;
    check_response(&res, &key)?;
    let upgraded = hyper::upgrade::on(&mut res).await?;
    let mut ws = WebSocket::after_handshake(TokioIo::new(upgraded), Role::Client);
    // The codec answers pings and the relay's close itself.
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    Ok(ws)
}

/// Checks the status and `Sec-WebSocket-Accept` of a handshake response.
fn check_response<B>(res: &hyper::Response<B>, key: &str) -> anyhow::Result<()> {
    if res.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        bail!("expected `101 Switching Protocols`, got `{}`", res.status());
    }
    let want = derive_accept_key(key.as_bytes());
    match res.headers().get(SEC_WEBSOCKET_ACCEPT).map(|v| v.to_str()) {
        Some(Ok(a)) if a == want => Ok(()),
        Some(a) => bail!("Sec-WebSocket-Accept is `{a:?}`, expected `{want}`"),
        None => bail!("no Sec-WebSocket-Accept in the handshake response"),
    }
}

/// One frame as the view loop needs it: its opcode and, for binary messages, the stamp.
type Item = Result<(OpCode, Option<(u64, u64)>), WebSocketError>;

/// The viewer's frames as a stream. The codec's `read_frame` must not be dropped half-way
/// (it would lose a partly read header), so the read lives inside the stream and waiting for
/// the next frame can be raced against the phase changing.
fn frames(ws: Ws) -> Pin<Box<dyn Stream<Item = Item> + Send>> {
    Box::pin(futures_util::stream::unfold(ws, |mut ws| async move {
        let item = ws.read_frame().await.map(|f| {
            let stamp = (f.opcode == OpCode::Binary)
                .then(|| read_stamp(&f.payload))
                .flatten();
            (f.opcode, stamp)
        });
        Some((item, ws))
    }))
}

/// Per-viewer tallies.
struct Tally {
    r: ViewerResult,
    last_seq: Option<u64>,
}

impl Tally {
    /// Handles one frame; `Err` with the reason the viewer must stop.
    fn frame(
        &mut self,
        opcode: OpCode,
        stamp: Option<(u64, u64)>,
        measuring: bool,
    ) -> Result<(), String> {
        match opcode {
            OpCode::Binary => {
                let Some((seq, sent)) = stamp else {
                    return Err("a frame without the benchmark stamp".into());
                };
                if measuring {
                    let now = now_us();
                    self.r
                        .latency
                        .saturating_record(now.saturating_sub(sent).max(1));
                    self.r.frames += 1;
                    if let Some(last) = self.last_seq {
                        self.r.skipped += seq.saturating_sub(last + 1);
                    }
                }
                self.last_seq = Some(seq);
            }
            OpCode::Text if measuring => self.r.meta += 1,
            OpCode::Close => return Err("the relay closed the viewer".into()),
            _ => {}
        }
        Ok(())
    }
}

/// Receives frames until `Done`, recording latency and gaps while `Measure`.
pub async fn view_loop(v: Viewer, mut phase: watch::Receiver<Phase>) -> ViewerResult {
    let mut t = Tally {
        r: ViewerResult {
            latency: histogram(),
            frames: 0,
            skipped: 0,
            meta: 0,
            error: None,
        },
        last_seq: None,
    };
    let mut frames = frames(v.ws);
    loop {
        let now_phase = *phase.borrow_and_update();
        match now_phase {
            Phase::Done => break,
            Phase::Measure if v.stalled => {
                // Stop reading but keep the connection: the relay's writes back up.
                let _ = phase.wait_for(|p| *p == Phase::Done).await;
                break;
            }
            _ => {}
        }
        let measuring = now_phase == Phase::Measure;
        tokio::select! {
            biased;
            _ = phase.changed() => {}
            item = frames.next() => {
                let stop = match item {
                    Some(Ok((opcode, stamp))) => t.frame(opcode, stamp, measuring).err(),
                    Some(Err(WebSocketError::UnexpectedEOF)) | None => {
                        Some("the relay closed the viewer's connection".into())
                    }
                    Some(Err(e)) => Some(format!("viewer connection failed: {e}")),
                };
                if let Some(s) = stop {
                    t.r.error = Some(s);
                    break;
                }
            }
        }
    }
    t.r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_response_is_checked() {
        // The RFC 6455 §1.3 example key and answer.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let res = |status: u16, accept: Option<&str>| {
            let mut b = hyper::Response::builder().status(status);
            if let Some(a) = accept {
                b = b.header(SEC_WEBSOCKET_ACCEPT, a);
            }
            b.body(()).unwrap()
        };
        check_response(&res(101, Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")), key).unwrap();
        let e = check_response(&res(404, None), key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("got `404 Not Found`"), "{e}");
        let e = check_response(&res(101, Some("XXXXLMBiTxaQ9kYGzzhZRbK+xOo=")), key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`"), "{e}");
        let e = check_response(&res(101, None), key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Sec-WebSocket-Accept"), "{e}");
    }
}

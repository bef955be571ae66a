//! The benchmark's viewers: real WebSocket clients of `/ws/view/{camera}` that do as little
//! work per frame as honestly possible, so the load generator leaves the shared cores to
//! the hub it measures.
//!
//! Each viewer does its own HTTP/1.1 upgrade (checking `101` and `Sec-WebSocket-Accept`),
//! then reads the socket into a per-thread scratch buffer and runs [`Decoder`] over it:
//! frame headers are parsed, each binary message's stamp is read from its first bytes, and
//! the payload is never copied again. A frame's latency is taken when the read that
//! delivered its last byte returns ("the viewer holds the whole message").
//!
//! This module must never reach into the hub (it speaks only the public protocol), and must
//! never hold a frame: the only per-viewer state is the decoder's few dozen bytes.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::frame::read_stamp;
use super::load::{Phase, histogram, now_us};
use super::wsframe::{Decoder, Event, pong};

/// Receive buffer of stalled viewers' sockets: small, as on a slow phone link, so the hub's
/// send path actually fills up within a short run instead of after megabytes of kernel
/// buffering.
const STALLED_RCVBUF: u32 = 4096;
/// How long one viewer connection (TCP + WebSocket handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Scratch buffer each load-generator thread reads sockets into: large, so one `read`
/// drains everything a viewer has queued (a backlog of many frames costs one syscall).
const READ_BUF: usize = 256 * 1024;
/// Largest handshake response accepted.
const MAX_RESPONSE: usize = 16 * 1024;

thread_local! {
    /// Shared by every viewer running on this thread: the decoder keeps what must survive
    /// between reads, so the bytes can be dropped once fed, and a buffer per thread instead
    /// of per viewer keeps 500 viewers from touching 500 × 256 KiB.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// How a viewer behaves.
#[derive(Debug, Clone)]
pub struct ViewerSpec {
    /// Hub HTTP port.
    pub port: u16,
    /// `/ws/view/{camera}[?meta=1]`.
    pub path: String,
    /// Stops reading when the measured window starts (keeps the socket open).
    pub stalled: bool,
}

/// A viewer whose upgrade succeeded.
#[derive(Debug)]
pub struct Viewer {
    tcp: TcpStream,
    /// Bytes that arrived together with the `101` response (the first frames).
    early: Vec<u8>,
    stalled: bool,
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
pub async fn connect(spec: &ViewerSpec) -> anyhow::Result<Viewer> {
    let url = format!("ws://127.0.0.1:{}{}", spec.port, spec.path);
    tokio::time::timeout(CONNECT_TIMEOUT, async {
        let socket = TcpSocket::new_v4()?;
        if spec.stalled {
            socket.set_recv_buffer_size(STALLED_RCVBUF)?;
        }
        let mut tcp = socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], spec.port)))
            .await?;
        tcp.set_nodelay(true)?;
        let early = handshake(&mut tcp, spec.port, &spec.path).await?;
        anyhow::Ok(Viewer {
            tcp,
            early,
            stalled: spec.stalled,
        })
    })
    .await
    .with_context(|| format!("connecting viewer to {url} timed out"))?
    .with_context(|| format!("connecting viewer to {url}"))
}

/// The client side of the opening handshake (RFC 6455 §4.1). Returns the bytes read past
/// the response's end.
async fn handshake(tcp: &mut TcpStream, port: u16, path: &str) -> anyhow::Result<Vec<u8>> {
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_RESPONSE {
            bail!("handshake response longer than {MAX_RESPONSE} bytes");
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            bail!("hub closed the connection during the handshake");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let early = buf[end + 4..].to_vec();
    check_response(&head, &key)?;
    Ok(early)
}

/// Checks the status line and `Sec-WebSocket-Accept` of a handshake response head.
fn check_response(head: &str, key: &str) -> anyhow::Result<()> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("101") {
        bail!("expected `101 Switching Protocols`, got `{status}`");
    }
    let want = derive_accept_key(key.as_bytes());
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-accept")
            .then(|| value.trim())
    });
    match accept {
        Some(a) if a == want => Ok(()),
        Some(a) => bail!("Sec-WebSocket-Accept is `{a}`, expected `{want}`"),
        None => bail!("no Sec-WebSocket-Accept in the handshake response"),
    }
}

/// Per-viewer tallies, fed by decoder events.
struct Tally {
    r: ViewerResult,
    last_seq: Option<u64>,
}

impl Tally {
    /// Handles one event; `received` is when the bytes completing it were read. Returns a
    /// pong to send, or `Err` with the reason the viewer must stop.
    fn event(
        &mut self,
        e: Event<'_>,
        measuring: bool,
        received: &mut Option<u64>,
        pongs: &mut Vec<u8>,
    ) -> Result<(), String> {
        match e {
            Event::Binary { head, len } => {
                let Some((seq, sent)) = read_stamp(head) else {
                    return Err(format!("a {len}-byte frame without the benchmark stamp"));
                };
                if measuring {
                    let now = *received.get_or_insert_with(now_us);
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
            Event::Text { .. } => {
                if measuring {
                    self.r.meta += 1;
                }
            }
            Event::Ping(p) => pongs.extend(pong(p)),
            Event::Close(code) => return Err(format!("hub closed the viewer (code {code:?})")),
        }
        Ok(())
    }
}

/// Receives frames until `Done`, recording latency and gaps while `Measure`.
pub async fn view_loop(v: Viewer, mut phase: watch::Receiver<Phase>) -> ViewerResult {
    let Viewer {
        mut tcp,
        early,
        stalled,
    } = v;
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
    let mut dec = Decoder::new();
    let mut pongs = Vec::new();
    let mut stop: Option<String> = None;
    let fed = dec.feed(&early, |e| {
        if stop.is_none()
            && let Err(s) = t.event(e, false, &mut None, &mut pongs)
        {
            stop = Some(s);
        }
    });
    if let Err(e) = fed {
        stop = Some(format!("bad frame from the hub: {e:#}"));
    }
    loop {
        if let Some(s) = stop.take() {
            t.r.error = Some(s);
            break;
        }
        if !pongs.is_empty() {
            if let Err(e) = tcp.write_all(&pongs).await {
                t.r.error = Some(format!("answering a ping: {e}"));
                break;
            }
            pongs.clear();
        }
        let now_phase = *phase.borrow_and_update();
        match now_phase {
            Phase::Done => break,
            Phase::Measure if stalled => {
                // Stop reading but keep the connection: the hub's writes back up.
                let _ = phase.wait_for(|p| *p == Phase::Done).await;
                break;
            }
            _ => {}
        }
        let measuring = now_phase == Phase::Measure;
        // Reads inside a poll so the per-thread scratch buffer is never borrowed across an
        // await. `poll_read` (unlike `try_read`) treats a short read as "drained", which
        // saves a `recv` that would only return `EAGAIN` after every wake-up.
        let read = std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|buf| {
                let mut rb = ReadBuf::new(buf);
                match Pin::new(&mut tcp).poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        stop = Some(format!("viewer connection failed: {e}"));
                    }
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                        stop = Some("hub closed the viewer's connection".into());
                    }
                    Poll::Ready(Ok(())) => {
                        let mut received = None;
                        let fed = dec.feed(rb.filled(), |e| {
                            if stop.is_none()
                                && let Err(s) = t.event(e, measuring, &mut received, &mut pongs)
                            {
                                stop = Some(s);
                            }
                        });
                        if let Err(e) = fed {
                            stop = Some(format!("bad frame from the hub: {e:#}"));
                        }
                    }
                }
                Poll::Ready(())
            })
        });
        tokio::select! {
            biased;
            _ = phase.changed() => {}
            () = read => {}
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
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  connection: Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        check_response(ok, key).unwrap();
        let e = check_response("HTTP/1.1 404 Not Found\r\ncontent-length: 0", key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("got `HTTP/1.1 404 Not Found`"), "{e}");
        let e = check_response(&ok.replace("s3pP", "XXXX"), key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`"), "{e}");
        let e = check_response("HTTP/1.1 101 Switching Protocols", key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Sec-WebSocket-Accept"), "{e}");
    }
}

//! The server side of the viewer WebSocket (`/ws/view/{camera}`) on the upgraded
//! connection: `fastwebsockets` reads and checks what the client sends, a thin vectored
//! writer of ours sends the frames.
//!
//! Why not axum's `WebSocket`: tungstenite copies every outgoing message into a per-socket
//! buffer that keeps the capacity of the largest frame (≈ one JPEG per viewer, forever) and
//! writes each message with its own syscall. Here each JPEG goes out as one `writev` of a
//! 2–10 byte header (formatted by the codec's `Frame::fmt_head`) and the shared JPEG `Bytes`
//! (no copy, no per-viewer frame buffer), with the `?meta=1` text message in the same
//! syscall. Why not the codec's own writer: it writes each frame with its own syscall (and
//! copies frames under 1 KiB, the metadata text), and the relay benchmark measured 1.75–1.9×
//! the hub CPU per delivered frame with it at 100 and 500 viewers, against 0.91–1.24× (five
//! runs) for this writer, each next to the hand-written codec it replaced in the same run
//! (docs/BENCHMARKS.md, "Viewer WebSocket codec").
//!
//! Reading, and every decision RFC 6455 asks of a server about what a client sent, go
//! through the codec's read half plus [`Reader`]: fragmented messages are reassembled
//! (control frames may arrive between the fragments), a fragmented or over-125-byte control
//! frame is a protocol error (1002), invalid UTF-8 is 1007, a message over
//! [`MAX_CLIENT_FRAME`] (whole or in fragments) is 1009. Every close the hub sends is one
//! unfragmented frame of at most 125 bytes (code + reason cut to 123 bytes on a character
//! boundary), followed by a clean TCP close: the hub shuts down its sending side and reads
//! what the client still sends (briefly, boundedly) before dropping the socket, so the
//! client reads the close code instead of a connection reset (issue 10).
//!
//! The codec's read future is not cancel-safe (it may have consumed half a header when
//! dropped), so it lives inside a stream that the viewer loop polls again after each frame
//! it sends, never dropped half-way; the read and write halves share the connection through
//! [`Shared`], whose lock is never contended (one task uses both).
//!
//! Known deviation, from the codec: unmasked client frames are accepted (RFC 6455 §5.1 says
//! a server must close on them); `fastwebsockets` does not expose the mask bit.
//!
//! This module must never buffer frames: the caller hands it one frame at a time and awaits
//! the write; it must never accept a client message larger than [`MAX_CLIENT_FRAME`].

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use fastwebsockets::{Frame, OpCode, Role, WebSocketError};
use futures_util::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::http::error::error_body;

/// Largest message a viewer may send (pings, `get_stats`), whole or summed over fragments.
pub(crate) const MAX_CLIENT_FRAME: usize = 4096;
/// Largest control-frame payload (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;
/// After the hub's close: how long, and how many bytes, it reads what the client still
/// sends before dropping the socket (unread bytes would turn the close into a reset).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// Close codes used here (RFC 6455 §7.4.1).
pub(crate) const CLOSE_NORMAL: u16 = espcam_proto::close::NORMAL;
pub(crate) const CLOSE_AWAY: u16 = espcam_proto::close::AWAY;
pub(crate) const CLOSE_PROTOCOL: u16 = espcam_proto::close::PROTOCOL;
pub(crate) const CLOSE_INVALID_DATA: u16 = espcam_proto::close::INVALID_DATA;
pub(crate) const CLOSE_TOO_BIG: u16 = espcam_proto::close::TOO_BIG;

/// Why a request cannot become a viewer WebSocket: the status and message to answer with.
pub(crate) use crate::net::upgrade::Refusal;

/// Turns a [`Refusal`] into the JSON error response.
pub(crate) fn refusal_response((status, message): Refusal) -> Response {
    error_body(status, message)
}

/// Checks the upgrade request. On success returns the `101` response and the pending
/// upgrade; otherwise the refusal (426 for plain HTTP). The camera stream socket shares it
/// ([`crate::net::upgrade::accept`]).
pub(crate) fn accept(req: &mut Request) -> Result<(Response, hyper::upgrade::OnUpgrade), Refusal> {
    crate::net::upgrade::accept(req)
}

/// One handle on the upgraded connection; clones share it. The codec's read half owns one,
/// the writer another, and the close path a third (to shut down and linger after the codec
/// is done). Only the viewer's own task touches them, never two polls at once, so the lock
/// is always free; it exists because the halves live in different values.
#[derive(Clone)]
struct Shared(Arc<Mutex<TokioIo<hyper::upgrade::Upgraded>>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(Pin<&mut TokioIo<hyper::upgrade::Upgraded>>) -> T) -> T {
        let mut io = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(Pin::new(&mut *io))
    }
}

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|io| io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|io| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.with(|io| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.with(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|io| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|io| io.poll_shutdown(cx))
    }
}

/// A client frame: `fin`, opcode, unmasked payload.
type ClientFrame = (bool, OpCode, Vec<u8>);
/// A client frame as the codec returned it, or why it could not.
type Read = Result<ClientFrame, WebSocketError>;

/// The codec's read half as a stream of frames.
type Frames = Pin<Box<dyn Stream<Item = Read> + Send>>;

/// The viewer's connection.
pub(crate) struct Io {
    /// The codec's read half, inside a stream so a read interrupted by a frame to send is
    /// resumed, not restarted. Created when the client sends its first byte: most viewers
    /// never send anything, and the codec's read state (an 8 KiB buffer) would otherwise
    /// more than double what a viewer costs the hub.
    frames: Option<Frames>,
    /// The writer's handle ([`write_frames`]), the close path's, and until `frames` exists
    /// the first byte's.
    conn: Shared,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("viewer_ws::Io").finish_non_exhaustive()
    }
}

impl Io {
    /// Takes over the upgraded connection.
    pub(crate) fn new(upgraded: hyper::upgrade::Upgraded) -> Self {
        Self {
            frames: None,
            conn: Shared(Arc::new(Mutex::new(TokioIo::new(upgraded)))),
        }
    }

    /// The codec's read half over `first` (the byte already read) and the rest of the
    /// connection.
    fn frames(&self, first: u8) -> Frames {
        let rest = std::io::Cursor::new([first]).chain(self.conn.clone());
        // The write half is not used: [`write_frames`] writes.
        let (mut read, _) =
            fastwebsockets::after_handshake_split(rest, tokio::io::sink(), Role::Server);
        // [`Reader`] answers pings and closes itself, after checking them (size, close code).
        read.set_auto_close(false);
        read.set_auto_pong(false);
        // The codec refuses frames of at least this size (before reading their payload).
        read.set_max_message_size(MAX_CLIENT_FRAME + 1);
        Box::pin(futures_util::stream::unfold(read, |mut read| async move {
            // With auto-close and auto-pong off the codec has nothing to send.
            let frame = read
                .read_frame(&mut |_| async { Ok::<(), io::Error>(()) })
                .await
                .map(|f| (f.fin, f.opcode, Vec::from(f.payload)));
            Some((frame, read))
        }))
    }

    async fn write_frame(&mut self, frame: Frame<'_>) -> io::Result<()> {
        write_frames(&mut self.conn, [Some(frame), None]).await
    }
}

/// The largest frame header (2 + 8-byte length; servers never mask).
const MAX_HEADER: usize = 10;

/// Writes up to two frames with one `writev` (as few as the kernel allows): each frame's
/// header, formatted by the codec, next to its payload, which is never copied.
async fn write_frames(conn: &mut Shared, mut frames: [Option<Frame<'_>>; 2]) -> io::Result<()> {
    let mut heads = [[0u8; MAX_HEADER]; 2];
    let mut lens = [0usize; 2];
    for (i, f) in frames.iter_mut().enumerate() {
        if let Some(f) = f {
            lens[i] = f.fmt_head(&mut heads[i]);
        }
    }
    let [a, b] = &frames;
    let mut slices: [IoSlice<'_>; 4] = [
        IoSlice::new(&heads[0][..lens[0]]),
        IoSlice::new(a.as_ref().map_or(&[][..], |f| &f.payload)),
        IoSlice::new(&heads[1][..lens[1]]),
        IoSlice::new(b.as_ref().map_or(&[][..], |f| &f.payload)),
    ];
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = conn.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Sends a binary message, preceded by a text message when `text` is given, in one write.
pub(crate) async fn send_binary(
    io: &mut Io,
    text: Option<&[u8]>,
    payload: &[u8],
) -> io::Result<()> {
    let binary = Some(Frame::binary(payload.into()));
    match text {
        Some(t) => write_frames(&mut io.conn, [Some(Frame::text(t.into())), binary]).await,
        None => write_frames(&mut io.conn, [binary, None]).await,
    }
}

/// Sends an empty ping (the liveness check, `net/liveness.rs`); the client's pong arrives
/// through [`Reader::read`] like any frame.
pub(crate) async fn send_ping(io: &mut Io) -> io::Result<()> {
    io.write_frame(Frame::new(true, OpCode::Ping, None, Vec::new().into()))
        .await
}

/// Sends a text message.
pub(crate) async fn send_text(io: &mut Io, text: &str) -> io::Result<()> {
    io.write_frame(Frame::text(text.as_bytes().into())).await
}

/// The payload of a close frame: `code` and `reason` cut to 123 bytes, so the frame is a
/// valid control frame (≤ 125 bytes).
fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let reason = espcam_proto::close::close_reason(reason);
    let mut p = Vec::with_capacity(2 + reason.len());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(reason.as_bytes());
    p
}

/// Sends a close frame with `code` and `reason` (cut to fit 125 bytes), then ends the
/// connection cleanly: shuts down the sending side and reads whatever the client still
/// sends, for at most [`LINGER`] and [`LINGER_BYTES`]. The connection is over afterwards.
pub(crate) async fn send_close(io: &mut Io, code: u16, reason: &str) -> io::Result<()> {
    io.write_frame(Frame::close_raw(close_payload(code, reason).into()))
        .await?;
    io.conn.flush().await?;
    io.conn.shutdown().await?;
    let mut drained = 0;
    // On the heap, and only here: a buffer on the stack would sit in every viewer task's
    // state for the whole connection (this future is part of the viewer loop's).
    let mut chunk = vec![0u8; 4096];
    let linger = async {
        while drained <= LINGER_BYTES {
            match io.conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, linger).await;
    Ok(())
}

/// What the viewer sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A complete text message.
    Text(String),
    /// The viewer closed (already answered) or broke the protocol (close sent with a
    /// reason); the connection is over.
    Closed,
}

/// A message being reassembled from fragments.
#[derive(Debug)]
enum Partial {
    /// Text so far (validated as UTF-8 once complete).
    Text(Vec<u8>),
    /// A binary message: only its length is kept (a viewer's binary messages mean nothing).
    Binary(usize),
}

impl Partial {
    fn len(&self) -> usize {
        match self {
            Partial::Text(t) => t.len(),
            Partial::Binary(n) => *n,
        }
    }
}

/// What to do about one client frame.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Nothing,
    Text(String),
    Pong(Vec<u8>),
    /// Answer the client's close with this code (the close handshake).
    Echo(u16),
    /// Fail the connection (RFC 6455 §7.1.7).
    Fail(u16, &'static str),
}

/// The viewer's side of the protocol: reassembles fragmented messages and decides what each
/// client frame asks for. Holds at most one unfinished message of [`MAX_CLIENT_FRAME`].
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// The frame (or codec error) read but not yet handled.
    pending: Option<Result<ClientFrame, (u16, &'static str)>>,
    partial: Option<Partial>,
}

impl Reader {
    /// Waits for the next client frame. `Ok(false)` at end of stream. Cancel-safe: an
    /// interrupted read resumes at the next call.
    pub(crate) async fn read(&mut self, io: &mut Io) -> io::Result<bool> {
        let frames = match &mut io.frames {
            Some(f) => f,
            None => {
                // Cancel-safe: a byte is taken only when the read completes.
                let mut first = [0u8; 1];
                if io.conn.read(&mut first).await? == 0 {
                    return Ok(false);
                }
                io.frames.insert(io.frames(first[0]))
            }
        };
        let got = match frames.next().await {
            None | Some(Err(WebSocketError::UnexpectedEOF)) => return Ok(false),
            Some(Err(WebSocketError::IoError(e))) => return Err(e),
            Some(Err(e)) => Err(codec_error(&e)),
            Some(Ok(f)) => Ok(f),
        };
        self.pending = Some(got);
        Ok(true)
    }

    /// Handles what [`Reader::read`] got: answers pings and closes, returns texts.
    pub(crate) async fn process(&mut self, io: &mut Io, out: &mut Vec<Incoming>) -> io::Result<()> {
        let action = match self.pending.take() {
            None => return Ok(()),
            Some(Err((code, why))) => Action::Fail(code, why),
            Some(Ok((fin, opcode, payload))) => self.frame(fin, opcode, payload),
        };
        match action {
            Action::Nothing => {}
            Action::Text(t) => out.push(Incoming::Text(t)),
            Action::Pong(p) => io.write_frame(Frame::pong(p.into())).await?,
            Action::Echo(code) => {
                send_close(io, code, "").await?;
                out.push(Incoming::Closed);
            }
            Action::Fail(code, why) => {
                send_close(io, code, why).await?;
                out.push(Incoming::Closed);
            }
        }
        Ok(())
    }

    /// Decides about one frame (the codec has checked reserved bits, opcodes, that control
    /// frames are not fragmented, the size cap and the UTF-8 of unfragmented text).
    fn frame(&mut self, fin: bool, opcode: OpCode, payload: Vec<u8>) -> Action {
        let control = matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
        if control && payload.len() > MAX_CONTROL {
            return Action::Fail(CLOSE_PROTOCOL, "control frame over 125 bytes");
        }
        match opcode {
            OpCode::Ping => Action::Pong(payload),
            OpCode::Pong => Action::Nothing,
            OpCode::Close => close_answer(&payload),
            OpCode::Text | OpCode::Binary if self.partial.is_some() => Action::Fail(
                CLOSE_PROTOCOL,
                "a new message started before the fragmented one ended",
            ),
            OpCode::Text | OpCode::Binary if fin => match opcode {
                OpCode::Text => text(payload),
                _ => Action::Nothing,
            },
            OpCode::Text => {
                self.partial = Some(Partial::Text(payload));
                Action::Nothing
            }
            OpCode::Binary => {
                self.partial = Some(Partial::Binary(payload.len()));
                Action::Nothing
            }
            OpCode::Continuation => {
                let Some(partial) = self.partial.as_mut() else {
                    return Action::Fail(CLOSE_PROTOCOL, "continuation frame without a message");
                };
                if partial.len() + payload.len() > MAX_CLIENT_FRAME {
                    return Action::Fail(CLOSE_TOO_BIG, "message too big for a viewer socket");
                }
                match partial {
                    Partial::Text(t) => t.extend_from_slice(&payload),
                    Partial::Binary(n) => *n += payload.len(),
                }
                if !fin {
                    return Action::Nothing;
                }
                match self.partial.take() {
                    Some(Partial::Text(t)) => text(t),
                    _ => Action::Nothing,
                }
            }
        }
    }
}

fn text(payload: Vec<u8>) -> Action {
    match String::from_utf8(payload) {
        Ok(t) => Action::Text(t),
        Err(_) => Action::Fail(CLOSE_INVALID_DATA, "text message is not UTF-8"),
    }
}

/// The answer to a client's close frame (RFC 6455 §5.5.1, §7.4): echo a valid code (1000
/// when none was given), fail on a malformed one.
fn close_answer(payload: &[u8]) -> Action {
    match payload {
        [] => Action::Echo(CLOSE_NORMAL),
        [_] => Action::Fail(CLOSE_PROTOCOL, "close frame with a 1-byte payload"),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Action::Fail(CLOSE_PROTOCOL, "invalid close code");
            }
            if std::str::from_utf8(reason).is_err() {
                return Action::Fail(CLOSE_INVALID_DATA, "close reason is not UTF-8");
            }
            Action::Echo(code)
        }
    }
}

/// The close code and reason for a frame the codec refused.
fn codec_error(e: &WebSocketError) -> (u16, &'static str) {
    match e {
        WebSocketError::FrameTooLarge => (CLOSE_TOO_BIG, "message too big for a viewer socket"),
        WebSocketError::InvalidUTF8 => (CLOSE_INVALID_DATA, "text message is not UTF-8"),
        WebSocketError::ControlFrameFragmented => {
            (CLOSE_PROTOCOL, "control frames must not be fragmented")
        }
        WebSocketError::PingFrameTooLarge => (CLOSE_PROTOCOL, "control frame over 125 bytes"),
        WebSocketError::ReservedBitsNotZero => (CLOSE_PROTOCOL, "reserved bits set"),
        WebSocketError::InvalidValue => (CLOSE_PROTOCOL, "unknown opcode"),
        _ => (CLOSE_PROTOCOL, "invalid frame"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_payload_fits_a_control_frame_and_cuts_on_a_char_boundary() {
        let p = close_payload(CLOSE_AWAY, "hub shutting down");
        assert_eq!(&p[..2], &1001u16.to_be_bytes());
        assert_eq!(&p[2..], b"hub shutting down");
        // 61 two-byte characters = 122 bytes, then one more: 124 > 123, cut back to 122.
        let long = "é".repeat(62);
        let p = close_payload(CLOSE_PROTOCOL, &long);
        assert_eq!(p.len(), 2 + 122);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        let p = close_payload(CLOSE_PROTOCOL, &"x".repeat(500));
        assert_eq!(p.len(), MAX_CONTROL);
    }

    #[test]
    fn fragments_are_reassembled_with_control_frames_between() {
        let mut r = Reader::default();
        assert_eq!(
            r.frame(false, OpCode::Text, b"pi".to_vec()),
            Action::Nothing
        );
        assert_eq!(
            r.frame(true, OpCode::Ping, b"x".to_vec()),
            Action::Pong(b"x".to_vec())
        );
        assert_eq!(
            r.frame(true, OpCode::Continuation, b"ng".to_vec()),
            Action::Text("ping".into())
        );
        // A character split across fragments is fine once whole.
        assert_eq!(r.frame(false, OpCode::Text, vec![0xC3]), Action::Nothing);
        assert_eq!(
            r.frame(true, OpCode::Continuation, vec![0xA9]),
            Action::Text("é".into())
        );
        assert!(r.partial.is_none());
    }

    #[test]
    fn protocol_errors_get_their_codes() {
        let mut r = Reader::default();
        assert!(matches!(
            r.frame(true, OpCode::Continuation, vec![]),
            Action::Fail(CLOSE_PROTOCOL, _)
        ));
        r.frame(false, OpCode::Binary, vec![0; 10]);
        assert!(matches!(
            r.frame(true, OpCode::Text, b"x".to_vec()),
            Action::Fail(CLOSE_PROTOCOL, _)
        ));
        let mut r = Reader::default();
        r.frame(false, OpCode::Text, vec![b'a'; 4000]);
        assert!(matches!(
            r.frame(true, OpCode::Continuation, vec![b'a'; 97]),
            Action::Fail(CLOSE_TOO_BIG, _)
        ));
        let mut r = Reader::default();
        assert!(matches!(
            r.frame(true, OpCode::Text, vec![0xFF]),
            Action::Fail(CLOSE_INVALID_DATA, _)
        ));
        assert!(matches!(
            r.frame(true, OpCode::Pong, vec![0; 126]),
            Action::Fail(CLOSE_PROTOCOL, _)
        ));
    }

    #[test]
    fn close_frames_are_answered_per_rfc() {
        assert_eq!(close_answer(&[]), Action::Echo(1000));
        assert!(matches!(
            close_answer(&[3]),
            Action::Fail(CLOSE_PROTOCOL, _)
        ));
        assert_eq!(close_answer(&4000u16.to_be_bytes()), Action::Echo(4000));
        for bad in [999u16, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(
                matches!(
                    close_answer(&bad.to_be_bytes()),
                    Action::Fail(CLOSE_PROTOCOL, _)
                ),
                "{bad}"
            );
        }
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.push(0xFF);
        assert!(matches!(
            close_answer(&p),
            Action::Fail(CLOSE_INVALID_DATA, _)
        ));
    }
}

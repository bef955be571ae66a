//! The server side of the viewer WebSocket (`/ws/view/{camera}`), written directly on the
//! upgraded connection.
//!
//! Why not axum's `WebSocket`: tungstenite copies every outgoing message into a per-socket
//! buffer that keeps the capacity of the largest frame (≈ one JPEG per viewer, forever) and
//! writes each message with its own syscall. A viewer only ever *sends* frames, so here each
//! frame goes out as one `writev` of a 2–10 byte header and the shared JPEG `Bytes` (no copy,
//! no per-viewer frame buffer), with the `?meta=1` text message in the same syscall.
//! Incoming traffic from a viewer is tiny (close, ping, the seed's `ping`/`get_stats`), so
//! the reader is a minimal RFC 6455 frame parser with a hard size cap.
//!
//! This module must never buffer frames: the caller hands it one frame at a time and awaits
//! the write; it must never accept a client frame larger than [`MAX_CLIENT_FRAME`].

use std::io::{self, IoSlice};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::error::error_body;

/// Largest payload a viewer may send in one frame (pings, `get_stats`).
pub(crate) const MAX_CLIENT_FRAME: usize = 4096;

/// The upgraded connection.
pub(crate) type Io = TokioIo<hyper::upgrade::Upgraded>;

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Close codes used here (RFC 6455 §7.4.1).
pub(crate) const CLOSE_NORMAL: u16 = 1000;
pub(crate) const CLOSE_AWAY: u16 = 1001;
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// Why a request cannot become a viewer WebSocket: the status and message to answer with.
pub(crate) type Refusal = (StatusCode, &'static str);

/// Turns a [`Refusal`] into the JSON error response.
pub(crate) fn refusal_response((status, message): Refusal) -> Response {
    error_body(status, message)
}

/// Checks the upgrade request. On success returns the `101` response and the pending
/// upgrade; otherwise the refusal (426 for plain HTTP).
pub(crate) fn accept(req: &mut Request) -> Result<(Response, hyper::upgrade::OnUpgrade), Refusal> {
    let h = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint is a WebSocket: connect with ws://",
        ));
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err((
            StatusCode::BAD_REQUEST,
            "unsupported Sec-WebSocket-Version: expected 13",
        ));
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return Err((StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err((
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded to a WebSocket",
        ));
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok((
        (StatusCode::SWITCHING_PROTOCOLS, headers).into_response(),
        on_upgrade,
    ))
}

/// Encodes an unmasked server frame header; returns the header buffer and its length.
fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(l) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&l.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// Writes every slice, in as few syscalls as the kernel allows.
async fn write_all_vectored(io: &mut Io, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
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
    let (bh, bl) = header(OP_BINARY, payload.len());
    match text {
        Some(t) => {
            let (th, tl) = header(OP_TEXT, t.len());
            let mut bufs = [
                IoSlice::new(&th[..tl]),
                IoSlice::new(t),
                IoSlice::new(&bh[..bl]),
                IoSlice::new(payload),
            ];
            write_all_vectored(io, &mut bufs).await
        }
        None => {
            let mut bufs = [IoSlice::new(&bh[..bl]), IoSlice::new(payload)];
            write_all_vectored(io, &mut bufs).await
        }
    }
}

/// Sends one control or text frame.
async fn send_frame(io: &mut Io, opcode: u8, payload: &[u8]) -> io::Result<()> {
    let (h, l) = header(opcode, payload.len());
    let mut bufs = [IoSlice::new(&h[..l]), IoSlice::new(payload)];
    write_all_vectored(io, &mut bufs).await
}

/// Sends a text message.
pub(crate) async fn send_text(io: &mut Io, text: &str) -> io::Result<()> {
    send_frame(io, OP_TEXT, text.as_bytes()).await
}

/// Sends a close frame with `code` and `reason` (cut to fit 125 bytes).
pub(crate) async fn send_close(io: &mut Io, code: u16, reason: &str) -> io::Result<()> {
    let mut p = Vec::with_capacity(2 + reason.len().min(123));
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(espcam_proto::close::close_reason(reason).as_bytes());
    send_frame(io, OP_CLOSE, &p).await?;
    io.flush().await
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

/// Reads and parses the viewer's frames. Holds at most one client frame.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Reads what is available into the buffer. `Ok(false)` at end of stream.
    pub(crate) async fn read(&mut self, io: &mut Io) -> io::Result<bool> {
        let mut chunk = [0u8; 512];
        let n = io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Handles every complete frame in the buffer: answers pings and closes, returns texts.
    pub(crate) async fn process(&mut self, io: &mut Io, out: &mut Vec<Incoming>) -> io::Result<()> {
        loop {
            match parse(&self.buf) {
                Parsed::Incomplete => return Ok(()),
                Parsed::Error(code, why) => {
                    send_close(io, code, why).await?;
                    out.push(Incoming::Closed);
                    return Ok(());
                }
                Parsed::Frame {
                    opcode,
                    fin,
                    start,
                    len,
                } => {
                    let mask = [
                        self.buf[start - 4],
                        self.buf[start - 3],
                        self.buf[start - 2],
                        self.buf[start - 1],
                    ];
                    let mut payload: Vec<u8> = self.buf[start..start + len].to_vec();
                    for (i, b) in payload.iter_mut().enumerate() {
                        *b ^= mask[i % 4];
                    }
                    self.buf.drain(..start + len);
                    match opcode {
                        OP_PING => send_frame(io, OP_PONG, &payload).await?,
                        OP_CLOSE => {
                            // Echo the status code, as RFC 6455 §5.5.1 asks.
                            let code = payload
                                .get(..2)
                                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                                .unwrap_or(CLOSE_NORMAL);
                            let _ = send_close(io, code, "").await;
                            out.push(Incoming::Closed);
                            return Ok(());
                        }
                        OP_TEXT if fin => {
                            if let Ok(t) = String::from_utf8(payload) {
                                out.push(Incoming::Text(t));
                            }
                        }
                        // Fragments, binary messages and pongs carry nothing a viewer needs.
                        _ => {}
                    }
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Incomplete,
    Error(u16, &'static str),
    Frame {
        opcode: u8,
        fin: bool,
        /// Payload start (the 4 mask bytes precede it).
        start: usize,
        len: usize,
    },
}

fn parse(buf: &[u8]) -> Parsed {
    let [b0, b1, ..] = *buf else {
        return Parsed::Incomplete;
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 {
        return Parsed::Error(CLOSE_PROTOCOL, "reserved bits set");
    }
    if !matches!(
        opcode,
        OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Parsed::Error(CLOSE_PROTOCOL, "unknown opcode");
    }
    if b1 & 0x80 == 0 {
        return Parsed::Error(CLOSE_PROTOCOL, "client frames must be masked");
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Parsed::Incomplete,
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10)
            }
            None => return Parsed::Incomplete,
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_CLIENT_FRAME as u64 {
        return Parsed::Error(CLOSE_TOO_BIG, "message too big for a viewer socket");
    }
    let len = len as usize;
    let start = at + 4;
    if buf.len() < start + len {
        return Parsed::Incomplete;
    }
    Parsed::Frame {
        opcode,
        fin,
        start,
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut v = vec![0x80 | opcode];
        if payload.len() < 126 {
            v.push(0x80 | payload.len() as u8);
        } else {
            v.push(0x80 | 126);
            v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    #[test]
    fn headers() {
        assert_eq!(header(OP_BINARY, 5).0[..2], [0x82, 5]);
        let (h, l) = header(OP_BINARY, 10_000);
        assert_eq!(&h[..l], &[0x82, 126, 0x27, 0x10]);
        let (h, l) = header(OP_BINARY, 70_000);
        assert_eq!(&h[..l], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn parses_client_frames() {
        let f = masked(OP_TEXT, b"ping");
        assert_eq!(
            parse(&f),
            Parsed::Frame {
                opcode: OP_TEXT,
                fin: true,
                start: 6,
                len: 4
            }
        );
        for cut in 0..f.len() {
            assert_eq!(parse(&f[..cut]), Parsed::Incomplete, "cut {cut}");
        }
        let big = masked(OP_BINARY, &[0; 300]);
        assert_eq!(
            parse(&big),
            Parsed::Frame {
                opcode: OP_BINARY,
                fin: true,
                start: 8,
                len: 300
            }
        );
        let mut unmasked = f.clone();
        unmasked[1] &= 0x7F;
        assert!(matches!(parse(&unmasked), Parsed::Error(CLOSE_PROTOCOL, _)));
        let huge = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0];
        assert!(matches!(parse(&huge), Parsed::Error(CLOSE_TOO_BIG, _)));
        assert!(matches!(
            parse(&[0x83, 0x80]),
            Parsed::Error(CLOSE_PROTOCOL, _)
        ));
    }
}

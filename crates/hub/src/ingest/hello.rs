//! The first message of a camera stream socket (`/ws/stream`), read by hand with a small cap
//! before the connection is handed to tokio-tungstenite with the big frame limit.
//!
//! Why by hand: a stream socket must accept frames up to 2 × `max_frame_bytes` (4 MiB by
//! default) once the camera is admitted, but before its token is checked nothing justifies
//! more than [`MAX_HELLO`]; tungstenite's size limit is fixed for the life of a
//! `WebSocketStream` (tokio-tungstenite exposes no `set_config`), and axum's `WebSocket` the
//! same. Issue 15 measured what the old single limit allowed: 200 connections that each sent
//! a 4 MiB hello grew the hub from 13 to 836 MB.
//!
//! The reader decides from each frame's header, before reading its payload: a message that
//! would pass [`MAX_HELLO`] (whole or summed over fragments) is refused without reading the
//! rest, so a peer can make the hub hold at most [`MAX_HELLO`] bytes plus one frame header.
//! Pings and pongs before the hello are skipped (unanswered: nothing is sent before the
//! hello is checked). Every frame is read exactly, never beyond its end, so the connection
//! continues where the hello stopped.
//!
//! This module must never allocate more than the frame header announces, nor more than
//! [`MAX_HELLO`] in all.

use std::io;

use espcam_proto::close::{POLICY, PROTOCOL, TOO_BIG};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest hello, bytes (the same cap as a control message: a stream hello is an id and a
/// token of at most 256 bytes).
pub(super) const MAX_HELLO: usize = espcam_proto::control::MAX_CONTROL_MESSAGE;

/// Close code for a text message that is not UTF-8 (RFC 6455 §7.4.1).
const INVALID_DATA: u16 = 1007;

/// Largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// Why no hello was read.
#[derive(Debug, thiserror::Error)]
pub(super) enum HelloError {
    #[error("hello of at least {0} bytes exceeds the limit of {MAX_HELLO} bytes")]
    TooBig(u64),
    #[error("expected a JSON hello first, got a binary message")]
    Binary,
    #[error("invalid hello: {0}")]
    Protocol(&'static str),
    #[error("invalid hello: not UTF-8")]
    NotUtf8,
    #[error("connection closed before hello")]
    Closed,
    #[error("connection error before hello: {0}")]
    Io(#[from] io::Error),
}

impl HelloError {
    /// The close code to send, or `None` when the connection is already gone.
    pub(super) fn close_code(&self) -> Option<u16> {
        match self {
            Self::TooBig(_) => Some(TOO_BIG),
            Self::Protocol(_) => Some(PROTOCOL),
            Self::NotUtf8 => Some(INVALID_DATA),
            Self::Binary => Some(POLICY),
            Self::Closed | Self::Io(_) => None,
        }
    }
}

/// One frame header.
struct Head {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
}

async fn read_head<R: AsyncRead + Unpin>(io: &mut R) -> Result<Head, HelloError> {
    let mut b = [0u8; 2];
    io.read_exact(&mut b).await.map_err(eof_is_closed)?;
    if b[0] & 0x70 != 0 {
        return Err(HelloError::Protocol("reserved bits set"));
    }
    if b[1] & 0x80 == 0 {
        return Err(HelloError::Protocol("unmasked client frame"));
    }
    let len = match b[1] & 0x7F {
        126 => u64::from(io.read_u16().await.map_err(eof_is_closed)?),
        127 => io.read_u64().await.map_err(eof_is_closed)?,
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    io.read_exact(&mut mask).await.map_err(eof_is_closed)?;
    Ok(Head {
        fin: b[0] & 0x80 != 0,
        opcode: b[0] & 0x0F,
        len,
        mask,
    })
}

fn eof_is_closed(e: io::Error) -> HelloError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        HelloError::Closed
    } else {
        HelloError::Io(e)
    }
}

/// Reads `len` payload bytes (already checked against the cap) and unmasks them onto `out`.
async fn read_payload<R: AsyncRead + Unpin>(
    io: &mut R,
    head: &Head,
    out: &mut Vec<u8>,
) -> Result<(), HelloError> {
    let start = out.len();
    let len = usize::try_from(head.len).map_err(|_| HelloError::TooBig(head.len))?;
    out.resize(start + len, 0);
    io.read_exact(&mut out[start..])
        .await
        .map_err(eof_is_closed)?;
    for (i, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= head.mask[i % 4];
    }
    Ok(())
}

/// Reads the first data message, which must be text of at most [`MAX_HELLO`] bytes.
/// Bounded in size, not in time: the caller puts the hello deadline around it.
pub(super) async fn read_hello<R: AsyncRead + Unpin>(io: &mut R) -> Result<String, HelloError> {
    let mut text: Vec<u8> = Vec::new();
    let mut started = false;
    loop {
        let head = read_head(io).await?;
        match head.opcode {
            // Close, ping, pong.
            0x8..=0xA => {
                if !head.fin || head.len > MAX_CONTROL as u64 {
                    return Err(HelloError::Protocol(
                        "oversized or fragmented control frame",
                    ));
                }
                if head.opcode == 0x8 {
                    return Err(HelloError::Closed);
                }
                let mut skipped = Vec::new();
                read_payload(io, &head, &mut skipped).await?;
                continue;
            }
            0x2 if !started => return Err(HelloError::Binary),
            0x1 if !started => started = true,
            0x0 if started => {}
            0x0 => return Err(HelloError::Protocol("continuation frame without a message")),
            0x1 | 0x2 => return Err(HelloError::Protocol("new message inside a fragmented one")),
            _ => return Err(HelloError::Protocol("unknown opcode")),
        }
        let total = (text.len() as u64).saturating_add(head.len);
        if total > MAX_HELLO as u64 {
            return Err(HelloError::TooBig(total));
        }
        read_payload(io, &head, &mut text).await?;
        if head.fin {
            return String::from_utf8(text).map_err(|_| HelloError::NotUtf8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut v = vec![if fin { 0x80 } else { 0 } | opcode];
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

    async fn read(bytes: Vec<u8>) -> (Result<String, HelloError>, usize) {
        let mut cursor = std::io::Cursor::new(bytes);
        let r = read_hello(&mut cursor).await;
        (r, cursor.position() as usize)
    }

    #[tokio::test]
    async fn a_hello_is_read_exactly_and_what_follows_is_left() {
        let mut bytes = frame(true, 0x9, b"ping");
        bytes.extend(frame(false, 0x1, b"{\"type\":"));
        bytes.extend(frame(true, 0x0, b"\"hello\"}"));
        let hello_end = bytes.len();
        bytes.extend(frame(true, 0x2, &[7; 1000]));
        let (r, pos) = read(bytes).await;
        assert_eq!(r.unwrap(), "{\"type\":\"hello\"}");
        assert_eq!(pos, hello_end, "read beyond the hello");
    }

    #[tokio::test]
    async fn a_big_hello_is_refused_from_its_header() {
        // Only the header of a 1 MiB frame is there: the reader must not wait for the rest.
        let bytes = frame(true, 0x1, &vec![b'x'; 1 << 20])[..14].to_vec();
        let (r, pos) = read(bytes).await;
        assert!(matches!(r, Err(HelloError::TooBig(1_048_576))), "{r:?}");
        assert_eq!(r.unwrap_err().close_code(), Some(TOO_BIG));
        assert_eq!(pos, 14);
        // Exactly the cap passes; one more byte over fragments does not.
        let (r, _) = read(frame(true, 0x1, &vec![b' '; MAX_HELLO])).await;
        assert_eq!(r.unwrap().len(), MAX_HELLO);
        let mut bytes = frame(false, 0x1, &vec![b' '; MAX_HELLO]);
        bytes.extend(frame(true, 0x0, b" "));
        let (r, _) = read(bytes).await;
        assert!(
            matches!(r, Err(HelloError::TooBig(n)) if n == MAX_HELLO as u64 + 1),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn protocol_errors_and_binary_hellos_are_refused() {
        let (r, _) = read(frame(true, 0x2, b"jpeg")).await;
        assert!(matches!(r, Err(HelloError::Binary)), "{r:?}");
        let mut unmasked = frame(true, 0x1, b"{}");
        unmasked[1] &= 0x7F;
        let (r, _) = read(unmasked).await;
        assert!(matches!(r, Err(HelloError::Protocol(_))), "{r:?}");
        let (r, _) = read(frame(true, 0x0, b"{}")).await;
        assert!(matches!(r, Err(HelloError::Protocol(_))), "{r:?}");
        let (r, _) = read(frame(false, 0x9, b"")).await;
        assert!(matches!(r, Err(HelloError::Protocol(_))), "{r:?}");
        let (r, _) = read(frame(true, 0x1, &[0xFF, 0xFE])).await;
        assert_eq!(r.unwrap_err().close_code(), Some(INVALID_DATA));
        let (r, _) = read(frame(true, 0x8, &[3, 232])).await;
        assert!(matches!(r, Err(HelloError::Closed)), "{r:?}");
        let (r, _) = read(frame(true, 0x1, b"{\"type\"")[..3].to_vec()).await;
        assert!(matches!(r, Err(HelloError::Closed)), "{r:?}");
    }
}

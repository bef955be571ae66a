//! A lean, sans-IO reader of the frames a WebSocket *server* sends (RFC 6455 §5.2), for the
//! benchmark's viewers.
//!
//! Why not tungstenite: it copies every 10 KiB message into its own buffer and then into a
//! fresh `Vec`, which costs the load generator CPU that, on a shared 2-core machine, is
//! taken from the hub it measures. The benchmark only needs each binary message's first
//! bytes (the stamp in the JPEG's first `COM` segment) and the moment its last byte arrived,
//! so this decoder looks at headers, keeps at most [`HEAD_LEN`] bytes of each binary message
//! and skips the rest in place. Feed it whatever a `read` returned, in any split.
//!
//! It must never copy or buffer a payload beyond [`HEAD_LEN`] bytes (control frames: 125),
//! and never panic on what the peer sends: bad frames are errors.

use anyhow::bail;

/// Bytes kept from the start of each binary message: enough for the benchmark's stamp.
pub const HEAD_LEN: usize = 32;
/// Largest frame header a server sends: 2 + 8-byte length (servers never mask).
const MAX_HEADER: usize = 10;
/// Largest control-frame payload (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    /// Payload length.
    pub len: u64,
    /// Bytes the header itself takes (2, 4 or 10).
    pub header_len: usize,
}

/// Parses a server frame header at the start of `buf`: `Ok(None)` if `buf` does not hold
/// all of it yet.
pub fn parse_header(buf: &[u8]) -> anyhow::Result<Option<Header>> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        bail!(
            "frame with reserved bits {:#04x} set: no extension was negotiated",
            b0 & 0x70
        );
    }
    if b1 & 0x80 != 0 {
        bail!("masked frame from the server: RFC 6455 says servers never mask");
    }
    let (len, header_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut l = [0u8; 8];
                l.copy_from_slice(b);
                let len = u64::from_be_bytes(l);
                if len >> 63 != 0 {
                    bail!("frame length {len} has its most significant bit set");
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        len,
        header_len,
    }))
}

/// A whole message or control frame, as the decoder completes it.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A binary message: its first bytes (up to [`HEAD_LEN`]) and its total length.
    Binary { head: &'a [u8], len: u64 },
    /// A text message (its content is not kept).
    Text { len: u64 },
    /// A ping; the peer expects a pong with this payload.
    Ping(&'a [u8]),
    /// The peer closed the connection (status code if it sent one); the decoder ignores
    /// anything after it.
    Close(Option<u16>),
}

/// Where the decoder is in the byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for (the rest of) a frame header.
    Header,
    /// Inside a frame's payload.
    Payload {
        remaining: u64,
        fin: bool,
        opcode: u8,
    },
    /// After a close frame.
    Closed,
}

/// The decoder's state between reads: a partial header, the current message's first bytes
/// and a control frame's payload. Nothing else survives a `feed`.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Bytes of a header split across reads.
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Opcode of the data message in progress (text or binary), if any: continuation
    /// frames belong to it.
    message: Option<u8>,
    message_len: u64,
    head: [u8; HEAD_LEN],
    head_len: usize,
    control: [u8; MAX_CONTROL],
    control_len: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            state: State::Header,
            header: [0; MAX_HEADER],
            header_len: 0,
            message: None,
            message_len: 0,
            head: [0; HEAD_LEN],
            head_len: 0,
            control: [0; MAX_CONTROL],
            control_len: 0,
        }
    }

    /// Consumes `data` (the next bytes of the stream) and calls `on` for every message or
    /// control frame completed by it, in order.
    pub fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(Event<'_>)) -> anyhow::Result<()> {
        while !data.is_empty() {
            match self.state {
                State::Closed => return Ok(()),
                State::Header => {
                    let header = if self.header_len == 0 {
                        // Fast path: the whole header is in this read.
                        match parse_header(data)? {
                            Some(h) => {
                                data = &data[h.header_len..];
                                h
                            }
                            None => {
                                // Shorter than a header, so it fits.
                                self.header[..data.len()].copy_from_slice(data);
                                self.header_len = data.len();
                                return Ok(());
                            }
                        }
                    } else {
                        let old = self.header_len;
                        let take = (MAX_HEADER - old).min(data.len());
                        self.header[old..old + take].copy_from_slice(&data[..take]);
                        self.header_len += take;
                        match parse_header(&self.header[..self.header_len])? {
                            Some(h) => {
                                data = &data[h.header_len - old..];
                                self.header_len = 0;
                                h
                            }
                            None => return Ok(()),
                        }
                    };
                    self.start(header, &mut on)?;
                }
                State::Payload {
                    remaining,
                    fin,
                    opcode,
                } => {
                    let n = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
                    let (chunk, rest) = data.split_at(n);
                    data = rest;
                    if opcode >= OP_CLOSE {
                        let at = self.control_len;
                        self.control[at..at + n].copy_from_slice(chunk);
                        self.control_len += n;
                    } else if self.message == Some(OP_BINARY) && self.head_len < HEAD_LEN {
                        let take = (HEAD_LEN - self.head_len).min(n);
                        self.head[self.head_len..self.head_len + take]
                            .copy_from_slice(&chunk[..take]);
                        self.head_len += take;
                    }
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        self.finish(fin, opcode, &mut on);
                    } else {
                        self.state = State::Payload {
                            remaining,
                            fin,
                            opcode,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a new frame against the message in progress and enters its payload.
    fn start(&mut self, h: Header, on: &mut impl FnMut(Event<'_>)) -> anyhow::Result<()> {
        match h.opcode {
            OP_CONT => {
                if self.message.is_none() {
                    bail!("continuation frame without a message to continue");
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.message.is_some() {
                    bail!("new data message before the previous one ended");
                }
                self.message = Some(h.opcode);
                self.message_len = 0;
                self.head_len = 0;
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if !h.fin || h.len > MAX_CONTROL as u64 {
                    bail!(
                        "control frame (opcode {:#x}) fragmented or longer than 125 bytes ({} bytes)",
                        h.opcode,
                        h.len
                    );
                }
                self.control_len = 0;
            }
            op => bail!("unknown opcode {op:#x}"),
        }
        if h.opcode < OP_CLOSE {
            self.message_len += h.len;
        }
        if h.len == 0 {
            self.finish(h.fin, h.opcode, on);
        } else {
            self.state = State::Payload {
                remaining: h.len,
                fin: h.fin,
                opcode: h.opcode,
            };
        }
        Ok(())
    }

    /// A frame's last payload byte has been consumed.
    fn finish(&mut self, fin: bool, opcode: u8, on: &mut impl FnMut(Event<'_>)) {
        self.state = State::Header;
        match opcode {
            OP_CLOSE => {
                let c = &self.control[..self.control_len];
                let code = (c.len() >= 2).then(|| u16::from_be_bytes([c[0], c[1]]));
                self.state = State::Closed;
                on(Event::Close(code));
            }
            OP_PING => on(Event::Ping(&self.control[..self.control_len])),
            OP_PONG => {}
            _ if fin => match self.message.take() {
                Some(OP_BINARY) => on(Event::Binary {
                    head: &self.head[..self.head_len],
                    len: self.message_len,
                }),
                _ => on(Event::Text {
                    len: self.message_len,
                }),
            },
            _ => {}
        }
    }
}

/// A masked pong frame answering a ping with `payload` (clients must mask, RFC 6455 §5.3;
/// a zero key is a valid key and keeps the payload as is).
pub fn pong(payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(MAX_CONTROL);
    let mut out = Vec::with_capacity(6 + len);
    out.push(0x80 | OP_PONG);
    out.push(0x80 | len as u8);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&payload[..len]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked server frame with the given length encoding.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![if fin { 0x80 } else { 0 } | opcode];
        let n = payload.len();
        if n < 126 {
            v.push(n as u8);
        } else if n <= 0xFFFF {
            v.push(126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            v.push(127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    /// Everything the decoder reports, owned.
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Binary(Vec<u8>, u64),
        Text(u64),
        Ping(Vec<u8>),
        Close(Option<u16>),
    }

    fn feed_in_chunks(stream: &[u8], chunk: usize) -> anyhow::Result<Vec<Got>> {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            d.feed(c, |e| {
                got.push(match e {
                    Event::Binary { head, len } => Got::Binary(head.to_vec(), len),
                    Event::Text { len } => Got::Text(len),
                    Event::Ping(p) => Got::Ping(p.to_vec()),
                    Event::Close(c) => Got::Close(c),
                });
            })?;
        }
        Ok(got)
    }

    fn payload(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn parses_all_three_length_encodings() {
        assert_eq!(
            parse_header(&[0x82, 125]).unwrap(),
            Some(Header {
                fin: true,
                opcode: OP_BINARY,
                len: 125,
                header_len: 2
            })
        );
        assert_eq!(
            parse_header(&[0x82, 126, 0x28, 0x1C]).unwrap(),
            Some(Header {
                fin: true,
                opcode: OP_BINARY,
                len: 10_268,
                header_len: 4
            })
        );
        assert_eq!(
            parse_header(&[0x01, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]).unwrap(),
            Some(Header {
                fin: false,
                opcode: OP_TEXT,
                len: 70_000,
                header_len: 10
            })
        );
    }

    #[test]
    fn partial_headers_ask_for_more() {
        let h = [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70];
        for n in 0..h.len() {
            assert_eq!(parse_header(&h[..n]).unwrap(), None, "{n} bytes");
        }
        assert_eq!(parse_header(&[0x82, 126, 0x28]).unwrap(), None);
        assert_eq!(parse_header(&[0x82]).unwrap(), None);
        assert_eq!(parse_header(&h).unwrap().unwrap().len, 70_000);
    }

    #[test]
    fn refuses_what_a_server_must_not_send() {
        let e = |b: &[u8]| parse_header(b).unwrap_err().to_string();
        assert!(e(&[0x82, 0x85, 1, 2, 3, 4]).contains("masked"));
        assert!(e(&[0xC2, 5]).contains("reserved bits"));
        assert!(e(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]).contains("most significant bit"));
        let bad = |b: &[u8]| feed_in_chunks(b, b.len()).unwrap_err().to_string();
        assert!(bad(&frame(true, 0x3, b"x")).contains("unknown opcode 0x3"));
        assert!(bad(&frame(true, OP_CONT, b"x")).contains("continuation frame without"));
        assert!(bad(&frame(false, OP_PING, b"x")).contains("control frame"));
        assert!(bad(&frame(true, OP_PING, &[0; 126])).contains("longer than 125"));
        let mut two = frame(false, OP_BINARY, b"a");
        two.extend(frame(true, OP_TEXT, b"b"));
        assert!(bad(&two).contains("before the previous one ended"));
    }

    #[test]
    fn messages_split_across_reads_in_every_way() {
        // Meta text + small, 16-bit and 64-bit binary messages, a ping, a fragmented
        // binary message with a pong in the middle, then close and trailing garbage.
        let small = payload(20, 1);
        let mid = payload(10_268, 2);
        let big = payload(70_000, 3);
        let mut s = frame(true, OP_TEXT, br#"{"type":"frame","seq":1}"#);
        s.extend(frame(true, OP_BINARY, &small));
        s.extend(frame(true, OP_TEXT, b"{}"));
        s.extend(frame(true, OP_BINARY, &mid));
        s.extend(frame(true, OP_PING, b"hi"));
        s.extend(frame(true, OP_BINARY, &big));
        s.extend(frame(true, OP_BINARY, b""));
        s.extend(frame(false, OP_BINARY, &mid[..10]));
        s.extend(frame(true, OP_PONG, b""));
        s.extend(frame(false, OP_CONT, &mid[10..40]));
        s.extend(frame(true, OP_CONT, &mid[40..]));
        s.extend(frame(true, OP_CLOSE, &1001u16.to_be_bytes()));
        s.extend([0xFF; 7]);
        let want = vec![
            Got::Text(24),
            Got::Binary(small.clone(), 20),
            Got::Text(2),
            Got::Binary(mid[..HEAD_LEN].to_vec(), 10_268),
            Got::Ping(b"hi".to_vec()),
            Got::Binary(big[..HEAD_LEN].to_vec(), 70_000),
            Got::Binary(Vec::new(), 0),
            Got::Binary(mid[..HEAD_LEN].to_vec(), 10_268),
            Got::Close(Some(1001)),
        ];
        for chunk in [1, 2, 3, 5, 9, 10, 11, 64, 4096, 65_536, s.len()] {
            assert_eq!(feed_in_chunks(&s, chunk).unwrap(), want, "chunk {chunk}");
        }
    }

    #[test]
    fn pong_is_masked_and_echoes() {
        assert_eq!(pong(b"hi"), [0x8A, 0x82, 0, 0, 0, 0, b'h', b'i']);
    }
}

//! The viewer socket (`/ws/view/{camera}`) against RFC 6455 from a hand-written client: what a
//! well-behaved client library never sends (fragments, fragmented or oversized control
//! frames, oversized messages) and how the hub ends the connection (a close frame with the
//! right code, then a clean TCP close — never a reset that hides the code).
// Helpers here are test code too: unwrap is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A masked client frame with an explicit `fin` bit.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = client_frame(opcode, payload);
    if !fin {
        f[0] &= 0x7F;
    }
    f
}

/// A hub with one camera sending frames, and a raw viewer connected to it.
async fn viewer() -> (tempfile::TempDir, TestHub, TestCamera, RawWs) {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |v| v["frames_in"].as_u64() > Some(0))
        .await;
    let v = RawWs::connect(hub.http, "/ws/view/cam-1").await;
    (dir, hub, cam, v)
}

/// How the server ended the connection.
#[derive(Debug)]
struct Ending {
    frames: Vec<(u8, Vec<u8>)>,
    /// `None`: a clean end of stream (FIN); `Some`: the read error (e.g. a reset).
    error: Option<std::io::ErrorKind>,
}

impl Ending {
    fn close(&self) -> Option<(u16, String)> {
        close_of(&self.frames)
    }
}

/// Reads until the server closes the TCP connection (bounded), keeping the read error if
/// the end was not clean.
async fn read_to_end(v: &mut RawWs) -> Ending {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let error = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match v.tcp.read(&mut chunk).await {
                Ok(0) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Some(e.kind()),
            }
        }
    })
    .await
    .expect("the hub closed the connection within 10 s");
    Ending {
        frames: server_frames(&buf),
        error,
    }
}

/// Reads server frames until `done` holds for everything received so far (bounded), and
/// returns them.
async fn read_until(v: &mut RawWs, done: impl Fn(&[(u8, Vec<u8>)]) -> bool) -> Vec<(u8, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = v.tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the hub closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            let frames = server_frames(&buf);
            if done(&frames) {
                return frames;
            }
        }
    })
    .await
    .expect("the expected frames within 10 s")
}

/// The payloads of the received frames with `opcode`.
fn payloads(frames: &[(u8, Vec<u8>)], opcode: u8) -> Vec<&[u8]> {
    frames
        .iter()
        .filter(|(op, _)| *op == opcode)
        .map(|(_, p)| p.as_slice())
        .collect()
}

#[tokio::test]
async fn oversized_message_gets_1009_then_a_clean_close_not_a_reset() {
    let (_dir, hub, _cam, mut v) = viewer().await;
    v.send(OP_TEXT, &vec![b'x'; 5 * 1024]).await.unwrap();
    let end = read_to_end(&mut v).await;
    assert_eq!(end.close().map(|c| c.0), Some(1009), "{end:?}");
    assert_eq!(
        end.error, None,
        "the connection must end with a FIN, not a reset"
    );
    hub.wait_camera("cam-1", |v| v["viewers"] == 0).await;
    hub.stop().await;
}

#[tokio::test]
async fn oversized_message_in_small_fragments_gets_1009_then_a_clean_close() {
    let (_dir, hub, _cam, mut v) = viewer().await;
    // Five 1 KiB fragments: each is small, the message is not.
    let mut bytes = frame(false, OP_TEXT, &[b'x'; 1024]);
    for i in 1..5 {
        bytes.extend(frame(i == 4, OP_CONT, &[b'x'; 1024]));
    }
    v.tcp.write_all(&bytes).await.unwrap();
    let end = read_to_end(&mut v).await;
    assert_eq!(end.close().map(|c| c.0), Some(1009), "{end:?}");
    assert_eq!(
        end.error, None,
        "the connection must end with a FIN, not a reset"
    );
    hub.stop().await;
}

#[tokio::test]
async fn fragmented_text_ping_is_reassembled_and_answered() {
    let (_dir, hub, _cam, mut v) = viewer().await;
    // `ping` in three fragments with a control frame between them (RFC 6455 §5.4 allows
    // control frames in the middle of a fragmented message).
    let mut bytes = frame(false, OP_TEXT, b"p");
    bytes.extend(frame(false, OP_CONT, b"in"));
    bytes.extend(frame(true, OP_PING, b"mid"));
    bytes.extend(frame(true, OP_CONT, b"g"));
    v.tcp.write_all(&bytes).await.unwrap();
    let got = read_until(&mut v, |f| {
        !payloads(f, OP_PONG).is_empty() && !payloads(f, OP_TEXT).is_empty()
    })
    .await;
    assert_eq!(payloads(&got, OP_PONG), [b"mid"]);
    assert_eq!(payloads(&got, OP_TEXT), [b"pong"]);
    // Still a working viewer: a whole `get_stats` is answered too.
    v.send(OP_TEXT, b"get_stats").await.unwrap();
    let got = read_until(&mut v, |f| !payloads(f, OP_TEXT).is_empty()).await;
    let stats: serde_json::Value = serde_json::from_slice(payloads(&got, OP_TEXT)[0]).unwrap();
    assert_eq!(stats["type"], "stats", "{stats}");
    hub.stop().await;
}

#[tokio::test]
async fn fragmented_control_frame_is_a_protocol_error() {
    let (_dir, hub, _cam, mut v) = viewer().await;
    v.tcp
        .write_all(&frame(false, OP_PING, b"half"))
        .await
        .unwrap();
    let end = read_to_end(&mut v).await;
    assert_eq!(end.close().map(|c| c.0), Some(1002), "{end:?}");
    assert_eq!(end.error, None, "{end:?}");
    // Nothing was answered to the fragment.
    assert!(!end.frames.iter().any(|(op, _)| *op == OP_PONG), "{end:?}");
    hub.stop().await;
}

#[tokio::test]
async fn control_frame_over_125_bytes_is_a_protocol_error() {
    for opcode in [OP_PING, OP_PONG, OP_CLOSE] {
        let (_dir, hub, _cam, mut v) = viewer().await;
        let mut payload = vec![b'a'; 126];
        payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        v.send(opcode, &payload).await.unwrap();
        let end = read_to_end(&mut v).await;
        assert_eq!(
            end.close().map(|c| c.0),
            Some(1002),
            "opcode {opcode}: {end:?}"
        );
        assert_eq!(end.error, None, "opcode {opcode}: {end:?}");
        hub.stop().await;
    }
}

#[tokio::test]
async fn continuation_without_a_message_and_interrupted_messages_are_protocol_errors() {
    // A continuation frame with no message in progress.
    let (_dir, hub, _cam, mut v) = viewer().await;
    v.send(OP_CONT, b"stray").await.unwrap();
    let end = read_to_end(&mut v).await;
    assert_eq!(end.close().map(|c| c.0), Some(1002), "{end:?}");
    hub.stop().await;
    // A new text message while a fragmented one is unfinished.
    let (_dir, hub, _cam, mut v) = viewer().await;
    let mut bytes = frame(false, OP_TEXT, b"pi");
    bytes.extend(frame(true, OP_TEXT, b"ng"));
    v.tcp.write_all(&bytes).await.unwrap();
    let end = read_to_end(&mut v).await;
    assert_eq!(end.close().map(|c| c.0), Some(1002), "{end:?}");
    hub.stop().await;
}

#[tokio::test]
async fn invalid_utf8_text_is_refused_with_1007() {
    let (_dir, hub, _cam, mut v) = viewer().await;
    v.send(OP_TEXT, &[b'p', 0xFF, b'g']).await.unwrap();
    let end = read_to_end(&mut v).await;
    assert_eq!(end.close().map(|c| c.0), Some(1007), "{end:?}");
    assert_eq!(end.error, None, "{end:?}");
    hub.stop().await;
}

#[tokio::test]
async fn client_close_is_echoed_and_every_server_control_frame_fits_125_bytes() {
    let (_dir, hub, _cam, mut v) = viewer().await;
    // A close with a maximal 123-byte reason: the echo must still be a valid control frame.
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend(std::iter::repeat_n(b'r', 123));
    v.send(OP_CLOSE, &payload).await.unwrap();
    let end = read_to_end(&mut v).await;
    assert_eq!(end.close().map(|c| c.0), Some(4000), "{end:?}");
    assert_eq!(end.error, None, "{end:?}");
    for (op, p) in &end.frames {
        if *op >= 0x8 {
            assert!(p.len() <= 125, "control frame {op} of {} bytes", p.len());
        }
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_client_frame_trickling_in_between_sent_frames_is_read_whole() {
    // The hub sends 30 frames/s while this ping arrives a byte every 15 ms: reading must
    // resume where it stopped each time a frame was sent, never restart mid-header.
    let (_dir, hub, _cam, mut v) = viewer().await;
    let payload = b"trickle-0123456789";
    for b in frame(true, OP_PING, payload) {
        v.tcp.write_all(&[b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let got = read_until(&mut v, |f| !payloads(f, OP_PONG).is_empty()).await;
    assert_eq!(payloads(&got, OP_PONG), [payload]);
    assert!(
        payloads(&got, 0x2).len() >= 5,
        "frames kept flowing meanwhile"
    );
    hub.stop().await;
}

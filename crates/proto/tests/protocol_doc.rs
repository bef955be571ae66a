//! docs/PROTOCOL.md is checked against the code: every tagged example in it must decode with
//! the matching `espcam-proto` decoder and re-encode to exactly the same text or bytes, every
//! `alt` example must decode to the same value as the canonical one before it, every `error=`
//! example must be refused with exactly that message, and the resolution table must match
//! `Resolution`. Editing either the doc or the code without the other fails here.
//!
//! The tag syntax is described in an HTML comment at the top of PROTOCOL.md.

// Test code: an unwrap that fails is a test failure with a message, which is what we want.
#![allow(clippy::unwrap_used)]

mod common;

use espcam_proto::control::{MAX_CAMERA_ID, MAX_CONTROL_MESSAGE};
use espcam_proto::standalone::{MAX_CLIENTS, PONG, TOO_MANY_CLIENTS};
use espcam_proto::stream::DEFAULT_MAX_FRAME;
use espcam_proto::{
    ApMessage, ApRequest, CONTROL_PATH, CONTROL_PORT, CameraMsg, CommandMsg, FrameFlags,
    FrameHeader, FrameLimits, HubMsg, PROTOCOL_VERSION, Resolution, STREAM_PATH, STREAM_PORT,
    Settings, StreamHello, decode_frame, encode_frame,
};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|e| panic!("reading {DOC_PATH}: {e}"))
}

/// What an example claims about its body.
#[derive(Debug, Clone, PartialEq)]
enum Claim {
    /// Decodes and re-encodes to exactly the body.
    Canonical,
    /// Decodes to the same value as the previous canonical example of the same kind.
    Alt,
    /// Is refused with exactly this message.
    Error(String),
}

#[derive(Debug, Clone)]
struct Example {
    kind: String,
    claim: Claim,
    body: String,
    /// 1-based line of the opening fence, for failure messages.
    line: usize,
}

/// Finds every fenced block whose info string has `example=KIND`.
fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim_start() != "```")
            .collect();
        let Some(at) = info.find("example=") else {
            continue;
        };
        let tail = &info[at + "example=".len()..];
        let (kind, rest) = tail.split_once(' ').unwrap_or((tail, ""));
        let rest = rest.trim();
        let claim = if let Some(msg) = rest.strip_prefix("error=") {
            Claim::Error(msg.to_string())
        } else if rest == "alt" {
            Claim::Alt
        } else {
            assert!(
                rest.is_empty(),
                "line {}: unknown example tag {rest:?}",
                i + 1
            );
            Claim::Canonical
        };
        out.push(Example {
            kind: kind.to_string(),
            claim,
            body: body.join("\n"),
            line: i + 1,
        });
    }
    out
}

/// Removes the whitespace outside JSON strings, so examples can be wrapped for reading.
fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Hex digit pairs; `#` starts a comment that runs to the end of the line.
fn parse_hex(text: &str) -> Vec<u8> {
    text.lines()
        .flat_map(|l| l.split('#').next().unwrap_or("").split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("hex byte {b:?}: {e}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decodes an example body with the decoder for `kind`; returns its canonical re-encoding, or
/// the decoder's error message.
fn decode(kind: &str, body: &str) -> Result<String, String> {
    let text = body.trim();
    let msg = |e: &dyn std::fmt::Display| e.to_string();
    match kind {
        "settings" => serde_json::from_str::<Settings>(text)
            .map(|s| serde_json::to_string(&s).unwrap())
            .map_err(|e| msg(&e)),
        "camera-msg" => CameraMsg::from_json(text)
            .map(|m| m.to_json())
            .map_err(|e| msg(&e)),
        "hub-msg" => HubMsg::from_json(text)
            .map(|m| m.to_json())
            .map_err(|e| msg(&e)),
        "command" => CommandMsg::from_json(text)
            .map(|m| m.to_json())
            .map_err(|e| msg(&e)),
        "stream-hello" => StreamHello::from_json(text)
            .map(|m| m.to_json())
            .map_err(|e| msg(&e)),
        "ap-message" => ApMessage::from_json(text)
            .map(|m| m.to_json())
            .map_err(|e| msg(&e)),
        "ap-request" => ApRequest::parse(text)
            .map(|r| match r {
                ApRequest::Ping => "ping".to_string(),
                ApRequest::GetStats => "get_stats".to_string(),
                ApRequest::Command(c) => c.to_json(),
            })
            .map_err(|e| msg(&e)),
        "pong" => (text == PONG)
            .then(|| PONG.to_string())
            .ok_or_else(|| format!("expected {PONG:?}")),
        "close-reason" => (text == TOO_MANY_CLIENTS)
            .then(|| TOO_MANY_CLIENTS.to_string())
            .ok_or_else(|| format!("expected {TOO_MANY_CLIENTS:?}")),
        "frame-header" => FrameHeader::parse(&parse_hex(text))
            .map(|h| hex(&h.encode()))
            .map_err(|e| msg(&e)),
        "frame" => {
            let bytes = parse_hex(text);
            decode_frame(&bytes, &FrameLimits::default())
                .map_err(|e| msg(&e))
                .and_then(|f| {
                    let h = f.header.ok_or("a frame example must have a header")?;
                    Ok(hex(&encode_frame(&h, f.jpeg)))
                })
        }
        other => panic!("unknown example kind {other:?}"),
    }
}

/// What the body must re-encode to, for a canonical example.
fn expected_encoding(kind: &str, body: &str) -> String {
    match kind {
        "frame-header" | "frame" => hex(&parse_hex(body)),
        "ap-request" | "pong" | "close-reason" if !body.trim().starts_with('{') => {
            body.trim().to_string()
        }
        _ => minify_json(body),
    }
}

/// Checks every example; returns one line per failure.
fn check(examples: &[Example]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut last_canonical: std::collections::HashMap<&str, String> = Default::default();
    for ex in examples {
        let at = format!("PROTOCOL.md line {} ({} {:?})", ex.line, ex.kind, ex.claim);
        let result = decode(&ex.kind, &ex.body);
        match (&ex.claim, result) {
            (Claim::Canonical, Ok(encoded)) => {
                let expected = expected_encoding(&ex.kind, &ex.body);
                if encoded != expected {
                    failures.push(format!(
                        "{at}: re-encodes differently\n  doc:  {expected}\n  code: {encoded}"
                    ));
                }
                last_canonical.insert(&ex.kind, encoded);
            }
            (Claim::Alt, Ok(encoded)) => match last_canonical.get(ex.kind.as_str()) {
                Some(canonical) if *canonical == encoded => {}
                Some(canonical) => failures.push(format!(
                    "{at}: decodes to a different value than the canonical example before it\n  canonical: {canonical}\n  this:      {encoded}"
                )),
                None => failures.push(format!("{at}: no canonical example before it")),
            },
            (Claim::Error(expected), Err(actual)) => {
                if *expected != actual {
                    failures.push(format!(
                        "{at}: refused with a different message\n  doc:  {expected}\n  code: {actual}"
                    ));
                }
            }
            (Claim::Error(_), Ok(encoded)) => {
                failures.push(format!("{at}: should be refused but decodes to {encoded}"));
            }
            (_, Err(e)) => failures.push(format!("{at}: does not decode: {e}")),
        }
    }
    failures
}

#[test]
fn every_example_matches_the_code() {
    let all = examples(&doc());
    let failures = check(&all);
    assert!(
        failures.is_empty(),
        "{} of {} examples in docs/PROTOCOL.md disagree with espcam-proto:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// Guards the extractor: if the tags changed or the parser broke, the test above would pass
/// vacuously.
#[test]
fn the_doc_has_examples_of_every_kind() {
    let all = examples(&doc());
    for kind in [
        "settings",
        "camera-msg",
        "hub-msg",
        "command",
        "stream-hello",
        "ap-message",
        "ap-request",
        "pong",
        "close-reason",
        "frame-header",
        "frame",
    ] {
        assert!(
            all.iter()
                .any(|e| e.kind == kind && e.claim == Claim::Canonical),
            "no canonical {kind} example"
        );
    }
    let errors = all
        .iter()
        .filter(|e| matches!(e.claim, Claim::Error(_)))
        .count();
    let alts = all.iter().filter(|e| e.claim == Claim::Alt).count();
    assert!(all.len() >= 35, "only {} examples found", all.len());
    assert!(
        errors >= 8 && alts >= 4,
        "{errors} error and {alts} alt examples"
    );
    // Each message family is shown: camera → hub control messages by type…
    let doc = doc();
    for ty in [
        "hello",
        "telemetry",
        "ack",
        "welcome",
        "rejected",
        "heartbeat",
        "stats",
    ] {
        assert!(
            doc.contains(&format!("{{\"type\":\"{ty}\"")),
            "no example of type {ty}"
        );
    }
}

/// The checker must be able to fail: wrong examples are reported.
#[test]
fn the_checker_catches_drift() {
    let wrong = "\
```json example=hub-msg
{\"cmd\":\"quality\",\"value\":10,\"id\":7}
```
```json example=camera-msg
{\"type\":\"ack\",\"id\":7,\"cmd\":\"quality\",\"ok\":true}
```
```json example=hub-msg alt
{\"cmd\":\"quality\",\"value\":11}
```
```json example=hub-msg error=quality 64 out of range 0..=63
{\"cmd\":\"quality\",\"value\":70}
```
```hex example=frame-header
45 43 41 4D 01 00 00 00  00 00 00 07
```
";
    let failures = check(&examples(wrong));
    assert_eq!(failures.len(), 5, "{failures:#?}");
    assert!(
        failures[0].contains("re-encodes differently"),
        "key order is pinned"
    );
    assert!(failures[1].contains("does not decode"), "missing settings");
    assert!(failures[2].contains("different value"));
    assert!(failures[3].contains("different message"));
    assert!(failures[4].contains("frame header truncated"));
}

/// The worked header example means what its prose says.
#[test]
fn worked_header_example() {
    let all = examples(&doc());
    let ex = all.iter().find(|e| e.kind == "frame-header").unwrap();
    let h = FrameHeader::parse(&parse_hex(&ex.body)).unwrap();
    assert_eq!(
        h,
        FrameHeader {
            flags: FrameFlags(0),
            sequence: 7,
            timestamp_us: 1_700_000_000_123_456,
            width: 640,
            height: 480,
            jpeg_len: 5123,
        }
    );
    let ex = all.iter().find(|e| e.kind == "frame").unwrap();
    let bytes = parse_hex(&ex.body);
    let f = decode_frame(&bytes, &FrameLimits::default()).unwrap();
    let h = f.header.unwrap();
    assert!(h.flags.has(FrameFlags::SYNTHETIC) && h.flags.has(FrameFlags::CLOCK_UNSYNCED));
    assert_eq!((h.sequence, h.timestamp_us), (1, 2_500_000));
    assert_eq!((f.width, f.height, f.jpeg.len()), (16, 8, 47));
    assert_eq!(f.jpeg, &common::tiny_jpeg(16, 8, &[0x12, 0x34])[..]);
}

/// Rows of the markdown table that follows `<!-- table: NAME`.
fn table(doc: &str, name: &str) -> Vec<Vec<String>> {
    let marker = format!("<!-- table: {name}");
    let start = doc.find(&marker).unwrap_or_else(|| panic!("no {marker}"));
    doc[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

#[test]
fn resolution_table_matches_the_code() {
    let rows = table(&doc(), "resolutions");
    assert_eq!(rows.len(), Resolution::ALL.len());
    for (row, res) in rows.iter().zip(Resolution::ALL) {
        let size = format!("{} × {}", res.width(), res.height());
        assert_eq!(
            (
                row[0].as_str(),
                row[1].as_str(),
                row[2].as_str(),
                row[3].as_str()
            ),
            (
                res.index().to_string().as_str(),
                res.name(),
                size.as_str(),
                res.framesize_name()
            ),
            "row {row:?}"
        );
    }
    // The two driver generations differ by the two inserted sizes, never by less.
    let vga = &rows[usize::from(Resolution::Vga.index())];
    assert_eq!((vga[4].as_str(), vga[5].as_str()), ("8", "10"));
}

#[test]
fn ports_paths_and_limits_are_stated() {
    let doc = doc();
    for needle in [
        format!("ws://<hub>:{CONTROL_PORT}{CONTROL_PATH}"),
        format!("ws://<hub>:{STREAM_PORT}{STREAM_PATH}"),
        format!("ws://<camera>{}", espcam_proto::standalone::PATH),
        format!("16 KiB ({MAX_CONTROL_MESSAGE} bytes)"),
        format!("2 MiB ({DEFAULT_MAX_FRAME} bytes)"),
        format!("1–{MAX_CAMERA_ID} characters"),
        format!("At most {MAX_CLIENTS} clients"),
        format!("currently **{PROTOCOL_VERSION}**"),
        "code **1008**".to_string(),
    ] {
        assert!(doc.contains(&needle), "PROTOCOL.md does not say {needle:?}");
    }
}

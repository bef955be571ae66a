//! The standalone camera (seed 002): a WebSocket server at `ws://<camera>/ws`.
//!
//! Binary messages are bare JPEGs (no header), so the seed's Python and JavaScript clients
//! work unchanged. Text messages from the camera are JSON [`ApMessage`]s; text from a client
//! is an [`ApRequest`]: `ping`, `get_stats`, or a JSON command as on the control channel.

use alloc::string::String;

use serde::{Deserialize, Serialize};

use crate::command::{CommandError, CommandMsg};
use crate::control::Ack;

/// The path the standalone camera serves.
pub const PATH: &str = "/ws";
/// Most clients a standalone camera serves at once (seed 002).
pub const MAX_CLIENTS: usize = 5;
/// The close reason sent to a client over [`MAX_CLIENTS`].
pub const TOO_MANY_CLIENTS: &str = "too many clients (max 5)";
/// Reply to a `ping` text message.
pub const PONG: &str = "pong";

/// WebSocket opcode of a text frame (RFC 6455 §5.2).
pub const OPCODE_TEXT: u8 = 0x1;
/// WebSocket opcode of a binary frame.
pub const OPCODE_BINARY: u8 = 0x2;
/// WebSocket opcode of a close frame.
pub const OPCODE_CLOSE: u8 = 0x8;

/// The header of one whole (FIN), unmasked server → client WebSocket frame with `opcode`
/// and `len` payload bytes (RFC 6455 §5.2): the first `n` bytes of the array. For a camera
/// that writes its frames to the client's socket itself (the firmware's per-client senders),
/// header then payload, without copying the payload.
pub fn server_frame_head(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut head = [0u8; 10];
    head[0] = 0x80 | (opcode & 0x0F);
    let n = match len {
        0..=125 => {
            head[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            head[1] = 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    (head, n)
}

/// Camera → client text message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ApMessage {
    /// Sent once, right after the connection opens.
    Welcome {
        /// Greeting.
        message: String,
    },
    /// Sent every second.
    Heartbeat {
        /// Frames per second being streamed.
        #[serde(deserialize_with = "crate::control::finite_f32")]
        fps: f32,
        /// Connected clients.
        clients: u8,
    },
    /// Answer to `get_stats`.
    Stats {
        /// Connected clients.
        clients: u8,
        /// Frames per second being streamed.
        #[serde(deserialize_with = "crate::control::finite_f32")]
        fps: f32,
        /// Frames sent since boot.
        frames: u64,
    },
    /// Answer to a JSON command.
    Ack(Ack),
}

impl ApMessage {
    /// Encodes as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes JSON text (used by the hub's pull mode and by tests).
    pub fn from_json(text: &str) -> Result<Self, crate::control::DecodeError> {
        if text.len() > crate::control::MAX_CONTROL_MESSAGE {
            return Err(crate::control::DecodeError::TooLong(text.len()));
        }
        serde_json::from_str(text).map_err(|e| {
            crate::control::DecodeError::Invalid(alloc::string::ToString::to_string(&e))
        })
    }
}

/// Client → camera text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApRequest {
    /// `ping`; the camera answers the text `pong`.
    Ping,
    /// `get_stats`; the camera answers [`ApMessage::Stats`].
    GetStats,
    /// A JSON command, answered with [`ApMessage::Ack`].
    Command(CommandMsg),
}

impl ApRequest {
    /// Parses a client text message. Surrounding whitespace and quotes are tolerated
    /// (`"ping"` as the seed writes it).
    pub fn parse(text: &str) -> Result<Self, CommandError> {
        let t = text.trim();
        let bare = t.trim_matches('"');
        match bare {
            "ping" => Ok(ApRequest::Ping),
            "get_stats" => Ok(ApRequest::GetStats),
            _ if t.len() > crate::control::MAX_CONTROL_MESSAGE => Err(CommandError::NotAnObject(
                alloc::format!("message of {} bytes is too long", t.len()),
            )),
            _ => CommandMsg::from_json(t).map(ApRequest::Command),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frame_heads_use_the_shortest_length_form() {
        let head = |op, len| {
            let (h, n) = server_frame_head(op, len);
            h[..n].to_vec()
        };
        assert_eq!(head(OPCODE_TEXT, 4), [0x81, 4]);
        assert_eq!(head(OPCODE_CLOSE, 125), [0x88, 125]);
        assert_eq!(head(OPCODE_BINARY, 126), [0x82, 126, 0, 126]);
        assert_eq!(head(OPCODE_BINARY, 65_535), [0x82, 126, 0xFF, 0xFF]);
        assert_eq!(
            head(OPCODE_BINARY, 70_000),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }
}

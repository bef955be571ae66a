//! Helpers for axum WebSockets shared by the camera and browser sockets.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use espcam_proto::close::close_reason;

/// How long sending a Close frame may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends a Close frame with `code` and `reason` (cut to 123 bytes), bounded in time.
pub async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: close_reason(reason).into(),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
}

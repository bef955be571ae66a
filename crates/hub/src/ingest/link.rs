//! The one connection loop every camera link runs — push control, push stream, and pull
//! (which is both at once) — so replacement, shutdown, idle timeouts and command writing
//! behave the same everywhere. A socket type only says how to receive, send and close
//! ([`CameraSocket`]); what a message means is the caller's `on_message`.

use std::time::Duration;

use bytes::Bytes;
use espcam_proto::HubMsg;
use espcam_proto::close::{AWAY, NORMAL};
use tokio::sync::{mpsc, oneshot};

use crate::state::Hub;

/// How long one write to a camera may take before the link is considered dead.
pub(super) const CAMERA_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message from a camera.
#[derive(Debug)]
pub(super) enum Inbound {
    Text(String),
    Binary(Bytes),
    /// The camera sent a Close frame.
    Closed,
}

/// What the loop needs from a WebSocket implementation.
pub(super) trait CameraSocket {
    /// The next data message (pings and pongs are handled underneath); `None` at the end of
    /// the stream, `Err` with a description on a connection or protocol error.
    async fn recv(&mut self) -> Option<Result<Inbound, String>>;
    /// Sends one text message.
    async fn send_text(&mut self, text: String) -> Result<(), String>;
    /// Sends a Close frame (bounded in time) and gives up on the connection.
    async fn close(&mut self, code: u16, reason: &str);
}

/// What the caller wants after a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// A frame was published: let the woken viewers run before reading on.
    Published,
}

/// A link being run.
pub(super) struct Link<'a, S> {
    pub(super) socket: &'a mut S,
    pub(super) hub: &'a Hub,
    pub(super) kicked: &'a mut oneshot::Receiver<()>,
    /// Commands to write to the camera (`None` on a stream-only link).
    pub(super) commands: Option<&'a mut mpsc::Receiver<HubMsg>>,
    /// Longest silence before the link is given up.
    pub(super) idle: Duration,
    /// What the silence is of, for the reason: "message" or "frame".
    pub(super) idle_what: &'static str,
}

/// Runs the link until it ends; returns why, for the log and the offline event.
pub(super) async fn run<S: CameraSocket>(
    link: Link<'_, S>,
    camera: &crate::state::camera::Camera,
    mut on_message: impl FnMut(Inbound) -> Flow,
) -> String {
    let Link {
        socket,
        hub,
        kicked,
        mut commands,
        idle,
        idle_what,
    } = link;
    let mut stop = hub.shutdown_signal();
    loop {
        let next_command = async {
            match commands.as_deref_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut *kicked => {
                socket.close(NORMAL, "replaced by a new connection").await;
                return "replaced by a new connection".into();
            }
            _ = stop.changed() => {
                socket.close(AWAY, "hub shutting down").await;
                return "hub shutting down".into();
            }
            Some(cmd) = next_command => {
                let sent = tokio::time::timeout(CAMERA_WRITE_TIMEOUT, socket.send_text(cmd.to_json())).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return "could not send a command".into();
                }
            }
            msg = tokio::time::timeout(idle, socket.recv()) => match msg {
                Err(_) => return format!("no {idle_what} for {} ms", idle.as_millis()),
                Ok(None) => return "connection closed".into(),
                Ok(Some(Err(e))) => return format!("connection error: {e}"),
                Ok(Some(Ok(Inbound::Closed))) => return "camera closed the connection".into(),
                Ok(Some(Ok(m))) => {
                    if on_message(m) == Flow::Published {
                        camera.let_viewers_run().await;
                    }
                }
            },
        }
    }
}

/// Logs a dropped frame: the first one on a camera at `warn`, later ones at `debug`.
pub(super) fn log_dropped(camera: &crate::state::camera::Camera, e: &espcam_proto::FrameError) {
    if camera.first_dropped() {
        tracing::warn!(
            "camera {}: invalid frame dropped: {e} (further ones logged at debug level)",
            camera.id
        );
    } else {
        tracing::debug!("camera {}: invalid frame dropped: {e}", camera.id);
    }
}

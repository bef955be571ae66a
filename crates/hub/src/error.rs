//! The hub's error types and the one place they become HTTP responses.
//!
//! Every error a client can cause maps to a 4xx with a message that says what was wrong;
//! 5xx are for the hub's own trouble (disk, index) and for cameras that do not answer. This
//! module must never leak internal paths or panics into a response body beyond the store's
//! own messages.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use espcam_proto::CameraId;

/// Why a command to a camera did not get a positive ack.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No camera with that id is known.
    #[error("unknown camera {0:?}")]
    UnknownCamera(String),
    /// The camera is known but its control link is down.
    #[error("camera {0} is offline")]
    Offline(CameraId),
    /// The camera did not ack within the timeout.
    #[error("camera {camera} did not acknowledge {command} within {ms} ms")]
    AckTimeout {
        /// Camera id.
        camera: CameraId,
        /// The command, e.g. `quality 10`.
        command: String,
        /// The timeout.
        ms: u128,
    },
    /// The camera has too many commands queued (it stopped reading its socket).
    #[error("camera {0} is not accepting commands (command queue full)")]
    Busy(CameraId),
    /// The camera answered, and refused.
    #[error("camera {camera} refused {command}: {message}")]
    Refused {
        /// Camera id.
        camera: CameraId,
        /// The command.
        command: String,
        /// The camera's reason.
        message: String,
    },
}

/// An error answered to an HTTP client as `{"error": "..."}` with a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a value is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 503: something is not available yet (no frame received, store closed).
    #[error("{0}")]
    Unavailable(String),
    /// 500: the hub's own trouble (disk, index).
    #[error("{0}")]
    Internal(String),
    /// A camera command failed; the status depends on why.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Command(c) => match c {
                CommandError::UnknownCamera(_) => StatusCode::NOT_FOUND,
                CommandError::Offline(_) => StatusCode::CONFLICT,
                CommandError::AckTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                CommandError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                CommandError::Refused { .. } => StatusCode::BAD_REQUEST,
            },
        }
    }
}

/// A JSON error body: `{"error": "..."}`.
pub(crate) fn error_body(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::GATEWAY_TIMEOUT {
            tracing::warn!("request failed: {self}");
        }
        error_body(status, &self.to_string())
    }
}

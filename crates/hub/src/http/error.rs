//! [`ApiError`] and the one place errors become HTTP responses.
//!
//! Every error a client can cause maps to a 4xx with a message that says what was wrong;
//! 5xx are for the hub's own trouble (disk, index) and for cameras that do not answer. The
//! state layer's errors ([`CommandError`], [`RemoveError`]) get their status codes here, not
//! where they are defined. This module must never leak internal paths or panics into a
//! response body beyond the store's own messages.

use crate::state::error::{CommandError, RemoveError};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to an HTTP client as `{"error": "..."}` with a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a value is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 408: the client stopped sending its request body.
    #[error("{0}")]
    Timeout(String),
    /// 413: the request body is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 503: something is not available yet (no frame received, store closed).
    #[error("{0}")]
    Unavailable(String),
    /// 500: the hub's own trouble (disk, index).
    #[error("{0}")]
    Internal(String),
    /// A camera command failed; the status depends on why.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A camera could not be removed.
    #[error(transparent)]
    Remove(#[from] RemoveError),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Command(c) => match c {
                CommandError::UnknownCamera(_) => StatusCode::NOT_FOUND,
                CommandError::Offline(_) | CommandError::Disconnected { .. } => {
                    StatusCode::CONFLICT
                }
                CommandError::AckTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                CommandError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                CommandError::Refused { .. } => StatusCode::BAD_REQUEST,
            },
            ApiError::Remove(r) => match r {
                RemoveError::UnknownCamera(_) => StatusCode::NOT_FOUND,
                RemoveError::Online(_) | RemoveError::Configured(_) => StatusCode::CONFLICT,
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

/// Largest plain-text error body [`json_errors`] rewraps (framework rejections are one line).
const MAX_REWRAPPED: usize = 4096;

/// Middleware: turns the framework's own error responses — wrong method (405, empty body),
/// a path or query that does not parse, a WebSocket route asked for over plain HTTP (plain
/// text) — into the API's `{"error": "..."}` form, keeping their status and headers (such as
/// `Allow`). Responses that are already JSON, and successful ones, pass through untouched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REWRAPPED)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("request failed"),
        t => t,
    };
    let mut wrapped = error_body(status, message);
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            wrapped.headers_mut().append(name, value.clone());
        }
    }
    wrapped
}

//! The WebSocket upgrade handshake on a hyper connection, for the sockets that take over the
//! upgraded connection themselves instead of going through axum's `WebSocket`: the viewer
//! socket (`/ws/view`, its own frame writer) and the camera stream socket (`/ws/stream`,
//! whose hello is read with a small cap before the big frame limit applies).
//!
//! It only checks the request and builds the `101` answer; it must never read from or write
//! to the connection (the caller owns it once the upgrade completes).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request cannot become a WebSocket: the status and message to answer with.
pub(crate) type Refusal = (StatusCode, &'static str);

/// Checks the upgrade request. On success returns the `101` response and the pending
/// upgrade; otherwise the refusal (426 for plain HTTP, 400 for a malformed handshake).
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

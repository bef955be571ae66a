//! The camera doors' own checks on top of [`Hub::admit`]: pairing (trust on first use) for
//! cameras that are not in `[[camera]]` when login is required, and refusing camera
//! sockets that a web page opened.
//!
//! Pairing asks the auth database, which blocks, so it runs here on `spawn_blocking` and
//! the state layer only learns the outcome as an [`AdmissionError`] or an admitted camera.
//! A pending camera is refused with a reason that says what to do and is never registered:
//! no slot, no frames, nothing shown to viewers. This module must never admit a camera the
//! pairing table has not accepted while login is required.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use espcam_auth::PairingDecision;
use tracing::{info, warn};

use crate::state::clock::now_us;
use crate::state::error::AdmissionError;
use crate::state::{Admission, Admitted, Hub};

/// Checks a hello: [`Hub::admit`], then the pairing table when the camera needs pairing.
pub(super) async fn admit(
    hub: &Hub,
    a: &Admission<'_>,
    addr: SocketAddr,
) -> Result<(), AdmissionError> {
    match hub.admit(a)? {
        Admitted::Listed | Admitted::Open => Ok(()),
        Admitted::NeedsPairing => pair(hub, a, addr).await,
    }
}

async fn pair(hub: &Hub, a: &Admission<'_>, addr: SocketAddr) -> Result<(), AdmissionError> {
    let camera = a.camera.clone();
    let (id, token, ip) = (camera.clone(), a.token.to_string(), addr.ip());
    let decision = hub
        .access()
        .with_auth(move |auth| auth.pairing_check(&id, &token, Some(ip), now_us()))
        .await;
    let decision = match decision {
        Some(Ok(Ok(d))) => d,
        Some(Ok(Err(e))) => {
            warn!("pairing check for camera {camera} failed: {e}");
            return Err(AdmissionError::Unavailable(camera));
        }
        Some(Err(e)) => {
            warn!("pairing check for camera {camera} failed: {e}");
            return Err(AdmissionError::Unavailable(camera));
        }
        // `NeedsPairing` is only answered when there is a database.
        None => return Err(AdmissionError::Unavailable(camera)),
    };
    match decision {
        PairingDecision::Accepted => Ok(()),
        PairingDecision::Pending { new } => {
            if new {
                info!(
                    "camera {camera} from {addr} asks to pair: accept it in the dashboard or with `espcam camera accept {camera}`"
                );
            }
            Err(AdmissionError::Pending(camera))
        }
        PairingDecision::Refused(why) => Err(AdmissionError::PairingRefused {
            camera,
            reason: why.to_string(),
        }),
    }
}

/// A camera socket upgrade that carries an `Origin` header was opened by a web page, not a
/// camera (cameras send none; browsers always do on a WebSocket handshake). Refused, so a
/// page in a browser on the hub's network cannot pose as a camera — on a loopback hub
/// without login, any site the user visits could otherwise.
pub(super) fn refuse_browser(headers: &HeaderMap, addr: SocketAddr, hub: &Hub) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    if hub
        .access()
        .should_warn(crate::state::access::Warning::CrossSite, addr.ip())
    {
        warn!(
            "refused a camera socket from {addr} opened by a web page (Origin {})",
            crate::text::for_log(&String::from_utf8_lossy(origin.as_bytes()))
        );
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "camera sockets do not accept connections from web pages (the request has an Origin header)"
            })),
        )
            .into_response(),
    )
}

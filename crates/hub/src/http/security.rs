//! The door table and the browser checks: which [`Door`] every route of port 6971 is, the
//! `Host` check against DNS rebinding, the `Origin` / `Sec-Fetch-Site` check against
//! cross-site requests, and the security headers every response carries.
//!
//! One table ([`door`]) names every route, so the middleware in [`super::auth`] treats each
//! the same way whatever handler serves it. A route missing from the table is treated as an
//! admin-only state change (fail closed): adding a route without a row here makes it
//! unusable to viewers, never open to everyone. This module decides *which* checks a route
//! needs, never *who* may pass them (that is `espcam_auth::Role::allows`).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use espcam_auth::{Action, AuditAction, host_allowed, origin_allowed};
use tracing::warn;

use crate::http::error::error_body;
use crate::state::Hub;
use crate::state::access::Warning;
use crate::text::for_log;

/// What kind of door a route is, and what it asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    /// `GET /healthz`: open to anyone, no check at all (load balancers, `curl`).
    Health,
    /// The dashboard's static files and the resolution table: `Host` checked, no
    /// credential (the login page needs its script and style).
    Asset,
    /// `GET /`: the dashboard, or the login page when login is required and the request has
    /// no valid session.
    Page,
    /// A read: any credential (cookie, Bearer, Basic) with permission for the action.
    Read(Action),
    /// A viewer output (`snapshot.jpg`, `stream.mjpg`, a saved snapshot's JPEG): also
    /// `?token=`, and a 401 carries `WWW-Authenticate: Basic realm="espcam"` so tools such
    /// as Home Assistant's MJPEG camera send their user and password.
    Viewer(Action),
    /// A browser socket upgrade: `Origin` checked, then a credential; `query_token` allows
    /// `?token=` (the viewer socket).
    Socket {
        /// Permission to open it.
        action: Action,
        /// Whether `?token=` is accepted.
        query_token: bool,
    },
    /// A state change (POST, PATCH, DELETE): `Origin` checked, a JSON body type unless the
    /// credential is a Bearer token, then a credential with the action; audited on success
    /// when `audit` is set.
    Change {
        /// Permission needed.
        action: Action,
        /// What to record in the audit log on success.
        audit: Option<AuditAction>,
    },
    /// `POST /api/login`: `Origin` checked, the handler checks the password.
    Login,
    /// `POST /api/logout`: `Origin` and content type checked, then the handler ends the
    /// session (if any).
    Logout,
    /// `GET /api/whoami`: anyone; it answers who the request's credential names.
    WhoAmI,
}

/// The door of the route `path` (axum's matched path template, `/api/cameras/{camera}`)
/// for `method`. Every route the HTTP layer serves is listed; see docs/SECURITY.md for the
/// same table in prose.
pub(crate) fn door(method: &Method, path: &str) -> Door {
    use Action as A;
    use AuditAction as Au;
    let change = |action, audit| Door::Change { action, audit };
    let read = matches!(*method, Method::GET | Method::HEAD);
    match (read, method.as_str(), path) {
        (true, _, "/healthz") => Door::Health,
        (true, _, "/") => Door::Page,
        (true, _, "/assets/{*path}" | "/assets/resolutions.json") => Door::Asset,
        (true, _, "/api/whoami") => Door::WhoAmI,
        (false, "POST", "/api/login") => Door::Login,
        (false, "POST", "/api/logout") => Door::Logout,
        (true, _, "/metrics") => Door::Read(A::Metrics),
        (true, _, "/api/cameras" | "/api/cameras/{camera}" | "/api/cameras/{camera}/telemetry") => {
            Door::Read(A::View)
        }
        (true, _, "/api/cameras/{camera}/snapshot.jpg" | "/api/cameras/{camera}/stream.mjpg") => {
            Door::Viewer(A::View)
        }
        (true, _, "/api/snapshots") => Door::Read(A::Snapshot),
        (true, _, "/api/snapshots/{file}" | "/api/snapshots/{id}/thumb.jpg") => {
            Door::Viewer(A::Snapshot)
        }
        // Cluster mode: another node's snapshots, through this hub (same rights as ours).
        (true, _, "/api/nodes/{node}/snapshots") => Door::Read(A::Snapshot),
        (true, _, "/api/nodes/{node}/snapshots/{file}") => Door::Viewer(A::Snapshot),
        // The cluster's nodes (where a camera's recordings may be).
        (true, _, "/api/nodes") => Door::Read(A::View),
        // Another node's recordings, through this hub (same rights as ours).
        (true, _, "/api/nodes/{node}/cameras/{camera}/recordings") => Door::Read(A::Recordings),
        (true, _, "/api/nodes/{node}/cameras/{camera}/export") => Door::Viewer(A::Recordings),
        (true, _, "/ws/nodes/{node}/playback/{camera}") => Door::Socket {
            action: A::Recordings,
            query_token: true,
        },
        (true, _, "/api/recordings" | "/api/cameras/{camera}/recordings") => {
            Door::Read(A::Recordings)
        }
        (true, _, "/api/cameras/{camera}/export" | "/api/cameras/{camera}/timelapse") => {
            Door::Viewer(A::Recordings)
        }
        (true, _, "/ws/playback/{camera}") => Door::Socket {
            action: A::Recordings,
            query_token: true,
        },
        (false, "POST", "/api/cameras/{camera}/record") => change(A::Settings, Some(Au::Settings)),
        (true, _, "/api/cameras/{camera}/motion" | "/api/events" | "/api/events/{id}") => {
            Door::Read(A::Events)
        }
        (true, _, "/api/events/{id}/thumb.jpg") => Door::Viewer(A::Events),
        (false, "PUT", "/api/cameras/{camera}/motion") => change(A::Settings, Some(Au::Settings)),
        // Deleting recorded material is the snapshot-delete permission (admin).
        (false, "DELETE", "/api/events/{id}") => change(A::SnapshotDelete, None),
        (true, _, "/ws/view/{camera}") => Door::Socket {
            action: A::View,
            query_token: true,
        },
        (true, _, "/ws/ui") => Door::Socket {
            action: A::View,
            query_token: false,
        },
        (false, "DELETE", "/api/cameras/{camera}") => {
            change(A::CameraRemove, Some(Au::CameraRemove))
        }
        (false, "POST", "/api/cameras/{camera}/settings") => {
            change(A::Settings, Some(Au::Settings))
        }
        (false, "POST", "/api/cameras/{camera}/reboot") => change(A::Reboot, Some(Au::Reboot)),
        (false, "POST", "/api/cameras/{camera}/snapshots") => change(A::Snapshot, None),
        (false, "DELETE", "/api/snapshots/{file}") => {
            change(A::SnapshotDelete, Some(Au::SnapshotDelete))
        }
        (true, _, "/api/users") => Door::Read(A::Users),
        (false, "POST", "/api/users") => change(A::Users, Some(Au::UserAdd)),
        (false, "DELETE", "/api/users/{name}") => change(A::Users, Some(Au::UserRemove)),
        (false, "PATCH", "/api/users/{name}") => change(A::Users, Some(Au::UserRole)),
        (false, "POST", "/api/users/{name}/password") => change(A::Users, Some(Au::UserPasswd)),
        (true, _, "/api/tokens") => Door::Read(A::Tokens),
        (false, "POST", "/api/tokens") => change(A::Tokens, Some(Au::TokenAdd)),
        (false, "DELETE", "/api/tokens/{name}") => change(A::Tokens, Some(Au::TokenRevoke)),
        (true, _, "/api/pairing") => Door::Read(A::CameraAccept),
        (false, "POST", "/api/cameras/{camera}/accept") => {
            change(A::CameraAccept, Some(Au::CameraAccept))
        }
        (false, "DELETE", "/api/pairing/{camera}") => {
            change(A::CameraRemove, Some(Au::CameraRemove))
        }
        (true, _, "/api/audit") => Door::Read(A::Audit),
        (true, _, "/api/firmware") => Door::Read(A::Firmware),
        (false, "POST", "/api/firmware" | "/api/firmware/{id}/rollout")
        | (false, "POST", "/api/cameras/{camera}/update") => {
            change(A::Firmware, Some(Au::Firmware))
        }
        // Cameras download their image with the per-update key in the URL, which the
        // handler checks (128 random bits, one camera and image, one hour): no other
        // credential, as a camera has no session and its hub token must not travel in URLs.
        (true, _, "/api/firmware/{id}/image") => Door::Asset,
        // Not in the table: admin only, with every browser check (fail closed).
        (true, _, _) => Door::Read(A::Users),
        (false, _, _) => change(A::Users, None),
    }
}

/// The value of the first `{param}` of `template` in `path`, percent-decoded: the camera,
/// snapshot, user or token an audited request was about.
pub(crate) fn target_of(template: &str, path: &str) -> String {
    template
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| t.starts_with('{'))
        .map(|(_, p)| percent_decode(p))
        .unwrap_or_default()
}

/// `%41` → `A`; invalid escapes are kept as they are; the result is lossy UTF-8.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `Host` check (DNS rebinding): a 403 to answer unless the request names this hub.
/// `peer` is only for the (rate-limited) log line.
pub(crate) fn refuse_host(
    hub: &Hub,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
) -> Option<Response> {
    let c = hub.config();
    let host = header_str(headers, header::HOST).unwrap_or("");
    let e = host_allowed(host, &c.hostnames, &[c.bind]).err()?;
    if hub.access().should_warn(Warning::CrossSite, peer) {
        warn!("refused a request from {peer}: {}", for_log(&e.to_string()));
    }
    Some(error_body(StatusCode::FORBIDDEN, &e.to_string()))
}

/// The `Origin` / `Sec-Fetch-Site` check: a 403 to answer unless the request comes from
/// the hub's own page or an origin in `allowed_origins` (or from no browser at all).
pub(crate) fn refuse_origin(
    hub: &Hub,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    tls: bool,
) -> Option<Response> {
    let e = origin_allowed(
        header_str(headers, header::HOST),
        header_str(headers, header::ORIGIN),
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        &hub.config().allowed_origins,
        tls,
    )
    .err()?;
    if hub.access().should_warn(Warning::CrossSite, peer) {
        warn!("refused a request from {peer}: {}", for_log(&e.to_string()));
    }
    Some(error_body(StatusCode::FORBIDDEN, &e.to_string()))
}

/// The Content-Security-Policy of every response: scripts, styles, fonts and connections
/// only from the hub itself (no inline script or style, no `eval`), images also from
/// `blob:` (live frames) and `data:`, no plugins, no `<base>`, forms only to the hub, and
/// no page may frame it (clickjacking).
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Middleware: the security headers on every response of port 6971 (a handler's own value
/// wins, such as the assets' `X-Content-Type-Options`).
pub(crate) async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_its_door_and_unknown_ones_are_admin_only() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(door(&get, "/healthz"), Door::Health);
        assert_eq!(door(&Method::HEAD, "/"), Door::Page);
        assert_eq!(
            door(&get, "/api/cameras/{camera}/stream.mjpg"),
            Door::Viewer(Action::View)
        );
        assert_eq!(
            door(&post, "/api/cameras/{camera}/settings"),
            Door::Change {
                action: Action::Settings,
                audit: Some(AuditAction::Settings)
            }
        );
        assert_eq!(
            door(&get, "/api/nodes/{node}/snapshots"),
            Door::Read(Action::Snapshot)
        );
        assert_eq!(
            door(&get, "/api/nodes/{node}/snapshots/{file}"),
            Door::Viewer(Action::Snapshot)
        );
        assert_eq!(
            door(&get, "/api/nodes/{node}/cameras/{camera}/recordings"),
            Door::Read(Action::Recordings)
        );
        assert_eq!(
            door(&get, "/api/nodes/{node}/cameras/{camera}/export"),
            Door::Viewer(Action::Recordings)
        );
        assert_eq!(
            door(&get, "/ws/nodes/{node}/playback/{camera}"),
            door(&get, "/ws/playback/{camera}")
        );
        // A GET-only route asked with POST, or a route nobody listed.
        assert_eq!(
            door(&post, "/api/cameras"),
            Door::Change {
                action: Action::Users,
                audit: None
            }
        );
        assert_eq!(door(&get, "/api/new-thing"), Door::Read(Action::Users));
        assert!(!espcam_auth::Role::Viewer.allows(Action::Users));
    }

    #[test]
    fn targets_come_from_the_path() {
        assert_eq!(
            target_of(
                "/api/cameras/{camera}/settings",
                "/api/cameras/cam%2D1/settings"
            ),
            "cam-1"
        );
        assert_eq!(target_of("/api/users", "/api/users"), "");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(percent_decode("%E6%97%A5"), "日");
    }
}

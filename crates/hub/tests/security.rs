//! Every door of the hub, locked: a table of every route and socket × {no credential,
//! viewer, admin, wrong origin} with the documented status (docs/SECURITY.md), and the
//! attacks of issue 15 as bounded regression tests — a cross-site `text/plain` POST, a
//! `/ws/ui` from another origin, a page on another loopback port, a rebound `Host`, token
//! guessing, a camera impostor, a camera socket opened by a web page. Each starts a real hub
//! on 127.0.0.1 port 0 with a temporary data directory.
// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{CamOpts, Resp, TestCamera, TestHub, control_hello, hello_exchange, ws};
use espcam_auth::{Auth, AuthMode, AuthOptions, Password, Role, TokenName, UserName};
use espcam_hub::Config;
use espcam_hub::config::CameraAuth;
use espcam_proto::{CameraId, HubMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_PW: &str = "root-password";
const VIEWER_PW: &str = "viewer-password";
const EVIL: &str = "http://evil.example";

/// A hub with login on (`auth = "on"`, so also on loopback), users `root` (admin) and
/// `vic` (viewer), tokens for both, and a configured camera `cam-1` online.
struct Locked {
    hub: TestHub,
    _dir: tempfile::TempDir,
    cam: TestCamera,
    admin_cookie: String,
    viewer_cookie: String,
    admin_token: String,
    viewer_token: String,
}

fn locked_config(dir: &std::path::Path) -> Config {
    let mut c = Config::for_tests(dir);
    c.auth = AuthMode::On;
    c.ack_timeout = Duration::from_millis(1500);
    c.cameras = vec![CameraAuth {
        id: CameraId::new("cam-1").unwrap(),
        token: "cam-1-secret".into(),
        record: None,
    }];
    c
}

/// Users and tokens, written the way `espcam user add` / `token add` write them.
fn seed_users(dir: &std::path::Path) -> (String, String) {
    let auth = Auth::open_with(dir, AuthOptions::for_tests()).unwrap();
    let now = common::now_us();
    auth.add_user(
        &UserName::new("root").unwrap(),
        Role::Admin,
        &Password::new(ADMIN_PW).unwrap(),
        now,
    )
    .unwrap();
    auth.add_user(
        &UserName::new("vic").unwrap(),
        Role::Viewer,
        &Password::new(VIEWER_PW).unwrap(),
        now,
    )
    .unwrap();
    let a = auth
        .add_token(&TokenName::new("script").unwrap(), Role::Admin, now)
        .unwrap();
    let v = auth
        .add_token(&TokenName::new("ha").unwrap(), Role::Viewer, now)
        .unwrap();
    (a.secret.expose().to_string(), v.secret.expose().to_string())
}

impl Locked {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (admin_token, viewer_token) = seed_users(dir.path());
        let hub = TestHub::start(locked_config(dir.path())).await;
        let mut opts = CamOpts::new("cam-1");
        opts.token = "cam-1-secret".into();
        let cam = TestCamera::connect(&hub, opts).await;
        let admin_cookie = login(hub.http, "root", ADMIN_PW).await;
        let viewer_cookie = login(hub.http, "vic", VIEWER_PW).await;
        let me = Self {
            hub,
            _dir: dir,
            cam,
            admin_cookie,
            viewer_cookie,
            admin_token,
            viewer_token,
        };
        // Wait for the first frame, so the viewer outputs have something to show.
        for _ in 0..200 {
            let r = me
                .req(
                    "GET",
                    "/api/cameras/cam-1",
                    &[("authorization", &me.bearer_admin())],
                    "",
                )
                .await;
            if r.status == 200 && r.json()["frames_in"].as_u64().unwrap_or(0) > 0 {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("cam-1 never sent a frame");
    }

    fn bearer_admin(&self) -> String {
        format!("Bearer {}", self.admin_token)
    }

    fn own_origin(&self) -> String {
        format!("http://{}", self.hub.http)
    }

    async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        request(self.hub.http, method, path, headers, body).await
    }
}

/// One HTTP/1.1 request with extra headers. Reads the head and a `Content-Length` body; a
/// streamed (chunked) or upgraded response is returned with its head only.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                match len {
                    Some(n) if buf.len() >= end + 4 + n => return,
                    Some(_) => {}
                    None => return,
                }
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s");
    common::parse_response(&buf)
}

/// Logs in and returns the `Cookie` header value for the session.
async fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let origin = format!("http://{addr}");
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let r = request(
        addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json"), ("origin", &origin)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let set = r.headers.get("set-cookie").expect("a session cookie");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains("Secure"), "no TLS: {set}");
    set.split(';').next().unwrap().to_string()
}

const UPGRADE: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// Who sends a request in the table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum As {
    Nobody,
    Viewer,
    Admin,
    /// The admin's browser, on a page of another site.
    EvilPage,
}

#[tokio::test]
async fn every_door_answers_each_kind_of_client_as_documented() {
    let l = Locked::start().await;
    // Two snapshots to read and delete.
    for _ in 0..2 {
        let r = l
            .req(
                "POST",
                "/api/cameras/cam-1/snapshots",
                &[("authorization", &l.bearer_admin())],
                "",
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let j = "application/json";
    // (method, path, body, [nobody, viewer, admin, evil page])
    let table: Vec<(&str, &str, &str, [u16; 4])> = vec![
        ("GET", "/healthz", "", [200, 200, 200, 200]),
        ("GET", "/", "", [200, 200, 200, 200]),
        ("GET", "/assets/app.css", "", [200, 200, 200, 200]),
        ("GET", "/assets/js/login.js", "", [200, 200, 200, 200]),
        ("GET", "/api/whoami", "", [200, 200, 200, 200]),
        ("GET", "/metrics", "", [401, 403, 200, 200]),
        ("GET", "/api/cameras", "", [401, 200, 200, 200]),
        ("GET", "/api/cameras/cam-1", "", [401, 200, 200, 200]),
        (
            "GET",
            "/api/cameras/cam-1/telemetry",
            "",
            [401, 200, 200, 200],
        ),
        (
            "GET",
            "/api/cameras/cam-1/snapshot.jpg",
            "",
            [401, 200, 200, 200],
        ),
        (
            "GET",
            "/api/cameras/cam-1/stream.mjpg",
            "",
            [401, 200, 200, 200],
        ),
        ("GET", "/api/snapshots", "", [401, 200, 200, 200]),
        ("GET", "/api/snapshots/1.jpg", "", [401, 200, 200, 200]),
        // Another node's snapshots: the snapshot doors; this hub is not in cluster mode, so
        // whoever gets through hears 404.
        (
            "GET",
            "/api/nodes/hub-b/snapshots",
            "",
            [401, 404, 404, 404],
        ),
        (
            "GET",
            "/api/nodes/hub-b/snapshots/1.jpg",
            "",
            [401, 404, 404, 404],
        ),
        ("GET", "/api/nodes", "", [401, 200, 200, 200]),
        // Another node's recordings: the recordings doors (the socket checks Origin first);
        // not in cluster mode, so whoever gets through hears 404.
        (
            "GET",
            "/api/nodes/hub-b/cameras/cam-1/recordings",
            "",
            [401, 404, 404, 404],
        ),
        (
            "GET",
            "/api/nodes/hub-b/cameras/cam-1/export",
            "",
            [401, 404, 404, 404],
        ),
        (
            "GET",
            "/ws/nodes/hub-b/playback/cam-1",
            "",
            [401, 404, 404, 403],
        ),
        ("GET", "/ws/playback/cam-1", "", [401, 101, 101, 403]),
        (
            "POST",
            "/api/cameras/cam-1/settings",
            r#"{"quality":12}"#,
            [401, 403, 200, 403],
        ),
        (
            "POST",
            "/api/cameras/cam-1/reboot",
            "",
            [401, 403, 202, 403],
        ),
        (
            "POST",
            "/api/cameras/cam-1/snapshots",
            "",
            [401, 201, 201, 403],
        ),
        ("DELETE", "/api/snapshots/1", "", [401, 403, 204, 403]),
        ("DELETE", "/api/cameras/nope", "", [401, 403, 404, 403]),
        ("GET", "/ws/view/cam-1", "", [401, 101, 101, 403]),
        ("GET", "/ws/ui", "", [401, 101, 101, 403]),
        ("GET", "/api/users", "", [401, 403, 200, 200]),
        (
            "POST",
            "/api/users",
            r#"{"name":"newbie","role":"viewer","password":"newbie-pass"}"#,
            [401, 403, 201, 403],
        ),
        (
            "POST",
            "/api/users/newbie/password",
            r#"{"password":"another-pass"}"#,
            [401, 403, 204, 403],
        ),
        // Role changes: admin only, browser-checked; the last admin stays one (409, the
        // rule `espcam user role` follows).
        (
            "PATCH",
            "/api/users/newbie",
            r#"{"role":"admin"}"#,
            [401, 403, 200, 403],
        ),
        (
            "PATCH",
            "/api/users/newbie",
            r#"{"role":"viewer"}"#,
            [401, 403, 200, 403],
        ),
        (
            "PATCH",
            "/api/users/newbie",
            r#"{"role":"owner"}"#,
            [401, 403, 400, 403],
        ),
        (
            "PATCH",
            "/api/users/nobody",
            r#"{"role":"viewer"}"#,
            [401, 403, 404, 403],
        ),
        (
            "PATCH",
            "/api/users/root",
            r#"{"role":"viewer"}"#,
            [401, 403, 409, 403],
        ),
        ("DELETE", "/api/users/newbie", "", [401, 403, 204, 403]),
        ("GET", "/api/tokens", "", [401, 403, 200, 200]),
        (
            "POST",
            "/api/tokens",
            r#"{"name":"t2","role":"viewer"}"#,
            [401, 403, 201, 403],
        ),
        ("DELETE", "/api/tokens/t2", "", [401, 403, 204, 403]),
        ("GET", "/api/pairing", "", [401, 403, 200, 200]),
        (
            "POST",
            "/api/cameras/cam-new/accept",
            "",
            [401, 403, 404, 403],
        ),
        ("DELETE", "/api/pairing/cam-new", "", [401, 403, 404, 403]),
        ("GET", "/api/audit", "", [401, 403, 200, 200]),
        ("POST", "/api/logout", "", [204, 204, 204, 403]),
        ("GET", "/no/such/route", "", [404, 404, 404, 404]),
    ];
    let own = l.own_origin();
    let mut failures = Vec::new();
    for (method, path, body, want) in &table {
        for (who, want) in [As::Nobody, As::Viewer, As::Admin, As::EvilPage]
            .into_iter()
            .zip(want)
        {
            // Logging out would end the session the rest of the table uses.
            let throwaway;
            let cookie = match who {
                As::Nobody => None,
                _ if *path == "/api/logout" => {
                    throwaway = match who {
                        As::Viewer => login(l.hub.http, "vic", VIEWER_PW).await,
                        _ => login(l.hub.http, "root", ADMIN_PW).await,
                    };
                    Some(throwaway.as_str())
                }
                As::Viewer => Some(l.viewer_cookie.as_str()),
                As::Admin | As::EvilPage => Some(l.admin_cookie.as_str()),
            };
            let mut headers: Vec<(&str, &str)> = Vec::new();
            if let Some(c) = cookie {
                headers.push(("cookie", c));
            }
            // A browser sends Origin on every state change and socket; it is the page's.
            let browserish = *method != "GET" || path.starts_with("/ws/");
            match who {
                As::EvilPage => {
                    headers.push(("origin", EVIL));
                    headers.push(("sec-fetch-site", "cross-site"));
                }
                _ if browserish => headers.push(("origin", &own)),
                _ => {}
            }
            if *method != "GET" {
                headers.push(("content-type", j));
            }
            if path.starts_with("/ws/") {
                headers.extend(UPGRADE);
            }
            let r = l.req(method, path, &headers, body).await;
            if r.status != *want {
                failures.push(format!(
                    "{method} {path} as {who:?}: got {} want {want}: {}",
                    r.status,
                    r.text().chars().take(200).collect::<String>()
                ));
            }
            if r.status == 401 && (path.ends_with(".jpg") || path.ends_with(".mjpg")) {
                assert_eq!(
                    r.headers.get("www-authenticate").map(String::as_str),
                    Some("Basic realm=\"espcam\", charset=\"UTF-8\""),
                    "{path}"
                );
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The role changes were audited like the other user actions: who, whom, the new role.
    let audit = l
        .req("GET", "/api/audit", &[("cookie", &l.admin_cookie)], "")
        .await
        .json();
    let roles: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.role")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("actor"), s("target"), s("detail"))
        })
        .collect();
    let want = |detail: &str| {
        (
            "user:root".to_string(),
            "newbie".to_string(),
            detail.to_string(),
        )
    };
    assert_eq!(roles, vec![want("viewer"), want("admin")], "{audit}");
    // A state change by cookie needs the JSON content type (an HTML form cannot send it).
    let r = l
        .req(
            "PATCH",
            "/api/users/vic",
            &[
                ("cookie", &l.admin_cookie),
                ("origin", &own),
                ("content-type", "text/plain"),
            ],
            r#"{"role":"admin"}"#,
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.text());
    // The login page stands in for the dashboard without a session, at the same URL.
    let page = l.req("GET", "/", &[], "").await;
    assert!(page.text().contains("login-form"), "{}", page.text());
    assert_no_inline(&page.text());
    assert_eq!(page.headers["cache-control"], "no-store");
    let page = l.req("GET", "/", &[("cookie", &l.viewer_cookie)], "").await;
    assert!(page.text().contains("camera-grid"));
    // Bearer and HTTP Basic (Home Assistant sends any user with a token as the password,
    // or a user's own password) on the viewer outputs; `?token=` there too.
    let basic = |u: &str, p: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let jpg = "/api/cameras/cam-1/snapshot.jpg";
    for auth in [
        format!("Bearer {}", l.viewer_token),
        basic("homeassistant", &l.viewer_token),
        basic("vic", VIEWER_PW),
    ] {
        let r = l.req("GET", jpg, &[("authorization", &auth)], "").await;
        assert_eq!(r.status, 200, "{auth}: {}", r.text());
        assert_eq!(r.headers["content-type"], "image/jpeg");
        common::decode(&r.body);
    }
    let r = l
        .req("GET", &format!("{jpg}?token={}", l.viewer_token), &[], "")
        .await;
    assert_eq!(r.status, 200);
    // `?token=` is for the viewer outputs only.
    let r = l
        .req(
            "GET",
            &format!("/api/cameras?token={}", l.viewer_token),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 401);
    // A viewer token may not change settings even without a browser's checks.
    let r = l
        .req(
            "POST",
            "/api/cameras/cam-1/settings",
            &[("authorization", &format!("Bearer {}", l.viewer_token))],
            r#"{"quality":3}"#,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.error(),
        "permission denied: token:ha (role viewer) may not change camera settings"
    );
    // A Bearer token needs no JSON content type (a page cannot make a browser add one).
    let r = l
        .req(
            "POST",
            "/api/cameras/cam-1/settings",
            &[
                ("authorization", &l.bearer_admin()),
                ("content-type", "text/plain"),
            ],
            r#"{"quality":11}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(l.cam);
}

/// The security headers are on every response, error or not.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    for path in [
        "/",
        "/assets/js/app.js",
        "/api/cameras",
        "/nope",
        "/api/whoami",
    ] {
        let r = request(hub.http, "GET", path, &[], "").await;
        let csp = &r.headers["content-security-policy"];
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(r.headers["x-frame-options"], "DENY", "{path}");
    }
    // Nothing the CSP would block: no inline script, style or handler in the page.
    let html = request(hub.http, "GET", "/", &[], "").await.text();
    assert_no_inline(&html);
    hub.stop().await;
}

/// Regression (issue 15): `curl -X POST -H 'Origin: http://evil.example' -H 'Content-Type:
/// text/plain' -d '{"quality":12}' …/settings` was accepted; so was the same form post
/// without an Origin. Refused now, also on a loopback hub without login, and the camera
/// receives nothing.
#[tokio::test]
async fn a_cross_site_text_plain_post_cannot_change_settings() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("demo-1")).await;
    let path = "/api/cameras/demo-1/settings";
    let body = r#"{"quality":12}"#;
    let r = request(
        hub.http,
        "POST",
        path,
        &[("origin", EVIL), ("content-type", "text/plain")],
        body,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.error().contains("origin http://evil.example refused"),
        "{}",
        r.error()
    );
    // A form post whose browser sent no Origin: the body type alone refuses it.
    let r = request(
        hub.http,
        "POST",
        path,
        &[("content-type", "text/plain")],
        body,
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = request(
        hub.http,
        "POST",
        "/api/cameras/demo-1/reboot",
        &[("content-type", "application/x-www-form-urlencoded")],
        "",
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    // The hub's own page (same origin, JSON) still can.
    let own = format!("http://{}", hub.http);
    let r = request(
        hub.http,
        "POST",
        path,
        &[("origin", &own), ("content-type", "application/json")],
        r#"{"quality":20}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(*cam.received.lock().unwrap(), ["quality 20"]);
    hub.stop().await;
}

/// Regression (issue 15): `/ws/ui` opened with `Origin: http://evil.example` took a reboot.
/// Now the upgrade is refused (403), on a loopback hub without login too; the hub's own
/// origin and non-browser clients (no Origin) still connect.
#[tokio::test]
async fn a_ui_socket_from_another_origin_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("demo-1")).await;
    for origin in [EVIL, "null", "http://localhost.evil.example"] {
        let mut req = hub.ws_url("/ws/ui").into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "{origin}");
            }
            Ok(_) => panic!("{origin}: /ws/ui accepted a page from another origin"),
            Err(e) => panic!("{origin}: {e}"),
        }
    }
    let mut req = hub.ws_url("/ws/ui").into_client_request().unwrap();
    let own = format!("http://{}", hub.http);
    req.headers_mut().insert("origin", own.parse().unwrap());
    let (mut ui, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first = common::next_text(&mut ui).await;
    assert!(first.contains("\"cameras\""), "{first}");
    assert!(
        cam.received.lock().unwrap().is_empty(),
        "no reboot got through"
    );
    hub.stop().await;
}

/// A page served from another port of the same machine is another origin (but the same
/// *site*, so the browser would send a SameSite=Strict cookie): it cannot change a setting
/// or open `/ws/ui`, with or without the admin's session.
#[tokio::test]
async fn a_page_on_another_loopback_port_cannot_change_a_setting() {
    let l = Locked::start().await;
    // A real server on another loopback port stands for the attacker's page.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page = format!("http://{}", other.local_addr().unwrap());
    for (cookie, site) in [
        (l.admin_cookie.as_str(), "same-site"),
        ("", "same-site"),
        (l.admin_cookie.as_str(), "cross-site"),
    ] {
        let mut h = vec![
            ("origin", page.as_str()),
            ("sec-fetch-site", site),
            ("content-type", "application/json"),
        ];
        if !cookie.is_empty() {
            h.push(("cookie", cookie));
        }
        let r = l
            .req("POST", "/api/cameras/cam-1/settings", &h, r#"{"vflip":1}"#)
            .await;
        assert_eq!(r.status, 403, "{site}: {}", r.text());
        let mut h = h.clone();
        h.extend(UPGRADE);
        let r = l.req("GET", "/ws/ui", &h, "").await;
        assert_eq!(r.status, 403, "{site}: {}", r.text());
    }
    assert!(l.cam.received.lock().unwrap().is_empty());
    // Unless the operator lists that origin.
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::for_tests(dir.path());
    c.allowed_origins = vec![page.clone()];
    let hub = TestHub::start(c).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("demo-1")).await;
    let r = request(
        hub.http,
        "POST",
        "/api/cameras/demo-1/settings",
        &[("origin", &page), ("content-type", "application/json")],
        r#"{"vflip":1}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(*cam.received.lock().unwrap(), ["vflip 1"]);
    hub.stop().await;
}

/// DNS rebinding: a name the attacker points at the hub makes their page same-origin with
/// it. Any `Host` but an IP literal, `localhost` or a configured name is refused.
#[tokio::test]
async fn a_rebound_host_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::for_tests(dir.path());
    c.hostnames = vec!["espcam.lan".into()];
    let hub = TestHub::start(c).await;
    let port = hub.http.port();
    for (host, want) in [
        (format!("evil.example:{port}"), 403),
        (format!("127.0.0.1.evil.example:{port}"), 403),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        (format!("ESPCAM.lan:{port}"), 200),
        (format!("10.1.2.3:{port}"), 403),
    ] {
        let r = request(hub.http, "GET", "/api/cameras", &[("host", &host)], "").await;
        assert_eq!(r.status, want, "{host}: {}", r.text());
        let r = request(hub.http, "GET", "/", &[("host", &host)], "").await;
        assert_eq!(r.status, want, "{host}");
    }
    let r = request(
        hub.http,
        "GET",
        "/api/cameras",
        &[("host", "evil.example")],
        "",
    )
    .await;
    assert!(
        r.error().contains("hostnames in espcam.toml"),
        "{}",
        r.error()
    );
    // A health check is answered whatever the name (load balancers).
    let r = request(hub.http, "GET", "/healthz", &[("host", "evil.example")], "").await;
    assert_eq!(r.status, 200);
    hub.stop().await;
}

/// Regression (issue 15): token guesses ran at 1,100/s with no limit. Now each wrong token
/// counts against the address: after 5, further attempts get 429 with Retry-After (and
/// the log holds a few lines per burst, not one per guess).
#[tokio::test]
async fn token_guessing_is_refused_then_rate_limited() {
    let l = Locked::start().await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..8 {
        let guess = format!("Bearer ecam_{:0>43}", i);
        let r = l
            .req(
                "GET",
                "/api/cameras/cam-1/snapshot.jpg",
                &[("authorization", &guess)],
                "",
            )
            .await;
        if r.status == 429 {
            retry_after = r.headers.get("retry-after").cloned();
        } else {
            assert!(r.headers.contains_key("www-authenticate"));
            assert!(
                r.error().contains("wrong, expired or revoked"),
                "{}",
                r.error()
            );
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // While locked out, even the right token from that address waits; a browser session
    // (no explicit credential) is not locked out with it.
    let r = l
        .req(
            "GET",
            "/api/cameras",
            &[("authorization", &l.bearer_admin())],
            "",
        )
        .await;
    assert_eq!(r.status, 429);
    let r = l
        .req("GET", "/api/cameras", &[("cookie", &l.viewer_cookie)], "")
        .await;
    assert_eq!(r.status, 200);
}

/// Failed logins: 401, the sixth within the lockout 429; logged in the audit log.
#[tokio::test]
async fn failed_logins_are_limited_and_audited_and_logout_ends_the_session() {
    let l = Locked::start().await;
    let origin = l.own_origin();
    let h = [
        ("content-type", "application/json"),
        ("origin", origin.as_str()),
    ];
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = l
            .req(
                "POST",
                "/api/login",
                &h,
                r#"{"user":"root","password":"guess-guess"}"#,
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let audit = l
        .req(
            "GET",
            "/api/audit?limit=50",
            &[("cookie", &l.admin_cookie)],
            "",
        )
        .await
        .json();
    let failed: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login.failed")
        .collect();
    assert_eq!(failed.len(), 5, "{audit}");
    assert_eq!(failed[0]["target"], "root");
    assert_eq!(failed[0]["addr"], "127.0.0.1");
    // A login from another page is refused before any password check.
    let r = l
        .req(
            "POST",
            "/api/login",
            &[("content-type", "application/json"), ("origin", EVIL)],
            r#"{"user":"root","password":"root-password"}"#,
        )
        .await;
    assert_eq!(r.status, 403);
    // Logout ends the session in the database, not only in the browser.
    let cookie = l.viewer_cookie.clone();
    let r = l
        .req(
            "POST",
            "/api/logout",
            &[
                ("cookie", &cookie),
                ("content-type", "application/json"),
                ("origin", &origin),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(r.headers["set-cookie"].contains("Max-Age=0"));
    let r = l
        .req("GET", "/api/cameras", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(r.status, 401);
    let who = l
        .req("GET", "/api/whoami", &[("cookie", &cookie)], "")
        .await
        .json();
    assert_eq!(who["role"], serde_json::Value::Null);
    assert_eq!(who["login_required"], true);
}

/// `ffprobe` plays the Home Assistant-style URL `stream.mjpg?token=…`; a wrong token gets
/// 401 and nothing else (no frame, no stream headers).
#[tokio::test]
async fn ffprobe_plays_the_mjpeg_url_with_a_token_and_a_wrong_token_gets_401() {
    let Some(ffprobe) = tool("ffprobe") else {
        return;
    };
    let l = Locked::start().await;
    let url = format!(
        "http://{}/api/cameras/cam-1/stream.mjpg?token={}",
        l.hub.http, l.viewer_token
    );
    // `-rw_timeout` (µs) bounds every read, so a hub that stopped sending ends the probe.
    let run = |args: Vec<String>| {
        let ffprobe = ffprobe.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(ffprobe)
                    .args(["-v", "error", "-rw_timeout", "10000000", "-f", "mpjpeg"])
                    .args(args)
                    .output()
            });
            tokio::time::timeout(Duration::from_secs(30), out)
                .await
                .expect("ffprobe within 30 s")
                .unwrap()
                .unwrap()
        }
    };
    let out = run(vec![
        "-show_entries".into(),
        "stream=codec_name,width,height".into(),
        "-of".into(),
        "json".into(),
        url.clone(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "mjpeg", "{v}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(160), Some(120))
    );
    // A wrong token: ffprobe fails, and the hub answered a plain 401.
    let bad = url.replace(&l.viewer_token, &format!("ecam_{}", "A".repeat(43)));
    let out = run(vec![bad.clone()]).await;
    assert!(!out.status.success());
    let path = bad.split_once(&l.hub.http.to_string()).unwrap().1;
    let r = l.req("GET", path, &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(!r.headers.contains_key("transfer-encoding"), "no stream");
}

/// Regression (issue 15): an impostor claimed `demo-1` in open mode. With login, an
/// unlisted camera is held as pending — refused with a reason that says what to do, not
/// registered, nothing shown — until an admin accepts it; then its token is trusted and
/// the same id with another token is refused.
#[tokio::test]
async fn an_unknown_camera_waits_for_an_admin_then_is_trusted_on_first_use() {
    let l = Locked::start().await;
    let mut opts = CamOpts::new("garden");
    opts.token = "garden-token".into();
    let reason = match TestCamera::try_connect(&l.hub, opts.clone()).await {
        Err(reason) => reason,
        Ok(_) => panic!("an unknown camera was admitted"),
    };
    assert_eq!(
        reason,
        "camera garden is waiting to be accepted by an admin (dashboard, or `espcam camera accept garden` on the hub)"
    );
    let admin = [("cookie", l.admin_cookie.as_str())];
    let cams = l.req("GET", "/api/cameras", &admin, "").await.json();
    assert!(!cams.to_string().contains("garden"), "{cams}");
    let r = l.req("GET", "/api/cameras/garden", &admin, "").await;
    assert_eq!(r.status, 404);
    let pending = l.req("GET", "/api/pairing", &admin, "").await.json();
    assert_eq!(pending[0]["id"], "garden", "{pending}");
    assert_eq!(pending[0]["state"], "pending");
    assert_eq!(pending[0]["addr"], "127.0.0.1");
    // Its stream link is refused as well: no frame is taken.
    let mut stream = ws(&format!("ws://{}/ws/stream", l.hub.stream)).await;
    let (msg, close) =
        hello_exchange(&mut stream, common::stream_hello("garden", "garden-token")).await;
    assert!(matches!(msg, HubMsg::Rejected { .. }), "{msg:?}");
    assert_eq!(close.unwrap().0, 1008);
    // A viewer cannot accept it; an admin can.
    let own = l.own_origin();
    let accept = |cookie: &str| {
        vec![
            ("cookie", cookie.to_string()),
            ("origin", own.clone()),
            ("content-type", "application/json".to_string()),
        ]
    };
    let h = accept(&l.viewer_cookie);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = l.req("POST", "/api/cameras/garden/accept", &h, "").await;
    assert_eq!(r.status, 403);
    let h = accept(&l.admin_cookie);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = l.req("POST", "/api/cameras/garden/accept", &h, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let _garden = TestCamera::connect(&l.hub, opts).await;
    let mut frames = 0;
    for _ in 0..200 {
        let r = l.req("GET", "/api/cameras/garden", &admin, "").await;
        frames = r.json()["frames_in"].as_u64().unwrap_or(0);
        if frames > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(frames > 0, "the accepted camera's frames are taken");
    // Trust on first use: the same id with another token is an impostor.
    let mut impostor = CamOpts::new("garden");
    impostor.token = "stolen-name".into();
    let reason = TestCamera::try_connect(&l.hub, impostor)
        .await
        .err()
        .unwrap();
    assert_eq!(
        reason,
        "camera garden refused: camera id is paired with another token"
    );
    let audit = l.req("GET", "/api/audit", &admin, "").await.json();
    let accepted = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "camera.accept")
        .unwrap();
    assert_eq!(accepted["actor"], "user:root");
    assert_eq!(accepted["target"], "garden");
}

/// A camera socket opened by a web page (it carries an Origin; cameras send none) is
/// refused on both ports, so a page cannot pose as a camera on a loopback hub.
#[tokio::test]
async fn camera_sockets_refuse_web_pages() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let mut h: Vec<(&str, &str)> = vec![("origin", EVIL)];
    h.extend(UPGRADE);
    let r = request(hub.http, "GET", "/ws/camera", &h, "").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = request(hub.stream, "GET", "/ws/stream", &h, "").await;
    assert_eq!(r.status, 403, "{}", r.text());
    // A camera (no Origin) still connects.
    let mut control = ws(&format!("ws://{}/ws/camera", hub.http)).await;
    let (msg, _) = hello_exchange(&mut control, control_hello(&CamOpts::new("cam-x"))).await;
    assert!(matches!(msg, HubMsg::Welcome { .. }), "{msg:?}");
    hub.stop().await;
}

/// Viewers may watch but not command: on `/ws/ui` a viewer's reboot and settings commands
/// get an `error` answer and never reach the camera; an admin's are acknowledged and
/// audited with who, what and from where.
#[tokio::test]
async fn ui_commands_are_checked_per_role_and_audited() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let l = Locked::start().await;
    let open = |cookie: &str| {
        let mut req = l.hub.ws_url("/ws/ui").into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert("cookie", cookie.parse().unwrap());
        h.insert("origin", l.own_origin().parse().unwrap());
        req
    };
    let (mut viewer, _) = tokio_tungstenite::connect_async(open(&l.viewer_cookie))
        .await
        .unwrap();
    common::next_text(&mut viewer).await; // cameras
    for (cmd, what) in [
        (
            r#"{"camera":"cam-1","cmd":"reboot","id":1}"#,
            "reboot cameras",
        ),
        (
            r#"{"camera":"cam-1","cmd":"quality","value":9,"id":2}"#,
            "change camera settings",
        ),
    ] {
        viewer.send(cmd.into()).await.unwrap();
        let answer = loop {
            let t = common::next_text(&mut viewer).await;
            if t.contains("\"error\"") {
                break t;
            }
        };
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            v["message"],
            format!("permission denied: user:vic (role viewer) may not {what}")
        );
    }
    let (mut admin, _) = tokio_tungstenite::connect_async(open(&l.admin_cookie))
        .await
        .unwrap();
    common::next_text(&mut admin).await;
    admin
        .send(r#"{"camera":"cam-1","cmd":"quality","value":9,"id":3}"#.into())
        .await
        .unwrap();
    loop {
        let t = common::next_text(&mut admin).await;
        if t.contains("\"ack\"") {
            assert!(t.contains("\"ok\":true"), "{t}");
            break;
        }
    }
    assert_eq!(*l.cam.received.lock().unwrap(), ["quality 9"]);
    // REST changes are audited too, with the fields.
    let r = l
        .req(
            "POST",
            "/api/cameras/cam-1/settings",
            &[("authorization", &l.bearer_admin())],
            r#"{"vflip":1,"quality":8}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let mut entries = Vec::new();
    for _ in 0..100 {
        let audit = l
            .req("GET", "/api/audit", &[("cookie", &l.admin_cookie)], "")
            .await
            .json();
        entries = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "camera.settings")
            .cloned()
            .collect();
        if entries.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["actor"], "token:script");
    assert_eq!(entries[0]["detail"], "quality 8, vflip 1");
    assert_eq!(entries[1]["actor"], "user:root");
    assert_eq!(entries[1]["detail"], "quality 9");
    assert_eq!(entries[1]["target"], "cam-1");
    assert_eq!(entries[1]["addr"], "127.0.0.1");
}

/// The first start with login required and no user creates `admin` (its password is
/// printed once in the log; only the hash is kept); `auth = "off"` is reported to the
/// dashboard for its banner; a loopback hub runs without login.
#[tokio::test]
async fn modes_first_admin_and_whoami() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::for_tests(dir.path());
    c.auth = AuthMode::On;
    let hub = TestHub::start(c).await;
    let who = request(hub.http, "GET", "/api/whoami", &[], "")
        .await
        .json();
    assert_eq!(who["auth"], "required");
    assert_eq!(who["role"], serde_json::Value::Null);
    hub.stop().await;
    let auth = Auth::open_with(dir.path(), AuthOptions::for_tests()).unwrap();
    let users = auth.list_users().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name.as_str(), "admin");
    assert_eq!(users[0].role, Role::Admin);

    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::for_tests(dir.path());
    c.auth = AuthMode::Off;
    let hub = TestHub::start(c).await;
    let who = request(hub.http, "GET", "/api/whoami", &[], "")
        .await
        .json();
    assert_eq!(who["auth"], "off");
    assert_eq!(who["actor"], "anonymous");
    assert_eq!(who["may"]["settings"], true);
    hub.stop().await;
    // No admin is created when login is not required.
    let auth = Auth::open_with(dir.path(), AuthOptions::for_tests()).unwrap();
    assert!(!auth.has_users().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let who = request(hub.http, "GET", "/api/whoami", &[], "")
        .await
        .json();
    assert_eq!(who["auth"], "loopback");
    assert_eq!(who["login_required"], false);
    hub.stop().await;
}

/// A page the CSP would break: inline scripts, styles or event handlers.
fn assert_no_inline(html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script>"), "inline script");
    assert!(!lower.contains("<style"), "inline style element");
    assert!(!lower.contains(" style="), "style attribute");
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onerror=",
        " oninput=",
    ] {
        assert!(!lower.contains(handler), "inline handler {handler}");
    }
    for tag in lower.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap_or_default();
        assert!(
            open.contains("src="),
            "a script without src: <script{open}>"
        );
    }
}

/// The program `name` on PATH, or `None` with a message (a failure under
/// `ESPCAM_REQUIRE_TOOLS=1`).
fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("ESPCAM_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (ESPCAM_REQUIRE_TOOLS=1) but not installed"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// Issue 15: before its token is checked, a camera socket reads a hello of at most 16 KiB.
/// The stream port used to read hellos up to 2 × `max_frame_bytes` (4 MiB): 200 of them grew
/// the hub from 13 to 836 MB. A hello frame announcing 1 MiB is refused with 1009 from its
/// header alone: first only the header and 8 KiB of the payload are sent, so a hub that
/// waited for the whole message would answer after the 5 s hello deadline (1008) instead;
/// then the whole 1 MiB, written while the hub answers, gets the same close.
#[tokio::test]
async fn an_oversized_hello_is_refused_from_its_header_on_both_camera_sockets() {
    use common::{RawWs, client_frame, close_of, server_frames};
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_in(dir.path()).await;
    let big = format!(
        "{{\"type\":\"hello\",\"proto\":1,\"camera\":\"cam-big\",\"token\":\"{}\"}}",
        "x".repeat(1 << 20)
    );
    let frame = client_frame(0x1, big.as_bytes());
    for (addr, path) in [(hub.http, "/ws/camera"), (hub.stream, "/ws/stream")] {
        let mut s = RawWs::connect(addr, path).await;
        let started = std::time::Instant::now();
        s.tcp.write_all(&frame[..14 + 8192]).await.unwrap();
        let frames = s.read_until_closed().await;
        let elapsed = started.elapsed();
        assert_eq!(
            close_of(&frames).map(|c| c.0),
            Some(1009),
            "{path}: {frames:?}"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "{path}: refused after {elapsed:?}, as if the hub waited for the whole hello"
        );

        // The whole message: the hub answers without reading it.
        let mut s = RawWs::connect(addr, path).await;
        let (mut rd, mut wr) = s.tcp.split();
        let write = async {
            let _ = wr.write_all(&frame).await;
        };
        let read = async {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => return buf,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        let (_, buf) =
            tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(write, read) })
                .await
                .expect("the hub closes within 10 s");
        let frames = server_frames(&buf);
        assert_eq!(
            close_of(&frames).map(|c| c.0),
            Some(1009),
            "{path}: {frames:?}"
        );
    }
    // A camera with a normal hello still streams on the same hub.
    let cam = TestCamera::connect(&hub, CamOpts::new("cam-ok")).await;
    hub.wait_camera("cam-ok", |v| v["frames_in"].as_u64() > Some(0))
        .await;
    drop(cam);
    hub.stop().await;
}

/// Every `.jpg` file under `dir`, recursively.
fn jpg_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                jpg_files(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "jpg"))
            }
        })
        .sum()
}

/// Issue 15: snapshots could be saved at 964/s (24 MB/s of disk) with no quota. Now each
/// camera has a token bucket (`burst` saves, then one per `min_interval_ms`, else 429 with
/// `Retry-After`) and a retention quota (oldest deleted first past `max_per_camera` or
/// `max_bytes_per_camera`); a frame alone over the byte quota is refused with 507.
#[tokio::test]
async fn snapshots_are_rate_limited_and_the_oldest_go_past_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.snapshots.max_per_camera = 3;
    config.snapshots.burst = 5;
    // Long enough that five saves (an fsync each) fit well inside one interval.
    config.snapshots.min_interval = Duration::from_millis(2000);
    let hub = TestHub::start(config).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-q")).await;
    let _other = TestCamera::connect(&hub, CamOpts::new("cam-r")).await;
    for id in ["cam-q", "cam-r"] {
        hub.wait_camera(id, |v| v["frames_in"].as_u64() > Some(0))
            .await;
    }
    let other = hub.post("/api/cameras/cam-r/snapshots", "").await;
    assert_eq!(other.status, 201, "{}", other.text());
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = hub.post("/api/cameras/cam-q/snapshots", "").await;
        assert_eq!(r.status, 201, "{}", r.text());
        ids.push(r.json()["id"].as_i64().unwrap());
    }
    // The sixth in a row is refused, with when to come back.
    let r = hub.post("/api/cameras/cam-q/snapshots", "").await;
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.headers["retry-after"].parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(r.error().contains("one per 2000 ms"), "{}", r.error());
    // Only the newest 3 of cam-q are kept, on disk and in the index; cam-r's is untouched.
    let list = hub.get("/api/snapshots?camera=cam-q").await.json();
    let kept: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, vec![ids[4], ids[3], ids[2]]);
    assert_eq!(jpg_files(dir.path()), 4);
    assert_eq!(
        hub.get(&format!("/api/snapshots/{}.jpg", ids[0]))
            .await
            .status,
        404
    );
    let r = hub.get(&format!("/api/snapshots/{}.jpg", ids[4])).await;
    assert_eq!(r.status, 200);
    assert_eq!(common::decode(&r.body), (160, 120));
    // After the interval one more is allowed, and pushes out the oldest.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = hub.post("/api/cameras/cam-q/snapshots", "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let list = hub.get("/api/snapshots?camera=cam-q").await.json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[2]["id"].as_i64(), Some(ids[3]));
    assert_eq!(jpg_files(dir.path()), 4);
    assert_eq!(
        hub.get("/api/snapshots?camera=cam-r")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    hub.stop().await;

    // A byte quota smaller than one frame: 507 and nothing written.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.snapshots.max_bytes_per_camera = 1024;
    let hub = TestHub::start(config).await;
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-q")).await;
    hub.wait_camera("cam-q", |v| v["frames_in"].as_u64() > Some(0))
        .await;
    let r = hub.post("/api/cameras/cam-q/snapshots", "").await;
    assert_eq!(r.status, 507, "{}", r.text());
    assert!(
        r.error()
            .contains("exceeds snapshots.max_bytes_per_camera (1024 bytes)"),
        "{}",
        r.error()
    );
    assert_eq!(jpg_files(dir.path()), 0);
    hub.stop().await;
}

/// Whether a new connection to `addr` is closed at once without an answer (the per-address
/// budget is full) rather than served.
async fn refused(addr: SocketAddr) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return true;
    };
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("a connection is served or closed within 2 s")
        .unwrap_or(0);
    if n > 0 {
        assert!(
            buf.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    n == 0
}

/// Regression (issue 15, "an idle timeout, on both ports"): a browser socket whose client
/// completed the handshake and then went silent — never reading, never answering a ping —
/// stayed open for ever, and an upgraded connection gave its place in the per-address
/// budget back at the upgrade, so the budget did not bound WebSockets at all. Now every
/// WebSocket holds its slot until it ends, the hub pings each browser socket every
/// `ping_interval` and closes one from which nothing arrived for `idle_timeout` with 1001;
/// the slot is then free again. A client that answers pings (tokio-tungstenite does while
/// it reads) stays open well past the timeout and keeps receiving.
#[tokio::test]
async fn silent_browser_sockets_are_closed_and_their_slots_freed() {
    use common::{RawWs, close_of};
    use futures_util::StreamExt;
    use std::time::Instant;
    use tokio_tungstenite::tungstenite::Message;
    let idle = Duration::from_millis(1000);
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::for_tests(dir.path());
    c.ping_interval = Duration::from_millis(200);
    c.idle_timeout = idle;
    // The camera's control link and the three silent sockets below.
    c.max_connections_per_address = 4;
    let hub = TestHub::start(c).await;
    let mut opts = CamOpts::new("cam-1");
    opts.fps = 5;
    let _cam = TestCamera::connect(&hub, opts).await;
    hub.wait_camera("cam-1", |v| v["frames_in"].as_u64().unwrap_or(0) > 0)
        .await;

    let paths = ["/ws/view/cam-1", "/ws/ui", "/ws/playback/cam-1"];
    let opened = Instant::now();
    let mut silent = Vec::new();
    for path in paths {
        silent.push(RawWs::connect(hub.http, path).await);
    }
    assert!(
        refused(hub.http).await,
        "the camera link and three WebSockets fill a budget of 4: a fifth connection must be refused"
    );
    // Without reading anything from them: their slots come back once the hub gives up.
    let freed = loop {
        if !refused(hub.http).await {
            break opened.elapsed();
        }
        assert!(
            opened.elapsed() < idle + Duration::from_secs(5),
            "silent sockets still hold their slots {:?} after opening",
            opened.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("silent sockets' slots free after {} ms", freed.as_millis());
    assert!(
        freed >= idle,
        "freed after {freed:?}, before the idle timeout"
    );
    for (path, mut ws) in paths.into_iter().zip(silent) {
        let frames = ws.read_until_closed().await;
        let (code, reason) =
            close_of(&frames).unwrap_or_else(|| panic!("{path}: closed without a close frame"));
        println!("{path}: closed {code}: {reason}");
        assert_eq!(code, 1001, "{path}: {reason}");
        assert!(reason.contains("nothing received"), "{path}: {reason}");
        assert!(
            frames.iter().any(|(op, _)| *op == 0x9),
            "{path}: no ping before the close"
        );
    }

    // Clients that answer pings stay, and keep receiving, for three idle timeouts.
    let mut view = ws(&hub.ws_url("/ws/view/cam-1")).await;
    let mut ui = ws(&hub.ws_url("/ws/ui")).await;
    let mut playback = ws(&hub.ws_url("/ws/playback/cam-1")).await;
    let until = Instant::now() + 3 * idle;
    let (mut frames, mut texts) = (0, 0);
    while Instant::now() < until {
        tokio::select! {
            m = view.next() => match m {
                Some(Ok(Message::Binary(_))) => frames += 1,
                Some(Ok(Message::Ping(_) | Message::Text(_))) => {}
                other => panic!("viewer socket: {other:?}"),
            },
            m = ui.next() => match m {
                Some(Ok(Message::Text(_))) => texts += 1,
                Some(Ok(Message::Ping(_))) => {}
                other => panic!("/ws/ui: {other:?}"),
            },
            // Nothing is recorded: an `end` message, then it waits for frames.
            m = playback.next() => match m {
                Some(Ok(Message::Text(_) | Message::Ping(_))) => {}
                other => panic!("playback socket: {other:?}"),
            },
            () = tokio::time::sleep_until(until.into()) => {}
        }
    }
    assert!(frames >= 5, "{frames} frames in {:?}", 3 * idle);
    assert!(texts >= 2, "{texts} /ws/ui messages in {:?}", 3 * idle);
    hub.stop().await;
}

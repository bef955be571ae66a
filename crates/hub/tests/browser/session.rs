//! What the login and admin browser tests share: the users' passwords, the login form, raw
//! HTTP requests sent outside the browser (so the page's own session stays), and logging in
//! on the page. Included by `browser_login.rs` and `browser_admin.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::driver::Browser;

pub const ADMIN_PW: &str = "root-password-1";
pub const VIEWER_PW: &str = "viewer-password-1";
pub const LOGIN_FORM: &str = "document.querySelector('[data-testid=login-form]')";

/// An integer the page returned as a number or a string.
pub fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Sends a raw HTTP/1.1 request to `addr`: `head` (the request line and headers, without
/// `Host`, which is added), then `body`. With `whole`, reads the answer to its end;
/// otherwise only its first bytes (enough for the status line, and an upgraded socket
/// never ends).
async fn send(addr: SocketAddr, head: &str, body: &str, whole: bool) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let req = format!("{head}Host: {addr}\r\n{length}Connection: close\r\n\r\n{body}");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let read = async {
        if whole {
            buf.clear();
            s.read_to_end(&mut buf).await.map(|_| buf.len())
        } else {
            s.read(&mut buf).await
        }
    };
    let n = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}

fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line: {answer:?}"))
}

/// The status code of a raw HTTP/1.1 request `head` (the request line and headers, without
/// `Host`, which is added) sent to `addr`.
pub async fn status_of(addr: SocketAddr, head: &str) -> u16 {
    status(&send(addr, head, "", false).await)
}

/// The status code of `GET path` with `Authorization: Bearer token`.
pub async fn bearer_status(addr: SocketAddr, path: &str, token: &str) -> u16 {
    status_of(
        addr,
        &format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"),
    )
    .await
}

/// The status code of `GET path` with `Cookie: cookie`.
pub async fn cookie_status(addr: SocketAddr, path: &str, cookie: &str) -> u16 {
    status_of(
        addr,
        &format!("GET {path} HTTP/1.1\r\nCookie: {cookie}\r\n"),
    )
    .await
}

/// `POST /api/login` with `user` and `password`: the whole answer.
async fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let body = json!({ "user": user, "password": password }).to_string();
    send(
        addr,
        "POST /api/login HTTP/1.1\r\nContent-Type: application/json\r\n",
        &body,
        true,
    )
    .await
}

/// The status of `POST /api/login` with `user` and `password`.
pub async fn login_status(addr: SocketAddr, user: &str, password: &str) -> u16 {
    status(&login(addr, user, password).await)
}

/// Logs `user` in: the `Cookie` header value of the new session.
pub async fn login_cookie(addr: SocketAddr, user: &str, password: &str) -> String {
    let answer = login(addr, user, password).await;
    assert_eq!(status(&answer), 200, "{answer}");
    answer
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| panic!("no session cookie: {answer}"))
}

/// Replaces the text of the field `sel` with `text`.
pub async fn type_into(b: &Browser, sel: &str, text: &str) {
    let field = b.client.find(Locator::Css(sel)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Types `user` and `password` into the login form and submits it.
pub async fn submit_login(b: &Browser, user: &str, password: &str) {
    type_into(b, "[data-testid=login-user]", user).await;
    type_into(b, "[data-testid=login-password]", password).await;
    b.click(Locator::Css("[data-testid=login-submit]")).await;
}

/// Waits for the dashboard to be connected to the hub as `who` (e.g. `vic (viewer)`).
pub async fn wait_dashboard_as(b: &Browser, who: &str) {
    b.wait_for(
        &format!("dashboard as {who}"),
        &format!(
            "!{LOGIN_FORM} && document.querySelector('[data-testid=hub-status]').dataset.state === 'connected' && document.querySelector('[data-testid=whoami]').textContent === {who:?}"
        ),
    )
    .await;
}

/// Logs in on the login page and waits for the dashboard as `who`.
pub async fn log_in(b: &Browser, user: &str, password: &str, who: &str) {
    b.wait_for("the login page", LOGIN_FORM).await;
    submit_login(b, user, password).await;
    wait_dashboard_as(b, who).await;
}

/// Runs `fetch(path, {method, json body})` in the page and returns the status.
pub async fn page_fetch(b: &Browser, method: &str, path: &str, body: &str) -> i64 {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         fetch({path:?}, {{ method: {method:?}, headers: {{ 'content-type': 'application/json' }}, body: {body:?}, credentials: 'same-origin' }})
           .then(r => done(r.status), e => done(String(e)));"
    );
    int(&b.client.execute_async(&script, vec![]).await.unwrap())
}

/// `GET path` from the page (its session cookie); the parsed JSON body.
pub async fn page_fetch_json(b: &Browser, path: &str) -> Value {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         fetch({path:?}, {{ credentials: 'same-origin' }}).then(r => r.json()).then(done, e => done(String(e)));"
    );
    b.client.execute_async(&script, vec![]).await.unwrap()
}

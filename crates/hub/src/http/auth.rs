//! Credentials at every door of port 6971: the middleware that runs before every route
//! ([`guard`]), the login, logout and who-am-I routes, and the admin routes for users,
//! tokens, camera pairing and the audit log.
//!
//! [`guard`] looks the route up in the door table ([`super::security::door`]), checks
//! `Host`, then `Origin` for sockets and state changes, then the credential
//! (`espcam_auth::Auth::authenticate`, on a blocking thread), the content type of a state
//! change (`state_change_allowed`), and the permission (`Role::allows`); a handler runs only
//! when all passed, with the [`Caller`] in its request's extensions. State changes marked
//! in the table are audited after they succeed. When the hub runs without login (loopback
//! only, or `auth = "off"`) every request is the anonymous admin, but `Host`, `Origin` and
//! the content-type rule still apply: without them any web page could drive a local hub.
//!
//! Guessing is slowed per client address: a wrong token, Basic credential or password
//! counts towards the `LoginLimiter`, whose lockout answers 429 with `Retry-After`; at most
//! two argon2 checks run at once. This module must never log or echo a credential, and
//! never let a handler run for a request that failed a check.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use espcam_auth::{
    Action, Actor, AuditAction, AuditEntry, AuthOutcome, LoginDecision, LoginLimitPolicy,
    LoginLimiter, ModeDecision, NameError, Password, PasswordError, RequestCredentials, Role,
    TokenName, UserName, Via, state_change_allowed,
};
use espcam_auth::{PairedCamera, PairingState, Principal, TokenError, TokenInfo, User, UserError};
use espcam_proto::CameraId;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::http::api::{MAX_BODY, read_body};
use crate::http::error::error_body;
use crate::http::revoke::Presented;
use crate::http::security::{Door, door, refuse_host, refuse_origin, target_of};
use crate::net::listener::PeerAddr;
use crate::state::Hub;
use crate::state::access::Warning;
use crate::state::clock::now_us;
use crate::text::for_log;

/// argon2 checks (logins, HTTP Basic with a password) running at once: each takes tens of
/// milliseconds and 19 MiB, so a burst of logins must queue rather than take every core
/// and the memory with them.
const ARGON2_AT_ONCE: usize = 2;

/// The guard's shared state: the hub, the failed-credential limiter, the argon2 queue.
#[derive(Debug)]
pub(crate) struct Gate {
    hub: Hub,
    /// Failed logins and wrong tokens per client address. A std mutex: held for one map
    /// update, never across an `.await`.
    logins: Mutex<LoginLimiter>,
    /// Caps concurrent argon2 checks ([`ARGON2_AT_ONCE`]).
    argon: Semaphore,
    /// Whether port 6971 speaks TLS (cookie name and `Secure`; origin scheme).
    tls: bool,
}

impl Gate {
    pub(crate) fn new(hub: Hub) -> Self {
        let tls = hub.config().tls.enabled();
        Self {
            hub,
            logins: Mutex::new(LoginLimiter::new(LoginLimitPolicy::default())),
            argon: Semaphore::new(ARGON2_AT_ONCE),
            tls,
        }
    }

    /// The hub.
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Whether port 6971 speaks TLS.
    pub(crate) fn tls(&self) -> bool {
        self.tls
    }

    /// The argon2 queue ([`ARGON2_AT_ONCE`]).
    pub(crate) fn argon(&self) -> &Semaphore {
        &self.argon
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, LoginLimiter> {
        self.logins.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Who is asking, put into the request's extensions by [`guard`] for the handler.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The authenticated subject ([`Principal::anonymous`] without login).
    pub principal: Principal,
    /// The client's address.
    pub addr: IpAddr,
    /// What the request presented, on streaming doors (sockets, viewer outputs) with login
    /// required: their [`CredentialWatch`](super::revoke::CredentialWatch) checks it again
    /// while the stream lasts. `None` otherwise.
    pub credential: Option<Arc<Presented>>,
}

/// What a handler tells [`guard`] to record in the audit log beside the door's action: the
/// target when the path does not name it (a user added by POST body) and the particulars.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditNote {
    /// The target; `None` takes the route's first path parameter.
    pub target: Option<String>,
    /// Particulars, e.g. `quality 10, vflip on`.
    pub detail: String,
}

/// A permission in words, for 403 messages: "may not {this}".
pub(crate) fn describe(a: Action) -> &'static str {
    match a {
        Action::View => "watch cameras",
        Action::Snapshot => "take or read snapshots",
        Action::SnapshotDelete => "delete snapshots",
        Action::Settings => "change camera settings",
        Action::Reboot => "reboot cameras",
        Action::Users => "manage users",
        Action::Tokens => "manage API tokens",
        Action::Firmware => "update firmware",
        Action::CameraAccept => "accept cameras",
        Action::CameraRemove => "remove cameras",
        Action::Recordings => "watch recordings",
        Action::Events => "read events",
        Action::Metrics => "read metrics",
        Action::Audit => "read the audit log",
    }
}

/// The 403 answer for `p` attempting `a`.
pub(crate) fn forbidden_message(p: &Principal, a: Action) -> String {
    format!(
        "permission denied: {} (role {}) may not {}",
        p.actor,
        p.role,
        describe(a)
    )
}

/// The client's address (unspecified when the request did not come through the hub's
/// listener, as in router tests).
fn peer(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Every `Cookie` header, joined as one (HTTP/2 may split them).
fn cookies(h: &HeaderMap) -> Option<String> {
    let all: Vec<&str> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!all.is_empty()).then(|| all.join("; "))
}

/// The `?token=` value of a query string.
fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(crate::http::security::percent_decode)
}

/// What [`Gate::authenticate`] found.
enum Who {
    /// A valid credential.
    Known(Principal, Via),
    /// No credential, or a session that ended (expired, logged out).
    Nobody,
    /// A wrong credential (counted against the address).
    Invalid,
    /// Answer this instead (429, 500).
    Refused(Response),
}

fn too_many(retry_after: std::time::Duration) -> Response {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut r = error_body(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many failed attempts from this address: try again in {secs} s"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

fn internal(what: &str) -> Response {
    error_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("{what}: the hub's auth database failed (see the hub's log)"),
    )
}

impl Gate {
    /// Authenticates a request's credential (blocking work on its own thread), applying
    /// the per-address limiter to explicit credentials.
    async fn authenticate(&self, headers: &HeaderMap, query: Option<String>, addr: IpAddr) -> Who {
        let authorization = header_str(headers, header::AUTHORIZATION).map(str::to_owned);
        let cookie = cookies(headers);
        let explicit = authorization.is_some() || query.is_some();
        if explicit
            && let LoginDecision::Reject { retry_after } =
                self.limiter().check(addr, Instant::now())
        {
            return Who::Refused(too_many(retry_after));
        }
        let basic = authorization.as_deref().is_some_and(|a| {
            a.trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
        });
        // A Basic password costs an argon2 run: queue for it.
        let _permit = if basic {
            match self.argon.acquire().await {
                Ok(p) => Some(p),
                Err(_) => return Who::Refused(internal("credential check")),
            }
        } else {
            None
        };
        let tls = self.tls;
        let outcome = self
            .hub
            .access()
            .with_auth(move |auth| {
                auth.authenticate(
                    &RequestCredentials {
                        cookie: cookie.as_deref(),
                        authorization: authorization.as_deref(),
                        query_token: query.as_deref(),
                        tls,
                    },
                    now_us(),
                )
            })
            .await;
        match outcome {
            Some(Ok(Ok(AuthOutcome::Authenticated { principal, via }))) => {
                Who::Known(principal, via)
            }
            Some(Ok(Ok(AuthOutcome::None | AuthOutcome::Invalid(Via::Session)))) => Who::Nobody,
            Some(Ok(Ok(AuthOutcome::Invalid(via)))) => {
                let delay = self.limiter().record_failure(addr, Instant::now());
                if self.hub.access().should_warn(Warning::BadCredential, addr) {
                    warn!(
                        "wrong {} from {addr}{}",
                        via_name(via),
                        if delay.is_zero() {
                            String::new()
                        } else {
                            format!(": further attempts refused for {} s", delay.as_secs())
                        }
                    );
                }
                Who::Invalid
            }
            Some(Ok(Err(e))) => {
                warn!("credential check failed: {e}");
                Who::Refused(internal("credential check"))
            }
            Some(Err(e)) => {
                warn!("credential check failed: {e}");
                Who::Refused(internal("credential check"))
            }
            None => Who::Refused(internal("credential check")),
        }
    }
}

fn via_name(v: Via) -> &'static str {
    match v {
        Via::Session => "session cookie",
        Via::Bearer => "bearer token",
        Via::QueryToken => "?token=",
        Via::BasicPassword => "Basic user or password",
        Via::BasicToken => "Basic token",
    }
}

/// 401 for `door`: with `WWW-Authenticate: Basic` on the viewer outputs.
fn unauthorized(door: Door, message: &str) -> Response {
    let mut r = error_body(StatusCode::UNAUTHORIZED, message);
    if matches!(
        door,
        Door::Viewer(_)
            | Door::Socket {
                query_token: true,
                ..
            }
    ) {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"espcam\", charset=\"UTF-8\""),
        );
    }
    r
}

/// The permission a door needs, if any.
fn action_of(door: Door) -> Option<Action> {
    match door {
        Door::Read(a) | Door::Viewer(a) | Door::Socket { action: a, .. } => Some(a),
        Door::Change { action, .. } => Some(action),
        Door::Health | Door::Asset | Door::Page | Door::Login | Door::Logout | Door::WhoAmI => None,
    }
}

/// Middleware on every route of port 6971 (a `route_layer`, so the matched route is known).
pub(crate) async fn guard(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let door = door(req.method(), &template);
    if door == Door::Health {
        return next.run(req).await;
    }
    let hub = gate.hub.clone();
    let addr = peer(&req);
    if let Some(r) = refuse_host(&hub, req.headers(), addr) {
        return r;
    }
    let from_browser_too = matches!(
        door,
        Door::Socket { .. } | Door::Change { .. } | Door::Login | Door::Logout
    );
    if from_browser_too && let Some(r) = refuse_origin(&hub, req.headers(), addr, gate.tls) {
        return r;
    }
    let content_type = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_owned);
    match door {
        Door::Asset | Door::Login => return next.run(req).await,
        Door::Logout => {
            if let Err(e) = state_change_allowed(Via::Session, content_type.as_deref()) {
                return error_body(StatusCode::UNSUPPORTED_MEDIA_TYPE, &e.to_string());
            }
            return next.run(req).await;
        }
        _ => {}
    }
    let query = match door {
        Door::Viewer(_)
        | Door::Socket {
            query_token: true, ..
        } => query_token(req.uri().query()),
        _ => None,
    };
    let streams = matches!(door, Door::Viewer(_) | Door::Socket { .. });
    let mut credential = None;
    let (principal, via) = if hub.access().login_required() {
        let kept = query.clone();
        match gate.authenticate(req.headers(), query, addr).await {
            Who::Known(p, via) => {
                if streams {
                    credential = Some(Arc::new(Presented {
                        gate: gate.clone(),
                        cookie: cookies(req.headers()),
                        authorization: header_str(req.headers(), header::AUTHORIZATION)
                            .map(str::to_owned),
                        query_token: kept,
                        via,
                    }));
                }
                (Some(p), Some(via))
            }
            Who::Nobody => match door {
                Door::Page => return crate::http::assets::login_page(req.headers()),
                Door::WhoAmI => (None, None),
                _ => {
                    return unauthorized(
                        door,
                        "login required: log in on the dashboard, or send a token (Authorization: Bearer …)",
                    );
                }
            },
            Who::Invalid => {
                return unauthorized(door, "wrong, expired or revoked credential");
            }
            Who::Refused(r) => return r,
        }
    } else {
        (Some(Principal::anonymous()), None)
    };
    if let Door::Change { .. } = door {
        // Without login, treat every request as carrying an ambient credential: a local
        // hub must not take a form post from another site either.
        let ambient = via.unwrap_or(
            if header_str(req.headers(), header::AUTHORIZATION)
                .is_some_and(|a| a.trim_start().starts_with("Bearer "))
            {
                Via::Bearer
            } else {
                Via::Session
            },
        );
        if let Err(e) = state_change_allowed(ambient, content_type.as_deref()) {
            if hub.access().should_warn(Warning::CrossSite, addr) {
                warn!("refused a state change from {addr}: {e}");
            }
            return error_body(StatusCode::UNSUPPORTED_MEDIA_TYPE, &e.to_string());
        }
    }
    if let (Some(p), Some(a)) = (&principal, action_of(door))
        && !p.allows(a)
    {
        return error_body(StatusCode::FORBIDDEN, &forbidden_message(p, a));
    }
    let path = req.uri().path().to_owned();
    if let Some(p) = &principal {
        req.extensions_mut().insert(Caller {
            principal: p.clone(),
            addr,
            credential,
        });
    }
    let response = next.run(req).await;
    if let (
        Door::Change {
            audit: Some(action),
            ..
        },
        Some(p),
    ) = (door, &principal)
        && response.status().is_success()
    {
        let note = response
            .extensions()
            .get::<AuditNote>()
            .cloned()
            .unwrap_or_default();
        let target = note.target.unwrap_or_else(|| target_of(&template, &path));
        hub.access()
            .audit(&p.actor, action, &target, &note.detail, Some(addr))
            .await;
    }
    response
}

/// The routes of this module.
pub(crate) fn routes(gate: Arc<Gate>) -> Router {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/whoami", get(whoami))
        .route("/api/users", get(list_users).post(add_user))
        .route("/api/users/{name}", delete(remove_user).patch(set_role))
        .route("/api/users/{name}/password", post(set_password))
        .route("/api/tokens", get(list_tokens).post(add_token))
        .route("/api/tokens/{name}", delete(revoke_token))
        .route("/api/pairing", get(list_pairing))
        .route("/api/pairing/{camera}", delete(remove_pairing))
        .route("/api/cameras/{camera}/accept", post(accept_camera))
        .route("/api/audit", get(audit_log))
        .with_state(gate)
}

fn mode_name(m: ModeDecision) -> &'static str {
    match m {
        ModeDecision::Required => "required",
        ModeDecision::LoopbackOnly => "loopback",
        ModeDecision::Disabled => "off",
    }
}

/// The `whoami` object: the hub's mode and, when known, the caller and what it may do.
fn whoami_json(hub: &Hub, p: Option<&Principal>) -> Value {
    let may: serde_json::Map<String, Value> = Action::ALL
        .iter()
        .map(|a| {
            (
                action_key(*a).to_string(),
                Value::Bool(p.is_some_and(|p| p.allows(*a))),
            )
        })
        .collect();
    let user = p.and_then(|p| match &p.actor {
        Actor::User(n) => Some(n.as_str().to_string()),
        _ => None,
    });
    json!({
        "auth": mode_name(hub.access().mode()),
        "login_required": hub.access().login_required(),
        "actor": p.map(|p| p.actor.to_string()),
        "user": user,
        "role": p.map(|p| p.role.as_str()),
        "may": may,
    })
}

/// The JSON key of an action in `whoami`'s `may`.
fn action_key(a: Action) -> &'static str {
    match a {
        Action::View => "view",
        Action::Snapshot => "snapshot",
        Action::SnapshotDelete => "snapshot_delete",
        Action::Settings => "settings",
        Action::Reboot => "reboot",
        Action::Users => "users",
        Action::Tokens => "tokens",
        Action::Firmware => "firmware",
        Action::CameraAccept => "camera_accept",
        Action::CameraRemove => "camera_remove",
        Action::Recordings => "recordings",
        Action::Events => "events",
        Action::Metrics => "metrics",
        Action::Audit => "audit",
    }
}

/// `GET /api/whoami`.
async fn whoami(State(gate): State<Arc<Gate>>, req: Request) -> Response {
    let caller = req.extensions().get::<Caller>();
    no_store(axum::Json(whoami_json(&gate.hub, caller.map(|c| &c.principal))).into_response())
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn no_database() -> Response {
    error_body(
        StatusCode::SERVICE_UNAVAILABLE,
        "this hub runs without a user database",
    )
}

/// Body of `POST /api/login`.
#[derive(Debug, Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

/// A JSON body of at most [`MAX_BODY`] bytes, read within the body deadline.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: Request,
    expected: &str,
) -> Result<T, Response> {
    let body = read_body(req.into_body(), MAX_BODY)
        .await
        .map_err(IntoResponse::into_response)?;
    serde_json::from_slice(&body).map_err(|e| {
        error_body(
            StatusCode::BAD_REQUEST,
            &format!("body must be JSON such as {expected}: {e}"),
        )
    })
}

/// `POST /api/login`: `{"user","password"}` → a session cookie.
async fn login(State(gate): State<Arc<Gate>>, req: Request) -> Response {
    let hub = gate.hub.clone();
    if hub.access().auth().is_none() {
        return no_database();
    }
    let addr = peer(&req);
    if let LoginDecision::Reject { retry_after } = gate.limiter().check(addr, Instant::now()) {
        if hub.access().should_warn(Warning::BadCredential, addr) {
            warn!("login from {addr} refused: too many failed attempts");
        }
        return too_many(retry_after);
    }
    let body: LoginBody = match json_body(req, r#"{"user":"alice","password":"…"}"#).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(_permit) = gate.argon.acquire().await else {
        return internal("login");
    };
    let user = body.user.clone();
    let checked = hub
        .access()
        .with_auth(move |auth| -> Result<_, String> {
            let now = now_us();
            let Some(p) = auth
                .check_password(&body.user, &body.password, now)
                .map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            let Actor::User(name) = &p.actor else {
                return Ok(None);
            };
            let s = auth.create_session(name, now).map_err(|e| e.to_string())?;
            Ok(Some((p, s)))
        })
        .await;
    drop(_permit);
    let shown = for_log(&user);
    match checked {
        Some(Ok(Ok(Some((p, session))))) => {
            gate.limiter().record_success(addr);
            info!("{} logged in from {addr}", p.actor);
            hub.access()
                .audit(&p.actor, AuditAction::Login, "", "", Some(addr))
                .await;
            let cookie =
                espcam_auth::set_session_cookie(&session.secret, session.max_age, gate.tls);
            let mut r = no_store(axum::Json(whoami_json(&hub, Some(&p))).into_response());
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Some(Ok(Ok(None))) => {
            let delay = gate.limiter().record_failure(addr, Instant::now());
            if hub.access().should_warn(Warning::BadCredential, addr) {
                warn!("failed login for user {shown} from {addr}");
            }
            hub.access()
                .audit(
                    &Actor::Anonymous,
                    AuditAction::LoginFailed,
                    &espcam_auth::escape_for_log(&user, 40),
                    "",
                    Some(addr),
                )
                .await;
            let mut r = error_body(StatusCode::UNAUTHORIZED, "wrong user name or password");
            if !delay.is_zero() {
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(delay.as_secs().max(1)),
                );
            }
            r
        }
        Some(Ok(Err(e))) => {
            warn!("login for user {shown} failed: {}", for_log(&e));
            internal("login")
        }
        Some(Err(e)) => {
            warn!("login for user {shown} failed: {e}");
            internal("login")
        }
        None => no_database(),
    }
}

/// `POST /api/logout`: ends the session in the cookie (if any) and clears the cookie.
async fn logout(State(gate): State<Arc<Gate>>, req: Request) -> Response {
    let hub = gate.hub.clone();
    let addr = peer(&req);
    let tls = gate.tls;
    let secret = cookies(req.headers())
        .and_then(|c| espcam_auth::session_from_cookie_header(&c, tls).map(str::to_owned));
    if let Some(secret) = secret {
        let ended = hub
            .access()
            .with_auth(move |auth| -> Result<_, String> {
                let s = auth.session(&secret, now_us()).map_err(|e| e.to_string())?;
                auth.logout(&secret).map_err(|e| e.to_string())?;
                Ok(s)
            })
            .await;
        if let Some(Ok(Ok(Some(s)))) = ended {
            hub.access().credentials_changed();
            info!("{} logged out from {addr}", s.principal.actor);
            hub.access()
                .audit(&s.principal.actor, AuditAction::Logout, "", "", Some(addr))
                .await;
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&espcam_auth::clear_session_cookie(tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Runs `f` on the auth database, mapping "no database" and task failures to responses.
async fn db<T: Send + 'static>(
    hub: &Hub,
    what: &'static str,
    f: impl FnOnce(&espcam_auth::Auth) -> T + Send + 'static,
) -> Result<T, Response> {
    match hub.access().with_auth(f).await {
        None => Err(no_database()),
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => {
            warn!("{what}: {e}");
            Err(internal(what))
        }
    }
}

fn with_note(r: impl IntoResponse, target: Option<String>, detail: String) -> Response {
    let mut r = r.into_response();
    r.extensions_mut().insert(AuditNote { target, detail });
    r
}

fn bad_name(e: NameError) -> Response {
    error_body(StatusCode::BAD_REQUEST, &e.to_string())
}

fn bad_password(e: PasswordError) -> Response {
    error_body(StatusCode::BAD_REQUEST, &e.to_string())
}

fn user_error(e: UserError) -> Response {
    let status = match &e {
        UserError::Exists(_) | UserError::LastAdmin(_) => StatusCode::CONFLICT,
        UserError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => {
            warn!("user operation failed: {e}");
            return internal("user operation");
        }
    };
    error_body(status, &e.to_string())
}

fn token_error(e: TokenError) -> Response {
    let status = match &e {
        TokenError::Exists(_) => StatusCode::CONFLICT,
        TokenError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => {
            warn!("token operation failed: {e}");
            return internal("token operation");
        }
    };
    error_body(status, &e.to_string())
}

fn bad_role(e: espcam_auth::RoleError) -> Response {
    error_body(StatusCode::BAD_REQUEST, &e.to_string())
}

fn user_json(u: &User) -> Value {
    json!({
        "name": u.name.as_str(),
        "role": u.role.as_str(),
        "created_us": u.created_us,
        "last_login_us": u.last_login_us,
    })
}

/// `GET /api/users`.
async fn list_users(State(gate): State<Arc<Gate>>) -> Response {
    match db(&gate.hub, "listing users", |a| a.list_users()).await {
        Ok(Ok(users)) => {
            axum::Json(users.iter().map(user_json).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(e)) => {
            warn!("listing users: {e}");
            internal("listing users")
        }
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct NewUserBody {
    name: String,
    role: String,
    password: String,
}

/// `POST /api/users` `{"name","role","password"}` → 201.
async fn add_user(State(gate): State<Arc<Gate>>, req: Request) -> Response {
    let body: NewUserBody = match json_body(
        req,
        r#"{"name":"alice","role":"viewer","password":"at least 8 characters"}"#,
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = match UserName::new(&body.name) {
        Ok(n) => n,
        Err(e) => return bad_name(e),
    };
    let role = match body.role.parse::<Role>() {
        Ok(r) => r,
        Err(e) => return bad_role(e),
    };
    let password = match Password::new(&body.password) {
        Ok(p) => p,
        Err(e) => return bad_password(e),
    };
    let Ok(_permit) = gate.argon.acquire().await else {
        return internal("adding a user");
    };
    let n = name.clone();
    match db(&gate.hub, "adding a user", move |a| {
        a.add_user(&n, role, &password, now_us())
    })
    .await
    {
        Ok(Ok(())) => with_note(
            (
                StatusCode::CREATED,
                axum::Json(json!({ "name": name.as_str(), "role": role.as_str() })),
            ),
            Some(name.as_str().to_string()),
            format!("role {role}"),
        ),
        Ok(Err(e)) => user_error(e),
        Err(r) => r,
    }
}

/// `DELETE /api/users/{name}` → 204 (ends the user's sessions).
async fn remove_user(State(gate): State<Arc<Gate>>, Path(name): Path<String>) -> Response {
    let name = match UserName::new(&name) {
        Ok(n) => n,
        Err(e) => return bad_name(e),
    };
    match db(&gate.hub, "removing a user", move |a| a.remove_user(&name)).await {
        Ok(Ok(())) => {
            gate.hub.access().credentials_changed();
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(e)) => user_error(e),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

/// `PATCH /api/users/{name}` `{"role":"admin"|"viewer"}` → 200 `{"name","role"}`. The
/// rules are the command line's (`espcam user role`), both being `Auth::set_role`: 404 an
/// unknown user, 409 demoting the last admin. The user's sessions stay; their open streams
/// are re-checked at once and end if the new role lacks their permission (`revoke.rs`),
/// and their next requests get the new role.
async fn set_role(
    State(gate): State<Arc<Gate>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let name = match UserName::new(&name) {
        Ok(n) => n,
        Err(e) => return bad_name(e),
    };
    let body: RoleBody = match json_body(req, r#"{"role":"viewer"}"#).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let role = match body.role.parse::<Role>() {
        Ok(r) => r,
        Err(e) => return bad_role(e),
    };
    let n = name.clone();
    match db(&gate.hub, "changing a role", move |a| a.set_role(&n, role)).await {
        Ok(Ok(())) => {
            gate.hub.access().credentials_changed();
            with_note(
                axum::Json(json!({ "name": name.as_str(), "role": role.as_str() })),
                Some(name.as_str().to_string()),
                role.as_str().to_string(),
            )
        }
        Ok(Err(e)) => user_error(e),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct PasswordBody {
    password: String,
}

/// `POST /api/users/{name}/password` `{"password"}` → 204 (ends the user's sessions).
async fn set_password(
    State(gate): State<Arc<Gate>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let name = match UserName::new(&name) {
        Ok(n) => n,
        Err(e) => return bad_name(e),
    };
    let body: PasswordBody = match json_body(req, r#"{"password":"at least 8 characters"}"#).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let password = match Password::new(&body.password) {
        Ok(p) => p,
        Err(e) => return bad_password(e),
    };
    let Ok(_permit) = gate.argon.acquire().await else {
        return internal("changing a password");
    };
    match db(&gate.hub, "changing a password", move |a| {
        a.set_password(&name, &password, now_us())
    })
    .await
    {
        Ok(Ok(())) => {
            gate.hub.access().credentials_changed();
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(e)) => user_error(e),
        Err(r) => r,
    }
}

fn token_json(t: &TokenInfo) -> Value {
    json!({
        "name": t.name.as_str(),
        "role": t.role.as_str(),
        "created_us": t.created_us,
        "last_used_us": t.last_used_us,
    })
}

/// `GET /api/tokens` (names and roles; a token's secret is never shown again).
async fn list_tokens(State(gate): State<Arc<Gate>>) -> Response {
    match db(&gate.hub, "listing tokens", |a| a.list_tokens()).await {
        Ok(Ok(tokens)) => {
            axum::Json(tokens.iter().map(token_json).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(e)) => {
            warn!("listing tokens: {e}");
            internal("listing tokens")
        }
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct NewTokenBody {
    name: String,
    role: String,
}

/// `POST /api/tokens` `{"name","role"}` → 201 `{"name","role","token"}`: the only time the
/// token is shown.
async fn add_token(State(gate): State<Arc<Gate>>, req: Request) -> Response {
    let body: NewTokenBody =
        match json_body(req, r#"{"name":"home-assistant","role":"viewer"}"#).await {
            Ok(b) => b,
            Err(r) => return r,
        };
    let name = match TokenName::new(&body.name) {
        Ok(n) => n,
        Err(e) => return bad_name(e),
    };
    let role = match body.role.parse::<Role>() {
        Ok(r) => r,
        Err(e) => return bad_role(e),
    };
    match db(&gate.hub, "adding a token", move |a| {
        a.add_token(&name, role, now_us())
    })
    .await
    {
        Ok(Ok(t)) => with_note(
            no_store(
                (
                    StatusCode::CREATED,
                    axum::Json(json!({
                        "name": t.name.as_str(),
                        "role": t.role.as_str(),
                        "token": t.secret.expose(),
                    })),
                )
                    .into_response(),
            ),
            Some(t.name.as_str().to_string()),
            format!("role {}", t.role),
        ),
        Ok(Err(e)) => token_error(e),
        Err(r) => r,
    }
}

/// `DELETE /api/tokens/{name}` → 204.
async fn revoke_token(State(gate): State<Arc<Gate>>, Path(name): Path<String>) -> Response {
    let name = match TokenName::new(&name) {
        Ok(n) => n,
        Err(e) => return bad_name(e),
    };
    match db(&gate.hub, "revoking a token", move |a| {
        a.revoke_token(&name)
    })
    .await
    {
        Ok(Ok(())) => {
            gate.hub.access().credentials_changed();
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Err(e)) => token_error(e),
        Err(r) => r,
    }
}

fn paired_json(c: &PairedCamera) -> Value {
    json!({
        "id": c.id,
        "state": match c.state { PairingState::Pending => "pending", PairingState::Accepted => "accepted" },
        "first_seen_us": c.first_seen_us,
        "last_seen_us": c.last_seen_us,
        "addr": c.addr,
    })
}

/// `GET /api/pairing`: cameras waiting for an admin and cameras paired by trust on first
/// use (configured `[[camera]]` entries are not in it).
async fn list_pairing(State(gate): State<Arc<Gate>>) -> Response {
    match db(&gate.hub, "listing paired cameras", |a| a.list_paired()).await {
        Ok(Ok(list)) => {
            axum::Json(list.iter().map(paired_json).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(e)) => {
            warn!("listing paired cameras: {e}");
            internal("listing paired cameras")
        }
        Err(r) => r,
    }
}

fn bad_camera(raw: &str, e: espcam_proto::control::CameraIdError) -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        &format!("no camera {:?}: {e}", espcam_proto::close::echo(raw, 40)),
    )
}

fn pairing_error(e: espcam_auth::PairingError) -> Response {
    match e {
        espcam_auth::PairingError::NotFound(_) => error_body(StatusCode::NOT_FOUND, &e.to_string()),
        e => {
            warn!("pairing operation failed: {e}");
            internal("pairing")
        }
    }
}

/// `POST /api/cameras/{camera}/accept`: a pending camera becomes paired; its next
/// connection attempt is admitted.
async fn accept_camera(State(gate): State<Arc<Gate>>, Path(camera): Path<String>) -> Response {
    let id = match CameraId::new(&camera) {
        Ok(id) => id,
        Err(e) => return bad_camera(&camera, e),
    };
    let i = id.clone();
    match db(&gate.hub, "accepting a camera", move |a| {
        a.accept_camera(&i, now_us())
    })
    .await
    {
        Ok(Ok(())) => {
            info!("camera {id} accepted: it is admitted from its next connection on");
            axum::Json(json!({ "accepted": id })).into_response()
        }
        Ok(Err(e)) => pairing_error(e),
        Err(r) => r,
    }
}

/// `DELETE /api/pairing/{camera}`: forgets a pending or paired camera (its next hello
/// pairs afresh: the way to re-pair a reflashed camera or drop an impostor's claim).
async fn remove_pairing(State(gate): State<Arc<Gate>>, Path(camera): Path<String>) -> Response {
    let id = match CameraId::new(&camera) {
        Ok(id) => id,
        Err(e) => return bad_camera(&camera, e),
    };
    match db(&gate.hub, "removing a paired camera", move |a| {
        a.remove_camera(&id)
    })
    .await
    {
        Ok(Ok(())) => with_note(StatusCode::NO_CONTENT, None, "pairing".into()),
        Ok(Err(e)) => pairing_error(e),
        Err(r) => r,
    }
}

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

fn audit_json(e: &AuditEntry) -> Value {
    json!({
        "id": e.id,
        "at_us": e.at_us,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "detail": e.detail,
        "addr": e.addr,
    })
}

/// `GET /api/audit?limit=&before=`: newest first, at most 500 per page.
async fn audit_log(State(gate): State<Arc<Gate>>, Query(q): Query<AuditQuery>) -> Response {
    let limit = q.limit.unwrap_or(100);
    match db(&gate.hub, "reading the audit log", move |a| {
        a.audit_list(limit, q.before)
    })
    .await
    {
        Ok(Ok(list)) => axum::Json(list.iter().map(audit_json).collect::<Vec<_>>()).into_response(),
        Ok(Err(e)) => {
            warn!("reading the audit log: {e}");
            internal("reading the audit log")
        }
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_found_and_decoded() {
        assert_eq!(
            query_token(Some("meta=1&token=ecam_abc%2D")).as_deref(),
            Some("ecam_abc-")
        );
        assert_eq!(query_token(Some("xtoken=1")), None);
        assert_eq!(query_token(None), None);
    }

    #[test]
    fn forbidden_messages_name_the_subject_role_and_action() {
        let p = Principal {
            actor: Actor::User(UserName::new("vic").unwrap()),
            role: Role::Viewer,
        };
        assert_eq!(
            forbidden_message(&p, Action::Reboot),
            "permission denied: user:vic (role viewer) may not reboot cameras"
        );
    }
}

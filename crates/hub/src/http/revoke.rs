//! Open streams end when their credential does: a viewer socket (`/ws/view`), an MJPEG
//! response, a playback socket or `/ws/ui` opened with a session or token is closed (code
//! 1008, or the MJPEG body ends; an export or timelapse download is cut off: its body
//! fails and the connection drops) within about a second of a logout, a session expiring, a
//! token revoked, its user removed or its password changed, or a role change that takes
//! away the permission the stream needs.
//!
//! The guard checks a credential once, when the request arrives; a stream lives on after
//! that. So [`super::auth::guard`] keeps what the request presented ([`Presented`]) in its
//! [`Caller`], and each stream starts a [`CredentialWatch`]: a small task that checks the
//! credential again — the same lookup a new request would make — whenever the hub's
//! credential generation moves (`Access::credentials_changed`: the hub's own logout and
//! user and token routes, and `data_version` polling for the `espcam` commands), when a
//! session's expiry comes, and once a minute regardless. Between those it costs nothing;
//! a re-check is one indexed SQLite lookup (an HTTP Basic *password* costs an argon2 run,
//! behind the same two-at-a-time queue as logins), and each stream re-checks at most
//! every [`MIN_GAP`], so a flood of logouts cannot turn into a flood of lookups.
//!
//! An open stream does not count as use of its session: the idle window slides only with
//! requests, as it would without streams. This module must never log or echo a
//! credential, and never count a re-check against the login limiter (it is not a guess).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use espcam_auth::{Action, AuthOutcome, Principal, RequestCredentials, Via};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{info, warn};

use crate::http::auth::{Caller, Gate, forbidden_message};
use crate::state::clock::now_us;

/// Least time between two checks of one stream's credential.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(200);
/// A credential is checked at least this often even when nothing said it changed (a
/// backstop: the generation and expiry cover every known way a credential ends).
const BACKSTOP: Duration = Duration::from_secs(60);
/// After a failed database lookup, the next try.
const RETRY: Duration = Duration::from_secs(1);

/// What a request presented as its credential, kept for its stream's later checks. `Debug`
/// shows only how it authenticated.
pub(crate) struct Presented {
    pub(crate) gate: Arc<Gate>,
    pub(crate) cookie: Option<String>,
    pub(crate) authorization: Option<String>,
    pub(crate) query_token: Option<String>,
    pub(crate) via: Via,
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("via", &self.via)
            .finish_non_exhaustive()
    }
}

/// Where a stream's credential stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// Still valid, naming this principal (its role as of the last check).
    Valid(Principal),
    /// Gone: the close reason.
    Ended(String),
}

/// Follows the credential a stream was opened with. Dropping it stops following.
#[derive(Debug)]
pub(crate) struct CredentialWatch {
    standing: Option<watch::Receiver<Standing>>,
    task: Option<AbortHandle>,
}

impl Drop for CredentialWatch {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl CredentialWatch {
    /// Follows `caller`'s credential for a stream that needs `action`. Without a caller or
    /// a presented credential (no login required), the watch never ends.
    pub(crate) fn start(caller: Option<&Caller>, action: Action) -> Self {
        let Some((presented, principal)) =
            caller.and_then(|c| Some((c.credential.clone()?, c.principal.clone())))
        else {
            return Self {
                standing: None,
                task: None,
            };
        };
        let (tx, rx) = watch::channel(Standing::Valid(principal));
        let task = tokio::spawn(follow(presented, action, tx));
        Self {
            standing: Some(rx),
            task: Some(task.abort_handle()),
        }
    }

    /// Resolves with the close reason once the credential no longer grants the stream's
    /// action. Cancel-safe: use it in a `select!` loop.
    pub(crate) async fn ended(&mut self) -> String {
        let Some(rx) = &mut self.standing else {
            return std::future::pending().await;
        };
        loop {
            if let Standing::Ended(why) = &*rx.borrow_and_update() {
                return why.clone();
            }
            if rx.changed().await.is_err() {
                // The task is gone without a verdict (the runtime is stopping).
                return std::future::pending().await;
            }
        }
    }

    /// The principal as of the last check (its role may have changed since the stream
    /// opened); `None` without login.
    pub(crate) fn principal(&self) -> Option<Principal> {
        match &*self.standing.as_ref()?.borrow() {
            Standing::Valid(p) => Some(p.clone()),
            Standing::Ended(_) => None,
        }
    }
}

/// The watch task: check, then wait for a reason to check again, until the credential ends.
async fn follow(p: Arc<Presented>, action: Action, tx: watch::Sender<Standing>) {
    let hub = p.gate.hub().clone();
    let mut changes = hub.access().watch_credentials();
    loop {
        // Marked seen before the check, so a change during it triggers another one.
        changes.borrow_and_update();
        let started = tokio::time::Instant::now();
        let next = match check(&p, action).await {
            Ok((Standing::Ended(why), _)) => {
                info!("an open stream ends: {why}");
                tx.send_replace(Standing::Ended(why));
                return;
            }
            Ok((standing, valid_for)) => {
                tx.send_if_modified(|s| {
                    let changed = *s != standing;
                    *s = standing;
                    changed
                });
                started + valid_for.min(BACKSTOP)
            }
            Err(e) => {
                warn!("re-checking an open stream's credential: {e}");
                started + RETRY
            }
        };
        tokio::time::sleep_until(started + MIN_GAP).await;
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// One check of `p` for `action`: where it stands, and how long it stays valid unless
/// something changes (a session's expiry).
async fn check(p: &Arc<Presented>, action: Action) -> Result<(Standing, Duration), String> {
    let gate = &p.gate;
    let tls = gate.tls();
    let _permit = if p.via == Via::BasicPassword {
        Some(gate.argon().acquire().await.map_err(|e| e.to_string())?)
    } else {
        None
    };
    let q = p.clone();
    let found = gate
        .hub()
        .access()
        .with_auth(move |auth| -> Result<Option<(Principal, u64)>, String> {
            let now = now_us();
            if q.via == Via::Session {
                let secret = q
                    .cookie
                    .as_deref()
                    .and_then(|c| espcam_auth::session_from_cookie_header(c, tls));
                let Some(secret) = secret else {
                    return Ok(None);
                };
                let s = auth
                    .session_unchanged(secret, now)
                    .map_err(|e| e.to_string())?;
                return Ok(s.map(|s| (s.principal, s.expires_us.saturating_sub(now))));
            }
            let outcome = auth
                .authenticate(
                    &RequestCredentials {
                        cookie: None,
                        authorization: q.authorization.as_deref(),
                        query_token: q.query_token.as_deref(),
                        tls,
                    },
                    now,
                )
                .map_err(|e| e.to_string())?;
            Ok(match outcome {
                AuthOutcome::Authenticated { principal, .. } => Some((principal, u64::MAX)),
                AuthOutcome::None | AuthOutcome::Invalid(_) => None,
            })
        })
        .await;
    let found = match found {
        None => {
            return Ok((
                Standing::Ended("the hub has no auth database".into()),
                Duration::ZERO,
            ));
        }
        Some(Err(e)) => return Err(e.to_string()),
        Some(Ok(r)) => r?,
    };
    Ok(match found {
        None if p.via == Via::Session => (
            Standing::Ended(
                "session ended (logged out, expired, or the user was removed): log in again".into(),
            ),
            Duration::ZERO,
        ),
        None => (
            Standing::Ended(
                "credential no longer valid (token revoked, password changed or user removed)"
                    .into(),
            ),
            Duration::ZERO,
        ),
        Some((principal, _)) if !principal.allows(action) => (
            Standing::Ended(forbidden_message(&principal, action)),
            Duration::ZERO,
        ),
        Some((principal, valid_us)) => {
            (Standing::Valid(principal), Duration::from_micros(valid_us))
        }
    })
}

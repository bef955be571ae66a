//! Who may use the hub: the auth database handle (`espcam-auth`), the mode decided at start
//! (login required, loopback only, or off), the audit log, and the per-peer limits on
//! repeated warnings. The doors themselves (HTTP routes, browser sockets, camera hellos)
//! live in `http` and `ingest`, which ask this module; it knows nothing of requests.
//!
//! Every [`Auth`] call blocks (SQLite, argon2), so the helpers here that touch it are
//! `async` and run it on `spawn_blocking`. This module must never decide a permission
//! itself (that is `espcam_auth::Role::allows`), never log a secret, and never let a peer's
//! warnings reach the log unlimited.
//!
//! It also keeps the *credential generation*: a counter bumped whenever a credential may
//! have ended (a logout, a token revoked, a user removed or changed, through the hub's own
//! routes or — noticed by polling SQLite's `data_version` — by `espcam user|token` beside
//! the running hub). Open streams follow it (`http/revoke.rs`) and check their credential
//! again when it moves, so a revoked credential stops its streams too, not only its next
//! request.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use espcam_auth::{
    Actor, AuditAction, AuditRecord, Auth, ModeDecision, WarnDecision, WarnLimitPolicy, WarnLimiter,
};
use tokio::sync::watch;
use tracing::warn;

use crate::state::clock::now_us;

/// Kinds of warnings a peer can make the hub write, each limited per peer separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// A camera's control message that does not parse.
    BadMessage,
    /// A camera hello that was refused (bad token, unknown id, pending pairing).
    RefusedHello,
    /// A request with a wrong token, password or Basic credential.
    BadCredential,
    /// A browser request refused by the origin, host or content-type checks.
    CrossSite,
}

/// One limiter per [`Warning`], behind mutexes held for one map update.
#[derive(Debug)]
struct WarnLimits {
    bad_message: Mutex<WarnLimiter>,
    refused_hello: Mutex<WarnLimiter>,
    bad_credential: Mutex<WarnLimiter>,
    cross_site: Mutex<WarnLimiter>,
}

impl WarnLimits {
    fn new() -> Self {
        let p = WarnLimitPolicy::default();
        Self {
            bad_message: Mutex::new(WarnLimiter::new("bad camera messages", p)),
            refused_hello: Mutex::new(WarnLimiter::new("refused camera hellos", p)),
            bad_credential: Mutex::new(WarnLimiter::new("bad credentials", p)),
            cross_site: Mutex::new(WarnLimiter::new("refused cross-site requests", p)),
        }
    }

    fn get(&self, w: Warning) -> &Mutex<WarnLimiter> {
        match w {
            Warning::BadMessage => &self.bad_message,
            Warning::RefusedHello => &self.refused_hello,
            Warning::BadCredential => &self.bad_credential,
            Warning::CrossSite => &self.cross_site,
        }
    }
}

/// The hub's access control state. Built once at start ([`Access::new`]); shared through
/// the [`Hub`](crate::state::Hub).
#[derive(Debug)]
pub struct Access {
    /// `None` only for a hub built without a data directory (unit tests): no login, no
    /// pairing, no audit.
    auth: Option<Arc<Auth>>,
    mode: ModeDecision,
    warnings: WarnLimits,
    /// The credential generation (see the module docs): bumped by
    /// [`Access::credentials_changed`], followed by every open stream. A watch, so a burst
    /// of changes wakes each stream once.
    credentials: watch::Sender<u64>,
}

/// Why an access-control call failed on the hub's side (the database, a lost task).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The auth database failed.
    #[error("auth database: {0}")]
    Db(String),
    /// The blocking task was lost (the hub is stopping).
    #[error("auth check did not complete: {0}")]
    Task(String),
}

impl Access {
    /// Access control over `auth`, in `mode` (from [`espcam_auth::decide_mode`]).
    pub fn new(auth: Arc<Auth>, mode: ModeDecision) -> Self {
        Self {
            auth: Some(auth),
            mode,
            warnings: WarnLimits::new(),
            credentials: watch::Sender::new(0),
        }
    }

    /// No auth database: nobody logs in, every request is [`Actor::Anonymous`], nothing is
    /// audited. Reported as [`ModeDecision::Disabled`].
    pub fn none() -> Self {
        Self {
            auth: None,
            mode: ModeDecision::Disabled,
            warnings: WarnLimits::new(),
            credentials: watch::Sender::new(0),
        }
    }

    /// The auth database, if the hub has one.
    pub fn auth(&self) -> Option<&Arc<Auth>> {
        self.auth.as_ref()
    }

    /// The mode decided at start.
    pub fn mode(&self) -> ModeDecision {
        self.mode
    }

    /// Whether requests need credentials and unlisted cameras need pairing.
    pub fn login_required(&self) -> bool {
        self.mode.login_required() && self.auth.is_some()
    }

    /// Runs `f` on the auth database on a blocking thread. `None` when there is no
    /// database.
    pub async fn with_auth<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Auth) -> T + Send + 'static,
    ) -> Option<Result<T, AccessError>> {
        let auth = self.auth.clone()?;
        Some(
            tokio::task::spawn_blocking(move || f(&auth))
                .await
                .map_err(|e| AccessError::Task(e.to_string())),
        )
    }

    /// Says that a credential may have ended (logout, token revoked, user removed, password
    /// or role changed): every open stream checks its own again.
    pub fn credentials_changed(&self) {
        self.credentials.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The credential generation, for a stream to follow.
    pub fn watch_credentials(&self) -> watch::Receiver<u64> {
        self.credentials.subscribe()
    }

    /// Until `stop` changes: every `every`, asks the auth database whether another process
    /// (the `espcam user|token|camera` commands) committed to it, and if so calls
    /// [`Access::credentials_changed`]. Returns at once when no login is required (no
    /// stream then holds a credential).
    pub async fn follow_outside_changes(&self, every: Duration, mut stop: watch::Receiver<bool>) {
        if !self.login_required() {
            return;
        }
        let mut last: Option<i64> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            match self.with_auth(|a| a.data_version()).await {
                Some(Ok(Ok(v))) => {
                    if last.is_some_and(|l| l != v) {
                        self.credentials_changed();
                    }
                    last = Some(v);
                }
                Some(Ok(Err(e))) => warn!("checking the auth database for changes: {e}"),
                Some(Err(e)) => warn!("checking the auth database for changes: {e}"),
                None => return,
            }
        }
    }

    /// Appends an audit entry (after the action succeeded). A failure to record is logged,
    /// not returned: the action has happened and the client should hear so.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        target: &str,
        detail: &str,
        addr: Option<IpAddr>,
    ) {
        let (actor, target, detail) = (actor.clone(), target.to_string(), detail.to_string());
        let r = self
            .with_auth(move |auth| {
                auth.audit(
                    AuditRecord {
                        actor: &actor,
                        action,
                        target: &target,
                        detail: &detail,
                        addr,
                    },
                    now_us(),
                )
            })
            .await;
        match r {
            None | Some(Ok(Ok(_))) => {}
            Some(Ok(Err(e))) => warn!("could not record {} in the audit log: {e}", action.as_str()),
            Some(Err(e)) => warn!("could not record {} in the audit log: {e}", action.as_str()),
        }
    }

    /// Whether to log a warning of kind `w` about `peer` now; `false` means it is counted
    /// and summarised by [`Access::flush_warnings`] instead.
    pub fn should_warn(&self, w: Warning, peer: IpAddr) -> bool {
        let mut l = self
            .warnings
            .get(w)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        l.note(peer, Instant::now()) == WarnDecision::Log
    }

    /// Logs one summary line per peer whose warnings were suppressed in a window that has
    /// ended ("1,204 bad camera messages from 10.0.0.7 in the last 10 s"). Called every
    /// second by the server.
    pub fn flush_warnings(&self) {
        let now = Instant::now();
        for w in [
            Warning::BadMessage,
            Warning::RefusedHello,
            Warning::BadCredential,
            Warning::CrossSite,
        ] {
            let summaries = self
                .warnings
                .get(w)
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .flush(now);
            for s in summaries {
                warn!("{s} (not logged one by one)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_per_peer_and_kind() {
        let a = Access::none();
        let p: IpAddr = "10.0.0.7".parse().unwrap();
        let q: IpAddr = "10.0.0.8".parse().unwrap();
        let logged = (0..100)
            .filter(|_| a.should_warn(Warning::BadMessage, p))
            .count();
        assert_eq!(logged, WarnLimitPolicy::default().burst as usize);
        assert!(a.should_warn(Warning::BadMessage, q), "another peer");
        assert!(a.should_warn(Warning::RefusedHello, p), "another kind");
        assert!(!a.login_required());
    }
}

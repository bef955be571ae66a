//! Dashboard sessions: a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie, stored
//! only as its SHA-256, with an idle timeout that slides with use and an absolute lifetime.
//! A session carries the user, not the role: the role is read from the user at every lookup,
//! so removing a user or changing a password ends its sessions at once. This module must
//! never store or log a session id.

use std::fmt;
use std::time::Duration;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::error::{DbError, SessionError};
use crate::name::UserName;
use crate::secret::{digest, digests_equal, is_b64url_32, random_b64url_32};
use crate::users::{parse_role, parse_user_name};
use crate::{Actor, Auth, Principal, from_db, to_db};

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends (sliding window).
    pub idle: Duration,
    /// A session ends this long after login, however busy (and the cookie's `Max-Age`).
    pub max_age: Duration,
    /// `last_seen` is written at most this often per session, so a dashboard polling every
    /// second does not write to disk every second. The idle window is therefore accurate to
    /// this much.
    pub touch_every: Duration,
    /// Most sessions one user may hold; logging in again past this ends the oldest. Bounds
    /// the table against a script that logs in in a loop.
    pub max_per_user: u32,
}

impl Default for SessionPolicy {
    /// Idle 24 h, at most 7 days, touched at most once a minute, 20 per user.
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(24 * 3600),
            max_age: Duration::from_secs(7 * 24 * 3600),
            touch_every: Duration::from_secs(60),
            max_per_user: 20,
        }
    }
}

/// A session id as sent in the cookie: 43 characters of base64url. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// The cookie value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<hidden>)")
    }
}

/// A session just created by a login.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Goes into the cookie ([`set_session_cookie`]).
    pub secret: SessionSecret,
    /// The cookie's `Max-Age`: the policy's `max_age`.
    pub max_age: Duration,
}

/// A live session, found by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user and their current role.
    pub principal: Principal,
    /// Login time, µs.
    pub created_us: u64,
    /// When it ends unless used again, µs (the earlier of idle and absolute expiry).
    pub expires_us: u64,
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Auth {
    /// Starts a session for `user` (after [`Auth::check_password`] said yes).
    pub fn create_session(&self, user: &UserName, now_us: u64) -> Result<NewSession, SessionError> {
        let secret = random_b64url_32()?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM users WHERE name = ?1",
                [user.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Err(SessionError::UnknownUser(user.clone()));
        };
        tx.execute(
            "INSERT INTO sessions (hash, user_id, created_us, last_seen_us) VALUES (?1, ?2, ?3, ?3)",
            params![digest(&secret).as_slice(), id, to_db(now_us)],
        )?;
        // Keep the newest `max_per_user`.
        tx.execute(
            "DELETE FROM sessions WHERE user_id = ?1 AND hash NOT IN
               (SELECT hash FROM sessions WHERE user_id = ?1
                ORDER BY created_us DESC LIMIT ?2)",
            params![id, self.options.session.max_per_user],
        )?;
        tx.commit()?;
        Ok(NewSession {
            secret: SessionSecret(secret),
            max_age: self.options.session.max_age,
        })
    }

    /// The live session with this cookie value, sliding its idle window forward. `None` for
    /// anything else (malformed, unknown, expired — an expired one is deleted).
    pub fn session(&self, secret: &str, now_us: u64) -> Result<Option<Session>, DbError> {
        self.find_session(secret, now_us, true)
    }

    /// Like [`Auth::session`] but without sliding the idle window: for checking again a
    /// stream opened earlier, which is not a new use of the session.
    pub fn session_unchanged(&self, secret: &str, now_us: u64) -> Result<Option<Session>, DbError> {
        self.find_session(secret, now_us, false)
    }

    fn find_session(
        &self,
        secret: &str,
        now_us: u64,
        touch: bool,
    ) -> Result<Option<Session>, DbError> {
        if !is_b64url_32(secret) {
            return Ok(None);
        }
        let hash = digest(secret);
        let conn = self.conn();
        let row: Option<(Vec<u8>, i64, i64, String, String)> = conn
            .query_row(
                "SELECT s.hash, s.created_us, s.last_seen_us, u.name, u.role
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.hash = ?1",
                [hash.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((stored, created, last_seen, name, role)) = row else {
            return Ok(None);
        };
        if !digests_equal(&stored, &hash) {
            return Ok(None);
        }
        let p = self.options.session;
        let (created, last_seen) = (from_db(created), from_db(last_seen));
        let expires = last_seen
            .saturating_add(us(p.idle))
            .min(created.saturating_add(us(p.max_age)));
        if now_us >= expires {
            conn.execute("DELETE FROM sessions WHERE hash = ?1", [hash.as_slice()])?;
            return Ok(None);
        }
        let mut expires_us = expires;
        if touch && now_us.saturating_sub(last_seen) >= us(p.touch_every) {
            conn.execute(
                "UPDATE sessions SET last_seen_us = ?1 WHERE hash = ?2",
                params![to_db(now_us), hash.as_slice()],
            )?;
            expires_us = now_us
                .saturating_add(us(p.idle))
                .min(created.saturating_add(us(p.max_age)));
        }
        Ok(Some(Session {
            principal: Principal {
                actor: Actor::User(parse_user_name(&name)?),
                role: parse_role(&role)?,
            },
            created_us: created,
            expires_us,
        }))
    }

    /// Ends the session with this cookie value. `true` if there was one.
    pub fn logout(&self, secret: &str) -> Result<bool, DbError> {
        if !is_b64url_32(secret) {
            return Ok(false);
        }
        let n = self.conn().execute(
            "DELETE FROM sessions WHERE hash = ?1",
            [digest(secret).as_slice()],
        )?;
        Ok(n > 0)
    }

    /// Deletes every expired session; returns how many. The hub runs it now and then (an
    /// expired session is also deleted when it is next presented).
    pub fn purge_expired_sessions(&self, now_us: u64) -> Result<usize, DbError> {
        let p = self.options.session;
        let now = to_db(now_us);
        Ok(self.conn().execute(
            "DELETE FROM sessions WHERE last_seen_us + ?1 <= ?3 OR created_us + ?2 <= ?3",
            params![to_db(us(p.idle)), to_db(us(p.max_age)), now],
        )?)
    }
}

/// The cookie's name: `__Host-espcam_session` under TLS (the `__Host-` prefix makes the
/// browser refuse it unless `Secure`, `Path=/` and host-only, so no subdomain or plain-HTTP
/// page can plant one), `espcam_session` without TLS (browsers refuse `__Host-` there).
pub fn session_cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-espcam_session"
    } else {
        "espcam_session"
    }
}

/// The `Set-Cookie` header value for a new session:
/// `espcam_session=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800` (+ `; Secure`
/// under TLS).
pub fn set_session_cookie(secret: &SessionSecret, max_age: Duration, tls: bool) -> String {
    let mut c = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        session_cookie_name(tls),
        secret.0,
        max_age.as_secs()
    );
    if tls {
        c.push_str("; Secure");
    }
    c
}

/// The `Set-Cookie` header value that deletes the session cookie (logout).
pub fn clear_session_cookie(tls: bool) -> String {
    let mut c = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        session_cookie_name(tls)
    );
    if tls {
        c.push_str("; Secure");
    }
    c
}

/// The session cookie's value in a `Cookie` request header (`a=1; espcam_session=…`), if
/// present. Pass it to [`Auth::session`], which checks its shape.
pub fn session_from_cookie_header(header: &str, tls: bool) -> Option<&str> {
    let name = session_cookie_name(tls);
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;

    fn setup() -> (tempfile::TempDir, Auth) {
        let (d, auth) = auth();
        let pw = Password::new("viewer-pass").unwrap();
        auth.add_user(&UserName::new("vic").unwrap(), Role::Viewer, &pw, T0)
            .unwrap();
        (d, auth)
    }

    fn vic() -> UserName {
        UserName::new("vic").unwrap()
    }

    #[test]
    fn login_lookup_logout() {
        let (_d, auth) = setup();
        let s = auth.create_session(&vic(), T0).unwrap();
        assert_eq!(s.secret.expose().len(), 43);
        let found = auth.session(s.secret.expose(), T0 + SEC).unwrap().unwrap();
        assert_eq!(found.principal.actor, Actor::User(vic()));
        assert_eq!(found.principal.role, Role::Viewer);
        assert_eq!(found.created_us, T0);
        assert!(auth.session("garbage", T0).unwrap().is_none());
        assert!(auth.session(&"A".repeat(43), T0).unwrap().is_none());
        assert!(auth.logout(s.secret.expose()).unwrap());
        assert!(!auth.logout(s.secret.expose()).unwrap());
        assert!(auth.session(s.secret.expose(), T0 + SEC).unwrap().is_none());
    }

    #[test]
    fn idle_window_slides_and_absolute_lifetime_holds() {
        let (_d, auth) = setup();
        let p = auth.options().session;
        let idle = p.idle.as_micros() as u64;
        let s = auth.create_session(&vic(), T0).unwrap();
        let id = s.secret.expose();
        // Used every 23 hours: the idle window (24 h) slides along.
        let mut t = T0;
        for _ in 0..6 {
            t += 23 * 3600 * SEC;
            let found = auth.session(id, t).unwrap();
            assert!(found.is_some(), "alive at {} h", (t - T0) / 3600 / SEC);
            assert_eq!(
                found.unwrap().expires_us,
                (t + idle).min(T0 + 7 * 24 * 3600 * SEC)
            );
        }
        // Past 7 days it ends, however busy.
        assert!(
            auth.session(id, T0 + 7 * 24 * 3600 * SEC)
                .unwrap()
                .is_none()
        );

        // Left idle for 24 h: gone, and deleted.
        let s = auth.create_session(&vic(), T0).unwrap();
        assert!(
            auth.session(s.secret.expose(), T0 + idle - 1)
                .unwrap()
                .is_some()
        );
        let t = T0 + idle - 1;
        assert!(auth.session(s.secret.expose(), t + idle).unwrap().is_none());
        assert!(
            !auth.logout(s.secret.expose()).unwrap(),
            "expired row deleted"
        );
    }

    #[test]
    fn touches_are_throttled() {
        let (_d, auth) = setup();
        let s = auth.create_session(&vic(), T0).unwrap();
        let idle = auth.options().session.idle.as_micros() as u64;
        // 30 s later: not written, expiry unchanged.
        let a = auth
            .session(s.secret.expose(), T0 + 30 * SEC)
            .unwrap()
            .unwrap();
        assert_eq!(a.expires_us, T0 + idle);
        let b = auth
            .session(s.secret.expose(), T0 + 61 * SEC)
            .unwrap()
            .unwrap();
        assert_eq!(b.expires_us, T0 + 61 * SEC + idle);
    }

    #[test]
    fn an_unchanged_lookup_never_slides_the_window() {
        let (_d, auth) = setup();
        let s = auth.create_session(&vic(), T0).unwrap();
        let idle = auth.options().session.idle.as_micros() as u64;
        let a = auth
            .session_unchanged(s.secret.expose(), T0 + 120 * SEC)
            .unwrap()
            .unwrap();
        assert_eq!(a.expires_us, T0 + idle);
        // Still the login's window: an unchanged lookup wrote nothing.
        let b = auth
            .session_unchanged(s.secret.expose(), T0 + 121 * SEC)
            .unwrap()
            .unwrap();
        assert_eq!(b.expires_us, T0 + idle);
        assert!(
            auth.session_unchanged(s.secret.expose(), T0 + idle)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn purge_removes_only_expired() {
        let (_d, auth) = setup();
        let idle = auth.options().session.idle.as_micros() as u64;
        let old = auth.create_session(&vic(), T0).unwrap();
        let new = auth.create_session(&vic(), T0 + idle).unwrap();
        assert_eq!(auth.purge_expired_sessions(T0 + idle).unwrap(), 1);
        assert!(
            auth.session(old.secret.expose(), T0 + idle)
                .unwrap()
                .is_none()
        );
        assert!(
            auth.session(new.secret.expose(), T0 + idle)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn password_change_and_removal_end_sessions_and_role_is_live() {
        let (_d, auth) = setup();
        let s = auth.create_session(&vic(), T0).unwrap();
        auth.set_password(&vic(), &Password::new("another-pass").unwrap(), T0)
            .unwrap();
        assert!(auth.session(s.secret.expose(), T0).unwrap().is_none());
        let s = auth.create_session(&vic(), T0).unwrap();
        auth.remove_user(&vic()).unwrap();
        assert!(auth.session(s.secret.expose(), T0).unwrap().is_none());
        assert!(matches!(
            auth.create_session(&vic(), T0),
            Err(SessionError::UnknownUser(_))
        ));
    }

    #[test]
    fn sessions_per_user_are_bounded() {
        let (_d, auth) = setup();
        let first = auth.create_session(&vic(), T0).unwrap();
        for i in 1..=20 {
            auth.create_session(&vic(), T0 + i).unwrap();
        }
        assert!(
            auth.session(first.secret.expose(), T0 + 30)
                .unwrap()
                .is_none()
        );
        let n: i64 = auth
            .conn()
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 20);
    }

    #[test]
    fn cookies() {
        let (_d, auth) = setup();
        let s = auth.create_session(&vic(), T0).unwrap();
        let c = set_session_cookie(&s.secret, s.max_age, false);
        assert_eq!(
            c,
            format!(
                "espcam_session={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800",
                s.secret.expose()
            )
        );
        let c = set_session_cookie(&s.secret, s.max_age, true);
        assert!(c.starts_with("__Host-espcam_session="), "{c}");
        assert!(c.ends_with("; Max-Age=604800; Secure"), "{c}");
        assert_eq!(
            clear_session_cookie(false),
            "espcam_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        );
        assert!(clear_session_cookie(true).ends_with("; Secure"));
        let header = format!("theme=dark; espcam_session={}; x=y", s.secret.expose());
        assert_eq!(
            session_from_cookie_header(&header, false),
            Some(s.secret.expose())
        );
        assert_eq!(session_from_cookie_header(&header, true), None);
        assert_eq!(session_from_cookie_header("espcam_sessionx=1", false), None);
        assert!(format!("{:?}", s.secret).contains("hidden"));
    }
}

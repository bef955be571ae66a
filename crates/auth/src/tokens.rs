//! API tokens for tools that cannot log in (Home Assistant, VLC, ffmpeg, scripts):
//! `ecam_` + 43 characters of base64url (32 random bytes), shown once at creation and stored
//! only as SHA-256. Accepted as `Authorization: Bearer`, as `?token=` on the viewer outputs,
//! and as the password of HTTP Basic (Home Assistant's MJPEG camera sends user and password).
//! This module must never store, log or return a token after [`Auth::add_token`].

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::{OptionalExtension, params};

use crate::error::{DbError, TokenError};
use crate::name::TokenName;
use crate::role::Role;
use crate::secret::{digest, digests_equal, is_b64url_32, random_b64url_32};
use crate::users::parse_role;
use crate::{Actor, Auth, Principal, from_db, is_unique_violation, to_db};

/// Every token starts with this, so it is recognisable in a config file or a leak scanner,
/// and [`Auth::verify_basic`] can tell a token from a password.
pub const TOKEN_PREFIX: &str = "ecam_";

/// Minimum time between two writes of a token's `last_used` (a stream polled every second
/// must not write every second).
const TOUCH_EVERY_US: u64 = 60_000_000;

/// A token's secret. `Debug` hides it; [`TokenSecret::expose`] is for printing it once.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// The token, `ecam_…`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<hidden>)")
    }
}

/// A token just created: the only time its secret exists outside the client.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its name.
    pub name: TokenName,
    /// Its role.
    pub role: Role,
    /// The token to hand over.
    pub secret: TokenSecret,
}

/// A token as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Name.
    pub name: TokenName,
    /// Role.
    pub role: Role,
    /// Created, µs.
    pub created_us: u64,
    /// Last accepted (to within a minute), µs.
    pub last_used_us: Option<u64>,
}

/// Credentials from an `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Bearer <token>`.
    Bearer(String),
    /// `Basic base64(user:password)`.
    Basic {
        /// User name (anything, when the password is a token).
        user: String,
        /// Password or token.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<hidden>)"),
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", &crate::escape_for_log(user, 40))
                .finish_non_exhaustive(),
        }
    }
}

/// Parses an `Authorization` header value. The scheme is case-insensitive (RFC 9110);
/// anything else (another scheme, bad base64, no `:` in Basic, not UTF-8) is `None`, which
/// the hub treats as no credential.
pub fn parse_authorization(header: &str) -> Option<Credentials> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| Credentials::Bearer(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // user:password of at most a few KiB; refuse to decode more.
        if rest.len() > 4096 {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(rest).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return Some(Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    None
}

impl Auth {
    /// Creates a token. Print [`NewToken::secret`] once; it cannot be shown again.
    pub fn add_token(
        &self,
        name: &TokenName,
        role: Role,
        now_us: u64,
    ) -> Result<NewToken, TokenError> {
        let secret = format!("{TOKEN_PREFIX}{}", random_b64url_32()?);
        let r = self.conn().execute(
            "INSERT INTO tokens (name, role, hash, created_us) VALUES (?1, ?2, ?3, ?4)",
            params![
                name.as_str(),
                role.as_str(),
                digest(&secret).as_slice(),
                to_db(now_us)
            ],
        );
        match r {
            Ok(_) => Ok(NewToken {
                name: name.clone(),
                role,
                secret: TokenSecret(secret),
            }),
            Err(e) if is_unique_violation(&e) => Err(TokenError::Exists(name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Every token, sorted by name.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT name, role, created_us, last_used_us FROM tokens ORDER BY name COLLATE NOCASE",
        )?;
        let rows = st.query_map([], |r| {
            let name: String = r.get(0)?;
            Ok(TokenInfo {
                name: TokenName::new(&name).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
                role: parse_role(&r.get::<_, String>(1)?)?,
                created_us: from_db(r.get(2)?),
                last_used_us: r.get::<_, Option<i64>>(3)?.map(from_db),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a token; it is refused from the next request on.
    pub fn revoke_token(&self, name: &TokenName) -> Result<(), TokenError> {
        let n = self
            .conn()
            .execute("DELETE FROM tokens WHERE name = ?1", [name.as_str()])?;
        if n == 0 {
            return Err(TokenError::NotFound(name.clone()));
        }
        Ok(())
    }

    /// The token's principal, for `Authorization: Bearer <token>` or `?token=<token>`.
    /// `None` for a malformed, unknown or revoked token. Cheap: a shape check, one SHA-256
    /// and one indexed lookup.
    pub fn verify_bearer(&self, token: &str, now_us: u64) -> Result<Option<Principal>, DbError> {
        let Some(body) = token.strip_prefix(TOKEN_PREFIX) else {
            return Ok(None);
        };
        if !is_b64url_32(body) {
            return Ok(None);
        }
        let hash = digest(token);
        let conn = self.conn();
        /// id, hash, name, role, last_used_us.
        type Row = (i64, Vec<u8>, String, String, Option<i64>);
        let row: Option<Row> = conn
            .query_row(
                "SELECT id, hash, name, role, last_used_us FROM tokens WHERE hash = ?1",
                [hash.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((id, stored, name, role, last_used)) = row else {
            return Ok(None);
        };
        if !digests_equal(&stored, &hash) {
            return Ok(None);
        }
        let last_used = last_used.map(from_db).unwrap_or(0);
        if now_us.saturating_sub(last_used) >= TOUCH_EVERY_US {
            conn.execute(
                "UPDATE tokens SET last_used_us = ?1 WHERE id = ?2",
                params![to_db(now_us), id],
            )?;
        }
        let name = TokenName::new(&name).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(Some(Principal {
            actor: Actor::Token(name),
            role: parse_role(&role)?,
        }))
    }

    /// HTTP Basic: a user's name and password, or any user name with a token as the
    /// password (Home Assistant's MJPEG camera can only send Basic). A password starting
    /// with [`TOKEN_PREFIX`] is checked only as a token.
    pub fn verify_basic(
        &self,
        user: &str,
        password: &str,
        now_us: u64,
    ) -> Result<Option<Principal>, DbError> {
        if password.starts_with(TOKEN_PREFIX) {
            return self.verify_bearer(password, now_us);
        }
        self.check_password(user, password, now_us)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;

    fn tname(s: &str) -> TokenName {
        TokenName::new(s).unwrap()
    }

    #[test]
    fn add_verify_list_revoke() {
        let (dir, auth) = auth();
        let t = auth
            .add_token(&tname("home-assistant"), Role::Viewer, T0)
            .unwrap();
        let s = t.secret.expose();
        assert!(s.starts_with("ecam_"), "{s}");
        assert_eq!(s.len(), 5 + 43);
        assert!(format!("{t:?}").contains("<hidden>"));

        let p = auth.verify_bearer(s, T0 + SEC).unwrap().unwrap();
        assert_eq!(p.actor, Actor::Token(tname("home-assistant")));
        assert_eq!(p.role, Role::Viewer);
        // One character off, no prefix, garbage, empty.
        let mut off = s.to_string();
        let last = off.pop().unwrap();
        off.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [off.as_str(), &s[5..], "ecam_", "", "Bearer x"] {
            assert_eq!(auth.verify_bearer(bad, T0).unwrap(), None, "{bad:?}");
        }

        let e = auth
            .add_token(&tname("Home-Assistant"), Role::Admin, T0)
            .unwrap_err();
        assert!(matches!(e, TokenError::Exists(_)), "{e}");
        let admin = auth.add_token(&tname("script"), Role::Admin, T0).unwrap();
        assert_ne!(admin.secret.expose(), s);

        let list = auth.list_tokens().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, tname("home-assistant"));
        assert_eq!(list[0].last_used_us, Some(T0 + SEC));
        assert_eq!(list[1].last_used_us, None);
        assert_eq!(list[1].role, Role::Admin);

        // Only the digest is on disk.
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM tokens WHERE hash = ?1 OR CAST(hash AS TEXT) LIKE '%' || ?2 || '%'",
                rusqlite::params![crate::secret::digest(s).as_slice(), &s[5..]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "found by digest only");

        auth.revoke_token(&tname("HOME-ASSISTANT")).unwrap();
        assert_eq!(auth.verify_bearer(s, T0 + 2 * SEC).unwrap(), None);
        assert!(matches!(
            auth.revoke_token(&tname("home-assistant")),
            Err(TokenError::NotFound(_))
        ));
        assert!(
            auth.verify_bearer(admin.secret.expose(), T0)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn last_used_writes_are_throttled() {
        let (_d, auth) = auth();
        let t = auth.add_token(&tname("vlc"), Role::Viewer, T0).unwrap();
        auth.verify_bearer(t.secret.expose(), T0 + SEC).unwrap();
        auth.verify_bearer(t.secret.expose(), T0 + 30 * SEC)
            .unwrap();
        assert_eq!(auth.list_tokens().unwrap()[0].last_used_us, Some(T0 + SEC));
        auth.verify_bearer(t.secret.expose(), T0 + 62 * SEC)
            .unwrap();
        assert_eq!(
            auth.list_tokens().unwrap()[0].last_used_us,
            Some(T0 + 62 * SEC)
        );
    }

    #[test]
    fn basic_takes_a_password_or_a_token() {
        let (_d, auth) = auth();
        let pw = Password::new("garden-gnome").unwrap();
        auth.add_user(&UserName::new("ha").unwrap(), Role::Viewer, &pw, T0)
            .unwrap();
        let t = auth.add_token(&tname("ha-token"), Role::Admin, T0).unwrap();
        let p = auth
            .verify_basic("ha", "garden-gnome", T0)
            .unwrap()
            .unwrap();
        assert_eq!(p.actor, Actor::User(UserName::new("ha").unwrap()));
        // Any user name with a token.
        let p = auth
            .verify_basic("whatever", t.secret.expose(), T0)
            .unwrap()
            .unwrap();
        assert_eq!(p.actor, Actor::Token(tname("ha-token")));
        assert_eq!(p.role, Role::Admin);
        assert_eq!(auth.verify_basic("ha", "wrong-pass", T0).unwrap(), None);
        assert_eq!(auth.verify_basic("ha", "ecam_nope", T0).unwrap(), None);
    }

    #[test]
    fn authorization_headers() {
        assert_eq!(
            parse_authorization("Bearer ecam_abc"),
            Some(Credentials::Bearer("ecam_abc".into()))
        );
        assert_eq!(
            parse_authorization("bearer  ecam_abc "),
            Some(Credentials::Bearer("ecam_abc".into()))
        );
        // "ha:pass:with:colons"
        assert_eq!(
            parse_authorization("Basic aGE6cGFzczp3aXRoOmNvbG9ucw=="),
            Some(Credentials::Basic {
                user: "ha".into(),
                password: "pass:with:colons".into()
            })
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic !!!",
            "Basic bm9jb2xvbg==",
            "Digest x",
            "",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad:?}");
        }
        let dbg = format!("{:?}", parse_authorization("Bearer ecam_secret").unwrap());
        assert!(!dbg.contains("secret"), "{dbg}");
    }
}

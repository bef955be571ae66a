//! One call per request: which credential it carries and whom it names
//! ([`Auth::authenticate`]), and whether a state-changing request is safe from cross-site
//! forgery given how it authenticated ([`state_change_allowed`]). The hub extracts header
//! values as `&str` and maps the outcome to a status code; the decision table lives here,
//! tested without a server. This module must never log or return a credential.

use crate::error::DbError;
use crate::sessions::session_from_cookie_header;
use crate::tokens::{Credentials, parse_authorization};
use crate::{Auth, Principal};

/// The credential-bearing parts of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestCredentials<'a> {
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `?token=` query value. The hub fills it only on the viewer outputs
    /// (`stream.mjpg`, `snapshot.jpg`, `/ws/view`, saved snapshot JPEGs), where tools
    /// cannot send headers; elsewhere it must stay `None`.
    pub query_token: Option<&'a str>,
    /// Whether the request came over TLS (picks the cookie name).
    pub tls: bool,
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The session cookie.
    Session,
    /// `Authorization: Bearer`.
    Bearer,
    /// `?token=`.
    QueryToken,
    /// HTTP Basic with a user's password.
    BasicPassword,
    /// HTTP Basic with a token as the password.
    BasicToken,
}

impl Via {
    /// Whether a browser attaches this credential by itself to requests another site makes
    /// it send (cookies, and Basic credentials the browser remembers). Such requests need
    /// the cross-site checks; a Bearer header or a query token a page cannot make a browser
    /// add.
    pub fn is_ambient(self) -> bool {
        matches!(self, Via::Session | Via::BasicPassword | Via::BasicToken)
    }
}

/// What [`Auth::authenticate`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// A valid credential.
    Authenticated {
        /// Whom it names.
        principal: Principal,
        /// Which credential.
        via: Via,
    },
    /// No credential at all: 401 (with `WWW-Authenticate: Basic` on the viewer outputs), or
    /// the login page for the dashboard.
    None,
    /// A credential that is wrong, expired or malformed: 401. Count it as a failure for the
    /// address's [`LoginLimiter`](crate::LoginLimiter) — except `Invalid(Via::Session)`,
    /// which is usually just an expired or logged-out session (send the login page).
    Invalid(Via),
}

impl Auth {
    /// Authenticates a request. An explicit credential wins over the cookie: the
    /// `Authorization` header first, then `?token=`, then the session cookie. A wrong
    /// explicit credential is [`AuthOutcome::Invalid`] even when a valid cookie is also
    /// present, so a tool's misconfigured token is reported, not masked. Blocking; a Basic
    /// password costs one argon2 verification.
    pub fn authenticate(
        &self,
        req: &RequestCredentials<'_>,
        now_us: u64,
    ) -> Result<AuthOutcome, DbError> {
        let found = |p: Option<Principal>, via| {
            Ok(match p {
                Some(principal) => AuthOutcome::Authenticated { principal, via },
                None => AuthOutcome::Invalid(via),
            })
        };
        if let Some(h) = req.authorization {
            return match parse_authorization(h) {
                Some(Credentials::Bearer(t)) => found(self.verify_bearer(&t, now_us)?, Via::Bearer),
                Some(Credentials::Basic { user, password }) => {
                    let via = if password.starts_with(crate::TOKEN_PREFIX) {
                        Via::BasicToken
                    } else {
                        Via::BasicPassword
                    };
                    found(self.verify_basic(&user, &password, now_us)?, via)
                }
                // Another scheme or garbage: report it as a bad bearer credential.
                None => Ok(AuthOutcome::Invalid(Via::Bearer)),
            };
        }
        if let Some(t) = req.query_token {
            return found(self.verify_bearer(t, now_us)?, Via::QueryToken);
        }
        if let Some(secret) = req
            .cookie
            .and_then(|c| session_from_cookie_header(c, req.tls))
        {
            let s = self.session(secret, now_us)?;
            return found(s.map(|s| s.principal), Via::Session);
        }
        Ok(AuthOutcome::None)
    }
}

/// Why a state-changing request was refused as a possible cross-site forgery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// Cookie or Basic authentication without a JSON body type.
    #[error(
        "state-changing requests authenticated by cookie or Basic need Content-Type: application/json (or use Authorization: Bearer)"
    )]
    NotJson,
}

/// Whether a state-changing request (POST/DELETE) authenticated `via` may proceed, given its
/// `Content-Type`. With an ambient credential (cookie, Basic) the body type must be
/// `application/json`: an HTML form from another site can only send `text/plain`,
/// `multipart/form-data` or `application/x-www-form-urlencoded`, and a script needs a CORS
/// preflight the hub never grants. A Bearer token is never ambient, so needs nothing more.
/// [`origin_allowed`](crate::origin_allowed) is checked as well, independently.
pub fn state_change_allowed(via: Via, content_type: Option<&str>) -> Result<(), CsrfError> {
    if !via.is_ambient() {
        return Ok(());
    }
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(CsrfError::NotJson)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use crate::test_util::*;
    use crate::*;

    fn basic(user: &str, pw: &str) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Basic {b}")
    }

    #[test]
    fn every_credential_and_its_precedence() {
        let (_d, auth) = auth();
        let ha = UserName::new("ha").unwrap();
        auth.add_user(
            &ha,
            Role::Viewer,
            &Password::new("ha-password").unwrap(),
            T0,
        )
        .unwrap();
        let admin_tok = auth
            .add_token(&TokenName::new("script").unwrap(), Role::Admin, T0)
            .unwrap();
        let tok = admin_tok.secret.expose();
        let s = auth.create_session(&ha, T0).unwrap();
        let cookie = format!("espcam_session={}", s.secret.expose());
        let bad_tok = format!("ecam_{}", "A".repeat(43));
        let (b_ok, b_tok, b_bad) = (
            basic("ha", "ha-password"),
            basic("anything", tok),
            basic("ha", "wrong-pass"),
        );

        let viewer = || Principal {
            actor: Actor::User(ha.clone()),
            role: Role::Viewer,
        };
        let script = || Principal {
            actor: Actor::Token(TokenName::new("script").unwrap()),
            role: Role::Admin,
        };
        let ok = |principal, via| AuthOutcome::Authenticated { principal, via };
        let bearer = format!("Bearer {tok}");
        let bad_bearer = format!("Bearer {bad_tok}");
        let cases: Vec<(RequestCredentials<'_>, AuthOutcome)> = vec![
            (RequestCredentials::default(), AuthOutcome::None),
            (
                RequestCredentials {
                    cookie: Some(&cookie),
                    ..Default::default()
                },
                ok(viewer(), Via::Session),
            ),
            (
                RequestCredentials {
                    cookie: Some("espcam_session=forged"),
                    ..Default::default()
                },
                AuthOutcome::Invalid(Via::Session),
            ),
            (
                RequestCredentials {
                    cookie: Some("theme=dark"),
                    ..Default::default()
                },
                AuthOutcome::None,
            ),
            // Under TLS only the __Host- cookie counts.
            (
                RequestCredentials {
                    cookie: Some(&cookie),
                    tls: true,
                    ..Default::default()
                },
                AuthOutcome::None,
            ),
            (
                RequestCredentials {
                    authorization: Some(&bearer),
                    ..Default::default()
                },
                ok(script(), Via::Bearer),
            ),
            (
                RequestCredentials {
                    authorization: Some(&b_ok),
                    ..Default::default()
                },
                ok(viewer(), Via::BasicPassword),
            ),
            (
                RequestCredentials {
                    authorization: Some(&b_tok),
                    ..Default::default()
                },
                ok(script(), Via::BasicToken),
            ),
            (
                RequestCredentials {
                    authorization: Some(&b_bad),
                    ..Default::default()
                },
                AuthOutcome::Invalid(Via::BasicPassword),
            ),
            (
                RequestCredentials {
                    query_token: Some(tok),
                    ..Default::default()
                },
                ok(script(), Via::QueryToken),
            ),
            (
                RequestCredentials {
                    query_token: Some(&bad_tok),
                    ..Default::default()
                },
                AuthOutcome::Invalid(Via::QueryToken),
            ),
            // A wrong explicit credential is not masked by a valid cookie.
            (
                RequestCredentials {
                    cookie: Some(&cookie),
                    authorization: Some(&bad_bearer),
                    ..Default::default()
                },
                AuthOutcome::Invalid(Via::Bearer),
            ),
            (
                RequestCredentials {
                    cookie: Some(&cookie),
                    authorization: Some("Digest abc"),
                    ..Default::default()
                },
                AuthOutcome::Invalid(Via::Bearer),
            ),
            // The header beats the query token.
            (
                RequestCredentials {
                    authorization: Some(&b_ok),
                    query_token: Some(tok),
                    ..Default::default()
                },
                ok(viewer(), Via::BasicPassword),
            ),
        ];
        for (i, (req, want)) in cases.into_iter().enumerate() {
            assert_eq!(auth.authenticate(&req, T0 + SEC).unwrap(), want, "case {i}");
        }
    }

    #[test]
    fn forms_cannot_change_state_with_ambient_credentials() {
        use Via::*;
        for via in [Session, BasicPassword, BasicToken] {
            assert_eq!(state_change_allowed(via, Some("application/json")), Ok(()));
            assert_eq!(
                state_change_allowed(via, Some("Application/JSON; charset=utf-8")),
                Ok(())
            );
            for ct in [
                None,
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("multipart/form-data; boundary=x"),
                Some("application/jsonx"),
            ] {
                assert_eq!(
                    state_change_allowed(via, ct),
                    Err(CsrfError::NotJson),
                    "{ct:?}"
                );
            }
        }
        assert_eq!(state_change_allowed(Bearer, Some("text/plain")), Ok(()));
        assert_eq!(state_change_allowed(Bearer, None), Ok(()));
    }
}

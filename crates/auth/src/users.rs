//! Users: add, list, change password, remove, verify a password, and the first-start admin.
//! Passwords are stored only as argon2id PHC strings ([`crate::password`]). This module must
//! never hold the database lock while argon2 runs, and never reveal by its answer or its
//! timing whether a user name exists.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::error::{DbError, UserError};
use crate::name::{Password, UserName};
use crate::role::Role;
use crate::secret::random_bytes;
use crate::{Actor, Auth, Principal, from_db, is_unique_violation, password, to_db};

/// A user, as listed (never with its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: UserName,
    /// Role.
    pub role: Role,
    /// When it was added, µs since the Unix epoch.
    pub created_us: u64,
    /// Last successful password check (login or HTTP Basic), if any.
    pub last_login_us: Option<u64>,
}

/// The admin [`Auth::ensure_initial_admin`] created: print the password once, then forget it.
#[derive(Debug)]
pub struct InitialAdmin {
    /// Always `admin`.
    pub name: UserName,
    /// The generated password (24 characters of base64url, 144 bits).
    pub password: Password,
}

pub(crate) fn parse_role(s: &str) -> rusqlite::Result<Role> {
    s.parse().map_err(|e: crate::role::RoleError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn parse_user_name(s: &str) -> rusqlite::Result<UserName> {
    UserName::new(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Auth {
    /// Adds a user. Names are unique ignoring case.
    pub fn add_user(
        &self,
        name: &UserName,
        role: Role,
        password: &Password,
        now_us: u64,
    ) -> Result<(), UserError> {
        let phc = password::hash(password.expose(), self.options.password)?;
        let r = self.conn().execute(
            "INSERT INTO users (name, role, phc, created_us, password_changed_us)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![name.as_str(), role.as_str(), phc, to_db(now_us)],
        );
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(UserError::Exists(name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a user's password and ends all of that user's sessions.
    pub fn set_password(
        &self,
        name: &UserName,
        password: &Password,
        now_us: u64,
    ) -> Result<(), UserError> {
        let phc = password::hash(password.expose(), self.options.password)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE users SET phc = ?1, password_changed_us = ?2 WHERE name = ?3",
            params![phc, to_db(now_us), name.as_str()],
        )?;
        if n == 0 {
            return Err(UserError::NotFound(name.clone()));
        }
        tx.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
            [name.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a user and its sessions. Refuses to remove the last admin.
    pub fn remove_user(&self, name: &UserName) -> Result<(), UserError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let role: Option<String> = tx
            .query_row(
                "SELECT role FROM users WHERE name = ?1",
                [name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(role) = role else {
            return Err(UserError::NotFound(name.clone()));
        };
        if parse_role(&role)? == Role::Admin {
            let admins: i64 =
                tx.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
                    r.get(0)
                })?;
            if admins <= 1 {
                return Err(UserError::LastAdmin(name.clone()));
            }
        }
        tx.execute("DELETE FROM users WHERE name = ?1", [name.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Changes a user's role. Sessions stay (the role is read at every lookup), so the new
    /// role counts from the user's next request; the hub also ends the user's open streams
    /// that the new role may not watch. Refuses to demote the last admin.
    pub fn set_role(&self, name: &UserName, role: Role) -> Result<(), UserError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<String> = tx
            .query_row(
                "SELECT role FROM users WHERE name = ?1",
                [name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(old) = old else {
            return Err(UserError::NotFound(name.clone()));
        };
        if parse_role(&old)? == Role::Admin && role != Role::Admin {
            let admins: i64 =
                tx.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
                    r.get(0)
                })?;
            if admins <= 1 {
                return Err(UserError::LastAdmin(name.clone()));
            }
        }
        tx.execute(
            "UPDATE users SET role = ?1 WHERE name = ?2",
            params![role.as_str(), name.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every user, sorted by name.
    pub fn list_users(&self) -> Result<Vec<User>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT name, role, created_us, last_login_us FROM users ORDER BY name COLLATE NOCASE",
        )?;
        let rows = st.query_map([], |r| {
            Ok(User {
                name: parse_user_name(&r.get::<_, String>(0)?)?,
                role: parse_role(&r.get::<_, String>(1)?)?,
                created_us: from_db(r.get(2)?),
                last_login_us: r.get::<_, Option<i64>>(3)?.map(from_db),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether any user exists (the hub's first-start decision).
    pub fn has_users(&self) -> Result<bool, DbError> {
        Ok(self
            .conn()
            .query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))?)
    }

    /// Checks a user name and password as typed at login (or sent as HTTP Basic). Any
    /// string is accepted: an invalid or unknown name is simply no match, after the same
    /// argon2 work a wrong password costs. Records the login time on success.
    pub fn check_password(
        &self,
        user: &str,
        password: &str,
        now_us: u64,
    ) -> Result<Option<Principal>, DbError> {
        let found: Option<(i64, String, String, String)> =
            if UserName::new(user).is_ok() && password.len() <= crate::MAX_PASSWORD_LEN {
                self.conn()
                    .query_row(
                        "SELECT id, name, role, phc FROM users WHERE name = ?1",
                        [user],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?
            } else {
                None
            };
        let Some((id, name, role, phc)) = found else {
            // Same cost as a real check; the result is ignored.
            let _ = password::verify(password, self.dummy_phc());
            return Ok(None);
        };
        if !password::verify(password, &phc) {
            return Ok(None);
        }
        // At most one write a minute per user: HTTP Basic checks a password on every request.
        self.conn().execute(
            "UPDATE users SET last_login_us = ?1
             WHERE id = ?2 AND (last_login_us IS NULL OR last_login_us <= ?1 - 60000000)",
            params![to_db(now_us), id],
        )?;
        Ok(Some(Principal {
            actor: Actor::User(parse_user_name(&name)?),
            role: parse_role(&role)?,
        }))
    }

    /// On a hub's first start with auth on: when no user exists, creates `admin` with a
    /// random password and returns it (to be printed once; only its hash is kept). `None`
    /// when any user exists already.
    pub fn ensure_initial_admin(&self, now_us: u64) -> Result<Option<InitialAdmin>, UserError> {
        if self.has_users()? {
            return Ok(None);
        }
        use base64::Engine;
        // 24 base64url characters: always a valid password.
        let password = Password::trusted(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>()?),
        );
        let name = UserName::trusted("admin");
        match self.add_user(&name, Role::Admin, &password, now_us) {
            Ok(()) => Ok(Some(InitialAdmin { name, password })),
            // Another process (the CLI) added it between our check and our insert.
            Err(UserError::Exists(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn dummy_phc(&self) -> &str {
        self.dummy_phc.get_or_init(|| {
            let pw = crate::secret::random_b64url_32().unwrap_or_default();
            // On failure the dummy check returns quickly; that leaks only that the OS
            // random generator is broken, which makes every login fail anyway.
            password::hash(&pw, self.options.password).unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;

    fn name(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }
    fn pw(s: &str) -> Password {
        Password::new(s).unwrap()
    }

    #[test]
    fn add_check_list_passwd_remove() {
        let (_d, auth) = auth();
        assert!(!auth.has_users().unwrap());
        auth.add_user(&name("alice"), Role::Admin, &pw("alice-secret"), T0)
            .unwrap();
        auth.add_user(&name("bob"), Role::Viewer, &pw("bob-secret"), T0 + SEC)
            .unwrap();
        assert!(auth.has_users().unwrap());

        let e = auth
            .add_user(&name("Alice"), Role::Viewer, &pw("whatever1"), T0)
            .unwrap_err();
        assert!(matches!(e, UserError::Exists(_)), "{e}");

        let p = auth
            .check_password("bob", "bob-secret", T0 + 5 * SEC)
            .unwrap();
        assert_eq!(
            p,
            Some(Principal {
                actor: Actor::User(name("bob")),
                role: Role::Viewer
            })
        );
        // Case-insensitive name, canonical name returned.
        let p = auth
            .check_password("ALICE", "alice-secret", T0)
            .unwrap()
            .unwrap();
        assert_eq!(p.actor, Actor::User(name("alice")));
        assert_eq!(auth.check_password("bob", "wrong", T0).unwrap(), None);
        assert_eq!(
            auth.check_password("carol", "bob-secret", T0).unwrap(),
            None
        );
        assert_eq!(auth.check_password("bad name!", "x", T0).unwrap(), None);

        // A check 30 s later is not written; 61 s later it is.
        auth.check_password("bob", "bob-secret", T0 + 35 * SEC)
            .unwrap();
        assert_eq!(
            auth.list_users().unwrap()[1].last_login_us,
            Some(T0 + 5 * SEC)
        );
        auth.check_password("bob", "bob-secret", T0 + 66 * SEC)
            .unwrap();
        assert_eq!(
            auth.list_users().unwrap()[1].last_login_us,
            Some(T0 + 66 * SEC)
        );
        auth.check_password("bob", "bob-secret", T0 + 5 * SEC)
            .unwrap();

        let users = auth.list_users().unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, name("alice"));
        assert_eq!(users[1].role, Role::Viewer);
        assert_eq!(users[1].created_us, T0 + SEC);
        assert_eq!(users[1].last_login_us, Some(T0 + 66 * SEC));

        auth.set_password(&name("bob"), &pw("new-bob-secret"), T0)
            .unwrap();
        assert_eq!(auth.check_password("bob", "bob-secret", T0).unwrap(), None);
        assert!(
            auth.check_password("bob", "new-bob-secret", T0)
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            auth.set_password(&name("nobody"), &pw("12345678"), T0),
            Err(UserError::NotFound(_))
        ));

        let e = auth.remove_user(&name("alice")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "alice is the only admin: add another admin before removing or demoting it"
        );
        auth.remove_user(&name("bob")).unwrap();
        assert!(matches!(
            auth.remove_user(&name("bob")),
            Err(UserError::NotFound(_))
        ));
        assert_eq!(auth.list_users().unwrap().len(), 1);
    }

    #[test]
    fn roles_change_but_never_the_last_admins() {
        let (_d, auth) = auth();
        auth.add_user(&name("alice"), Role::Admin, &pw("alice-secret"), T0)
            .unwrap();
        auth.add_user(&name("bob"), Role::Viewer, &pw("bob-secret"), T0)
            .unwrap();
        let s = auth.create_session(&name("bob"), T0).unwrap();
        let e = auth.set_role(&name("alice"), Role::Viewer).unwrap_err();
        assert!(matches!(e, UserError::LastAdmin(_)), "{e}");
        auth.set_role(&name("bob"), Role::Admin).unwrap();
        // The session stays and carries the new role.
        let p = auth.session(s.secret.expose(), T0 + SEC).unwrap().unwrap();
        assert_eq!(p.principal.role, Role::Admin);
        auth.set_role(&name("alice"), Role::Viewer).unwrap();
        assert_eq!(auth.list_users().unwrap()[0].role, Role::Viewer);
        assert!(matches!(
            auth.set_role(&name("nobody"), Role::Viewer),
            Err(UserError::NotFound(_))
        ));
    }

    #[test]
    fn the_hash_on_disk_is_argon2id_not_the_password() {
        let (dir, auth) = auth();
        auth.add_user(&name("alice"), Role::Admin, &pw("hunter2hunter2"), T0)
            .unwrap();
        drop(auth);
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        let phc: String = conn
            .query_row("SELECT phc FROM users", [], |r| r.get(0))
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("hunter2"));
    }

    #[test]
    fn initial_admin_only_once() {
        let (_d, auth) = auth();
        let admin = auth.ensure_initial_admin(T0).unwrap().unwrap();
        assert_eq!(admin.name.as_str(), "admin");
        assert_eq!(admin.password.expose().len(), 24);
        let p = auth
            .check_password("admin", admin.password.expose(), T0)
            .unwrap()
            .unwrap();
        assert_eq!(p.role, Role::Admin);
        assert!(auth.ensure_initial_admin(T0).unwrap().is_none());
    }
}

//! espcam access control, with no HTTP framework and no async runtime: users and roles,
//! dashboard sessions, API tokens, camera pairing (trust on first use), the audit log, and
//! the pure request-policy checks (origin, host, log escaping, rate limits) the hub applies
//! at every door. The hub maps requests onto these calls; the `espcam user|token|camera`
//! commands call them directly.
//!
//! # Storage
//!
//! One SQLite file, `auth.sqlite` in the hub's data directory ([`DB_FILE`]), in WAL mode with
//! SQLite's normal (shared) locking. It is deliberately *not* a table set inside the snapshot
//! index: the store opens its index in exclusive locking mode so a second hub cannot
//! reconcile under a running one, whereas the auth database must be writable by the
//! `espcam user|token|camera` commands *while the hub runs* — adding a user or revoking a
//! token takes effect on the hub's next request, with no restart and no IPC. WAL lets those
//! short writes run beside the hub's reads; `busy_timeout` (5 s) covers the moment two
//! writers meet. Transactions that read and then write begin `IMMEDIATE`: a deferred one
//! that must upgrade to a write while the other process writes fails with `SQLITE_BUSY` at
//! once, without waiting out the busy timeout. The hub reads users, sessions and tokens from the database on each request
//! (one indexed lookup) and never caches them, so a revocation is never served stale. The
//! file is created mode 0600 (it holds password hashes).
//!
//! # Time
//!
//! Every call that depends on time takes `now_us` (wall clock, µs since the Unix epoch, as
//! the rest of the hub) or `now: Instant` (for delays); nothing here reads a clock, so
//! expiry and back-off are tested without waiting.
//!
//! # Blocking
//!
//! [`Auth`] is `Send + Sync` and every method blocks (disk, and argon2 for passwords: tens
//! of milliseconds and [`PasswordParams::DEFAULT`]'s 19 MiB). The hub calls it from
//! `spawn_blocking`. The connection lock is never held while argon2 runs.
//!
//! This crate must never log a secret (passwords, tokens, session ids), never store one
//! except as a hash, and never decide a permission outside [`Role::allows`].

mod audit;
mod error;
mod name;
mod pairing;
mod password;
mod policy;
mod ratelimit;
mod request;
mod role;
mod secret;
mod sessions;
mod tokens;
mod users;
mod warnlimit;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

pub use audit::{AuditAction, AuditEntry, AuditRecord, MAX_AUDIT_LIMIT};
pub use error::{DbError, OpenError, PairingError, SessionError, TokenError, UserError};
pub use name::{
    MAX_NAME_LEN, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, NameError, Password, PasswordError,
    TokenName, UserName,
};
pub use pairing::{PairedCamera, PairingDecision, PairingRefusal, PairingState};
pub use password::{HashError, PasswordParams};
pub use policy::{
    AuthMode, AuthModeError, HostError, ModeDecision, OriginError, decide_mode, escape_for_log,
    host_allowed, normalize_origin, origin_allowed,
};
pub use ratelimit::{LoginDecision, LoginLimitPolicy, LoginLimiter};
pub use request::{AuthOutcome, CsrfError, RequestCredentials, Via, state_change_allowed};
pub use role::{Action, Role, RoleError};
pub use secret::RandomError;
pub use sessions::{
    NewSession, Session, SessionPolicy, SessionSecret, clear_session_cookie, session_cookie_name,
    session_from_cookie_header, set_session_cookie,
};
pub use tokens::{
    Credentials, NewToken, TOKEN_PREFIX, TokenInfo, TokenSecret, parse_authorization,
};
pub use users::{InitialAdmin, User};
pub use warnlimit::{WarnDecision, WarnLimitPolicy, WarnLimiter, WarnSummary};

/// The database file, in the hub's data directory.
pub const DB_FILE: &str = "auth.sqlite";

/// Schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// Who did something: the subject of a request, and the `who` of an audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A logged-in user (session, HTTP Basic with a password).
    User(UserName),
    /// An API token.
    Token(TokenName),
    /// The `espcam` command line on the hub's machine.
    Cli,
    /// No credential, where the hub runs without auth (loopback, or `auth = "off"`).
    Anonymous,
    /// A command that came through the hub's MQTT connection (Home Assistant, or anyone
    /// the broker lets publish to the command topics; the broker, not the hub, knows who).
    Mqtt,
}

impl fmt::Display for Actor {
    /// `user:alice`, `token:home-assistant`, `cli`, `anonymous`, `mqtt`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(n) => write!(f, "user:{n}"),
            Actor::Token(n) => write!(f, "token:{n}"),
            Actor::Cli => f.write_str("cli"),
            Actor::Anonymous => f.write_str("anonymous"),
            Actor::Mqtt => f.write_str("mqtt"),
        }
    }
}

/// An authenticated subject and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub actor: Actor,
    /// What they may do.
    pub role: Role,
}

impl Principal {
    /// The subject of every request when the hub runs without auth: may do everything,
    /// recorded as `anonymous`.
    pub fn anonymous() -> Self {
        Self {
            actor: Actor::Anonymous,
            role: Role::Admin,
        }
    }

    /// Whether this principal may perform `action` ([`Role::allows`]).
    pub fn allows(&self, action: Action) -> bool {
        self.role.allows(action)
    }
}

/// How [`Auth`] behaves; [`AuthOptions::default`] is what the hub and CLI use.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// argon2id parameters for new password hashes.
    pub password: PasswordParams,
    /// Session lifetimes.
    pub session: SessionPolicy,
    /// Most cameras waiting for pairing at once; more unknown ids are refused, so a flood
    /// of made-up ids cannot grow the table or the admin's list.
    pub max_pending_cameras: u32,
    /// Most audit entries kept; older ones are pruned.
    pub max_audit_entries: u32,
    /// Create the data directory and the database when missing. `false` makes
    /// [`Auth::open_with`] fail with [`OpenError::Missing`] instead (read-only commands
    /// should not create a directory from a mistyped `--data-dir`).
    pub create: bool,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            password: PasswordParams::DEFAULT,
            session: SessionPolicy::default(),
            max_pending_cameras: 32,
            max_audit_entries: 100_000,
            create: true,
        }
    }
}

impl AuthOptions {
    /// Cheap argon2 parameters, for tests.
    pub fn for_tests() -> Self {
        Self {
            password: PasswordParams::INSECURE_FOR_TESTS,
            ..Self::default()
        }
    }
}

/// The auth database. `Send + Sync`: share it in an `Arc`. Every method blocks.
#[derive(Debug)]
pub struct Auth {
    /// The database file.
    path: PathBuf,
    /// One connection; `rusqlite::Connection` is not `Sync`. Held for single statements or
    /// short transactions only, never while argon2 runs, so one slow login does not stall
    /// every token check.
    conn: Mutex<Connection>,
    options: AuthOptions,
    /// A hash of a random password, verified against when a login names an unknown user,
    /// so "no such user" takes as long as "wrong password" and user names cannot be probed
    /// by timing. Made on first use (it costs one argon2 run).
    dummy_phc: OnceLock<String>,
}

impl Auth {
    /// Opens (creating the directory and file if needed) `data_dir/auth.sqlite` with the
    /// default options.
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
        Self::open_with(data_dir, AuthOptions::default())
    }

    /// Opens `data_dir/auth.sqlite` with `options`.
    pub fn open_with(data_dir: &Path, options: AuthOptions) -> Result<Self, OpenError> {
        let path = data_dir.join(DB_FILE);
        if options.create {
            std::fs::create_dir_all(data_dir).map_err(|source| OpenError::Io {
                action: "create directory",
                path: data_dir.to_path_buf(),
                source,
            })?;
            create_private(&path)?;
        } else if !path.exists() {
            return Err(OpenError::Missing(path));
        }
        let db_err = |source| OpenError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db_err)?;
        configure(&conn).map_err(db_err)?;
        migrate(&conn, &path)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
            options,
            dummy_phc: OnceLock::new(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &AuthOptions {
        &self.options
    }

    /// SQLite's `PRAGMA data_version` of this connection: it changes whenever *another*
    /// connection (the `espcam user|token|camera` commands beside the running hub) commits
    /// to the database, and only then. The hub polls it to notice credentials revoked from
    /// the command line. Cheap: no disk read when nothing changed.
    pub fn data_version(&self) -> Result<i64, DbError> {
        Ok(self
            .conn()
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// The connection. A panic while holding it cannot leave SQLite inconsistent (a
    /// transaction not committed is rolled back), so a poisoned lock is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates `path` readable by its owner only, if it does not exist yet. SQLite gives its
/// `-wal` and `-shm` files the database file's permissions.
fn create_private(path: &Path) -> Result<(), OpenError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(OpenError::Io {
            action: "create",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // The CLI and the hub may write at the same moment; the loser waits instead of failing.
    conn.busy_timeout(Duration::from_secs(5))?;
    // Filesystems without WAL support keep the rollback journal: still correct, only the
    // CLI then waits for the hub's reads, so the reported mode is not checked.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // A revocation that was reported done must survive a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

const SCHEMA_V1: &str = "
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    phc TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    password_changed_us INTEGER NOT NULL,
    last_login_us INTEGER
);
CREATE TABLE sessions (
    hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_us INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    hash BLOB NOT NULL UNIQUE,
    created_us INTEGER NOT NULL,
    last_used_us INTEGER
);
CREATE TABLE cameras (
    id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'accepted')),
    first_seen_us INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    addr TEXT,
    accepted_us INTEGER
) WITHOUT ROWID;
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    addr TEXT
);
";

fn migrate(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let db_err = |source| OpenError::Db {
        path: path.to_path_buf(),
        source,
    };
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    // Version 0: a new file. IMMEDIATE so a hub and a CLI opening a fresh directory at the
    // same moment do not both create the tables; the loser sees version 1 and stops.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
    let result = (|| {
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if v == 0 {
            conn.execute_batch(SCHEMA_V1)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result.map_err(db_err)
}

/// `u64` µs as stored (SQLite integers are `i64`; times past year 294,000 saturate).
fn to_db(us: u64) -> i64 {
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// A stored time back to `u64` µs (negative values, never written by us, read as 0).
fn from_db(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0)
}

/// Whether `e` is a UNIQUE / PRIMARY KEY violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A fresh database in a temporary directory, with cheap argon2 parameters.
    pub fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open_with(dir.path(), AuthOptions::for_tests()).unwrap();
        (dir, auth)
    }

    /// 2025-01-01T00:00:00Z in µs.
    pub const T0: u64 = 1_735_689_600_000_000;
    pub const SEC: u64 = 1_000_000;
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn opens_twice_and_refuses_a_newer_schema() {
        let (dir, auth) = auth();
        // A second connection (as the CLI beside a running hub) opens the same file.
        let second = Auth::open_with(dir.path(), AuthOptions::for_tests()).unwrap();
        drop(second);
        auth.conn().pragma_update(None, "user_version", 99).unwrap();
        let e = Auth::open_with(dir.path(), AuthOptions::for_tests()).unwrap_err();
        assert!(matches!(e, OpenError::NewerSchema { found: 99, .. }), "{e}");
    }

    #[test]
    fn data_version_moves_only_for_other_connections() {
        let (dir, auth) = auth();
        let v0 = auth.data_version().unwrap();
        // Our own writes do not move it.
        auth.add_token(&TokenName::new("own").unwrap(), Role::Viewer, 1)
            .unwrap();
        assert_eq!(auth.data_version().unwrap(), v0);
        // The CLI's do.
        let cli = Auth::open_with(dir.path(), AuthOptions::for_tests()).unwrap();
        cli.revoke_token(&TokenName::new("own").unwrap()).unwrap();
        let v1 = auth.data_version().unwrap();
        assert_ne!(v1, v0);
        assert_eq!(
            auth.data_version().unwrap(),
            v1,
            "stable until the next change"
        );
    }

    #[test]
    fn open_without_create_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = Auth::open_with(
            &missing,
            AuthOptions {
                create: false,
                ..AuthOptions::for_tests()
            },
        )
        .unwrap_err();
        assert!(matches!(e, OpenError::Missing(_)), "{e}");
        assert!(!missing.exists(), "nothing was created");
        assert!(e.to_string().contains("auth.sqlite"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _auth) = auth();
        let mode = std::fs::metadata(dir.path().join(DB_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn actors_print_as_audited() {
        assert_eq!(
            Actor::User(UserName::new("alice").unwrap()).to_string(),
            "user:alice"
        );
        assert_eq!(
            Actor::Token(TokenName::new("ha").unwrap()).to_string(),
            "token:ha"
        );
        assert_eq!(Actor::Cli.to_string(), "cli");
        assert_eq!(Actor::Mqtt.to_string(), "mqtt");
        assert!(Principal::anonymous().allows(Action::Settings));
    }
}

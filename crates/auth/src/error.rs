//! One error type per failure domain. Messages say what was wrong and what was expected;
//! names in them are validated names (safe to print) or cut to 40 characters. This module
//! must never put a secret in a message.

use std::path::PathBuf;

use crate::name::{TokenName, UserName};
use crate::password::HashError;
use crate::secret::RandomError;

/// SQLite failed on a query (disk full, I/O error, a corrupt file).
#[derive(Debug, thiserror::Error)]
#[error("auth database: {0}")]
pub struct DbError(#[from] pub rusqlite::Error);

/// Why [`Auth::open`](crate::Auth::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Creating the directory or file failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database does not exist and the caller asked not to create it.
    #[error(
        "no auth database at {}: add a user first (`espcam user add NAME --role admin`) or check --data-dir",
        .0.display()
    )]
    Missing(PathBuf),
    /// Written by a newer espcam.
    #[error(
        "auth database schema version {found} is newer than this espcam supports ({supported}): upgrade espcam"
    )]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Latest this build knows.
        supported: i64,
    },
    /// SQLite refused to open or migrate the file.
    #[error("auth database {}: {source}", path.display())]
    Db {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Adding a name that exists (in any case).
    #[error("user {0} already exists (names are compared ignoring case)")]
    Exists(UserName),
    /// No such user.
    #[error("no user named {0}")]
    NotFound(UserName),
    /// Removing or demoting the only admin would lock everyone out of user management.
    #[error("{0} is the only admin: add another admin before removing or demoting it")]
    LastAdmin(UserName),
    /// Hashing the password failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// No randomness for a generated password.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for UserError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(DbError(e))
    }
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Adding a name that exists.
    #[error(
        "token {0} already exists (names are compared ignoring case): revoke it first or pick another name"
    )]
    Exists(TokenName),
    /// No such token.
    #[error("no token named {0}")]
    NotFound(TokenName),
    /// No randomness for the token.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for TokenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(DbError(e))
    }
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The user was removed in the meantime.
    #[error("no user named {0}")]
    UnknownUser(UserName),
    /// No randomness for the session id.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for SessionError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(DbError(e))
    }
}

/// Why a pairing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// No camera with that id has asked to pair.
    #[error("camera {0} is not waiting for pairing and is not paired")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for PairingError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(DbError(e))
    }
}

//! One error type per store operation. Messages say what was wrong and what was expected;
//! I/O errors name the action and the path. This module must never hide a cause: every
//! wrapped error stays reachable through `source()`.

use std::path::PathBuf;

use espcam_proto::control::CameraIdError;
use espcam_proto::jpeg::JpegError;

pub use crate::layout::UnsafePath;

/// A failed filesystem call, with what was being done and where.
#[derive(Debug, thiserror::Error)]
#[error("could not {action} {}: {source}", path.display())]
pub struct IoError {
    /// What the store was doing, e.g. `write snapshot file`.
    pub action: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub(crate) fn new(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Why [`Store::open`](crate::Store::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Creating or reading the data directory failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Another process (or another `Store` in this process) has the data directory open.
    #[error(
        "data directory {} is in use by another espcam process: expected one hub per data directory",
        .0.display()
    )]
    InUse(PathBuf),
    /// The index was written by a newer espcam.
    #[error(
        "snapshot index schema version {found} is newer than this espcam supports ({supported}): upgrade espcam or use another data directory"
    )]
    NewerSchema {
        /// Version found in the database.
        found: i64,
        /// Latest version this build knows.
        supported: i64,
    },
    /// SQLite refused to open or migrate the index.
    #[error("snapshot index {}: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The start-up reconciliation failed.
    #[error("reconciling snapshots with the index: {0}")]
    Reconcile(#[from] ReconcileError),
}

/// Why [`Store::save`](crate::Store::save) failed. Nothing is left behind on error: the
/// partly written file and the reserved row are removed (or, after a crash, reconciled).
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// No bytes at all.
    #[error("snapshot is empty: expected a JPEG image")]
    Empty,
    /// Larger than [`MAX_SNAPSHOT_BYTES`](crate::MAX_SNAPSHOT_BYTES).
    #[error("snapshot of {0} bytes exceeds the limit of {max} bytes", max = crate::MAX_SNAPSHOT_BYTES)]
    TooLarge(usize),
    /// Not one complete JPEG image.
    #[error("snapshot is not a complete JPEG image: {0}")]
    NotJpeg(#[from] JpegError),
    /// The capture time cannot be stored.
    #[error("taken_at_us {0} out of range 0..={max} (the year 9999)", max = crate::MAX_TAKEN_AT_US)]
    TimeOutOfRange(u64),
    /// The path check refused a component (cannot happen with a valid `CameraId`).
    #[error(transparent)]
    UnsafePath(#[from] UnsafePath),
    /// Writing the file failed (disk full, permissions, …).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The index refused the row.
    #[error("snapshot index: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Why a [`Query`](crate::Query) is invalid or could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// `camera=` is not a valid camera id.
    #[error(transparent)]
    Camera(#[from] CameraIdError),
    /// `limit=` is not a number in range.
    #[error("limit {0:?} out of range: expected a whole number in 1..={max}", max = crate::MAX_LIMIT)]
    Limit(String),
    /// `before=` is not a snapshot id.
    #[error("before {0:?} is invalid: expected a snapshot id (a whole number ≥ 1)")]
    Before(String),
    /// The index could not be read.
    #[error("snapshot index: {0}")]
    Db(#[from] rusqlite::Error),
}

/// Why [`Store::get`](crate::Store::get) or [`Store::read_jpeg`](crate::Store::read_jpeg)
/// failed. A snapshot that does not exist is `Ok(None)`, not an error.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The index could not be read, or holds a row this build cannot interpret.
    #[error("snapshot index: {0}")]
    Db(#[from] rusqlite::Error),
    /// The index row names a path the store refuses to open.
    #[error(transparent)]
    UnsafePath(#[from] UnsafePath),
    /// The file exists but could not be read.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Why [`Store::delete`](crate::Store::delete) failed. On error the snapshot is either still
/// fully there, or its file is gone and reconciliation removes the row at the next start.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The index could not be read or updated.
    #[error("snapshot index: {0}")]
    Db(#[from] rusqlite::Error),
    /// The index row names a path the store refuses to touch.
    #[error(transparent)]
    UnsafePath(#[from] UnsafePath),
    /// Removing the file failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Why [`Store::reconcile`](crate::Store::reconcile) failed part-way. Whatever it had done
/// before is consistent; running it again continues.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Listing, reading, moving or removing a file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The index could not be read or updated.
    #[error("snapshot index: {0}")]
    Db(#[from] rusqlite::Error),
}

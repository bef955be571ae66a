//! One error type per recordings operation. Messages say what was wrong and what was
//! expected; I/O errors name the action and the path. This module must never hide a cause:
//! every wrapped error stays reachable through `source()`.

use std::path::PathBuf;

/// A failed filesystem call, with what was being done and where.
#[derive(Debug, thiserror::Error)]
#[error("could not {action} {}: {source}", path.display())]
pub struct IoError {
    /// What the recorder was doing, e.g. `append to segment`.
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

    /// Whether the disk (or the user's quota) is full: recording should pause for that
    /// camera and resume when retention or the user frees space.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self.source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }
}

/// Why [`Recordings::open`](crate::Recordings::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Creating or reading the data directory failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Another process (or another `Recordings` in this process) has the directory open.
    #[error(
        "recordings in {} are in use by another espcam process: expected one hub per data directory",
        .0.display()
    )]
    InUse(PathBuf),
    /// The database was written by a newer espcam.
    #[error(
        "recordings schema version {found} is newer than this espcam supports ({supported}): upgrade espcam or use another data directory"
    )]
    NewerSchema {
        /// Version found in the database.
        found: i64,
        /// Latest version this build knows.
        supported: i64,
    },
    /// SQLite refused to open or migrate the database.
    #[error("recordings database {}: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// Why a [`Writer`](crate::Writer) call failed. After an error the frame was not recorded;
/// frames reported durable before stay durable, and the writer keeps working (it starts a new
/// segment at the next frame once the disk accepts writes again).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A writer for this camera already exists.
    #[error("camera {0:?} already has a recording writer: expected one writer per camera")]
    Busy(String),
    /// No bytes.
    #[error("frame is empty: expected JPEG bytes")]
    Empty,
    /// Larger than [`MAX_FRAME_BYTES`](crate::MAX_FRAME_BYTES).
    #[error("frame of {0} bytes exceeds the limit of {max} bytes", max = crate::MAX_FRAME_BYTES)]
    TooLarge(usize),
    /// Width or height zero.
    #[error("frame size {0}x{1} is invalid: expected a width and height of at least 1 px")]
    BadDimensions(u16, u16),
    /// Writing, syncing or creating a segment file failed (disk full, permissions, …).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The database refused a segment row.
    #[error("recordings database: {0}")]
    Db(#[from] rusqlite::Error),
}

impl WriteError {
    /// Whether the filesystem (or the user's quota) is full: retention should make room,
    /// and recording resumes once a write succeeds.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Io(e) => e.is_disk_full(),
            Self::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}

/// Why reading recordings (spans, cursor, segment index) failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database could not be read, or holds a row this build cannot interpret.
    #[error("recordings database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A segment file could not be opened or read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A segment file's index or a frame's bytes fail their checks.
    #[error("segment {} is corrupt: {what}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// What check failed.
        what: &'static str,
    },
}

/// Why [`Recordings::apply_retention`](crate::Recordings::apply_retention) failed part-way.
/// Whatever it deleted before is consistent (file gone, then row gone).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Listing segments or deleting a row failed.
    #[error("recordings database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Removing a file or measuring free space failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Why an export could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// `from` is not before `to`.
    #[error("export range {from_us}..{to_us} is empty: expected from < to")]
    BadRange {
        /// Start, µs.
        from_us: u64,
        /// End, µs.
        to_us: u64,
    },
    /// No frame recorded in the range.
    #[error("no frames recorded for this camera in the requested range")]
    NoFrames,
    /// More frames than one export may hold in memory.
    #[error("export of {0} frames exceeds the limit of {max} frames: expected a shorter range", max = crate::export::MAX_EXPORT_FRAMES)]
    TooManyFrames(usize),
    /// An AVI 1.0 (RIFF) file cannot exceed 4 GiB.
    #[error(
        "AVI export would be {0} bytes, over the 4 GiB limit of an AVI file: expected a shorter range or format=mkv"
    )]
    TooLargeForAvi(u64),
    /// Reading the segments failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

//! Snapshots on disk: JPEG files under the data directory, indexed in SQLite.
//!
//! The hub calls this synchronous, thread-safe library from `spawn_blocking`; it has no
//! async runtime of its own. It must never lose a snapshot it reported as saved, never leave
//! a row pointing at a half-written file, and never build a path from a request string (see
//! [`layout`] for the directory layout and the path rules).
//!
//! # Crash safety
//!
//! A save is four durable steps, each of which may be the last one before a crash:
//!
//! 1. **Reserve**: insert the row with `state = pending` (one SQLite transaction, WAL,
//!    `synchronous = FULL`). This assigns the id; ids are `AUTOINCREMENT`, never reused.
//!    *Crash after*: a pending row with no file, at most a partial temp file.
//! 2. **Write**: write `.<id>-<t>.jpg.tmp` in the day directory and `fsync` it.
//!    *Crash after*: same as above, the temp file may now be complete.
//! 3. **Publish**: `rename` the temp file to `<id>-<t>.jpg` (atomic on POSIX filesystems) and
//!    `fsync` the directory so the rename itself is durable.
//!    *Crash after*: a pending row and a complete file under its final name.
//! 4. **Commit**: `UPDATE … SET state = committed` (one transaction). Only now does
//!    [`Store::save`] return `Ok`, and only committed rows are ever listed or served.
//!
//! [`Store::reconcile`] (run by [`Store::open`] before anything else can use the store)
//! repairs each intermediate state: temp files are deleted; a pending row whose final file
//! exists is committed if the file is a complete JPEG of the recorded size (step 3 finished,
//! so the bytes are durable — keeping them loses nothing), otherwise the row is dropped and
//! the file set aside; a pending row without its file is dropped. Because the file name
//! carries the id and time, a file whose row is missing altogether (an index restored from a
//! backup, a deleted database) is re-indexed from the file alone when it is a complete JPEG
//! and its id is free, and moved to `<data>/lost+found` otherwise; a committed row whose file
//! has gone is removed and counted. Reconciliation never deletes anything but our own temp
//! files and index rows: unknown files are moved aside, not removed.
//!
//! Delete runs the other way round — remove the file, `fsync` the directory, then delete the
//! row — so a crash in between leaves a row without a file, which reconciliation removes,
//! and never a file without a row, which would come back as a re-indexed snapshot.
//!
//! A save and a delete hold the shared side of a gate across all their steps; reconciliation
//! holds it exclusively, so it never mistakes another thread's in-flight save for crash
//! debris. The database is opened in SQLite's exclusive locking mode, so a second process
//! pointed at the same data directory fails at start instead of reconciling under a running
//! hub's feet.

pub mod error;
pub mod events;
pub mod layout;
mod reconcile;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use espcam_proto::CameraId;
use rusqlite::{Connection, OptionalExtension, params};

pub use error::{
    DeleteError, IoError, OpenError, QueryError, ReadError, ReconcileError, SaveError, UnsafePath,
};
pub use layout::MAX_TAKEN_AT_US;
pub use reconcile::ReconcileReport;

/// Largest snapshot accepted, bytes. A 2048×1536 JPEG at the best quality is about 1 MiB;
/// the stream channel refuses frames over 2 MiB.
pub const MAX_SNAPSHOT_BYTES: usize = 16 * 1024 * 1024;
/// Rows returned by [`Store::list`] when the query names no limit.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest limit a [`Query`] accepts.
pub const MAX_LIMIT: u32 = 500;

/// Schema version stored in SQLite's `user_version`; [`migrate`] brings older databases up.
const SCHEMA_VERSION: i64 = 1;

/// `state` column values. A pending row belongs to a save in progress (or one interrupted by
/// a crash) and is invisible to readers.
const PENDING: i64 = 0;
const COMMITTED: i64 = 1;

/// A snapshot's id: the index row id, ≥ 1, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(i64);

impl SnapshotId {
    /// `Some` for ids ≥ 1.
    pub fn new(id: i64) -> Option<Self> {
        (id >= 1).then_some(Self(id))
    }

    /// The numeric id.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Parses the last segment of `/api/snapshots/{id}.jpg`: `"12.jpg"` → 12.
    pub fn from_jpg_name(name: &str) -> Option<Self> {
        name.strip_suffix(".jpg")?.parse().ok()
    }
}

impl FromStr for SnapshotId {
    type Err = ();

    /// Accepts only plain decimal digits (no sign, no spaces) of an id ≥ 1.
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        s.parse::<i64>().ok().and_then(Self::new).ok_or(())
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A snapshot to save.
#[derive(Debug, Clone, Copy)]
pub struct NewSnapshot<'a> {
    /// The camera it came from.
    pub camera: &'a CameraId,
    /// Capture time, µs since the Unix epoch (≤ [`MAX_TAKEN_AT_US`]).
    pub taken_at_us: u64,
    /// The JPEG. Must be one complete image; bytes after its end marker are not stored.
    /// Width and height are read from the image itself, not trusted from the caller.
    pub jpeg: &'a [u8],
}

/// A saved snapshot, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Index id.
    pub id: SnapshotId,
    /// Camera it came from.
    pub camera: CameraId,
    /// Capture time, µs since the Unix epoch.
    pub taken_at_us: u64,
    /// File size, bytes.
    pub bytes: u64,
    /// Image width, px (from the JPEG's frame header).
    pub width: u16,
    /// Image height, px.
    pub height: u16,
}

/// What one camera's snapshots take: [`Store::usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Committed snapshots.
    pub count: u64,
    /// Their file sizes in all, bytes.
    pub bytes: u64,
}

/// Where a listing starts: strictly older than this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Snapshots with a smaller id (saved earlier) — the paging cursor: pass the last id of
    /// the previous page.
    Id(SnapshotId),
    /// Snapshots taken before this time, µs since the Unix epoch.
    TakenAt(u64),
}

/// What [`Store::list`] returns: committed snapshots, newest (highest id) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only this camera's snapshots.
    pub camera: Option<CameraId>,
    /// At most this many (default [`DEFAULT_LIMIT`], 1..=[`MAX_LIMIT`]).
    pub limit: Option<u32>,
    /// Only snapshots older than this.
    pub before: Option<Before>,
}

/// The snapshot store: one data directory, one SQLite index. `Send + Sync`; share it in an
/// `Arc`. Every method blocks on disk I/O.
#[derive(Debug)]
pub struct Store {
    /// The data directory (absolute or as given); every file path is built under it.
    root: PathBuf,
    /// The one SQLite connection. `rusqlite::Connection` is not `Sync`, so it lives behind a
    /// mutex; it is held only for single short statements or transactions, never across
    /// file writes or `fsync`, so a slow disk write does not stall listings.
    conn: Mutex<Connection>,
    /// Save and delete hold the read side across their whole multi-step sequence;
    /// reconciliation holds the write side. Without it, a reconcile running while a save is
    /// between "reserve" and "commit" would take the in-flight pending row and temp file for
    /// crash debris and delete them.
    gate: RwLock<()>,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: creates the directories, opens
    /// the index in WAL mode, migrates its schema, and reconciles files with the index.
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
        let (store, _report) = Self::open_with_report(data_dir)?;
        Ok(store)
    }

    /// Like [`Store::open`], also returning what the start-up reconciliation repaired, for
    /// the caller to log.
    pub fn open_with_report(data_dir: &Path) -> Result<(Self, ReconcileReport), OpenError> {
        let root = data_dir.to_path_buf();
        for dir in [root.clone(), root.join(layout::SNAPSHOTS_DIR)] {
            fs::create_dir_all(&dir).map_err(|e| IoError::new("create directory", &dir, e))?;
        }
        let db_path = root.join(layout::DB_FILE);
        let db_err = |source| OpenError::Db {
            path: db_path.clone(),
            source,
        };
        let conn = Connection::open(&db_path).map_err(db_err)?;
        configure(&conn).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) => OpenError::InUse(root.clone()),
            _ => db_err(e),
        })?;
        migrate(&conn, &db_path)?;
        let store = Self {
            root,
            conn: Mutex::new(conn),
            gate: RwLock::new(()),
        };
        let report = store.reconcile()?;
        Ok((store, report))
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Saves one snapshot: validates the JPEG, then reserve → write → publish → commit (see
    /// the crate docs). Returns the committed snapshot.
    pub fn save(&self, new: NewSnapshot<'_>) -> Result<Snapshot, SaveError> {
        if new.jpeg.is_empty() {
            return Err(SaveError::Empty);
        }
        if new.jpeg.len() > MAX_SNAPSHOT_BYTES {
            return Err(SaveError::TooLarge(new.jpeg.len()));
        }
        let info = espcam_proto::jpeg::scan(new.jpeg)?;
        let jpeg = &new.jpeg[..info.len];
        if new.taken_at_us > MAX_TAKEN_AT_US {
            return Err(SaveError::TimeOutOfRange(new.taken_at_us));
        }
        let t = new.taken_at_us as i64; // ≤ MAX_TAKEN_AT_US < i64::MAX
        let dir = self
            .root
            .join(layout::day_dir(new.camera, new.taken_at_us)?);

        let _gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        let id = {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO snapshots (camera, taken_at_us, bytes, width, height, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    new.camera.as_str(),
                    t,
                    jpeg.len() as i64,
                    info.width,
                    info.height,
                    PENDING
                ],
            )?;
            conn.last_insert_rowid()
        };
        let written = self.write_file(&dir, id, new.taken_at_us, jpeg);
        let committed = written.and_then(|final_path| {
            self.conn()
                .execute(
                    "UPDATE snapshots SET state = ?1 WHERE id = ?2",
                    params![COMMITTED, id],
                )
                .map_err(|e| {
                    // Undo the published file too, or it would be committed at next start
                    // although the caller was told the save failed.
                    let _ = fs::remove_file(&final_path);
                    SaveError::Db(e)
                })
        });
        if let Err(e) = committed {
            // Best effort: release the reserved row. If this fails too, reconciliation at
            // the next start drops the pending row (its file is gone).
            let _ = self
                .conn()
                .execute("DELETE FROM snapshots WHERE id = ?1", params![id]);
            return Err(e);
        }
        Ok(Snapshot {
            id: SnapshotId(id),
            camera: new.camera.clone(),
            taken_at_us: new.taken_at_us,
            bytes: jpeg.len() as u64,
            width: info.width,
            height: info.height,
        })
    }

    /// Steps 2 and 3 of a save: temp file, fsync, rename, fsync directory. Returns the final
    /// path. On error the temp file is removed.
    fn write_file(&self, dir: &Path, id: i64, t: u64, jpeg: &[u8]) -> Result<PathBuf, SaveError> {
        create_dir_durable(&self.root, dir)?;
        let tmp = dir.join(layout::temp_name(id, t));
        let fin = dir.join(layout::file_name(id, t));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| IoError::new("create snapshot file", &tmp, e))?;
            f.write_all(jpeg)
                .and_then(|()| f.sync_all())
                .map_err(|e| IoError::new("write snapshot file", &tmp, e))?;
            drop(f);
            // Ids are never reused, so the final name cannot exist; refuse rather than
            // overwrite if the directory was tampered with.
            if fin.exists() {
                let e = io::Error::new(io::ErrorKind::AlreadyExists, "file exists");
                return Err(IoError::new("publish snapshot file", &fin, e));
            }
            fs::rename(&tmp, &fin).map_err(|e| IoError::new("publish snapshot file", &fin, e))?;
            sync_dir(dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| fin).map_err(SaveError::Io)
    }

    /// Committed snapshots matching `q`, newest (highest id) first.
    pub fn list(&self, q: &Query) -> Result<Vec<Snapshot>, QueryError> {
        let limit = match q.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => return Err(QueryError::Limit(n.to_string())),
        };
        let (before_id, before_t) = match q.before {
            None => (i64::MAX, i64::MAX),
            Some(Before::Id(id)) => (id.0, i64::MAX),
            Some(Before::TakenAt(t)) => (i64::MAX, i64::try_from(t).unwrap_or(i64::MAX)),
        };
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, camera, taken_at_us, bytes, width, height FROM snapshots
             WHERE state = ?1 AND (?2 IS NULL OR camera = ?2) AND id < ?3 AND taken_at_us < ?4
             ORDER BY id DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![
                COMMITTED,
                q.camera.as_ref().map(CameraId::as_str),
                before_id,
                before_t,
                limit
            ],
            row_to_snapshot,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// How many committed snapshots `camera` has, and their bytes in all (for quotas).
    pub fn usage(&self, camera: &CameraId) -> Result<Usage, QueryError> {
        let (count, bytes): (i64, i64) = self
            .conn()
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM snapshots
                 WHERE state = ?1 AND camera = ?2",
            )?
            .query_row(params![COMMITTED, camera.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok(Usage {
            count: u64::try_from(count).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    /// `camera`'s oldest committed snapshots (lowest id first), at most `limit`
    /// (1..=[`MAX_LIMIT`]): what retention deletes first.
    pub fn oldest(&self, camera: &CameraId, limit: u32) -> Result<Vec<Snapshot>, QueryError> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(QueryError::Limit(limit.to_string()));
        }
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, camera, taken_at_us, bytes, width, height FROM snapshots
             WHERE state = ?1 AND camera = ?2 ORDER BY id ASC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![COMMITTED, camera.as_str(), limit], row_to_snapshot)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The committed snapshot `id`, or `None`.
    pub fn get(&self, id: SnapshotId) -> Result<Option<Snapshot>, ReadError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, camera, taken_at_us, bytes, width, height FROM snapshots
                 WHERE id = ?1 AND state = ?2",
            )?
            .query_row(params![id.0, COMMITTED], row_to_snapshot)
            .optional()?)
    }

    /// The checked path of snapshot `id`'s file, or `None` if there is no such snapshot. The
    /// path is rebuilt from the row's validated fields, never read from the index.
    pub fn jpeg_path(&self, id: SnapshotId) -> Result<Option<PathBuf>, ReadError> {
        let Some(s) = self.get(id)? else {
            return Ok(None);
        };
        Ok(Some(self.path_of(&s)?))
    }

    /// The bytes of snapshot `id`, or `None` if there is no such snapshot (including one
    /// deleted while this call ran).
    pub fn read_jpeg(&self, id: SnapshotId) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(path) = self.jpeg_path(id)? else {
            return Ok(None);
        };
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::new("read snapshot file", path, e).into()),
        }
    }

    /// Deletes snapshot `id`: file first, then the row (see the crate docs for why). Returns
    /// whether it existed.
    pub fn delete(&self, id: SnapshotId) -> Result<bool, DeleteError> {
        let _gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        let snapshot = match self.get(id) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(false),
            Err(ReadError::Db(e)) => return Err(e.into()),
            Err(ReadError::UnsafePath(e)) => return Err(e.into()),
            Err(ReadError::Io(e)) => return Err(e.into()),
        };
        let path = self.path_of(&snapshot)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(IoError::new("remove snapshot file", path, e).into()),
        }
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let n = self
            .conn()
            .execute("DELETE FROM snapshots WHERE id = ?1", params![id.0])?;
        Ok(n > 0)
    }

    /// Brings files and index into agreement after a crash or outside tampering (see the
    /// crate docs). Runs at [`Store::open`]; safe to call at any time, it waits for saves
    /// and deletes in progress.
    pub fn reconcile(&self) -> Result<ReconcileReport, ReconcileError> {
        let _gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        reconcile::run(self)
    }

    /// The connection. A panic while holding the lock cannot leave SQLite half-updated
    /// (an open transaction is rolled back on drop), so a poisoned lock is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Absolute path of `s`'s file.
    fn path_of(&self, s: &Snapshot) -> Result<PathBuf, UnsafePath> {
        let mut p = self.root.join(layout::day_dir(&s.camera, s.taken_at_us)?);
        p.push(layout::file_name(s.id.0, s.taken_at_us));
        Ok(p)
    }
}

/// Connection settings: exclusive locking (one process per data directory; also means WAL
/// needs no shared-memory file), WAL journal, full `fsync` on commit so that a committed save
/// survives power loss.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_millis(250))?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    // Some filesystems cannot do WAL and SQLite keeps the rollback journal: also crash-safe,
    // only slower, so the mode it reports back is not checked.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Take the exclusive lock now rather than at the first save, so a second process fails
    // at start-up with a clear message.
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
    Ok(())
}

/// Creates or upgrades the schema, tracked in `PRAGMA user_version`.
fn migrate(conn: &Connection, db_path: &Path) -> Result<(), OpenError> {
    let db_err = |source| OpenError::Db {
        path: db_path.to_path_buf(),
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
    // One transaction for all steps: a crash mid-migration leaves the old version intact.
    let mut steps = String::from("BEGIN IMMEDIATE;");
    if found < 1 {
        steps.push_str(
            "CREATE TABLE snapshots (
                 id          INTEGER PRIMARY KEY AUTOINCREMENT,
                 camera      TEXT    NOT NULL,
                 taken_at_us INTEGER NOT NULL,
                 bytes       INTEGER NOT NULL,
                 width       INTEGER NOT NULL,
                 height      INTEGER NOT NULL,
                 state       INTEGER NOT NULL
             );
             CREATE INDEX snapshots_by_camera ON snapshots (camera, id);",
        );
    }
    // Future versions: `if found < 2 { steps.push_str("ALTER TABLE …;") }`.
    steps.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"));
    conn.execute_batch(&steps).map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK;");
        db_err(e)
    })
}

/// Reads a row of `id, camera, taken_at_us, bytes, width, height`, re-validating what the
/// database file could hold wrongly (it is a file on disk, not a trusted source).
fn row_to_snapshot(r: &rusqlite::Row<'_>) -> rusqlite::Result<Snapshot> {
    fn bad(col: usize, what: &str) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Integer,
            format!("invalid {what} in snapshot index").into(),
        )
    }
    let id: i64 = r.get(0)?;
    let camera: String = r.get(1)?;
    let t: i64 = r.get(2)?;
    let bytes: i64 = r.get(3)?;
    Ok(Snapshot {
        id: SnapshotId::new(id).ok_or_else(|| bad(0, "id"))?,
        camera: CameraId::new(&camera).map_err(|_| bad(1, "camera id"))?,
        taken_at_us: u64::try_from(t)
            .ok()
            .filter(|t| *t <= MAX_TAKEN_AT_US)
            .ok_or_else(|| bad(2, "time"))?,
        bytes: u64::try_from(bytes).map_err(|_| bad(3, "size"))?,
        width: r.get(4)?,
        height: r.get(5)?,
    })
}

/// `fsync` a directory so that entries created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IoError::new("sync directory", dir, e))
}

/// Creates `dir` (under `root`) and, if anything was created, syncs each parent so the new
/// directory entries survive a crash along with the file about to be written in them.
fn create_dir_durable(root: &Path, dir: &Path) -> Result<(), IoError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| IoError::new("create directory", dir, e))?;
    let mut p = dir.parent();
    while let Some(parent) = p {
        sync_dir(parent)?;
        if parent == root {
            break;
        }
        p = parent.parent();
    }
    Ok(())
}

//! Reconciliation: makes the files under `snapshots/` and the index rows agree again after a
//! crash, a lost or restored database, or hands in the data directory.
//!
//! The rules, and why each is safe, are in the crate docs ("Crash safety"). This module must
//! never delete a file that is not one of our own temp files: anything it cannot index is
//! moved to `lost+found`. It never follows a symbolic link (entries are classified with
//! `DirEntry::file_type`, which does not follow links; a link is moved aside as an entry).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use espcam_proto::CameraId;
use rusqlite::params;

use crate::error::{IoError, ReconcileError};
use crate::layout::{self, LOST_FOUND_DIR, SNAPSHOTS_DIR};
use crate::{COMMITTED, MAX_SNAPSHOT_BYTES, PENDING, Store};

/// What one reconciliation found and repaired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Committed rows whose file was missing: removed from the index.
    pub rows_without_file: usize,
    /// Committed rows whose file had the wrong size: file moved to `lost+found`, row removed.
    pub rows_with_bad_file: usize,
    /// Saves interrupted before their file was published: row removed.
    pub pending_dropped: usize,
    /// Saves interrupted after their file was published: committed.
    pub pending_completed: usize,
    /// Complete JPEG files without a row: indexed again under their id.
    pub files_reindexed: usize,
    /// Entries that are not ours or not indexable: moved to `lost+found`.
    pub moved_aside: usize,
    /// Temporary files of interrupted saves: deleted.
    pub temp_files_removed: usize,
    /// Empty camera or day directories: removed.
    pub empty_dirs_removed: usize,
}

impl ReconcileReport {
    /// Whether nothing needed repair (empty directories left by deletes do not count).
    pub fn is_clean(&self) -> bool {
        *self
            == Self {
                empty_dirs_removed: self.empty_dirs_removed,
                ..Self::default()
            }
    }
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows without file removed, {} rows with a bad file removed, {} interrupted saves \
             dropped, {} interrupted saves completed, {} files re-indexed, {} entries moved to \
             lost+found, {} temp files removed, {} empty directories removed",
            self.rows_without_file,
            self.rows_with_bad_file,
            self.pending_dropped,
            self.pending_completed,
            self.files_reindexed,
            self.moved_aside,
            self.temp_files_removed,
            self.empty_dirs_removed
        )
    }
}

/// An index row as reconciliation sees it.
struct Row {
    camera: String,
    taken_at_us: i64,
    bytes: i64,
    state: i64,
    /// Whether a file under `snapshots/` matched this row.
    matched: bool,
}

struct Run<'a> {
    store: &'a Store,
    /// Every id in the index (including rows re-created during this run), so a file can only
    /// claim a free id and a second file with a taken id is moved aside.
    rows: HashMap<i64, Row>,
    report: ReconcileReport,
    /// Distinguishes entries moved to `lost+found` within the same second.
    moved: u64,
}

/// Runs one reconciliation. The caller holds the store's gate exclusively.
pub(crate) fn run(store: &Store) -> Result<ReconcileReport, ReconcileError> {
    let rows = {
        let conn = store.conn();
        let mut stmt =
            conn.prepare("SELECT id, camera, taken_at_us, bytes, state FROM snapshots")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Row {
                    camera: r.get(1)?,
                    taken_at_us: r.get(2)?,
                    bytes: r.get(3)?,
                    state: r.get(4)?,
                    matched: false,
                },
            ))
        })?;
        rows.collect::<Result<HashMap<_, _>, _>>()?
    };
    let mut run = Run {
        store,
        rows,
        report: ReconcileReport::default(),
        moved: 0,
    };
    let snapshots = store.root.join(SNAPSHOTS_DIR);
    fs::create_dir_all(&snapshots).map_err(|e| IoError::new("create directory", &snapshots, e))?;
    for entry in read_dir(&snapshots)? {
        let (path, name, ft) = entry;
        match name.as_deref().map(CameraId::new) {
            Some(Ok(camera)) if ft.is_dir() => {
                run.camera_dir(&path, &camera)?;
                run.remove_if_empty(&path);
            }
            _ => run.move_aside(&path)?,
        }
    }
    // Rows no file claimed.
    let conn = store.conn();
    for (id, row) in run.rows.iter().filter(|(_, r)| !r.matched) {
        conn.execute("DELETE FROM snapshots WHERE id = ?1", params![id])?;
        if row.state == COMMITTED {
            run.report.rows_without_file += 1;
        } else {
            run.report.pending_dropped += 1;
        }
    }
    Ok(run.report)
}

/// Lists a directory as `(path, UTF-8 name if it is one, type)` without following links.
fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, Option<String>, fs::FileType)>, IoError> {
    let err = |e| IoError::new("list directory", dir, e);
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let ft = entry.file_type().map_err(err)?;
        out.push((entry.path(), entry.file_name().into_string().ok(), ft));
    }
    // Deterministic order makes reports and lost+found names reproducible.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl Run<'_> {
    fn camera_dir(&mut self, dir: &Path, camera: &CameraId) -> Result<(), ReconcileError> {
        for (path, name, ft) in read_dir(dir)? {
            match name.as_deref().and_then(layout::parse_day_dir) {
                Some(day) if ft.is_dir() => {
                    self.day_dir(&path, camera, day)?;
                    self.remove_if_empty(&path);
                }
                _ => self.move_aside(&path)?,
            }
        }
        Ok(())
    }

    fn day_dir(&mut self, dir: &Path, camera: &CameraId, day: u32) -> Result<(), ReconcileError> {
        for (path, name, ft) in read_dir(dir)? {
            let Some(name) = name.filter(|_| ft.is_file()) else {
                self.move_aside(&path)?;
                continue;
            };
            if layout::is_temp_name(&name) {
                fs::remove_file(&path).map_err(|e| IoError::new("remove temp file", &path, e))?;
                self.report.temp_files_removed += 1;
                continue;
            }
            match layout::parse_file_name(&name) {
                Some((id, t)) if layout::day_number(t) == day => {
                    self.snapshot_file(&path, camera, id, t)?;
                }
                _ => self.move_aside(&path)?,
            }
        }
        Ok(())
    }

    /// A file named like a snapshot, in the right camera and day directory.
    fn snapshot_file(
        &mut self,
        path: &Path,
        camera: &CameraId,
        id: i64,
        t: u64,
    ) -> Result<(), ReconcileError> {
        let t_db = t as i64; // parse_file_name caps t at MAX_TAKEN_AT_US < i64::MAX
        let (state, bytes) = match self.rows.get_mut(&id) {
            Some(row)
                if !row.matched && row.camera == camera.as_str() && row.taken_at_us == t_db =>
            {
                row.matched = true;
                (row.state, row.bytes)
            }
            // The id belongs to another snapshot (or another file already claimed it).
            Some(_) => return self.move_aside(path),
            None => return self.reindex(path, camera, id, t),
        };
        if state == COMMITTED {
            let len = fs::metadata(path)
                .map_err(|e| IoError::new("read metadata of", path, e))?
                .len();
            // Committed files are not re-read at every start (that would read the whole
            // store); a size check catches truncation by outside hands.
            if i64::try_from(len).ok() != Some(bytes) {
                self.drop_row_and_move_aside(path, id)?;
                self.report.rows_with_bad_file += 1;
            }
            return Ok(());
        }
        // A pending row whose file was published: the save got past its rename.
        let complete = read_complete_jpeg(path)?.is_some_and(|(len, _, _)| len as i64 == bytes);
        if complete && state == PENDING {
            self.store.conn().execute(
                "UPDATE snapshots SET state = ?1 WHERE id = ?2",
                params![COMMITTED, id],
            )?;
            self.report.pending_completed += 1;
        } else {
            self.drop_row_and_move_aside(path, id)?;
            self.report.pending_dropped += 1;
        }
        Ok(())
    }

    /// A row whose file cannot be trusted: the file goes to `lost+found` (never deleted: it
    /// may be someone's only copy), then the row goes.
    fn drop_row_and_move_aside(&mut self, path: &Path, id: i64) -> Result<(), ReconcileError> {
        self.move_aside(path)?;
        self.store
            .conn()
            .execute("DELETE FROM snapshots WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// A snapshot file whose id has no row: index it again if it is one complete JPEG.
    fn reindex(
        &mut self,
        path: &Path,
        camera: &CameraId,
        id: i64,
        t: u64,
    ) -> Result<(), ReconcileError> {
        let Some((len, width, height)) = read_complete_jpeg(path)? else {
            return self.move_aside(path);
        };
        let t_db = t as i64;
        // An explicit id above the AUTOINCREMENT counter raises the counter, so new saves
        // never collide with re-indexed files.
        self.store.conn().execute(
            "INSERT INTO snapshots (id, camera, taken_at_us, bytes, width, height, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                camera.as_str(),
                t_db,
                len as i64,
                width,
                height,
                COMMITTED
            ],
        )?;
        self.rows.insert(
            id,
            Row {
                camera: camera.as_str().to_string(),
                taken_at_us: t_db,
                bytes: len as i64,
                state: COMMITTED,
                matched: true,
            },
        );
        self.report.files_reindexed += 1;
        Ok(())
    }

    /// Moves an entry we cannot index to `<data>/lost+found/<time>-<n>-<flattened path>`.
    fn move_aside(&mut self, path: &Path) -> Result<(), ReconcileError> {
        let lost = self.store.root.join(LOST_FOUND_DIR);
        fs::create_dir_all(&lost).map_err(|e| IoError::new("create directory", &lost, e))?;
        let rel = path.strip_prefix(&self.store.root).unwrap_or(path);
        let flat: String = rel
            .to_string_lossy()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(120)
            .collect();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let dest = loop {
            self.moved += 1;
            let dest = lost.join(format!("{secs}-{}-{flat}", self.moved));
            if !dest.exists() {
                break dest;
            }
        };
        fs::rename(path, &dest).map_err(|e| IoError::new("move aside", path, e))?;
        self.report.moved_aside += 1;
        Ok(())
    }

    /// Removes `dir` if it is empty (deletes leave empty day directories behind; they are
    /// only removed here, under the exclusive gate, so a concurrent save never loses the
    /// directory it just created).
    fn remove_if_empty(&mut self, dir: &Path) {
        if fs::remove_dir(dir).is_ok() {
            self.report.empty_dirs_removed += 1;
        }
    }
}

/// Reads `path` and returns `(len, width, height)` if it is exactly one complete JPEG.
fn read_complete_jpeg(path: &Path) -> Result<Option<(usize, u16, u16)>, IoError> {
    let len = fs::metadata(path)
        .map_err(|e| IoError::new("read metadata of", path, e))?
        .len();
    if len > MAX_SNAPSHOT_BYTES as u64 {
        return Ok(None);
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoError::new("read", path, e)),
    };
    Ok(espcam_proto::jpeg::scan(&bytes)
        .ok()
        .filter(|info| info.len == bytes.len())
        .map(|info| (info.len, info.width, info.height)))
}

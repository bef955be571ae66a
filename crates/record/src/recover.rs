//! Start-up reconciliation: makes segment files and database rows agree after a crash, a
//! lost database or hands in the data directory, before any writer or reader runs.
//!
//! - An `open` row (a segment being written when the process died): its file is recovered up
//!   to its last whole frame (torn tail cut, trailer written) and the row closed; a file with
//!   no whole frame is removed with its row; a row without a file is removed.
//! - A `closed` row whose file is gone: row removed.
//! - A segment file without a row: recovered and indexed again under the id in its name if
//!   that id is free, otherwise moved to `recordings/lost+found`.
//! - Anything else under `recordings/`: moved to `lost+found`.
//!
//! This module must never delete a file that could hold a frame someone was told was
//! durable: it deletes only segment files with no whole frame.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use espcam_proto::CameraId;

use crate::error::IoError;
use crate::segment;
use crate::writer::info_of;
use crate::{Inner, LOST_FOUND_DIR, SegmentId, SegmentInfo, db, parse_file_name, relative_path};

/// What start-up recovery found and repaired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments that were open at the crash and were recovered.
    pub segments_recovered: usize,
    /// Frames those segments hold now.
    pub frames_recovered: u64,
    /// Bytes cut off their ends (torn frames, partial trailers).
    pub bytes_truncated: u64,
    /// Open segments with no whole frame: file and row removed.
    pub empty_removed: usize,
    /// Rows whose file was missing: removed.
    pub rows_without_file: usize,
    /// Segment files without a row: indexed again.
    pub files_reindexed: usize,
    /// Entries that could not be indexed: moved to `lost+found`.
    pub moved_aside: usize,
}

impl RecoveryReport {
    /// Whether nothing needed repair.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} open segments recovered ({} frames, {} torn bytes cut), {} empty segments removed, \
             {} rows without file removed, {} files re-indexed, {} entries moved to lost+found",
            self.segments_recovered,
            self.frames_recovered,
            self.bytes_truncated,
            self.empty_removed,
            self.rows_without_file,
            self.files_reindexed,
            self.moved_aside
        )
    }
}

pub(crate) enum Failure {
    Io(IoError),
    Db(rusqlite::Error),
}

impl From<IoError> for Failure {
    fn from(e: IoError) -> Self {
        Self::Io(e)
    }
}
impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e)
    }
}

struct Run<'a> {
    inner: &'a Inner,
    report: RecoveryReport,
    moved: u64,
}

pub(crate) fn run(inner: &Inner) -> Result<RecoveryReport, Failure> {
    let rows: HashMap<SegmentId, SegmentInfo> = db::all(&inner.conn())?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut run = Run {
        inner,
        report: RecoveryReport::default(),
        moved: 0,
    };
    // Files on disk, by id.
    let mut files: HashMap<SegmentId, (CameraId, u64, PathBuf)> = HashMap::new();
    for cam_entry in read_dir(&inner.dir)? {
        let (name, path, is_dir) = cam_entry;
        if name == LOST_FOUND_DIR {
            continue;
        }
        let Some(camera) = is_dir.then(|| CameraId::new(&name).ok()).flatten() else {
            run.move_aside(&path)?;
            continue;
        };
        for (fname, fpath, fdir) in read_dir(&path)? {
            match (!fdir).then(|| parse_file_name(&fname)).flatten() {
                Some((id, start)) if !files.contains_key(&id) => {
                    files.insert(id, (camera.clone(), start, fpath));
                }
                _ => run.move_aside(&fpath)?,
            }
        }
    }
    let sync = inner.sync();
    for (id, row) in &rows {
        let path = inner.segment_path(&row.camera, *id, row.start_us);
        let on_disk = files.get(id).is_some_and(|(_, _, p)| *p == path);
        if on_disk {
            files.remove(id);
        }
        match (row.open, on_disk) {
            (false, true) => {}
            (_, false) => {
                db::delete(&inner.conn(), *id)?;
                run.report.rows_without_file += 1;
            }
            (true, true) => match segment::recover(&path, sync, &None)? {
                Some(r) if !r.entries.is_empty() && r.header.id == id.0 => {
                    let info = info_of(*id, &row.camera, row.start_us, &r.entries, r.len);
                    db::close(
                        &inner.conn(),
                        &info,
                        &relative_path(&row.camera, *id, row.start_us),
                    )?;
                    run.report.segments_recovered += 1;
                    run.report.frames_recovered += r.entries.len() as u64;
                    run.report.bytes_truncated += r.truncated;
                }
                _ => {
                    fs::remove_file(&path)
                        .map_err(|e| IoError::new("remove empty segment", &path, e))?;
                    db::delete(&inner.conn(), *id)?;
                    run.report.empty_removed += 1;
                }
            },
        }
    }
    // Files whose row is missing (a lost or replaced database).
    let mut orphans: Vec<_> = files.into_iter().collect();
    orphans.sort_by_key(|(id, _)| *id);
    for (id, (camera, start, path)) in orphans {
        let recovered = if rows.contains_key(&id) {
            None
        } else {
            segment::recover(&path, sync, &None)?
        };
        match recovered {
            Some(r)
                if !r.entries.is_empty() && r.header.id == id.0 && r.header.start_us == start =>
            {
                let info = info_of(id, &camera, start, &r.entries, r.len);
                db::insert_closed(&inner.conn(), &info, &relative_path(&camera, id, start))?;
                run.report.files_reindexed += 1;
            }
            _ => run.move_aside(&path)?,
        }
    }
    if sync {
        segment::sync_dir(&inner.dir)?;
    }
    Ok(run.report)
}

impl Run<'_> {
    fn move_aside(&mut self, path: &Path) -> Result<(), IoError> {
        let lf = self.inner.dir.join(LOST_FOUND_DIR);
        fs::create_dir_all(&lf).map_err(|e| IoError::new("create directory", &lf, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.moved += 1;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let to = lf.join(format!("{secs}-{}-{name}", self.moved));
        fs::rename(path, &to).map_err(|e| IoError::new("move aside", path, e))?;
        self.report.moved_aside += 1;
        Ok(())
    }
}

/// `(name, path, is_dir)` of each entry (symbolic links count as files: never followed).
fn read_dir(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, IoError> {
    let mut out = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| IoError::new("list directory", dir, e))?;
    for e in rd {
        let e = e.map_err(|e| IoError::new("list directory", dir, e))?;
        let ft = e
            .file_type()
            .map_err(|err| IoError::new("stat", e.path(), err))?;
        out.push((
            e.file_name().to_string_lossy().into_owned(),
            e.path(),
            ft.is_dir(),
        ));
    }
    out.sort();
    Ok(out)
}

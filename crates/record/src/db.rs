//! The recordings database: one row per segment and the retention totals, in its own SQLite
//! file (`recordings.sqlite`, WAL). This module holds every SQL statement; it must never
//! touch a segment file.

use std::path::Path;
use std::time::Duration;

use espcam_proto::CameraId;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::OpenError;
use crate::{SegmentId, SegmentInfo};

const SCHEMA_VERSION: i64 = 1;

/// `state` values. An open row belongs to the segment a writer is filling (or was filling
/// when the process died); recovery at start-up closes or removes every open row.
pub(crate) const OPEN: i64 = 0;
pub(crate) const CLOSED: i64 = 1;

/// Opens and configures the database: exclusive locking (one process per data directory),
/// WAL, full sync on commit (a segment row, once committed, survives power loss).
pub(crate) fn open(db_path: &Path, root: &Path, sync: bool) -> Result<Connection, OpenError> {
    let db_err = |source| OpenError::Db {
        path: db_path.to_path_buf(),
        source,
    };
    let conn = Connection::open(db_path).map_err(db_err)?;
    let configure = || -> rusqlite::Result<()> {
        conn.busy_timeout(Duration::from_millis(250))?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", if sync { "FULL" } else { "OFF" })?;
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
        Ok(())
    };
    configure().map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) => OpenError::InUse(root.to_path_buf()),
        _ => db_err(e),
    })?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE segments (
                 id         INTEGER PRIMARY KEY AUTOINCREMENT,
                 camera     TEXT    NOT NULL,
                 start_us   INTEGER NOT NULL,
                 end_us     INTEGER NOT NULL,
                 frames     INTEGER NOT NULL,
                 bytes      INTEGER NOT NULL,
                 width      INTEGER NOT NULL,
                 height     INTEGER NOT NULL,
                 mixed_dims INTEGER NOT NULL,
                 path       TEXT    NOT NULL,
                 state      INTEGER NOT NULL
             );
             CREATE INDEX segments_by_camera_start ON segments (camera, start_us);
             CREATE INDEX segments_by_start ON segments (start_us);
             CREATE TABLE retention (
                 camera           TEXT PRIMARY KEY,
                 deleted_segments INTEGER NOT NULL,
                 deleted_bytes    INTEGER NOT NULL,
                 last_deleted_us  INTEGER NOT NULL
             );
             PRAGMA user_version = 1;
             COMMIT;",
        )
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK;");
            db_err(e)
        })?;
    }
    Ok(conn)
}

/// Reserves a row for a segment about to be created.
/// The path column is filled in at close (the file name needs the id this assigns).
pub(crate) fn insert_open(
    conn: &Connection,
    camera: &CameraId,
    start_us: u64,
) -> rusqlite::Result<SegmentId> {
    conn.prepare_cached(
        "INSERT INTO segments (camera, start_us, end_us, frames, bytes, width, height,
                               mixed_dims, path, state)
         VALUES (?1, ?2, ?2, 0, 0, 0, 0, 0, '', ?3)",
    )?
    .execute(params![camera.as_str(), start_us as i64, OPEN])?;
    Ok(SegmentId(conn.last_insert_rowid()))
}

/// Inserts a closed segment under a given id (re-indexing a file whose row was lost).
pub(crate) fn insert_closed(
    conn: &Connection,
    s: &SegmentInfo,
    path: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO segments (id, camera, start_us, end_us, frames, bytes, width, height,
                               mixed_dims, path, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            s.id.0,
            s.camera.as_str(),
            s.start_us as i64,
            s.end_us as i64,
            s.frames,
            s.bytes as i64,
            s.width,
            s.height,
            !s.uniform_dims,
            path,
            CLOSED
        ],
    )?;
    Ok(())
}

/// Marks a segment closed with its final figures.
pub(crate) fn close(conn: &Connection, s: &SegmentInfo, path: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE segments SET start_us = ?2, end_us = ?3, frames = ?4, bytes = ?5, width = ?6,
                height = ?7, mixed_dims = ?8, state = ?9, path = ?10
         WHERE id = ?1",
    )?
    .execute(params![
        s.id.0,
        s.start_us as i64,
        s.end_us as i64,
        s.frames,
        s.bytes as i64,
        s.width,
        s.height,
        !s.uniform_dims,
        CLOSED,
        path
    ])?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, id: SegmentId) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM segments WHERE id = ?1")?
        .execute(params![id.0])?;
    Ok(())
}

/// Adds a deletion to the camera's retention totals.
pub(crate) fn note_deleted(
    conn: &Connection,
    camera: &CameraId,
    bytes: u64,
    now_us: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO retention (camera, deleted_segments, deleted_bytes, last_deleted_us)
         VALUES (?1, 1, ?2, ?3)
         ON CONFLICT (camera) DO UPDATE SET deleted_segments = deleted_segments + 1,
             deleted_bytes = deleted_bytes + ?2, last_deleted_us = ?3",
    )?
    .execute(params![camera.as_str(), bytes as i64, now_us as i64])?;
    Ok(())
}

/// Retention totals per camera: (segments deleted, bytes deleted, time of the last deletion).
pub(crate) fn retention_totals(
    conn: &Connection,
) -> rusqlite::Result<Vec<(String, u64, u64, u64)>> {
    let mut st = conn.prepare_cached(
        "SELECT camera, deleted_segments, deleted_bytes, last_deleted_us FROM retention ORDER BY camera",
    )?;
    st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?.max(0) as u64,
            r.get::<_, i64>(2)?.max(0) as u64,
            r.get::<_, i64>(3)?.max(0) as u64,
        ))
    })?
    .collect()
}

const COLUMNS: &str =
    "id, camera, start_us, end_us, frames, bytes, width, height, mixed_dims, state";

fn bad(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Integer,
        format!("invalid {what} in recordings database").into(),
    )
}

/// Reads a row of [`COLUMNS`], re-validating what a file on disk could hold wrongly.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentInfo> {
    let camera: String = r.get(1)?;
    let u = |i: usize, what: &str| -> rusqlite::Result<u64> {
        u64::try_from(r.get::<_, i64>(i)?).map_err(|_| bad(i, what))
    };
    Ok(SegmentInfo {
        id: SegmentId(r.get(0)?),
        camera: CameraId::new(&camera).map_err(|_| bad(1, "camera id"))?,
        start_us: u(2, "start")?,
        end_us: u(3, "end")?,
        frames: r.get(4)?,
        bytes: u(5, "size")?,
        width: r.get(6)?,
        height: r.get(7)?,
        uniform_dims: !r.get::<_, bool>(8)?,
        open: r.get::<_, i64>(9)? == OPEN,
    })
}

/// Every row (open and closed), for start-up reconciliation.
pub(crate) fn all(conn: &Connection) -> rusqlite::Result<Vec<SegmentInfo>> {
    let mut st = conn.prepare(&format!("SELECT {COLUMNS} FROM segments ORDER BY id"))?;
    st.query_map([], row)?.collect()
}

/// Closed segments, oldest first (for retention).
pub(crate) fn all_closed(conn: &Connection) -> rusqlite::Result<Vec<SegmentInfo>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM segments WHERE state = {CLOSED} ORDER BY start_us, id"
    ))?;
    st.query_map([], row)?.collect()
}

/// Closed segments of `camera` that overlap `[from, to]`, oldest first.
pub(crate) fn overlapping(
    conn: &Connection,
    camera: &CameraId,
    from_us: u64,
    to_us: u64,
) -> rusqlite::Result<Vec<SegmentInfo>> {
    // Segments are at most a few minutes long, so "starts before `to`, ends after `from`"
    // uses the (camera, start_us) index: the end condition filters what the index found.
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM segments
         WHERE camera = ?1 AND state = {CLOSED} AND start_us <= ?3 AND end_us >= ?2
         ORDER BY start_us, id"
    ))?;
    st.query_map(params![camera.as_str(), clamp(from_us), clamp(to_us)], row)?
        .collect()
}

/// The closed segment of `camera` starting last at or before `t`.
pub(crate) fn at_or_before(
    conn: &Connection,
    camera: &CameraId,
    t_us: u64,
) -> rusqlite::Result<Option<SegmentInfo>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM segments
         WHERE camera = ?1 AND state = {CLOSED} AND start_us <= ?2
         ORDER BY start_us DESC, id DESC LIMIT 1"
    ))?
    .query_row(params![camera.as_str(), clamp(t_us)], row)
    .optional()
}

/// The closed segment of `camera` that follows `(start_us, id)` in time order.
pub(crate) fn next_after(
    conn: &Connection,
    camera: &CameraId,
    start_us: u64,
    id: SegmentId,
) -> rusqlite::Result<Option<SegmentInfo>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM segments
         WHERE camera = ?1 AND state = {CLOSED}
           AND (start_us > ?2 OR (start_us = ?2 AND id > ?3))
         ORDER BY start_us, id LIMIT 1"
    ))?
    .query_row(params![camera.as_str(), clamp(start_us), id.0], row)
    .optional()
}

/// One row by id.
pub(crate) fn get(conn: &Connection, id: SegmentId) -> rusqlite::Result<Option<SegmentInfo>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM segments WHERE id = ?1"))?
        .query_row(params![id.0], row)
        .optional()
}

/// Per camera: closed segments, frames, bytes, oldest start, newest end.
/// (camera, segments, frames, bytes, oldest start, newest end).
pub(crate) type UsageRow = (String, u64, u64, u64, u64, u64);

pub(crate) fn usage(conn: &Connection) -> rusqlite::Result<Vec<UsageRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT camera, COUNT(*), SUM(frames), SUM(bytes), MIN(start_us), MAX(end_us)
         FROM segments WHERE state = {CLOSED} GROUP BY camera ORDER BY camera"
    ))?;
    st.query_map([], |r| {
        let g = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
        Ok((r.get(0)?, g(1)?, g(2)?, g(3)?, g(4)?, g(5)?))
    })?
    .collect()
}

fn clamp(t: u64) -> i64 {
    t.min(i64::MAX as u64) as i64
}

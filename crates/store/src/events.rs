//! Motion events: one row per event (camera, start, end, peak score, zones hit) with its
//! thumbnail (the JPEG of the peak frame) in the same row, in `events.sqlite` beside the
//! snapshot index.
//!
//! Why its own file rather than a table in the snapshot index: the snapshot index is opened
//! in exclusive locking mode and guarded by the reconciliation gate (files and rows must
//! agree); events have no files to reconcile, are written by a different thread (the motion
//! analyser) at a different rhythm, and are pruned by their own retention. A separate
//! database keeps one from ever waiting on the other's fsync or gate, and keeps the snapshot
//! schema (and its migrations) untouched. Why the thumbnail in the row: a frame is tens of
//! kilobytes, the row and its picture then appear and disappear in one transaction, and
//! there is nothing on disk to reconcile after a crash.
//!
//! Synchronous and thread-safe like [`crate::Store`]: call it from a blocking thread. It must
//! never build a path from a request string (the only path is `<data>/events.sqlite`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The events database file under the data directory.
pub const EVENTS_DB_FILE: &str = "events.sqlite";
/// Rows returned when a query names no limit.
pub const EVENTS_DEFAULT_LIMIT: u32 = 50;
/// Largest limit an [`EventQuery`] accepts.
pub const EVENTS_MAX_LIMIT: u32 = 500;
/// Largest thumbnail kept, bytes; a bigger peak frame is stored without a thumbnail.
pub const MAX_THUMB_BYTES: usize = 4 * 1024 * 1024;

const SCHEMA_VERSION: i64 = 1;

/// Why an events operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// SQLite refused (corrupt file, full disk, ...).
    #[error("events database {}: {action} failed: {source}", path.display())]
    Db {
        /// What was being done.
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer espcam.
    #[error("events database schema version {found} is newer than this hub supports ({supported})")]
    NewerSchema {
        /// Version found.
        found: i64,
        /// Version this code knows.
        supported: i64,
    },
    /// A query limit out of range.
    #[error("limit {0} out of range 1..={EVENTS_MAX_LIMIT}")]
    Limit(u32),
}

/// One stored event, as listed (without the thumbnail bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Row id, ≥ 1, never reused.
    pub id: i64,
    /// Camera id.
    pub camera: String,
    /// When motion started (Unix ms: the first triggering frame).
    pub started_ms: i64,
    /// When the end was decided (Unix ms); `None` while the event is running.
    pub ended_ms: Option<i64>,
    /// Last frame with motion (Unix ms), known at the end.
    pub last_motion_ms: Option<i64>,
    /// Highest score (changed fraction of the zone, 0..=1).
    pub peak_score: f32,
    /// When the peak frame was seen (Unix ms).
    pub peak_ms: i64,
    /// Names of the zones that triggered (empty without zones).
    pub zones: Vec<String>,
    /// Size of the thumbnail JPEG, 0 for none.
    pub thumb_bytes: usize,
}

/// An event that just started.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Camera id.
    pub camera: &'a str,
    /// First triggering frame (Unix ms).
    pub started_ms: i64,
    /// Peak so far.
    pub peak_score: f32,
    /// Peak frame time so far.
    pub peak_ms: i64,
    /// Zones so far.
    pub zones: &'a [String],
    /// Peak frame so far.
    pub thumb: Option<&'a [u8]>,
}

/// An event that ended.
#[derive(Debug, Clone)]
pub struct EventEnd<'a> {
    /// When the end was decided.
    pub ended_ms: i64,
    /// Last triggering frame.
    pub last_motion_ms: i64,
    /// Highest score.
    pub peak_score: f32,
    /// When the peak frame was seen.
    pub peak_ms: i64,
    /// Every zone that triggered.
    pub zones: &'a [String],
    /// The peak frame (replaces the one stored at the start when given).
    pub thumb: Option<&'a [u8]>,
}

/// Which events to list: newest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this camera.
    pub camera: Option<String>,
    /// Events that end at or after this time (Unix ms); running events always qualify.
    pub from_ms: Option<i64>,
    /// Events that start before this time (Unix ms).
    pub to_ms: Option<i64>,
    /// At most this many (default [`EVENTS_DEFAULT_LIMIT`]).
    pub limit: Option<u32>,
}

/// The events database. See the module docs.
#[derive(Debug)]
pub struct EventStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl EventStore {
    /// Opens (creating if needed) `<data_dir>/events.sqlite`. Events left running by a
    /// crash or stop are closed at their last known peak time, so none stays open forever.
    pub fn open(data_dir: &Path) -> Result<Self, EventsError> {
        let path = data_dir.join(EVENTS_DB_FILE);
        let err = |action| {
            let path = path.clone();
            move |source| EventsError::Db {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(data_dir).map_err(|e| EventsError::Db {
            action: "create the data directory",
            path: path.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let conn = Connection::open(&path).map_err(err("open"))?;
        conn.busy_timeout(Duration::from_millis(250))
            .map_err(err("configure"))?;
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err("configure"))?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err("read the schema version"))?;
        if found > SCHEMA_VERSION {
            return Err(EventsError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 camera TEXT NOT NULL,
                 started_ms INTEGER NOT NULL,
                 ended_ms INTEGER,
                 last_motion_ms INTEGER,
                 peak_score REAL NOT NULL,
                 peak_ms INTEGER NOT NULL,
                 zones TEXT NOT NULL,
                 thumb BLOB
             );
             CREATE INDEX IF NOT EXISTS events_camera_start ON events (camera, started_ms);
             CREATE INDEX IF NOT EXISTS events_start ON events (started_ms);
             PRAGMA user_version = 1;
             UPDATE events SET ended_ms = peak_ms, last_motion_ms = peak_ms
                 WHERE ended_ms IS NULL;",
        )
        .map_err(err("create the schema"))?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> EventsError + '_ {
        move |source| EventsError::Db {
            action,
            path: self.path.clone(),
            source,
        }
    }

    /// Records a started event; returns its id.
    pub fn start(&self, e: &NewEvent<'_>) -> Result<i64, EventsError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO events (camera, started_ms, peak_score, peak_ms, zones, thumb)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.camera,
                e.started_ms,
                f64::from(e.peak_score),
                e.peak_ms,
                join_zones(e.zones),
                e.thumb.filter(|t| t.len() <= MAX_THUMB_BYTES)
            ],
        )
        .map_err(self.err("insert an event"))?;
        Ok(conn.last_insert_rowid())
    }

    /// Records the end of event `id`. `false` when it no longer exists (deleted meanwhile).
    pub fn end(&self, id: i64, e: &EventEnd<'_>) -> Result<bool, EventsError> {
        let thumb = e.thumb.filter(|t| t.len() <= MAX_THUMB_BYTES);
        let n = self
            .conn()
            .execute(
                "UPDATE events SET ended_ms = ?2, last_motion_ms = ?3, peak_score = ?4,
                     peak_ms = ?5, zones = ?6, thumb = COALESCE(?7, thumb)
                 WHERE id = ?1",
                params![
                    id,
                    e.ended_ms,
                    e.last_motion_ms,
                    f64::from(e.peak_score),
                    e.peak_ms,
                    join_zones(e.zones),
                    thumb
                ],
            )
            .map_err(self.err("end an event"))?;
        Ok(n == 1)
    }

    /// Events matching `q`, newest first.
    pub fn list(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, EventsError> {
        let limit = q.limit.unwrap_or(EVENTS_DEFAULT_LIMIT);
        if !(1..=EVENTS_MAX_LIMIT).contains(&limit) {
            return Err(EventsError::Limit(limit));
        }
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events
                 WHERE (?1 IS NULL OR camera = ?1)
                   AND (?2 IS NULL OR ended_ms IS NULL OR ended_ms >= ?2)
                   AND (?3 IS NULL OR started_ms < ?3)
                 ORDER BY started_ms DESC, id DESC LIMIT ?4"
            ))
            .map_err(self.err("list events"))?;
        let rows = stmt
            .query_map(
                params![q.camera, q.from_ms, q.to_ms, i64::from(limit)],
                row_to_event,
            )
            .map_err(self.err("list events"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("list events"))
    }

    /// One event.
    pub fn get(&self, id: i64) -> Result<Option<StoredEvent>, EventsError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM events WHERE id = ?1"),
                [id],
                row_to_event,
            )
            .optional()
            .map_err(self.err("read an event"))
    }

    /// The event's thumbnail JPEG (`None`: no such event or no thumbnail).
    pub fn thumb(&self, id: i64) -> Result<Option<Vec<u8>>, EventsError> {
        let t: Option<Option<Vec<u8>>> = self
            .conn()
            .query_row("SELECT thumb FROM events WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(self.err("read a thumbnail"))?;
        Ok(t.flatten())
    }

    /// Deletes an event. `false` when there was none.
    pub fn delete(&self, id: i64) -> Result<bool, EventsError> {
        let n = self
            .conn()
            .execute("DELETE FROM events WHERE id = ?1", [id])
            .map_err(self.err("delete an event"))?;
        Ok(n == 1)
    }

    /// Retention: deletes finished events that started before `now_ms - max_age_ms`, then
    /// the oldest finished ones beyond `max_count`. Returns how many went.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        max_age_ms: Option<i64>,
        max_count: Option<u32>,
    ) -> Result<usize, EventsError> {
        let conn = self.conn();
        let mut n = 0;
        if let Some(age) = max_age_ms {
            n += conn
                .execute(
                    "DELETE FROM events WHERE ended_ms IS NOT NULL AND started_ms < ?1",
                    [now_ms.saturating_sub(age)],
                )
                .map_err(self.err("apply retention"))?;
        }
        if let Some(count) = max_count {
            n += conn
                .execute(
                    "DELETE FROM events WHERE ended_ms IS NOT NULL AND id NOT IN
                         (SELECT id FROM events ORDER BY started_ms DESC, id DESC LIMIT ?1)",
                    [i64::from(count)],
                )
                .map_err(self.err("apply retention"))?;
        }
        Ok(n)
    }
}

const COLUMNS: &str = "id, camera, started_ms, ended_ms, last_motion_ms, peak_score, peak_ms, \
                       zones, COALESCE(length(thumb), 0)";

/// Zone names are validated by espcam-motion (no commas among the allowed characters).
fn join_zones(zones: &[String]) -> String {
    zones.join(",")
}

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let zones: String = r.get(7)?;
    let peak: f64 = r.get(5)?;
    let thumb: i64 = r.get(8)?;
    Ok(StoredEvent {
        id: r.get(0)?,
        camera: r.get(1)?,
        started_ms: r.get(2)?,
        ended_ms: r.get(3)?,
        last_motion_ms: r.get(4)?,
        peak_score: peak as f32,
        peak_ms: r.get(6)?,
        zones: zones
            .split(',')
            .filter(|z| !z.is_empty())
            .map(str::to_string)
            .collect(),
        thumb_bytes: usize::try_from(thumb).unwrap_or(0),
    })
}

//! A full disk, through the library's IO seam (`Recordings::set_io_faults`): a fake
//! filesystem of fixed capacity over the real one, whose writes stop part-way with `ENOSPC`
//! when the recordings directory would outgrow it, and a sync that fails.
//!
//! What must hold: the write error says the disk is full; every closed segment and every
//! frame a sync made durable stay intact and playable while the disk is full; no byte of the
//! frame that was cut off is ever served; retention's free-disk floor makes room; and the
//! writer records again by itself once space is back (the same one, or the camera's next
//! one), after closing the segment the failure interrupted.

#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{SEC, T0, base_jpeg, number_of, numbered};
use espcam_proto::CameraId;
use espcam_record::fault::{IoFaults, no_space};
use espcam_record::retention::{FreeSpace, Reason};
use espcam_record::{Config, Frame, RecordedFrame, Recordings, RetentionPolicy, WriteError};

/// A filesystem of `capacity` bytes: what the files under `root` hold counts as used.
#[derive(Debug)]
struct SmallDisk {
    root: PathBuf,
    capacity: AtomicU64,
    fail_syncs: AtomicBool,
    partial_writes: AtomicU64,
}

fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

impl SmallDisk {
    fn free(&self) -> u64 {
        self.capacity
            .load(Ordering::SeqCst)
            .saturating_sub(du(&self.root))
    }
}

impl IoFaults for SmallDisk {
    fn write(&self, _path: &Path, len: usize) -> usize {
        let free = self.free() as usize;
        if free > 0 && free < len {
            self.partial_writes.fetch_add(1, Ordering::SeqCst);
        }
        free.min(len)
    }

    fn sync(&self, _path: &Path) -> io::Result<()> {
        if self.fail_syncs.load(Ordering::SeqCst) {
            return Err(no_space());
        }
        Ok(())
    }
}

fn cam() -> CameraId {
    CameraId::new("full").unwrap()
}

fn frame(jpeg: &[u8], t: u64) -> Frame<'_> {
    Frame {
        jpeg,
        captured_us: Some(t - 1_000),
        received_us: t,
        width: 64,
        height: 48,
    }
}

fn play_all(rec: &Recordings) -> Vec<RecordedFrame> {
    let mut c = rec.cursor(&cam());
    c.seek(0).unwrap();
    let mut out = Vec::new();
    while let Some(f) = c.next_frame().unwrap() {
        out.push(f);
    }
    out
}

/// Every frame played back is one that was sent, byte for byte, in order.
fn check(got: &[RecordedFrame], base: &[u8]) -> Vec<u64> {
    let ns: Vec<u64> = got.iter().map(|f| number_of(&f.jpeg).unwrap()).collect();
    for (f, n) in got.iter().zip(&ns) {
        assert_eq!(f.jpeg, numbered(base, *n), "frame {n} is whole");
        assert_eq!(f.received_us, T0 + n * SEC / 10);
    }
    assert!(ns.windows(2).all(|w| w[0] < w[1]), "in order: {ns:?}");
    ns
}

fn config() -> Config {
    Config {
        segment_duration_us: 2 * SEC,
        commit_interval_us: SEC / 4,
        ..Config::default()
    }
}

#[test]
fn a_full_disk_keeps_what_was_durable_makes_room_and_recording_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = Recordings::open_with(dir.path(), config()).unwrap();
    let disk = Arc::new(SmallDisk {
        root: dir.path().join("recordings"),
        capacity: AtomicU64::new(0),
        fail_syncs: AtomicBool::new(false),
        partial_writes: AtomicU64::new(0),
    });
    let base = base_jpeg(64, 48, 5);
    let size = numbered(&base, 0).len() as u64;
    // Room for about five 2-second segments of 10 fps.
    disk.capacity
        .store(5 * 20 * (size + 64) + 900, Ordering::SeqCst);
    rec.set_io_faults(Some(disk.clone()));

    let mut w = rec.writer(&cam()).unwrap();
    let mut n = 0u64;
    let t = |n: u64| T0 + n * SEC / 10;
    let err = loop {
        let jpeg = numbered(&base, n);
        let r = w
            .append(&frame(&jpeg, t(n)))
            .and_then(|_| w.flush_if_due(t(n)));
        if let Err(e) = r {
            break e;
        }
        n += 1;
        assert!(n < 10_000, "the small disk never filled");
    };
    assert!(err.is_disk_full(), "{err}");
    assert!(
        matches!(&err, WriteError::Io(e) if e.source.raw_os_error() == Some(28)),
        "{err:?}"
    );
    let failed_at = n;
    let durable = w.durable_frames();
    assert!(durable >= 40, "several segments before the disk filled");
    assert!(
        disk.partial_writes.load(Ordering::SeqCst) >= 1,
        "the last write stopped part-way"
    );
    let m = rec.metrics();
    assert!(m.write_errors >= 1);
    let last_error = m.per_camera[0].last_error.clone().unwrap();
    assert!(last_error.contains("No space left"), "{last_error}");

    // While the disk is full: more frames fail (and are not recorded) …
    for k in 1..=20 {
        let jpeg = numbered(&base, failed_at + k);
        let r = w
            .append(&frame(&jpeg, t(failed_at + k)))
            .and_then(|_| w.flush_if_due(t(failed_at + k)));
        assert!(
            r.is_err(),
            "frame {} recorded on a full disk",
            failed_at + k
        );
    }
    // The hub drops a failing camera's writer while it pauses: the next writer inherits the
    // segment that could not be closed.
    drop(w);
    let mut w = rec.writer(&cam()).unwrap();
    // … and every durable frame still plays, whole: the closed segments and the durable
    // frames of the segment the failure interrupted.
    let got = check(&play_all(&rec), &base);
    assert!(got.len() as u64 >= durable, "{} < {durable}", got.len());
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>());
    assert!(
        (got.len() as u64) <= failed_at,
        "the failed frame is not served"
    );

    // Retention's free-disk floor makes room: two segments' worth.
    let policy = RetentionPolicy {
        min_free_bytes: 2 * 20 * (size + 64),
        ..Default::default()
    };
    let report = rec
        .apply_retention(&policy, t(failed_at), FreeSpace::Known(disk.free()))
        .unwrap();
    assert!(!report.deleted.is_empty(), "{report:?}");
    assert!(
        report.deleted.iter().all(|d| d.reason == Reason::DiskFloor),
        "{report:?}"
    );

    // The writer records again by itself.
    let resume = failed_at + 30;
    for k in resume..resume + 30 {
        let jpeg = numbered(&base, k);
        w.append(&frame(&jpeg, t(k))).unwrap();
        w.flush_if_due(t(k)).unwrap();
    }
    w.close().unwrap();
    let got = check(&play_all(&rec), &base);
    let first_kept = got[0];
    assert!(first_kept > 0, "retention deleted the oldest");
    let before: Vec<u64> = got.iter().copied().filter(|k| *k < resume).collect();
    let after: Vec<u64> = got.iter().copied().filter(|k| *k >= resume).collect();
    assert_eq!(after, (resume..resume + 30).collect::<Vec<_>>());
    assert_eq!(
        before,
        (first_kept..first_kept + before.len() as u64).collect::<Vec<_>>(),
        "nothing lost between the oldest kept frame and the failure"
    );
    assert!(
        *before.last().unwrap() + 1 >= durable,
        "every durable frame kept"
    );

    // After a restart without the hook everything still opens and plays the same.
    drop(w);
    drop(rec);
    let (rec, report) = Recordings::open_with(dir.path(), config()).unwrap();
    assert_eq!(report.bytes_truncated, 0, "{report:?}");
    assert_eq!(check(&play_all(&rec), &base), got);
}

#[test]
fn a_failing_sync_reports_nothing_durable_that_was_not_synced() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = Recordings::open_with(dir.path(), config()).unwrap();
    let disk = Arc::new(SmallDisk {
        root: dir.path().join("recordings"),
        capacity: AtomicU64::new(u64::MAX),
        fail_syncs: AtomicBool::new(false),
        partial_writes: AtomicU64::new(0),
    });
    rec.set_io_faults(Some(disk.clone()));
    let base = base_jpeg(64, 48, 6);
    let t = |n: u64| T0 + n * SEC / 10;
    let mut w = rec.writer(&cam()).unwrap();
    let send = |w: &mut espcam_record::Writer, n: u64| {
        let jpeg = numbered(&base, n);
        w.append(&frame(&jpeg, t(n)))
            .and_then(|_| w.flush_if_due(t(n)))
    };
    for n in 0..15 {
        send(&mut w, n).unwrap();
    }
    let durable = w.durable_frames();
    disk.fail_syncs.store(true, Ordering::SeqCst);
    let mut failed = false;
    for n in 15..18 {
        failed |= send(&mut w, n).is_err();
    }
    assert!(failed, "a sync fell due and failed");
    assert_eq!(w.durable_frames(), durable, "nothing newly durable");
    let got = check(&play_all(&rec), &base);
    assert_eq!(
        got.len() as u64,
        durable,
        "readers see the synced frames only"
    );
    disk.fail_syncs.store(false, Ordering::SeqCst);
    for n in 30..45 {
        send(&mut w, n).unwrap();
    }
    w.close().unwrap();
    let got = check(&play_all(&rec), &base);
    assert!(
        got.starts_with(&(0..durable).collect::<Vec<_>>()),
        "{got:?}"
    );
    assert!(got.ends_with(&(30..45).collect::<Vec<_>>()), "{got:?}");
}

/// Fails every write to one segment file (or to all, while `all` is set).
#[derive(Debug, Default)]
struct Refuse {
    all: AtomicBool,
    segment: AtomicU64,
}

impl IoFaults for Refuse {
    fn write(&self, path: &Path, len: usize) -> usize {
        let seg = self.segment.load(Ordering::SeqCst);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let refused =
            self.all.load(Ordering::SeqCst) || (seg != 0 && name.starts_with(&format!("{seg}-")));
        if refused { 0 } else { len }
    }
}

#[test]
fn a_segment_that_cannot_be_closed_holds_recording_back_a_minute_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = Recordings::open_with(dir.path(), config()).unwrap();
    let faults = Arc::new(Refuse::default());
    rec.set_io_faults(Some(faults.clone()));
    let base = base_jpeg(64, 48, 7);
    let t = |n: u64| T0 + n * SEC / 10;
    let mut w = rec.writer(&cam()).unwrap();
    let send = |w: &mut espcam_record::Writer, n: u64| {
        let jpeg = numbered(&base, n);
        let a = w.append(&frame(&jpeg, t(n)))?;
        w.flush_if_due(t(n))?;
        Ok::<_, WriteError>(a)
    };
    let mut first = None;
    for n in 0..10 {
        let a = send(&mut w, n).unwrap();
        first.get_or_insert(a.segment);
    }
    let durable = w.durable_frames();
    assert!(durable >= 7);
    // The disk refuses everything, then only the interrupted segment (its index can never
    // be written, like a file at its size limit).
    faults.all.store(true, Ordering::SeqCst);
    assert!(send(&mut w, 10).is_err());
    faults
        .segment
        .store(first.unwrap().get() as u64, Ordering::SeqCst);
    faults.all.store(false, Ordering::SeqCst);
    // Within the minute: no new segment, the durable frames stay readable.
    for n in [20, 300, 500] {
        assert!(
            send(&mut w, n).is_err(),
            "frame {n} recorded while held back"
        );
        assert_eq!(
            check(&play_all(&rec), &base),
            (0..durable).collect::<Vec<_>>()
        );
    }
    // After it: recording goes on in a new segment.
    for n in 700..710 {
        send(&mut w, n).unwrap();
    }
    let got = check(&play_all(&rec), &base);
    assert!(
        got.ends_with(&(700..709).collect::<Vec<_>>())
            || got.ends_with(&(700..710).collect::<Vec<_>>()),
        "{got:?}"
    );
    // The old segment closes as soon as its index can be written; then it plays again.
    faults.segment.store(0, Ordering::SeqCst);
    w.close().unwrap();
    let got = check(&play_all(&rec), &base);
    assert!(
        got.starts_with(&(0..durable).collect::<Vec<_>>()),
        "{got:?}"
    );
    assert!(got.ends_with(&(700..710).collect::<Vec<_>>()), "{got:?}");
}

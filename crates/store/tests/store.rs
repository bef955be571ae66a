//! The store against real files in a temporary directory: round trips, restarts, simulated
//! crashes at each step of a save, paging, path containment and concurrency.

// Helpers outside `#[test]` functions too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use espcam_proto::CameraId;
use espcam_store::{
    Before, NewSnapshot, OpenError, Query, QueryError, ReconcileReport, SaveError, Snapshot,
    SnapshotId, Store,
};

const T0: u64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z

/// A real, decodable JPEG of `w`×`h` whose pixels depend on `seed`.
fn jpeg(w: u16, h: u16, seed: u8) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&[(x as u8).wrapping_add(seed), (y as u8) ^ seed, seed]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

fn decode_dims(bytes: &[u8]) -> (u16, u16) {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    d.decode().unwrap();
    let info = d.info().unwrap();
    (info.width, info.height)
}

fn cam(id: &str) -> CameraId {
    CameraId::new(id).unwrap()
}

fn save(store: &Store, camera: &str, t: u64, jpeg: &[u8]) -> Snapshot {
    store
        .save(NewSnapshot {
            camera: &cam(camera),
            taken_at_us: t,
            jpeg,
        })
        .unwrap()
}

fn all(store: &Store) -> Vec<Snapshot> {
    store
        .list(&Query {
            limit: Some(500),
            ..Query::default()
        })
        .unwrap()
}

/// Every regular file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn snapshot_files(root: &Path) -> Vec<PathBuf> {
    files_under(&root.join("snapshots"))
}

/// Runs SQL directly on the index of a closed store (to fake a crash's leftovers).
fn sql(root: &Path, statements: &str) {
    let conn = rusqlite::Connection::open(root.join("index.sqlite3")).unwrap();
    conn.execute_batch(statements).unwrap();
}

#[test]
fn save_list_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = jpeg(64, 48, 1);
    let b = jpeg(32, 16, 2);
    let sa = save(&store, "cam-1", T0, &a);
    let sb = save(&store, "cam-2", T0 + 1, &b);

    assert_eq!((sa.width, sa.height, sa.bytes), (64, 48, a.len() as u64));
    assert_eq!((sb.width, sb.height, sb.bytes), (32, 16, b.len() as u64));
    assert!(sb.id > sa.id);
    assert_eq!(all(&store), vec![sb.clone(), sa.clone()], "newest first");
    assert_eq!(store.get(sa.id).unwrap(), Some(sa.clone()));

    let back = store.read_jpeg(sa.id).unwrap().unwrap();
    assert_eq!(back, a);
    assert_eq!(decode_dims(&back), (64, 48));
    assert_eq!(store.read_jpeg(sb.id).unwrap().unwrap(), b);

    // The file is where the layout says, with exactly the JPEG's bytes.
    let path = store.jpeg_path(sa.id).unwrap().unwrap();
    assert_eq!(
        path,
        dir.path()
            .join(format!("snapshots/cam-1/20231114/{}-{T0}.jpg", sa.id))
    );
    assert_eq!(fs::read(&path).unwrap(), a);

    let missing = SnapshotId::new(9999).unwrap();
    assert_eq!(store.get(missing).unwrap(), None);
    assert_eq!(store.read_jpeg(missing).unwrap(), None);
}

#[test]
fn data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = jpeg(80, 60, 3);
    let (saved, before) = {
        let store = Store::open(dir.path()).unwrap();
        let s = save(&store, "door", T0, &a);
        save(&store, "door", T0 + 5, &jpeg(16, 16, 4));
        (s, all(&store))
    };
    let (store, report) = Store::open_with_report(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&store), before);
    let back = store.read_jpeg(saved.id).unwrap().unwrap();
    assert_eq!(back, a);
    assert_eq!(decode_dims(&back), (80, 60));
    // Ids are never reused across restarts.
    let next = save(&store, "door", T0 + 9, &a);
    assert!(next.id > before[0].id);
}

#[test]
fn delete_removes_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let keep = save(&store, "cam-1", T0, &jpeg(8, 8, 1));
    let gone = save(&store, "cam-1", T0 + 1, &jpeg(8, 8, 2));
    let path = store.jpeg_path(gone.id).unwrap().unwrap();
    assert!(path.is_file());

    assert!(store.delete(gone.id).unwrap());
    assert!(!path.exists());
    assert_eq!(store.get(gone.id).unwrap(), None);
    assert_eq!(store.read_jpeg(gone.id).unwrap(), None);
    assert!(
        !store.delete(gone.id).unwrap(),
        "second delete reports absence"
    );
    assert_eq!(all(&store), vec![keep.clone()]);

    drop(store);
    let (store, report) = Store::open_with_report(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&store), vec![keep]);
    assert_eq!(snapshot_files(dir.path()).len(), 1);
}

#[test]
fn refuses_what_is_not_a_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let camera = cam("cam-1");
    let good = jpeg(16, 16, 1);
    let try_save = |bytes: &[u8], t: u64| {
        store.save(NewSnapshot {
            camera: &camera,
            taken_at_us: t,
            jpeg: bytes,
        })
    };
    assert!(matches!(try_save(b"", T0), Err(SaveError::Empty)));
    let e = try_save(b"hello world", T0).unwrap_err();
    assert!(matches!(e, SaveError::NotJpeg(_)));
    assert!(e.to_string().contains("not a complete JPEG"), "{e}");
    assert!(matches!(
        try_save(&good[..good.len() - 1], T0),
        Err(SaveError::NotJpeg(_))
    ));
    let e = try_save(&good, u64::MAX).unwrap_err();
    assert!(matches!(e, SaveError::TimeOutOfRange(_)));
    assert!(e.to_string().contains("out of range"), "{e}");
    let huge = vec![0u8; espcam_store::MAX_SNAPSHOT_BYTES + 1];
    assert!(matches!(try_save(&huge, T0), Err(SaveError::TooLarge(_))));

    assert!(all(&store).is_empty());
    assert!(snapshot_files(dir.path()).is_empty());

    // Bytes after the end marker (a second image from the OV3660 driver) are not stored.
    let mut two = good.clone();
    two.extend_from_slice(&jpeg(8, 8, 9));
    let s = try_save(&two, T0).unwrap();
    assert_eq!(s.bytes, good.len() as u64);
    assert_eq!(store.read_jpeg(s.id).unwrap().unwrap(), good);
}

#[test]
fn crash_leftovers_are_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let img = jpeg(24, 16, 7);
    let day = root.join("snapshots/cam-1/20231114");
    let (ok, lost_file, truncated) = {
        let store = Store::open(root).unwrap();
        let ok = save(&store, "cam-1", T0, &img);
        let lost_file = save(&store, "cam-1", T0 + 1, &img);
        let truncated = save(&store, "cam-1", T0 + 2, &img);
        (ok, lost_file, truncated)
    };
    let id = |s: &Snapshot| s.id.get();

    // Crash after "reserve"/"write": a pending row and its (partial) temp file.
    sql(
        root,
        &format!(
            "INSERT INTO snapshots (id, camera, taken_at_us, bytes, width, height, state)
         VALUES (100, 'cam-1', {t}, {n}, 24, 16, 0);",
            t = T0 + 100,
            n = img.len()
        ),
    );
    fs::write(day.join(format!(".100-{}.jpg.tmp", T0 + 100)), &img[..10]).unwrap();
    // Crash after "publish": a pending row and the complete final file.
    sql(
        root,
        &format!(
            "INSERT INTO snapshots (id, camera, taken_at_us, bytes, width, height, state)
         VALUES (101, 'cam-1', {t}, {n}, 24, 16, 0);",
            t = T0 + 101,
            n = img.len()
        ),
    );
    fs::write(day.join(format!("101-{}.jpg", T0 + 101)), &img).unwrap();
    // A committed row whose file vanished.
    fs::remove_file(day.join(format!("{}-{}.jpg", id(&lost_file), T0 + 1))).unwrap();
    // A committed row whose file was truncated by outside hands.
    fs::write(
        day.join(format!("{}-{}.jpg", id(&truncated), T0 + 2)),
        &img[..20],
    )
    .unwrap();
    // A file whose row is gone (index restored from an old backup): re-indexed.
    fs::create_dir_all(root.join("snapshots/cam-2/20231115")).unwrap();
    let orphan_t = T0 + 86_400_000_000;
    fs::write(
        root.join(format!("snapshots/cam-2/20231115/200-{orphan_t}.jpg")),
        &img,
    )
    .unwrap();
    // A file without a row that is not a complete JPEG: moved aside, not deleted.
    fs::write(day.join(format!("201-{}.jpg", T0 + 3)), b"not a jpeg").unwrap();
    // A file claiming an id that belongs to another snapshot: moved aside.
    fs::write(day.join(format!("{}-{}.jpg", id(&ok), T0 + 4)), &img).unwrap();
    // Strays: unknown file, bad camera dir name, bad day dir, file in the wrong day.
    fs::write(root.join("snapshots/cam-1/notes.txt"), b"hi").unwrap();
    fs::create_dir_all(root.join("snapshots/bad name")).unwrap();
    fs::create_dir_all(root.join("snapshots/cam-1/2023-11-14")).unwrap();
    fs::write(day.join(format!("202-{}.jpg", T0 + 86_400_000_000)), &img).unwrap();
    // An empty day directory left behind by deletes.
    fs::create_dir_all(root.join("snapshots/cam-3/20200101")).unwrap();

    let (store, report) = Store::open_with_report(root).unwrap();
    assert_eq!(
        report,
        ReconcileReport {
            rows_without_file: 1,
            rows_with_bad_file: 1,
            pending_dropped: 1,
            pending_completed: 1,
            files_reindexed: 1,
            moved_aside: 7,
            temp_files_removed: 1,
            empty_dirs_removed: 2,
        },
        "{report}"
    );

    let ids: Vec<i64> = all(&store).iter().map(|s| s.id.get()).collect();
    assert_eq!(ids, vec![200, 101, id(&ok)]);
    let orphan = store.get(SnapshotId::new(200).unwrap()).unwrap().unwrap();
    assert_eq!(
        (
            orphan.camera.as_str(),
            orphan.taken_at_us,
            orphan.width,
            orphan.height
        ),
        ("cam-2", orphan_t, 24, 16)
    );
    for id in [200, 101, id(&ok)] {
        let bytes = store
            .read_jpeg(SnapshotId::new(id).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(bytes, img, "snapshot {id}");
    }
    // Nothing but our temp file was deleted: everything else is in lost+found.
    let lost = files_under(&root.join("lost+found"));
    assert_eq!(lost.len(), 5, "{lost:?}"); // + 2 directories, which hold no files
    assert_eq!(fs::read_dir(root.join("lost+found")).unwrap().count(), 7);
    assert_eq!(
        snapshot_files(root),
        vec![
            PathBuf::from(format!("cam-1/20231114/{}-{T0}.jpg", id(&ok))),
            PathBuf::from(format!("cam-1/20231114/101-{}.jpg", T0 + 101)),
            PathBuf::from(format!("cam-2/20231115/200-{orphan_t}.jpg")),
        ]
    );
    // A new save gets an id above the re-indexed ones.
    assert!(save(&store, "cam-1", T0 + 9, &img).id.get() > 200);
    // Reconciliation is idempotent.
    assert!(store.reconcile().unwrap().is_clean());
}

#[test]
fn list_filters_limit_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let img = jpeg(8, 8, 0);
    let mut saved = Vec::new();
    for i in 0..12u64 {
        let camera = if i % 3 == 0 { "a" } else { "b" };
        saved.push(save(&store, camera, T0 + i * 1000, &img));
    }
    saved.reverse(); // newest first

    let q = |camera: Option<&str>, limit: Option<u32>, before: Option<&str>| {
        store
            .list(&Query {
                camera: camera.map(|c| CameraId::new(c).unwrap()),
                limit,
                before: before.map(|b| Before::Id(b.parse().unwrap())),
            })
            .unwrap()
    };
    assert_eq!(q(None, None, None), saved);
    let only_a: Vec<_> = saved
        .iter()
        .filter(|s| s.camera.as_str() == "a")
        .cloned()
        .collect();
    assert_eq!(q(Some("a"), None, None), only_a);
    assert_eq!(only_a.len(), 4);
    assert!(q(Some("nobody"), None, None).is_empty());
    assert_eq!(q(None, Some(5), None), saved[..5]);

    // Page through with the id cursor: every snapshot exactly once, in order.
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = q(None, Some(5), before.as_deref());
        if page.is_empty() {
            break;
        }
        before = Some(page.last().unwrap().id.to_string());
        paged.extend(page);
    }
    assert_eq!(paged, saved);
    // Cursor combined with the camera filter.
    let cursor = only_a[1].id.to_string();
    assert_eq!(q(Some("a"), None, Some(&cursor)), only_a[2..]);
    // A time cursor.
    let by_time = store
        .list(&Query {
            before: Some(Before::TakenAt(T0 + 3000)),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(by_time, saved[9..]);

    let e = store
        .list(&Query {
            limit: Some(501),
            ..Query::default()
        })
        .unwrap_err();
    assert!(matches!(e, QueryError::Limit(_)));
    assert_eq!(store.list(&Query::default()).unwrap().len(), 12);
}

#[test]
fn snapshot_ids_parse_strictly() {
    assert_eq!(SnapshotId::from_jpg_name("12.jpg"), SnapshotId::new(12));
    for bad in [
        "12",
        "12.JPG",
        "../12.jpg",
        "0.jpg",
        "-3.jpg",
        "+3.jpg",
        " 3.jpg",
        ".jpg",
    ] {
        assert_eq!(SnapshotId::from_jpg_name(bad), None, "{bad}");
    }
}

#[test]
fn stored_paths_stay_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let store = Store::open(&root).unwrap();
    // Ids that a path-joining bug would treat specially are refused before reaching us...
    for evil in ["..", ".", "a/../../x", "/etc", "a\\b", "c:", "..%2f"] {
        assert!(CameraId::new(evil).is_err(), "{evil}");
    }
    // ...and the odd-looking ids CameraId allows stay one directory level under snapshots/.
    let canon_root = root.canonicalize().unwrap();
    for odd in ["-", "_", "--", "-rf", &"x".repeat(32)] {
        let s = save(&store, odd, T0, &jpeg(8, 8, 5));
        let p = store.jpeg_path(s.id).unwrap().unwrap();
        let canon = p.canonicalize().unwrap();
        assert!(
            canon.starts_with(canon_root.join("snapshots").join(odd)),
            "{canon:?}"
        );
        assert_eq!(
            canon
                .strip_prefix(&canon_root)
                .unwrap()
                .components()
                .count(),
            4
        );
    }
    // Nothing was written outside the data directory.
    let outside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec!["data"]);
}

#[test]
fn concurrent_saves_get_unique_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let img = jpeg(16, 8, 3);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = Arc::clone(&store);
            let img = img.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| save(&store, &format!("cam-{t}"), T0 + i, &img).id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Reconciliation running alongside must wait for in-flight saves, not eat them.
    let reconciler = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            (0..5)
                .map(|_| store.reconcile().unwrap())
                .collect::<Vec<_>>()
        })
    };
    let mut ids: Vec<SnapshotId> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    for report in reconciler.join().unwrap() {
        assert!(report.is_clean(), "{report}");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(all(&store).len(), 60);
    assert_eq!(snapshot_files(dir.path()).len(), 60);
    for id in ids {
        assert_eq!(store.read_jpeg(id).unwrap().unwrap(), img);
    }
}

#[test]
fn one_store_per_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    save(&first, "cam-1", T0, &jpeg(8, 8, 1));
    let e = Store::open(dir.path()).unwrap_err();
    assert!(matches!(e, OpenError::InUse(_)), "{e}");
    assert!(e.to_string().contains("in use"), "{e}");
    drop(first);
    assert_eq!(all(&Store::open(dir.path()).unwrap()).len(), 1);
}

#[test]
fn newer_schema_is_refused_not_clobbered() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    sql(dir.path(), "PRAGMA user_version = 99;");
    let e = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            e,
            OpenError::NewerSchema {
                found: 99,
                supported: 1
            }
        ),
        "{e}"
    );
}

#[test]
fn open_reports_unusable_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let e = Store::open(&file).unwrap_err();
    assert!(e.to_string().contains("a-file"), "{e}");
}

//! Recording end to end on a virtual clock: real JPEGs at two sizes, reopen, spans, playback,
//! retention, torn-tail recovery, and AVI/MKV exports checked by ffprobe, ffmpeg and two
//! independent demuxers.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::{SEC, T0, base_jpeg, decode_dims, have_tool, number_of, numbered};
use espcam_proto::CameraId;
use espcam_record::retention::FreeSpace;
use espcam_record::{
    Config, ExportFormat, Frame, Limits, RecordedFrame, Recordings, RetentionPolicy, SegmentInfo,
};

fn cam(s: &str) -> CameraId {
    CameraId::new(s).unwrap()
}

/// What a test recorded, to compare with what comes back.
#[derive(Debug, Clone)]
struct Sent {
    n: u64,
    received_us: u64,
    captured_us: u64,
    w: u16,
    h: u16,
}

/// Records `frames` frames at `fps` starting at `start_us` (virtual clock), flushing as the
/// hub would; frames numbered from `first_n`; dimensions switch to the second base after
/// `switch_at` frames.
#[allow(clippy::too_many_arguments)]
fn record(
    rec: &Recordings,
    camera: &CameraId,
    bases: &[(Vec<u8>, u16, u16)],
    start_us: u64,
    fps: u64,
    frames: u64,
    first_n: u64,
    switch_at: u64,
) -> Vec<Sent> {
    let mut w = rec.writer(camera).unwrap();
    let mut sent = Vec::new();
    for i in 0..frames {
        let n = first_n + i;
        let (base, bw, bh) = &bases[usize::from(i >= switch_at)];
        let jpeg = numbered(base, n);
        let t = start_us + i * SEC / fps;
        w.append(&Frame {
            jpeg: &jpeg,
            captured_us: Some(t - 2_000),
            received_us: t,
            width: *bw,
            height: *bh,
        })
        .unwrap();
        w.flush_if_due(t).unwrap();
        sent.push(Sent {
            n,
            received_us: t,
            captured_us: t - 2_000,
            w: *bw,
            h: *bh,
        });
    }
    w.close().unwrap();
    sent
}

fn play_all(rec: &Recordings, camera: &CameraId, from: u64) -> Vec<RecordedFrame> {
    let mut c = rec.cursor(camera);
    c.seek(from).unwrap();
    let mut out = Vec::new();
    while let Some(f) = c.next_frame().unwrap() {
        out.push(f);
    }
    out
}

fn bases() -> Vec<(Vec<u8>, u16, u16)> {
    vec![
        (base_jpeg(64, 48, 1), 64, 48),
        (base_jpeg(32, 24, 2), 32, 24),
    ]
}

fn check_frames(got: &[RecordedFrame], sent: &[Sent], bases: &[(Vec<u8>, u16, u16)]) {
    assert_eq!(got.len(), sent.len());
    for (g, s) in got.iter().zip(sent) {
        assert_eq!(number_of(&g.jpeg), Some(s.n));
        let base = if s.w == bases[0].1 {
            &bases[0].0
        } else {
            &bases[1].0
        };
        assert_eq!(g.jpeg, numbered(base, s.n), "frame {} bytes", s.n);
        assert_eq!((g.width, g.height), (s.w, s.h));
        assert_eq!(g.received_us, s.received_us);
        assert_eq!(g.captured_us, Some(s.captured_us));
    }
}

#[test]
fn records_reopens_lists_spans_and_plays_back() {
    let dir = tempfile::tempdir().unwrap();
    let c = cam("porch");
    let b = bases();
    let sent = {
        let (rec, report) = Recordings::open(dir.path()).unwrap();
        assert!(report.is_clean());
        // 150 s at 10 fps, size change after 100 s; then a 20 s gap and 30 s more.
        let mut sent = record(&rec, &c, &b, T0, 10, 1_500, 0, 1_000);
        sent.extend(record(&rec, &c, &b, T0 + 170 * SEC, 10, 300, 1_500, 0));
        sent
    };
    let (rec, report) = Recordings::open(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");

    let spans = rec.spans(&c, 0, u64::MAX).unwrap();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!((spans[0].start_us, spans[0].end_us), (T0, T0 + 149_900_000));
    assert_eq!(spans[0].frames, 1_500);
    assert_eq!(
        (spans[1].start_us, spans[1].end_us),
        (T0 + 170 * SEC, T0 + 199_900_000)
    );
    // Segments of at most a minute.
    let segs: Vec<SegmentInfo> = rec.segments(&c, 0, u64::MAX).unwrap();
    assert_eq!(segs.len(), 4);
    assert!(segs.iter().all(|s| s.end_us - s.start_us < 60 * SEC));
    assert!(
        !segs[1].uniform_dims,
        "the size change falls in the second segment"
    );

    // Everything back, byte for byte, with dimensions and capture times.
    let got = play_all(&rec, &c, 0);
    check_frames(&got, &sent, &b);
    assert_eq!(decode_dims(&got[0].jpeg), (64, 48));
    assert_eq!(decode_dims(&got[1_700].jpeg), (32, 24));

    // Seek lands on the frame at or before the instant, across segments and into the gap.
    let mut cur = rec.cursor(&c);
    let m = cur.seek(T0 + 75 * SEC + 50_000).unwrap().unwrap();
    assert_eq!(m.received_us, T0 + 75 * SEC);
    assert_eq!(
        number_of(&cur.next_frame().unwrap().unwrap().jpeg),
        Some(750)
    );
    let m = cur.seek(T0 + 160 * SEC).unwrap().unwrap();
    assert_eq!(
        m.received_us,
        T0 + 149_900_000,
        "in the gap: the last frame before it"
    );
    let next: Vec<u64> = (0..3)
        .map(|_| number_of(&cur.next_frame().unwrap().unwrap().jpeg).unwrap())
        .collect();
    assert_eq!(next, [1_499, 1_500, 1_501]);
    // Before everything: the first frame.
    assert_eq!(cur.seek(0).unwrap().unwrap().received_us, T0);

    let usage = rec.usage().unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].frames, 1_800);
    assert_eq!(usage[0].segments, 4);
    let m = rec.metrics();
    assert_eq!(
        (m.frames, m.durable_frames),
        (0, 0),
        "counters are per open"
    );
}

#[test]
fn readers_see_only_durable_frames_of_the_open_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = Recordings::open(dir.path()).unwrap();
    let c = cam("live");
    let base = base_jpeg(64, 48, 3);
    let mut w = rec.writer(&c).unwrap();
    assert!(rec.writer(&c).is_err(), "one writer per camera");
    let frame = |n: u64| numbered(&base, n);
    let j0 = frame(0);
    fn f(jpeg: &[u8], t: u64) -> Frame<'_> {
        Frame {
            jpeg,
            captured_us: None,
            received_us: t,
            width: 64,
            height: 48,
        }
    }
    w.append(&f(&j0, T0)).unwrap();
    let mut cur = rec.cursor(&c);
    assert_eq!(cur.seek(T0).unwrap(), None, "nothing durable yet");
    assert_eq!(w.flush_if_due(T0).unwrap(), 1);
    let j1 = frame(1);
    w.append(&f(&j1, T0 + 100_000)).unwrap();
    // Within the commit interval: no sync.
    assert_eq!(w.flush_if_due(T0 + 100_000).unwrap(), 0);
    assert!(cur.seek(T0).unwrap().is_some());
    assert_eq!(number_of(&cur.next_frame().unwrap().unwrap().jpeg), Some(0));
    assert_eq!(cur.next_frame().unwrap(), None, "frame 1 is not durable");
    assert_eq!(w.flush_if_due(T0 + SEC).unwrap(), 1);
    let f1 = cur.next_frame().unwrap().unwrap();
    assert_eq!((number_of(&f1.jpeg), f1.captured_us), (Some(1), None));
    assert_eq!(rec.spans(&c, 0, u64::MAX).unwrap().len(), 1);
    // Closing keeps the cursor going through the closed segment's trailer.
    let j2 = frame(2);
    w.append(&f(&j2, T0 + 2 * SEC)).unwrap();
    w.close().unwrap();
    assert_eq!(number_of(&cur.next_frame().unwrap().unwrap().jpeg), Some(2));
    assert_eq!(w.durable_frames(), 3);
    let m = rec.metrics();
    assert_eq!(m.frames, 3);
    assert_eq!(m.durable_frames, 3);
    assert_eq!(m.fsyncs, 3, "two group commits and the close");
    assert_eq!(m.fsync_latency.iter().sum::<u64>(), 3);
}

#[test]
fn retention_by_age_and_bytes_spares_a_segment_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = Recordings::open(dir.path()).unwrap();
    let (a, b2) = (cam("a"), cam("b"));
    let b = bases();
    // Camera a: 5 minutes (5 segments) starting at T0; camera b: 3 minutes.
    record(&rec, &a, &b, T0, 5, 1_500, 0, u64::MAX);
    record(&rec, &b2, &b, T0, 5, 900, 0, u64::MAX);
    let seg_a = rec.segments(&a, 0, u64::MAX).unwrap();
    assert_eq!(seg_a.len(), 5);
    let seg_bytes = seg_a[0].bytes;

    // Age: keep 3 minutes of a at now = T0 + 6 min → segments ending before T0 + 3 min go.
    let mut policy = RetentionPolicy::default();
    policy.per_camera.insert(
        a.clone(),
        Limits {
            max_age_us: Some(180 * SEC),
            max_bytes: None,
        },
    );
    // A reader holds a's oldest segment.
    let mut cur = rec.cursor(&a);
    cur.seek(T0).unwrap();
    let report = rec
        .apply_retention(&policy, T0 + 360 * SEC, FreeSpace::Ignore)
        .unwrap();
    let deleted: Vec<i64> = report.deleted.iter().map(|d| d.segment.get()).collect();
    assert_eq!(deleted, [seg_a[1].id.get(), seg_a[2].id.get()]);
    assert_eq!(report.skipped_leased, [seg_a[0].id]);
    // The leased segment still plays in full.
    let mut n = 0;
    while let Some(f) = cur.next_frame().unwrap() {
        if f.segment != seg_a[0].id {
            break;
        }
        n += 1;
    }
    assert_eq!(n, seg_a[0].frames);
    drop(cur);
    let report = rec
        .apply_retention(&policy, T0 + 360 * SEC, FreeSpace::Ignore)
        .unwrap();
    assert_eq!(report.deleted.len(), 1, "the lease is gone: deleted now");
    for s in &seg_a[..3] {
        let p = dir
            .path()
            .join(format!("recordings/a/{}-{}.seg", s.id, s.start_us));
        assert!(!p.exists(), "{} removed", p.display());
    }

    // Bytes: a global limit of two segments' worth removes the oldest of either camera.
    let policy = RetentionPolicy {
        global: Limits {
            max_age_us: None,
            max_bytes: Some(2 * seg_bytes + seg_bytes / 2),
        },
        ..Default::default()
    };
    let report = rec.apply_retention(&policy, T0, FreeSpace::Ignore).unwrap();
    assert_eq!(report.deleted.len(), 3, "{report:?}");
    let left: u64 = rec.usage().unwrap().iter().map(|u| u.segments).sum();
    assert_eq!(left, 2);
    // Free-disk floor: with 0 free bytes measured, everything closed goes.
    let policy = RetentionPolicy {
        min_free_bytes: 1,
        ..Default::default()
    };
    let report = rec
        .apply_retention(&policy, T0, FreeSpace::Known(0))
        .unwrap();
    assert_eq!(report.deleted.len(), 1, "one segment frees enough");
    let totals = rec.retention_totals().unwrap();
    assert_eq!(totals.iter().map(|t| t.1).sum::<u64>(), 7);
    assert!(rec.disk_free().unwrap() > 0);
}

#[test]
fn torn_tail_is_cut_and_every_synced_frame_survives() {
    let dir = tempfile::tempdir().unwrap();
    let c = cam("torn");
    let base = base_jpeg(64, 48, 5);
    let (durable, appended) = {
        let (rec, _) = Recordings::open(dir.path()).unwrap();
        let mut w = rec.writer(&c).unwrap();
        for n in 0..40u64 {
            let jpeg = numbered(&base, n);
            let t = T0 + n * 50_000; // 20 fps
            w.append(&Frame {
                jpeg: &jpeg,
                captured_us: Some(t),
                received_us: t,
                width: 64,
                height: 48,
            })
            .unwrap();
            w.flush_if_due(t).unwrap();
        }
        let durable = w.durable_frames();
        assert!((20..40).contains(&durable), "{durable}");
        w.simulate_crash();
        (durable, 40)
    };
    // Append a torn copy of the last frame: its header and half its JPEG.
    let seg_dir = dir.path().join("recordings/torn");
    let path = std::fs::read_dir(&seg_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&path).unwrap();
    let last = numbered(&base, 39);
    let whole = 40 + last.len();
    let torn = &bytes[bytes.len() - whole..bytes.len() - last.len() / 2];
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();

    let (rec, report) = Recordings::open(dir.path()).unwrap();
    assert_eq!(report.segments_recovered, 1, "{report}");
    assert_eq!(report.bytes_truncated, torn.len() as u64);
    assert_eq!(report.frames_recovered, appended);
    let got = play_all(&rec, &c, 0);
    assert!(got.len() as u64 >= durable);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f.jpeg, numbered(&base, i as u64), "frame {i} intact");
    }
    // Recovered segments reopen cleanly the next time.
    drop(rec);
    let (_rec, report) = Recordings::open(dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
}

#[test]
fn corrupted_unsynced_frame_is_dropped_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let c = cam("flip");
    let base = base_jpeg(64, 48, 6);
    {
        let (rec, _) = Recordings::open(dir.path()).unwrap();
        let mut w = rec.writer(&c).unwrap();
        for n in 0..10u64 {
            let jpeg = numbered(&base, n);
            w.append(&Frame {
                jpeg: &jpeg,
                captured_us: None,
                received_us: T0 + n * 100_000,
                width: 64,
                height: 48,
            })
            .unwrap();
            if n == 4 {
                w.flush(T0 + n * 100_000).unwrap();
            }
        }
        assert_eq!(w.durable_frames(), 5);
        w.simulate_crash();
    }
    // Flip a byte in the JPEG of frame 7 (not synced): frames 7.. must go, 0..7 stay.
    let seg_dir = dir.path().join("recordings/flip");
    let path = std::fs::read_dir(&seg_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&path).unwrap();
    let frame_len = 40 + numbered(&base, 0).len();
    let at = 32 + 7 * frame_len + 40 + 100;
    bytes[at] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let (rec, report) = Recordings::open(dir.path()).unwrap();
    assert_eq!(report.frames_recovered, 7, "{report}");
    let got: Vec<u64> = play_all(&rec, &c, 0)
        .iter()
        .map(|f| number_of(&f.jpeg).unwrap())
        .collect();
    assert_eq!(got, (0..7).collect::<Vec<_>>());
}

#[test]
fn orphan_files_are_reindexed_after_losing_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let c = cam("orphan");
    let b = bases();
    {
        let (rec, _) = Recordings::open(dir.path()).unwrap();
        record(&rec, &c, &b, T0, 10, 700, 0, u64::MAX);
    }
    for f in [
        "recordings.sqlite",
        "recordings.sqlite-wal",
        "recordings.sqlite-shm",
    ] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    std::fs::write(dir.path().join("recordings/orphan/notes.txt"), b"hi").unwrap();
    let (rec, report) = Recordings::open(dir.path()).unwrap();
    assert_eq!(report.files_reindexed, 2, "{report}");
    assert_eq!(report.moved_aside, 1);
    assert_eq!(play_all(&rec, &c, 0).len(), 700);
    assert!(
        Recordings::open(dir.path()).is_err(),
        "one process per directory"
    );
}

fn ffprobe(path: &Path) -> (u64, u16, u16, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {text}"))
            .to_string()
    };
    (
        get("nb_read_frames").parse().unwrap(),
        get("width").parse().unwrap(),
        get("height").parse().unwrap(),
        get("duration").parse().unwrap(),
    )
}

fn ffmpeg_decodes_cleanly(path: &Path, frames: u64) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decoding {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = frames;
}

#[test]
fn exports_avi_and_mkv_that_players_and_demuxers_accept() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = Recordings::open(dir.path()).unwrap();
    let c = cam("exp");
    let b = bases();
    // 90 s at 10 fps across two segments; the size changes after 80 s.
    let sent = record(&rec, &c, &b, T0, 10, 900, 0, 800);

    for format in [ExportFormat::Avi, ExportFormat::Mkv] {
        let mut exp = rec
            .export(&c, T0 + 5 * SEC, T0 + 100 * SEC, format)
            .unwrap();
        // The first run: frames 50..800 (75 s at 64×48); the second part is listed.
        assert_eq!(exp.frames(), 750);
        assert_eq!(exp.dimensions(), (64, 48));
        let parts = exp.parts().to_vec();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[1].width, parts[1].height, parts[1].frames),
            (32, 24, 100)
        );
        assert_eq!(parts[1].from_us, sent[800].received_us);
        assert_eq!(exp.duration_us(), 75 * SEC);
        let announced = exp.len();
        let head = exp.next_chunk().unwrap().unwrap();
        assert!(!head.is_empty());
        let mut bytes = head;
        exp.read_to_end(&mut bytes).unwrap();
        assert_eq!(
            bytes.len() as u64,
            announced,
            "{format:?}: Content-Length exact"
        );
        let path = dir.path().join(exp.file_name(&c));
        std::fs::write(&path, &bytes).unwrap();

        // Independent demuxers: every JPEG comes back byte for byte.
        let jpegs: Vec<Vec<u8>> = match format {
            ExportFormat::Mkv => demux_mkv(&path),
            ExportFormat::Avi => demux_avi(&path),
        };
        assert_eq!(jpegs.len(), 750);
        for (i, j) in jpegs.iter().enumerate() {
            assert_eq!(j, &numbered(&b[0].0, 50 + i as u64), "{format:?} frame {i}");
        }

        if have_tool("ffprobe") {
            let (n, w, h, d) = ffprobe(&path);
            assert_eq!((n, w, h), (750, 64, 48), "{format:?}");
            assert!((d - 75.0).abs() < 0.05, "{format:?} duration {d}");
            ffmpeg_decodes_cleanly(&path, 750);
        }
    }
    // The second part on its own.
    let exp = rec
        .export(&c, sent[800].received_us, T0 + 100 * SEC, ExportFormat::Mkv)
        .unwrap();
    assert_eq!((exp.frames(), exp.dimensions()), (100, (32, 24)));
    assert!(
        rec.export(&c, T0 + 200 * SEC, T0 + 300 * SEC, ExportFormat::Avi)
            .is_err()
    );
    assert!(rec.export(&c, T0, T0, ExportFormat::Avi).is_err());
}

fn demux_mkv(path: &Path) -> Vec<Vec<u8>> {
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};
    let f = std::fs::File::open(path).unwrap();
    let mut mkv = MatroskaFile::open(f).unwrap();
    let t = &mkv.tracks()[0];
    assert_eq!(t.track_type(), TrackType::Video);
    assert_eq!(t.codec_id(), "V_MJPEG");
    let v = t.video().unwrap();
    assert_eq!((v.pixel_width().get(), v.pixel_height().get()), (64, 48));
    let mut out = Vec::new();
    let mut frame = Frame::default();
    let mut last_ts = 0;
    while mkv.next_frame(&mut frame).unwrap() {
        assert!(frame.timestamp >= last_ts);
        last_ts = frame.timestamp;
        out.push(frame.data.clone());
    }
    out
}

fn demux_avi(path: &Path) -> Vec<Vec<u8>> {
    let mut f = std::fs::File::open(path).unwrap();
    let root = riff::Chunk::read(&mut f, 0).unwrap();
    assert_eq!(root.id().as_str(), "RIFF");
    assert_eq!(root.read_type(&mut f).unwrap().as_str(), "AVI ");
    let kids: Vec<riff::Chunk> = root.iter(&mut f).map(|c| c.unwrap()).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for k in &kids {
        seen.insert(k.id().as_str().to_string());
        if k.id().as_str() == "LIST" && k.read_type(&mut f).unwrap().as_str() == "movi" {
            let chunks: Vec<riff::Chunk> = k.iter(&mut f).map(|c| c.unwrap()).collect();
            for ch in chunks {
                assert_eq!(ch.id().as_str(), "00dc");
                out.push(ch.read_contents(&mut f).unwrap());
            }
        }
    }
    assert!(seen.contains("idx1"), "{seen:?}");
    out
}

#[test]
fn config_changes_segment_length() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        segment_duration_us: 10 * SEC,
        ..Config::default()
    };
    let (rec, _) = Recordings::open_with(dir.path(), cfg).unwrap();
    let c = cam("short");
    record(&rec, &c, &bases(), T0, 2, 60, 0, u64::MAX);
    assert_eq!(rec.segments(&c, 0, u64::MAX).unwrap().len(), 3);
}

/// `append_batch` writes exactly what `append` one frame at a time writes (same segments,
/// same bytes, same index), with one `writev` per segment part of the batch instead of one
/// per frame; a batch crossing a segment's end (a minute) closes it and goes on in the next.
#[test]
fn a_batch_append_writes_the_same_files_as_single_appends_in_fewer_writes() {
    let b = bases();
    let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c = cam("batch");
    // 95 s at 10 fps: batches of 7 frames, one of which crosses the 60 s segment change.
    let jpegs: Vec<Vec<u8>> = (0..950).map(|n| numbered(&b[0].0, n)).collect();
    let frame = |i: usize| Frame {
        jpeg: &jpegs[i],
        captured_us: Some(T0 + i as u64 * SEC / 10 - 1_000),
        received_us: T0 + i as u64 * SEC / 10,
        width: b[0].1,
        height: b[0].2,
    };
    let (r1, _) = Recordings::open(one.path()).unwrap();
    let mut w = r1.writer(&c).unwrap();
    for i in 0..jpegs.len() {
        w.append(&frame(i)).unwrap();
        // Synced where the batches below sync (each header names the frames synced
        // before it, so the bytes match only then).
        if i % 7 == 6 || i == jpegs.len() - 1 {
            w.flush_if_due(frame(i).received_us).unwrap();
        }
    }
    w.close().unwrap();
    let single = r1.metrics();

    let (r2, _) = Recordings::open(many.path()).unwrap();
    let mut w = r2.writer(&c).unwrap();
    let mut appended = 0;
    for start in (0..jpegs.len()).step_by(7) {
        let batch: Vec<Frame<'_>> = (start..(start + 7).min(jpegs.len())).map(frame).collect();
        appended += w.append_batch(&batch).unwrap();
        w.flush_if_due(batch[batch.len() - 1].received_us).unwrap();
    }
    w.close().unwrap();
    assert_eq!(appended, 950);
    let batched = r2.metrics();
    assert_eq!(
        (batched.frames, batched.bytes),
        (single.frames, single.bytes)
    );
    assert_eq!(batched.durable_frames, 950);

    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("recordings/batch"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                // The file name holds the segment's database id, the same in both.
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let (f1, f2) = (files(one.path()), files(many.path()));
    assert_eq!(f1.len(), 2, "95 s make two segments");
    assert_eq!(f1.len(), f2.len());
    for ((n1, b1), (n2, b2)) in f1.iter().zip(&f2) {
        assert_eq!(n1, n2);
        assert!(b1 == b2, "segment {n1}: the batched file differs");
    }
    // Single appends: a header write per segment, a writev per frame, a trailer per segment.
    assert_eq!(single.write_syscalls, 950 + 2 * 2);
    // Batches: 136 batches, one of them split by the segment change.
    assert_eq!(batched.write_syscalls, 136 + 1 + 2 * 2);
    let got = play_all(&r2, &c, 0);
    assert_eq!(got.len(), 950);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, f)| number_of(&f.jpeg) == Some(i as u64))
    );
}

/// A batch that hits a full disk indexes none of its frames: what was appended before stays
/// readable, nothing of the failed batch is served, and the error is the disk's.
#[test]
fn a_batch_that_fails_part_way_indexes_none_of_its_frames() {
    #[derive(Debug)]
    struct FullAfter(std::sync::atomic::AtomicU64);
    impl espcam_record::fault::IoFaults for FullAfter {
        fn write(&self, _: &Path, len: usize) -> usize {
            let left = self.0.load(std::sync::atomic::Ordering::SeqCst) as usize;
            let n = left.min(len);
            self.0
                .fetch_sub(n as u64, std::sync::atomic::Ordering::SeqCst);
            n
        }
    }
    let b = bases();
    let dir = tempfile::tempdir().unwrap();
    let (rec, _) = Recordings::open(dir.path()).unwrap();
    let c = cam("full");
    let jpegs: Vec<Vec<u8>> = (0..10).map(|n| numbered(&b[0].0, n)).collect();
    let frame = |i: usize| Frame {
        jpeg: &jpegs[i],
        captured_us: None,
        received_us: T0 + i as u64 * 100_000,
        width: b[0].1,
        height: b[0].2,
    };
    let mut w = rec.writer(&c).unwrap();
    let first: Vec<Frame<'_>> = (0..4).map(frame).collect();
    assert_eq!(w.append_batch(&first).unwrap(), 4);
    w.flush(T0 + 400_000).unwrap();
    // Room for one and a half frames more: the next batch of six fails part-way.
    let room = (jpegs[4].len() + 40) * 3 / 2;
    rec.set_io_faults(Some(std::sync::Arc::new(FullAfter(
        std::sync::atomic::AtomicU64::new(room as u64),
    ))));
    // The hook applies to segments opened from now on: close the first so the next opens.
    w.close().unwrap();
    let second: Vec<Frame<'_>> = (4..10).map(frame).collect();
    let err = w.append_batch(&second).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    rec.set_io_faults(None);
    drop(w);
    let got = play_all(&rec, &c, 0);
    let numbers: Vec<Option<u64>> = got.iter().map(|f| number_of(&f.jpeg)).collect();
    assert_eq!(numbers, (0..4).map(Some).collect::<Vec<_>>());
}

//! Recording benchmark: prints figures, asserts nothing.
//!
//! 1. Append cost: 50 cameras × 30 fps of 25 KB VGA JPEGs, paced in real time for
//!    `ESPCAM_BENCH_SECS` (10) seconds, real fsyncs — process CPU per frame (user, system),
//!    beside a baseline that writes the same bytes with plain `write` calls to one file per
//!    camera (no recorder) in the same run; fsyncs per camera per second; fsync latency.
//! 2. Export from page cache: one hour of one VGA camera at 30 fps (fabricated without
//!    syncs), exported as MKV and AVI: time to the first byte and throughput.
//! 3. Seek: a week of one-minute segments (10 080) of one camera at 30 fps with tiny frames;
//!    seek to random instants and read the frame.
//!
//! `cargo bench -p espcam-record --bench record`

// A test harness: a failed step should stop it loudly.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use espcam_proto::CameraId;
use espcam_record::{Config, Durability, ExportFormat, FSYNC_BUCKETS_US, Frame, Recordings};

const SEC: u64 = 1_000_000;

/// (user, system) CPU seconds of this process.
fn cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let tick = 100.0;
    (
        f[11].parse::<f64>().unwrap() / tick,
        f[12].parse::<f64>().unwrap() / tick,
    )
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A real 640×480 JPEG padded with a COM segment to exactly `size` bytes.
fn vga_jpeg(size: usize) -> Vec<u8> {
    let base = common::base_jpeg(640, 480, 7);
    let pad = size - base.len();
    assert!(
        (4..=65_537).contains(&pad),
        "base JPEG {} bytes",
        base.len()
    );
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xFE];
    v.extend_from_slice(&((pad - 2) as u16).to_be_bytes());
    v.extend(std::iter::repeat_n(b'x', pad - 4));
    v.extend_from_slice(&base[2..]);
    assert_eq!(v.len(), size);
    v
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("ESPCAM_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU time this thread has run, ns (`/proc/thread-self/schedstat`: exact, unlike the 10 ms
/// ticks of `/proc/self/stat`).
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split(' ').next().unwrap().parse().unwrap()
}

/// 1b. The recorder's own CPU per frame, exactly: one thread appends frames as fast as it
/// can to 50 writers without syncs (a sync is kernel time the target puts aside),
/// and, in the same run, writes the same bytes with one plain `write` per frame to 50 files;
/// thread CPU time from `schedstat`, rounds alternating, the median of each and of the
/// per-round difference.
fn append_cpu() {
    const CAMS: usize = 50;
    const ROUNDS: usize = 15;
    const PER_ROUND: u64 = 6_000;
    let jpeg = vga_jpeg(25_000);
    println!(
        "\n## 1b. append CPU, exact: {CAMS} writers, {PER_ROUND} frames × {} B per round, no syncs, {ROUNDS} rounds each",
        jpeg.len()
    );
    let dir = bench_dir();
    let cfg = Config {
        durability: Durability::NoSync,
        ..Config::default()
    };
    let (rec, _) = Recordings::open_with(dir.path(), cfg).unwrap();
    let cams: Vec<CameraId> = (0..CAMS)
        .map(|i| CameraId::new(&format!("cpu-{i}")).unwrap())
        .collect();
    let mut writers: Vec<_> = cams.iter().map(|c| rec.writer(c).unwrap()).collect();
    let mut files: Vec<File> = (0..CAMS)
        .map(|i| File::create(dir.path().join(format!("plain-{i}"))).unwrap())
        .collect();
    let mut t = 1_700_000_000 * SEC;
    let (mut rec_ns, mut plain_ns) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let c0 = thread_cpu_ns();
        for k in 0..PER_ROUND {
            files[k as usize % CAMS].write_all(&jpeg).unwrap();
        }
        let c1 = thread_cpu_ns();
        for k in 0..PER_ROUND {
            let w = &mut writers[k as usize % CAMS];
            w.append(&Frame {
                jpeg: &jpeg,
                captured_us: Some(t),
                received_us: t,
                width: 640,
                height: 480,
            })
            .unwrap();
            w.flush_if_due(t).unwrap();
            t += SEC / 30 / CAMS as u64;
        }
        let c2 = thread_cpu_ns();
        plain_ns.push((c1 - c0) as f64 / PER_ROUND as f64);
        rec_ns.push((c2 - c1) as f64 / PER_ROUND as f64);
        for f in &mut files {
            f.set_len(0).unwrap();
            std::io::Seek::rewind(f).unwrap();
        }
    }
    drop(writers);
    let mut own: Vec<f64> = rec_ns.iter().zip(&plain_ns).map(|(r, p)| r - p).collect();
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2] / 1e3, v[0] / 1e3, v[v.len() - 1] / 1e3)
    };
    let (rm, rlo, rhi) = stats(&mut rec_ns);
    let (pm, plo, phi) = stats(&mut plain_ns);
    let (om, olo, ohi) = stats(&mut own);
    println!("| figure | median of {ROUNDS} rounds (min–max) |");
    println!("|---|---|");
    println!(
        "| recorder: append + flush_if_due, CPU per frame (user + system) | {rm:.2} µs ({rlo:.2}–{rhi:.2}) |"
    );
    println!("| plain write() of the same bytes, CPU per frame | {pm:.2} µs ({plo:.2}–{phi:.2}) |");
    println!(
        "| recorder's own CPU per frame (recorder − plain write, same round) | {om:.2} µs ({olo:.2}–{ohi:.2}) |"
    );
    let t0 = thread_cpu_ns();
    let mut x = 0u32;
    for _ in 0..10_000 {
        x ^= crc32fast::hash(std::hint::black_box(&jpeg));
    }
    println!(
        "| of which CRC-32 of the 25 000-byte JPEG (crc32fast) | {:.2} µs (checksum {x:08x}) |",
        (thread_cpu_ns() - t0) as f64 / 10_000.0 / 1e3
    );
}

fn append_cost(secs: u64) {
    const CAMS: usize = 50;
    const FPS: u64 = 30;
    let jpeg = vga_jpeg(25_000);
    println!(
        "## 1. append: {CAMS} cameras × {FPS} fps × {} B JPEG, {secs} s real time, fsync on",
        jpeg.len()
    );
    let ticks = secs * FPS;
    let tick = Duration::from_micros(SEC / FPS);

    // Baseline: the same bytes with one plain write per frame, one file per camera.
    let dir = bench_dir();
    let mut files: Vec<File> = (0..CAMS)
        .map(|i| File::create(dir.path().join(format!("base-{i}"))).unwrap())
        .collect();
    let (u0, s0) = cpu();
    let start = Instant::now();
    for k in 0..ticks {
        for f in &mut files {
            f.write_all(&jpeg).unwrap();
        }
        if let Some(d) = (start + tick * (k as u32 + 1)).checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let (u1, s1) = cpu();
    let frames = (ticks as usize * CAMS) as f64;
    let base_user = (u1 - u0) * 1e6 / frames;
    let base_sys = (s1 - s0) * 1e6 / frames;
    drop(files);

    let (rec, _) = Recordings::open(dir.path()).unwrap();
    let cams: Vec<CameraId> = (0..CAMS)
        .map(|i| CameraId::new(&format!("cam-{i}")).unwrap())
        .collect();
    let mut writers: Vec<_> = cams.iter().map(|c| rec.writer(c).unwrap()).collect();
    let mut slowest_tick = Duration::ZERO;
    let (u0, s0) = cpu();
    let start = Instant::now();
    for k in 0..ticks {
        let t_tick = Instant::now();
        for w in &mut writers {
            let t = now_us();
            w.append(&Frame {
                jpeg: &jpeg,
                captured_us: Some(t),
                received_us: t,
                width: 640,
                height: 480,
            })
            .unwrap();
            w.flush_if_due(t).unwrap();
        }
        slowest_tick = slowest_tick.max(t_tick.elapsed());
        if let Some(d) = (start + tick * (k as u32 + 1)).checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let (u1, s1) = cpu();
    drop(writers);
    let m = rec.metrics();
    let user = (u1 - u0) * 1e6 / frames;
    let sys = (s1 - s0) * 1e6 / frames;
    println!("| figure | plain write() baseline | recorder |");
    println!("|---|---|---|");
    println!("| user CPU per frame | {base_user:.2} µs | {user:.2} µs |");
    println!("| system CPU per frame (write, fsync, …) | {base_sys:.2} µs | {sys:.2} µs |");
    println!(
        "| recorder's own CPU per frame (user, recorder − baseline) | | {:.2} µs |",
        user - base_user
    );
    println!(
        "| fsyncs per camera per second | 0 | {:.2} (group commits + segment closes; {} segments closed) |",
        m.fsyncs as f64 / CAMS as f64 / wall,
        m.segments_closed
    );
    let mut hist = String::new();
    for (i, n) in m.fsync_latency.iter().enumerate() {
        if *n > 0 {
            let label = FSYNC_BUCKETS_US
                .get(i)
                .map_or("> 1 s".to_string(), |b| format!("≤ {} ms", *b as f64 / 1e3));
            hist += &format!("{label}: {n}; ");
        }
    }
    println!("| fsync latency histogram | | {hist} |");
    println!(
        "| slowest tick (50 appends + their syncs) | | {:.1} ms |",
        slowest_tick.as_secs_f64() * 1e3
    );
    println!(
        "| frames recorded / offered | | {} / {} |",
        m.frames,
        ticks as usize * CAMS
    );
}

fn export_hour() {
    let jpeg = vga_jpeg(25_000);
    let frames: u64 = std::env::var("ESPCAM_BENCH_EXPORT_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_600 * 30);
    println!(
        "\n## 2. export: one VGA camera, {frames} frames × {} B ({:.2} GB), from page cache",
        jpeg.len(),
        frames as f64 * jpeg.len() as f64 / 1e9
    );
    let dir = bench_dir();
    let cfg = Config {
        durability: Durability::NoSync,
        ..Config::default()
    };
    let (rec, _) = Recordings::open_with(dir.path(), cfg.clone()).unwrap();
    let cam = CameraId::new("hour").unwrap();
    let t0 = 1_700_000_000 * SEC;
    let fab = Instant::now();
    {
        let mut w = rec.writer(&cam).unwrap();
        for i in 0..frames {
            let t = t0 + i * SEC / 30;
            w.append(&Frame {
                jpeg: &jpeg,
                captured_us: Some(t),
                received_us: t,
                width: 640,
                height: 480,
            })
            .unwrap();
            w.flush_if_due(t).unwrap();
        }
        w.close().unwrap();
    }
    println!(
        "(fabricated in {:.1} s without syncs)",
        fab.elapsed().as_secs_f64()
    );
    // Let writeback finish, so the exports do not compete with it for the disk.
    let t_sync = Instant::now();
    rustix::fs::sync();
    println!("(writeback: {:.1} s)", t_sync.elapsed().as_secs_f64());
    println!(
        "| format | state | file size | planning + first byte: median (min–max) of 5 | streaming |"
    );
    println!("|---|---|---|---|---|");
    // Per format, five times each: from page cache right after reopening the recordings (a
    // cold statement cache, nothing of an earlier export in memory), and from disk (every
    // segment file evicted from the page cache first with `POSIX_FADV_DONTNEED`). The
    // first page-cache run also streams the whole file.
    let seg_dir = dir.path().join("recordings").join("hour");
    let evict = || {
        for e in std::fs::read_dir(&seg_dir).unwrap() {
            let f = File::open(e.unwrap().path()).unwrap();
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        }
    };
    // With `ESPCAM_BENCH_DROP_CACHES=1` (root only) a third state: the whole page cache,
    // dentries and inodes dropped (`echo 3 > /proc/sys/vm/drop_caches`) before the
    // recordings are reopened, so the database, the directory and every index come from disk.
    let drop_caches = std::env::var_os("ESPCAM_BENCH_DROP_CACHES").is_some();
    let states: &[u8] = if drop_caches { &[0, 1, 2] } else { &[0, 1] };
    let mut rec = Some(rec);
    for &state_n in states {
        let cold = state_n > 0;
        for format in [ExportFormat::Mkv, ExportFormat::Avi] {
            let state = ["page cache", "from disk", "cold cache (drop_caches)"][state_n as usize];
            let mut ttfb = Vec::new();
            let mut size = 0;
            let mut streaming = String::new();
            for round in 0..5 {
                drop(rec.take());
                if state_n == 2 {
                    rustix::fs::sync();
                    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
                        .expect("dropping the caches needs root");
                }
                rec = Some(Recordings::open_with(dir.path(), cfg.clone()).unwrap().0);
                let r = rec.as_ref().unwrap();
                if state_n == 1 {
                    evict();
                }
                let start = Instant::now();
                let mut exp = match r.export(&cam, t0, t0 + frames * SEC, format) {
                    Ok(e) => e,
                    Err(e) => {
                        streaming = format!("refused: {e}");
                        break;
                    }
                };
                let first = exp.next_chunk().unwrap().unwrap();
                ttfb.push(start.elapsed().as_secs_f64() * 1e3);
                size = exp.len();
                if cold || round > 0 {
                    continue;
                }
                let mut n = first.len() as u64;
                let stream = Instant::now();
                while let Some(c) = exp.next_chunk().unwrap() {
                    n += c.len() as u64;
                }
                let secs = stream.elapsed().as_secs_f64();
                assert_eq!(n, exp.len());
                streaming = format!(
                    "{:.0} MB/s ({:.0} frames/s)",
                    n as f64 / 1e6 / secs,
                    exp.frames() as f64 / secs
                );
            }
            if ttfb.is_empty() {
                println!("| {format:?} | {state} | | | {streaming} |");
                continue;
            }
            ttfb.sort_by(f64::total_cmp);
            println!(
                "| {format:?} | {state} | {:.2} GB | {:.1} ms ({:.1}–{:.1}) | {streaming} |",
                size as f64 / 1e9,
                ttfb[ttfb.len() / 2],
                ttfb[0],
                ttfb[ttfb.len() - 1]
            );
        }
    }
}

fn seek_week() {
    let fps: u64 = std::env::var("ESPCAM_BENCH_SEEK_FPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let minutes = 7 * 24 * 60u64;
    println!(
        "\n## 3. seek: one camera, a week = {minutes} one-minute segments at {fps} fps (tiny frames)"
    );
    let dir = bench_dir();
    let cfg = Config {
        durability: Durability::NoSync,
        ..Config::default()
    };
    let t0 = 1_700_000_000 * SEC;
    let cam = CameraId::new("week").unwrap();
    let jpeg = [0xFF, 0xD8, 0xFF, 0xFE, 0, 4, b'w', b'k', 0xFF, 0xD9];
    let fab = Instant::now();
    {
        let (rec, _) = Recordings::open_with(dir.path(), cfg.clone()).unwrap();
        let mut w = rec.writer(&cam).unwrap();
        for i in 0..minutes * 60 * fps {
            let t = t0 + i * SEC / fps;
            w.append(&Frame {
                jpeg: &jpeg,
                captured_us: None,
                received_us: t,
                width: 640,
                height: 480,
            })
            .unwrap();
            w.flush_if_due(t).unwrap();
        }
        w.close().unwrap();
    }
    println!(
        "(fabricated in {:.1} s without syncs)",
        fab.elapsed().as_secs_f64()
    );
    // Reopen: a cold SQLite connection and statement cache, as after a restart.
    let (rec, _) = Recordings::open_with(dir.path(), cfg).unwrap();
    let segs = rec.segments(&cam, 0, u64::MAX).unwrap().len();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut lat = Vec::new();
    for _ in 0..1_000 {
        let t = t0 + rng.u64(0..minutes * 60 * SEC);
        let start = Instant::now();
        let mut c = rec.cursor(&cam);
        let m = c.seek(t).unwrap().unwrap();
        let f = c.next_frame().unwrap().unwrap();
        lat.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(m.received_us <= t && f.received_us == m.received_us);
    }
    lat.sort_by(f64::total_cmp);
    println!("| segments | seeks | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    println!(
        "| {segs} | {} | {:.3} ms | {:.3} ms | {:.3} ms |",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let secs = std::env::var("ESPCAM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let only = std::env::var("ESPCAM_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "append" {
        append_cost(secs);
    }
    if only.is_empty() || only == "cpu" {
        append_cpu();
    }
    if only.is_empty() || only == "export" {
        export_hour();
    }
    if only.is_empty() || only == "seek" {
        seek_week();
    }
}

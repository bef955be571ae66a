//! The crash test's two halves, shared by `tests/crash.rs` (3 cycles in `cargo test`) and
//! `examples/crash.rs` (30 cycles, figures in docs/BENCHMARKS.md).
//!
//! The child records numbered frames (two sizes, switching every 100 frames) as fast as it
//! can with real time, and after each sync prints `durable <n>`: the number of the last
//! frame a completed sync covers. The parent SIGKILLs it at a random moment, reopens the
//! recordings and checks that frames 0..=M are all there, in order, byte for byte, with
//! M ≥ the last number the child reported.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use espcam_proto::CameraId;
use espcam_record::{Config, Frame, Recordings, RecoveryReport};

use super::{base_jpeg, number_of, numbered};

pub const DIR_ENV: &str = "ESPCAM_RECORD_CRASH_DIR";

pub fn config() -> Config {
    Config {
        segment_duration_us: 3_000_000,
        commit_interval_us: 250_000,
        ..Config::default()
    }
}

fn camera() -> CameraId {
    CameraId::new("crash").unwrap()
}

pub struct Bases {
    a: Vec<u8>,
    b: Vec<u8>,
}

impl Bases {
    pub fn new() -> Self {
        Self {
            a: base_jpeg(64, 48, 9),
            b: base_jpeg(48, 32, 10),
        }
    }

    /// Frame `n`: JPEG and size.
    pub fn frame(&self, n: u64) -> (Vec<u8>, u16, u16) {
        if (n / 100).is_multiple_of(2) {
            (numbered(&self.a, n), 64, 48)
        } else {
            (numbered(&self.b, n), 48, 32)
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The child: records until killed.
pub fn child(dir: &Path) -> ! {
    let (rec, _) = Recordings::open_with(dir, config()).unwrap();
    let cam = camera();
    let mut cur = rec.cursor(&cam);
    let first = match cur.seek(u64::MAX).unwrap() {
        Some(_) => number_of(&cur.next_frame().unwrap().unwrap().jpeg).unwrap() + 1,
        None => 0,
    };
    drop(cur);
    let bases = Bases::new();
    let mut w = rec.writer(&cam).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "start {first}").unwrap();
    let mut reported = 0;
    for n in first.. {
        let (jpeg, width, height) = bases.frame(n);
        let t = now_us();
        w.append(&Frame {
            jpeg: &jpeg,
            captured_us: Some(t),
            received_us: t,
            width,
            height,
        })
        .unwrap();
        w.flush_if_due(t).unwrap();
        let d = w.durable_frames();
        if d != reported {
            reported = d;
            writeln!(out, "durable {}", first + d - 1).unwrap();
            out.flush().unwrap();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    unreachable!()
}

/// One cycle's figures.
#[derive(Debug)]
pub struct Cycle {
    pub ran_ms: u64,
    pub last_durable: Option<u64>,
    pub frames_present: u64,
    pub beyond_durable: u64,
    pub report: RecoveryReport,
    pub reopen_ms: f64,
}

/// Runs the child with `cmd`, kills it after `kill_after`, reopens and checks everything.
pub fn cycle(mut cmd: Command, dir: &Path, kill_after: Duration, bases: &Bases) -> Cycle {
    let t0 = Instant::now();
    let mut child = cmd
        .env(DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("durable ") {
                last = Some(n.trim().parse::<u64>().unwrap());
            }
        }
        last
    });
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ran_ms = t0.elapsed().as_millis() as u64;
    let last_durable = reader.join().unwrap();

    let t1 = Instant::now();
    let (rec, report) = Recordings::open_with(dir, config()).unwrap();
    let reopen_ms = t1.elapsed().as_secs_f64() * 1e3;
    let mut cur = rec.cursor(&camera());
    cur.seek(0).unwrap();
    let mut n = 0u64;
    while let Some(f) = cur.next_frame().unwrap() {
        let (jpeg, w, h) = bases.frame(n);
        assert_eq!(number_of(&f.jpeg), Some(n), "frames in order, none missing");
        assert!(f.jpeg == jpeg, "frame {n} intact");
        assert_eq!((f.width, f.height), (w, h), "frame {n} size");
        n += 1;
    }
    if let Some(d) = last_durable {
        assert!(
            n > d,
            "frame {d} was reported durable but only 0..{n} survived"
        );
    }
    Cycle {
        ran_ms,
        last_durable,
        frames_present: n,
        beyond_durable: n - last_durable.map_or(0, |d| d + 1),
        report,
        reopen_ms,
    }
}

//! The full crash test: 30 cycles (or `ESPCAM_CRASH_CYCLES`) of recording in a child process
//! SIGKILLed at a random moment between 0.3 and 3 s, each followed by a reopen that must find
//! every frame up to the last one reported durable, intact. Prints one line per cycle and a
//! summary; panics on the first violation.
//!
//! `cargo run --release -p espcam-record --example crash`

// A test harness: a failed step should stop it loudly.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::crash::{self, Bases};

fn main() {
    if let Some(dir) = std::env::var_os(crash::DIR_ENV) {
        crash::child(std::path::Path::new(&dir));
    }
    let cycles: u32 = std::env::var("ESPCAM_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let bases = Bases::new();
    let mut rng = fastrand::Rng::new();
    let (mut recovered, mut truncated, mut beyond, mut reopen_max) = (0, 0, 0, 0f64);
    let mut last = 0;
    for i in 0..cycles {
        let c = crash::cycle(
            Command::new(std::env::current_exe().unwrap()),
            dir.path(),
            Duration::from_millis(rng.u64(300..3_000)),
            &bases,
        );
        println!(
            "cycle {i:2}: killed after {:4} ms, last durable #{:>6}, frames present {:>6} \
             (+{} written after the last sync), recovered {} segment(s), {} torn bytes cut, \
             reopen {:.1} ms",
            c.ran_ms,
            c.last_durable.map_or("-".into(), |d| d.to_string()),
            c.frames_present,
            c.beyond_durable,
            c.report.segments_recovered,
            c.report.bytes_truncated,
            c.reopen_ms
        );
        recovered += c.report.segments_recovered;
        truncated += u64::from(c.report.bytes_truncated > 0);
        beyond += c.beyond_durable;
        reopen_max = reopen_max.max(c.reopen_ms);
        last = c.frames_present;
    }
    println!(
        "{cycles} cycles: every durable frame present and intact; {last} frames in total, \
         {recovered} open segments recovered, {truncated} cycles with a torn tail cut, \
         {beyond} frames beyond the last reported sync kept, slowest reopen {reopen_max:.1} ms"
    );
}

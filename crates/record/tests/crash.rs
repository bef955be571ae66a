//! Crash test, bounded form: the test binary re-runs itself as a recording child, which is
//! SIGKILLed at random moments; after each kill every frame up to the last one reported
//! durable must be present and intact. The full 30 cycles: `cargo run --release -p
//! espcam-record --example crash` (figures in docs/BENCHMARKS.md).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::crash::{self, Bases};

/// The child half; run only by `kill_9_at_random_moments_loses_nothing_durable`.
#[test]
#[ignore = "child process of the crash test"]
fn crash_child() {
    let dir = std::env::var_os(crash::DIR_ENV).expect("run by the crash test");
    crash::child(std::path::Path::new(&dir));
}

#[test]
fn kill_9_at_random_moments_loses_nothing_durable() {
    let dir = tempfile::tempdir().unwrap();
    let bases = Bases::new();
    let mut rng = fastrand::Rng::with_seed(11);
    let mut total_durable = 0;
    for i in 0..3 {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ]);
        let c = crash::cycle(
            cmd,
            dir.path(),
            Duration::from_millis(rng.u64(700..1_500)),
            &bases,
        );
        eprintln!("cycle {i}: {c:?}");
        let d = c
            .last_durable
            .expect("the child reported a sync before it was killed");
        assert!(d >= total_durable, "numbers keep growing across cycles");
        total_durable = d;
        if i > 0 {
            assert!(c.report.segments_recovered >= 1, "{}", c.report);
        }
    }
}

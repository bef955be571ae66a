//! Runs the no_std proof as part of `cargo test`: builds this crate alone with the `proof`
//! feature, where it has its own `#[panic_handler]`, so any `std` leaking into `espcam-proto`,
//! `espcam-camera` or `espcam-motion` fails the build with a duplicate `panic_impl` lang item.
//!
//! It uses its own target directory so it never waits for the lock of the `cargo test` that
//! runs it.

use std::path::Path;
use std::process::Command;

#[test]
fn proto_and_camera_build_without_std() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("crate lives at <workspace>/crates/nostd-check");
    let target = workspace.join("target").join("nostd-proof");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "espcam-nostd-check",
            "--features",
            "proof",
            "--profile",
            "nostd-proof",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "the no_std proof failed to build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = target.join("nostd-proof").join("libespcam_nostd_check.a");
    assert!(lib.exists(), "{} was not produced", lib.display());
}

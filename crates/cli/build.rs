//! Lays out the release binary's start-up code together (`startup.order`).
//!
//! Why: an idle hub runs about 2 MB of its 12 MB of code (start-up and its timers), but
//! those functions lie scattered over the whole `.text`, and the kernel maps the page
//! cache around every page fault (fault-around, large folios), so 8–9 MB of code ended up
//! resident for 2 MB used. Listing the functions an idle hub runs, in the order the linker
//! should place them (`--symbol-ordering-file`, an option of LLD, the linker Rust uses on
//! x86-64 Linux since 1.90), puts them in one contiguous run: the same binary, the same
//! code, less of it mapped. Figures in docs/BENCHMARKS.md ("Idle RSS").
//!
//! The file lists symbol names; names a later build no longer has are skipped by the linker
//! (`--no-warn-symbol-ordering`), so a stale list only loses some of the gain, never
//! breaks a build. Editing code keeps most names, but a crate's symbol names carry a hash
//! of its package metadata (version, features, dependencies): after a dependency of the hub
//! or the CLI changes, or the version, regenerate the list with `scripts/startup-order`
//! (callgrind on an idle hub). Measured: one dependency added to the hub left idle RSS at
//! 11.4–11.7 MiB with the old list, 8.1–8.3 MiB with a fresh one, 13.6 MiB without. Only release builds for x86_64 Linux with Rust's own linker use it; a linker of
//! the user's choice (`RUSTC_LINKER`, `-C linker…` in RUSTFLAGS) is left alone, and
//! `ESPCAM_NO_STARTUP_ORDER=1` turns it off.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=startup.order");
    println!("cargo:rerun-if-env-changed=ESPCAM_NO_STARTUP_ORDER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || std::env::var_os("ESPCAM_NO_STARTUP_ORDER").is_some()
        || std::env::var_os("RUSTC_LINKER").is_some()
        || var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        || !rustc_uses_lld()
    {
        return;
    }
    let order = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("startup.order");
    if !order.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=espcam=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bin=espcam=-Wl,--no-warn-symbol-ordering");
}

/// Rust 1.90 and later link x86-64 Linux binaries with their own LLD.
fn rustc_uses_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}

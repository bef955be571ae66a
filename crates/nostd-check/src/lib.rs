//! Proof that `espcam-proto`, `espcam-camera` and `espcam-motion` build without `std`, on a
//! host toolchain.
//!
//! The firmware needs these crates `no_std + alloc`, but CI has no Xtensa toolchain. So this
//! crate links them into a `#![no_std]` static library with its own `#[panic_handler]` and
//! `#[global_allocator]`. If any dependency, however deep, pulls in `std`, `std` brings its
//! own panic handler and the build fails:
//!
//! ```text
//! error[E0152]: found duplicate lang item `panic_impl`
//!   = note: the lang item is first defined in crate `std` (which `serde_json` depends on)
//! ```
//!
//! (Observed by temporarily adding `serde_json = { version = "1", features = ["std"] }` here.)
//!
//! Run the proof with:
//!
//! ```text
//! cargo build -p espcam-nostd-check --features proof --profile nostd-proof
//! ```
//!
//! Two details make that command what it is, and are why this crate must never do more:
//!
//! - **`-p` alone, behind a feature.** Cargo unifies dependency features across every package
//!   of one build, so in `cargo build --workspace` the hub's `serde_json/std` is switched on
//!   for proto too, and an unconditional panic handler here would break every workspace
//!   build. Without `proof` this crate is an ordinary std staticlib that checks nothing;
//!   `cargo build -p espcam-nostd-check --features proof` resolves only this crate's own
//!   dependency graph, where any `std` is a real leak.
//! - **`panic = "abort"`** (the `nostd-proof` profile in the root `Cargo.toml`). A `no_std`
//!   final artifact built with the default `panic = "unwind"` fails with "unwinding panics
//!   are not supported without std" (it would need the unstable `eh_personality` lang item).
//!   `panic` cannot be set per package, and switching the dev profile to abort would change
//!   how host servers behave on a panic, so the proof gets its own profile.
#![no_std]

// Ordinary (non-proof) builds: link std, which supplies the panic handler and allocator, so
// the crate builds whatever features the rest of the workspace switches on.
#[cfg(not(feature = "proof"))]
extern crate std;

use espcam_proto::{CameraMsg, FrameLimits, HubMsg, decode_frame, jpeg};
// The camera core must link without std too (the firmware runs it).
use espcam_camera as _;
// So must motion detection (sans-IO like the others; nothing stops a camera running it).
use espcam_motion::decode_dc;

#[cfg(feature = "proof")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Never runs: the library is only linked, not executed.
    loop {}
}

/// An allocator that always fails: enough to link `alloc`, since nothing here ever runs.
#[cfg(feature = "proof")]
mod null_alloc {
    use core::alloc::{GlobalAlloc, Layout};

    struct NullAlloc;

    // `unsafe_code` is denied workspace-wide; `GlobalAlloc` is an unsafe trait, and returning
    // null (allocation failure) upholds its contract trivially.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for NullAlloc {
        unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
            core::ptr::null_mut()
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    }

    #[global_allocator]
    static ALLOCATOR: NullAlloc = NullAlloc;
}

/// Decodes `buf[..len]` as a stream frame and as control JSON, so that the decoders (and
/// everything they use from serde, serde_json and thiserror) are really compiled and linked,
/// not just type-checked. Returns the frame width, or a negative code.
// `no_mangle` counts as unsafe code (symbol clashes); the name is unique to this crate.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn espcam_nostd_check(buf: &[u8; 512], len: usize) -> i32 {
    let Some(data) = buf.get(..len) else {
        return -1;
    };
    if let Ok(frame) = decode_frame(data, &FrameLimits::default()) {
        return i32::from(frame.width);
    }
    if jpeg::scan(data).is_ok() {
        return -2;
    }
    if let Ok(image) = decode_dc(data) {
        return -6 - i32::from(image.width() > 0);
    }
    match core::str::from_utf8(data) {
        Ok(text) if CameraMsg::from_json(text).is_ok() => -3,
        Ok(text) if HubMsg::from_json(text).is_ok() => -4,
        _ => -5,
    }
}

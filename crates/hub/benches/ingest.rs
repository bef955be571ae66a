//! What following a camera for recording costs ingest, per frame: [`Camera::ingest`] of a
//! real VGA frame with no tap, against the same with one `Every` tap (the recorder's) that
//! is drained every three frames as a writer thread drains it (30 fps, every 100 ms).
//!
//! Issue 11's target is "recording adds ≤ 3 µs hub CPU per frame (user + system, beside the
//! write syscalls)". The end-to-end benchmark (`espcam-bench --recording`) measures the
//! whole hub on against off, where the rest of the hub's share is the difference of two
//! large numbers; this pins down the one thing recording adds on ingest's own path, in
//! nanoseconds, alternating rounds in one run. Prints figures, asserts nothing.
//!
//! ```sh
//! cargo bench -p espcam-hub --bench ingest
//! ```

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use espcam_hub::config::Config;
use espcam_hub::state::Hub;
use espcam_hub::state::camera::{Ingest, Source};
use espcam_hub::state::tap::DropPolicy;
use espcam_proto::{CameraId, FrameFlags, FrameHeader, FrameLimits, encode_frame};

/// Frames per round and rounds per variant.
const FRAMES: u64 = 200_000;
const ROUNDS: usize = 9;

fn main() {
    let jpeg = vga_jpeg();
    let msg = Bytes::from(encode_frame(
        &FrameHeader {
            flags: FrameFlags(0),
            sequence: 1,
            timestamp_us: 1_700_000_000_000_000,
            width: 640,
            height: 480,
            jpeg_len: jpeg.len() as u32,
        },
        &jpeg,
    ));
    let limits = FrameLimits::default();
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return;
        }
    };
    // The hub's registry needs a runtime context (its background tasks).
    let _guard = rt.enter();
    let hub = Hub::new(Config::default(), None);
    let (Ok(a), Ok(b)) = (CameraId::new("plain"), CameraId::new("recorded")) else {
        eprintln!("bad camera ids");
        return;
    };
    let (Ok(plain), Ok(recorded)) = (
        hub.register(&a, Source::Push),
        hub.register(&b, Source::Push),
    ) else {
        eprintln!("cameras not registered");
        return;
    };
    let mut tap = recorded.tap(DropPolicy::Every { capacity: 64 });

    println!(
        "Camera::ingest of a {}-byte 640×480 frame, {FRAMES} frames per round, {ROUNDS} rounds, alternating",
        msg.len()
    );
    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut taken = 0u64;
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        for _ in 0..FRAMES {
            if !matches!(plain.ingest(msg.clone(), &limits), Ingest::Published) {
                eprintln!("frame refused");
                return;
            }
        }
        off.push(t0.elapsed().as_nanos() as f64 / FRAMES as f64);
        let t0 = Instant::now();
        for i in 0..FRAMES {
            if !matches!(recorded.ingest(msg.clone(), &limits), Ingest::Published) {
                eprintln!("frame refused");
                return;
            }
            // The writer thread's drain (100 ms at 30 fps: three frames), counted here too.
            if i % 3 == 2 {
                while let Ok(Some(t)) = tap.try_next() {
                    taken += 1;
                    black_box(&t.frame);
                }
            }
        }
        on.push(t0.elapsed().as_nanos() as f64 / FRAMES as f64);
    }
    let (off_m, on_m) = (median(&mut off), median(&mut on));
    let mut diff: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a - b).collect();
    let diff_m = median(&mut diff);
    println!("| variant | ns per frame, median (min–max) of {ROUNDS} |");
    println!("|---|---|");
    println!(
        "| no tap | {off_m:.0} ({:.0}–{:.0}) |",
        min(&off),
        max(&off)
    );
    println!(
        "| one `Every` tap, drained every 3 frames | {on_m:.0} ({:.0}–{:.0}) |",
        min(&on),
        max(&on)
    );
    println!(
        "| **added by the recorder's tap** (same round) | **{diff_m:.0}** ({:.0}–{:.0}) |",
        min(&diff),
        max(&diff)
    );
    println!(
        "frames taken from the tap: {taken} of {}",
        FRAMES * ROUNDS as u64
    );
    hub.stop();
}

/// A 640×480 JPEG of a noisy pattern, about the size a VGA camera sends.
fn vga_jpeg() -> Vec<u8> {
    let (w, h) = (640u16, 480u16);
    let mut state = 0x2545_f491_u32;
    let pixels: Vec<u8> = (0..w as usize * h as usize * 3)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            ((i / 3 % 640) as u32 / 3 + (state & 0x1f)) as u8
        })
        .collect();
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, 60);
    if let Err(e) = encoder.encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb) {
        eprintln!("encoding the test picture: {e}");
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

//! libFuzzer target: arbitrary bytes as one camera JPEG for motion analysis.
#![no_main]

#[path = "../motion_bodies.rs"]
mod motion_bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| motion_bodies::motion(data));

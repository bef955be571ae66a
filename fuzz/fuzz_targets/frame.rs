//! libFuzzer target: arbitrary bytes as one stream-channel binary message.
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::frame(data));

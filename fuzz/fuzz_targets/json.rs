//! libFuzzer target: arbitrary bytes as one control-channel or standalone text message.
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::json(data));

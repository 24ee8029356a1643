#![no_main]
#[path = "../bodies/feed_event.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));

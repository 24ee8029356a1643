#![no_main]
//! Configuration documents are untrusted: validation must never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = revguard::Policy::from_json(data);
});

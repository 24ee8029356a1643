//! Configuration documents are untrusted: validation must never panic.

pub fn run(data: &[u8]) {
    let _ = revguard::Policy::from_json(data);
}

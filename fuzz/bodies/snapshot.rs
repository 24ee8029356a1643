//! Hostile snapshot bytes: decoding, verifying and inspecting must never panic. The first
//! byte picks whether the input is taken as is or re-signed with the fuzz key, so the
//! fuzzer also reaches the content parser behind the signature check.

#[path = "resign.rs"]
mod resign;

use revguard::snapshot::{
    inspect, RevocationState, SigningKey, SnapshotKeys, TokenIds, SNAPSHOT_CONTEXT, SNAPSHOT_MAGIC,
};

pub fn run(data: &[u8]) {
    let data = &resign::maybe_signed(data, SNAPSHOT_MAGIC, SNAPSHOT_CONTEXT);
    let Ok(key) = SigningKey::from_seed(resign::SEED) else {
        return;
    };
    let Ok(keys) = SnapshotKeys::parse(&[key.public_key_text()]) else {
        return;
    };
    let keys = keys.with_max_bytes(1 << 20);
    let _ = inspect(data, Some(&keys));
    if let Ok(state) = RevocationState::from_snapshot(data, &keys) {
        let ids = TokenIds {
            jti: Some("j"),
            sid: Some("s"),
            sub: Some("u"),
            tenant: Some("t"),
            issued_at: None,
        };
        let _ = state.check(&ids);
        let _ = state.is_stale(u64::MAX, u64::MAX, u64::MAX);
    }
}

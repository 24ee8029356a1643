//! Hostile delta bytes applied to a valid snapshot: never a panic, and a refused delta
//! leaves the state unchanged. The first byte picks whether the input is taken as is or
//! re-signed with the fuzz key, so the fuzzer also reaches the delta parser.

#[path = "resign.rs"]
mod resign;

use revguard::snapshot::{
    build_snapshot, inspect, BuildOptions, RevocationState, SigningKey, SnapshotKeys, TokenIds,
    DELTA_CONTEXT, DELTA_MAGIC,
};

pub fn run(data: &[u8]) {
    let data = &resign::maybe_signed(data, DELTA_MAGIC, DELTA_CONTEXT);
    let Ok(key) = SigningKey::from_seed(resign::SEED) else {
        return;
    };
    let Ok(keys) = SnapshotKeys::parse(&[key.public_key_text()]) else {
        return;
    };
    let opts = BuildOptions {
        generation: 1,
        built_at: 0,
        max_age_secs: 60,
        fp_rate: 0.01,
        salt: [1; 32],
    };
    let Ok(base) = build_snapshot(&[], &opts, &key) else {
        return;
    };
    let Ok(mut state) = RevocationState::from_snapshot(&base, &keys) else {
        return;
    };
    let _ = inspect(data, None);
    let before = state.generation();
    match state.apply_delta(data, &keys) {
        Ok(applied) => assert!(applied.generation > before),
        Err(_) => assert_eq!(state.generation(), before),
    }
    let ids = TokenIds {
        jti: Some("j"),
        sid: Some("s"),
        sub: Some("u"),
        tenant: Some("t"),
        issued_at: Some(5),
    };
    let _ = state.check(&ids);
}

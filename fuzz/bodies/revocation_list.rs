//! Hostile revocation lists (JSON Lines): parsing never panics, and whatever parses builds.

use revguard::snapshot::{
    build_snapshot, parse_revocations, BuildOptions, RevocationLimits, SigningKey,
};

pub fn run(data: &[u8]) {
    let limits = RevocationLimits {
        max_line_bytes: 4096,
        max_entries: 10_000,
    };
    let Ok(entries) = parse_revocations(data, &limits) else {
        return;
    };
    let Ok(key) = SigningKey::from_seed([0x66; 32]) else {
        return;
    };
    let opts = BuildOptions {
        generation: 1,
        built_at: 0,
        max_age_secs: 60,
        fp_rate: 0.01,
        salt: [1; 32],
    };
    assert!(build_snapshot(&entries, &opts, &key).is_ok());
}

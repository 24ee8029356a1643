//! The filter meets its target: one million revoked ids at the default rate, one million
//! absent ids checked; the measured false-positive rate is within 10% of the target, and
//! the filter costs at most 1.5 x log2(1/rate) bits per revoked entry.

use revguard::snapshot::{
    build_snapshot, inspect, BuildOptions, Revocation, RevocationState, RevocationTarget,
    SigningKey, SnapshotKeys, TokenIds, Verdict, DEFAULT_FP_RATE,
};

const N: usize = 1_000_000;

#[test]
fn one_million_entries_meet_the_target_rate_and_size() {
    let key = SigningKey::from_seed([7; 32]).unwrap();
    let keys = SnapshotKeys::parse(&[key.public_key_text()]).unwrap();
    let entries: Vec<Revocation> = (0..N)
        .map(|i| Revocation {
            target: RevocationTarget::Jti(format!("revoked-{i}")),
            exp: None,
        })
        .collect();
    let opts = BuildOptions {
        generation: 1,
        built_at: 1_700_000_000,
        max_age_secs: 300,
        fp_rate: DEFAULT_FP_RATE,
        salt: [0x5a; 32],
    };
    let bytes = build_snapshot(&entries, &opts, &key).unwrap();
    drop(entries);

    let report = inspect(&bytes, Some(&keys)).unwrap();
    let filter = report.filter.unwrap();
    let bits_per_entry = (filter.size_bytes * 8) as f64 / N as f64;
    let bound = 1.5 * (1.0 / DEFAULT_FP_RATE).log2();
    assert!(
        bits_per_entry <= bound,
        "{bits_per_entry} bits per entry > {bound}"
    );
    let whole_file = (bytes.len() * 8) as f64 / N as f64;
    assert!(
        whole_file <= bound,
        "{whole_file} bits per entry for the whole file"
    );

    let state = RevocationState::from_snapshot(&bytes, &keys).unwrap();
    let mut name = String::new();
    let mut hits = 0usize;
    for i in 0..N {
        use std::fmt::Write;
        name.clear();
        write!(name, "absent-{i}").unwrap();
        let ids = TokenIds {
            jti: Some(&name),
            ..TokenIds::default()
        };
        if state.check(&ids) != Verdict::Clear {
            hits += 1;
        }
    }
    let measured = hits as f64 / N as f64;
    eprintln!(
        "1M entries: {bits_per_entry:.2} filter bits per entry (bound {bound:.2}), {whole_file:.2} bits per entry for the whole file; \
         measured false-positive rate {measured:.6} on 1M absent ids (target {DEFAULT_FP_RATE})"
    );
    assert!(
        (measured - DEFAULT_FP_RATE).abs() <= DEFAULT_FP_RATE * 0.1,
        "measured false-positive rate {measured}, target {DEFAULT_FP_RATE}"
    );
    // No false negatives.
    for i in (0..N).step_by(997) {
        let name = format!("revoked-{i}");
        let ids = TokenIds {
            jti: Some(&name),
            ..TokenIds::default()
        };
        assert_ne!(state.check(&ids), Verdict::Clear, "{name}");
    }
}

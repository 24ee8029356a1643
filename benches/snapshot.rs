//! Snapshot costs: a Bloom-filter check, an exact-table check, and decode + verify, at
//! 100k and 1M entries. Run with `cargo bench --bench snapshot`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use revguard::snapshot::{
    build_snapshot, BuildOptions, Revocation, RevocationState, RevocationTarget, SigningKey,
    SnapshotKeys, TokenIds, DEFAULT_FP_RATE,
};

const SIZES: [usize; 2] = [100_000, 1_000_000];

fn snapshot(n: usize, key: &SigningKey, subjects: bool) -> Vec<u8> {
    let entries: Vec<Revocation> = (0..n)
        .map(|i| Revocation {
            target: if subjects {
                RevocationTarget::Subject {
                    sub: format!("user-{i}"),
                    not_before: 1_700_000_000,
                }
            } else {
                RevocationTarget::Jti(format!("token-{i}"))
            },
            exp: None,
        })
        .collect();
    let opts = BuildOptions {
        generation: 1,
        built_at: 1_700_000_000,
        max_age_secs: 300,
        fp_rate: DEFAULT_FP_RATE,
        salt: [3; 32],
    };
    build_snapshot(&entries, &opts, key).expect("build")
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::from_seed([1; 32]).expect("key");
    let keys = SnapshotKeys::parse(&[key.public_key_text()]).expect("keys");
    for n in SIZES {
        let jti_bytes = snapshot(n, &key, false);
        let jti_state = RevocationState::from_snapshot(&jti_bytes, &keys).expect("decode");
        let sub_bytes = snapshot(n, &key, true);
        let sub_state = RevocationState::from_snapshot(&sub_bytes, &keys).expect("decode");

        c.bench_with_input(
            BenchmarkId::new("bloom_check_absent_jti", n),
            &jti_state,
            |b, s| {
                let ids = TokenIds {
                    jti: Some("token-absent"),
                    ..TokenIds::default()
                };
                b.iter(|| s.check(black_box(&ids)))
            },
        );
        c.bench_with_input(
            BenchmarkId::new("bloom_check_revoked_jti", n),
            &jti_state,
            |b, s| {
                let ids = TokenIds {
                    jti: Some("token-42"),
                    ..TokenIds::default()
                };
                b.iter(|| s.check(black_box(&ids)))
            },
        );
        c.bench_with_input(
            BenchmarkId::new("exact_check_subject", n),
            &sub_state,
            |b, s| {
                let ids = TokenIds {
                    sub: Some("user-42"),
                    issued_at: Some(1_800_000_000),
                    ..TokenIds::default()
                };
                b.iter(|| s.check(black_box(&ids)))
            },
        );
        let mut group = c.benchmark_group("decode_verify");
        group.sample_size(10);
        group.bench_with_input(BenchmarkId::new("jti", n), &jti_bytes, |b, bytes| {
            b.iter(|| RevocationState::from_snapshot(black_box(bytes), &keys).expect("decode"))
        });
        group.bench_with_input(BenchmarkId::new("subjects", n), &sub_bytes, |b, bytes| {
            b.iter(|| RevocationState::from_snapshot(black_box(bytes), &keys).expect("decode"))
        });
        group.finish();
    }
}

criterion_group!(snapshot_benches, benches);
criterion_main!(snapshot_benches);

//! Cost of the token path: full verification per algorithm, the cached path (hash + lookup), and
//! the pre-crypto `inspect`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use revguard::jwks::{Algorithm, KeySet};
use revguard::jwt::{inspect, verify, Claims, VerifyPolicy};
use revguard::token_cache::TokenCache;

#[path = "../tests/common/mod.rs"]
mod common;

use common::{jwks, payload, Signer, ALL_ALGS, AUDIENCE, ISSUER, NOW};

fn policy() -> VerifyPolicy {
    VerifyPolicy {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        clock_skew_secs: 60,
        max_lifetime_secs: Some(86_400),
        required_claims: vec!["sub".into()],
        required_type: None,
        max_token_bytes: 16 * 1024,
    }
}

fn bench_verify(c: &mut Criterion) {
    let policy = policy();
    let mut group = c.benchmark_group("verify");
    for alg in ALL_ALGS {
        let signer = Signer::generate(alg, &format!("kid-{alg}"));
        // A realistic set: the signing key among a few others.
        let others: Vec<_> = ["ES256", "EdDSA", "HS256"]
            .iter()
            .map(|a| Signer::generate(a, &format!("other-{a}")).public_jwk())
            .collect();
        let mut published = vec![signer.public_jwk()];
        published.extend(others);
        let keys = KeySet::from_jwks(&jwks(&published), Algorithm::ALL).unwrap();
        let token = signer.sign(&payload());
        assert!(verify(&token, &keys, &policy, NOW).is_ok());
        group.bench_function(alg, |b| {
            b.iter(|| verify(black_box(&token), &keys, &policy, NOW))
        });
    }
    group.finish();
}

fn bench_cached_path(c: &mut Criterion) {
    let signer = Signer::generate("ES256", "k");
    let keys = KeySet::from_jwks(&jwks(&[signer.public_jwk()]), Algorithm::ALL).unwrap();
    let token = signer.sign(&payload());
    let claims = verify(&token, &keys, &policy(), NOW).unwrap();
    let mut cache: TokenCache<Claims> = TokenCache::new(10_000);
    for i in 0..9_999 {
        cache.insert(&format!("filler-{i}"), claims.clone(), NOW + 3600, NOW);
    }
    cache.insert(&token, claims.clone(), claims.exp, NOW);
    c.bench_function("cache/get", |b| {
        b.iter(|| cache.get(black_box(&token), NOW).is_some())
    });
}

fn bench_inspect(c: &mut Criterion) {
    let token = Signer::generate("RS256", "k").sign(&payload());
    c.bench_function("inspect", |b| {
        b.iter(|| inspect(black_box(&token), 16 * 1024))
    });
}

/// The work a token verified by another worker costs on top of a cached one: its SHA-256 (the
/// shared-data key), the parse, and every claim check without the signature.
fn bench_shared_verdict(c: &mut Criterion) {
    let token = Signer::generate("ES256", "k").sign(&payload());
    let policy = policy();
    let mut group = c.benchmark_group("shared_verdict");
    group.bench_function("token_key", |b| {
        b.iter(|| revguard::token_cache::token_key(black_box(&token)))
    });
    group.bench_function("inspect", |b| {
        b.iter(|| inspect(black_box(&token), 16 * 1024))
    });
    group.bench_function("inspect_and_claims", |b| {
        b.iter(|| {
            let inspected = inspect(black_box(&token), 16 * 1024).unwrap();
            revguard::jwt::claims_verified_elsewhere(inspected, &policy, NOW)
        })
    });
    group.finish();
}

/// The path normalisation every request goes through before route matching (src/path.rs).
fn bench_path(c: &mut Criterion) {
    let options = revguard::config::PathConfig::default();
    let mut group = c.benchmark_group("path/normalize");
    for (name, target) in [
        ("plain", "/api/v1/orders/12345?expand=items&limit=10"),
        ("hostile", "//api/./v1/../v1/%6Frders//12345/?q=%2e%2e"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| revguard::path::normalize(black_box(target), &options))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_verify,
    bench_cached_path,
    bench_inspect,
    bench_shared_verdict,
    bench_path
);
criterion_main!(benches);

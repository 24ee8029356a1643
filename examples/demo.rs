//! The revguard story in one run, on an embedded default configuration: an identity provider
//! issues tokens, the origin publishes signed revocation data, and the engine (the same core
//! that runs inside the proxy-wasm filter and the edge worker) decides each request.
//!
//! Run: `cargo run --example demo`

use jwt_simple::prelude::*;
use revguard::decision::Decision;
use revguard::http::HttpOutcome;
use revguard::snapshot::{
    build_delta, build_snapshot, BuildOptions, DeltaOptions, Revocation, RevocationTarget,
    SigningKey,
};
use revguard::{Engine, RequestView};
use serde_json::json;

const NOW: u64 = 1_767_225_600;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let idp = ES256KeyPair::generate().with_key_id("idp-key-1");
    let origin = SigningKey::from_seed(rand_seed())?;
    let config = json!({
        "issuers": [{"issuer": "https://idp.demo", "audiences": ["orders-api"], "algorithms": ["ES256"],
                     "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
        "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
        "revocation": {"upstream": "origin", "path": "/current.snap", "delta_path": "/current.delta",
                       "refresh_interval_secs": 10, "public_keys": [origin.public_key_text()]},
        "introspection": {"upstream": "idp", "path": "/introspect", "client_id": "gateway", "client_secret": "demo"}
    });
    let mut engine = Engine::from_config_json(config.to_string().as_bytes())?;
    let jwks =
        json!({"keys": [serde_json::from_str::<serde_json::Value>(&idp.public_key().to_jwk())?]});
    engine.load_keys(0, jwks.to_string().as_bytes(), NOW)?;

    let mint = |sub: &str, sid: &str| -> Result<String, jwt_simple::Error> {
        let mut claims = Claims::with_custom_claims(json!({"sid": sid}), Duration::from_secs(3600))
            .with_issuer("https://idp.demo")
            .with_audience("orders-api")
            .with_subject(sub)
            .with_jwt_id(format!("{sub}-token-1"));
        claims.issued_at = Some(UnixTimeStamp::from_secs(NOW));
        claims.invalid_before = Some(UnixTimeStamp::from_secs(NOW));
        claims.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
        idp.sign(claims)
    };
    let alice = mint("alice", "session-a")?;
    let bob = mint("bob", "session-b")?;

    println!("revguard demo: one engine, two users, three kinds of revocation\n");
    let base = build_snapshot(&[], &options(1, NOW), &origin)?;
    engine.load_snapshot(&base)?;
    println!(
        "origin publishes snapshot generation 1 (nothing revoked, {} bytes)",
        base.len()
    );
    show(&mut engine, "alice", &alice, NOW + 1);
    show(&mut engine, "bob", &bob, NOW + 1);

    let delta = build_delta(
        &base,
        &[revoke(RevocationTarget::Sid("session-a".into()))],
        &DeltaOptions {
            generation: 2,
            built_at: NOW + 20,
            max_age_secs: 300,
        },
        &origin,
    )?;
    engine.load_delta(&delta)?;
    println!(
        "\nalice logs out everywhere: origin publishes delta generation 2 ({} bytes)",
        delta.len()
    );
    show(&mut engine, "alice", &alice, NOW + 21);
    show(&mut engine, "bob", &bob, NOW + 21);

    let full = build_snapshot(
        &[
            revoke(RevocationTarget::Sid("session-a".into())),
            revoke(RevocationTarget::Jti("bob-token-1".into())),
        ],
        &options(3, NOW + 40),
        &origin,
    )?;
    engine.load_snapshot(&full)?;
    println!("\nbob's token leaks: snapshot generation 3 puts its jti in the Bloom filter; a hit is confirmed with the IdP");
    let headers = [("authorization", format!("Bearer {bob}"))];
    let views: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let req = RequestView {
        method: "GET",
        path: "/orders",
        headers: &views,
    };
    if let Decision::Introspect(i) = engine.decide(&req, NOW + 41) {
        println!(
            "  bob    -> introspect at {} (the IdP says active: false)",
            i.request.header(":path").unwrap_or("?")
        );
        let answer = HttpOutcome::Response {
            status: 200,
            etag: None,
            body: br#"{"active": false}"#,
        };
        print_decision(
            "bob",
            &engine.complete_introspection(i.pending, answer, &req, NOW + 42),
        );
    }
    show(&mut engine, "bob", &bob, NOW + 43);
    println!("  (answer cached until the token's exp: no second callout)");

    let stale = NOW + 40 + 121;
    println!("\nthe origin goes quiet for over two minutes: data past max staleness fails closed");
    show(&mut engine, "bob", &bob, stale);
    Ok(())
}

fn options(generation: u64, built_at: u64) -> BuildOptions {
    BuildOptions {
        generation,
        built_at,
        max_age_secs: 300,
        fp_rate: 0.001,
        salt: rand_seed(),
    }
}

fn revoke(target: RevocationTarget) -> Revocation {
    Revocation { target, exp: None }
}

fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("system randomness");
    seed
}

fn show(engine: &mut Engine, who: &str, token: &str, now: u64) {
    let auth = format!("Bearer {token}");
    let headers: Vec<(&str, &[u8])> = vec![("authorization", auth.as_bytes())];
    let decision = engine.decide(
        &RequestView {
            method: "GET",
            path: "/orders",
            headers: &headers,
        },
        now,
    );
    print_decision(who, &decision);
}

fn print_decision(who: &str, decision: &Decision) {
    match decision {
        Decision::Allow(a) => println!("  {who:<6} -> allow, upstream gets {:?}", a.set_headers),
        Decision::Deny(d) => println!(
            "  {who:<6} -> deny {} {} ({})",
            d.status,
            d.reason.code(),
            d.www_authenticate
        ),
        Decision::Introspect(_) => println!("  {who:<6} -> introspect"),
    }
}

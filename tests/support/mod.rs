//! Shared test kit: an identity provider (ES256 keys, token minting), an origin (snapshot
//! signing key), and configurations, all at a fixed clock.
#![allow(dead_code)]

use jwt_simple::prelude::*;
use revguard::decision::Decision;
use revguard::snapshot::{
    build_delta, build_snapshot, BuildOptions, DeltaOptions, Revocation, RevocationTarget,
    SigningKey,
};
use revguard::{Engine, RequestView};
use serde_json::{json, Value};

/// 2026-01-01T00:00:00Z
pub const T0: u64 = 1_767_225_600;
pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "api";

pub struct Kit {
    pub idp: ES256KeyPair,
    pub origin: SigningKey,
}

impl Kit {
    pub fn new() -> Kit {
        Kit {
            idp: ES256KeyPair::generate().with_key_id("k1"),
            origin: SigningKey::from_seed([7; 32]).unwrap(),
        }
    }

    pub fn jwks(&self) -> Vec<u8> {
        jwks_of(&[&self.idp])
    }

    /// A configuration with one issuer (keys fetched from upstream "idp"), a revocation origin,
    /// and `extra` merged over the top level.
    pub fn config(&self, extra: Value) -> Vec<u8> {
        let mut config = json!({
            "issuers": [{
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "algorithms": ["ES256"],
                "jwks_upstream": {"upstream": "idp", "path": "/jwks", "unknown_kid_cooldown_secs": 30}
            }],
            "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
            "revocation": {
                "upstream": "origin", "path": "/current.snap", "delta_path": "/current.delta",
                "refresh_interval_secs": 10, "max_staleness_secs": 7200,
                "public_keys": [self.origin.public_key_text()]
            }
        });
        merge(&mut config, extra);
        serde_json::to_vec(&config).unwrap()
    }

    /// The revocation section with a 60 s staleness bound (for staleness tests).
    pub fn revocation_60s(&self) -> Value {
        json!({"upstream": "origin", "path": "/current.snap", "refresh_interval_secs": 10,
               "max_staleness_secs": 60, "public_keys": [self.origin.public_key_text()]})
    }

    /// An engine for `config` with the IdP's keys and an empty snapshot (generation 1) loaded.
    pub fn engine(&self, extra: Value) -> Engine {
        let mut engine = Engine::from_config_json(&self.config(extra)).unwrap();
        engine.load_keys(0, &self.jwks(), T0).unwrap();
        if engine.policy().config.revocation.is_some() {
            engine.load_snapshot(&self.snapshot(1, &[])).unwrap();
        }
        engine
    }

    /// A token for `sub` issued at T0 for an hour; `extra` claims merged in.
    pub fn token(&self, sub: &str, extra: Value) -> String {
        self.token_with(&self.idp, sub, T0, extra)
    }

    pub fn token_with(&self, key: &ES256KeyPair, sub: &str, iat: u64, extra: Value) -> String {
        let mut custom = json!({});
        merge(&mut custom, extra);
        let mut claims = Claims::with_custom_claims(custom, Duration::from_secs(3600))
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE)
            .with_subject(sub)
            .with_jwt_id(format!("jti-{sub}-{iat}"));
        claims.issued_at = Some(UnixTimeStamp::from_secs(iat));
        claims.invalid_before = Some(UnixTimeStamp::from_secs(iat));
        claims.expires_at = Some(UnixTimeStamp::from_secs(iat + 3600));
        key.sign(claims).unwrap()
    }

    pub fn snapshot(&self, generation: u64, entries: &[Revocation]) -> Vec<u8> {
        let opts = BuildOptions {
            generation,
            built_at: T0,
            max_age_secs: 7200,
            fp_rate: 0.001,
            salt: [generation as u8; 32],
        };
        build_snapshot(entries, &opts, &self.origin).unwrap()
    }

    pub fn snapshot_at(&self, generation: u64, built_at: u64, entries: &[Revocation]) -> Vec<u8> {
        let opts = BuildOptions {
            generation,
            built_at,
            max_age_secs: 7200,
            fp_rate: 0.001,
            salt: [generation as u8; 32],
        };
        build_snapshot(entries, &opts, &self.origin).unwrap()
    }

    pub fn delta(
        &self,
        base: &[u8],
        generation: u64,
        built_at: u64,
        added: &[Revocation],
    ) -> Vec<u8> {
        let opts = DeltaOptions {
            generation,
            built_at,
            max_age_secs: 7200,
        };
        build_delta(base, added, &opts, &self.origin).unwrap()
    }
}

pub fn jwks_of(keys: &[&ES256KeyPair]) -> Vec<u8> {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::from_str(&k.public_key().to_jwk()).unwrap())
        .collect();
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

pub fn jti(v: &str) -> Revocation {
    Revocation {
        target: RevocationTarget::Jti(v.into()),
        exp: None,
    }
}

pub fn sid(v: &str) -> Revocation {
    Revocation {
        target: RevocationTarget::Sid(v.into()),
        exp: None,
    }
}

pub fn subject(v: &str, not_before: u64) -> Revocation {
    Revocation {
        target: RevocationTarget::Subject {
            sub: v.into(),
            not_before,
        },
        exp: None,
    }
}

pub fn tenant(v: &str, not_before: u64) -> Revocation {
    Revocation {
        target: RevocationTarget::Tenant {
            tenant: v.into(),
            not_before,
        },
        exp: None,
    }
}

fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// A fresh scratch directory for one test.
pub fn workdir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the real `revguard` binary.
pub fn revguard(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_revguard"))
        .args(args)
        .output()
        .unwrap()
}

/// Decides `GET path` with `token` as a bearer token plus `headers`.
pub fn decide(
    engine: &mut Engine,
    token: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
    now: u64,
) -> Decision {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut views: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    if let Some(a) = &auth {
        views.push(("authorization", a.as_bytes()));
    }
    engine.decide(
        &RequestView {
            method: "GET",
            path,
            headers: &views,
        },
        now,
    )
}

/// The reason code of a denial, or "allow" / "introspect".
pub fn outcome(decision: &Decision) -> String {
    match decision {
        Decision::Allow(_) => "allow".into(),
        Decision::Deny(d) => d.reason.code().into(),
        Decision::Introspect(_) => "introspect".into(),
    }
}

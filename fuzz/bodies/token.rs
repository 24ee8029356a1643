//! Untrusted tokens: `inspect` and `verify` must never panic, and anything `verify` accepts
//! must have passed `inspect` and be signed by the fixed key set.

use std::sync::OnceLock;

use revguard::jwks::{Algorithm, KeySet};
use revguard::jwt::{inspect, verify, VerifyPolicy};

/// Fixed public keys of several families (Ed25519, P-256, HMAC); the HMAC secret is public here,
/// so the fuzzer can in principle reach the claim checks.
const JWKS: &str = r#"{"keys":[
 {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"},
 {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec"},
 {"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow","kid":"hs"}
]}"#;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(
        || match KeySet::from_jwks(JWKS.as_bytes(), Algorithm::ALL) {
            Ok(keys) => keys,
            Err(e) => panic!("fixed key set must parse: {e}"),
        },
    )
}

pub fn run(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let policy = VerifyPolicy {
        issuer: "https://issuer.example".into(),
        audiences: vec!["api".into()],
        clock_skew_secs: 60,
        max_lifetime_secs: Some(3600),
        required_claims: vec!["sub".into()],
        required_type: None,
        max_token_bytes: 8192,
    };
    let inspected = inspect(token, policy.max_token_bytes);
    if let Ok(claims) = verify(token, keys(), &policy, 1_750_000_000) {
        assert!(inspected.is_ok());
        assert_eq!(claims.iss, policy.issuer);
        assert!(claims.exp.saturating_add(60) >= 1_750_000_000);
    }
}

//! The origin's identity-provider feeds on untrusted input: a logout token or a SET (the whole
//! path up to the signature, which the fuzzer cannot forge), and, since it cannot sign, the
//! claims of a token whose signature verified (the claim rules, subjects and the event
//! mapping). Nothing may panic; whatever is accepted must be in the configured window and
//! revoke at most one thing, kept until after the event.

use std::sync::OnceLock;
use std::time::Duration;

use revguard::jwks::KeySet;
use revguard::origin::feeds::config::{
    JwksSource, LogoutIdp, SsfTransmitter, TimeRules, FEED_ALGORITHMS,
};
use revguard::origin::feeds::{logout, ssf, FeedEvent};
use revguard::snapshot::RevocationTarget;

const NOW: u64 = 1_750_000_000;

/// Fixed public keys (Ed25519, P-256); feeds never accept HMAC keys.
const JWKS: &str = r#"{"keys":[
 {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"},
 {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec"}
]}"#;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(
        || match KeySet::from_jwks(JWKS.as_bytes(), FEED_ALGORITHMS) {
            Ok(keys) => keys,
            Err(e) => panic!("fixed key set must parse: {e}"),
        },
    )
}

fn time() -> TimeRules {
    TimeRules {
        max_age_secs: 300,
        clock_skew_secs: 60,
        token_lifetime_secs: 3600,
    }
}

fn jwks() -> JwksSource {
    JwksSource {
        uri: "https://idp.example/jwks".into(),
        refresh: Duration::from_secs(300),
        cooldown: Duration::from_secs(10),
        max_stale: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
    }
}

fn idp() -> LogoutIdp {
    LogoutIdp {
        name: "idp".into(),
        issuer: "https://idp.example".into(),
        client_ids: vec!["app".into()],
        time: time(),
        jwks: jwks(),
    }
}

fn transmitter() -> SsfTransmitter {
    SsfTransmitter {
        name: "tx".into(),
        issuer: "https://tx.example".into(),
        audience: "https://origin.example".into(),
        api_token_sha256: None,
        email_is_sub: true,
        time: time(),
        jwks: jwks(),
    }
}

fn check(event: &FeedEvent) {
    assert!(event.revocations.len() <= 1);
    // The jti is remembered past the end of the window in which the token is accepted.
    assert!(event.replay.expires_at > NOW);
    for r in &event.revocations {
        let exp = r.revocation.exp.unwrap_or(0);
        // A "before T" revocation lives until every token issued before T has expired.
        if let RevocationTarget::Subject { not_before, .. }
        | RevocationTarget::Tenant { not_before, .. } = &r.revocation.target
        {
            assert!(exp >= not_before.saturating_add(3600));
            assert!(*not_before <= NOW + 60, "never before a time in the future");
        }
    }
}

pub fn run(data: &[u8]) {
    // (The keys are public test vectors: a token signed with them is valid, and checked.)
    if let Ok(token) = std::str::from_utf8(data) {
        if let Ok(event) = logout::validate(token, &idp(), keys(), NOW) {
            check(&event);
        }
        if let Ok(event) = ssf::validate(token, &transmitter(), keys(), NOW) {
            check(&event);
        }
    }
    if let Ok(claims) = revguard::json::parse_object(data) {
        if let Ok(event) = logout::event_from_claims(&claims, &idp(), NOW) {
            assert_eq!(event.revocations.len(), 1);
            check(&event);
        }
        if let Ok(event) = ssf::event_from_claims(&claims, &transmitter(), NOW) {
            check(&event);
        }
    }
}

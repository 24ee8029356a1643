//! OpenID Connect Back-Channel Logout 1.0: the logout token's validation (section 2.6) and
//! what it revokes.
//!
//! - `typ` is `logout+jwt` or absent (section 2.4 recommends explicit typing; tokens from
//!   before it have none). Any other explicit type (`JWT`, `at+jwt`, `secevent+jwt`, ...) is
//!   refused: RFC 8725 section 3.11, a JWT of one kind is never accepted as another.
//! - Signature by a key of the issuer's JWKS, asymmetric algorithms only, `alg` fixed by the key.
//! - `iss` configured, `aud` contains a configured client id, `iat` in the window, `exp` (if
//!   any) not passed, `jti` present (and never seen before: the store's replay table).
//! - `events` has the member `http://schemas.openid.net/event/backchannel-logout` whose value
//!   is a JSON object; `sid` and/or `sub`; no `nonce` (which would make it an ID token).
//!
//! Effect: with a `sid`, that session is revoked (every token carrying the `sid`); with only a
//! `sub`, every token of the subject issued before the logout token's `iat`. Either revocation
//! expires once every token it can match has: `iat` + `token_lifetime_secs` + skew.

use serde_json::{Map, Value};

use super::config::LogoutIdp;
use super::{check_common, revocation, FeedError, FeedEvent, MAX_EVENT_TOKEN_BYTES};
use crate::jwks::KeySet;
use crate::jwt::{verify_signed, SignedPolicy};
use crate::origin::ingest::MAX_ID_BYTES;
use crate::origin::store::ReplayKey;
use crate::snapshot::RevocationTarget;

pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
pub const LOGOUT_TYPE: &str = "logout+jwt";
/// The feed's name: the `source` of its revocations and its replay namespace.
pub const FEED: &str = "backchannel_logout";

fn invalid(what: &str) -> FeedError {
    FeedError::Invalid(what.to_string())
}

fn id_claim(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, FeedError> {
    let value = crate::claims::string(claims.get(name))
        .map_err(|_| FeedError::Invalid(format!("{name} is not a string")))?;
    if value
        .as_ref()
        .is_some_and(|v| v.is_empty() || v.len() > MAX_ID_BYTES)
    {
        return Err(FeedError::Invalid(format!(
            "{name} must be 1 to 1024 bytes"
        )));
    }
    Ok(value)
}

/// Validates a logout token from `idp` (chosen by its unverified `iss`) at `now`.
pub fn validate(
    token: &str,
    idp: &LogoutIdp,
    keys: &KeySet,
    now: u64,
) -> Result<FeedEvent, FeedError> {
    let policy = SignedPolicy {
        typ: LOGOUT_TYPE.into(),
        typ_optional: true,
        clock_skew_secs: idp.time.clock_skew_secs,
        max_token_bytes: MAX_EVENT_TOKEN_BYTES,
    };
    let (_, claims) = verify_signed(token, keys, &policy, now)?;
    event_from_claims(&claims, idp, now)
}

/// The claim rules and the effect, on the claims of a token whose signature verified.
pub fn event_from_claims(
    claims: &Map<String, Value>,
    idp: &LogoutIdp,
    now: u64,
) -> Result<FeedEvent, FeedError> {
    let common = check_common(claims, &idp.issuer, &idp.client_ids, &idp.time, now)?;
    match claims.get("events") {
        Some(Value::Object(events)) => match events.get(LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(invalid(
                    "the back-channel logout event is not a JSON object",
                ))
            }
            None => return Err(invalid("events has no back-channel logout event")),
        },
        Some(_) => return Err(invalid("events is not a JSON object")),
        None => return Err(invalid("the token has no events claim")),
    }
    if claims.contains_key("nonce") {
        return Err(invalid("a logout token must not contain a nonce"));
    }
    let sid = id_claim(claims, "sid")?;
    let sub = id_claim(claims, "sub")?;
    let target = match (sid, sub) {
        (Some(sid), _) => RevocationTarget::Sid(sid),
        (None, Some(sub)) => RevocationTarget::Subject {
            sub,
            not_before: common.iat,
        },
        (None, None) => return Err(invalid("a logout token needs a sid or a sub")),
    };
    let exp = idp.time.revocation_exp(common.iat);
    Ok(FeedEvent {
        replay: ReplayKey {
            namespace: FEED,
            issuer: idp.issuer.clone(),
            jti: common.jti.clone(),
            expires_at: idp.time.replay_until(common.iat),
        },
        revocations: vec![revocation(target, exp, "backchannel-logout", FEED)?],
        actor: idp.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::test_fixtures::{jwks, Signer};
    use crate::origin::feeds::config::{JwksSource, TimeRules, FEED_ALGORITHMS};
    use serde_json::json;
    use std::time::Duration;

    const NOW: u64 = 1_750_000_000;
    const ISS: &str = "https://idp.example";

    fn idp() -> LogoutIdp {
        LogoutIdp {
            name: "idp".into(),
            issuer: ISS.into(),
            client_ids: vec!["app".into()],
            time: TimeRules {
                max_age_secs: 300,
                clock_skew_secs: 30,
                token_lifetime_secs: 3600,
            },
            jwks: JwksSource {
                uri: "https://idp.example/jwks".into(),
                refresh: Duration::from_secs(300),
                cooldown: Duration::from_secs(10),
                max_stale: Duration::from_secs(3600),
                timeout: Duration::from_secs(5),
            },
        }
    }

    fn claims() -> Value {
        json!({
            "iss": ISS, "aud": "app", "iat": NOW - 5, "exp": NOW + 115, "jti": "j-1",
            "sid": "s-1", "sub": "u-1",
            "events": {LOGOUT_EVENT: {}}
        })
    }

    fn with(changes: Value) -> Value {
        let mut p = claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p
    }

    fn setup() -> (Signer, KeySet) {
        let signer = Signer::generate("ES256", "k1");
        let keys = KeySet::from_jwks(&jwks(&[signer.public_jwk()]), FEED_ALGORITHMS).unwrap();
        (signer, keys)
    }

    fn check(signer: &Signer, keys: &KeySet, p: Value) -> Result<FeedEvent, FeedError> {
        validate(
            &signer.sign_typed(&p, Some("logout+jwt")),
            &idp(),
            keys,
            NOW,
        )
    }

    #[test]
    fn sid_revokes_the_session_sub_alone_the_subject() {
        let (signer, keys) = setup();
        let event = check(&signer, &keys, claims()).unwrap();
        assert_eq!(event.actor, "idp");
        assert_eq!(event.replay.jti, "j-1");
        assert_eq!(event.replay.namespace, FEED);
        assert_eq!(event.replay.expires_at, NOW - 5 + 300 + 30 + 1);
        let r = &event.revocations[0];
        assert_eq!(r.revocation.target, RevocationTarget::Sid("s-1".into()));
        assert_eq!(r.revocation.exp, Some(NOW - 5 + 3600 + 30));
        assert_eq!(r.source.as_deref(), Some(FEED));
        let event = check(&signer, &keys, with(json!({"sid": null}))).unwrap();
        assert_eq!(
            event.revocations[0].revocation.target,
            RevocationTarget::Subject {
                sub: "u-1".into(),
                not_before: NOW - 5
            }
        );
        // No typ at all is accepted (tokens from before explicit typing).
        let ed = Signer::generate("EdDSA", "ed");
        let ed_keys = KeySet::from_jwks(&jwks(&[ed.public_jwk()]), FEED_ALGORITHMS).unwrap();
        let untyped = ed.sign_raw(&json!({"alg": "EdDSA", "kid": "ed"}), &claims());
        assert!(validate(&untyped, &idp(), &ed_keys, NOW).is_ok());
    }

    #[test]
    fn every_rule_of_section_2_6() {
        let (signer, keys) = setup();
        let bad = |changes: Value| check(&signer, &keys, with(changes)).unwrap_err();
        assert_eq!(
            bad(json!({"iss": "https://other"})),
            FeedError::UnknownIssuer
        );
        assert_eq!(bad(json!({"aud": ["other"]})), FeedError::WrongAudience);
        assert!(matches!(bad(json!({"iat": null})), FeedError::Invalid(_)));
        assert!(matches!(
            bad(json!({"iat": NOW + 31})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(
            bad(json!({"iat": NOW - 331, "exp": null})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(bad(json!({"jti": null})), FeedError::Invalid(_)));
        assert!(matches!(
            bad(json!({"events": null})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(
            bad(json!({"events": {"x": {}}})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(
            bad(json!({"events": {LOGOUT_EVENT: "yes"}})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(bad(json!({"nonce": "n"})), FeedError::Invalid(_)));
        assert!(matches!(
            bad(json!({"sid": null, "sub": null})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(bad(json!({"sid": 5})), FeedError::Invalid(_)));
        assert!(matches!(
            bad(json!({"exp": NOW - 100})),
            FeedError::Invalid(_)
        ));
        // Another explicit type, an unknown key, a bad signature.
        for typ in ["JWT", "at+jwt", "secevent+jwt"] {
            let t = signer.sign_typed(&claims(), Some(typ));
            assert!(
                matches!(validate(&t, &idp(), &keys, NOW), Err(FeedError::Invalid(_))),
                "{typ}"
            );
        }
        let other = Signer::generate("ES256", "k2");
        let t = other.sign_typed(&claims(), Some("logout+jwt"));
        assert!(matches!(
            validate(&t, &idp(), &keys, NOW),
            Err(FeedError::BadKey(_))
        ));
        let forged =
            Signer::generate_other("ES256", "k1").sign_typed(&claims(), Some("logout+jwt"));
        assert!(matches!(
            validate(&forged, &idp(), &keys, NOW),
            Err(FeedError::BadKey(_))
        ));
        // alg none never verifies.
        let none = format!(
            "{}.{}.",
            crate::jwks::test_fixtures::b64(br#"{"alg":"none"}"#),
            crate::jwks::test_fixtures::b64(claims().to_string().as_bytes())
        );
        assert!(matches!(
            validate(&none, &idp(), &keys, NOW),
            Err(FeedError::BadKey(_))
        ));
    }
}

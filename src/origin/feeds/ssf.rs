//! Shared Signals: a pushed Security Event Token (RFC 8417, delivered by RFC 8935) validated
//! and mapped to revocations.
//!
//! Validation: `typ` `secevent+jwt` (required: SETs must never pass for another JWT, nor the
//! reverse), a signature by a key of the transmitter's JWKS (asymmetric only), `iss` a
//! configured transmitter, `aud` containing its configured audience, `iat` in the window,
//! `jti` present (replay: the store), and `events` an object with exactly one event (SSF 1.0),
//! whose value is an object.
//!
//! Mapping (docs/ORIGIN.md has the table): the subject (top-level `sub_id`, else the event's
//! `subject`) names a session, a user or a tenant; the most specific one is revoked: a session
//! as `sid`; a user as `sub` issued before the event; a tenant (a complex subject with only a
//! tenant) as `tenant` issued before the event. "Before the event" is the event's
//! `event_timestamp` if present, else the SET's `iat`, and must not be in the future beyond the
//! skew. The SSF stream verification event is accepted and revokes nothing.

use serde_json::{Map, Value};

use super::config::SsfTransmitter;
use super::subject::{self, Subject};
use super::{check_common, revocation, FeedError, FeedEvent, MAX_EVENT_TOKEN_BYTES};
use crate::jwks::KeySet;
use crate::jwt::{verify_signed, SignedPolicy};
use crate::origin::store::ReplayKey;
use crate::snapshot::RevocationTarget;

pub const SET_TYPE: &str = "secevent+jwt";
/// The feed's name: the `source` of its revocations and its replay namespace.
pub const FEED: &str = "ssf";

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
/// SSF 1.0 section 8.1.4: sent by a transmitter to check a stream; nothing to revoke.
pub const VERIFICATION_EVENT: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The event types that revoke, and the short name recorded as the revocation's `reason`.
pub const REVOKING_EVENTS: [(&str, &str, &str); 6] = [
    (CAEP, "session-revoked", "caep:session-revoked"),
    (CAEP, "credential-change", "caep:credential-change"),
    (CAEP, "token-claims-change", "caep:token-claims-change"),
    (RISC, "account-disabled", "risc:account-disabled"),
    (RISC, "account-purged", "risc:account-purged"),
    (RISC, "sessions-revoked", "risc:sessions-revoked"),
];

fn invalid(what: &str) -> FeedError {
    FeedError::Invalid(what.to_string())
}

/// The `reason` of a revoking event type, `None` for any other.
pub fn revoking_reason(event_type: &str) -> Option<&'static str> {
    REVOKING_EVENTS.iter().find_map(|(prefix, name, reason)| {
        event_type
            .strip_prefix(prefix)
            .filter(|rest| rest == name)
            .map(|_| *reason)
    })
}

/// The one revocation a subject maps to, issued before `at`.
pub fn target(subject: Subject, at: u64) -> Option<RevocationTarget> {
    match subject {
        Subject {
            session: Some(sid), ..
        } => Some(RevocationTarget::Sid(sid)),
        Subject {
            user: Some(sub), ..
        } => Some(RevocationTarget::Subject {
            sub,
            not_before: at,
        }),
        Subject {
            tenant: Some(tenant),
            ..
        } => Some(RevocationTarget::Tenant {
            tenant,
            not_before: at,
        }),
        Subject { .. } => None,
    }
}

/// Validates a SET from `transmitter` (chosen by its unverified `iss`) at `now`.
pub fn validate(
    token: &str,
    transmitter: &SsfTransmitter,
    keys: &KeySet,
    now: u64,
) -> Result<FeedEvent, FeedError> {
    let policy = SignedPolicy {
        typ: SET_TYPE.into(),
        typ_optional: false,
        clock_skew_secs: transmitter.time.clock_skew_secs,
        max_token_bytes: MAX_EVENT_TOKEN_BYTES,
    };
    let (_, claims) = verify_signed(token, keys, &policy, now).map_err(|e| match e {
        crate::jwt::TokenError::WrongType => {
            invalid("a Security Event Token must have typ secevent+jwt")
        }
        other => other.into(),
    })?;
    event_from_claims(&claims, transmitter, now)
}

/// The claim rules and the mapping, on the claims of a SET whose signature verified.
pub fn event_from_claims(
    claims: &Map<String, Value>,
    transmitter: &SsfTransmitter,
    now: u64,
) -> Result<FeedEvent, FeedError> {
    let audiences = std::slice::from_ref(&transmitter.audience);
    let common = check_common(
        claims,
        &transmitter.issuer,
        audiences,
        &transmitter.time,
        now,
    )?;
    let (event_type, payload) = one_event(claims)?;
    let replay = ReplayKey {
        namespace: FEED,
        issuer: transmitter.issuer.clone(),
        jti: common.jti.clone(),
        expires_at: transmitter.time.replay_until(common.iat),
    };
    let event = |revocations| FeedEvent {
        replay: replay.clone(),
        revocations,
        actor: transmitter.name.clone(),
    };
    if event_type == VERIFICATION_EVENT {
        return Ok(event(Vec::new()));
    }
    let reason = revoking_reason(event_type).ok_or_else(|| {
        FeedError::Invalid(format!(
            "event type {:?} is not one this receiver maps",
            event_type.chars().take(128).collect::<String>()
        ))
    })?;
    let at = match crate::claims::date(payload.get("event_timestamp"))
        .map_err(|_| invalid("event_timestamp is not a NumericDate"))?
    {
        Some(t) => t,
        None => common.iat,
    };
    if at > now.saturating_add(transmitter.time.clock_skew_secs) {
        return Err(invalid("event_timestamp is in the future"));
    }
    let subject = match (claims.get("sub_id"), payload.get("subject")) {
        (Some(s), _) => subject::parse(s, "sub_id", transmitter.email_is_sub)?,
        (None, Some(s)) => subject::parse(s, "subject", transmitter.email_is_sub)?,
        (None, None) => return Err(invalid("the SET has no sub_id and its event no subject")),
    };
    let target = target(subject, at).ok_or_else(|| invalid("the subject names nothing"))?;
    let exp = transmitter.time.revocation_exp(at);
    Ok(event(vec![revocation(target, exp, reason, FEED)?]))
}

fn one_event(claims: &Map<String, Value>) -> Result<(&str, &Map<String, Value>), FeedError> {
    let Some(Value::Object(events)) = claims.get("events") else {
        return Err(invalid("events is missing or not a JSON object"));
    };
    let mut iter = events.iter();
    match (iter.next(), iter.next()) {
        (Some((event_type, Value::Object(payload))), None) => Ok((event_type, payload)),
        (Some(_), None) => Err(invalid("the event's value is not a JSON object")),
        (None, _) => Err(invalid("events is empty")),
        (Some(_), Some(_)) => Err(invalid("a SET carries exactly one event (SSF 1.0)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::test_fixtures::{jwks, Signer};
    use crate::origin::feeds::config::{JwksSource, TimeRules, FEED_ALGORITHMS};
    use serde_json::json;
    use std::time::Duration;

    const NOW: u64 = 1_750_000_000;
    const ISS: &str = "https://tx.example";

    fn tx() -> SsfTransmitter {
        SsfTransmitter {
            name: "tx".into(),
            issuer: ISS.into(),
            audience: "https://origin.example".into(),
            api_token_sha256: None,
            email_is_sub: false,
            time: TimeRules {
                max_age_secs: 3600,
                clock_skew_secs: 30,
                token_lifetime_secs: 3600,
            },
            jwks: JwksSource {
                uri: "https://tx.example/jwks".into(),
                refresh: Duration::from_secs(300),
                cooldown: Duration::from_secs(10),
                max_stale: Duration::from_secs(3600),
                timeout: Duration::from_secs(5),
            },
        }
    }

    fn set(event: &str, payload: Value, sub_id: Value) -> Value {
        let mut p = json!({
            "iss": ISS, "aud": ["https://origin.example"], "iat": NOW - 10, "jti": "set-1",
            "events": {event: payload}
        });
        if !sub_id.is_null() {
            p["sub_id"] = sub_id;
        }
        p
    }

    fn run(p: &Value) -> Result<FeedEvent, FeedError> {
        let signer = Signer::generate("ES256", "k1");
        let keys = KeySet::from_jwks(&jwks(&[signer.public_jwk()]), FEED_ALGORITHMS).unwrap();
        validate(
            &signer.sign_typed(p, Some("secevent+jwt")),
            &tx(),
            &keys,
            NOW,
        )
    }

    fn user(id: &str) -> Value {
        json!({"format": "iss_sub", "iss": "https://idp.example", "sub": id})
    }

    #[test]
    fn the_mapping_table() {
        for (prefix, name, reason) in REVOKING_EVENTS {
            let uri = format!("{prefix}{name}");
            let e = run(&set(
                &uri,
                json!({"event_timestamp": NOW - 100}),
                user("u1"),
            ))
            .unwrap();
            let r = &e.revocations[0];
            assert_eq!(
                r.revocation.target,
                RevocationTarget::Subject {
                    sub: "u1".into(),
                    not_before: NOW - 100
                },
                "{uri}"
            );
            assert_eq!(r.reason.as_deref(), Some(reason));
            assert_eq!(r.source.as_deref(), Some(FEED));
            assert_eq!(r.revocation.exp, Some(NOW - 100 + 3600 + 30));
            assert_eq!(e.actor, "tx");
        }
        let revoked = format!("{CAEP}session-revoked");
        // A session subject: the sid, whatever else the complex subject names.
        let complex = json!({"format": "complex", "session": {"format": "opaque", "id": "s1"},
            "user": user("u1"), "tenant": {"format": "opaque", "id": "t1"}});
        let e = run(&set(&revoked, json!({}), complex)).unwrap();
        assert_eq!(
            e.revocations[0].revocation.target,
            RevocationTarget::Sid("s1".into())
        );
        // Only a tenant: the tenant, issued before the SET's iat (no event_timestamp).
        let tenant = json!({"format": "complex", "tenant": {"format": "opaque", "id": "t1"}});
        let e = run(&set(&format!("{RISC}account-disabled"), json!({}), tenant)).unwrap();
        assert_eq!(
            e.revocations[0].revocation.target,
            RevocationTarget::Tenant {
                tenant: "t1".into(),
                not_before: NOW - 10
            }
        );
        // The older per-event subject.
        let e = run(&set(
            &format!("{RISC}account-purged"),
            json!({"subject": {"subject_type": "iss-sub", "iss": "https://i", "sub": "u9"}}),
            Value::Null,
        ))
        .unwrap();
        assert!(matches!(
            &e.revocations[0].revocation.target,
            RevocationTarget::Subject { sub, .. } if sub == "u9"
        ));
        // Stream verification: accepted, nothing revoked.
        let e = run(&set(VERIFICATION_EVENT, json!({"state": "x"}), Value::Null)).unwrap();
        assert!(e.revocations.is_empty());
    }

    #[test]
    fn refusals() {
        let revoked = format!("{CAEP}session-revoked");
        let ok = set(&revoked, json!({}), user("u1"));
        let bad = |changes: Value| {
            let mut p = ok.clone();
            for (k, v) in changes.as_object().unwrap() {
                if v.is_null() {
                    p.as_object_mut().unwrap().remove(k);
                } else {
                    p[k] = v.clone();
                }
            }
            run(&p).unwrap_err()
        };
        assert_eq!(bad(json!({"iss": "https://x"})), FeedError::UnknownIssuer);
        assert_eq!(
            bad(json!({"aud": "https://other"})),
            FeedError::WrongAudience
        );
        assert!(matches!(bad(json!({"jti": null})), FeedError::Invalid(_)));
        assert!(matches!(
            bad(json!({"iat": NOW - 4000})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(
            bad(json!({"events": {"https://example.com/unknown": {}}})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(
            bad(json!({"events": {revoked.clone(): {}, format!("{RISC}account-purged"): {}}})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(
            bad(json!({"events": {revoked.clone(): {"event_timestamp": NOW + 100}}})),
            FeedError::Invalid(_)
        ));
        assert!(matches!(
            bad(json!({"sub_id": null})),
            FeedError::Invalid(_)
        ));
        // The type is required.
        let signer = Signer::generate("ES256", "k1");
        let keys = KeySet::from_jwks(&jwks(&[signer.public_jwk()]), FEED_ALGORITHMS).unwrap();
        for typ in [None, Some("JWT"), Some("logout+jwt")] {
            assert!(matches!(
                validate(&signer.sign_typed(&ok, typ), &tx(), &keys, NOW),
                Err(FeedError::Invalid(_))
            ));
        }
        // A key of another transmitter.
        let other = Signer::generate_other("ES256", "k1");
        assert!(matches!(
            validate(
                &other.sign_typed(&ok, Some("secevent+jwt")),
                &tx(),
                &keys,
                NOW
            ),
            Err(FeedError::BadKey(_))
        ));
    }
}

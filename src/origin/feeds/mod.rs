//! Verified feeds from identity providers: OpenID Connect Back-Channel Logout 1.0 tokens and
//! Shared Signals (RFC 8935 push) Security Event Tokens. Each verified event becomes the same
//! revocation records the API creates, committed with its replay record in one transaction
//! ([`super::store::Store::ingest_event`]), so publishing, the fleet view and held GETs work
//! unchanged. Nothing is revoked unless the event verified. docs/ORIGIN.md describes both.
//!
//! The rules (token checks, event mapping) are pure functions of the token, the configuration,
//! the key set and `now` ([`logout`], [`ssf`], [`subject`]); [`handlers`] only translates HTTP.

pub mod config;
pub mod handlers;
pub mod jwks_cache;
pub mod logout;
pub mod ssf;
pub mod subject;

use std::fmt;

use serde_json::{Map, Value};

use super::error::OriginError;
use super::ingest::{NewRevocation, MAX_ID_BYTES, MAX_TEXT_BYTES};
use super::store::ReplayKey;
use crate::jwt::TokenError;
use crate::snapshot::{Revocation, RevocationTarget};
use config::TimeRules;
use jwks_cache::KeysUnavailable;

/// Largest logout token or SET accepted, in bytes.
pub const MAX_EVENT_TOKEN_BYTES: usize = 16 * 1024;
/// Largest request body of a feed endpoint (also bounded by `max_body_bytes`).
pub const MAX_FEED_BODY_BYTES: usize = 64 * 1024;

pub(crate) fn now_ms() -> i64 {
    super::publish::unix_now_ms()
}

/// A verified event: what to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEvent {
    pub replay: ReplayKey,
    pub revocations: Vec<NewRevocation>,
    /// The audit actor (`created_by`): the configured name of the IdP or transmitter.
    pub actor: String,
}

/// Why an event was refused. Every variant leaves the store unchanged.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum FeedError {
    /// The request is malformed (content type, body, form, not a JWS).
    BadRequest(String),
    /// The token's `iss` is not a configured issuer of this feed.
    UnknownIssuer,
    /// The token's `aud` names none of the configured audiences.
    WrongAudience,
    /// The signature does not verify, or no key of the issuer fits it.
    BadKey(String),
    /// Any other rule of the token (type, time, claims, events).
    Invalid(String),
    /// The `jti` was received before.
    Replayed,
    /// The issuer's key set cannot be fetched: retry later.
    KeysUnavailable(KeysUnavailable),
    /// The transmitter did not authenticate (no or a wrong bearer token).
    AuthenticationFailed,
    /// The transmitter authenticated as another transmitter than the SET's issuer.
    AccessDenied,
    /// The store or the clock: nothing was committed.
    Origin(OriginError),
}

impl FeedError {
    /// A stable code for metrics and logs (finer than either feed's wire codes).
    pub fn code(&self) -> &'static str {
        match self {
            FeedError::BadRequest(_) => "malformed_request",
            FeedError::UnknownIssuer => "unknown_issuer",
            FeedError::WrongAudience => "wrong_audience",
            FeedError::BadKey(_) => "bad_key_or_signature",
            FeedError::Invalid(_) => "invalid_token",
            FeedError::Replayed => "replayed",
            FeedError::KeysUnavailable(_) => "keys_unavailable",
            FeedError::AuthenticationFailed => "authentication_failed",
            FeedError::AccessDenied => "access_denied",
            FeedError::Origin(o) => o.code(),
        }
    }
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::BadRequest(d) | FeedError::Invalid(d) | FeedError::BadKey(d) => {
                f.write_str(d)
            }
            FeedError::UnknownIssuer => f.write_str("the token's issuer is not configured"),
            FeedError::WrongAudience => f.write_str("the token's audience is not accepted"),
            FeedError::Replayed => f.write_str("the token's jti was received before"),
            FeedError::KeysUnavailable(u) => {
                write!(f, "the issuer's keys are unavailable: {}", u.detail)
            }
            FeedError::AuthenticationFailed => f.write_str("the transmitter is not authenticated"),
            FeedError::AccessDenied => {
                f.write_str("the transmitter may not push events of this issuer")
            }
            FeedError::Origin(e) => write!(f, "{e}"),
        }
    }
}

impl From<OriginError> for FeedError {
    fn from(e: OriginError) -> Self {
        FeedError::Origin(e)
    }
}

impl From<TokenError> for FeedError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::UnknownKey { .. }
            | TokenError::BadSignature
            | TokenError::DisallowedAlgorithm
            | TokenError::ForbiddenHeader(_) => FeedError::BadKey(e.to_string()),
            TokenError::WrongIssuer => FeedError::UnknownIssuer,
            TokenError::WrongAudience => FeedError::WrongAudience,
            other => FeedError::Invalid(other.to_string()),
        }
    }
}

/// The claims both feeds read, checked the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommonClaims {
    pub jti: String,
    pub iat: u64,
}

fn invalid(what: &str) -> FeedError {
    FeedError::Invalid(what.to_string())
}

/// `iss` equal to the configured issuer, `aud` containing an accepted audience, `iat` within
/// the window (not in the future beyond the skew, not older than `max_age_secs`), `exp` (if
/// any) not passed, and a `jti`.
pub fn check_common(
    claims: &Map<String, Value>,
    issuer: &str,
    audiences: &[String],
    time: &TimeRules,
    now: u64,
) -> Result<CommonClaims, FeedError> {
    let iss = crate::claims::string(claims.get("iss"))
        .map_err(|_| invalid("iss is not a string"))?
        .ok_or_else(|| invalid("the token has no iss"))?;
    if iss != issuer {
        return Err(FeedError::UnknownIssuer);
    }
    let aud = crate::claims::audience(claims.get("aud"))
        .map_err(|_| invalid("aud is not a string or an array of strings"))?;
    if !aud.iter().any(|a| audiences.contains(a)) {
        return Err(FeedError::WrongAudience);
    }
    let iat = crate::claims::date(claims.get("iat"))
        .map_err(|_| invalid("iat is not a NumericDate"))?
        .ok_or_else(|| invalid("the token has no iat"))?;
    let skew = time.clock_skew_secs;
    if iat > now.saturating_add(skew) {
        return Err(invalid("iat is in the future"));
    }
    if now.saturating_sub(iat) > time.max_age_secs.saturating_add(skew) {
        return Err(invalid(
            "iat is older than the accepted window (max_age_secs)",
        ));
    }
    if let Some(exp) =
        crate::claims::date(claims.get("exp")).map_err(|_| invalid("exp is not a NumericDate"))?
    {
        if exp.saturating_add(skew) < now {
            return Err(invalid("the token has expired"));
        }
    }
    let jti = crate::claims::string(claims.get("jti"))
        .map_err(|_| invalid("jti is not a string"))?
        .ok_or_else(|| invalid("the token has no jti"))?;
    if jti.is_empty() || jti.len() > MAX_ID_BYTES {
        return Err(invalid("jti must be 1 to 1024 bytes"));
    }
    Ok(CommonClaims { jti, iat })
}

/// A revocation of a feed: `reason` names the event, `source` the feed.
pub fn revocation(
    target: RevocationTarget,
    exp: u64,
    reason: &str,
    source: &str,
) -> Result<NewRevocation, FeedError> {
    let value_len = match &target {
        RevocationTarget::Jti(v) | RevocationTarget::Sid(v) => v.len(),
        RevocationTarget::Subject { sub, .. } => sub.len(),
        RevocationTarget::Tenant { tenant, .. } => tenant.len(),
    };
    if value_len == 0 || value_len > MAX_ID_BYTES {
        return Err(invalid("a subject identifier must be 1 to 1024 bytes"));
    }
    let cut = |s: &str| -> String {
        let mut end = s.len().min(MAX_TEXT_BYTES);
        while !s.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        s.get(..end).unwrap_or_default().to_string()
    };
    Ok(NewRevocation {
        id: None,
        revocation: Revocation {
            target,
            exp: Some(exp),
        },
        reason: Some(cut(reason)),
        source: Some(source.to_string()),
    })
}

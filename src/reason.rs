//! Stable reason codes for every decision, and the one place that maps them to HTTP.
//!
//! Codes are shared by logs, metrics, tests and the JSON bodies of denials: never rename one.

use serde::Serialize;

/// Why a request was denied (or, for `Allowed`, let through).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // The request itself.
    MissingToken,
    /// Several credentials, a header that is not a well-formed bearer credential, or a method
    /// that is not an upper-case token.
    InvalidRequest,
    /// A path that a backend could read differently from the rule that matched it (crate::path).
    InvalidPath,
    MalformedToken,
    // The token's header and key.
    DisallowedAlgorithm,
    ForbiddenHeader,
    UnknownKey,
    BadSignature,
    // The token's claims.
    Expired,
    NotYetValid,
    IssuedInFuture,
    TokenTooOld,
    MissingClaim,
    WrongIssuer,
    WrongAudience,
    WrongType,
    // Revocation.
    Revoked,
    RevokedSession,
    RevokedSubject,
    RevokedTenant,
    TokenInactive,
    // The route's requirements.
    InsufficientScope,
    WrongTenant,
    AuthTooOld,
    // Infrastructure: not the client's fault.
    KeysUnavailable,
    StaleRevocationData,
    IntrospectionFailed,
    /// The plugin cannot decide yet: not configured, or busy with another call (re-entered).
    NotReady,
}

/// RFC 6750 section 3.1 error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerError {
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
    /// RFC 9470 step-up: the authentication event is too old for this route.
    InsufficientUserAuthentication,
}

impl BearerError {
    pub fn code(self) -> &'static str {
        match self {
            BearerError::InvalidRequest => "invalid_request",
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
            BearerError::InsufficientUserAuthentication => "insufficient_user_authentication",
        }
    }
}

impl Reason {
    pub const ALL: &'static [Reason] = &[
        Reason::MissingToken,
        Reason::InvalidRequest,
        Reason::InvalidPath,
        Reason::MalformedToken,
        Reason::DisallowedAlgorithm,
        Reason::ForbiddenHeader,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::IssuedInFuture,
        Reason::TokenTooOld,
        Reason::MissingClaim,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::WrongType,
        Reason::Revoked,
        Reason::RevokedSession,
        Reason::RevokedSubject,
        Reason::RevokedTenant,
        Reason::TokenInactive,
        Reason::InsufficientScope,
        Reason::WrongTenant,
        Reason::AuthTooOld,
        Reason::KeysUnavailable,
        Reason::StaleRevocationData,
        Reason::IntrospectionFailed,
        Reason::NotReady,
    ];

    /// The stable identifier used in logs, metrics and response bodies.
    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::InvalidRequest => "invalid_request",
            Reason::InvalidPath => "invalid_path",
            Reason::MalformedToken => "malformed_token",
            Reason::DisallowedAlgorithm => "disallowed_algorithm",
            Reason::ForbiddenHeader => "forbidden_header",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::TokenTooOld => "token_too_old",
            Reason::MissingClaim => "missing_claim",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::WrongType => "wrong_type",
            Reason::Revoked => "revoked",
            Reason::RevokedSession => "revoked_session",
            Reason::RevokedSubject => "revoked_subject",
            Reason::RevokedTenant => "revoked_tenant",
            Reason::TokenInactive => "token_inactive",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::WrongTenant => "wrong_tenant",
            Reason::AuthTooOld => "auth_too_old",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::StaleRevocationData => "stale_revocation_data",
            Reason::IntrospectionFailed => "introspection_failed",
            Reason::NotReady => "not_ready",
        }
    }

    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// Infrastructure failures are not the client's fault: 503, no `invalid_token`.
    pub fn is_infrastructure(self) -> bool {
        matches!(
            self,
            Reason::KeysUnavailable
                | Reason::StaleRevocationData
                | Reason::IntrospectionFailed
                | Reason::NotReady
        )
    }

    /// The HTTP status of a denial for this reason.
    pub fn status(self) -> u16 {
        match self {
            _ if self.is_infrastructure() => 503,
            Reason::InsufficientScope | Reason::WrongTenant => 403,
            Reason::InvalidRequest | Reason::InvalidPath => 400,
            // RFC 9470 answers step-up with 401 and a challenge.
            _ => 401,
        }
    }

    /// The RFC 6750 error code, or `None` when the request carried no credentials
    /// (RFC 6750 section 3.1: no error code then) or the failure is ours.
    pub fn bearer_error(self) -> Option<BearerError> {
        match self {
            // No credential was judged: the request was refused before.
            Reason::MissingToken | Reason::InvalidPath => None,
            _ if self.is_infrastructure() => None,
            Reason::InsufficientScope | Reason::WrongTenant => Some(BearerError::InsufficientScope),
            Reason::AuthTooOld => Some(BearerError::InsufficientUserAuthentication),
            Reason::InvalidRequest => Some(BearerError::InvalidRequest),
            _ => Some(BearerError::InvalidToken),
        }
    }

    /// A short, fixed, human-readable description (safe to send to clients: no token data).
    pub fn description(self) -> &'static str {
        match self {
            Reason::MissingToken => "no bearer token",
            Reason::InvalidRequest => {
                "the request carries more than one or a malformed credential, or a non-canonical method"
            }
            Reason::InvalidPath => "the request path is malformed or ambiguous",
            Reason::MalformedToken => "the token is not a well-formed JWT",
            Reason::DisallowedAlgorithm => "the token's algorithm is not allowed",
            Reason::ForbiddenHeader => "the token header carries a forbidden parameter",
            Reason::UnknownKey => "the token's key is not known",
            Reason::BadSignature => "the token signature is invalid",
            Reason::Expired => "the token has expired",
            Reason::NotYetValid => "the token is not valid yet",
            Reason::IssuedInFuture => "the token is issued in the future",
            Reason::TokenTooOld => "the token exceeds the maximum lifetime",
            Reason::MissingClaim => "the token lacks a required claim",
            Reason::WrongIssuer => "the token's issuer is not accepted",
            Reason::WrongAudience => "the token's audience is not accepted",
            Reason::WrongType => "the token's type is not accepted",
            Reason::Revoked => "the token has been revoked",
            Reason::RevokedSession => "the token's session has been revoked",
            Reason::RevokedSubject => "the token was issued before the subject's revocation",
            Reason::RevokedTenant => "the token was issued before the tenant's revocation",
            Reason::TokenInactive => "the token is not active",
            Reason::InsufficientScope => "the token lacks a required scope or role",
            Reason::WrongTenant => "the token is for another tenant",
            Reason::AuthTooOld => "a more recent authentication is required",
            Reason::KeysUnavailable => "signing keys are unavailable",
            Reason::StaleRevocationData => "revocation data is unavailable or stale",
            Reason::IntrospectionFailed => "the token could not be checked with the issuer",
            Reason::NotReady => "the policy is not ready (not configured or busy)",
        }
    }
}

/// The RFC 6750 `WWW-Authenticate` value for a denial. Values are fixed strings from this
/// module and configuration (realm, scope), so no client input is ever reflected.
pub fn www_authenticate(reason: Reason, realm: &str, required_scope: Option<&str>) -> String {
    let mut value = format!("Bearer realm=\"{}\"", quote_safe(realm));
    if let Some(err) = reason.bearer_error() {
        value.push_str(&format!(
            ", error=\"{}\", error_description=\"{}\"",
            err.code(),
            reason.description()
        ));
        if err == BearerError::InsufficientScope {
            if let Some(scope) = required_scope {
                value.push_str(&format!(", scope=\"{}\"", quote_safe(scope)));
            }
        }
    }
    value
}

/// RFC 6750 restricts attribute values to %x20-21 / %x23-5B / %x5D-7E.
fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(*r));
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.code()));
        }
    }

    #[test]
    fn infrastructure_is_not_the_clients_fault() {
        assert_eq!(Reason::StaleRevocationData.status(), 503);
        assert_eq!(
            www_authenticate(Reason::KeysUnavailable, "api", None),
            "Bearer realm=\"api\""
        );
        assert_eq!(Reason::NotReady.status(), 503);
        assert_eq!(Reason::NotReady.code(), "not_ready");
        assert_eq!(Reason::NotReady.bearer_error(), None);
        assert_eq!(Reason::Revoked.status(), 401);
        assert_eq!(Reason::InsufficientScope.status(), 403);
    }

    #[test]
    fn challenge_has_no_error_without_credentials() {
        assert_eq!(
            www_authenticate(Reason::MissingToken, "a\"b", None),
            "Bearer realm=\"ab\""
        );
        let v = www_authenticate(Reason::InsufficientScope, "api", Some("read write"));
        assert!(v.contains("error=\"insufficient_scope\"") && v.contains("scope=\"read write\""));
    }
}

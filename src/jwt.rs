//! JWT verification: cheap structural checks on untrusted input first, then the signature with
//! the key named by `kid` (its algorithm fixed by the key set), then the claims against policy.
//!
//! jwt-simple does the cryptography and its own claim checks under explicit options (our skew,
//! our `now`, our size limits); our checks below are the authoritative ones: `exp` is required,
//! lifetimes are bounded and `typ` follows RFC 9068 media-type rules.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use jwt_simple::common::VerificationOptions;
use jwt_simple::reexports::coarsetime::{Duration, UnixTimeStamp};
use jwt_simple::JWTError;
use serde_json::{Map, Value};

use crate::claims;
use crate::json;
use crate::jwks::{Algorithm, KeySet, SelectError, Verifier};
use crate::reason::Reason;

/// Largest encoded header accepted: real headers are well under 1 KiB.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Clock skew above one day is treated as one day: such skew is a broken clock, not drift.
pub const MAX_CLOCK_SKEW_SECS: u64 = 86_400;

/// Largest `now` handed to jwt-simple, whose timestamps hold 32-bit seconds (until 2106): beyond
/// it, jwt-simple's arithmetic would overflow. Our own checks always use the real `now`.
const JWT_SIMPLE_MAX_NOW: u64 = 4_294_967_295 - MAX_CLOCK_SKEW_SECS;

/// Header parameters that would let the token pick its own key or extensions.
const FORBIDDEN_HEADERS: [&str; 5] = ["jwk", "jku", "x5u", "x5c", "crit"];

/// Explicit types of JWTs that are not access tokens (RFC 8725 section 3.11: a JWT of one kind
/// must not be accepted as another). Issuers sign these with the same keys as their access
/// tokens, so without `required_type` a logout token or a DPoP proof would otherwise verify as
/// a bearer token. Compared like `typ`: case-insensitively, `application/` optional.
pub const NON_ACCESS_TYPES: [&str; 11] = [
    // OpenID Connect Back-Channel Logout 1.0, section 2.4.
    "logout+jwt",
    // RFC 8417 Security Event Tokens (SSF, CAEP, RISC).
    "secevent+jwt",
    // RFC 9449 DPoP proofs.
    "dpop+jwt",
    // RFC 9701 JWT introspection responses.
    "token-introspection+jwt",
    // SD-JWT key binding JWTs.
    "kb+jwt",
    // RFC 9101 request objects.
    "oauth-authz-req+jwt",
    // OpenID Federation 1.0 entity statements and signed key sets.
    "entity-statement+jwt",
    "jwk-set+jwt",
    // OAuth 2.0 attestation-based client authentication (draft).
    "oauth-client-attestation+jwt",
    "oauth-client-attestation-pop+jwt",
    // OpenID for Verifiable Credential Issuance key proofs.
    "openid4vci-proof+jwt",
];

/// Claims with their own field in [`Claims`]; every other claim goes to `extra`.
const STANDARD_CLAIMS: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "auth_time",
    "scope",
    "scp",
];

/// What a route (or issuer) requires of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted audiences: the token must name at least one. Empty: `aud` is not checked.
    pub audiences: Vec<String>,
    /// Tolerated clock difference with the issuer, for `exp`, `nbf` and `iat`; at most
    /// [`MAX_CLOCK_SKEW_SECS`] is used.
    pub clock_skew_secs: u64,
    /// Largest `exp - iat`; when set, tokens without `iat` fail with `MissingClaim("iat")`.
    pub max_lifetime_secs: Option<u64>,
    /// Claims that must be present and not null.
    pub required_claims: Vec<String>,
    /// Required `typ` (e.g. `at+jwt`), compared case-insensitively, `application/` optional.
    /// When `None`, a `typ` is still only accepted if it is `JWT` or ends in `+jwt`, and is not
    /// one of the [`NON_ACCESS_TYPES`].
    pub required_type: Option<String>,
    pub max_token_bytes: usize,
}

/// The parts of a JOSE header we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHeader {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// The result of [`inspect`]: nothing here is verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    pub header: TokenHeader,
    /// Only for choosing the issuer's key set; [`verify`] checks `iss` again after the signature.
    pub unverified_issuer: Option<String>,
    /// The decoded payload, unverified: only for [`precheck`] and [`unverified_exp`].
    pub payload: Payload,
    /// The whole decoded header, for the members [`jwt_simple_steps`] checks.
    header_members: Map<String, Value>,
}

/// A token's payload as parsed: the claims [`Claims`] has a field for in fixed places, the others
/// in a map. Reading every member into one map (a name allocated and a tree insertion each) was
/// the largest part of reading a token: BENCHMARKS.md, the shared verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// By [`STANDARD_CLAIMS`]' order.
    standard: [Option<Value>; STANDARD_CLAIMS.len()],
    /// Every other claim.
    extra: Map<String, Value>,
}

impl Payload {
    /// The claim of this name, if the payload has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match standard_slot(name) {
            Some(slot) => self.standard.get(slot)?.as_ref(),
            None => self.extra.get(name),
        }
    }

    /// Every claim in one map.
    fn into_map(self) -> Map<String, Value> {
        let mut map = self.extra;
        for (name, value) in STANDARD_CLAIMS.iter().zip(self.standard) {
            if let Some(value) = value {
                map.insert((*name).to_owned(), value);
            }
        }
        map
    }
}

impl json::Members for Payload {
    fn member(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }

    fn insert(&mut self, name: Cow<'_, str>, value: Value) {
        match standard_slot(&name).and_then(|slot| self.standard.get_mut(slot)) {
            Some(slot) => *slot = Some(value),
            None => {
                self.extra.insert(name.into_owned(), value);
            }
        }
    }
}

fn standard_slot(name: &str) -> Option<usize> {
    STANDARD_CLAIMS.iter().position(|claim| *claim == name)
}

/// Verified claims.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    pub exp: u64,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    pub jti: Option<String>,
    pub sid: Option<String>,
    pub auth_time: Option<u64>,
    /// From `scope` (a space-separated string); from `scp` (the same, or an array) only when
    /// `scope` is absent or empty. The rules: crate::claims.
    pub scopes: Vec<String>,
    /// Every other claim (roles, tenant, ...).
    pub extra: Map<String, Value>,
}

impl Claims {
    /// Any claim by name, standard ones included. `aud` is a string when there is one audience;
    /// `scope` (string) and `scp` (array) both give the scopes, whichever the token used.
    pub fn claim(&self, name: &str) -> Option<Value> {
        let string = |s: &Option<String>| s.clone().map(Value::String);
        match name {
            "iss" => Some(Value::String(self.iss.clone())),
            "sub" => string(&self.sub),
            "jti" => string(&self.jti),
            "sid" => string(&self.sid),
            "exp" => Some(Value::from(self.exp)),
            "nbf" => self.nbf.map(Value::from),
            "iat" => self.iat.map(Value::from),
            "auth_time" => self.auth_time.map(Value::from),
            "aud" => match self.aud.as_slice() {
                [] => None,
                [one] => Some(Value::String(one.clone())),
                many => Some(Value::from(many.to_vec())),
            },
            "scope" if !self.scopes.is_empty() => Some(Value::String(self.scopes.join(" "))),
            "scp" if !self.scopes.is_empty() => Some(Value::from(self.scopes.clone())),
            "scope" | "scp" => None,
            other => self.extra.get(other).cloned(),
        }
    }
}

/// Why a token was refused.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed(&'static str),
    DisallowedAlgorithm,
    ForbiddenHeader(&'static str),
    UnknownKey { kid: Option<String> },
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    TooOld,
    MissingClaim(String),
    WrongIssuer,
    WrongAudience,
    WrongType,
}

impl TokenError {
    pub fn reason(&self) -> Reason {
        match self {
            TokenError::Malformed(_) => Reason::MalformedToken,
            TokenError::DisallowedAlgorithm => Reason::DisallowedAlgorithm,
            TokenError::ForbiddenHeader(_) => Reason::ForbiddenHeader,
            TokenError::UnknownKey { .. } => Reason::UnknownKey,
            TokenError::BadSignature => Reason::BadSignature,
            TokenError::Expired => Reason::Expired,
            TokenError::NotYetValid => Reason::NotYetValid,
            TokenError::IssuedInFuture => Reason::IssuedInFuture,
            TokenError::TooOld => Reason::TokenTooOld,
            TokenError::MissingClaim(_) => Reason::MissingClaim,
            TokenError::WrongIssuer => Reason::WrongIssuer,
            TokenError::WrongAudience => Reason::WrongAudience,
            TokenError::WrongType => Reason::WrongType,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(what) => write!(f, "malformed token: {what}"),
            TokenError::DisallowedAlgorithm => {
                f.write_str("token algorithm is not allowed for its key")
            }
            TokenError::ForbiddenHeader(name) => {
                write!(f, "token header carries the forbidden parameter \"{name}\"")
            }
            // The kid is attacker-chosen: bounded and escaped.
            TokenError::UnknownKey { kid: Some(kid) } => {
                let shown: String = kid.chars().take(64).collect();
                write!(f, "no key with kid {shown:?} in the issuer's key set")
            }
            TokenError::UnknownKey { kid: None } => {
                f.write_str("token has no kid and no single key of the issuer fits its algorithm")
            }
            TokenError::BadSignature => f.write_str("token signature does not verify"),
            TokenError::Expired => f.write_str("token has expired"),
            TokenError::NotYetValid => f.write_str("token is not valid yet (nbf)"),
            TokenError::IssuedInFuture => f.write_str("token is issued in the future (iat)"),
            TokenError::TooOld => f.write_str("token lifetime (exp - iat) exceeds the maximum"),
            TokenError::MissingClaim(name) => {
                write!(f, "token lacks the required claim \"{name}\"")
            }
            TokenError::WrongIssuer => f.write_str("token issuer is not the expected one"),
            TokenError::WrongAudience => f.write_str("token audience is not accepted"),
            TokenError::WrongType => f.write_str("token type (typ) is not accepted"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Cheap checks on untrusted input before any crypto: size, three base64url parts, header JSON,
/// `alg` (unknown, or `none` in any spelling: `DisallowedAlgorithm`), forbidden header parameters
/// (`jwk`, `jku`, `x5u`, `x5c`, and any `crit`: we understand no extension). Also returns the
/// payload's unverified `iss`, used only to pick the issuer's key set.
pub fn inspect(token: &str, max_token_bytes: usize) -> Result<Inspected, TokenError> {
    parse(token, max_token_bytes).map(|parsed| parsed.inspected)
}

/// Verifies `token` against `keys` and `policy` at time `now` (Unix seconds).
pub fn verify(
    token: &str,
    keys: &KeySet,
    policy: &VerifyPolicy,
    now: u64,
) -> Result<Claims, TokenError> {
    let parsed = parse(token, policy.max_token_bytes)?;
    verify_parsed(token, &parsed.inspected, parsed.parts, keys, policy, now)
}

/// [`verify`] for a token already read by [`inspect`] (`inspected` must be `inspect(token, _)`'s
/// answer): the same checks and answers, without decoding and parsing the token a second time
/// (on a first-seen HS256 token the second parse cost more than the HMAC).
pub fn verify_inspected(
    token: &str,
    inspected: &Inspected,
    keys: &KeySet,
    policy: &VerifyPolicy,
    now: u64,
) -> Result<Claims, TokenError> {
    // `inspect` may have run under another (larger) size limit than this policy's.
    if token.len() > policy.max_token_bytes {
        return Err(TokenError::Malformed("token exceeds the size limit"));
    }
    verify_parsed(token, inspected, Parts::of(token)?, keys, policy, now)
}

fn verify_parsed(
    token: &str,
    inspected: &Inspected,
    parts: Parts<'_>,
    keys: &KeySet,
    policy: &VerifyPolicy,
    now: u64,
) -> Result<Claims, TokenError> {
    if !type_accepted(
        inspected.header.typ.as_deref(),
        policy.required_type.as_deref(),
    ) {
        return Err(TokenError::WrongType);
    }
    check_signature(
        token,
        inspected,
        parts,
        keys,
        skew(policy),
        policy.max_token_bytes,
        now,
    )?;
    let claims = check_claims(&inspected.payload, policy, now)?;
    Ok(Claims {
        extra: inspected.payload.extra.clone(),
        ..claims
    })
}

/// The claims of a token (as [`inspect`] read it) whose signature was verified elsewhere
/// (another worker VM of this proxy, under key sets the caller has checked are the ones it
/// would use): every check [`verify`] makes besides the key and the signature, in its order
/// (the `typ` rule, jwt-simple's time checks, then [`check_claims`]), at this `now`.
pub fn claims_verified_elsewhere(
    inspected: Inspected,
    policy: &VerifyPolicy,
    now: u64,
) -> Result<Claims, TokenError> {
    if !type_accepted(
        inspected.header.typ.as_deref(),
        policy.required_type.as_deref(),
    ) {
        return Err(TokenError::WrongType);
    }
    // The dates as the signature step read them (jwt-simple's decoding, which every verified
    // payload passed): one it cannot read never verified.
    let dates = jwt_simple_claim_dates(&inspected.payload).ok_or(TokenError::Malformed(
        "claims of a type jwt-simple does not decode",
    ))?;
    jwt_simple_time_checks(dates, skew(policy), now)?;
    let claims = check_claims(&inspected.payload, policy, now)?;
    // The payload is ours: its other claims move into `extra`, uncopied.
    Ok(Claims {
        extra: inspected.payload.extra,
        ..claims
    })
}

/// Claims first: every check [`verify`] makes besides the key and the signature, made on the
/// unverified payload, so that a token refused for its claims (expired, not valid yet, another
/// issuer or audience, its type) costs no signature work. For a token whose signature verifies,
/// the error is the one [`verify`] gives: the `typ` rule, then jwt-simple's time checks in its
/// order (`iat`, `nbf`, `exp`; claims.rs `JWTClaims::validate`), then [`check_claims`]. Where
/// jwt-simple would refuse to decode the payload (a date that is not an integer below 2^32, a
/// string claim of another type) the outcome is left to [`verify`]. Passing proves nothing:
/// [`verify`] checks everything again once the signature holds.
pub fn precheck(inspected: &Inspected, policy: &VerifyPolicy, now: u64) -> Result<(), TokenError> {
    if !type_accepted(
        inspected.header.typ.as_deref(),
        policy.required_type.as_deref(),
    ) {
        return Err(TokenError::WrongType);
    }
    let payload = &inspected.payload;
    let Some(dates) = jwt_simple_dates(payload) else {
        return Ok(());
    };
    jwt_simple_time_checks(dates, skew(policy), now)?;
    check_claims(payload, policy, now).map(drop)
}

/// The payload's `exp` as claimed (unverified): how long a refusal may be remembered.
pub fn unverified_exp(inspected: &Inspected) -> Option<u64> {
    claims::date(inspected.payload.get("exp")).ok().flatten()
}

/// `iat`, `nbf`, `exp` as jwt-simple reads them, when it reads the payload the way we do:
/// dates absent or integers below 2^32 (coarsetime shifts seconds left by 32 bits, and floats
/// are truncated by `as`), `iss`, `sub`, `jti`, `nonce` absent or strings, `aud` absent, a
/// string or an array of strings (jwt-simple serde_additions.rs). `None` otherwise.
fn jwt_simple_dates(payload: &Payload) -> Option<[Option<u64>; 3]> {
    let date = |name: &str| match payload.get(name) {
        None => Some(None),
        Some(v) => v.as_u64().filter(|d| *d < 1 << 32).map(Some),
    };
    claim_types_decoded(payload, false).then_some(())?;
    Some([date("iat")?, date("nbf")?, date("exp")?])
}

/// `iss`, `sub`, `jti`, `nonce` absent or strings (or `null`, with `null_strings`), and `aud`
/// absent, a string or an array of strings: the claim types jwt-simple decodes.
fn claim_types_decoded(payload: &Payload, null_strings: bool) -> bool {
    let strings = ["iss", "sub", "jti", "nonce"].iter().all(|name| {
        payload
            .get(name)
            .is_none_or(|v| v.is_string() || (null_strings && v.is_null()))
    });
    let aud = match payload.get("aud") {
        None | Some(Value::String(_)) => true,
        Some(Value::Array(items)) => items.iter().all(Value::is_string),
        Some(_) => false,
    };
    strings && aud
}

/// jwt-simple's `JWTClaims::validate` time checks, with the options [`check_signature`] gives.
fn jwt_simple_time_checks(
    [iat, nbf, exp]: [Option<u64>; 3],
    skew_secs: u64,
    now: u64,
) -> Result<(), TokenError> {
    let now = now.min(JWT_SIMPLE_MAX_NOW);
    let latest = now.saturating_add(skew_secs);
    if iat.is_some_and(|iat| iat > latest) {
        return Err(TokenError::IssuedInFuture);
    }
    if nbf.is_some_and(|nbf| latest < nbf) {
        return Err(TokenError::NotYetValid);
    }
    if exp.is_some_and(|exp| now < skew_secs || now - skew_secs > exp) {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// What [`verify_signed`] requires of a JWT that is not an access token (a logout token, a
/// Security Event Token): its own explicit type, a size bound and the clock skew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPolicy {
    /// The `typ` the token must carry, compared like [`VerifyPolicy::required_type`].
    pub typ: String,
    /// Whether a token without `typ` is accepted too (an explicit other type never is).
    pub typ_optional: bool,
    pub clock_skew_secs: u64,
    pub max_token_bytes: usize,
}

/// Verifies the structure, `typ` and signature of `token` (and, through jwt-simple, `exp` and
/// `nbf` when present and an `iat` in the future) and returns its header and raw claims: for
/// tokens whose claims are not an access token's (no `exp` required), checked by the caller.
pub fn verify_signed(
    token: &str,
    keys: &KeySet,
    policy: &SignedPolicy,
    now: u64,
) -> Result<(TokenHeader, Map<String, Value>), TokenError> {
    let parsed = parse(token, policy.max_token_bytes)?;
    let typ = parsed.inspected.header.typ.as_deref();
    let typ_ok = match typ {
        None => policy.typ_optional,
        Some(_) => type_accepted(typ, Some(&policy.typ)),
    };
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let skew = policy.clock_skew_secs.min(MAX_CLOCK_SKEW_SECS);
    check_signature(
        token,
        &parsed.inspected,
        parsed.parts,
        keys,
        skew,
        policy.max_token_bytes,
        now,
    )?;
    Ok((parsed.inspected.header, parsed.inspected.payload.into_map()))
}

/// The key for the token's `kid` and `alg` (fixed by the key set), then the signature, and
/// jwt-simple's time checks under our skew and `now`.
///
/// Where the signature is checked, and why:
/// - RSA (RS*, PS*) and HMAC (HS*) are checked here, on the parse we already made, with the
///   key prepared once per key set (src/jwks.rs): the `rsa` 0.10 line for RSA and the HMAC
///   crates for HMAC. jwt-simple's `verify_token` decodes and parses the token a second time,
///   and for RSA it also copies the public key twice per call (into an OpenSSL-like `PKey`, then
///   into an `rsa` 0.9 verifying key) before a modular exponentiation on num-bigint-dig that
///   costs about twice crypto-bigint's in wasm; for HMAC the second parse is most of the work.
///   BENCHMARKS.md has the figures against bare crate operations in the same host.
/// - ECDSA (ES256, ES384) and EdDSA stay on jwt-simple's `verify_token`: there the second
///   parse is under 1% of the curve arithmetic, and jwt-simple's p256/p384 and Ed25519
///   verification is already the crates' own operation.
///
/// jwt-simple stays the policy either way: the key fixes the algorithm (the key set's verifier
/// for `alg`), and [`jwt_simple_steps`] gives exactly the answers `verify_token` gives for RSA and
/// HMAC keys (the unit tests compare both on the same tokens).
fn check_signature(
    token: &str,
    inspected: &Inspected,
    parts: Parts<'_>,
    keys: &KeySet,
    skew_secs: u64,
    max_token_bytes: usize,
    now: u64,
) -> Result<(), TokenError> {
    let header = &inspected.header;
    let alg = Algorithm::parse(&header.alg).ok_or(TokenError::DisallowedAlgorithm)?;
    let verifier = keys
        .select(header.kid.as_deref(), alg)
        .map_err(|e| match e {
            SelectError::AlgorithmNotAccepted => TokenError::DisallowedAlgorithm,
            SelectError::UnknownKey => TokenError::UnknownKey {
                kid: header.kid.clone(),
            },
        })?;
    // A signature of the wrong size (empty, DER-encoded ECDSA, truncated) never reaches crypto.
    if decoded_len(parts.signature_b64.len()) != Some(verifier.signature_len()) {
        return Err(TokenError::BadSignature);
    }
    if !verifier.uses_jwt_simple() {
        return jwt_simple_steps(inspected, parts, verifier, skew_secs, now);
    }
    let options = VerificationOptions {
        time_tolerance: Some(Duration::from_secs(skew_secs)),
        artificial_time: Some(UnixTimeStamp::from_secs(now.min(JWT_SIMPLE_MAX_NOW))),
        max_token_length: Some(max_token_bytes),
        max_header_length: Some(MAX_HEADER_BYTES),
        // Our RFC 9068 `typ` rule above replaces jwt-simple's narrower one.
        required_signature_type: header.typ.clone(),
        ..VerificationOptions::default()
    };
    verifier
        .verify(token, options)
        .map_err(|e| from_jwt_simple(&e))?;
    Ok(())
}

/// What jwt-simple 0.15's `Token::verify_with_algorithms` (token.rs) does after the checks our
/// [`parse`] has already made (size, three parts, header size and JSON, `crit`), in its order,
/// with the signature checked by our own verifier: the header's typed members, the `salt`
/// parameter, the signature's base64url, the signature, the payload's typed claims, then
/// `JWTClaims::validate`'s time checks. The options [`check_signature`] would give make its
/// `typ` and `alg` checks pass by construction (the key was selected for `alg`), and leave
/// issuer, audience, subject, nonce and age unchecked.
fn jwt_simple_steps(
    inspected: &Inspected,
    parts: Parts<'_>,
    verifier: &Verifier,
    skew_secs: u64,
    now: u64,
) -> Result<(), TokenError> {
    // jwt-simple's failures that are not a `JWTError` (serde, base64): see from_jwt_simple.
    const UNDECODABLE: TokenError = TokenError::Malformed("token could not be decoded");
    // jwt_header.rs `JWTHeader`: these are `Option<String>` (null reads as absent); the members
    // our parse refuses or reads itself (`jwk`, `jku`, `x5u`, `x5c`, `crit`, `alg`, `kid`,
    // `typ`) are not repeated here.
    let header = &inspected.header_members;
    let string_or_null = |name: &str| {
        header
            .get(name)
            .is_none_or(|v| v.is_string() || v.is_null())
    };
    if !["cty", "x5t", "x5t#S256", "salt"]
        .into_iter()
        .all(string_or_null)
    {
        return Err(UNDECODABLE);
    }
    // A `salt` must be base64url; keys without a salt (all of ours) refuse one for HMAC
    // (hmac.rs: `MissingSalt`) and ignore it for RSA.
    if let Some(salt) = header.get("salt").and_then(Value::as_str) {
        decode_b64url(salt).ok_or(UNDECODABLE)?;
        if verifier.is_hmac() {
            return Err(TokenError::ForbiddenHeader("salt"));
        }
    }
    let signature = decode_b64url(parts.signature_b64).ok_or(UNDECODABLE)?;
    if !verifier.check_signature(parts.signing_input.as_bytes(), &signature) {
        return Err(TokenError::BadSignature);
    }
    let dates = jwt_simple_claim_dates(&inspected.payload).ok_or(UNDECODABLE)?;
    jwt_simple_time_checks(dates, skew_secs, now)
}

/// `iat`, `nbf`, `exp` exactly as jwt-simple decodes them into `JWTClaims` (claims.rs,
/// serde_additions.rs), `None` where it refuses the payload. Dates: an integer of any size
/// (coarsetime saturates seconds at 2^32 - 1 plus a fraction, which compares like the plain
/// `u64` here) or a float (truncated and saturated by `as`); a negative integer, `null` or any
/// other type is refused. `iss`, `sub`, `jti`, `nonce`: a string or `null`. `aud`: a string or
/// an array of strings (`null` refused: its deserializer has no unit case).
fn jwt_simple_claim_dates(payload: &Payload) -> Option<[Option<u64>; 3]> {
    let date = |name: &str| match payload.get(name) {
        None => Some(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Some(Some(secs)),
            (None, Some(f)) if !n.is_i64() => {
                // Saturating float-to-integer conversion, as serde_additions.rs does.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(Some(f as u64))
            }
            _ => None,
        },
        Some(_) => None,
    };
    claim_types_decoded(payload, true).then_some(())?;
    Some([date("iat")?, date("nbf")?, date("exp")?])
}

fn skew(policy: &VerifyPolicy) -> u64 {
    policy.clock_skew_secs.min(MAX_CLOCK_SKEW_SECS)
}

struct Parsed<'a> {
    inspected: Inspected,
    parts: Parts<'a>,
}

/// A compact JWS's signed part and signature, as sent.
#[derive(Clone, Copy)]
struct Parts<'a> {
    /// `header.payload`: what the signature covers.
    signing_input: &'a str,
    signature_b64: &'a str,
}

impl<'a> Parts<'a> {
    /// Splits at the last dot; for a token [`parse`] has accepted (exactly two dots).
    fn of(token: &'a str) -> Result<Parts<'a>, TokenError> {
        let (signing_input, signature_b64) = token
            .rsplit_once('.')
            .ok_or(TokenError::Malformed("a JWT has three dot-separated parts"))?;
        Ok(Parts {
            signing_input,
            signature_b64,
        })
    }
}

fn parse(token: &str, max_token_bytes: usize) -> Result<Parsed<'_>, TokenError> {
    if token.len() > max_token_bytes {
        return Err(TokenError::Malformed("token exceeds the size limit"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("a JWT has three dot-separated parts"));
    };
    if header_b64.len() > MAX_HEADER_BYTES {
        return Err(TokenError::Malformed("header exceeds the size limit"));
    }
    if !is_base64url(signature_b64) || decoded_len(signature_b64.len()).is_none() {
        return Err(TokenError::Malformed("signature is not base64url"));
    }
    let header_members = decode_object(
        header_b64,
        "header is not base64url",
        "header is not a JSON object",
    )?;
    let header = parse_header(&header_members)?;
    let payload = decode_object(
        payload_b64,
        "payload is not base64url",
        "payload is not a JSON object",
    )?;
    let unverified_issuer = string_claim(&payload, "iss", "iss is not a string")?;
    Ok(Parsed {
        inspected: Inspected {
            header,
            unverified_issuer,
            payload,
            header_members,
        },
        parts: Parts::of(token)?,
    })
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decoded length of unpadded base64 text, `None` for an impossible length.
fn decoded_len(encoded: usize) -> Option<usize> {
    let full = (encoded / 4).checked_mul(3)?;
    match encoded % 4 {
        0 => Some(full),
        2 => full.checked_add(1),
        3 => full.checked_add(2),
        _ => None,
    }
}

/// Unpadded base64url, canonical only (no padding, no length of 4n + 1, no stray bits in the
/// last character), exactly what ct-codecs (jwt-simple's decoder) accepts: the unit test
/// `base64url_decoding_agrees_with_jwt_simples` compares both. Token parts are public, so the
/// table-driven decoder is used, not a constant-time one.
fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

fn decode_object<M: json::Members>(
    b64: &str,
    not_b64: &'static str,
    not_object: &'static str,
) -> Result<M, TokenError> {
    // The decoder refuses every character outside the base64url alphabet itself: no scan first.
    if b64.is_empty() {
        return Err(TokenError::Malformed(not_b64));
    }
    let bytes = decode_b64url(b64).ok_or(TokenError::Malformed(not_b64))?;
    // Duplicate names are refused, so that no two parsers read different values.
    json::parse_members(&bytes).map_err(|_| TokenError::Malformed(not_object))
}

fn parse_header(header: &Map<String, Value>) -> Result<TokenHeader, TokenError> {
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(TokenError::Malformed("alg is not a string")),
        None => return Err(TokenError::Malformed("header has no alg")),
    };
    if Algorithm::parse(alg).is_none() {
        return Err(TokenError::DisallowedAlgorithm);
    }
    if let Some(name) = FORBIDDEN_HEADERS
        .iter()
        .find(|name| header.contains_key(**name))
    {
        return Err(TokenError::ForbiddenHeader(name));
    }
    Ok(TokenHeader {
        alg: alg.clone(),
        kid: string_claim(header, "kid", "kid is not a string")?,
        typ: string_claim(header, "typ", "typ is not a string")?,
    })
}

/// RFC 9068 section 4 / RFC 8725 section 3.11: media types compare case-insensitively and the
/// `application/` prefix may be omitted.
fn type_accepted(typ: Option<&str>, required: Option<&str>) -> bool {
    fn bare(media_type: &str) -> &str {
        match media_type.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => {
                media_type.get(12..).unwrap_or_default()
            }
            _ => media_type,
        }
    }
    match (typ.map(bare), required.map(bare)) {
        (Some(typ), Some(required)) => typ.eq_ignore_ascii_case(required),
        (None, Some(_)) => false,
        (None, None) => true,
        (Some(typ), None) => {
            let suffix = typ.len().checked_sub(4).and_then(|start| typ.get(start..));
            let jwt = typ.eq_ignore_ascii_case("jwt")
                || suffix.is_some_and(|s| s.eq_ignore_ascii_case("+jwt"));
            jwt && !NON_ACCESS_TYPES
                .iter()
                .any(|other| typ.eq_ignore_ascii_case(other))
        }
    }
}

/// Maps jwt-simple's failures; anything it reports that is not a `JWTError` is a decoding error.
fn from_jwt_simple(err: &jwt_simple::Error) -> TokenError {
    match err.downcast_ref::<JWTError>() {
        None => TokenError::Malformed("token could not be decoded"),
        Some(e) => match e {
            JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag => {
                TokenError::BadSignature
            }
            JWTError::TokenHasExpired => TokenError::Expired,
            JWTError::TokenNotValidYet => TokenError::NotYetValid,
            JWTError::ClockDrift => TokenError::IssuedInFuture,
            JWTError::TokenIsTooOld => TokenError::TooOld,
            JWTError::AlgorithmMismatch => TokenError::DisallowedAlgorithm,
            JWTError::UnknownCriticalExtension => TokenError::ForbiddenHeader("crit"),
            JWTError::MissingSalt => TokenError::ForbiddenHeader("salt"),
            JWTError::NotJWT | JWTError::RequiredSignatureTypeMismatch => TokenError::WrongType,
            JWTError::TokenTooLong => TokenError::Malformed("token exceeds the size limit"),
            JWTError::HeaderTooLarge => TokenError::Malformed("header exceeds the size limit"),
            JWTError::CompactEncodingError => {
                TokenError::Malformed("a JWT has three dot-separated parts")
            }
            // Remaining variants concern keys and claims we do not ask jwt-simple to check:
            // refuse as a signature failure rather than guess.
            _ => TokenError::BadSignature,
        },
    }
}

/// Reads the claims with a field of their own in [`Claims`] and checks them against `policy`;
/// `extra` is left empty for the caller (a precheck needs none of it).
fn check_claims(payload: &Payload, policy: &VerifyPolicy, now: u64) -> Result<Claims, TokenError> {
    let missing_required = policy
        .required_claims
        .iter()
        .find(|name| payload.get(name.as_str()).is_none_or(Value::is_null))
        .cloned();
    let claims = Claims {
        iss: string_claim(payload, "iss", "iss is not a string")?
            .ok_or_else(|| TokenError::MissingClaim("iss".into()))?,
        sub: string_claim(payload, "sub", "sub is not a string")?,
        aud: claims::audience(payload.get("aud"))
            .map_err(|_| TokenError::Malformed("aud is not a string or an array of strings"))?,
        exp: numeric_date(payload, "exp", "exp is not a NumericDate")?
            .ok_or_else(|| TokenError::MissingClaim("exp".into()))?,
        nbf: numeric_date(payload, "nbf", "nbf is not a NumericDate")?,
        iat: numeric_date(payload, "iat", "iat is not a NumericDate")?,
        jti: string_claim(payload, "jti", "jti is not a string")?,
        sid: string_claim(payload, "sid", "sid is not a string")?,
        auth_time: numeric_date(payload, "auth_time", "auth_time is not a NumericDate")?,
        scopes: match claims::scope(payload.get("scope"))
            .map_err(|_| TokenError::Malformed("scope is not a string of scopes"))?
        {
            scopes if !scopes.is_empty() => scopes,
            _ => claims::scope_list(payload.get("scp"))
                .map_err(|_| TokenError::Malformed("scp is not a string or an array of strings"))?,
        },
        // Filled by the caller, from its borrowed or owned payload.
        extra: Map::new(),
    };
    let skew = skew(policy);
    if claims.iss != policy.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if !policy.audiences.is_empty() {
        if claims.aud.is_empty() {
            return Err(TokenError::MissingClaim("aud".into()));
        }
        if !claims.aud.iter().any(|aud| policy.audiences.contains(aud)) {
            return Err(TokenError::WrongAudience);
        }
    }
    if now > claims.exp.saturating_add(skew) {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
        return Err(TokenError::NotYetValid);
    }
    if claims.iat.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(max) = policy.max_lifetime_secs {
        let iat = claims
            .iat
            .ok_or_else(|| TokenError::MissingClaim("iat".into()))?;
        if claims.exp.saturating_sub(iat) > max {
            return Err(TokenError::TooOld);
        }
    }
    if let Some(name) = missing_required {
        return Err(TokenError::MissingClaim(name));
    }
    Ok(claims)
}

/// A string member (claim or header parameter); the shared rule of crate::claims.
fn string_claim(
    map: &impl json::Members,
    name: &str,
    wrong_type: &'static str,
) -> Result<Option<String>, TokenError> {
    claims::string(map.member(name)).map_err(|_| TokenError::Malformed(wrong_type))
}

/// A NumericDate claim; the shared rule of crate::claims (whole seconds only).
fn numeric_date(
    map: &impl json::Members,
    name: &str,
    wrong_type: &'static str,
) -> Result<Option<u64>, TokenError> {
    claims::date(map.member(name)).map_err(|_| TokenError::Malformed(wrong_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::test_fixtures::{b64, jwks, payload, Signer, ALL_ALGS, AUDIENCE, ISSUER, NOW};
    use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
    use serde_json::json;

    fn policy() -> VerifyPolicy {
        VerifyPolicy {
            issuer: ISSUER.into(),
            audiences: vec![AUDIENCE.into(), "other".into()],
            clock_skew_secs: 30,
            max_lifetime_secs: Some(86_400),
            required_claims: vec!["sub".into()],
            required_type: None,
            max_token_bytes: 16 * 1024,
        }
    }

    fn set_of(signers: &[&Signer]) -> KeySet {
        let jwks_doc = jwks(&signers.iter().map(|s| s.public_jwk()).collect::<Vec<_>>());
        KeySet::from_jwks(&jwks_doc, Algorithm::ALL).unwrap()
    }

    fn with(changes: Value) -> Value {
        let mut p = payload();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p
    }

    #[test]
    fn every_algorithm_verifies_and_rejects_tampering() {
        for alg in ALL_ALGS {
            let signer = Signer::generate(alg, &format!("kid-{alg}"));
            let keys = set_of(&[&signer]);
            let token = signer.sign(&payload());
            let claims =
                verify(&token, &keys, &policy(), NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(claims.iss, ISSUER);
            assert_eq!(claims.sub.as_deref(), Some("user-1"));
            assert_eq!(claims.aud, vec![AUDIENCE.to_string()]);
            assert_eq!(claims.exp, NOW + 3540);
            assert_eq!(claims.scopes, vec!["orders:read", "orders:write"]);
            assert_eq!(claims.claim("tenant"), Some(json!("acme")));
            // Flip one bit of the signature's first byte.
            let (head, sig) = token.rsplit_once('.').unwrap();
            let mut raw = Base64UrlSafeNoPadding::decode_to_vec(sig, None).unwrap();
            raw[0] ^= 1;
            let flipped = format!("{head}.{}", b64(&raw));
            assert_eq!(
                verify(&flipped, &keys, &policy(), NOW),
                Err(TokenError::BadSignature),
                "{alg}"
            );
            // The same token under another key of the same algorithm and kid.
            let other = Signer::generate_other(alg, &format!("kid-{alg}"));
            if !alg.starts_with('R') && !alg.starts_with('P') {
                let forged = other.sign(&payload());
                assert_eq!(
                    verify(&forged, &keys, &policy(), NOW),
                    Err(TokenError::BadSignature),
                    "{alg}"
                );
            }
        }
    }

    #[test]
    fn claims_are_extracted() {
        let signer = Signer::generate("ES256", "k");
        let keys = set_of(&[&signer]);
        let token = signer.sign(&with(json!({
            "aud": ["x", AUDIENCE], "scope": null, "scp": ["a", "b"],
            "auth_time": NOW - 100, "exp": (NOW + 10) as f64
        })));
        let claims = verify(&token, &keys, &policy(), NOW).unwrap();
        assert_eq!(claims.aud, vec!["x", AUDIENCE]);
        assert_eq!(claims.scopes, vec!["a", "b"]);
        assert_eq!(claims.exp, NOW + 10);
        assert_eq!(claims.auth_time, Some(NOW - 100));
        assert_eq!(claims.jti.as_deref(), Some("token-1"));
        assert_eq!(claims.sid.as_deref(), Some("session-1"));
        assert_eq!(claims.claim("aud"), Some(json!(["x", AUDIENCE])));
        assert_eq!(claims.claim("scope"), Some(json!("a b")));
        assert_eq!(claims.claim("scp"), Some(json!(["a", "b"])));
        assert_eq!(claims.claim("iat"), Some(json!(NOW - 60)));
        assert_eq!(claims.claim("roles"), Some(json!(["admin", "viewer"])));
        assert_eq!(claims.claim("nope"), None);
        assert!(claims.extra.contains_key("tenant") && !claims.extra.contains_key("iss"));
    }

    #[test]
    fn time_and_claim_rules() {
        let signer = Signer::generate("EdDSA", "k");
        let keys = set_of(&[&signer]);
        let p = policy();
        let check = |changes: Value| verify(&signer.sign(&with(changes)), &keys, &p, NOW);
        assert_eq!(
            check(json!({"exp": null})),
            Err(TokenError::MissingClaim("exp".into()))
        );
        assert_eq!(check(json!({"exp": NOW - 31})), Err(TokenError::Expired));
        assert!(check(json!({"exp": NOW - 30})).is_ok());
        assert_eq!(
            check(json!({"nbf": NOW + 31})),
            Err(TokenError::NotYetValid)
        );
        assert!(check(json!({"nbf": NOW + 30})).is_ok());
        assert_eq!(
            check(json!({"iat": NOW + 31, "nbf": null})),
            Err(TokenError::IssuedInFuture)
        );
        assert_eq!(
            check(json!({"iat": NOW - 86_400, "exp": NOW + 1})),
            Err(TokenError::TooOld)
        );
        assert!(check(json!({"iat": NOW - 86_000, "exp": NOW + 400})).is_ok());
        assert_eq!(
            check(json!({"iat": null})),
            Err(TokenError::MissingClaim("iat".into()))
        );
        assert_eq!(
            check(json!({"iss": "https://evil.example"})),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            check(json!({"iss": null})),
            Err(TokenError::MissingClaim("iss".into()))
        );
        assert_eq!(
            check(json!({"aud": "api://elsewhere"})),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            check(json!({"aud": []})),
            Err(TokenError::MissingClaim("aud".into()))
        );
        assert_eq!(
            check(json!({"sub": null})),
            Err(TokenError::MissingClaim("sub".into()))
        );
        assert_eq!(
            check(json!({"exp": -5})),
            Err(TokenError::Malformed("token could not be decoded"))
        );
        assert!(matches!(
            check(json!({"sid": 5})),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            check(json!({"scope": {"a": 1}})),
            Err(TokenError::Malformed(_))
        ));
        // The rules shared with introspection answers (crate::claims): a fraction of a second
        // is dropped (RFC 7519 allows it), a null member is not an absent one, `scope` is a
        // string split on spaces only.
        assert!(check(json!({"exp": (NOW + 10) as f64 + 0.9})).is_ok());
        assert!(matches!(
            check(json!({"exp": (NOW - 1000) as f64 + 0.9})),
            Err(TokenError::Expired)
        ));
        let mut null_sid = payload();
        null_sid["sid"] = Value::Null;
        assert_eq!(
            verify(&signer.sign(&null_sid), &keys, &p, NOW),
            Err(TokenError::Malformed("sid is not a string"))
        );
        assert_eq!(
            check(json!({"scope": ["a", "b"]})),
            Err(TokenError::Malformed("scope is not a string of scopes"))
        );
        let tabbed = check(json!({"scope": "a\tb c"})).unwrap();
        assert_eq!(tabbed.scopes, vec!["a\tb", "c"]);
    }

    #[test]
    fn type_rules() {
        assert!(type_accepted(Some("at+jwt"), Some("at+jwt")));
        assert!(type_accepted(Some("application/AT+JWT"), Some("at+jwt")));
        assert!(type_accepted(Some("at+jwt"), Some("Application/at+jwt")));
        assert!(!type_accepted(Some("JWT"), Some("at+jwt")));
        assert!(!type_accepted(None, Some("at+jwt")));
        assert!(type_accepted(None, None));
        assert!(type_accepted(Some("jwt"), None));
        assert!(type_accepted(Some("application/at+jwt"), None));
        assert!(!type_accepted(Some("application/dpop+jwt"), None));
        assert!(!type_accepted(Some("Logout+JWT"), None));
        // An explicit requirement is the operator's choice.
        assert!(type_accepted(Some("dpop+jwt"), Some("dpop+jwt")));
        assert!(!type_accepted(Some("JOSE"), None));
        assert!(!type_accepted(Some("é"), None));

        let signer = Signer::generate("HS256", "k");
        let keys = set_of(&[&signer]);
        let mut p = policy();
        p.required_type = Some("at+jwt".into());
        let at = signer.sign_typed(&payload(), Some("application/at+jwt"));
        assert!(verify(&at, &keys, &p, NOW).is_ok());
        let plain = signer.sign(&payload());
        assert_eq!(verify(&plain, &keys, &p, NOW), Err(TokenError::WrongType));
        let jose = signer.sign_typed(&payload(), Some("JOSE"));
        assert_eq!(
            verify(&jose, &keys, &policy(), NOW),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn rotation_by_kid() {
        let old = Signer::generate("ES256", "2024");
        let new = Signer::generate("ES256", "2025");
        let before = set_of(&[&old]);
        let after = set_of(&[&new]);
        let old_token = old.sign(&payload());
        let new_token = new.sign(&payload());
        assert!(verify(&old_token, &before, &policy(), NOW).is_ok());
        assert_eq!(
            verify(&new_token, &before, &policy(), NOW),
            Err(TokenError::UnknownKey {
                kid: Some("2025".into())
            })
        );
        assert!(verify(&new_token, &after, &policy(), NOW).is_ok());
        assert_eq!(
            verify(&old_token, &after, &policy(), NOW),
            Err(TokenError::UnknownKey {
                kid: Some("2024".into())
            })
        );
        // During the overlap both are accepted.
        let both = set_of(&[&old, &new]);
        assert!(verify(&old_token, &both, &policy(), NOW).is_ok());
        assert!(verify(&new_token, &both, &policy(), NOW).is_ok());
    }

    #[test]
    fn inspect_reads_header_and_unverified_issuer() {
        let signer = Signer::generate("PS256", "rsa-1");
        let token = signer.sign_typed(&payload(), Some("at+jwt"));
        let inspected = inspect(&token, 16 * 1024).unwrap();
        assert_eq!(
            inspected.header,
            TokenHeader {
                alg: "PS256".into(),
                kid: Some("rsa-1".into()),
                typ: Some("at+jwt".into())
            }
        );
        assert_eq!(inspected.unverified_issuer.as_deref(), Some(ISSUER));
        assert_eq!(
            inspect(&token, 100),
            Err(TokenError::Malformed("token exceeds the size limit"))
        );
    }

    #[test]
    fn header_rules() {
        let p = b64(payload().to_string().as_bytes());
        let token = |header: Value| format!("{}.{p}.c2ln", b64(header.to_string().as_bytes()));
        for alg in [
            "none", "None", "NONE", "nOnE", "HS1", "ES512", "Ed25519", "",
        ] {
            assert_eq!(
                inspect(&token(json!({"alg": alg})), 4096),
                Err(TokenError::DisallowedAlgorithm),
                "{alg}"
            );
        }
        for name in ["jwk", "jku", "x5u", "x5c", "crit"] {
            let mut header = json!({"alg": "RS256"});
            header[name] = json!(["x"]);
            assert_eq!(
                inspect(&token(header), 4096),
                Err(TokenError::ForbiddenHeader(name))
            );
        }
        assert!(matches!(
            inspect(&token(json!({"alg": 1})), 4096),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            inspect(&token(json!({"kid": "k"})), 4096),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            inspect(&token(json!({"alg": "RS256", "kid": 1})), 4096),
            Err(TokenError::Malformed(_))
        ));
        let dup = format!("{}.{p}.c2ln", b64(br#"{"alg":"none","alg":"RS256"}"#));
        assert_eq!(
            inspect(&dup, 4096),
            Err(TokenError::Malformed("header is not a JSON object"))
        );
    }

    #[test]
    fn error_messages_and_reasons() {
        let long_kid = "k\n".repeat(100);
        let msg = TokenError::UnknownKey {
            kid: Some(long_kid),
        }
        .to_string();
        assert!(!msg.contains('\n') && msg.len() < 200, "{msg}");
        assert_eq!(TokenError::TooOld.reason(), Reason::TokenTooOld);
        assert_eq!(
            TokenError::Malformed("x").reason().code(),
            "malformed_token"
        );
        assert_eq!(
            TokenError::MissingClaim("exp".into()).to_string(),
            "token lacks the required claim \"exp\""
        );
    }

    #[test]
    fn rfc7515_hs256_example_verifies() {
        // RFC 7515 appendix A.1: header and payload with CRLFs, no `aud`, `iat` or `sub`.
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                     eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                     dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let keys = KeySet::from_jwks(&jwks(&[json!({"kty": "oct", "k": k})]), &[Algorithm::HS256])
            .unwrap();
        let policy = VerifyPolicy {
            issuer: "joe".into(),
            audiences: vec![],
            clock_skew_secs: 0,
            max_lifetime_secs: None,
            required_claims: vec![],
            required_type: None,
            max_token_bytes: 1024,
        };
        let claims = verify(token, &keys, &policy, 1_300_819_380).unwrap();
        assert_eq!(
            claims.claim("http://example.com/is_root"),
            Some(json!(true))
        );
        assert_eq!(
            verify(token, &keys, &policy, 1_300_819_381),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn decoded_lengths() {
        assert_eq!(decoded_len(0), Some(0));
        assert_eq!(decoded_len(86), Some(64));
        assert_eq!(decoded_len(128), Some(96));
        assert_eq!(decoded_len(342), Some(256));
        assert_eq!(decoded_len(5), None);
        for n in 0..300usize {
            let encoded = b64(&vec![0xa5; n]);
            assert_eq!(decoded_len(encoded.len()), Some(n));
        }
    }

    /// A token verified by another worker reads to the very claims (`extra` included) and
    /// refusals `verify` gives it, for each algorithm and for payloads that fail each check.
    #[test]
    fn claims_verified_elsewhere_are_verifys_claims() {
        let payloads = [
            payload(),
            with(json!({"exp": NOW - 3600})),
            with(json!({"iss": "https://other"})),
            with(json!({"aud": ["x", "y"]})),
            with(json!({"sub": null})),
            with(json!({"nbf": NOW + 3600})),
            with(json!({"roles": {"nested": [1, 2]}, "scp": ["a", "b"], "scope": null})),
        ];
        for alg in ["ES256", "RS256", "HS256"] {
            let signer = Signer::generate(alg, "k");
            let keys = set_of(&[&signer]);
            for claims in &payloads {
                let token = signer.sign(claims);
                let inspected = inspect(&token, 16 * 1024).unwrap();
                assert_eq!(
                    claims_verified_elsewhere(inspected, &policy(), NOW),
                    verify(&token, &keys, &policy(), NOW),
                    "{alg} {claims}"
                );
            }
        }
    }

    /// The payload's fixed places and map read exactly what one strict map reads: the same
    /// members, and a name given twice refused whether it is a standard claim or not, spelled
    /// with escapes or not.
    #[test]
    fn payload_reads_as_one_strict_map() {
        let objects: [&[u8]; 7] = [
            br#"{"iss":"a","sub":"b","tenant":"t","roles":["x"],"exp":1,"scp":null}"#,
            br#"{"iss":"a","\u0069ss":"b"}"#,
            br#"{"iss":"a","iss":"a"}"#,
            br#"{"tenant":1,"tenant":2}"#,
            br#"{"ten\u0061nt":1,"tenant":2}"#,
            br#"{"nested":{"iss":1,"iss":2},"aud":["a","a"]}"#,
            br#"{"iss":"a"} trailing"#,
        ];
        for bytes in objects {
            let map = json::parse_object(bytes).ok();
            let payload = json::parse_members::<Payload>(bytes).ok();
            assert_eq!(
                payload.clone().map(Payload::into_map),
                map,
                "{}",
                String::from_utf8_lossy(bytes)
            );
            if let (Some(payload), Some(map)) = (payload, map) {
                for name in STANDARD_CLAIMS
                    .iter()
                    .chain(&["tenant", "roles", "nested", "x"])
                {
                    assert_eq!(payload.get(name), map.get(*name), "{name}");
                }
            }
        }
    }

    /// Our decoder of token parts accepts and decodes exactly what ct-codecs (the decoder
    /// jwt-simple runs on the same parts) does: every string of up to 4 characters over an
    /// alphabet with each class of character (edges of the ranges, padding, the standard
    /// alphabet's `+` and `/`, a dot, a space, a non-ASCII letter), then longer strings
    /// derived from them (stray bits in the last character included).
    #[test]
    fn base64url_decoding_agrees_with_jwt_simples() {
        let alphabet = [
            "A", "Q", "g", "w", "z", "0", "9", "-", "_", "=", "+", "/", ".", " ", "é",
        ];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = inputs
                .iter()
                .filter(|s| s.chars().count() == inputs.last().map_or(0, |l| l.chars().count()))
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            inputs.extend(longer);
        }
        let prefixes = ["", "eyJhbGciOiJFUzI1NiJ9", "QUJD"];
        let (mut checked, mut decoded) = (0, 0);
        for prefix in prefixes {
            for tail in &inputs {
                let text = format!("{prefix}{tail}");
                let ours = decode_b64url(&text);
                let theirs = Base64UrlSafeNoPadding::decode_to_vec(&text, None).ok();
                assert_eq!(ours, theirs, "{text:?}");
                checked += 1;
                decoded += usize::from(ours.is_some());
            }
        }
        assert!(checked > 100_000 && decoded > 10_000, "{checked} {decoded}");
    }

    /// Claims first changes no outcome: for a token whose signature verifies, every refusal
    /// `precheck` makes is the one `verify` makes, across payloads that fail one or several
    /// claim checks, carry types jwt-simple reads differently, and across times.
    #[test]
    fn precheck_refuses_exactly_as_verify_would() {
        let signer = Signer::generate("EdDSA", "k1");
        let keys = set_of(&[&signer]);
        let policy = policy();
        let variants = [
            json!({}),
            json!({"exp": NOW - 100}),
            json!({"exp": NOW - 20}),
            json!({"nbf": NOW + 100}),
            json!({"nbf": NOW + 100, "exp": NOW - 100}),
            json!({"iat": NOW + 100}),
            json!({"iat": NOW + 100, "exp": NOW - 100}),
            json!({"aud": "elsewhere", "exp": NOW - 100}),
            json!({"aud": "elsewhere"}),
            json!({"aud": ["elsewhere", AUDIENCE]}),
            json!({"aud": [1], "exp": NOW - 100}),
            json!({"aud": null}),
            json!({"iss": "https://other.example", "exp": NOW - 100}),
            json!({"iss": 7, "exp": NOW - 100}),
            json!({"sub": 5, "exp": NOW - 100}),
            json!({"sub": null, "exp": NOW - 100}),
            json!({"sid": 5, "exp": NOW - 100}),
            json!({"scope": 5}),
            json!({"exp": (NOW - 100) as f64 + 0.5}),
            json!({"exp": "soon"}),
            json!({"exp": 1u64 << 40}),
            json!({"nbf": 1u64 << 40}),
            json!({"nbf": (NOW + 100) as f64}),
            json!({"exp": null}),
            json!({"iat": null}),
            json!({"nonce": 3}),
            json!({"iat": NOW - 90_000, "exp": NOW + 100}),
            json!({"sub": null}),
        ];
        let header = json!({"alg": "EdDSA", "kid": "k1"});
        let mut refused = 0;
        for variant in &variants {
            let mut claims = payload();
            for (k, v) in variant.as_object().unwrap() {
                claims[k] = v.clone();
            }
            let mut absent = payload();
            absent.as_object_mut().unwrap().remove("aud");
            for body in [&claims, &absent] {
                let token = signer.sign_raw(&header, body);
                for now in [NOW, NOW - 200, NOW + 3600, NOW + 100_000] {
                    // An `iss` of another type: refused by `inspect`, as by `verify`.
                    let Ok(inspected) = inspect(&token, policy.max_token_bytes) else {
                        continue;
                    };
                    if let Err(e) = precheck(&inspected, &policy, now) {
                        refused += 1;
                        assert_eq!(
                            verify(&token, &keys, &policy, now),
                            Err(e),
                            "{body} at {now}"
                        );
                    }
                }
            }
        }
        assert!(refused > 40, "{refused}");
        // A wrong type is refused before the signature too, as `verify` does.
        let typed = signer.sign_typed(&payload(), Some("logout+jwt"));
        let inspected = inspect(&typed, policy.max_token_bytes).unwrap();
        assert_eq!(
            precheck(&inspected, &policy, NOW),
            Err(TokenError::WrongType)
        );
        assert_eq!(unverified_exp(&inspected), Some(NOW + 3540));
    }

    /// jwt-simple's `verify_token` on `token` with the options `check_signature` gives it, for
    /// the signer's own jwt-simple key: the answer our RSA and HMAC path must reproduce.
    fn jwt_simple_answer(
        signer: &Signer,
        token: &str,
        skew_secs: u64,
        now: u64,
    ) -> Result<(), TokenError> {
        use crate::jwks::test_fixtures::Key;
        use jwt_simple::prelude::{MACLike, RSAPublicKeyLike};
        let typ = inspect(token, 16 * 1024).ok().and_then(|i| i.header.typ);
        let options = Some(VerificationOptions {
            time_tolerance: Some(Duration::from_secs(skew_secs)),
            artificial_time: Some(UnixTimeStamp::from_secs(now.min(JWT_SIMPLE_MAX_NOW))),
            max_token_length: Some(16 * 1024),
            max_header_length: Some(MAX_HEADER_BYTES),
            required_signature_type: typ,
            ..VerificationOptions::default()
        });
        type C = jwt_simple::claims::NoCustomClaims;
        let answer = match &signer.key {
            Key::RS256(k) => k.public_key().verify_token::<C>(token, options),
            Key::RS384(k) => k.public_key().verify_token::<C>(token, options),
            Key::RS512(k) => k.public_key().verify_token::<C>(token, options),
            Key::PS256(k) => k.public_key().verify_token::<C>(token, options),
            Key::PS384(k) => k.public_key().verify_token::<C>(token, options),
            Key::PS512(k) => k.public_key().verify_token::<C>(token, options),
            Key::HS256(k) => k.verify_token::<C>(token, options),
            Key::HS384(k) => k.verify_token::<C>(token, options),
            Key::HS512(k) => k.verify_token::<C>(token, options),
            _ => panic!("not an RSA or HMAC signer"),
        };
        answer.map(drop).map_err(|e| from_jwt_simple(&e))
    }

    /// Our signature check for RSA and HMAC keys (rsa 0.10, the HMAC crates, our one parse)
    /// answers exactly as jwt-simple's `verify_token` did: same acceptance, same error, on
    /// payloads and headers jwt-simple reads differently from us (floats, huge or negative dates,
    /// nulls, wrong types, `salt`, `cty`, `x5t`), bad signatures and every time check.
    #[test]
    fn rsa_and_hmac_checks_answer_as_jwt_simple() {
        let payloads = [
            json!({}),
            json!({"exp": NOW - 100}),
            json!({"exp": NOW - 20}),
            json!({"nbf": NOW + 100}),
            json!({"iat": NOW + 100}),
            json!({"iat": NOW + 100, "exp": NOW - 100}),
            json!({"exp": (NOW - 100) as f64 + 0.5}),
            json!({"exp": (NOW + 100) as f64 + 0.9}),
            json!({"exp": 1e30}),
            json!({"exp": -1e30}),
            json!({"exp": 1u64 << 40}),
            json!({"nbf": 1u64 << 40}),
            json!({"iat": 1u64 << 40}),
            json!({"iat": u64::MAX}),
            json!({"exp": -5}),
            json!({"nbf": -1}),
            json!({"exp": "soon"}),
            json!({"exp": null}),
            json!({"iat": true}),
            json!({"iss": null}),
            json!({"sub": 5}),
            json!({"jti": null}),
            json!({"jti": [1]}),
            json!({"nonce": 3}),
            json!({"nonce": null}),
            json!({"aud": null}),
            json!({"aud": [1]}),
            json!({"aud": [null]}),
            json!({"aud": {}}),
            json!({"aud": []}),
            json!({"scope": 5, "extra": {"deep": [1, 2]}}),
        ];
        let headers = [
            json!({}),
            json!({"typ": "JWT"}),
            json!({"typ": "at+jwt"}),
            json!({"cty": "JWT"}),
            json!({"cty": 5}),
            json!({"cty": null}),
            json!({"x5t": 1}),
            json!({"x5t#S256": ["a"]}),
            json!({"x5t": null, "x5t#S256": "abc"}),
            json!({"salt": "c2FsdA"}),
            json!({"salt": "!!"}),
            json!({"salt": 5}),
            json!({"salt": null}),
            json!({"zip": "DEF", "b64": false}),
        ];
        let times = [NOW, NOW - 200, NOW + 3600, NOW + 100_000, u64::MAX];
        let mut compared = 0;
        let mut accepted = 0;
        let mut check = |signer: &Signer, keys: &KeySet, token: &str| {
            let Ok(parsed) = parse(token, 16 * 1024) else {
                return;
            };
            for now in times {
                for skew in [0, 30] {
                    let ours = check_signature(
                        token,
                        &parsed.inspected,
                        parsed.parts,
                        keys,
                        skew,
                        16 * 1024,
                        now,
                    );
                    let theirs = jwt_simple_answer(signer, token, skew, now);
                    assert_eq!(ours, theirs, "{} {token} at {now}", signer.alg);
                    compared += 1;
                    accepted += usize::from(ours.is_ok());
                }
            }
        };
        for alg in ["HS256", "HS384", "HS512"] {
            let signer = Signer::generate(alg, "k1");
            let keys = set_of(&[&signer]);
            for extra in &headers {
                let mut header = json!({"alg": alg, "kid": "k1"});
                for (k, v) in extra.as_object().unwrap() {
                    header[k] = v.clone();
                }
                for changes in &payloads {
                    let mut body = payload();
                    for (k, v) in changes.as_object().unwrap() {
                        body[k] = v.clone();
                    }
                    let token = signer.sign_raw(&header, &body);
                    check(&signer, &keys, &token);
                    check(&signer, &keys, &tampered_signature(&token));
                }
            }
        }
        // RSA: jwt-simple mints the tokens (header `{alg, kid, typ}`), every payload variant.
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let signer = Signer::generate(alg, "k1");
            let keys = set_of(&[&signer]);
            for changes in &payloads {
                let mut body = payload();
                for (k, v) in changes.as_object().unwrap() {
                    body[k] = v.clone();
                }
                let token = signer.sign(&body);
                check(&signer, &keys, &token);
                check(&signer, &keys, &tampered_signature(&token));
            }
        }
        assert!(compared > 5000, "{compared}");
        assert!(accepted > 100, "{accepted}");
    }

    /// An RSA token over any header, signed with `signer`'s private key by the `rsa` crate:
    /// PKCS#1 v1.5, or PSS with the given salt length.
    fn rsa_sign_raw(
        signer: &Signer,
        header: &Value,
        body: &Value,
        pss_salt: Option<usize>,
    ) -> String {
        use crate::jwks::test_fixtures::Key;
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::sha2::{Digest, Sha256};
        let der = match &signer.key {
            Key::RS256(k) => k.to_der().unwrap(),
            Key::PS256(k) => k.to_der().unwrap(),
            _ => panic!("RS256 and PS256 signers only"),
        };
        let key = rsa::PrivateKey::from_pkcs8_der(&der).unwrap();
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(body.to_string().as_bytes())
        );
        let hash = Sha256::digest(input.as_bytes());
        let signature = match pss_salt {
            None => key.pkcs1v15_sign::<Sha256>(input.as_bytes()).unwrap(),
            Some(len) => key
                .sign_with_rng(
                    &mut CounterRng(0x9e37_79b9_7f4a_7c15),
                    rsa::Pss::<Sha256>::new_with_salt(len),
                    &hash,
                )
                .unwrap(),
        };
        format!("{input}.{}", b64(&signature))
    }

    /// Deterministic bytes for PSS salts and blinding in tests (xorshift; not a CSPRNG).
    struct CounterRng(u64);

    impl rsa::rand_core::TryRng for CounterRng {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for byte in dst {
                *byte = self.try_next_u64()? as u8;
            }
            Ok(())
        }
    }

    impl rsa::rand_core::TryCryptoRng for CounterRng {}

    /// PS256 takes a salt as long as the hash, nothing else (RFC 7518 section 3.5; jwt-simple
    /// through superboring verified with the digest length): a signature with another salt
    /// length is refused by both, while the RSA key's header rules (`salt` ignored, `cty` and
    /// `x5t` typed) match jwt-simple's too.
    #[test]
    fn rsa_salt_lengths_and_raw_headers_answer_as_jwt_simple() {
        let signer = Signer::generate("PS256", "k1");
        let keys = set_of(&[&signer]);
        let header = json!({"alg": "PS256", "kid": "k1"});
        let answers = |token: &str| {
            let parsed = parse(token, 16 * 1024).unwrap();
            let ours = check_signature(
                token,
                &parsed.inspected,
                parsed.parts,
                &keys,
                30,
                16 * 1024,
                NOW,
            );
            (ours, jwt_simple_answer(&signer, token, 30, NOW))
        };
        // The hash length (what jwt-simple and jose mint): accepted.
        let good = rsa_sign_raw(&signer, &header, &payload(), Some(32));
        assert_eq!(answers(&good), (Ok(()), Ok(())));
        // Any other salt length: a valid PSS signature, refused by both.
        for salt in [0, 20, 31, 33, 64, 256 - 32 - 2] {
            let token = rsa_sign_raw(&signer, &header, &payload(), Some(salt));
            let bad = Err(TokenError::BadSignature);
            assert_eq!(answers(&token), (bad.clone(), bad), "salt {salt}");
        }
        // PKCS#1 v1.5 under a PS256 header: refused by both.
        let bad = Err(TokenError::BadSignature);
        let v15 = rsa_sign_raw(&signer, &header, &payload(), None);
        assert_eq!(answers(&v15), (bad.clone(), bad));
        // Header members jwt-simple types, and its `salt` rule for a key without a salt.
        let rs = Signer::generate("RS256", "k1");
        let rs_keys = set_of(&[&rs]);
        for extra in [
            json!({"salt": "c2FsdA"}),
            json!({"salt": "!!"}),
            json!({"salt": 5}),
            json!({"cty": 5}),
            json!({"x5t": "abc", "cty": "JWT"}),
            json!({"x5t#S256": false}),
        ] {
            let mut header = json!({"alg": "RS256", "kid": "k1"});
            for (k, v) in extra.as_object().unwrap() {
                header[k] = v.clone();
            }
            let token = rsa_sign_raw(&rs, &header, &payload(), None);
            let parsed = parse(&token, 16 * 1024).unwrap();
            let ours = check_signature(
                &token,
                &parsed.inspected,
                parsed.parts,
                &rs_keys,
                30,
                16 * 1024,
                NOW,
            );
            assert_eq!(ours, jwt_simple_answer(&rs, &token, 30, NOW), "{header}");
        }
    }

    /// `token` with one signature character changed (same length).
    fn tampered_signature(token: &str) -> String {
        let mut bytes = token.as_bytes().to_vec();
        let at = bytes.len() - 5;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }
}

//! Signing key sets (JWKS, RFC 7517) turned into verifiers.
//!
//! Each key's algorithm is fixed here, from the key itself, so a token can never choose how it is
//! verified (no RSA-key-as-HMAC-secret confusion). Keys we cannot use are skipped and recorded,
//! keys that are broken fail the whole set: an operator must see a malformed key, while a key for
//! encryption or an unsupported curve is normal in a published key set.

use std::fmt;
use std::sync::Arc;

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::algorithms::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256PublicKey, ES384PublicKey,
    Ed25519PublicKey, EdDSAPublicKeyLike,
};
use jwt_simple::claims::{JWTClaims, NoCustomClaims};
use jwt_simple::common::VerificationOptions;
use rsa::sha2::{Sha256, Sha384, Sha512};
use rsa::BoxedUint;
use serde_json::{Map, Value};

/// Largest key set document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys accepted in one key set (usable or not).
pub const MAX_KEYS: usize = 100;

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
/// jwt-simple verifies RSA moduli of at most 4096 bits: larger valid keys are skipped, not fatal.
const MAX_VERIFIABLE_RSA_BITS: usize = 4096;
/// RFC 7518 section 3.2: an HMAC key is at least as long as the hash output; HS256 sets the floor.
const MIN_HMAC_KEY_BYTES: usize = 32;

/// A JWS signature algorithm this crate verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

/// Key families: the algorithms a key of one type can be used with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
    Hmac,
}

impl Algorithm {
    pub const ALL: &'static [Algorithm] = &[
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
    ];

    /// The JOSE name (`alg` value).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    /// Parses a JOSE name exactly (case-sensitive, as RFC 7515 requires).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == s)
    }

    fn family(self) -> Family {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Family::Rsa,
            Algorithm::ES256 => Family::P256,
            Algorithm::ES384 => Family::P384,
            Algorithm::EdDSA => Family::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
        }
    }

    /// HMAC output length, which is also the minimum key length (RFC 7518 section 3.2).
    fn hmac_len(self) -> usize {
        match self {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key set was refused.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksError {
    TooLarge {
        limit: usize,
    },
    NotJson {
        line: usize,
        column: usize,
    },
    NotAKeySet,
    TooManyKeys {
        count: usize,
        limit: usize,
    },
    /// Key number `index` (from 0, in document order) is broken in `field`.
    InvalidKey {
        index: usize,
        field: &'static str,
        problem: &'static str,
    },
    DuplicateKid {
        index: usize,
        first_index: usize,
    },
    NoUsableKeys {
        skipped: usize,
    },
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::TooLarge { limit } => write!(f, "key set is larger than {limit} bytes"),
            JwksError::NotJson { line, column } => {
                write!(
                    f,
                    "key set is not valid JSON (line {line}, column {column})"
                )
            }
            JwksError::NotAKeySet => {
                f.write_str("key set is not a JSON object with a \"keys\" array")
            }
            JwksError::TooManyKeys { count, limit } => {
                write!(f, "key set has {count} keys, at most {limit} are accepted")
            }
            JwksError::InvalidKey {
                index,
                field,
                problem,
            } => {
                write!(f, "key set entry {index}, field \"{field}\": {problem}")
            }
            JwksError::DuplicateKid { index, first_index } => write!(
                f,
                "key set entry {index} has the same \"kid\" as entry {first_index}"
            ),
            JwksError::NoUsableKeys { skipped } => write!(
                f,
                "key set has no usable signing key ({skipped} keys skipped)"
            ),
        }
    }
}

impl std::error::Error for JwksError {}

/// A key left out of a key set, and why (for logs: a skipped key explains a later `unknown_key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    pub index: usize,
    pub kid: Option<String>,
    pub reason: &'static str,
}

/// One verifier: a public key (or HMAC secret) bound to one algorithm.
///
/// RSA and HMAC signatures are checked here, over the signing input the caller's single parse
/// already holds (src/jwt.rs says why); ECDSA and Ed25519 go through jwt-simple's
/// `verify_token`.
#[derive(Clone)]
enum Inner {
    /// The `rsa` 0.10 key (its Montgomery parameters precomputed), built once per key set and
    /// shared by every algorithm the JWK may be used with. The algorithm picks the padding.
    Rsa(Arc<rsa::PublicKey>),
    ES256(ES256PublicKey),
    ES384(ES384PublicKey),
    EdDSA(Ed25519PublicKey),
    /// HMAC-SHA256 with the key already absorbed (the inner and outer pads hashed once): each
    /// verification clones this state and hashes only the signing input.
    HS256(hmac_sha256::HMAC),
    /// HS384 and HS512 keep the secret: hmac-sha512's `HMAC` is not `Clone`, so its keyed state
    /// is rebuilt per verification (two compression rounds, against the 1,000+ of an 800-byte
    /// token's hash: not worth our own HMAC).
    HS384(Arc<[u8]>),
    HS512(Arc<[u8]>),
}

/// A key bound to one algorithm, with the exact signature length that algorithm produces, so a
/// wrong-sized signature (DER-encoded ECDSA, truncated RSA) is refused before any crypto.
#[derive(Clone)]
pub(crate) struct Verifier {
    alg: Algorithm,
    signature_len: usize,
    inner: Inner,
}

impl Verifier {
    pub(crate) fn signature_len(&self) -> usize {
        self.signature_len
    }

    /// Whether a token for this key goes through jwt-simple's `verify_token` ([`Self::verify`])
    /// rather than [`Self::check_signature`].
    pub(crate) fn uses_jwt_simple(&self) -> bool {
        matches!(
            self.inner,
            Inner::ES256(_) | Inner::ES384(_) | Inner::EdDSA(_)
        )
    }

    /// Whether this key is an HMAC secret (jwt-simple's salt rule differs for those).
    pub(crate) fn is_hmac(&self) -> bool {
        self.alg.family() == Family::Hmac
    }

    /// The signature (or MAC) over `signing_input` (`header.payload` as sent), for RSA and HMAC
    /// keys: true when it verifies. The caller has checked the signature's length. RSA-PSS takes
    /// a salt as long as the hash only, as RFC 7518 section 3.5 says and as jwt-simple did
    /// (superboring verified with `RsaPssSaltlen::DIGEST_LENGTH`). False for the other keys,
    /// which [`Self::verify`] handles.
    pub(crate) fn check_signature(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            Inner::Rsa(key) => match self.alg {
                Algorithm::RS256 => key.pkcs1v15_verify::<Sha256>(signing_input, signature),
                Algorithm::RS384 => key.pkcs1v15_verify::<Sha384>(signing_input, signature),
                Algorithm::RS512 => key.pkcs1v15_verify::<Sha512>(signing_input, signature),
                Algorithm::PS256 => key.pss_verify::<Sha256>(signing_input, signature),
                Algorithm::PS384 => key.pss_verify::<Sha384>(signing_input, signature),
                Algorithm::PS512 => key.pss_verify::<Sha512>(signing_input, signature),
                _ => return false,
            }
            .is_ok(),
            Inner::HS256(keyed) => {
                let mut mac = keyed.clone();
                mac.update(signing_input);
                ct_codecs::verify(&mac.finalize(), signature)
            }
            Inner::HS384(k) => {
                ct_codecs::verify(&hmac_sha512::sha384::HMAC::mac(signing_input, k), signature)
            }
            Inner::HS512(k) => {
                ct_codecs::verify(&hmac_sha512::HMAC::mac(signing_input, k), signature)
            }
            Inner::ES256(_) | Inner::ES384(_) | Inner::EdDSA(_) => false,
        }
    }

    /// Runs jwt-simple's verification (signature, then its claim checks under `options`) for
    /// the keys it handles ([`Self::uses_jwt_simple`]); any other key refuses with
    /// `InvalidSignature`.
    pub(crate) fn verify(
        &self,
        token: &str,
        options: VerificationOptions,
    ) -> Result<JWTClaims<NoCustomClaims>, jwt_simple::Error> {
        let options = Some(options);
        match &self.inner {
            Inner::ES256(k) => k.verify_token(token, options),
            Inner::ES384(k) => k.verify_token(token, options),
            Inner::EdDSA(k) => k.verify_token(token, options),
            Inner::Rsa(_) | Inner::HS256(_) | Inner::HS384(_) | Inner::HS512(_) => {
                Err(jwt_simple::JWTError::InvalidSignature.into())
            }
        }
    }
}

/// One usable JWK: its id and one verifier per algorithm it may be used with.
#[derive(Clone)]
struct Key {
    index: usize,
    kid: Option<String>,
    verifiers: Vec<Verifier>,
    /// SHA-256 over the algorithms and the key material: equal fingerprints verify the same
    /// tokens. Lets a new key set be compared with the old one per `kid` (a key re-published
    /// under its `kid` with new material is a replacement, not the same key). For `oct` keys
    /// it is a hash of the secret, never logged.
    fingerprint: [u8; 32],
}

impl Key {
    fn verifier(&self, alg: Algorithm) -> Option<&Verifier> {
        self.verifiers.iter().find(|v| v.alg == alg)
    }
}

/// Why no verifier was found for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// No key in the set (or not the key named by `kid`) is used with the token's algorithm.
    AlgorithmNotAccepted,
    /// No key has the token's `kid`, or the token has no `kid` and more than one key would fit.
    UnknownKey,
}

/// An issuer's usable signing keys. Immutable: rotation builds a new set.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<Key>,
    skipped: Vec<SkippedKey>,
}

impl fmt::Debug for KeySet {
    // Manual: HMAC secrets must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<(Option<&str>, Vec<&str>)> = self
            .keys
            .iter()
            .map(|k| {
                (
                    k.kid.as_deref(),
                    k.verifiers.iter().map(|v| v.alg.name()).collect(),
                )
            })
            .collect();
        f.debug_struct("KeySet")
            .field("keys", &keys)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    /// Parse a JWKS document (`{"keys":[...]}`); keep the keys usable with `allowed` algorithms.
    pub fn from_jwks(json: &[u8], allowed: &[Algorithm]) -> Result<KeySet, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                limit: MAX_JWKS_BYTES,
            });
        }
        let doc: Value = serde_json::from_slice(json).map_err(|e| JwksError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAKeySet)?;
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys {
                count: entries.len(),
                limit: MAX_KEYS,
            });
        }
        let mut keys: Vec<Key> = Vec::new();
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let jwk = entry.as_object().ok_or(JwksError::InvalidKey {
                index,
                field: "(key)",
                problem: "not a JSON object",
            })?;
            let kid = optional_str(jwk, index, "kid")?.map(str::to_owned);
            match parse_key(jwk, index, allowed)? {
                Parsed::Skip(reason) => skipped.push(SkippedKey { index, kid, reason }),
                Parsed::Use {
                    verifiers,
                    material,
                } => {
                    if let Some(first) = kid
                        .as_deref()
                        .and_then(|kid| keys.iter().find(|k| k.kid.as_deref() == Some(kid)))
                    {
                        return Err(JwksError::DuplicateKid {
                            index,
                            first_index: first.index,
                        });
                    }
                    let fingerprint = fingerprint(&verifiers, &material);
                    keys.push(Key {
                        index,
                        kid,
                        verifiers,
                        fingerprint,
                    });
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys {
                skipped: skipped.len(),
            });
        }
        Ok(KeySet { keys, skipped })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid` of each usable key, in document order.
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }

    /// Keys present in the document but not usable, with the reason.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// True when every key of `older` is still here under the same `kid`, with the same
    /// material and algorithms: whatever `older` verified, this set verifies the same way.
    /// False when a key was removed or replaced (same `kid`, new material).
    pub fn keeps_every_key_of(&self, older: &KeySet) -> bool {
        older.keys.iter().all(|old| {
            self.keys
                .iter()
                .any(|new| new.kid == old.kid && new.fingerprint == old.fingerprint)
        })
    }

    /// The verifier for a token's `kid` and `alg`. Without a `kid`, only an unambiguous match is
    /// used: trying every key would let an attacker multiply our signature work.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&Verifier, SelectError> {
        if !self.keys.iter().any(|k| k.verifier(alg).is_some()) {
            return Err(SelectError::AlgorithmNotAccepted);
        }
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(SelectError::UnknownKey)?
                .verifier(alg)
                .ok_or(SelectError::AlgorithmNotAccepted),
            None => {
                let mut fitting = self.keys.iter().filter_map(|k| k.verifier(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(verifier), None) => Ok(verifier),
                    _ => Err(SelectError::UnknownKey),
                }
            }
        }
    }
}

enum Parsed {
    /// `material`: the key's canonical bytes (RSA `n` and `e` without leading zeros, the EC
    /// point, the Ed25519 `x`, the HMAC secret), for its fingerprint.
    Use {
        verifiers: Vec<Verifier>,
        material: Vec<u8>,
    },
    Skip(&'static str),
}

/// A key's fingerprint: its algorithms (which also fix its family) and its material.
fn fingerprint(verifiers: &[Verifier], material: &[u8]) -> [u8; 32] {
    let mut h = hmac_sha256::Hash::new();
    for verifier in verifiers {
        h.update(verifier.alg.name().as_bytes());
        h.update(b",");
    }
    h.update(b"\0");
    h.update(material);
    h.finalize()
}

fn invalid(index: usize, field: &'static str, problem: &'static str) -> JwksError {
    JwksError::InvalidKey {
        index,
        field,
        problem,
    }
}

fn optional_str<'a>(
    jwk: &'a Map<String, Value>,
    index: usize,
    field: &'static str,
) -> Result<Option<&'a str>, JwksError> {
    match jwk.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(index, field, "not a string")),
    }
}

fn required_str<'a>(
    jwk: &'a Map<String, Value>,
    index: usize,
    field: &'static str,
) -> Result<&'a str, JwksError> {
    optional_str(jwk, index, field)?.ok_or(invalid(index, field, "missing"))
}

fn base64url(
    jwk: &Map<String, Value>,
    index: usize,
    field: &'static str,
) -> Result<Vec<u8>, JwksError> {
    let text = required_str(jwk, index, field)?;
    Base64UrlSafeNoPadding::decode_to_vec(text, None)
        .map_err(|_| invalid(index, field, "not unpadded base64url"))
}

/// Fixed-length base64url member, such as an EC coordinate.
fn base64url_exact(
    jwk: &Map<String, Value>,
    index: usize,
    field: &'static str,
    len: usize,
) -> Result<Vec<u8>, JwksError> {
    let bytes = base64url(jwk, index, field)?;
    if bytes.len() != len {
        return Err(invalid(index, field, "wrong length for the curve"));
    }
    Ok(bytes)
}

fn parse_key(
    jwk: &Map<String, Value>,
    index: usize,
    allowed: &[Algorithm],
) -> Result<Parsed, JwksError> {
    let kty = required_str(jwk, index, "kty")?;
    if let Some(key_use) = optional_str(jwk, index, "use")? {
        if key_use != "sig" {
            return Ok(Parsed::Skip("\"use\" is not \"sig\""));
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops
            .as_array()
            .ok_or(invalid(index, "key_ops", "not an array"))?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(Parsed::Skip("\"key_ops\" does not include \"verify\""));
        }
    }
    let family = match kty {
        "RSA" => Family::Rsa,
        "EC" => match required_str(jwk, index, "crv")? {
            "P-256" => Family::P256,
            "P-384" => Family::P384,
            _ => return Ok(Parsed::Skip("unsupported elliptic curve")),
        },
        "OKP" => match required_str(jwk, index, "crv")? {
            "Ed25519" => Family::Ed25519,
            _ => return Ok(Parsed::Skip("unsupported OKP curve")),
        },
        "oct" => Family::Hmac,
        _ => return Ok(Parsed::Skip("unsupported key type")),
    };
    let algs: Vec<Algorithm> = match optional_str(jwk, index, "alg")? {
        Some(name) => {
            let Some(alg) = Algorithm::parse(name) else {
                return Ok(Parsed::Skip("unsupported \"alg\""));
            };
            if alg.family() != family {
                return Err(invalid(
                    index,
                    "alg",
                    "algorithm does not match the key type",
                ));
            }
            if !allowed.contains(&alg) {
                return Ok(Parsed::Skip("\"alg\" is not allowed"));
            }
            vec![alg]
        }
        None => Algorithm::ALL
            .iter()
            .copied()
            .filter(|a| a.family() == family && allowed.contains(a))
            .collect(),
    };
    if algs.is_empty() {
        return Ok(Parsed::Skip("no allowed algorithm for this key type"));
    }
    match family {
        Family::Rsa => rsa_verifiers(jwk, index, &algs),
        Family::P256 | Family::P384 => ec_verifier(jwk, index, family),
        Family::Ed25519 => ed25519_verifier(jwk, index),
        Family::Hmac => hmac_verifiers(jwk, index, &algs),
    }
}

fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        // `n` has no leading zero byte: its first byte's leading zeros are the only gap.
        Some(top) => n
            .len()
            .saturating_mul(8)
            .saturating_sub(usize::try_from(top.leading_zeros()).unwrap_or(0)),
    }
}

fn rsa_verifiers(
    jwk: &Map<String, Value>,
    index: usize,
    algs: &[Algorithm],
) -> Result<Parsed, JwksError> {
    let n_raw = base64url(jwk, index, "n")?;
    let e_raw = base64url(jwk, index, "e")?;
    let n = trim_leading_zeros(&n_raw);
    let e = trim_leading_zeros(&e_raw);
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(invalid(index, "n", "RSA modulus is shorter than 2048 bits"));
    }
    if bits > MAX_RSA_BITS {
        return Err(invalid(index, "n", "RSA modulus is longer than 8192 bits"));
    }
    if n.last().is_some_and(|low| low & 1 == 0) {
        return Err(invalid(index, "n", "RSA modulus is even"));
    }
    if e != [1, 0, 1] {
        return Ok(Parsed::Skip(
            "RSA exponent other than 65537 is not supported",
        ));
    }
    if bits > MAX_VERIFIABLE_RSA_BITS {
        return Ok(Parsed::Skip("RSA modulus above 4096 bits is not supported"));
    }
    // The same bounds as above (and as jwt-simple's): 2048 to 4096 bits, checked by the crate
    // too. The public values are not secret: variable-time decoding is fine.
    let key = rsa::PublicKey::new_with_size_limits(
        BoxedUint::from_be_slice_vartime(n),
        BoxedUint::from_be_slice_vartime(e),
        MIN_RSA_BITS..=MAX_VERIFIABLE_RSA_BITS,
    )
    .map_err(|_| invalid(index, "n", "not a valid RSA public key"))?;
    let key = Arc::new(key);
    let mut verifiers = Vec::with_capacity(algs.len());
    for &alg in algs {
        if alg.family() != Family::Rsa {
            return Err(invalid(
                index,
                "alg",
                "algorithm does not match the key type",
            ));
        }
        verifiers.push(Verifier {
            alg,
            signature_len: n.len(),
            inner: Inner::Rsa(Arc::clone(&key)),
        });
    }
    // Length-prefixed `n`, then `e`: no two different keys give the same bytes.
    let n_len = u32::try_from(n.len()).unwrap_or(u32::MAX);
    let mut material = Vec::with_capacity(4 + n.len() + e.len());
    material.extend_from_slice(&n_len.to_be_bytes());
    material.extend_from_slice(n);
    material.extend_from_slice(e);
    Ok(Parsed::Use {
        verifiers,
        material,
    })
}

fn trim_leading_zeros(x: &[u8]) -> &[u8] {
    let first = x.iter().position(|&b| b != 0).unwrap_or(x.len());
    x.get(first..).unwrap_or_default()
}

fn ec_verifier(
    jwk: &Map<String, Value>,
    index: usize,
    family: Family,
) -> Result<Parsed, JwksError> {
    let size = if family == Family::P384 { 48 } else { 32 };
    let x = base64url_exact(jwk, index, "x", size)?;
    let y = base64url_exact(jwk, index, "y", size)?;
    // SEC1 uncompressed point: 0x04 || x || y.
    let mut point = Vec::with_capacity(97);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let not_on_curve = |_| invalid(index, "x", "not a point on the curve");
    let verifier = if family == Family::P384 {
        Verifier {
            alg: Algorithm::ES384,
            signature_len: 96,
            inner: Inner::ES384(ES384PublicKey::from_bytes(&point).map_err(not_on_curve)?),
        }
    } else {
        Verifier {
            alg: Algorithm::ES256,
            signature_len: 64,
            inner: Inner::ES256(ES256PublicKey::from_bytes(&point).map_err(not_on_curve)?),
        }
    };
    Ok(Parsed::Use {
        verifiers: vec![verifier],
        material: point,
    })
}

fn ed25519_verifier(jwk: &Map<String, Value>, index: usize) -> Result<Parsed, JwksError> {
    let x = base64url_exact(jwk, index, "x", 32)?;
    let pk = Ed25519PublicKey::from_bytes(&x)
        .map_err(|_| invalid(index, "x", "not a valid Ed25519 public key"))?;
    Ok(Parsed::Use {
        verifiers: vec![Verifier {
            alg: Algorithm::EdDSA,
            signature_len: 64,
            inner: Inner::EdDSA(pk),
        }],
        material: x,
    })
}

fn hmac_verifiers(
    jwk: &Map<String, Value>,
    index: usize,
    algs: &[Algorithm],
) -> Result<Parsed, JwksError> {
    let k = base64url(jwk, index, "k")?;
    if k.len() < MIN_HMAC_KEY_BYTES {
        return Err(invalid(index, "k", "HMAC key is shorter than 256 bits"));
    }
    let explicit = jwk.contains_key("alg");
    let mut verifiers = Vec::with_capacity(algs.len());
    for &alg in algs {
        if k.len() < alg.hmac_len() {
            if explicit {
                return Err(invalid(
                    index,
                    "k",
                    "HMAC key is shorter than the hash output",
                ));
            }
            continue;
        }
        let inner = match alg {
            Algorithm::HS256 => Inner::HS256(hmac_sha256::HMAC::new(&k)),
            Algorithm::HS384 => Inner::HS384(Arc::from(k.as_slice())),
            Algorithm::HS512 => Inner::HS512(Arc::from(k.as_slice())),
            _ => {
                return Err(invalid(
                    index,
                    "alg",
                    "algorithm does not match the key type",
                ))
            }
        };
        verifiers.push(Verifier {
            alg,
            signature_len: alg.hmac_len(),
            inner,
        });
    }
    if verifiers.is_empty() {
        return Ok(Parsed::Skip(
            "HMAC key is too short for every allowed algorithm",
        ));
    }
    Ok(Parsed::Use {
        verifiers,
        material: k,
    })
}

#[cfg(test)]
#[path = "../tests/common/mod.rs"]
pub(crate) mod test_fixtures;

#[cfg(test)]
mod tests {
    use super::test_fixtures::{jwks, Signer, ALL_ALGS};
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        super::test_fixtures::b64(bytes)
    }

    fn one(jwk: Value, allowed: &[Algorithm]) -> Result<KeySet, JwksError> {
        KeySet::from_jwks(&jwks(&[jwk]), allowed)
    }

    fn algs_of(set: &KeySet) -> Vec<Vec<Algorithm>> {
        set.keys
            .iter()
            .map(|k| k.verifiers.iter().map(|v| v.alg).collect())
            .collect()
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.name()), Some(*alg));
        }
        for bad in ["none", "None", "rs256", "ES512", "Ed25519", "", "HS256 "] {
            assert_eq!(Algorithm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_algorithm_key_is_usable() {
        for alg in ALL_ALGS {
            let signer = Signer::generate(alg, &format!("k-{alg}"));
            let set = one(signer.public_jwk(), Algorithm::ALL).unwrap();
            assert_eq!(set.len(), 1);
            assert_eq!(algs_of(&set), vec![vec![Algorithm::parse(alg).unwrap()]]);
            assert_eq!(
                set.kids().collect::<Vec<_>>(),
                vec![Some(format!("k-{alg}").as_str())]
            );
        }
    }

    #[test]
    fn key_without_alg_takes_allowed_algorithms_of_its_family() {
        let rsa = Signer::generate("RS256", "r").public_jwk_without_alg();
        let set = one(rsa.clone(), Algorithm::ALL).unwrap();
        assert_eq!(
            algs_of(&set),
            vec![vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512
            ]]
        );
        let set = one(rsa.clone(), &[Algorithm::PS256, Algorithm::ES256]).unwrap();
        assert_eq!(algs_of(&set), vec![vec![Algorithm::PS256]]);
        assert_eq!(
            one(rsa, &[Algorithm::HS256, Algorithm::ES256]).unwrap_err(),
            JwksError::NoUsableKeys { skipped: 1 }
        );
        // A 48-byte secret is long enough for HS256 and HS384, not HS512.
        let oct = json!({"kty": "oct", "k": b64(&[7u8; 48]), "kid": "h"});
        let set = one(oct, Algorithm::ALL).unwrap();
        assert_eq!(
            algs_of(&set),
            vec![vec![Algorithm::HS256, Algorithm::HS384]]
        );
        let ec = Signer::generate("ES384", "e").public_jwk_without_alg();
        assert_eq!(
            algs_of(&one(ec, Algorithm::ALL).unwrap()),
            vec![vec![Algorithm::ES384]]
        );
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let good = Signer::generate("ES256", "good").public_jwk();
        let mut enc = Signer::generate("ES256", "enc").public_jwk();
        enc["use"] = json!("enc");
        let mut ops = Signer::generate("EdDSA", "ops").public_jwk();
        ops["key_ops"] = json!(["encrypt"]);
        let others = [
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"}),
            json!({"kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x25519"}),
            json!({"kty": "AKP", "alg": "ML-DSA-44", "pub": "AA", "kid": "pq"}),
            json!({"kty": "RSA", "alg": "RSA-OAEP", "n": "AA", "e": "AQAB", "kid": "oaep"}),
        ];
        let mut all = vec![good.clone(), enc, ops];
        all.extend(others);
        // A disallowed algorithm is skipped too.
        let hs = Signer::generate("HS256", "hs").public_jwk();
        all.push(hs);
        let set = KeySet::from_jwks(&jwks(&all), &[Algorithm::ES256, Algorithm::EdDSA]).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), vec![Some("good")]);
        let skipped: Vec<_> = set
            .skipped()
            .iter()
            .map(|s| (s.index, s.kid.clone()))
            .collect();
        assert_eq!(skipped.len(), 7);
        assert_eq!(skipped[0], (1, Some("enc".to_string())));
        assert_eq!(skipped[6], (7, Some("hs".to_string())));
        assert!(format!("{set:?}").contains("good"));
    }

    #[test]
    fn broken_keys_fail_with_index_and_field() {
        let ec = Signer::generate("ES256", "e").public_jwk();
        let cases: Vec<(Value, &str)> = vec![
            (json!({"kid": "x"}), "kty"),
            (json!({"kty": 5}), "kty"),
            (
                json!({"kty": "EC", "crv": "P-256", "x": "!!", "y": "AA"}),
                "x",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[1; 32])}),
                "x",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[1; 32])}),
                "x",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "alg": "ES384", "x": ec["x"], "y": ec["y"]}),
                "alg",
            ),
            (
                json!({"kty": "RSA", "alg": "HS256", "n": "AA", "e": "AQAB"}),
                "alg",
            ),
            (
                json!({"kty": "RSA", "n": b64(&[0xff; 128]), "e": "AQAB"}),
                "n",
            ),
            (
                json!({"kty": "RSA", "n": b64(&[0xfe; 256]), "e": "AQAB"}),
                "n",
            ),
            (
                json!({"kty": "RSA", "n": b64(&[0xff; 1025]), "e": "AQAB"}),
                "n",
            ),
            (json!({"kty": "RSA", "e": "AQAB"}), "n"),
            (json!({"kty": "oct", "k": b64(&[1; 16])}), "k"),
            (
                json!({"kty": "oct", "alg": "HS512", "k": b64(&[1; 32])}),
                "k",
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[0; 32])}),
                "x",
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 33])}),
                "x",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "kid": 7, "x": ec["x"], "y": ec["y"]}),
                "kid",
            ),
            (
                json!({"kty": "EC", "key_ops": "verify", "crv": "P-256", "x": ec["x"], "y": ec["y"]}),
                "key_ops",
            ),
        ];
        for (jwk, field) in cases {
            let doc = jwks(&[ec.clone(), jwk.clone()]);
            match KeySet::from_jwks(&doc, Algorithm::ALL) {
                Err(JwksError::InvalidKey {
                    index: 1, field: f, ..
                }) => {
                    assert_eq!(f, field, "{jwk}")
                }
                other => panic!("{jwk}: {other:?}"),
            }
        }
        let err = KeySet::from_jwks(&jwks(&[ec.clone(), json!(3)]), Algorithm::ALL).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key set entry 1, field \"(key)\": not a JSON object"
        );
    }

    #[test]
    fn large_rsa_moduli_are_skipped() {
        // 6144 bits with a plausible (odd) modulus: valid JWK, beyond the verifier's limit.
        let mut n = vec![0xc5u8; 768];
        n[767] = 0x01;
        let jwk = json!({"kty": "RSA", "n": b64(&n), "e": "AQAB", "kid": "big"});
        assert_eq!(
            one(jwk, Algorithm::ALL).unwrap_err(),
            JwksError::NoUsableKeys { skipped: 1 }
        );
        let jwk = json!({"kty": "RSA", "n": b64(&n[..256]), "e": "Aw", "kid": "e3"});
        assert_eq!(
            one(jwk, Algorithm::ALL).unwrap_err(),
            JwksError::NoUsableKeys { skipped: 1 }
        );
    }

    #[test]
    fn document_level_errors() {
        let all = Algorithm::ALL;
        assert_eq!(
            KeySet::from_jwks(&vec![b' '; MAX_JWKS_BYTES + 1], all).unwrap_err(),
            JwksError::TooLarge {
                limit: MAX_JWKS_BYTES
            }
        );
        assert!(matches!(
            KeySet::from_jwks(b"{\"keys\":[", all),
            Err(JwksError::NotJson { .. })
        ));
        for doc in [&b"[]"[..], b"{}", b"{\"keys\":{}}", b"null", b"\"keys\""] {
            assert_eq!(
                KeySet::from_jwks(doc, all).unwrap_err(),
                JwksError::NotAKeySet
            );
        }
        assert_eq!(
            KeySet::from_jwks(b"{\"keys\":[]}", all).unwrap_err(),
            JwksError::NoUsableKeys { skipped: 0 }
        );
        let hs = Signer::generate("HS256", "h").public_jwk();
        let many: Vec<Value> = (0..=MAX_KEYS).map(|_| hs.clone()).collect();
        assert_eq!(
            KeySet::from_jwks(&jwks(&many), all).unwrap_err(),
            JwksError::TooManyKeys {
                count: MAX_KEYS + 1,
                limit: MAX_KEYS
            }
        );
    }

    #[test]
    fn duplicate_kid_is_an_error_among_usable_keys_only() {
        let a = Signer::generate("ES256", "same").public_jwk();
        let b = Signer::generate("EdDSA", "same").public_jwk();
        assert_eq!(
            KeySet::from_jwks(&jwks(&[a.clone(), b.clone()]), Algorithm::ALL).unwrap_err(),
            JwksError::DuplicateKid {
                index: 1,
                first_index: 0
            }
        );
        // The same kid on an encryption key is common in published sets and harmless.
        let mut enc = b;
        enc["use"] = json!("enc");
        assert_eq!(
            KeySet::from_jwks(&jwks(&[a, enc]), Algorithm::ALL)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn selection_by_kid_and_algorithm() {
        let es = Signer::generate("ES256", "es");
        let es2 = Signer::generate("ES256", "es2");
        let ed = Signer::generate("EdDSA", "ed");
        let set = KeySet::from_jwks(
            &jwks(&[
                es.public_jwk(),
                es2.public_jwk(),
                ed.public_jwk_without_kid(),
            ]),
            Algorithm::ALL,
        )
        .unwrap();
        assert_eq!(
            set.select(Some("es"), Algorithm::ES256).unwrap().alg,
            Algorithm::ES256
        );
        assert_eq!(
            set.select(Some("es"), Algorithm::EdDSA).err(),
            Some(SelectError::AlgorithmNotAccepted)
        );
        assert_eq!(
            set.select(Some("es"), Algorithm::HS256).err(),
            Some(SelectError::AlgorithmNotAccepted)
        );
        assert_eq!(
            set.select(Some("zz"), Algorithm::ES256).err(),
            Some(SelectError::UnknownKey)
        );
        // No kid: only an unambiguous key is used.
        assert_eq!(
            set.select(None, Algorithm::ES256).err(),
            Some(SelectError::UnknownKey)
        );
        assert_eq!(
            set.select(None, Algorithm::EdDSA).unwrap().alg,
            Algorithm::EdDSA
        );
        assert_eq!(
            set.kids().collect::<Vec<_>>(),
            vec![Some("es"), Some("es2"), None]
        );
    }

    #[test]
    fn key_sets_compare_by_kid_and_material() {
        let a = Signer::generate("ES256", "a");
        let b = Signer::generate("EdDSA", "b");
        let a2 = Signer::generate("ES256", "a");
        let set = |jwks_doc: &[Value]| KeySet::from_jwks(&jwks(jwks_doc), Algorithm::ALL).unwrap();
        let old = set(&[a.public_jwk(), b.public_jwk()]);
        // The same keys, in another order and with extra members: kept.
        let mut a_again = a.public_jwk();
        a_again["x5t"] = json!("ignored");
        assert!(set(&[b.public_jwk(), a_again]).keeps_every_key_of(&old));
        // A key added: kept. A key removed: not.
        let c = Signer::generate("ES256", "c");
        assert!(set(&[a.public_jwk(), b.public_jwk(), c.public_jwk()]).keeps_every_key_of(&old));
        assert!(!set(&[a.public_jwk()]).keeps_every_key_of(&old));
        // Same kid, new material: replaced.
        assert!(!set(&[a2.public_jwk(), b.public_jwk()]).keeps_every_key_of(&old));
        // Same material, other kid: the old kid is gone.
        let mut renamed = a.public_jwk();
        renamed["kid"] = json!("z");
        assert!(!set(&[renamed, b.public_jwk()]).keeps_every_key_of(&old));
        // Same material, fewer algorithms: what it verifies changed.
        let rsa = Signer::generate("RS256", "r");
        let any_rsa = set(&[rsa.public_jwk_without_alg()]);
        assert!(!set(&[rsa.public_jwk()]).keeps_every_key_of(&any_rsa));
        assert!(set(&[rsa.public_jwk_without_alg()]).keeps_every_key_of(&any_rsa));
        // HMAC secrets compare too.
        let h = Signer::generate("HS256", "h");
        let h2 = Signer::generate("HS256", "h");
        let hs = set(&[h.public_jwk()]);
        assert!(set(&[h.public_jwk()]).keeps_every_key_of(&hs));
        assert!(!set(&[h2.public_jwk()]).keeps_every_key_of(&hs));
    }

    #[test]
    fn rfc_example_keys_parse() {
        // RFC 8037 A.2 (Ed25519), RFC 7515 A.3 (P-256), RFC 7515 A.1 (HMAC): the fuzz key set.
        let doc = br#"{"keys":[
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"},
            {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec"},
            {"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow","kid":"hs"}
        ]}"#;
        let set = KeySet::from_jwks(doc, Algorithm::ALL).unwrap();
        assert_eq!(
            set.kids().collect::<Vec<_>>(),
            vec![Some("ed"), Some("ec"), Some("hs")]
        );
        assert_eq!(
            algs_of(&set),
            vec![
                vec![Algorithm::EdDSA],
                vec![Algorithm::ES256],
                vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let ec = Signer::generate("ES256", "e")
            .public_jwk()
            .to_string()
            .into_bytes();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..3000 {
            let mut doc = jwks(&[serde_json::from_slice(&ec).unwrap()]);
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pos = (state as usize) % doc.len();
            doc[pos] = (state >> 32) as u8;
            if round % 3 == 0 {
                doc.truncate(pos);
            }
            let _ = KeySet::from_jwks(&doc, Algorithm::ALL);
        }
    }
}

//! Test fixtures shared by the unit tests (included by `src/jwks.rs`), the integration tests and
//! the benchmarks: real keys of every algorithm, their public JWKs, and token signing.
//! Depends only on jwt-simple and serde_json, never on revguard itself.
#![allow(dead_code)]

use std::sync::OnceLock;

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

pub const ALL_ALGS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// A fixed, realistic clock for tests.
pub const NOW: u64 = 1_750_000_000;
pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "api://orders";

/// One RSA 2048 key per test binary: pure-Rust generation is slow.
fn rsa_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| RS256KeyPair::generate(2048).unwrap().to_der().unwrap())
}

/// A second RSA key, for rotation tests.
fn rsa_der_2() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| RS256KeyPair::generate(2048).unwrap().to_der().unwrap())
}

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

pub fn jwks(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

pub enum Key {
    RS256(RS256KeyPair),
    RS384(RS384KeyPair),
    RS512(RS512KeyPair),
    PS256(PS256KeyPair),
    PS384(PS384KeyPair),
    PS512(PS512KeyPair),
    ES256(ES256KeyPair),
    ES384(ES384KeyPair),
    EdDSA(Ed25519KeyPair),
    HS256(HS256Key),
    HS384(HS384Key),
    HS512(HS512Key),
}

pub struct Signer {
    pub alg: &'static str,
    pub kid: String,
    pub key: Key,
}

fn claims_of(payload: &Value) -> JWTClaims<serde_json::Map<String, Value>> {
    JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom: payload.as_object().unwrap().clone(),
    }
}

impl Signer {
    /// A fresh key (RSA: the shared test key) for `alg`, with `kid`.
    pub fn generate(alg: &str, kid: &str) -> Signer {
        Self::build(alg, kid, rsa_der())
    }

    /// Like `generate`, with a second RSA key.
    pub fn generate_other(alg: &str, kid: &str) -> Signer {
        Self::build(alg, kid, rsa_der_2())
    }

    fn build(alg: &str, kid: &str, der: &[u8]) -> Signer {
        let key = match alg {
            "RS256" => Key::RS256(RS256KeyPair::from_der(der).unwrap().with_key_id(kid)),
            "RS384" => Key::RS384(RS384KeyPair::from_der(der).unwrap().with_key_id(kid)),
            "RS512" => Key::RS512(RS512KeyPair::from_der(der).unwrap().with_key_id(kid)),
            "PS256" => Key::PS256(PS256KeyPair::from_der(der).unwrap().with_key_id(kid)),
            "PS384" => Key::PS384(PS384KeyPair::from_der(der).unwrap().with_key_id(kid)),
            "PS512" => Key::PS512(PS512KeyPair::from_der(der).unwrap().with_key_id(kid)),
            "ES256" => Key::ES256(ES256KeyPair::generate().with_key_id(kid)),
            "ES384" => Key::ES384(ES384KeyPair::generate().with_key_id(kid)),
            "EdDSA" => Key::EdDSA(Ed25519KeyPair::generate().with_key_id(kid)),
            "HS256" => Key::HS256(HS256Key::from_bytes(&random_bytes(32)).with_key_id(kid)),
            "HS384" => Key::HS384(HS384Key::from_bytes(&random_bytes(48)).with_key_id(kid)),
            "HS512" => Key::HS512(HS512Key::from_bytes(&random_bytes(64)).with_key_id(kid)),
            other => panic!("unknown algorithm {other}"),
        };
        let alg = ALL_ALGS.iter().find(|a| **a == alg).unwrap();
        Signer {
            alg,
            kid: kid.to_string(),
            key,
        }
    }

    /// The public JWK as an issuer publishes it (`alg`, `use: sig`, `kid`).
    pub fn public_jwk(&self) -> Value {
        let text = match &self.key {
            Key::RS256(k) => k.public_key().to_jwk(),
            Key::RS384(k) => k.public_key().to_jwk(),
            Key::RS512(k) => k.public_key().to_jwk(),
            Key::PS256(k) => k.public_key().to_jwk(),
            Key::PS384(k) => k.public_key().to_jwk(),
            Key::PS512(k) => k.public_key().to_jwk(),
            Key::ES256(k) => k.public_key().to_jwk(),
            Key::ES384(k) => k.public_key().to_jwk(),
            Key::EdDSA(k) => k.public_key().to_jwk(),
            Key::HS256(k) => return self.oct(&k.to_bytes()),
            Key::HS384(k) => return self.oct(&k.to_bytes()),
            Key::HS512(k) => return self.oct(&k.to_bytes()),
        };
        let mut jwk: Value = serde_json::from_str(&text).unwrap();
        jwk["kid"] = json!(self.kid);
        assert_eq!(jwk["alg"], json!(self.alg));
        jwk
    }

    pub fn public_jwk_without_alg(&self) -> Value {
        let mut jwk = self.public_jwk();
        jwk.as_object_mut().unwrap().remove("alg");
        jwk
    }

    pub fn public_jwk_without_kid(&self) -> Value {
        let mut jwk = self.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        jwk
    }

    fn oct(&self, k: &[u8]) -> Value {
        json!({"kty": "oct", "k": b64(k), "alg": self.alg, "use": "sig", "kid": self.kid})
    }

    /// The RSA public key's DER (SubjectPublicKeyInfo), PEM and modulus, for key-confusion tests.
    pub fn rsa_public_material(&self) -> (Vec<u8>, String, Vec<u8>) {
        let Key::RS256(k) = &self.key else {
            panic!("not an RS256 signer")
        };
        let pk = k.public_key();
        (
            pk.to_der().unwrap(),
            pk.to_pem().unwrap(),
            pk.to_components().n,
        )
    }

    /// Signs `payload` exactly as given (no claims added), header `{alg, kid, typ: "JWT"}`.
    pub fn sign(&self, payload: &Value) -> String {
        self.sign_typed(payload, None)
    }

    /// Signs with a chosen `typ` header (`None`: jwt-simple's default "JWT").
    pub fn sign_typed(&self, payload: &Value, typ: Option<&str>) -> String {
        let claims = claims_of(payload);
        let opts = HeaderOptions {
            signature_type: typ.map(str::to_string),
            ..Default::default()
        };
        match &self.key {
            Key::RS256(k) => k.sign_with_options(claims, &opts),
            Key::RS384(k) => k.sign_with_options(claims, &opts),
            Key::RS512(k) => k.sign_with_options(claims, &opts),
            Key::PS256(k) => k.sign_with_options(claims, &opts),
            Key::PS384(k) => k.sign_with_options(claims, &opts),
            Key::PS512(k) => k.sign_with_options(claims, &opts),
            Key::ES256(k) => k.sign_with_options(claims, &opts),
            Key::ES384(k) => k.sign_with_options(claims, &opts),
            Key::EdDSA(k) => k.sign_with_options(claims, &opts),
            Key::HS256(k) => k.authenticate_with_options(claims, &opts),
            Key::HS384(k) => k.authenticate_with_options(claims, &opts),
            Key::HS512(k) => k.authenticate_with_options(claims, &opts),
        }
        .unwrap()
    }

    /// Signs an arbitrary header and payload (HMAC and EdDSA signers only), so that header
    /// attacks can be tested with a valid signature.
    pub fn sign_raw(&self, header: &Value, payload: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = match &self.key {
            Key::HS256(k) => k.authentication_tag(input.as_bytes()),
            Key::HS384(k) => k.authentication_tag(input.as_bytes()),
            Key::HS512(k) => k.authentication_tag(input.as_bytes()),
            Key::EdDSA(k) => k
                .key_pair()
                .as_ref()
                .sk
                .sign(input.as_bytes(), None)
                .to_vec(),
            _ => panic!("sign_raw supports HMAC and EdDSA only"),
        };
        format!("{input}.{}", b64(&sig))
    }
}

/// HS256 over arbitrary bytes as the secret (key-confusion attacks).
pub fn hs256_with_secret(secret: &[u8], header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let tag = hmac_sha256::HMAC::mac(input.as_bytes(), secret);
    format!("{input}.{}", b64(&tag))
}

fn random_bytes(len: usize) -> Vec<u8> {
    // HS256Key::generate gives 32 random bytes; concatenate for longer secrets.
    let mut out = Vec::new();
    while out.len() < len {
        out.extend(HS256Key::generate().to_bytes());
    }
    out.truncate(len);
    out
}

/// A valid payload for the standard test policy, issued at `NOW - 60` for one hour.
pub fn payload() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3540,
        "jti": "token-1",
        "sid": "session-1",
        "scope": "orders:read orders:write",
        "tenant": "acme",
        "roles": ["admin", "viewer"]
    })
}

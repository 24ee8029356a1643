//! Origin signing keys and the set of public keys a plugin accepts.
//!
//! Text encoding: a public key (plugin config, `.pub` files) is the unpadded base64url of its
//! 32 bytes; a signing key (`.key` files) is `revguard-secret-key:` then the unpadded
//! base64url of the 32-byte Ed25519 seed. Surrounding whitespace is ignored.

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};

use super::error::SnapshotError;
use super::ids::key_id;

/// Starts the text form of a signing key.
pub const SECRET_KEY_PREFIX: &str = "revguard-secret-key:";

/// Default limit on the size of a snapshot or delta: what a plugin accepts unless its
/// `revocation.max_snapshot_bytes` says otherwise, what `revguard snapshot build` and the origin
/// produce at most, and what `snapshot inspect` reads without keys. One figure, so the origin never
/// publishes a file that plugins on their defaults refuse (docs/SNAPSHOT_FORMAT.md).
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;

/// The accepted origin public keys (several, for rotation) and the size limit applied to
/// anything verified with them.
#[derive(Clone, Debug)]
pub struct SnapshotKeys {
    keys: Vec<([u8; 8], PublicKey)>,
    max_bytes: usize,
}

impl SnapshotKeys {
    /// Parses public keys from their text form; at least one is required.
    pub fn parse(keys: &[String]) -> Result<Self, SnapshotError> {
        if keys.is_empty() {
            return Err(SnapshotError::NoKeys);
        }
        let mut parsed: Vec<([u8; 8], PublicKey)> = Vec::with_capacity(keys.len());
        for (index, text) in keys.iter().enumerate() {
            let raw = decode_32(text).ok_or(SnapshotError::InvalidPublicKey { index })?;
            let pk = PublicKey::new(raw);
            pk.validate()
                .map_err(|_| SnapshotError::InvalidPublicKey { index })?;
            let id = key_id(&raw);
            if parsed.iter().any(|(other, _)| *other == id) {
                return Err(SnapshotError::DuplicateKey { index });
            }
            parsed.push((id, pk));
        }
        Ok(SnapshotKeys {
            keys: parsed,
            max_bytes: DEFAULT_MAX_BYTES,
        })
    }

    /// Replaces the size limit (default [`DEFAULT_MAX_BYTES`]).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The key ids, in configuration order.
    pub fn key_ids(&self) -> impl Iterator<Item = [u8; 8]> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    /// Verifies `signature` over `context || body` with the key named by `key_id`.
    pub(crate) fn verify(
        &self,
        key_id: &[u8; 8],
        context: &[u8],
        body: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), SnapshotError> {
        let pk = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, pk)| pk)
            .ok_or(SnapshotError::UnknownKey { key_id: *key_id })?;
        let signature = Signature::new(*signature);
        let mut state = pk
            .verify_incremental(&signature)
            .map_err(|_| SnapshotError::BadSignature)?;
        state.absorb(context);
        state.absorb(body);
        state.verify().map_err(|_| SnapshotError::BadSignature)
    }
}

/// An origin's Ed25519 signing key.
#[derive(Clone)]
pub struct SigningKey {
    pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public: {})", self.public_key_text())
    }
}

impl SigningKey {
    /// From a 32-byte secret seed (the caller supplies the randomness; all zeros is refused).
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, SnapshotError> {
        let pair = KeyPair::try_from_seed(Seed::new(seed))
            .map_err(|_| SnapshotError::InvalidSigningKey)?;
        Ok(SigningKey { pair })
    }

    /// From the text form written by `revguard keygen`: [`SECRET_KEY_PREFIX`] then the seed
    /// in unpadded base64url. The prefix keeps a public key from being taken for a seed.
    pub fn parse(text: &str) -> Result<Self, SnapshotError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_KEY_PREFIX)
            .ok_or(SnapshotError::InvalidSigningKey)?;
        let seed = decode_32(encoded).ok_or(SnapshotError::InvalidSigningKey)?;
        Self::from_seed(seed)
    }

    /// The seed's text form: keep it secret.
    pub fn to_text(&self) -> String {
        format!(
            "{SECRET_KEY_PREFIX}{}",
            encode(self.pair.sk.seed().as_ref())
        )
    }

    pub fn public_key(&self) -> [u8; 32] {
        *self.pair.pk
    }

    /// The public key in the text form [`SnapshotKeys::parse`] accepts.
    pub fn public_key_text(&self) -> String {
        encode(self.pair.pk.as_ref())
    }

    pub fn key_id(&self) -> [u8; 8] {
        key_id(&self.pair.pk)
    }

    /// Deterministic Ed25519 signature over `context || body`.
    pub(crate) fn sign(&self, context: &[u8], body: &[u8]) -> [u8; 64] {
        let mut message = Vec::with_capacity(context.len().saturating_add(body.len()));
        message.extend_from_slice(context);
        message.extend_from_slice(body);
        *self.pair.sk.sign(&message, None)
    }
}

fn encode(bytes: &[u8]) -> String {
    // Encoding into a fresh, correctly sized buffer cannot fail; an empty string would be
    // refused by the parsers, never silently accepted.
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap_or_default()
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    let raw = Base64UrlSafeNoPadding::decode_to_vec(text.trim(), None).ok()?;
    <[u8; 32]>::try_from(raw.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32]).unwrap()
    }

    #[test]
    fn text_forms_round_trip() {
        let k = key(1);
        let again = SigningKey::parse(&format!("  {}\n", k.to_text())).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        let keys = SnapshotKeys::parse(&[k.public_key_text()]).unwrap();
        assert_eq!(keys.key_ids().collect::<Vec<_>>(), vec![k.key_id()]);
        assert_eq!(k.public_key_text().len(), 43);
        assert!(SigningKey::parse(&k.public_key_text()).is_err());
    }

    #[test]
    fn bad_key_text_is_refused_with_its_index() {
        let good = key(1).public_key_text();
        for bad in ["", "not base64!", "AAAA", &good[..40]] {
            let err = SnapshotKeys::parse(&[good.clone(), bad.to_string()]).unwrap_err();
            assert_eq!(err, SnapshotError::InvalidPublicKey { index: 1 }, "{bad:?}");
        }
        assert_eq!(SnapshotKeys::parse(&[]).unwrap_err(), SnapshotError::NoKeys);
        assert_eq!(
            SnapshotKeys::parse(&[good.clone(), good]).unwrap_err(),
            SnapshotError::DuplicateKey { index: 1 }
        );
        assert_eq!(
            SigningKey::from_seed([0; 32]).unwrap_err(),
            SnapshotError::InvalidSigningKey
        );
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_input() {
        let (a, b) = (key(1), key(2));
        let keys = SnapshotKeys::parse(&[a.public_key_text(), b.public_key_text()]).unwrap();
        let sig = b.sign(b"ctx", b"body");
        keys.verify(&b.key_id(), b"ctx", b"body", &sig).unwrap();
        assert_eq!(
            keys.verify(&a.key_id(), b"ctx", b"body", &sig),
            Err(SnapshotError::BadSignature)
        );
        assert_eq!(
            keys.verify(&b.key_id(), b"ctx", b"bodY", &sig),
            Err(SnapshotError::BadSignature)
        );
        assert_eq!(
            keys.verify(&b.key_id(), b"ctX", b"body", &sig),
            Err(SnapshotError::BadSignature)
        );
        let other = key(3);
        assert_eq!(
            keys.verify(&other.key_id(), b"ctx", b"body", &sig),
            Err(SnapshotError::UnknownKey {
                key_id: other.key_id()
            })
        );
    }
}

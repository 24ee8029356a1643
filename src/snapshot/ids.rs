//! How revoked identifiers become fixed-size hashed ids, and how those enter the Bloom filter.
//!
//! Ids are keyed by the snapshot's random salt, so the published file does not reveal which
//! subjects or tenants were revoked to anyone who can guess their names, and the kind is part
//! of the hashed message, so a `jti` can never match a `sid` of the same text.

use std::hash::{Hash, Hasher};

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

/// Length of a hashed id in bytes.
pub const ID_LEN: usize = 16;

/// A hashed, domain-separated identifier.
pub type HashedId = [u8; ID_LEN];

/// Which token claim an id or a verdict is about.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    Jti,
    Sid,
    Subject,
    Tenant,
}

impl IdKind {
    /// The domain-separation label hashed before the value (see docs/SNAPSHOT_FORMAT.md).
    pub fn label(self) -> &'static [u8] {
        match self {
            IdKind::Jti => b"jti",
            IdKind::Sid => b"sid",
            IdKind::Subject => b"sub",
            IdKind::Tenant => b"tenant",
        }
    }
}

/// Computes `HMAC-SHA256(key = salt, label || 0x00 || value)[0..16]`, with the key schedule
/// done once per salt. RustCrypto's `Hmac` keeps both padded keys absorbed (its `HmacCore`), so
/// an id costs two SHA-256 blocks; hmac-sha256's `HMAC` absorbs the outer padded key again at
/// every `finalize`, a third block per id. A token not seen before hashes up to four ids: that
/// was 35% of a first-seen HS256 request (BENCHMARKS.md, "The token's key, and revocation ids").
#[derive(Clone)]
pub struct IdHasher {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdHasher")
    }
}

impl IdHasher {
    pub fn new(salt: &[u8; 32]) -> Self {
        // HMAC pads a key shorter than the block with zeros (RFC 2104, section 2): the salt
        // zero-padded to one block is the same key, and takes `KeyInit::new`, which cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(salt);
        IdHasher {
            keyed: Hmac::new(&block.into()),
        }
    }

    pub fn hash(&self, kind: IdKind, value: &str) -> HashedId {
        let mut mac = self.keyed.clone();
        mac.update(kind.label());
        mac.update(&[0u8]);
        mac.update(value.as_bytes());
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&full[..ID_LEN]);
        id
    }
}

/// A hashed id as a Bloom filter item. Its `Hash` feeds exactly the 16 id bytes to the
/// hasher: `[u8]` and `Vec<u8>` would also feed their length as a `usize`, which is 8 bytes
/// natively and 4 on wasm32, so a filter built at the origin would not match in the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BloomItem(pub HashedId);

impl Hash for BloomItem {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// The key id of an Ed25519 public key: the first 8 bytes of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> [u8; 8] {
    let digest = hmac_sha256::Hash::hash(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_domain_separated() {
        let h = IdHasher::new(&[7; 32]);
        assert_ne!(h.hash(IdKind::Jti, "x"), h.hash(IdKind::Sid, "x"));
        assert_ne!(h.hash(IdKind::Subject, "x"), h.hash(IdKind::Tenant, "x"));
        assert_eq!(h.hash(IdKind::Jti, "x"), h.hash(IdKind::Jti, "x"));
        assert_ne!(
            h.hash(IdKind::Jti, "x"),
            IdHasher::new(&[8; 32]).hash(IdKind::Jti, "x")
        );
    }

    #[test]
    fn id_hash_matches_the_documented_construction() {
        // Against another implementation of HMAC-SHA256 (hmac-sha256's).
        let salt = [0x11u8; 32];
        let expected = hmac_sha256::HMAC::mac(b"jti\0token-1", salt);
        assert_eq!(
            IdHasher::new(&salt).hash(IdKind::Jti, "token-1")[..],
            expected[..ID_LEN]
        );
    }

    #[test]
    fn bloom_item_hashes_only_its_bytes() {
        use bloomfilter::reexports::siphasher::sip::SipHasher13;
        let mut a = SipHasher13::new_with_keys(1, 2);
        BloomItem([3; 16]).hash(&mut a);
        let mut b = SipHasher13::new_with_keys(1, 2);
        b.write(&[3; 16]);
        assert_eq!(a.finish(), b.finish());
    }
}

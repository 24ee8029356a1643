//! The one error type of the snapshot domain: decoding, verifying, applying and building.

use std::fmt;

use crate::wire::{hex, WireError};

/// Why a snapshot or delta was refused, or could not be built.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// The input is larger than the configured limit.
    TooLarge { size: usize, limit: usize },
    /// The input ended before a field did.
    Truncated,
    /// The input has bytes after the signature.
    TrailingBytes,
    /// The magic bytes are not those of the expected file type.
    BadMagic,
    /// The format version is not one this build understands.
    UnsupportedVersion(u16),
    /// The key id names none of the accepted keys.
    UnknownKey { key_id: [u8; 8] },
    /// The signature does not verify with the named key.
    BadSignature,
    /// A structurally invalid field; the text names it.
    Corrupt(&'static str),
    /// A snapshot or delta that is not newer than what is applied.
    Rollback { current: u64, offered: u64 },
    /// A delta built for another snapshot generation.
    DeltaBaseMismatch { snapshot: u64, delta_base: u64 },
    /// A delta whose salt differs from its base snapshot's (built against another snapshot).
    DeltaSaltMismatch,
    /// A configured public key is not valid text or not a valid Ed25519 key (0-based index).
    InvalidPublicKey { index: usize },
    /// Two configured public keys are the same key.
    DuplicateKey { index: usize },
    /// No public keys were configured.
    NoKeys,
    /// A private signing key is not valid.
    InvalidSigningKey,
    /// A build option is out of range; the text names it.
    InvalidOption(&'static str),
    /// The content does not fit the format's limits; the text names which.
    TooManyEntries(&'static str),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::TooLarge { size, limit } => {
                write!(f, "revocation data is {size} bytes, over the {limit}-byte limit")
            }
            SnapshotError::Truncated => f.write_str("revocation data is truncated"),
            SnapshotError::TrailingBytes => {
                f.write_str("revocation data has unexpected bytes after the signature")
            }
            SnapshotError::BadMagic => f.write_str("not a revguard snapshot or delta (bad magic)"),
            SnapshotError::UnsupportedVersion(v) => {
                write!(f, "unsupported revocation data format version {v}")
            }
            SnapshotError::UnknownKey { key_id } => write!(
                f,
                "signed by key id {} which is not among the accepted snapshot keys",
                hex(key_id)
            ),
            SnapshotError::BadSignature => f.write_str("the signature does not verify"),
            SnapshotError::Corrupt(what) => write!(f, "corrupt revocation data: {what}"),
            SnapshotError::Rollback { current, offered } => write!(
                f,
                "refused generation {offered}: not newer than the current generation {current}"
            ),
            SnapshotError::DeltaBaseMismatch { snapshot, delta_base } => write!(
                f,
                "delta is for snapshot generation {delta_base}, the current snapshot is generation {snapshot}"
            ),
            SnapshotError::DeltaSaltMismatch => {
                f.write_str("delta was built against a different snapshot (salt mismatch)")
            }
            SnapshotError::InvalidPublicKey { index } => write!(
                f,
                "snapshot public key #{index} is not a base64url-encoded 32-byte Ed25519 public key"
            ),
            SnapshotError::DuplicateKey { index } => {
                write!(f, "snapshot public key #{index} is listed twice")
            }
            SnapshotError::NoKeys => f.write_str("no snapshot public keys are configured"),
            SnapshotError::InvalidSigningKey => {
                f.write_str("not a revguard signing key (expected revguard-secret-key: and a base64url Ed25519 seed)")
            }
            SnapshotError::InvalidOption(what) => write!(f, "invalid build option: {what}"),
            SnapshotError::TooManyEntries(what) => write!(f, "too many entries: {what}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl From<WireError> for SnapshotError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated { .. } => SnapshotError::Truncated,
            WireError::TrailingBytes { .. } => SnapshotError::TrailingBytes,
            WireError::LengthOverflow => SnapshotError::Corrupt("a length field is too large"),
        }
    }
}

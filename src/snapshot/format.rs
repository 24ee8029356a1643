//! The snapshot byte format (version 1), its signed envelope, and the decode order:
//! size limit, magic, version, key id, signature, and only then the content.
//! docs/SNAPSHOT_FORMAT.md is the specification; keep the two in step.

use super::error::SnapshotError;
use super::filter::{check_parts, FilterParts};
use super::keys::{SigningKey, SnapshotKeys};
use super::table::NotBeforeTable;
use crate::wire::{Reader, Writer};

pub const SNAPSHOT_MAGIC: [u8; 4] = *b"RGSN";
pub const DELTA_MAGIC: [u8; 4] = *b"RGDL";
pub const FORMAT_VERSION: u16 = 1;
pub const SIGNATURE_LEN: usize = 64;
/// Prefixed to the signed bytes of a snapshot (domain separation from deltas and anything else).
pub const SNAPSHOT_CONTEXT: &[u8] = b"revguard snapshot v1\0";
/// Prefixed to the signed bytes of a delta.
pub const DELTA_CONTEXT: &[u8] = b"revguard delta v1\0";

/// Which kind of file some bytes are, by magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Snapshot,
    Delta,
}

impl FileKind {
    pub fn detect(bytes: &[u8]) -> Option<FileKind> {
        match bytes.get(..4) {
            Some(m) if m == SNAPSHOT_MAGIC => Some(FileKind::Snapshot),
            Some(m) if m == DELTA_MAGIC => Some(FileKind::Delta),
            _ => None,
        }
    }

    fn magic(self) -> [u8; 4] {
        match self {
            FileKind::Snapshot => SNAPSHOT_MAGIC,
            FileKind::Delta => DELTA_MAGIC,
        }
    }

    fn context(self) -> &'static [u8] {
        match self {
            FileKind::Snapshot => SNAPSHOT_CONTEXT,
            FileKind::Delta => DELTA_CONTEXT,
        }
    }
}

/// A file split into its signed part and signature, with the common header read.
pub(crate) struct Envelope<'a> {
    pub kind: FileKind,
    pub key_id: [u8; 8],
    pub body: &'a [u8],
    pub signature: [u8; SIGNATURE_LEN],
    /// Positioned after the common header, over the body only.
    pub rest: Reader<'a>,
}

impl<'a> Envelope<'a> {
    /// Checks size, magic and version and splits off the signature. Cheap: no allocation.
    pub fn open(bytes: &'a [u8], kind: FileKind, max_bytes: usize) -> Result<Self, SnapshotError> {
        if bytes.len() > max_bytes {
            return Err(SnapshotError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        match bytes.get(..4) {
            None => return Err(SnapshotError::Truncated),
            Some(m) if m != kind.magic() => return Err(SnapshotError::BadMagic),
            Some(_) => {}
        }
        let body_len = bytes
            .len()
            .checked_sub(SIGNATURE_LEN)
            .ok_or(SnapshotError::Truncated)?;
        let (body, sig) = bytes.split_at(body_len);
        let mut rest = Reader::new(body);
        rest.take(4)?;
        let version = rest.u16()?;
        if version != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let key_id = rest.array::<8>()?;
        let signature = Reader::new(sig).array::<SIGNATURE_LEN>()?;
        Ok(Envelope {
            kind,
            key_id,
            body,
            signature,
            rest,
        })
    }

    /// Verifies the signature over `context || body` with the key the header names.
    pub fn verify(&self, keys: &SnapshotKeys) -> Result<(), SnapshotError> {
        keys.verify(
            &self.key_id,
            self.kind.context(),
            self.body,
            &self.signature,
        )
    }
}

/// Writes the common header.
pub(crate) fn write_header(w: &mut Writer, kind: FileKind, key: &SigningKey) {
    w.bytes(&kind.magic());
    w.u16(FORMAT_VERSION);
    w.bytes(&key.key_id());
}

/// Signs the body and appends the signature.
pub(crate) fn seal(w: Writer, kind: FileKind, key: &SigningKey) -> Vec<u8> {
    let signature = key.sign(kind.context(), w.as_slice());
    let mut bytes = w.into_bytes();
    bytes.extend_from_slice(&signature);
    bytes
}

/// The fixed fields of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub key_id: [u8; 8],
    pub generation: u64,
    pub built_at: u64,
    pub max_age_secs: u64,
    pub salt: [u8; 32],
    /// Distinct `jti` ids in the filter (used for the false-positive estimate).
    pub jti_count: u32,
    /// Distinct `sid` ids in the filter.
    pub sid_count: u32,
}

/// A structurally valid snapshot (the filter is not built yet).
#[derive(Clone, Debug)]
pub(crate) struct SnapshotContent<'a> {
    pub header: SnapshotHeader,
    pub filter: FilterParts<'a>,
    pub subjects: NotBeforeTable,
    pub tenants: NotBeforeTable,
}

/// Decodes a snapshot, verifying its signature before any table is read.
pub(crate) fn decode_snapshot<'a>(
    bytes: &'a [u8],
    keys: &SnapshotKeys,
) -> Result<SnapshotContent<'a>, SnapshotError> {
    let envelope = Envelope::open(bytes, FileKind::Snapshot, keys.max_bytes())?;
    envelope.verify(keys)?;
    parse_snapshot_content(envelope)
}

/// Reads the content after the common header; `finish` rejects trailing bytes.
pub(crate) fn parse_snapshot_content(
    envelope: Envelope<'_>,
) -> Result<SnapshotContent<'_>, SnapshotError> {
    let key_id = envelope.key_id;
    let mut r = envelope.rest;
    let header = SnapshotHeader {
        key_id,
        generation: r.u64()?,
        built_at: r.u64()?,
        max_age_secs: r.u64()?,
        salt: r.array::<32>()?,
        jti_count: r.u32()?,
        sid_count: r.u32()?,
    };
    let k = u32::from(r.u8()?);
    let seed = r.array::<32>()?;
    let bitmap = r.slice_u32()?;
    check_parts(k, &seed, bitmap.len())?;
    let subjects = NotBeforeTable::decode(&mut r, "subject table is not strictly ascending")?;
    let tenants = NotBeforeTable::decode(&mut r, "tenant table is not strictly ascending")?;
    r.finish()?;
    Ok(SnapshotContent {
        header,
        filter: FilterParts { k, seed, bitmap },
        subjects,
        tenants,
    })
}

/// Encodes and signs a snapshot.
pub(crate) fn encode_snapshot(
    content: &SnapshotContent<'_>,
    key: &SigningKey,
) -> Result<Vec<u8>, SnapshotError> {
    let h = &content.header;
    let k = u8::try_from(content.filter.k)
        .map_err(|_| SnapshotError::InvalidOption("Bloom filter hash count does not fit"))?;
    let mut w = Writer::with_capacity(content.filter.bitmap.len().saturating_add(256));
    write_header(&mut w, FileKind::Snapshot, key);
    w.u64(h.generation);
    w.u64(h.built_at);
    w.u64(h.max_age_secs);
    w.bytes(&h.salt);
    w.u32(h.jti_count);
    w.u32(h.sid_count);
    w.u8(k);
    w.bytes(&content.filter.seed);
    w.slice_u32(content.filter.bitmap)?;
    content.subjects.encode(&mut w)?;
    content.tenants.encode(&mut w)?;
    Ok(seal(w, FileKind::Snapshot, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::table::NotBeforeTable;

    fn key() -> SigningKey {
        SigningKey::from_seed([4; 32]).unwrap()
    }

    fn keys() -> SnapshotKeys {
        SnapshotKeys::parse(&[key().public_key_text()]).unwrap()
    }

    fn content(k: u32, seed: [u8; 32], bitmap: &[u8]) -> SnapshotContent<'_> {
        SnapshotContent {
            header: SnapshotHeader {
                key_id: key().key_id(),
                generation: 1,
                built_at: 2,
                max_age_secs: 3,
                salt: [5; 32],
                jti_count: 0,
                sid_count: 0,
            },
            filter: FilterParts { k, seed, bitmap },
            subjects: NotBeforeTable::from_unsorted(vec![([1; 16], 10), ([0; 16], 20)]),
            tenants: NotBeforeTable::default(),
        }
    }

    fn seed() -> [u8; 32] {
        let mut s = [1u8; 32];
        s[31] = 2;
        s
    }

    #[test]
    fn round_trip_and_layout() {
        let bitmap = [0u8, 0x80, 3];
        let bytes = encode_snapshot(&content(7, seed(), &bitmap), &key()).unwrap();
        // header 14 + fixed 64 + k 1 + seed 32 + len 4 + 3 + 2 tables (4 + 48, 4) + sig 64
        assert_eq!(bytes.len(), 14 + 64 + 1 + 32 + 4 + 3 + 4 + 48 + 4 + 64);
        assert_eq!(&bytes[..6], b"RGSN\x00\x01");
        let decoded = decode_snapshot(&bytes, &keys()).unwrap();
        assert_eq!(decoded.header, content(7, seed(), &bitmap).header);
        assert_eq!(
            decoded.filter,
            FilterParts {
                k: 7,
                seed: seed(),
                bitmap: &bitmap
            }
        );
        assert_eq!(decoded.subjects.not_before(&[0; 16]), Some(20));
    }

    #[test]
    fn signed_but_hostile_filter_parameters_are_refused() {
        for (k, seed, bitmap) in [
            (0u32, seed(), &[1u8][..]),
            (33, seed(), &[1u8][..]),
            (255, seed(), &[1u8][..]),
            (3, [6; 32], &[1u8][..]),
            (3, seed(), &[][..]),
        ] {
            let bytes = encode_snapshot(&content(k, seed, bitmap), &key()).unwrap();
            assert!(
                matches!(
                    decode_snapshot(&bytes, &keys()),
                    Err(SnapshotError::Corrupt(_))
                ),
                "{k}"
            );
        }
        assert!(encode_snapshot(&content(256, seed(), &[1]), &key()).is_err());
    }
}

//! The delta byte format (version 1): exact revocations added since a full snapshot.
//!
//! A delta is cumulative: the delta to generation H holds every addition since its base
//! snapshot G, so a plugin only needs the newest delta for the snapshot it has. Ids are
//! hashed with the base snapshot's salt, which the delta repeats so a mismatch is caught.

use super::error::SnapshotError;
use super::format::{seal, write_header, Envelope, FileKind};
use super::keys::{SigningKey, SnapshotKeys};
use super::table::{IdSet, NotBeforeTable};
use crate::wire::Writer;

/// The fixed fields of a delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaHeader {
    pub key_id: [u8; 8],
    pub base_generation: u64,
    pub generation: u64,
    pub built_at: u64,
    pub max_age_secs: u64,
    pub base_salt: [u8; 32],
}

/// A structurally valid delta.
#[derive(Clone, Debug)]
pub(crate) struct DeltaContent {
    pub header: DeltaHeader,
    pub jti: IdSet,
    pub sid: IdSet,
    pub subjects: NotBeforeTable,
    pub tenants: NotBeforeTable,
}

/// Decodes a delta, verifying its signature before any table is read.
pub(crate) fn decode_delta(
    bytes: &[u8],
    keys: &SnapshotKeys,
) -> Result<DeltaContent, SnapshotError> {
    let envelope = Envelope::open(bytes, FileKind::Delta, keys.max_bytes())?;
    envelope.verify(keys)?;
    parse_delta_content(envelope)
}

/// Reads the content after the common header; `finish` rejects trailing bytes.
pub(crate) fn parse_delta_content(envelope: Envelope<'_>) -> Result<DeltaContent, SnapshotError> {
    let key_id = envelope.key_id;
    let mut r = envelope.rest;
    let header = DeltaHeader {
        key_id,
        base_generation: r.u64()?,
        generation: r.u64()?,
        built_at: r.u64()?,
        max_age_secs: r.u64()?,
        base_salt: r.array::<32>()?,
    };
    if header.generation <= header.base_generation {
        return Err(SnapshotError::Corrupt(
            "delta generation is not after its base generation",
        ));
    }
    let jti = IdSet::decode(&mut r, "delta jti set is not strictly ascending")?;
    let sid = IdSet::decode(&mut r, "delta sid set is not strictly ascending")?;
    let subjects = NotBeforeTable::decode(&mut r, "delta subject table is not strictly ascending")?;
    let tenants = NotBeforeTable::decode(&mut r, "delta tenant table is not strictly ascending")?;
    r.finish()?;
    Ok(DeltaContent {
        header,
        jti,
        sid,
        subjects,
        tenants,
    })
}

/// Encodes and signs a delta.
pub(crate) fn encode_delta(
    content: &DeltaContent,
    key: &SigningKey,
) -> Result<Vec<u8>, SnapshotError> {
    let h = &content.header;
    let mut w = Writer::new();
    write_header(&mut w, FileKind::Delta, key);
    w.u64(h.base_generation);
    w.u64(h.generation);
    w.u64(h.built_at);
    w.u64(h.max_age_secs);
    w.bytes(&h.base_salt);
    content.jti.encode(&mut w)?;
    content.sid.encode(&mut w)?;
    content.subjects.encode(&mut w)?;
    content.tenants.encode(&mut w)?;
    Ok(seal(w, FileKind::Delta, key))
}

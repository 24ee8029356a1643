//! A readable summary of a snapshot or delta, for operators (`revguard snapshot inspect`).

use serde::Serialize;

use super::delta::parse_delta_content;
use super::error::SnapshotError;
use super::filter::expected_fp_rate;
use super::format::{parse_snapshot_content, Envelope, FileKind, FORMAT_VERSION};
use super::keys::{SnapshotKeys, DEFAULT_MAX_BYTES};
use crate::wire::hex;

/// Entry counts by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryCounts {
    pub jti: u64,
    pub sid: u64,
    pub subjects: u64,
    pub tenants: u64,
}

/// The Bloom filter's dimensions (snapshots only).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FilterInfo {
    pub size_bytes: u64,
    pub k: u32,
    /// Filter bits per `jti`/`sid` entry (null when there are none).
    pub bits_per_entry: Option<f64>,
    pub expected_fp_rate: f64,
}

/// What `inspect` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inspection {
    /// "snapshot" or "delta".
    pub kind: &'static str,
    pub version: u16,
    pub size_bytes: u64,
    pub key_id: String,
    pub generation: u64,
    /// The snapshot generation a delta applies to.
    pub base_generation: Option<u64>,
    pub built_at: u64,
    pub max_age_secs: u64,
    pub salt: String,
    pub entries: EntryCounts,
    pub filter: Option<FilterInfo>,
    /// Whether the signature verifies with one of `keys`; `None` when no keys were given.
    pub signature_valid: Option<bool>,
}

fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Decodes the structure of a snapshot or delta (detected by magic) and, if keys are
/// given, checks its signature. A bad signature is reported, not an error.
pub fn inspect(bytes: &[u8], keys: Option<&SnapshotKeys>) -> Result<Inspection, SnapshotError> {
    let kind = FileKind::detect(bytes).ok_or(if bytes.len() < 4 {
        SnapshotError::Truncated
    } else {
        SnapshotError::BadMagic
    })?;
    let max_bytes = keys.map_or(DEFAULT_MAX_BYTES, SnapshotKeys::max_bytes);
    let envelope = Envelope::open(bytes, kind, max_bytes)?;
    let signature_valid = keys.map(|k| envelope.verify(k).is_ok());
    let key_id = hex(&envelope.key_id);
    let size_bytes = wide(bytes.len());
    match kind {
        FileKind::Snapshot => {
            let c = parse_snapshot_content(envelope)?;
            let items = u64::from(c.header.jti_count).saturating_add(u64::from(c.header.sid_count));
            let filter_bytes = wide(c.filter.bitmap.len());
            let bits = filter_bytes.saturating_mul(8);
            Ok(Inspection {
                kind: "snapshot",
                version: FORMAT_VERSION,
                size_bytes,
                key_id,
                generation: c.header.generation,
                base_generation: None,
                built_at: c.header.built_at,
                max_age_secs: c.header.max_age_secs,
                salt: hex(&c.header.salt),
                entries: EntryCounts {
                    jti: u64::from(c.header.jti_count),
                    sid: u64::from(c.header.sid_count),
                    subjects: wide(c.subjects.len()),
                    tenants: wide(c.tenants.len()),
                },
                filter: Some(FilterInfo {
                    size_bytes: filter_bytes,
                    k: c.filter.k,
                    bits_per_entry: (items > 0).then(|| bits as f64 / items as f64),
                    expected_fp_rate: expected_fp_rate(bits, items, c.filter.k),
                }),
                signature_valid,
            })
        }
        FileKind::Delta => {
            let c = parse_delta_content(envelope)?;
            Ok(Inspection {
                kind: "delta",
                version: FORMAT_VERSION,
                size_bytes,
                key_id,
                generation: c.header.generation,
                base_generation: Some(c.header.base_generation),
                built_at: c.header.built_at,
                max_age_secs: c.header.max_age_secs,
                salt: hex(&c.header.base_salt),
                entries: EntryCounts {
                    jti: wide(c.jti.len()),
                    sid: wide(c.sid.len()),
                    subjects: wide(c.subjects.len()),
                    tenants: wide(c.tenants.len()),
                },
                filter: None,
                signature_valid,
            })
        }
    }
}

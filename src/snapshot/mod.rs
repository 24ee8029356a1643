//! The signed revocation snapshot: its byte format, the delta that keeps it current, the
//! origin-side builder, and the state a plugin keeps and checks tokens against.
//!
//! The byte format is specified in docs/SNAPSHOT_FORMAT.md.

mod build;
mod delta;
mod error;
mod filter;
mod format;
mod ids;
mod inspect;
mod keys;
mod revocations;
mod state;
mod table;

pub use build::{
    bloom_seed, build_delta, build_snapshot, snapshot_header, BuildOptions, DeltaOptions,
    DEFAULT_FP_RATE, DEFAULT_MAX_AGE_SECS, MAX_FUTURE_SKEW_SECS, MAX_GENERATION,
    MAX_GENERATION_STEP,
};
pub use delta::DeltaHeader;
pub use error::SnapshotError;
pub use filter::{MAX_BITMAP_BYTES, MAX_FP_RATE, MAX_K, MIN_FILTER_ITEMS, MIN_FP_RATE};
pub use format::{
    FileKind, SnapshotHeader, DELTA_CONTEXT, DELTA_MAGIC, FORMAT_VERSION, SNAPSHOT_CONTEXT,
    SNAPSHOT_MAGIC,
};
pub use ids::{key_id, IdHasher, IdKind};
pub use inspect::{inspect, EntryCounts, FilterInfo, Inspection};
pub use keys::{SigningKey, SnapshotKeys, DEFAULT_MAX_BYTES, SECRET_KEY_PREFIX};
pub use revocations::{
    parse_revocations, target_from_fields, Revocation, RevocationFields, RevocationLimits,
    RevocationListError, RevocationTarget, TargetError,
};
pub use state::{Applied, HashedIds, RevocationState, TokenIds, Verdict};

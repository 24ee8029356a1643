//! The Bloom filter over hashed `jti` and `sid` ids (crate `bloomfilter` 3, explicit seed).
//!
//! The snapshot stores the filter's parameters as its own big-endian fields; this module
//! turns them into a `bloomfilter::Bloom` only after they were checked, because that crate
//! panics on a zero-length bitmap and trusts `k` (an attacker-chosen `k` is a CPU DoS).

use bloomfilter::Bloom;

use super::error::SnapshotError;
use super::ids::{BloomItem, HashedId};

/// Upper bound on the number of hash functions accepted in a snapshot.
pub const MAX_K: u32 = 32;
/// Upper bound on the bitmap size in bytes (keeps every bit offset within 32 bits on wasm32).
pub const MAX_BITMAP_BYTES: usize = 1 << 28;
/// Lowest false-positive rate a build accepts (bounds the bitmap size and `k`).
pub const MIN_FP_RATE: f64 = 1e-9;
/// Highest false-positive rate a build accepts.
pub const MAX_FP_RATE: f64 = 0.5;

/// A filter is sized for at least this many items. The crate's double hashing
/// (`h0 + i * h1`) degenerates on tiny bitmaps, where `h1` often shares a large factor with
/// the bit count; a few hundred bytes keep short lists at or below the target rate.
pub const MIN_FILTER_ITEMS: usize = 256;

/// Size of the `bloomfilter` crate's own serialization header (version, length, k, seed).
const CRATE_HEADER_LEN: usize = 1 + 8 + 4 + 32;
/// The `bloomfilter` crate's serialization version.
const CRATE_FORMAT_VERSION: u8 = 1;

/// The filter as stored in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterParts<'a> {
    pub k: u32,
    pub seed: [u8; 32],
    pub bitmap: &'a [u8],
}

/// Checks the parameters a decoder must refuse before any filter is built.
pub fn check_parts(k: u32, seed: &[u8; 32], bitmap_len: usize) -> Result<(), SnapshotError> {
    if k == 0 || k > MAX_K {
        return Err(SnapshotError::Corrupt(
            "Bloom filter hash count out of range",
        ));
    }
    if seed_halves_equal(seed) {
        return Err(SnapshotError::Corrupt("Bloom filter seed halves are equal"));
    }
    if bitmap_len == 0 || bitmap_len > MAX_BITMAP_BYTES {
        return Err(SnapshotError::Corrupt(
            "Bloom filter bitmap size out of range",
        ));
    }
    Ok(())
}

fn seed_halves_equal(seed: &[u8; 32]) -> bool {
    let (a, b) = seed.split_at(16);
    a == b
}

/// A built (or decoded) filter over hashed ids.
#[derive(Clone)]
pub struct RevocationFilter {
    bloom: Bloom<BloomItem>,
}

impl std::fmt::Debug for RevocationFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RevocationFilter({} bits, k = {})",
            self.bloom.len(),
            self.k()
        )
    }
}

impl RevocationFilter {
    /// Builds a filter for `ids` at the target false-positive rate. Zero ids still gives a
    /// valid (empty) filter: it is sized for at least [`MIN_FILTER_ITEMS`].
    pub fn build(ids: &[HashedId], fp_rate: f64, seed: &[u8; 32]) -> Result<Self, SnapshotError> {
        if !(MIN_FP_RATE..=MAX_FP_RATE).contains(&fp_rate) {
            return Err(SnapshotError::InvalidOption(
                "false-positive rate must be between 1e-9 and 0.5",
            ));
        }
        if seed_halves_equal(seed) {
            return Err(SnapshotError::InvalidOption(
                "Bloom seed halves must differ",
            ));
        }
        let items = ids.len().max(MIN_FILTER_ITEMS);
        let bytes = Bloom::<BloomItem>::compute_bitmap_size(items, fp_rate).max(1);
        if bytes > MAX_BITMAP_BYTES {
            return Err(SnapshotError::TooManyEntries(
                "the Bloom filter would exceed 256 MiB",
            ));
        }
        let mut bloom = Bloom::new_with_seed(bytes, items, seed)
            .map_err(|_| SnapshotError::InvalidOption("Bloom filter parameters"))?;
        if bloom.number_of_hash_functions() > MAX_K {
            return Err(SnapshotError::InvalidOption(
                "Bloom filter needs too many hash functions",
            ));
        }
        for id in ids {
            bloom.set(&BloomItem(*id));
        }
        Ok(RevocationFilter { bloom })
    }

    /// Rebuilds a filter from checked snapshot fields.
    pub fn from_parts(parts: &FilterParts<'_>) -> Result<Self, SnapshotError> {
        check_parts(parts.k, &parts.seed, parts.bitmap.len())?;
        let len = u64::try_from(parts.bitmap.len())
            .map_err(|_| SnapshotError::Corrupt("Bloom filter bitmap size out of range"))?;
        let mut raw = Vec::with_capacity(CRATE_HEADER_LEN.saturating_add(parts.bitmap.len()));
        raw.push(CRATE_FORMAT_VERSION);
        raw.extend_from_slice(&len.to_le_bytes());
        raw.extend_from_slice(&parts.k.to_le_bytes());
        raw.extend_from_slice(&parts.seed);
        raw.extend_from_slice(parts.bitmap);
        let bloom = Bloom::from_bytes(raw)
            .map_err(|_| SnapshotError::Corrupt("Bloom filter rejected by the decoder"))?;
        Ok(RevocationFilter { bloom })
    }

    /// The stored form: k, seed and the bitmap bytes.
    pub fn parts(&self) -> Result<FilterParts<'_>, SnapshotError> {
        let bitmap =
            self.bloom
                .as_slice()
                .get(CRATE_HEADER_LEN..)
                .ok_or(SnapshotError::Corrupt(
                    "Bloom filter serialization is too short",
                ))?;
        Ok(FilterParts {
            k: self.k(),
            seed: self.bloom.seed(),
            bitmap,
        })
    }

    pub fn k(&self) -> u32 {
        self.bloom.number_of_hash_functions()
    }

    pub fn contains(&self, id: &HashedId) -> bool {
        self.bloom.check(&BloomItem(*id))
    }
}

/// The false-positive rate expected for `items` entries in `bits` bits with `k` hashes:
/// `(1 - e^(-k n / m))^k`.
pub fn expected_fp_rate(bits: u64, items: u64, k: u32) -> f64 {
    if items == 0 || bits == 0 {
        return 0.0;
    }
    let (m, n, k) = (bits as f64, items as f64, f64::from(k));
    (1.0 - (-k * n / m).exp()).powf(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bloomfilter::reexports::siphasher::sip::SipHasher13;
    use std::hash::Hasher;

    const SEED: [u8; 32] = {
        let mut s = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            s[i] = i as u8;
            i += 1;
        }
        s
    };

    /// The documented algorithm, written independently of the crate.
    fn documented_positions(id: &HashedId, seed: &[u8; 32], k: u32, bits: u64) -> Vec<u64> {
        let sip = |key: &[u8]| {
            let k0 = u64::from_le_bytes(key[0..8].try_into().unwrap());
            let k1 = u64::from_le_bytes(key[8..16].try_into().unwrap());
            let mut h = SipHasher13::new_with_keys(k0, k1);
            h.write(id);
            h.finish()
        };
        let (h0, h1) = (sip(&seed[0..16]), sip(&seed[16..32]));
        (0..u64::from(k))
            .map(|i| match i {
                0 => h0 % bits,
                1 => h1 % bits,
                _ => (h0.wrapping_add(i.wrapping_mul(h1)) % 0xFFFF_FFFF_FFFF_FFC5) % bits,
            })
            .collect()
    }

    fn test_ids(n: u32) -> Vec<HashedId> {
        (0..n)
            .map(|i| {
                let digest = hmac_sha256::Hash::hash(&i.to_be_bytes());
                digest[..16].try_into().unwrap()
            })
            .collect()
    }

    fn is_set(bitmap: &[u8], bit: u64) -> bool {
        bitmap[(bit / 8) as usize] & (1 << (bit % 8)) != 0
    }

    /// Pinned once natively: if a target (wasm32's 4-byte usize) or a crate update changed
    /// the hashing, this fails instead of silently mismatching filters across targets.
    #[test]
    fn bit_positions_are_pinned() {
        let ids = test_ids(1000);
        let filter = RevocationFilter::build(&ids, 0.001, &SEED).unwrap();
        let parts = filter.parts().unwrap();
        assert_eq!((parts.k, parts.bitmap.len()), (10, 1798));
        let bits = parts.bitmap.len() as u64 * 8;
        for (id, pinned) in [(&ids[0], &PINNED_ID0), (&ids[1], &PINNED_ID1)] {
            let positions = documented_positions(id, &SEED, parts.k, bits);
            assert_eq!(&positions, pinned);
            assert!(positions.iter().all(|bit| is_set(parts.bitmap, *bit)));
        }
        let digest = hmac_sha256::Hash::hash(parts.bitmap);
        assert_eq!(crate::wire::hex(&digest), PINNED_BITMAP_SHA256);
        assert!(ids.iter().all(|id| filter.contains(id)));
    }

    const PINNED_ID0: [u64; 10] = [11465, 8400, 6409, 425, 12281, 6297, 3769, 1241, 9641, 7113];
    const PINNED_ID1: [u64; 10] = [8970, 11201, 6060, 2877, 3150, 14351, 240, 11441, 8258, 8531];
    const PINNED_BITMAP_SHA256: &str =
        "f8a41482c5fa2cccf441f1b0aa3afcb74fc5737bd6a6d38fc1471aeedcbbb30e";

    #[test]
    fn empty_filter_is_valid_and_matches_nothing() {
        let filter = RevocationFilter::build(&[], 0.001, &SEED).unwrap();
        assert!(!filter.contains(&[0; 16]));
        let parts = filter.parts().unwrap();
        assert!(!parts.bitmap.is_empty());
        RevocationFilter::from_parts(&parts).unwrap();
    }

    #[test]
    fn parts_round_trip_and_no_false_negatives() {
        let ids = test_ids(2000);
        let filter = RevocationFilter::build(&ids, 0.01, &SEED).unwrap();
        let again = RevocationFilter::from_parts(&filter.parts().unwrap()).unwrap();
        assert!(ids.iter().all(|id| again.contains(id)));
    }

    #[test]
    fn hostile_parameters_are_refused() {
        let bitmap = [0u8; 8];
        let mut parts = FilterParts {
            k: 0,
            seed: SEED,
            bitmap: &bitmap,
        };
        assert!(RevocationFilter::from_parts(&parts).is_err());
        parts.k = MAX_K + 1;
        assert!(RevocationFilter::from_parts(&parts).is_err());
        parts.k = u32::MAX;
        assert!(RevocationFilter::from_parts(&parts).is_err());
        parts.k = 3;
        parts.seed = [5; 32];
        assert!(RevocationFilter::from_parts(&parts).is_err());
        parts.seed = SEED;
        parts.bitmap = &[];
        assert!(RevocationFilter::from_parts(&parts).is_err());
        assert!(RevocationFilter::build(&[], 0.001, &[9; 32]).is_err());
        for rate in [0.0, 1.0, -1.0, f64::NAN, f64::INFINITY, 1e-12] {
            assert!(RevocationFilter::build(&[], rate, &SEED).is_err(), "{rate}");
        }
    }

    #[test]
    fn expected_rate_formula() {
        assert_eq!(expected_fp_rate(100, 0, 3), 0.0);
        let r = expected_fp_rate(14_378, 1000, 10);
        assert!((r - 0.001).abs() < 0.0001, "{r}");
    }
}

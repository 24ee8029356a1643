//! Untrusted key set documents: `KeySet::from_jwks` must never panic, and an accepted set is
//! never empty and never larger than the document's key count limit.

use revguard::jwks::{Algorithm, KeySet, MAX_KEYS};

pub fn run(data: &[u8]) {
    // The first byte picks the allowed algorithms, so key-family filtering is fuzzed too.
    let (mask, doc) = match data.split_first() {
        Some((mask, doc)) => (*mask, doc),
        None => return,
    };
    let allowed: Vec<Algorithm> = Algorithm::ALL
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| *i >= 8 || mask & (1 << i) != 0)
        .map(|(_, alg)| alg)
        .collect();
    if let Ok(keys) = KeySet::from_jwks(doc, &allowed) {
        assert!(!keys.is_empty() && keys.len() <= MAX_KEYS);
        assert_eq!(keys.kids().count(), keys.len());
    }
}

//! The enforcement point's identity, sent with every revocation fetch so the origin can show
//! which node holds which generation (its fleet view). All the workers of one proxy are one
//! node: they share one fetch through shared data.

use std::hash::{BuildHasher, Hasher};

/// Request header naming the node that fetches.
pub const NODE_HEADER: &str = "x-revguard-node";
/// Request header with the revocation generation the node holds (`0`: none yet).
pub const GENERATION_HEADER: &str = "x-revguard-generation";
/// Longest node id accepted (configured or given by the host).
pub const MAX_NODE_ID: usize = 128;

/// Whether `id` can be sent as a header value and shown in the fleet view: 1 to
/// [`MAX_NODE_ID`] visible ASCII characters (Istio's `sidecar~10.0.0.7~pod.ns~ns.svc.cluster.local`
/// qualifies).
pub fn is_valid(id: &str) -> bool {
    (1..=MAX_NODE_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A random node id (`rg-` and 16 hex digits). The randomness is std's per-process hash seed,
/// which comes from the host's `random_get` on WASI and from the OS natively; on
/// `wasm32-unknown-unknown` std has no randomness, so the edge build takes its id from JS.
pub fn random() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    format!("rg-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_visible_ascii_and_bounded() {
        assert!(is_valid("sidecar~10.0.0.7~pod-1.ns~ns.svc.cluster.local"));
        assert!(is_valid(&random()));
        assert_ne!(random(), random());
        assert!(!is_valid(""));
        assert!(!is_valid("a b"));
        assert!(!is_valid("a\nb"));
        assert!(!is_valid("é"));
        assert!(!is_valid(&"a".repeat(MAX_NODE_ID + 1)));
        assert!(is_valid(&"a".repeat(MAX_NODE_ID)));
    }
}

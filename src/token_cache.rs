//! A bounded cache of verified tokens, keyed by the token itself, so a token already seen skips
//! its signature check (never its revocation check: that is the caller's next step).
//!
//! Why the token and not its SHA-256: in wasm, hashing a 1 KB token with SHA-256 cost more than
//! the whole rest of a cached request; a SipHash lookup plus one comparison is several times
//! cheaper, and exact comparison leaves no room for collisions. Only verified tokens enter, so
//! a client cannot fill the cache with its own strings.
//!
//! A lookup hashes the key's length and last [`HASHED_TAIL`] bytes only ([`TailHash`]), then
//! compares whole keys eight bytes at a time ([`same_bytes`]): SipHash over a whole 800-byte
//! token, then the byte-by-byte `memcmp` of wasm's compiler-builtins, were most of a cached
//! request in wasm. Equality is still checked on the whole key, so this changes bucket
//! spreading only, never which entry answers. A client cannot aim lookups at one bucket to any
//! effect: only verified tokens (or SHA-256 digests) are inserted, and their tails are
//! signature bytes the client cannot choose.
//!
//! Entries never outlive their `expires_at` (the token's `exp`). When full, expired entries are
//! dropped first, then the oldest insertions. Memory is bounded by `capacity` entries of at most
//! `limits.max_token_bytes` each.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

/// Bytes of a key the map hashes (with its length): the end of a JWT's signature, or a whole
/// SHA-256 digest.
pub const HASHED_TAIL: usize = 32;

/// SipHash, randomly keyed as the standard map's, over each written slice's length and its last
/// [`HASHED_TAIL`] bytes.
#[derive(Clone, Default)]
pub struct TailHash(RandomState);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

pub struct TailHasher(std::collections::hash_map::DefaultHasher);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = bytes
            .get(bytes.len().saturating_sub(HASHED_TAIL)..)
            .unwrap_or(bytes);
        self.0.write_usize(bytes.len());
        self.0.write(tail);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// One cached key and its value.
struct Slot<K: ?Sized, V> {
    key: Rc<K>,
    value: V,
    expires_at: u64,
}

/// Bounded map from token to a verified value (typically the token's claims). The key is the
/// token itself by default; the failed-verification memory keys by the token's digest
/// (`K = [u8]`), as anyone can fill it with tokens of the largest size.
pub struct TokenCache<V, K: ?Sized = str> {
    capacity: usize,
    hasher: TailHash,
    /// By the key's [`TailHash`]; a bucket holds the keys that share one (almost always one).
    buckets: HashMap<u64, Vec<Slot<K, V>>>,
    /// Entries held.
    len: usize,
    /// Keys in insertion order; always exactly the keys of `buckets`.
    order: VecDeque<Rc<K>>,
}

/// `a == b`, eight bytes at a time.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut words_a = a.chunks_exact(8);
    let mut words_b = b.chunks_exact(8);
    let words = words_a.by_ref().zip(words_b.by_ref()).all(|(x, y)| {
        match (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) {
            (Ok(x), Ok(y)) => u64::from_ne_bytes(x) == u64::from_ne_bytes(y),
            _ => false,
        }
    });
    words && words_a.remainder() == words_b.remainder()
}

/// A token's key: its BLAKE3 digest, a stable name for it that is not the token. It keys the
/// failed-verification memory, the introspection cache and callout sharing, and what a proxy's
/// workers share about the token, so every use needs collision resistance (a collision would
/// be a wrong hit). BLAKE3 rather than SHA-256: in 32-bit wasm it costs less than half as much
/// (BENCHMARKS.md, "The token's key"), and it is per-token work of every first sight.
/// Log lines name a token differently (SHA-256, which operators can compute: `engine::decide`).
pub fn token_key(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl<V, K> TokenCache<V, K>
where
    K: ?Sized + AsRef<[u8]>,
    for<'a> Rc<K>: From<&'a K>,
{
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            hasher: TailHash::default(),
            buckets: HashMap::with_capacity(capacity),
            len: 0,
            order: VecDeque::with_capacity(capacity),
        }
    }

    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key.as_ref())
    }

    fn slot(&self, key: &K) -> Option<&Slot<K, V>> {
        let bytes = key.as_ref();
        self.buckets
            .get(&self.hash(key))?
            .iter()
            .find(|slot| same_bytes((*slot.key).as_ref(), bytes))
    }

    /// The cached value, or `None` if absent or expired (`now > expires_at`).
    pub fn get(&self, token: &K, now: u64) -> Option<&V> {
        self.slot(token)
            .filter(|slot| now <= slot.expires_at)
            .map(|slot| &slot.value)
    }

    /// Caches `value` until `expires_at`. An already-expired value is not stored; a key already
    /// present keeps its place in the eviction order and takes the new value and expiry.
    pub fn insert(&mut self, token: &K, value: V, expires_at: u64, now: u64) {
        if self.capacity == 0 || now > expires_at {
            return;
        }
        let hash = self.hash(token);
        let bytes = token.as_ref();
        if let Some(slot) = self.buckets.get_mut(&hash).and_then(|bucket| {
            bucket
                .iter_mut()
                .find(|s| same_bytes((*s.key).as_ref(), bytes))
        }) {
            slot.value = value;
            slot.expires_at = expires_at;
            return;
        }
        if self.len >= self.capacity {
            self.make_room(now);
        }
        let key: Rc<K> = Rc::from(token);
        self.order.push_back(Rc::clone(&key));
        self.buckets.entry(hash).or_default().push(Slot {
            key,
            value,
            expires_at,
        });
        self.len = self.len.saturating_add(1);
    }

    /// Drops expired entries, then the oldest until a slack of 1/16 of the capacity is free.
    /// The full sweep is O(capacity) but then at least capacity/16 inserts fit before the next
    /// one, so inserts stay O(1) amortised.
    fn make_room(&mut self, now: u64) {
        for bucket in self.buckets.values_mut() {
            bucket.retain(|slot| now <= slot.expires_at);
        }
        self.buckets.retain(|_, bucket| !bucket.is_empty());
        self.len = self.buckets.values().map(Vec::len).sum();
        let (buckets, hasher) = (&self.buckets, &self.hasher);
        self.order.retain(|key| {
            buckets
                .get(&hasher.hash_one((**key).as_ref()))
                .is_some_and(|bucket| bucket.iter().any(|slot| Rc::ptr_eq(&slot.key, key)))
        });
        let slack = (self.capacity / 16).max(1);
        let target = self.capacity.saturating_sub(slack);
        while self.len > target {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            let hash = self.hash(&oldest);
            if let Some(bucket) = self.buckets.get_mut(&hash) {
                bucket.retain(|slot| !Rc::ptr_eq(&slot.key, &oldest));
                if bucket.is_empty() {
                    self.buckets.remove(&hash);
                }
            }
            self.len = self.len.saturating_sub(1);
        }
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
        self.order.clear();
        self.len = 0;
    }

    /// Entries held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u32) -> String {
        format!("token-{i}")
    }

    /// Keys that share their tail (and length) land in one bucket but are still told apart.
    #[test]
    fn keys_with_one_tail_stay_distinct() {
        let tail = "x".repeat(HASHED_TAIL);
        let mut cache: TokenCache<_> = TokenCache::new(10);
        cache.insert(&format!("a{tail}"), 1, 100, 0);
        cache.insert(&format!("b{tail}"), 2, 100, 0);
        assert_eq!(cache.get(&format!("a{tail}"), 0), Some(&1));
        assert_eq!(cache.get(&format!("b{tail}"), 0), Some(&2));
        assert_eq!(cache.get(&format!("c{tail}"), 0), None);
        assert_eq!(cache.get(&tail, 0), None);
        let mut digests: TokenCache<u8, [u8]> = TokenCache::new(10);
        digests.insert(&[1u8; 32][..], 1, 100, 0);
        assert_eq!(digests.get(&[1u8; 32][..], 0), Some(&1));
        assert_eq!(digests.get(&[2u8; 32][..], 0), None);
    }

    #[test]
    fn same_bytes_is_equality() {
        let a: Vec<u8> = (0..40u8).collect();
        for len in 0..a.len() {
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 1;
                assert!(!same_bytes(&a[..len], &b[..len]));
            }
            assert!(same_bytes(&a[..len], &a[..len]));
            assert!(!same_bytes(&a[..len], &a[..len + 1]));
        }
    }

    #[test]
    fn key_is_blake3() {
        // BLAKE3("abc"), as b3sum and Python's blake3 package compute it.
        let expected = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
        assert_eq!(crate::wire::hex(&token_key("abc")), expected);
    }

    #[test]
    fn entries_expire_at_their_deadline() {
        let mut cache: TokenCache<_> = TokenCache::new(10);
        cache.insert(&k(1), "a", 100, 50);
        assert_eq!(cache.get(&k(1), 50), Some(&"a"));
        assert_eq!(cache.get(&k(1), 100), Some(&"a"));
        assert_eq!(cache.get(&k(1), 101), None);
        assert_eq!(cache.get(&k(2), 50), None);
        cache.insert(&k(3), "late", 10, 11);
        assert_eq!(cache.len(), 1);
        cache.insert(&k(1), "b", 200, 150);
        assert_eq!(cache.get(&k(1), 150), Some(&"b"));
        cache.clear();
        assert!(cache.is_empty() && cache.get(&k(1), 150).is_none());
    }

    #[test]
    fn full_cache_drops_expired_before_oldest() {
        let mut cache: TokenCache<_> = TokenCache::new(4);
        cache.insert(&k(1), 1, 1000, 0);
        cache.insert(&k(2), 2, 10, 0);
        cache.insert(&k(3), 3, 1000, 0);
        cache.insert(&k(4), 4, 1000, 0);
        cache.insert(&k(5), 5, 1000, 20);
        // k(2) expired: it goes, the oldest valid entry stays.
        assert_eq!(cache.get(&k(1), 20), Some(&1));
        assert_eq!(cache.get(&k(2), 5), None);
        assert_eq!(cache.len(), 4);
        cache.insert(&k(6), 6, 1000, 20);
        assert_eq!(cache.get(&k(1), 20), None);
        assert_eq!(cache.get(&k(3), 20), Some(&3));
        assert_eq!(cache.get(&k(6), 20), Some(&6));
    }

    #[test]
    fn memory_stays_bounded_under_churn() {
        let mut cache: TokenCache<_> = TokenCache::new(100);
        for i in 0..10_000u32 {
            let now = u64::from(i / 10);
            cache.insert(&k(i), i, now + u64::from(i % 50), now);
            assert!(cache.len() <= 100);
            assert!(cache.order.len() == cache.len());
            assert_eq!(
                cache.len(),
                cache.buckets.values().map(Vec::len).sum::<usize>()
            );
            // Re-inserting a present key never grows the cache.
            cache.insert(&k(i), i, now + 1, now);
        }
        let now = 999;
        for i in 9_990..10_000u32 {
            if let Some(v) = cache.get(&k(i), now) {
                assert_eq!(*v, i);
            }
        }
        let mut zero: TokenCache<()> = TokenCache::new(0);
        zero.insert(&k(1), (), 10, 0);
        assert!(zero.is_empty());
    }
}

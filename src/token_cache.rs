//! A bounded cache of verified tokens, keyed by the token itself, so a token already seen skips
//! its signature check (never its revocation check: that is the caller's next step).
//!
//! Why the token and not its SHA-256: in wasm, hashing a 1 KB token with SHA-256 cost more than
//! the whole rest of a cached request; a SipHash lookup plus one comparison is several times
//! cheaper, and exact comparison leaves no room for collisions. Only verified tokens enter, so
//! a client cannot fill the cache with its own strings.
//!
//! Entries never outlive their `expires_at` (the token's `exp`). When full, expired entries are
//! dropped first, then the oldest insertions. Memory is bounded by `capacity` entries of at most
//! `limits.max_token_bytes` each.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;

struct Entry<V> {
    value: V,
    expires_at: u64,
}

/// Bounded map from token to a verified value (typically the token's claims). The key is the
/// token itself by default; the failed-verification memory keys by the token's digest
/// (`K = [u8]`), as anyone can fill it with tokens of the largest size.
pub struct TokenCache<V, K: ?Sized = str> {
    capacity: usize,
    entries: HashMap<Rc<K>, Entry<V>>,
    /// Keys in insertion order; always exactly the keys of `entries`.
    order: VecDeque<Rc<K>>,
}

/// The SHA-256 of a token: a stable name for it that is not the token (introspection cache
/// and callout sharing, log lines).
pub fn token_digest(token: &str) -> [u8; 32] {
    hmac_sha256::Hash::hash(token.as_bytes())
}

impl<V, K> TokenCache<V, K>
where
    K: ?Sized + Hash + Eq,
    for<'a> Rc<K>: From<&'a K>,
{
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
        }
    }

    /// The cached value, or `None` if absent or expired (`now > expires_at`).
    pub fn get(&self, token: &K, now: u64) -> Option<&V> {
        self.entries
            .get(token)
            .filter(|entry| now <= entry.expires_at)
            .map(|entry| &entry.value)
    }

    /// Caches `value` until `expires_at`. An already-expired value is not stored; a key already
    /// present keeps its place in the eviction order and takes the new value and expiry.
    pub fn insert(&mut self, token: &K, value: V, expires_at: u64, now: u64) {
        if self.capacity == 0 || now > expires_at {
            return;
        }
        if let Some(entry) = self.entries.get_mut(token) {
            *entry = Entry { value, expires_at };
            return;
        }
        if self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let key: Rc<K> = Rc::from(token);
        self.order.push_back(Rc::clone(&key));
        self.entries.insert(key, Entry { value, expires_at });
    }

    /// Drops expired entries, then the oldest until a slack of 1/16 of the capacity is free.
    /// The full sweep is O(capacity) but then at least capacity/16 inserts fit before the next
    /// one, so inserts stay O(1) amortised.
    fn make_room(&mut self, now: u64) {
        self.entries.retain(|_, entry| now <= entry.expires_at);
        let entries = &self.entries;
        self.order.retain(|key| entries.contains_key(key));
        let slack = (self.capacity / 16).max(1);
        let target = self.capacity.saturating_sub(slack);
        while self.entries.len() > target {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Entries held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u32) -> String {
        format!("token-{i}")
    }

    #[test]
    fn digest_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(token_digest("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
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
            assert!(cache.order.len() == cache.entries.len());
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

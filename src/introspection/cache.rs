//! A bounded cache of introspection answers, keyed by the token's key (`token_cache::token_key`).
//!
//! Introspection is the slow path (a network call per token), so answers are reused, but never
//! longer than they can be true: an active answer lives at most `ttl` and never past the token's
//! or the answer's `exp`; an inactive one lives until the token expires (a revoked token does
//! not come back). An active answer the engine refused (a token for another audience, of
//! another type...) is kept as that refusal, so a repeat neither calls the issuer again nor
//! changes its reason. When full, expired entries go first, then the oldest.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::response::IntrospectionAnswer;
use crate::reason::Reason;

/// A cached verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Cached {
    Active(Rc<IntrospectionAnswer>),
    Inactive,
    /// The issuer said active, but the answer failed the resource server's own checks
    /// (RFC 7662 section 4): denied with this reason.
    Refused(Reason),
}

struct Entry {
    verdict: Cached,
    /// First second at which the entry no longer answers.
    expires_at: u64,
    /// Insertion number, matching this entry's place in the age queue.
    serial: u64,
}

/// Bounded to `capacity` entries; `put` and `get` are O(1) amortised.
pub struct IntrospectionCache {
    capacity: usize,
    entries: HashMap<[u8; 32], Entry>,
    /// Keys oldest first. A queued serial that no longer matches its entry is stale and skipped.
    age: VecDeque<([u8; 32], u64)>,
    next_serial: u64,
    /// No entry expires before this second (a lower bound: it may be stale-low after removals).
    earliest_expiry: u64,
    /// Puts since the last sweep of expired entries: a sweep costs O(capacity) and runs at most
    /// once per `capacity / 2` puts.
    puts_since_sweep: usize,
}

impl IntrospectionCache {
    /// A cache holding at most `capacity` answers (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        IntrospectionCache {
            capacity,
            entries: HashMap::new(),
            age: VecDeque::new(),
            next_serial: 0,
            earliest_expiry: u64::MAX,
            puts_since_sweep: 0,
        }
    }

    /// The cached verdict for `key` at `now`, if one is still valid.
    pub fn get(&self, key: &[u8; 32], now: u64) -> Option<Cached> {
        self.entries
            .get(key)
            .filter(|entry| now < entry.expires_at)
            .map(|entry| entry.verdict.clone())
    }

    /// token_exp: the token's own exp when known (JWT). Inactive answers are cached until the
    /// token's exp (or the answer's exp, or now + ttl when neither is known); active ones for at
    /// most ttl and never past the token's or the answer's exp (an active answer whose exp is
    /// already past is cached as inactive). An active answer that is not valid yet (`nbf`) is
    /// cached as inactive only until its `nbf`. A put always replaces what `key` held before,
    /// even when the new answer is not worth keeping.
    pub fn put(
        &mut self,
        key: [u8; 32],
        answer: IntrospectionAnswer,
        token_exp: Option<u64>,
        ttl_secs: u64,
        now: u64,
    ) {
        let (verdict, expires_at) = lifetime(answer, token_exp, ttl_secs, now);
        self.insert(key, verdict, expires_at, now);
    }

    /// Caches a refusal of an active answer until `until` (the engine knows how long the
    /// reason holds). Replaces what `key` held before.
    pub fn put_refused(&mut self, key: [u8; 32], reason: Reason, until: u64, now: u64) {
        self.insert(key, Cached::Refused(reason), until, now);
    }

    /// Drops what `key` holds: its next lookup asks the issuer again.
    pub fn forget(&mut self, key: &[u8; 32]) {
        self.entries.remove(key);
    }

    fn insert(&mut self, key: [u8; 32], verdict: Cached, expires_at: u64, now: u64) {
        if expires_at <= now || self.capacity == 0 {
            self.entries.remove(&key);
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let serial = self.next_serial;
        self.next_serial = self.next_serial.saturating_add(1);
        self.entries.insert(
            key,
            Entry {
                verdict,
                expires_at,
                serial,
            },
        );
        self.age.push_back((key, serial));
        self.earliest_expiry = self.earliest_expiry.min(expires_at);
        self.puts_since_sweep = self.puts_since_sweep.saturating_add(1);
        // Replaced keys leave stale queue slots; compacting once the queue doubles is amortised O(1).
        if self.age.len() > self.capacity.saturating_mul(2) {
            self.compact_age();
        }
    }

    /// Drops every active answer; inactive ones and refusals stay (a revoked token does not
    /// come back, nor does a refused one become acceptable).
    /// Called when new revocation data is loaded: an answer obtained before a revocation was
    /// published must not outlive it by up to the TTL.
    pub fn forget_active(&mut self) {
        self.entries
            .retain(|_, entry| !matches!(entry.verdict, Cached::Active(_)));
    }

    /// How many entries are held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Frees at least one slot: expired entries when a sweep is due and can find some, else
    /// the oldest entry.
    fn make_room(&mut self, now: u64) {
        if now >= self.earliest_expiry && self.puts_since_sweep >= (self.capacity / 2).max(1) {
            self.entries.retain(|_, entry| now < entry.expires_at);
            self.earliest_expiry = self
                .entries
                .values()
                .map(|entry| entry.expires_at)
                .min()
                .unwrap_or(u64::MAX);
            self.puts_since_sweep = 0;
            self.compact_age();
        }
        while self.entries.len() >= self.capacity {
            let Some((key, serial)) = self.age.pop_front() else {
                // The queue holds every live entry, so this means the map is empty.
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|entry| entry.serial == serial)
            {
                self.entries.remove(&key);
            }
        }
    }

    /// Drops queue slots whose entry was replaced or removed.
    fn compact_age(&mut self) {
        let entries = &self.entries;
        self.age.retain(|(key, serial)| {
            entries
                .get(key)
                .is_some_and(|entry| entry.serial == *serial)
        });
    }
}

/// The verdict to cache for `answer` and the first second it no longer holds.
fn lifetime(
    answer: IntrospectionAnswer,
    token_exp: Option<u64>,
    ttl_secs: u64,
    now: u64,
) -> (Cached, u64) {
    let ttl_end = now.saturating_add(ttl_secs);
    let expired = |exp: Option<u64>| exp.is_some_and(|exp| exp <= now);
    if answer.active && !expired(answer.exp) && !expired(token_exp) {
        if let Some(nbf) = answer.nbf.filter(|nbf| *nbf > now) {
            return (Cached::Inactive, nbf.min(ttl_end));
        }
        let until = [token_exp, answer.exp]
            .into_iter()
            .flatten()
            .fold(ttl_end, u64::min);
        return (Cached::Active(Rc::new(answer)), until);
    }
    // Inactive for good: keep it as long as the token could still be presented.
    let until = [token_exp, answer.exp]
        .into_iter()
        .flatten()
        .find(|exp| *exp > now)
        .unwrap_or(ttl_end);
    (Cached::Inactive, until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> [u8; 32] {
        crate::token_cache::token_key(&format!("token-{n}"))
    }

    fn active(exp: Option<u64>) -> IntrospectionAnswer {
        IntrospectionAnswer {
            active: true,
            exp,
            sub: Some("alice".to_owned()),
            ..IntrospectionAnswer::default()
        }
    }

    fn is_active(cache: &IntrospectionCache, k: &[u8; 32], now: u64) -> bool {
        matches!(cache.get(k, now), Some(Cached::Active(_)))
    }

    #[test]
    fn active_lives_at_most_ttl() {
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), active(None), None, 30, 1000);
        let Some(Cached::Active(answer)) = cache.get(&key(1), 1000) else {
            panic!("not cached");
        };
        assert_eq!(answer.sub.as_deref(), Some("alice"));
        assert!(is_active(&cache, &key(1), 1029));
        assert_eq!(cache.get(&key(1), 1030), None);
    }

    #[test]
    fn active_never_outlives_either_exp() {
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), active(Some(1010)), Some(1020), 60, 1000);
        assert!(is_active(&cache, &key(1), 1009));
        assert_eq!(cache.get(&key(1), 1010), None);
        cache.put(key(2), active(Some(1020)), Some(1005), 60, 1000);
        assert!(is_active(&cache, &key(2), 1004));
        assert_eq!(cache.get(&key(2), 1005), None);
    }

    #[test]
    fn active_with_past_exp_is_cached_inactive() {
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), active(Some(1000)), None, 30, 1000);
        assert_eq!(cache.get(&key(1), 1000), Some(Cached::Inactive));
        assert_eq!(cache.get(&key(1), 1029), Some(Cached::Inactive));
        assert_eq!(cache.get(&key(1), 1030), None);
        cache.put(key(2), active(None), Some(999), 30, 1000);
        assert_eq!(cache.get(&key(2), 1000), Some(Cached::Inactive));
    }

    #[test]
    fn inactive_lives_until_token_exp() {
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), IntrospectionAnswer::default(), Some(5000), 30, 1000);
        assert_eq!(cache.get(&key(1), 4999), Some(Cached::Inactive));
        assert_eq!(cache.get(&key(1), 5000), None);
        // Unknown exp: ttl.
        cache.put(key(2), IntrospectionAnswer::default(), None, 30, 1000);
        assert_eq!(cache.get(&key(2), 1029), Some(Cached::Inactive));
        assert_eq!(cache.get(&key(2), 1030), None);
    }

    #[test]
    fn not_yet_valid_is_inactive_until_nbf() {
        let mut cache = IntrospectionCache::new(4);
        let mut answer = active(Some(2000));
        answer.nbf = Some(1010);
        cache.put(key(1), answer, None, 60, 1000);
        assert_eq!(cache.get(&key(1), 1009), Some(Cached::Inactive));
        assert_eq!(cache.get(&key(1), 1010), None);
    }

    #[test]
    fn put_replaces_even_when_nothing_is_kept() {
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), active(None), None, 30, 1000);
        cache.put(key(1), IntrospectionAnswer::default(), None, 0, 1001);
        assert_eq!(cache.get(&key(1), 1001), None);
        assert!(cache.is_empty());
        cache.put(key(1), active(None), None, 30, 1000);
        cache.put(key(1), IntrospectionAnswer::default(), None, 30, 1001);
        assert_eq!(cache.get(&key(1), 1001), Some(Cached::Inactive));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn zero_capacity_and_zero_ttl_keep_nothing_active() {
        let mut cache = IntrospectionCache::new(0);
        cache.put(key(1), IntrospectionAnswer::default(), Some(5000), 30, 1000);
        assert_eq!(cache.len(), 0);
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), active(Some(5000)), Some(5000), 0, 1000);
        assert_eq!(cache.get(&key(1), 1000), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn overflowing_times_saturate() {
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), active(None), None, u64::MAX, u64::MAX - 1);
        assert!(is_active(&cache, &key(1), u64::MAX - 1));
        assert_eq!(cache.get(&key(1), u64::MAX), None);
    }

    /// Checks one put against every bound, probing each second around each boundary.
    fn check_lifetime(
        now: u64,
        ttl: u64,
        token_exp: Option<u64>,
        answer: IntrospectionAnswer,
    ) -> usize {
        let mut cache = IntrospectionCache::new(2);
        cache.put(key(0), answer.clone(), token_exp, ttl, now);
        let ttl_end = now.saturating_add(ttl);
        let token_valid = token_exp.is_none_or(|e| e > now);
        let mut probes: Vec<u64> = [Some(now), token_exp, answer.exp, answer.nbf, Some(ttl_end)]
            .into_iter()
            .flatten()
            .flat_map(|t| [t.saturating_sub(1), t, t.saturating_add(1)])
            .filter(|t| *t >= now)
            .collect();
        probes.sort_unstable();
        for &t in &probes {
            match cache.get(&key(0), t) {
                Some(Cached::Active(cached)) => {
                    assert!(answer.active);
                    assert!(t < ttl_end, "past ttl");
                    assert!(token_exp.is_none_or(|e| t < e), "past token exp");
                    assert!(answer.exp.is_none_or(|e| t < e), "past answer exp");
                    assert!(answer.nbf.is_none_or(|n| n <= t), "before nbf");
                    assert_eq!(*cached, answer);
                }
                Some(Cached::Inactive) => {
                    // Only when the answer said so or the token was already expired.
                    assert!(!answer.is_active_at(now) || !token_valid);
                    // A token that is merely not valid yet is asked about again once it is.
                    let not_yet = answer.active
                        && token_valid
                        && answer.exp.is_none_or(|e| e > now)
                        && answer.nbf.is_some_and(|n| n > now);
                    if not_yet {
                        assert!(answer.nbf.is_some_and(|n| t < n) && t < ttl_end);
                    }
                }
                Some(Cached::Refused(reason)) => panic!("put never refuses: {reason:?}"),
                None => {}
            }
        }
        // An answer valid now with room to live is kept.
        if answer.is_active_at(now) && token_valid && ttl_end > now {
            assert!(is_active(&cache, &key(0), now));
        }
        probes.len()
    }

    /// Never past exp, never past ttl: many (now, ttl, token exp, answer exp, nbf, active)
    /// tuples around the boundaries, including the ends of the u64 range.
    #[test]
    fn lifetimes_never_exceed_any_bound() {
        let nows = [0u64, 1, 1000, u64::MAX - 2, u64::MAX];
        let ttls = [0u64, 1, 2, 30, 1000, u64::MAX];
        let offsets = [
            None,
            Some(-2i64),
            Some(-1),
            Some(0),
            Some(1),
            Some(2),
            Some(30),
            Some(1000),
        ];
        let mut checked = 0;
        for now in nows {
            let at = |offset: Option<i64>| offset.map(|o| now.saturating_add_signed(o));
            for ttl in ttls {
                for token_off in offsets {
                    for exp_off in offsets {
                        for nbf_off in &offsets[..5] {
                            for active_flag in [true, false] {
                                let mut answer = active(at(exp_off));
                                answer.nbf = at(*nbf_off);
                                answer.active = active_flag;
                                checked += check_lifetime(now, ttl, at(token_off), answer);
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn full_cache_drops_expired_first_then_oldest() {
        let mut cache = IntrospectionCache::new(3);
        cache.put(key(1), active(None), None, 100, 0);
        cache.put(key(2), active(None), None, 10, 0);
        cache.put(key(3), active(None), None, 100, 0);
        // At 20, key 2 has expired: it goes, not the oldest (key 1).
        cache.put(key(4), active(None), None, 100, 20);
        assert_eq!(cache.len(), 3);
        assert!(is_active(&cache, &key(1), 20));
        assert!(is_active(&cache, &key(3), 20));
        assert!(is_active(&cache, &key(4), 20));
        // Nothing expired: the oldest (key 1) goes.
        cache.put(key(5), active(None), None, 100, 21);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key(1), 21), None);
        assert!(is_active(&cache, &key(3), 21));
        // Re-putting makes a key young again.
        cache.put(key(3), active(None), None, 100, 22);
        cache.put(key(6), active(None), None, 100, 22);
        assert!(is_active(&cache, &key(3), 22));
        assert_eq!(cache.get(&key(4), 22), None);
    }

    #[test]
    fn stays_bounded_under_churn() {
        let capacity = 64;
        let mut cache = IntrospectionCache::new(capacity);
        for i in 0..20_000u64 {
            // Mixed lifetimes, repeated keys and a clock that moves.
            let k = key(i % 300);
            let now = i / 7;
            if i % 3 == 0 {
                cache.put(
                    k,
                    IntrospectionAnswer::default(),
                    Some(now + (i % 50)),
                    5,
                    now,
                );
            } else {
                cache.put(k, active(Some(now + (i % 11))), None, 1 + i % 13, now);
            }
            assert!(cache.len() <= capacity);
            assert!(cache.age.len() <= 2 * capacity + 1);
            assert!(cache.age.len() >= cache.entries.len());
        }
        // Every live entry still has its slot in the age queue.
        for (k, entry) in &cache.entries {
            assert!(cache
                .age
                .iter()
                .any(|(qk, s)| qk == k && *s == entry.serial));
        }
    }

    #[test]
    fn refusals_live_until_their_deadline_and_replace_answers() {
        let mut cache = IntrospectionCache::new(4);
        cache.put(key(1), active(None), None, 60, 1000);
        cache.put_refused(key(1), Reason::WrongAudience, 1100, 1000);
        assert_eq!(
            cache.get(&key(1), 1099),
            Some(Cached::Refused(Reason::WrongAudience))
        );
        assert_eq!(cache.get(&key(1), 1100), None);
        cache.put_refused(key(2), Reason::WrongType, 1000, 1000);
        assert_eq!(cache.get(&key(2), 1000), None);
        cache.forget(&key(1));
        assert_eq!(cache.get(&key(1), 1001), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn forget_active_keeps_inactive_answers() {
        let mut cache = IntrospectionCache::new(10);
        cache.put(key(1), active(None), Some(5000), 60, 1000);
        cache.put(key(2), IntrospectionAnswer::default(), Some(5000), 60, 1000);
        cache.put_refused(key(4), Reason::WrongIssuer, 5000, 1000);
        cache.forget_active();
        assert_eq!(cache.get(&key(1), 1001), None);
        assert_eq!(cache.get(&key(2), 1001), Some(Cached::Inactive));
        assert_eq!(
            cache.get(&key(4), 1001),
            Some(Cached::Refused(Reason::WrongIssuer))
        );
        cache.put(key(3), active(None), Some(5000), 60, 1002);
        assert!(matches!(cache.get(&key(3), 1003), Some(Cached::Active(_))));
    }
}

//! Data shared by every VM of a proxy: key-value store with CAS, and shared queues.

use crate::types::Status;
use std::collections::{HashMap, VecDeque};

/// One stored value.
#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    cas: u32,
    /// Use stamp for LRU eviction (larger = more recent).
    used: u64,
}

/// The shared key-value store.
///
/// CAS semantics are Envoy's, or with a byte capacity (Kong's `shm_kv` zone) Kong's ([`SharedData::set`]).
/// Each write gets a fresh non-zero CAS. With a byte capacity the least recently used entries are evicted
/// to make room.
#[derive(Debug, Default)]
pub(crate) struct SharedData {
    entries: HashMap<String, Entry>,
    next_cas: u32,
    clock: u64,
    capacity_bytes: Option<usize>,
    /// Largest value stored (`ProxyConfig::shared_value_limit`).
    value_limit: Option<usize>,
    /// Kong's CAS rule instead of Envoy's (see [`SharedData::set`]).
    kong_cas: bool,
    used_bytes: usize,
    evictions: u64,
}

impl SharedData {
    pub(crate) fn new(capacity_bytes: Option<usize>, value_limit: Option<usize>) -> SharedData {
        SharedData {
            next_cas: 1,
            capacity_bytes,
            value_limit,
            // A capacity means Kong's `shm_kv` zone, which has Kong's CAS rule too.
            kong_cas: capacity_bytes.is_some(),
            ..SharedData::default()
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock = self.clock.saturating_add(1);
        self.clock
    }

    fn fresh_cas(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }

    /// Value and CAS of `key`, or `NotFound`.
    pub(crate) fn get(&mut self, key: &str) -> Result<(Vec<u8>, u32), Status> {
        let stamp = self.tick();
        let entry = self.entries.get_mut(key).ok_or(Status::NotFound)?;
        entry.used = stamp;
        Ok((entry.value.clone(), entry.cas))
    }

    /// Writes `value` under `key`. Envoy: `cas == 0` writes unconditionally, a missing key is
    /// written whatever the `cas`, otherwise `cas` must be the entry's (proxy-wasm-cpp-host
    /// src/shared_data.cc, `SharedData::set`). Kong: `cas` must equal the stored CAS, which is 0
    /// for a missing key (ngx_wasm_module src/common/shm/ngx_wa_shm_kv.c,
    /// `ngx_wa_shm_kv_set_locked`: `if (cas != (n == NULL ? 0 : n->cas))`), so `cas == 0` on an
    /// existing key, or a stale `cas` on an evicted one, is a `CasMismatch`.
    pub(crate) fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        let current = self.entries.get(key).map(|e| e.cas);
        let matches = match current {
            _ if self.kong_cas => cas == current.unwrap_or(0),
            Some(current) => cas == 0 || cas == current,
            None => true,
        };
        if !matches {
            return Err(Status::CasMismatch);
        }
        if self.value_limit.is_some_and(|limit| value.len() > limit) {
            return Err(Status::BadArgument);
        }
        let size = key.len().saturating_add(value.len());
        if self.capacity_bytes.is_some_and(|cap| size > cap) {
            return Err(Status::InternalFailure);
        }
        self.remove(key);
        while self
            .capacity_bytes
            .is_some_and(|cap| self.used_bytes.saturating_add(size) > cap)
        {
            if !self.evict_one() {
                return Err(Status::InternalFailure);
            }
        }
        let stamp = self.tick();
        let new_cas = self.fresh_cas();
        self.used_bytes = self.used_bytes.saturating_add(size);
        self.entries.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                cas: new_cas,
                used: stamp,
            },
        );
        Ok(())
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.used_bytes = self
                .used_bytes
                .saturating_sub(key.len().saturating_add(old.value.len()));
        }
    }

    fn evict_one(&mut self) -> bool {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.used)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => {
                self.remove(&key);
                self.evictions = self.evictions.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Whether this is Kong's `shm_kv` zone (a byte capacity), where a value that cannot be stored
    /// makes the host trap (see `abi/shared.rs`).
    pub(crate) fn is_kong_zone(&self) -> bool {
        self.capacity_bytes.is_some()
    }

    /// Entries evicted so far (Kong profile).
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Number of stored keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Who gets `proxy_on_queue_ready` for a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueOwner {
    pub(crate) worker: usize,
    pub(crate) context_id: u32,
}

#[derive(Debug)]
struct Queue {
    owner: QueueOwner,
    items: VecDeque<Vec<u8>>,
}

/// Shared queues, named per VM id. Re-registering a name keeps its id and moves notifications to the new
/// registrant, as Envoy does.
#[derive(Debug, Default)]
pub(crate) struct SharedQueues {
    by_name: HashMap<(String, String), u32>,
    queues: HashMap<u32, Queue>,
    next_id: u32,
    /// Notifications not yet delivered: (owner, queue id).
    ready: VecDeque<(QueueOwner, u32)>,
}

/// Most items a queue holds; past that `enqueue` fails like a host out of memory would.
const MAX_QUEUE_ITEMS: usize = 100_000;

impl SharedQueues {
    pub(crate) fn register(&mut self, vm_id: &str, name: &str, owner: QueueOwner) -> u32 {
        let key = (vm_id.to_string(), name.to_string());
        if let Some(id) = self.by_name.get(&key).copied() {
            if let Some(queue) = self.queues.get_mut(&id) {
                queue.owner = owner;
            }
            return id;
        }
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        self.by_name.insert(key, id);
        self.queues.insert(
            id,
            Queue {
                owner,
                items: VecDeque::new(),
            },
        );
        id
    }

    pub(crate) fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.by_name
            .get(&(vm_id.to_string(), name.to_string()))
            .copied()
    }

    pub(crate) fn enqueue(&mut self, id: u32, value: &[u8]) -> Result<(), Status> {
        let queue = self.queues.get_mut(&id).ok_or(Status::NotFound)?;
        if queue.items.len() >= MAX_QUEUE_ITEMS {
            return Err(Status::InternalFailure);
        }
        queue.items.push_back(value.to_vec());
        let owner = queue.owner;
        self.ready.push_back((owner, id));
        Ok(())
    }

    pub(crate) fn dequeue(&mut self, id: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queues.get_mut(&id).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    pub(crate) fn take_ready(&mut self) -> Vec<(QueueOwner, u32)> {
        self.ready.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_follows_envoy() {
        let mut data = SharedData::new(None, None);
        assert_eq!(data.get("k"), Err(Status::NotFound));
        assert_eq!(
            data.set("k", b"a", 77),
            Ok(()),
            "a missing key is written whatever the cas"
        );
        let (value, cas) = data.get("k").unwrap();
        assert_eq!(value, b"a");
        assert_ne!(cas, 0);
        assert_eq!(
            data.set("k", b"b", cas.wrapping_add(1)),
            Err(Status::CasMismatch)
        );
        assert_eq!(data.set("k", b"b", cas), Ok(()));
        assert_eq!(
            data.set("k", b"c", cas),
            Err(Status::CasMismatch),
            "the old cas is stale now"
        );
        assert_eq!(data.set("k", b"d", 0), Ok(()), "cas 0 is unconditional");
        assert_eq!(data.get("k").unwrap().0, b"d");
    }

    #[test]
    fn cas_counter_skips_zero() {
        let mut data = SharedData::new(None, None);
        data.next_cas = u32::MAX;
        data.set("a", b"1", 0).unwrap();
        data.set("b", b"1", 0).unwrap();
        assert_eq!(data.get("a").unwrap().1, u32::MAX);
        assert_eq!(data.get("b").unwrap().1, 1);
    }

    #[test]
    fn lru_capacity_evicts_least_recently_used() {
        let mut data = SharedData::new(Some(30), None);
        data.set("k1", &[0; 8], 0).unwrap();
        data.set("k2", &[0; 8], 0).unwrap();
        data.set("k3", &[0; 8], 0).unwrap();
        data.get("k1").unwrap();
        data.set("k4", &[0; 8], 0).unwrap();
        assert!(data.get("k2").is_err(), "k2 was least recently used");
        assert!(data.get("k1").is_ok() && data.get("k3").is_ok() && data.get("k4").is_ok());
        assert_eq!(data.evictions(), 1);
        assert_eq!(data.set("huge", &[0; 64], 0), Err(Status::InternalFailure));
        assert_eq!(data.len(), 3);
    }

    #[test]
    fn kongs_zone_needs_the_stored_cas_even_for_cas_zero() {
        let mut data = SharedData::new(Some(1 << 20), None);
        data.set("k", b"1", 0).unwrap();
        assert_eq!(data.set("k", b"2", 0), Err(Status::CasMismatch));
        let (_, cas) = data.get("k").unwrap();
        data.set("k", b"2", cas).unwrap();
        assert_eq!(data.set("gone", b"1", cas), Err(Status::CasMismatch));
        assert_eq!(data.get("k").unwrap().0, b"2");
    }

    #[test]
    fn queues_register_resolve_enqueue_dequeue() {
        let mut q = SharedQueues::default();
        let owner = QueueOwner {
            worker: 0,
            context_id: 1,
        };
        let id = q.register("vm", "events", owner);
        assert_eq!(q.resolve("vm", "events"), Some(id));
        assert_eq!(q.resolve("vm", "other"), None);
        assert_eq!(q.dequeue(id), Err(Status::Empty));
        assert_eq!(q.enqueue(id.wrapping_add(9), b"x"), Err(Status::NotFound));
        q.enqueue(id, b"x").unwrap();
        let later = QueueOwner {
            worker: 1,
            context_id: 1,
        };
        assert_eq!(q.register("vm", "events", later), id);
        assert_eq!(q.take_ready(), vec![(owner, id)]);
        assert_eq!(q.dequeue(id), Ok(b"x".to_vec()));
        q.enqueue(id, b"y").unwrap();
        assert_eq!(q.take_ready(), vec![(later, id)]);
    }
}

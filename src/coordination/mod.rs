//! Coordination between the worker VMs of one proxy through shared data, so the origin sees
//! about one fetch per interval per proxy rather than one per worker. Pure: the host's shared
//! data is a [`SharedStore`] and time is an argument.
//!
//! Per fetched resource (`<kind>` = [`FetchKind::label`]; `<src>` = 8 hex digits of SHA-256
//! of upstream and path, so two filter configurations never mix their data):
//! - `<prefix><kind>/<src>/lease`: `<holder>:<taken_at>`, taken with compare-and-swap. A worker
//!   whose fetch falls due skips it while another holder's lease is younger than the lease TTL,
//!   so a dead holder blocks nobody for longer than that.
//!   - Key sets: the fetch timeout and one second (only while the holder's fetch is in flight,
//!     so a worker that saw an unknown kid refetches at once).
//!   - Revocation data: one lease for the snapshot and its delta (`snapshot/<src>/lease`), so
//!     the worker that holds the delta request (the origin holds it up to `hold_secs`) is the
//!     one that fetches the snapshot the delta's answer asks for. The holder renews it every
//!     second while it lives ([`Coordinator::renew`], from the tick), whatever is in flight; it
//!     expires [`REVOCATION_LEASE_SECS`] after the last renewal, and the others look again every
//!     [`RECHECK_SECS`]: after a configuration reload (all VMs new) or a crash, a new holder
//!     takes over within a few seconds rather than after a held call's 27 s.
//! - `<prefix><kind>/<src>/data`: the last verified body the holder loaded, with its sequence
//!   number, ETag and fetch time ([`header`]). A body over [`header::CHUNK_BYTES`] (a large
//!   snapshot; [`header::KONG_CHUNK_BYTES`] on Kong) goes to `data/0`, `data/1`, ... instead,
//!   each piece under the same header, so no value exceeds 64 KiB (some hosts refuse larger
//!   values) and on Kong none exceeds one slab page (a value Kong's zone cannot hold traps).
//!   `data` is then left alone: a worker of an older build finds it stale and fetches for
//!   itself rather than loading one piece.
//! - `<prefix><kind>/<src>/version`: the same header without the body (or, for a split body,
//!   with the [`header::Chunked`] table: piece count, length, digest): workers read this small
//!   key every tick and copy the body only when the sequence number changed. A reader takes a
//!   split body only if every piece carries the version's sequence number and the pieces add up
//!   to the table's length and digest: it never mixes two publications; anything else counts
//!   as data lost (the worker fetches for itself).
//!
//! Every body is verified again by each worker's engine (signature, rollback), so shared data
//! is an optimisation, never a source of trust. An entry that is missing (never written, or
//! evicted by Kong's shm zone) only makes a worker fetch for itself.

mod header;
#[cfg(test)]
mod sharing_tests;
#[cfg(test)]
mod tests;
pub mod verdicts;

use std::collections::HashMap;

use crate::config::{Endpoint, HostProfile, Policy};
use crate::engine::{Engine, FetchKind, FetchRequest};
use header::{decode, encode, Chunked, CHUNK_BYTES, KONG_CHUNK_BYTES, MAX_ETAG};

/// The host's key-value store shared by the worker VMs (proxy-wasm shared data).
pub trait SharedStore {
    /// The value of `key` and its CAS token, `None` if absent (or unreadable).
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `key` if `cas` is the entry's current CAS token (0 for a missing entry), else
    /// fails with [`StoreError::CasMismatch`]. Envoy also takes `cas == 0` as "unconditionally"
    /// (proxy-wasm-cpp-host src/shared_data.cc, `SharedData::set`); Kong does not: its CAS must
    /// equal the stored one, 0 only for a missing key (ngx_wasm_module
    /// src/common/shm/ngx_wa_shm_kv.c, `ngx_wa_shm_kv_set_locked`). [`overwrite`] writes on both.
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError>;
}

/// Writes `key` whatever it holds: with CAS 0 (Envoy: unconditional; Kong: a missing key), and
/// on a mismatch (Kong, existing key) once more with the CAS just read.
pub fn overwrite(
    store: &mut (impl SharedStore + ?Sized),
    key: &str,
    value: &[u8],
) -> Result<(), StoreError> {
    match store.set(key, value, 0) {
        Err(StoreError::CasMismatch) => {
            let cas = store.get(key).map_or(0, |(_, cas)| cas);
            store.set(key, value, cas)
        }
        written => written,
    }
}

#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Someone else wrote the entry after it was read.
    CasMismatch,
    /// Any other refusal (zone full, bad key...).
    Other,
}

/// Seconds a worker waits before it looks again while the holder's first fetch is in flight,
/// or before it checks a live revocation lease again.
pub const RECHECK_SECS: u64 = 2;
/// A revocation lease not renewed for this long belongs to a dead holder. The holder renews it
/// once a second from its tick; a host that delays a worker's timers this long (a busy event
/// loop) at worst has two workers fetching for a while.
pub const REVOCATION_LEASE_SECS: u64 = 5;

/// What a worker should do with a fetch that fell due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Fetch it (this worker holds the lease now).
    Fetch,
    /// Another worker holds a live lease and publishes what it fetches: report it with
    /// [`Engine::defer_fetch`] to `until` (the next interval, or shortly while the holder's
    /// first fetch is still in flight).
    Defer { until: u64 },
}

/// What [`Coordinator::sync`] took from shared data, for the adapter's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synced {
    pub kind: FetchKind,
    /// The engine took the body; `false`: already newer, or refused.
    pub loaded: bool,
}

struct Resource {
    key: String,
    /// The lease's key: the resource's own, or for a delta its snapshot's.
    lease_key: String,
    /// Renewed by its holder while it lives (revocation data): others recheck it often.
    renewed: bool,
    lease_ttl: u64,
    /// How long a fresh lease means "the holder's fetch is still in flight".
    in_flight_secs: u64,
    refresh_interval: u64,
}

/// Why a worker cannot take `kind` from shared data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    /// Nothing published yet (or the version evicted) and this worker has no data.
    Unpublished,
    /// A version was published but its data is gone (evicted) or unreadable.
    DataLost,
}

pub struct Coordinator {
    holder: String,
    resources: HashMap<FetchKind, Resource>,
    /// Sequence number of the published body each kind was last synced with.
    synced_seq: HashMap<FetchKind, u64>,
    /// Kinds whose published data could not be read: fetch them regardless of the lease.
    missing: HashMap<FetchKind, Missing>,
    /// ETag of the data the engine holds, per kind (for conditional requests).
    etags: HashMap<FetchKind, String>,
    /// Renewed leases this worker holds, with the second it last wrote each.
    renewing: HashMap<String, u64>,
    /// The largest body written under one key on this host ([`header::KONG_CHUNK_BYTES`]).
    piece_bytes: usize,
}

/// The node id all the workers of one proxy send to the origin (`<prefix>node`): the first
/// worker to configure writes its `candidate` (a random id; the host's own name, such as
/// Envoy's `node.id`, is used directly and never needs this), the others adopt it. Two
/// workers configuring at the same instant may each keep their own until the next configure;
/// an evicted entry is written again. Either costs the fleet view one extra node name, never
/// a fetch.
pub fn shared_node_id(store: &mut impl SharedStore, prefix: &str, candidate: &str) -> String {
    let key = format!("{prefix}node");
    let read = |store: &mut _| {
        SharedStore::get(store, &key)
            .and_then(|(v, _)| String::from_utf8(v).ok())
            .filter(|id| crate::node_id::is_valid(id))
    };
    if let Some(id) = read(store) {
        return id;
    }
    // A refused write (zone full) leaves this worker with its own id: still a valid name.
    let _ = overwrite(store, &key, candidate.as_bytes());
    read(store).unwrap_or_else(|| candidate.to_string())
}

/// 8 hex digits of SHA-256 of upstream, NUL, path.
pub fn source_id(upstream: &str, path: &str) -> String {
    let mut h = hmac_sha256::Hash::new();
    h.update(upstream.as_bytes());
    h.update([0u8]);
    h.update(path.as_bytes());
    h.finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn timeout_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl Coordinator {
    /// `prefix` namespaces every key (`revguard/` on Envoy, `<zone>/` on Kong); `holder`
    /// names this worker in leases (unique per VM: the adapter draws it at random).
    pub fn new(policy: &Policy, prefix: &str, holder: String) -> Coordinator {
        let mut resources = HashMap::new();
        let mut add =
            |kind: FetchKind, endpoint: &Endpoint, lease: Option<&str>, ttl: u64, every: u64| {
                let source = source_id(endpoint.upstream(), endpoint.path());
                let key = format!("{prefix}{}/{source}/", kind.label());
                let renewed = lease.is_some();
                let lease_key = format!("{}lease", lease.unwrap_or(&key));
                resources.insert(
                    kind,
                    Resource {
                        key,
                        lease_key,
                        renewed,
                        lease_ttl: ttl,
                        in_flight_secs: timeout_secs(endpoint.timeout_ms()).saturating_add(2),
                        refresh_interval: every,
                    },
                );
            };
        for (i, issuer) in policy.issuers.iter().enumerate() {
            if let Some(fetch) = &issuer.key_fetch {
                // Only while the holder's fetch is in flight: workers fall due together at
                // the interval, so they still skip; a worker that saw an unknown kid does not.
                let ttl = timeout_secs(fetch.endpoint.timeout_ms()).saturating_add(1);
                let every = fetch.refresh_interval_secs;
                add(FetchKind::Keys(i), &fetch.endpoint, None, ttl, every);
            }
        }
        if let Some(r) = &policy.revocation {
            let source = source_id(r.snapshot.upstream(), r.snapshot.path());
            let lease = format!("{prefix}{}/{source}/", FetchKind::Snapshot.label());
            let ttl = REVOCATION_LEASE_SECS;
            let every = r.refresh_interval_secs;
            add(FetchKind::Snapshot, &r.snapshot, Some(&lease), ttl, every);
            if let Some(delta) = &r.delta {
                add(FetchKind::Delta, delta, Some(&lease), ttl, every);
            }
        }
        Coordinator {
            holder,
            resources,
            synced_seq: HashMap::new(),
            missing: HashMap::new(),
            etags: HashMap::new(),
            renewing: HashMap::new(),
            piece_bytes: match policy.config.host {
                HostProfile::Envoy => CHUNK_BYTES,
                HostProfile::Kong(_) => KONG_CHUNK_BYTES,
            },
        }
    }

    /// The shared-data key `what` (`lease`, `data`, `version`) of `kind`.
    pub fn key(&self, kind: FetchKind, what: &str) -> Option<String> {
        let resource = self.resources.get(&kind)?;
        Some(match what {
            "lease" => resource.lease_key.clone(),
            _ => format!("{}{what}", resource.key),
        })
    }

    /// The ETag of the data in force for `kind`, if known.
    pub fn etag(&self, kind: FetchKind) -> Option<&str> {
        self.etags.get(&kind).map(String::as_str)
    }

    /// `fetch`'s request, conditional on the data in force here (which may have come from
    /// another worker) rather than on what this worker last fetched itself.
    pub fn conditional(&self, fetch: FetchRequest) -> FetchRequest {
        let mut fetch = fetch;
        if let Some(etag) = self.etag(fetch.kind) {
            let headers = &mut fetch.request.headers;
            headers.retain(|(n, _)| n != "if-none-match");
            if !etag.is_empty() {
                headers.push(("if-none-match".to_string(), etag.to_string()));
            }
        }
        fetch
    }

    /// Decides whether this worker fetches `kind` now, taking the lease if so.
    pub fn claim(&mut self, store: &mut impl SharedStore, kind: FetchKind, now: u64) -> Claim {
        let (Some(key), Some(resource)) = (self.key(kind, "lease"), self.resources.get(&kind))
        else {
            return Claim::Fetch;
        };
        let (ttl, in_flight) = (resource.lease_ttl, resource.in_flight_secs);
        let renewed = resource.renewed;
        let recheck = Claim::Defer {
            until: now.saturating_add(RECHECK_SECS),
        };
        // A renewed lease is checked again soon, so a dead holder is replaced quickly.
        let next_interval = if renewed {
            recheck
        } else {
            Claim::Defer {
                until: now.saturating_add(resource.refresh_interval),
            }
        };
        let current = store.get(&key);
        let cas = current.as_ref().map_or(0, |(_, cas)| *cas);
        let other_taken_at = current.as_ref().and_then(|(value, _)| {
            let text = std::str::from_utf8(value).unwrap_or("");
            let (holder, taken) = text.split_once(':').unwrap_or(("", "0"));
            let taken: u64 = taken.parse().unwrap_or(0);
            (holder != self.holder && now < taken.saturating_add(ttl)).then_some(taken)
        });
        // Respect another holder's lease unless what it publishes cannot reach this worker.
        let respect = other_taken_at.is_some_and(|taken| match self.missing.get(&kind) {
            None => true,
            Some(Missing::Unpublished) => now < taken.saturating_add(in_flight),
            Some(Missing::DataLost) => false,
        });
        if respect {
            self.renewing.remove(&key);
            return if self.missing.contains_key(&kind) {
                recheck
            } else {
                next_interval
            };
        }
        let value = format!("{}:{now}", self.holder);
        match store.set(&key, value.as_bytes(), cas) {
            // Someone else took it between our read and write: it fetches.
            Err(_) if current.is_some() && !self.missing.contains_key(&kind) => {
                self.renewing.remove(&key);
                next_interval
            }
            written => {
                if renewed && written.is_ok() {
                    self.renewing.insert(key, now);
                }
                Claim::Fetch
            }
        }
    }

    /// Keeps the renewed leases this worker holds alive: call on every tick. Writes each at
    /// most once a second, and only while the entry still names this worker (a lease taken by
    /// another worker, or evicted, is let go: this worker claims again when a fetch falls due).
    pub fn renew(&mut self, store: &mut impl SharedStore, now: u64) {
        let holder = &self.holder;
        self.renewing.retain(|key, renewed_at| {
            if *renewed_at >= now {
                return true;
            }
            let Some((value, cas)) = store.get(key) else {
                return false;
            };
            let mine = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.split_once(':'))
                .is_some_and(|(name, _)| name == holder.as_str());
            if !mine {
                return false;
            }
            let renewed = store
                .set(key, format!("{holder}:{now}").as_bytes(), cas)
                .is_ok();
            if renewed {
                *renewed_at = now;
            }
            renewed
        });
    }

    /// Whether this worker holds the lease of `kind` (as far as it knows).
    pub fn holds(&self, kind: FetchKind) -> bool {
        self.resources
            .get(&kind)
            .is_some_and(|r| self.renewing.contains_key(&r.lease_key))
    }

    /// Publishes a body this worker fetched and its engine accepted. Returns the number of
    /// failed writes (the data not stored; the version not swapped in after two tries).
    pub fn publish(
        &mut self,
        store: &mut impl SharedStore,
        kind: FetchKind,
        body: &[u8],
        etag: Option<&str>,
        fetched_at: u64,
    ) -> u32 {
        let etag = etag.unwrap_or("");
        self.etags.insert(kind, etag.to_string());
        let (Some(version_key), Some(data_key)) =
            (self.key(kind, "version"), self.key(kind, "data"))
        else {
            return 0;
        };
        let chunked = Chunked::of(body, self.piece_bytes);
        let table = chunked.map(|c| c.encode()).unwrap_or_default();
        let mut failures = 0u32;
        for _ in 0..2 {
            let current = store.get(&version_key);
            let cas = current.as_ref().map_or(0, |(_, cas)| *cas);
            let seq = current
                .as_ref()
                .and_then(|(value, _)| decode(value))
                .map_or(1, |p| p.seq.saturating_add(1));
            // The data first: a version without its data makes readers fetch for themselves.
            let data_written = if chunked.is_some() {
                body.chunks(self.piece_bytes).enumerate().all(|(i, piece)| {
                    let key = format!("{data_key}/{i}");
                    overwrite(store, &key, &encode(seq, fetched_at, "", piece)).is_ok()
                })
            } else {
                overwrite(store, &data_key, &encode(seq, fetched_at, etag, body)).is_ok()
            };
            if !data_written {
                failures = failures.saturating_add(1);
            }
            if store
                .set(&version_key, &encode(seq, fetched_at, etag, &table), cas)
                .is_ok()
            {
                self.synced_seq.insert(kind, seq);
                self.missing.remove(&kind);
                return failures;
            }
        }
        failures.saturating_add(1)
    }

    /// Records the ETag of an answer this worker fetched that did not change its engine (a
    /// 200 of the same generation, or the validator of "no delta yet", which a held request
    /// waits on).
    pub fn note_etag(&mut self, kind: FetchKind, etag: Option<&str>) {
        if let Some(etag) = etag.filter(|e| e.len() <= MAX_ETAG) {
            self.etags.insert(kind, etag.to_string());
        }
    }

    /// Loads whatever other workers published since the last call into `engine`. Cheap when
    /// nothing changed: only the small version keys are read.
    pub fn sync(&mut self, store: &impl SharedStore, engine: &mut Engine, now: u64) -> Vec<Synced> {
        let mut kinds: Vec<FetchKind> = self.resources.keys().copied().collect();
        // Key sets first, then the snapshot before its delta.
        kinds.sort_by_key(|k| match k {
            FetchKind::Keys(i) => (0, *i),
            FetchKind::Snapshot => (1, 0),
            FetchKind::Delta => (2, 0),
        });
        kinds
            .into_iter()
            .filter_map(|kind| self.sync_one(store, kind, engine, now))
            .collect()
    }

    fn sync_one(
        &mut self,
        store: &impl SharedStore,
        kind: FetchKind,
        engine: &mut Engine,
        now: u64,
    ) -> Option<Synced> {
        let version_key = self.key(kind, "version")?;
        let data_key = self.key(kind, "data")?;
        let version = store.get(&version_key);
        let Some(published) = version.as_ref().and_then(|(v, _)| decode(v)) else {
            // Nothing published (or evicted): fine if this worker has the data already.
            let have = match kind {
                FetchKind::Keys(i) => engine
                    .status(now)
                    .key_set_age_secs
                    .get(i)
                    .is_some_and(Option::is_some),
                FetchKind::Snapshot => engine.snapshot_generation().is_some(),
                FetchKind::Delta => true,
            };
            self.set_missing(kind, (!have).then_some(Missing::Unpublished));
            return None;
        };
        let seq = published.seq;
        if self.synced_seq.get(&kind) == Some(&seq) {
            self.set_missing(kind, None);
            return None;
        }
        let body = if published.body.is_empty() {
            read_whole(store, &data_key, seq)
        } else {
            Chunked::decode(published.body).and_then(|t| read_pieces(store, &data_key, seq, t))
        };
        let Some(body) = body else {
            self.set_missing(kind, Some(Missing::DataLost));
            return None;
        };
        let loaded = match kind {
            FetchKind::Keys(i) => {
                let fetched_at = published.fetched_at.min(now);
                engine.load_keys(i, &body, fetched_at).map(|_| {
                    // Fetched by another worker: due again one interval after it was.
                    let interval = engine.refresh_interval(kind);
                    engine.defer_fetch(kind, fetched_at.saturating_add(interval));
                })
            }
            FetchKind::Snapshot => engine.load_snapshot(&body).map(|_| ()),
            FetchKind::Delta => engine.load_delta(&body).map(|_| ()),
        };
        if loaded.is_ok() {
            self.etags.insert(kind, published.etag.to_string());
        }
        // Already newer, or refused: either way there is nothing more to take from it.
        self.synced_seq.insert(kind, seq);
        self.set_missing(kind, None);
        Some(Synced {
            kind,
            loaded: loaded.is_ok(),
        })
    }

    fn set_missing(&mut self, kind: FetchKind, missing: Option<Missing>) {
        match missing {
            Some(why) => self.missing.insert(kind, why),
            None => self.missing.remove(&kind),
        };
    }
}

/// The body published whole under `key` with sequence number `seq`.
fn read_whole(store: &impl SharedStore, key: &str, seq: u64) -> Option<Vec<u8>> {
    let (mut value, _) = store.get(key)?;
    let body_len = decode(&value).filter(|p| p.seq == seq)?.body.len();
    let start = value.len().checked_sub(body_len)?;
    value.drain(..start);
    Some(value)
}

/// The body split over `<key>/0..count`, if every piece belongs to publication `seq` and the
/// whole matches the table.
fn read_pieces(store: &impl SharedStore, key: &str, seq: u64, table: Chunked) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    for i in 0..table.count {
        let (value, _) = store.get(&format!("{key}/{i}"))?;
        let piece = decode(&value).filter(|p| p.seq == seq)?;
        body.extend_from_slice(piece.body);
    }
    table.matches(&body).then_some(body)
}

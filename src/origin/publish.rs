//! Publishing: each committed change becomes a new generation within the debounce; an idle
//! origin re-signs (a heartbeat delta) every `heartbeat_secs`.
//!
//! A generation is, in order: built from a consistent read of the store, committed to the
//! store (bytes and generation in one transaction), recorded in the high-water-mark file
//! (fsync'd), exported (if configured), and only then served. A failure at any step serves
//! nothing new; the next attempt takes the next generation number.
//!
//! Compaction rule: the next generation is a full snapshot (instead of a delta) when there is
//! no snapshot yet, a revocation was removed since the snapshot, the snapshot was signed by
//! another key, a generation jump was requested, the snapshot is `full_snapshot_interval_secs`
//! old, or the delta would hold more than `max(compaction_min_entries,
//! compaction_fraction * snapshot entries)` entries. Entries whose `exp` has passed are
//! dropped from every build.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{watch, Notify};

use super::config::OriginConfig;
use super::error::OriginError;
use super::export;
use super::fleet::Fleet;
use super::metrics::Metrics;
use super::store::{FileKindName, Plan, Publication, Store, StoreState, StoredFile};
use crate::snapshot::{
    build_delta, build_snapshot, snapshot_header, BuildOptions, DeltaOptions, SigningKey,
    MAX_GENERATION,
};

/// A file as served: bytes and a strong ETag.
#[derive(Clone, Debug)]
pub struct ServedFile {
    pub generation: u64,
    pub built_at: u64,
    pub bytes: Bytes,
    pub etag: String,
}

impl ServedFile {
    fn new(file: &StoredFile) -> ServedFile {
        let digest = hmac_sha256::Hash::hash(&file.bytes);
        let short: Vec<u8> = digest.iter().take(8).copied().collect();
        ServedFile {
            generation: file.generation,
            built_at: file.built_at,
            bytes: Bytes::from(file.bytes.clone()),
            etag: format!("\"{}-{}\"", file.generation, crate::wire::hex(&short)),
        }
    }
}

/// What is served now.
#[derive(Clone, Debug, Default)]
pub struct Served {
    pub snapshot: Option<ServedFile>,
    pub delta: Option<ServedFile>,
}

impl Served {
    /// The newest generation served (0 before the first).
    pub fn generation(&self) -> u64 {
        self.delta
            .as_ref()
            .or(self.snapshot.as_ref())
            .map_or(0, |f| f.generation)
    }

    pub fn snapshot_generation(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |f| f.generation)
    }

    pub fn built_at(&self) -> u64 {
        let s = self.snapshot.as_ref().map_or(0, |f| f.built_at);
        let d = self.delta.as_ref().map_or(0, |f| f.built_at);
        s.max(d)
    }
}

/// The publication rules of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub full_snapshot_interval_secs: u64,
    pub compaction_min_entries: u64,
    pub compaction_fraction: f64,
}

/// What to publish next, from the store's state. `heartbeat` publishes even without changes.
pub fn plan(state: &StoreState, rules: &Rules, key_id: [u8; 8], now: u64, heartbeat: bool) -> Plan {
    let Some(snap) = &state.snapshot else {
        return Plan::Full;
    };
    let other_key = snapshot_header(&snap.bytes).map_or(true, |h| h.key_id != key_id);
    let limit =
        (snap.entries as f64 * rules.compaction_fraction).max(rules.compaction_min_entries as f64);
    if state.force_full
        || other_key
        || state.last_removal_change > snap.change_seq
        || now.saturating_sub(snap.built_at) >= rules.full_snapshot_interval_secs
        || state.pending_entries as f64 > limit
    {
        return Plan::Full;
    }
    let newest_change = state
        .delta
        .as_ref()
        .map_or(snap.change_seq, |d| d.change_seq);
    if heartbeat || state.change_seq > newest_change {
        Plan::Delta {
            after_seq: snap.through_seq,
        }
    } else {
        Plan::Nothing
    }
}

pub struct Publisher {
    store: Arc<Store>,
    config: Arc<OriginConfig>,
    key: SigningKey,
    served: watch::Sender<Served>,
    metrics: Arc<Metrics>,
    fleet: Arc<Fleet>,
    /// Serialises publications (the loop and the start-up publish).
    lock: Mutex<()>,
}

pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn random_salt() -> Result<[u8; 32], OriginError> {
    let mut salt = [0u8; 32];
    getrandom::getrandom(&mut salt)
        .map_err(|e| OriginError::Internal(format!("cannot get random bytes: {e}")))?;
    Ok(salt)
}

impl Publisher {
    pub fn new(
        store: Arc<Store>,
        config: Arc<OriginConfig>,
        key: SigningKey,
        metrics: Arc<Metrics>,
        fleet: Arc<Fleet>,
    ) -> Publisher {
        let (served, _) = watch::channel(Served::default());
        Publisher {
            store,
            config,
            key,
            served,
            metrics,
            fleet,
            lock: Mutex::new(()),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Served> {
        self.served.subscribe()
    }

    /// What is served now.
    pub fn current(&self) -> Served {
        self.served.borrow().clone()
    }

    /// Serves what the store holds (at start-up, before or instead of a first publication).
    pub fn load_stored(&self) -> Result<(), OriginError> {
        let (snapshot, delta) = self.store.current_files()?;
        let served = Served {
            snapshot: snapshot.as_ref().map(ServedFile::new),
            delta: delta.as_ref().map(ServedFile::new),
        };
        self.metrics.current(served.generation(), served.built_at());
        self.served.send_replace(served);
        Ok(())
    }

    /// Publishes the next generation if one is due (blocking). Returns it, or `None` when
    /// nothing changed and no heartbeat was asked for.
    pub fn publish_once(&self, now: u64, heartbeat: bool) -> Result<Option<u64>, OriginError> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| OriginError::Internal("the publish lock is poisoned".into()))?;
        let started = Instant::now();
        let rules = Rules {
            full_snapshot_interval_secs: self.config.full_snapshot_interval_secs,
            compaction_min_entries: self.config.compaction_min_entries,
            compaction_fraction: self.config.compaction_fraction,
        };
        let key_id = self.key.key_id();
        let (state, plan, entries) = self
            .store
            .read_for_publish(|s| plan(s, &rules, key_id, now, heartbeat))?;
        if now < state.last_built_at {
            return Err(OriginError::ClockBehind {
                now,
                last_built_at: state.last_built_at,
            });
        }
        let generation = state
            .last_generation
            .max(state.generation_floor)
            .saturating_add(1);
        if generation > MAX_GENERATION {
            return Err(OriginError::GenerationExhausted(generation));
        }
        let live = entries.iter().filter(|e| e.is_live(now)).count() as u64;
        let (kind, file) = match plan {
            Plan::Nothing => return Ok(None),
            Plan::Full => {
                let opts = BuildOptions {
                    generation,
                    built_at: now,
                    max_age_secs: self.config.max_age_secs,
                    fp_rate: self.config.fp_rate,
                    salt: random_salt()?,
                };
                let bytes = build_snapshot(&entries, &opts, &self.key)
                    .map_err(|e| OriginError::Internal(format!("cannot build a snapshot: {e}")))?;
                let file = StoredFile {
                    generation,
                    base_generation: generation,
                    built_at: now,
                    bytes,
                    through_seq: state.max_seq,
                    change_seq: state.change_seq,
                    entries: live,
                };
                (FileKindName::Snapshot, file)
            }
            Plan::Delta { .. } => {
                let Some(base) = &state.snapshot else {
                    return Err(OriginError::Internal("a delta without a snapshot".into()));
                };
                let opts = DeltaOptions {
                    generation,
                    built_at: now,
                    max_age_secs: self.config.max_age_secs,
                };
                let bytes = build_delta(&base.bytes, &entries, &opts, &self.key)
                    .map_err(|e| OriginError::Internal(format!("cannot build a delta: {e}")))?;
                let file = StoredFile {
                    generation,
                    base_generation: base.generation,
                    built_at: now,
                    bytes,
                    through_seq: state.max_seq,
                    change_seq: state.change_seq,
                    entries: live,
                };
                (FileKindName::Delta, file)
            }
        };
        let build_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let published_at_ms = unix_now_ms();
        self.store.commit_publication(&Publication {
            kind,
            file: file.clone(),
            published_at_ms,
            build_ms,
        })?;
        // Committed. From here a failure means "not served yet"; the generation is used.
        export::write_high_water_mark(&self.config.high_water_mark_file, generation)?;
        // What is served is what the store now holds: the new file, and for a delta its base
        // as read in the same transaction (not whatever is served now: an earlier publication
        // may have been committed but not served).
        let served_file = ServedFile::new(&file);
        let next = match kind {
            FileKindName::Snapshot => Served {
                snapshot: Some(served_file),
                delta: None,
            },
            FileKindName::Delta => {
                let current = self.current();
                let base = match (current.snapshot, &state.snapshot) {
                    (Some(s), Some(b)) if s.generation == b.generation => Some(s),
                    (_, b) => b.as_ref().map(ServedFile::new),
                };
                Served {
                    snapshot: base,
                    delta: Some(served_file),
                }
            }
        };
        if let (Some(dir), Some(snap)) = (&self.config.export_dir, &next.snapshot) {
            export::export(
                dir,
                &self.config,
                &snap.bytes,
                next.delta.as_ref().map(|d| d.bytes.as_ref()),
            )?;
        }
        self.served.send_replace(next);
        self.metrics.published(kind.as_str(), generation, now);
        self.fleet
            .published(generation, kind.as_str(), published_at_ms);
        eprintln!(
            "revguard origin: published generation {generation} ({}, {} bytes, {} entries, built in {} ms)",
            kind.as_str(),
            file.bytes.len(),
            file.entries,
            build_ms
        );
        Ok(Some(generation))
    }

    /// The publishing loop: after a commit (`changed` notified), wait the debounce and
    /// publish; otherwise publish a heartbeat every `heartbeat_secs`. Failures are counted,
    /// reported and retried every second.
    pub async fn run(self: Arc<Self>, changed: Arc<Notify>) {
        let debounce = Duration::from_millis(self.config.debounce_ms);
        let heartbeat = Duration::from_secs(self.config.heartbeat_secs);
        let mut last_ok = Instant::now();
        let mut retry = false;
        let mut dirty_since: Option<Instant> = None;
        loop {
            let wait = if retry {
                Duration::from_secs(1)
            } else {
                heartbeat.saturating_sub(last_ok.elapsed())
            };
            let beat = tokio::select! {
                () = changed.notified() => {
                    dirty_since.get_or_insert_with(Instant::now);
                    tokio::time::sleep(debounce).await;
                    retry
                }
                () = tokio::time::sleep(wait) => true,
            };
            let now = match crate_unix_now() {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("revguard origin: {e}");
                    retry = true;
                    continue;
                }
            };
            let me = Arc::clone(&self);
            let result = tokio::task::spawn_blocking(move || me.publish_once(now, beat)).await;
            match result {
                Ok(Ok(published)) => {
                    retry = false;
                    if published.is_some() {
                        last_ok = Instant::now();
                        if let Some(since) = dirty_since.take() {
                            self.metrics
                                .commit_to_publish(since.elapsed().as_secs_f64());
                        }
                    }
                }
                Ok(Err(e)) => {
                    retry = true;
                    self.metrics.publish_error(e.code());
                    eprintln!("revguard origin: publication failed ({}): {e}", e.code());
                }
                Err(e) => {
                    retry = true;
                    self.metrics.publish_error("internal_error");
                    eprintln!("revguard origin: publication task failed: {e}");
                }
            }
        }
    }
}

fn crate_unix_now() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|e| format!("system clock before 1970: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(entries: u64, built_at: u64, change_seq: i64) -> StoredFile {
        let key = SigningKey::from_seed([1; 32]).unwrap();
        let opts = BuildOptions {
            generation: 1,
            built_at,
            max_age_secs: 300,
            fp_rate: 0.001,
            salt: [3; 32],
        };
        StoredFile {
            generation: 1,
            base_generation: 1,
            built_at,
            bytes: build_snapshot(&[], &opts, &key).unwrap(),
            through_seq: 5,
            change_seq,
            entries,
        }
    }

    #[test]
    fn the_compaction_rule() {
        let key_id = SigningKey::from_seed([1; 32]).unwrap().key_id();
        let rules = Rules {
            full_snapshot_interval_secs: 1000,
            compaction_min_entries: 10,
            compaction_fraction: 0.1,
        };
        let mut s = StoreState::default();
        assert_eq!(plan(&s, &rules, key_id, 100, false), Plan::Full);
        s.snapshot = Some(snap(500, 100, 3));
        s.change_seq = 3;
        assert_eq!(plan(&s, &rules, key_id, 100, false), Plan::Nothing);
        assert_eq!(
            plan(&s, &rules, key_id, 100, true),
            Plan::Delta { after_seq: 5 }
        );
        s.change_seq = 4;
        s.pending_entries = 50;
        assert_eq!(
            plan(&s, &rules, key_id, 100, false),
            Plan::Delta { after_seq: 5 }
        );
        s.pending_entries = 51;
        assert_eq!(plan(&s, &rules, key_id, 100, false), Plan::Full);
        s.pending_entries = 1;
        assert_eq!(plan(&s, &rules, key_id, 1100, false), Plan::Full);
        s.last_removal_change = 4;
        assert_eq!(plan(&s, &rules, key_id, 100, false), Plan::Full);
        s.last_removal_change = 0;
        let other = SigningKey::from_seed([2; 32]).unwrap().key_id();
        assert_eq!(plan(&s, &rules, other, 100, false), Plan::Full);
        s.force_full = true;
        assert_eq!(plan(&s, &rules, key_id, 100, false), Plan::Full);
    }
}

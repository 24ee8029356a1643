//! The engine: one per worker (VM or isolate). It owns the validated policy, the key sets, the
//! revocation state and the caches; adapters feed it bytes and time and carry out its decisions.

mod decide;
mod fetch;
mod identity;

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use serde::Serialize;

pub use fetch::{FetchError, FetchKind, FetchRequest, FetchResult};

use crate::config::{ConfigErrors, Policy};
use crate::coordination::verdicts::Sharing;
use crate::coordination::SharedStore;
use crate::introspection::IntrospectionCache;
use crate::jwks::{JwksError, KeySet};
use crate::jwt::Claims;
use crate::reason::Reason;
use crate::snapshot::HashedIds;
use crate::snapshot::{RevocationState, SnapshotError, SnapshotKeys};
use crate::token_cache::TokenCache;

/// Which of an issuer's key sets verified a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// Fetched from `jwks_upstream`: usable only until `max_staleness_secs` after its fetch.
    Fetched,
    /// Given in the configuration: usable as long as the engine lives.
    Inline,
}

impl KeySource {
    /// Its byte in a shared verdict.
    fn byte(self) -> u8 {
        match self {
            KeySource::Fetched => 0,
            KeySource::Inline => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<KeySource> {
        match byte {
            0 => Some(KeySource::Fetched),
            1 => Some(KeySource::Inline),
            _ => None,
        }
    }
}

/// A verified token, as kept in the verified-token cache.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The issuer (index in the policy) and the key set that verified the token: a cached
    /// verification is worth no more than that key set, so a hit is used only while the set
    /// is usable (`Engine::still_usable`). Removal or replacement of the key itself empties
    /// the cache (`Engine::load_keys`).
    pub issuer: usize,
    pub key_set: KeySource,
    pub kid: Option<String>,
    pub claims: Rc<Claims>,
    /// The token's ids hashed with the salt of the snapshot they were last checked against:
    /// repeat requests skip the HMACs until the snapshot's salt changes.
    pub hashed_ids: Cell<Option<([u8; 32], HashedIds)>>,
    /// The token's name in log lines, computed at its first denial or introspection.
    pub log_name: OnceCell<String>,
}

/// Entries in the failed-verification memory: 1024 digests and reasons, about 100 KiB.
const REFUSED_ENTRIES: usize = 1024;

/// Longest a refusal is remembered: it holds for its key sets, which change only on a load
/// (that empties the memory), but a short bound keeps a mistake short.
const REFUSED_TTL_SECS: u64 = 60;

/// A token whose signature step refused it (bad signature, algorithm not allowed for the
/// key, undecodable): deterministic for the same token and key sets, so a replay is refused
/// from here at the cost of a hash and a lookup. Never an infrastructure outcome.
#[derive(Debug)]
pub(crate) struct Refused {
    pub reason: Reason,
    /// The issuer and the key sources tried: the memory answers only while the same ones are
    /// usable (a fetched set gone stale leaves the inline set, or no keys at all, whose
    /// failure mode applies as for any token).
    pub issuer: usize,
    pub sources: Vec<KeySource>,
    pub kid: Option<String>,
    /// The token's name in log lines, computed when it was first refused.
    pub log_name: String,
}

/// Keys fetched from an issuer's upstream.
#[derive(Debug)]
struct FetchedKeys {
    keys: KeySet,
    fetched_at: u64,
    /// [`usable_fingerprint`] of these keys (and the issuer's inline ones, if any): what
    /// `usable_keys_fingerprint` answers while they are fresh.
    usable_fingerprint: [u8; 32],
}

#[derive(Debug, Default)]
struct IssuerState {
    fetched: Option<FetchedKeys>,
    /// A token named a kid we do not know: refetch (at most once per cooldown).
    unknown_kid_seen: bool,
}

pub struct Engine {
    policy: Rc<Policy>,
    issuers: Vec<IssuerState>,
    revocation: Option<RevocationState>,
    verified: TokenCache<Rc<Verified>>,
    /// Failed verifications, keyed by the token's key (`token_cache::token_key`).
    refused: TokenCache<Refused, [u8]>,
    /// Signature steps run (`jwt::verify_inspected` calls): for tests and metrics.
    signature_checks: u64,
    introspected: IntrospectionCache,
    fetches: fetch::Schedule,
    /// Per issuer, the [`key_set_fingerprint`] of its inline keys.
    inline_fingerprints: Vec<Option<[u8; 32]>>,
    /// Per issuer, [`usable_fingerprint`] without fetched keys: what `usable_keys_fingerprint`
    /// answers when none are fresh.
    inline_only_fingerprints: Vec<[u8; 32]>,
    /// Verified tokens and introspection answers shared with the other workers of this proxy
    /// (proxy-wasm hosts), if the adapter gave a store ([`Engine::share_through`]).
    sharing: Option<Sharing>,
    /// Signature steps skipped because another worker's verdict held.
    shared_verdict_hits: u64,
    /// Introspection calls saved by another worker's answer.
    shared_answer_hits: u64,
    /// Sent with revocation fetches: the configured `revocation.node_id`, else the build's
    /// default ([`Engine::set_default_node_id`]).
    node_id: Option<String>,
}

/// Why key-set or revocation data was not loaded. The engine keeps its last good state.
#[non_exhaustive]
#[derive(Debug)]
pub enum LoadError {
    Keys(JwksError),
    Snapshot(SnapshotError),
    NoSuchIssuer(usize),
    /// The configuration has no `revocation` section.
    RevocationNotConfigured,
    /// A delta arrived before any full snapshot.
    NoBaseSnapshot,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Keys(e) => write!(f, "key set rejected: {e}"),
            LoadError::Snapshot(e) => write!(f, "revocation data rejected: {e}"),
            LoadError::NoSuchIssuer(i) => write!(f, "no issuer #{i} in the configuration"),
            LoadError::RevocationNotConfigured => {
                write!(f, "the configuration has no revocation section")
            }
            LoadError::NoBaseSnapshot => write!(f, "a delta arrived before any full snapshot"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Point-in-time state for metrics and `check` output.
#[derive(Debug, Default, Serialize)]
pub struct EngineStatus {
    pub snapshot_generation: Option<u64>,
    pub snapshot_age_secs: Option<u64>,
    pub snapshot_stale: bool,
    /// Per issuer: seconds since its keys were last fetched (None: inline only or never).
    pub key_set_age_secs: Vec<Option<u64>>,
    pub verified_cache_entries: usize,
    pub introspection_cache_entries: usize,
}

impl Engine {
    pub fn new(policy: Rc<Policy>) -> Engine {
        let limits = &policy.config.limits;
        let inline_fingerprints: Vec<Option<[u8; 32]>> = policy
            .issuers
            .iter()
            .zip(&policy.config.issuers)
            .map(|(issuer, config)| {
                let jwks = serde_json::to_vec(config.jwks.as_ref()?).ok()?;
                issuer.inline_keys.as_ref()?;
                Some(key_set_fingerprint(KeySource::Inline, issuer, &jwks))
            })
            .collect();
        let inline_only_fingerprints = inline_fingerprints
            .iter()
            .enumerate()
            .map(|(issuer, inline)| usable_fingerprint(issuer, None, inline.as_ref()))
            .collect();
        Engine {
            issuers: policy
                .issuers
                .iter()
                .map(|_| IssuerState::default())
                .collect(),
            revocation: None,
            verified: TokenCache::new(limits.verified_cache_entries),
            refused: TokenCache::new(REFUSED_ENTRIES),
            signature_checks: 0,
            introspected: IntrospectionCache::new(limits.introspection_cache_entries),
            fetches: fetch::Schedule::new(&policy),
            inline_fingerprints,
            inline_only_fingerprints,
            sharing: None,
            shared_verdict_hits: 0,
            shared_answer_hits: 0,
            node_id: policy
                .config
                .revocation
                .as_ref()
                .and_then(|r| r.node_id.clone()),
            policy,
        }
    }

    /// Parses and validates a configuration document and builds an engine for it.
    pub fn from_config_json(bytes: &[u8]) -> Result<Engine, ConfigErrors> {
        Ok(Engine::new(Rc::new(Policy::from_json(bytes)?)))
    }

    pub fn policy(&self) -> &Rc<Policy> {
        &self.policy
    }

    /// The build's own node id (Envoy's `node.id`, a per-proxy random id...), used unless the
    /// configuration names one. An id that cannot be sent ([`crate::node_id::is_valid`]) is
    /// ignored.
    pub fn set_default_node_id(&mut self, id: &str) {
        let configured = self
            .policy
            .config
            .revocation
            .as_ref()
            .is_some_and(|r| r.node_id.is_some());
        if !configured && crate::node_id::is_valid(id) {
            self.node_id = Some(id.to_string());
        }
    }

    /// The node id sent with revocation fetches.
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    /// Replaces issuer `issuer`'s fetched key set. A set that removes a key, or re-publishes a
    /// `kid` with other material, empties the verified-token cache, so tokens verified by that
    /// key stop working at once (a new token signed by it would be refused). The whole cache:
    /// key changes are rare, and the cost is one re-verification per cached token.
    pub fn load_keys(&mut self, issuer: usize, jwks: &[u8], now: u64) -> Result<usize, LoadError> {
        let Some(policy) = self.policy.issuers.get(issuer) else {
            return Err(LoadError::NoSuchIssuer(issuer));
        };
        let keys = KeySet::from_jwks(jwks, &policy.algorithms).map_err(LoadError::Keys)?;
        let fetched = key_set_fingerprint(KeySource::Fetched, policy, jwks);
        let inline = self.inline_fingerprints.get(issuer).copied().flatten();
        let usable_fingerprint = usable_fingerprint(issuer, Some(&fetched), inline.as_ref());
        let count = keys.len();
        if let Some(state) = self.issuers.get_mut(issuer) {
            let removed_or_replaced = state
                .fetched
                .as_ref()
                .is_some_and(|old| !keys.keeps_every_key_of(&old.keys));
            if removed_or_replaced {
                self.verified.clear();
            }
            // A token refused for its signature or algorithm may verify with the new keys.
            self.refused.clear();
            state.fetched = Some(FetchedKeys {
                keys,
                fetched_at: now,
                usable_fingerprint,
            });
            state.unknown_kid_seen = false;
        }
        Ok(count)
    }

    /// Loads a full snapshot, verified against the configured origin keys; an older generation
    /// is refused. Returns the generation now in force.
    pub fn load_snapshot(&mut self, bytes: &[u8]) -> Result<u64, LoadError> {
        let keys = self
            .policy
            .revocation
            .as_ref()
            .map(|r| &r.keys)
            .ok_or(LoadError::RevocationNotConfigured)?;
        let before = self.snapshot_generation();
        match &mut self.revocation {
            Some(state) => {
                state
                    .apply_snapshot(bytes, keys)
                    .map_err(LoadError::Snapshot)?;
            }
            None => {
                self.revocation =
                    Some(RevocationState::from_snapshot(bytes, keys).map_err(LoadError::Snapshot)?);
            }
        }
        self.new_generation_loaded(before);
        Ok(self.snapshot_generation().unwrap_or(0))
    }

    /// Loads a delta for the current snapshot. Returns the generation now in force.
    pub fn load_delta(&mut self, bytes: &[u8]) -> Result<u64, LoadError> {
        let keys: &SnapshotKeys = self
            .policy
            .revocation
            .as_ref()
            .map(|r| &r.keys)
            .ok_or(LoadError::RevocationNotConfigured)?;
        let state = self.revocation.as_mut().ok_or(LoadError::NoBaseSnapshot)?;
        let before = Some(state.generation());
        state
            .apply_delta(bytes, keys)
            .map_err(LoadError::Snapshot)?;
        self.new_generation_loaded(before);
        Ok(self.snapshot_generation().unwrap_or(0))
    }

    /// Active introspection answers were given before the revocations of a new generation:
    /// a token it revokes is a filter hit again, and a cached "active" must not let it through
    /// for the rest of the TTL, past the propagation bound.
    fn new_generation_loaded(&mut self, before: Option<u64>) {
        if self.snapshot_generation() != before {
            self.introspected.forget_active();
        }
    }

    pub fn snapshot_generation(&self) -> Option<u64> {
        self.revocation.as_ref().map(RevocationState::generation)
    }

    /// Signature steps run since the engine started (key selection, then the crypto library
    /// when a key fits), one per key set tried. Refusals from the claims or from the
    /// failed-verification memory run none.
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks
    }

    /// Shares verified tokens and introspection answers with the other workers of this proxy
    /// through `store` (the host's shared data), under keys starting with `prefix` (as for the
    /// [`crate::coordination::Coordinator`]), in as many slots as `sharing` configures.
    pub fn share_through(&mut self, store: Box<dyn SharedStore>, prefix: &str) {
        let slots = &self.policy.config.sharing;
        let introspection = self.policy.introspection.as_ref().map(|s| {
            // The client is part of the source: an issuer may answer each client differently.
            let path = format!("{}\0{}", s.endpoint.path(), s.client_id);
            (s.endpoint.upstream().to_string(), path)
        });
        self.sharing = Some(Sharing::new(
            store,
            prefix,
            slots.verdict_slots,
            slots.answer_slots,
            introspection
                .as_ref()
                .map(|(u, p)| (u.as_str(), p.as_str())),
        ));
    }

    /// Signature steps skipped since the engine started because another worker had verified
    /// the token under the same key sets.
    pub fn shared_verdict_hits(&self) -> u64 {
        self.shared_verdict_hits
    }

    /// Introspection calls saved since the engine started by another worker's answer.
    pub fn shared_answer_hits(&self) -> u64 {
        self.shared_answer_hits
    }

    pub fn status(&self, now: u64) -> EngineStatus {
        EngineStatus {
            snapshot_generation: self.snapshot_generation(),
            snapshot_age_secs: self
                .revocation
                .as_ref()
                .map(|r| now.saturating_sub(r.built_at())),
            snapshot_stale: self.revocation_is_stale(now),
            key_set_age_secs: self
                .issuers
                .iter()
                .map(|s| s.fetched.as_ref().map(|f| now.saturating_sub(f.fetched_at)))
                .collect(),
            verified_cache_entries: self.verified.len(),
            introspection_cache_entries: self.introspected.len(),
        }
    }

    /// True when revocation is configured and there is no snapshot, or it is too old or dated
    /// in the future.
    fn revocation_is_stale(&self, now: u64) -> bool {
        match (&self.policy.revocation, &self.revocation) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(cfg), Some(state)) => state.is_stale(
                now,
                cfg.max_staleness_secs,
                self.policy.config.clock_skew_secs,
            ),
        }
    }

    /// The key sets usable for issuer `issuer` now: fetched (unless past its max staleness),
    /// then inline.
    fn usable_keys(&self, issuer: usize, now: u64) -> Vec<(KeySource, &KeySet)> {
        let mut sets = Vec::with_capacity(2);
        if let Some(fetched) = self.fresh_fetched_keys(issuer, now) {
            sets.push((KeySource::Fetched, fetched));
        }
        let policy = self.policy.issuers.get(issuer);
        if let Some(inline) = policy.and_then(|p| p.inline_keys.as_ref()) {
            sets.push((KeySource::Inline, inline));
        }
        sets
    }

    /// Issuer `issuer`'s fetched keys, unless never fetched or past their max staleness.
    fn fresh_fetched_keys(&self, issuer: usize, now: u64) -> Option<&KeySet> {
        let fetch = self.policy.issuers.get(issuer)?.key_fetch.as_ref()?;
        let fetched = self.issuers.get(issuer)?.fetched.as_ref()?;
        (now.saturating_sub(fetched.fetched_at) <= fetch.max_staleness_secs)
            .then_some(&fetched.keys)
    }

    /// Fingerprint of the key sets `usable_keys` offers for `issuer` now, in their order: a
    /// token's signature step has the same outcome under equal fingerprints, so a verdict
    /// another worker shares is used only when this matches the one it verified under.
    /// Computed when keys load, not per token.
    fn usable_keys_fingerprint(&self, issuer: usize, now: u64) -> [u8; 32] {
        let fresh = self.fresh_fetched_keys(issuer, now).is_some();
        match self.issuers.get(issuer).and_then(|s| s.fetched.as_ref()) {
            Some(fetched) if fresh => fetched.usable_fingerprint,
            _ => self
                .inline_only_fingerprints
                .get(issuer)
                .copied()
                .unwrap_or_default(),
        }
    }

    /// Whether the key set that verified a cached token is still one `usable_keys` offers.
    /// Runs on every cache hit: a few comparisons, no hashing.
    fn still_usable(&self, verified: &Verified, now: u64) -> bool {
        match verified.key_set {
            KeySource::Inline => true,
            KeySource::Fetched => self.fresh_fetched_keys(verified.issuer, now).is_some(),
        }
    }
}

/// SHA-256 over the issuer and the fingerprints of the key sets `usable_keys` offers, in its
/// order (fetched keys while fresh, then inline keys).
fn usable_fingerprint(
    issuer: usize,
    fetched: Option<&[u8; 32]>,
    inline: Option<&[u8; 32]>,
) -> [u8; 32] {
    let mut h = hmac_sha256::Hash::new();
    h.update((issuer as u64).to_be_bytes());
    if let Some(fetched) = fetched {
        h.update([KeySource::Fetched.byte()]);
        h.update(fetched);
    }
    if let Some(inline) = inline {
        h.update([KeySource::Inline.byte()]);
        h.update(inline);
    }
    h.finalize()
}

/// SHA-256 over where a key set comes from, the issuer, the algorithms its keys may be used
/// with and the JWKS document: equal fingerprints are equal key sets. Workers of one proxy
/// load the same bytes (fetched once, shared), so theirs agree.
fn key_set_fingerprint(
    source: KeySource,
    issuer: &crate::config::IssuerPolicy,
    jwks: &[u8],
) -> [u8; 32] {
    let mut h = hmac_sha256::Hash::new();
    h.update([source.byte()]);
    h.update(issuer.verify.issuer.as_bytes());
    h.update([0u8]);
    for alg in &issuer.algorithms {
        h.update(alg.name().as_bytes());
        h.update(b",");
    }
    h.update([0u8]);
    h.update(jwks);
    h.finalize()
}

//! Verified tokens and introspection answers shared by the worker VMs of one proxy, so a token
//! is verified and introspected once per proxy, not once per worker (issue 15). The rules of
//! use (what a reader accepts, and how) are the engine's (`crate::engine`); this module owns
//! the keys, the value formats and their bounds-checked parsing.
//!
//! Keys come from a fixed set: Envoy's shared data never deletes or evicts an entry
//! (proxy-wasm-cpp-host src/shared_data.cc: `SharedData` is a map that `set` only inserts
//! into or overwrites; the ABI has no delete), so a key per token would grow without bound.
//! - `<prefix>verdict/<slot>`: "the token with this key verified under the key sets with
//!   this fingerprint". `slot` = the digest's first four bytes (big-endian) mod
//!   `sharing.verdict_slots`.
//! - `<prefix>answer/<src>/<slot>`: an introspection answer, as the issuer sent it, with the
//!   second it arrived and the revocation generation in force then. `<src>` names the
//!   introspection endpoint ([`super::source_id`]), so two configurations that ask different
//!   issuers never read each other's answers.
//!
//! Each value carries the full 32-byte token digest: two tokens in one slot are a miss for
//! one of them (the last writer wins the slot), never a wrong hit (the token's key,
//! `token_cache::token_key`, is BLAKE3: collision resistant). Values are written with
//! [`super::overwrite`] (Kong's CAS rule).
//!
//! Trust: the same as for the key sets workers share today. Any code with write access to the
//! shared data (on Envoy, a filter in the same `vm_id`; on Kong, one using the same `shm_kv`
//! zone) could forge a verdict and have a token's signature skipped, but it can already
//! publish a key set of its own (key sets are not signed), which has the same effect. Readers
//! still parse each token and check every claim, type and revocation themselves; a verdict only
//! stands in for the signature step, and only under the reader's own current key sets.
//!
//! Kong's `shm_kv` zone evicts when full (ngx_wasm_module src/common/shm/ngx_wa_shm_kv.c), and
//! some releases trap on a write that finds no room: the entries are bounded (`verdict_slots`
//! values of 74 bytes, `answer_slots` values of at most 50 + [`MAX_ANSWER_BODY`] bytes), and
//! docs/CONFIGURATION.md (`sharing`) and examples/kong/README.md say how much to add to the
//! zone so they never push the snapshot out.

use super::{overwrite, SharedStore};

/// Format version of both values: a reader skips any other. 2: the token's key is BLAKE3 (a
/// worker of an older filter in the same proxy, keyed by SHA-256, is skipped, not misread).
const VERSION: u8 = 2;

/// Largest introspection body shared; a larger answer is cached by its worker only.
pub const MAX_ANSWER_BODY: usize = 2048;

/// version, token digest, key-set fingerprint, exp, key source.
const VERDICT_LEN: usize = 1 + 32 + 32 + 8 + 1;

/// version, token digest, answered at, generation flag and value.
const ANSWER_HEADER_LEN: usize = 1 + 32 + 8 + 1 + 8;

/// "This token's signature verified under these key sets."
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedVerdict {
    /// The token's key (`token_cache::token_key`).
    pub token_key: [u8; 32],
    /// Fingerprint of the issuer's usable key sets when it verified (the engine's).
    pub key_sets: [u8; 32],
    /// The token's `exp`: a reader skips an entry past it without parsing the token, and
    /// otherwise trusts nothing but its own claims check.
    pub exp: u64,
    /// Which of the key sets verified it (the engine's `KeySource`, as a byte).
    pub source: u8,
}

impl SharedVerdict {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(VERDICT_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.token_key);
        out.extend_from_slice(&self.key_sets);
        out.extend_from_slice(&self.exp.to_be_bytes());
        out.push(self.source);
        out
    }

    /// The verdict in `bytes`, if they are exactly one of this version.
    pub fn decode(bytes: &[u8]) -> Option<SharedVerdict> {
        if bytes.len() != VERDICT_LEN {
            return None;
        }
        let mut r = Reader(bytes);
        (r.byte()? == VERSION).then_some(())?;
        let verdict = SharedVerdict {
            token_key: r.array()?,
            key_sets: r.array()?,
            exp: u64::from_be_bytes(r.array()?),
            source: r.byte()?,
        };
        r.0.is_empty().then_some(verdict)
    }
}

/// An introspection answer as another worker received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedAnswer {
    pub token_key: [u8; 32],
    /// The second the answer arrived: its cache lifetime counts from here.
    pub answered_at: u64,
    /// The revocation generation in force when it was cached.
    pub generation: Option<u64>,
    /// The issuer's response body (HTTP 200), parsed again by the reader.
    pub body: Vec<u8>,
}

impl SharedAnswer {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANSWER_HEADER_LEN + self.body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.token_key);
        out.extend_from_slice(&self.answered_at.to_be_bytes());
        out.push(u8::from(self.generation.is_some()));
        out.extend_from_slice(&self.generation.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<SharedAnswer> {
        let mut r = Reader(bytes);
        (r.byte()? == VERSION).then_some(())?;
        let token_key = r.array()?;
        let answered_at = u64::from_be_bytes(r.array()?);
        let has_generation = match r.byte()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let generation = u64::from_be_bytes(r.array()?);
        (r.0.len() <= MAX_ANSWER_BODY).then_some(())?;
        Some(SharedAnswer {
            token_key,
            answered_at,
            generation: has_generation.then_some(generation),
            body: r.0.to_vec(),
        })
    }
}

/// The slot keys of one engine and the store behind them.
pub struct Sharing {
    store: Box<dyn SharedStore>,
    verdict_prefix: String,
    verdict_slots: u32,
    /// `None` without introspection.
    answer_prefix: Option<String>,
    answer_slots: u32,
}

impl Sharing {
    /// `prefix` as for the [`super::Coordinator`]; `introspection`: the endpoint's upstream and
    /// path. 0 slots turn a kind off.
    pub fn new(
        store: Box<dyn SharedStore>,
        prefix: &str,
        verdict_slots: u32,
        answer_slots: u32,
        introspection: Option<(&str, &str)>,
    ) -> Sharing {
        Sharing {
            store,
            verdict_prefix: format!("{prefix}verdict/"),
            verdict_slots,
            answer_prefix: introspection.map(|(upstream, path)| {
                format!("{prefix}answer/{}/", super::source_id(upstream, path))
            }),
            answer_slots,
        }
    }

    pub fn verdicts_on(&self) -> bool {
        self.verdict_slots > 0
    }

    pub fn answers_on(&self) -> bool {
        self.answer_slots > 0 && self.answer_prefix.is_some()
    }

    /// The verdict stored for `token_key`, if its slot holds one for this token.
    pub fn verdict(&self, token_key: &[u8; 32]) -> Option<SharedVerdict> {
        let key = slot_key(&self.verdict_prefix, self.verdict_slots, token_key)?;
        let (value, _) = self.store.get(&key)?;
        SharedVerdict::decode(&value).filter(|v| v.token_key == *token_key)
    }

    /// Writes `verdict` to its slot. A refused write (Kong's zone full) is only a lost
    /// optimisation: `false` for the metrics.
    pub fn publish_verdict(&mut self, verdict: &SharedVerdict) -> bool {
        let Some(key) = slot_key(&self.verdict_prefix, self.verdict_slots, &verdict.token_key)
        else {
            return false;
        };
        overwrite(&mut *self.store, &key, &verdict.encode()).is_ok()
    }

    /// The answer stored for `token_key`, if its slot holds one for this token.
    pub fn answer(&self, token_key: &[u8; 32]) -> Option<SharedAnswer> {
        let prefix = self.answer_prefix.as_deref()?;
        let key = slot_key(prefix, self.answer_slots, token_key)?;
        let (value, _) = self.store.get(&key)?;
        SharedAnswer::decode(&value).filter(|a| a.token_key == *token_key)
    }

    /// Writes `answer` to its slot, unless its body is too large to share.
    pub fn publish_answer(&mut self, answer: &SharedAnswer) -> bool {
        let Some(prefix) = self.answer_prefix.as_deref() else {
            return false;
        };
        let Some(key) = slot_key(prefix, self.answer_slots, &answer.token_key) else {
            return false;
        };
        if answer.body.len() > MAX_ANSWER_BODY {
            return false;
        }
        overwrite(&mut *self.store, &key, &answer.encode()).is_ok()
    }
}

/// `<prefix><slot>`, `None` when the kind is off.
fn slot_key(prefix: &str, slots: u32, token_key: &[u8; 32]) -> Option<String> {
    let first = token_key.first_chunk::<4>()?;
    let slot = u32::from_be_bytes(*first).checked_rem(slots)?;
    Some(format!("{prefix}{slot}"))
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

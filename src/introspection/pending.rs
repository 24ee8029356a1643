//! Introspection calls in flight: one call per token, shared by every request that carries it.
//!
//! Pure bookkeeping, the same in every build that keeps requests waiting (the proxy-wasm filter,
//! the edge build): who waits for which token's call, which call answers which token, who
//! dispatched it, and what to do when that dispatcher goes away or the answer never comes.
//! No clock and no host calls: times are arguments, and the adapter performs what the table
//! says (send a call, resume waiters, send again).
//!
//! A call's life:
//! 1. [`Callouts::register`]: the first waiter for a token gets [`Registered::Send`] and becomes
//!    the call's owner; the adapter sends [`Callouts::request`] and reports [`Callouts::sent`]
//!    with the host's call id, or [`Callouts::send_failed`]. Later waiters for the same token
//!    get [`Registered::Joined`].
//! 2. [`Callouts::complete`] with the call id hands back every waiter, to be resumed with the
//!    answer. A duplicate, stale or unknown call id hands back nothing.
//! 3. [`Callouts::leave`]: a waiter went away (its stream ended). If it owned the call, the host
//!    may drop the answer; [`Callouts::sweep`] then reports the call as orphaned, and whoever
//!    takes over (a live context) sends it again and reports [`Callouts::sent`] as the new
//!    owner. A call past its timeout plus a grace period is expired by the sweep: its waiters
//!    are finished as a failed call.

use std::collections::{BTreeMap, HashMap};

use crate::http::HttpRequest;

/// The token key of a pending introspection (`PendingIntrospection::token_key`).
pub type TokenKey = [u8; 32];

/// The key waiter `waiter` registers under for token `key`. Where one context can act on
/// another's request (Envoy: `proxy_set_effective_context` switches the stream later hostcalls
/// act on), every request carrying the token joins one call: the token's key. Where it cannot,
/// each request has its own call: Kong's ngx_wasm_module answers `proxy_set_effective_context`
/// with Ok and does nothing (src/common/proxy_wasm/ngx_proxy_wasm_host.c,
/// `ngx_proxy_wasm_hfuncs_set_effective_context`), so an answer delivered to one request could
/// only ever resume that request, and a joined one would wait until Kong times it out.
pub fn group_key(key: TokenKey, waiter: u32, joinable: bool) -> TokenKey {
    if joinable {
        return key;
    }
    let mut hash = hmac_sha256::Hash::new();
    hash.update(key);
    hash.update(waiter.to_be_bytes());
    hash.finalize()
}

/// What [`Callouts::register`] asks of the adapter.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered<W> {
    /// The first waiter for this token, now the call's owner: send [`Callouts::request`] and
    /// report [`Callouts::sent`] (or [`Callouts::send_failed`]).
    Send,
    /// A call for this token is in flight already: the waiter waits for its answer.
    Joined,
    /// Not registered (the table is full, or a waiter with this id is waiting already): finish
    /// the waiter at once as a failed call.
    Refused(W),
}

/// The waiters of a finished call, in the order they registered.
#[derive(Debug, PartialEq, Eq)]
pub struct Finished<W> {
    pub key: TokenKey,
    pub waiters: Vec<(u32, W)>,
    /// When the call was first registered (for latency).
    pub started_ms: u64,
}

/// What [`Callouts::sweep`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Swept<W> {
    /// Past its timeout plus the grace period: finish the waiters as a failed call.
    Expired(Finished<W>),
    /// Its owner went away while waiters remain: send [`Callouts::request`] again from a live
    /// context and report [`Callouts::sent`] with that context as the owner, or
    /// [`Callouts::send_failed`]. An answer to the old call id is no longer accepted.
    Orphaned(TokenKey),
}

#[derive(Debug)]
struct Callout<W> {
    waiters: Vec<(u32, W)>,
    /// Kept to send again if the owner goes away.
    request: HttpRequest,
    started_ms: u64,
    /// The call id the answer will carry; `None` until sent (or after the owner left).
    call: Option<u32>,
    /// Who dispatched the call (the host delivers the answer to it); `None`: gone.
    owner: Option<u32>,
}

/// The introspection calls in flight and their waiters. `W` is what the adapter needs to
/// resume a waiter (the pending decision and the request).
#[derive(Debug)]
pub struct Callouts<W> {
    by_key: BTreeMap<TokenKey, Callout<W>>,
    by_call: HashMap<u32, TokenKey>,
    /// Waiter id -> the token it waits for.
    by_waiter: HashMap<u32, TokenKey>,
    max_waiters: usize,
}

/// No limit on waiters: a host that bounds its streams bounds the table.
impl<W> Default for Callouts<W> {
    fn default() -> Self {
        Callouts::new(usize::MAX)
    }
}

impl<W> Callouts<W> {
    /// An empty table that holds at most `max_waiters` waiters.
    pub fn new(max_waiters: usize) -> Callouts<W> {
        Callouts {
            by_key: BTreeMap::new(),
            by_call: HashMap::new(),
            by_waiter: HashMap::new(),
            max_waiters,
        }
    }

    /// Registers waiter `id` for the call about token `key`, which `request` describes. Ids
    /// are the adapter's (a stream's context id, a request id) and unique among waiters.
    pub fn register(
        &mut self,
        key: TokenKey,
        id: u32,
        waiter: W,
        request: HttpRequest,
        now_ms: u64,
    ) -> Registered<W> {
        if self.by_waiter.len() >= self.max_waiters || self.by_waiter.contains_key(&id) {
            return Registered::Refused(waiter);
        }
        self.by_waiter.insert(id, key);
        if let Some(callout) = self.by_key.get_mut(&key) {
            callout.waiters.push((id, waiter));
            return Registered::Joined;
        }
        self.by_key.insert(
            key,
            Callout {
                waiters: vec![(id, waiter)],
                request,
                started_ms: now_ms,
                call: None,
                owner: Some(id),
            },
        );
        Registered::Send
    }

    /// The call to send for `key` (after [`Registered::Send`] or [`Swept::Orphaned`]).
    pub fn request(&self, key: &TokenKey) -> Option<&HttpRequest> {
        self.by_key.get(key).map(|c| &c.request)
    }

    /// The call for `key` was sent as `call` by `owner`, whose going away orphans it. An
    /// earlier call id for `key` is forgotten.
    pub fn sent(&mut self, key: &TokenKey, call: u32, owner: u32) {
        let Some(callout) = self.by_key.get_mut(key) else {
            return;
        };
        if let Some(old) = callout.call.replace(call) {
            self.by_call.remove(&old);
        }
        callout.owner = Some(owner);
        self.by_call.insert(call, *key);
    }

    /// The call for `key` could not be sent: every waiter, to finish as a failed call.
    pub fn send_failed(&mut self, key: &TokenKey) -> Option<Finished<W>> {
        self.remove(key)
    }

    /// The answer to `call` arrived: the waiters to resume with it. `None` for a call id this
    /// table does not know (answered already, replaced by a later send, or never sent).
    pub fn complete(&mut self, call: u32) -> Option<Finished<W>> {
        let key = self.by_call.remove(&call)?;
        self.remove(&key)
    }

    /// The call id a waiter for `key` waits on, once sent.
    pub fn call_of(&self, key: &TokenKey) -> Option<u32> {
        self.by_key.get(key).and_then(|c| c.call)
    }

    /// Waiter (or owner) `id` went away: it no longer waits, and a call it owned is orphaned
    /// (reported by the next [`Callouts::sweep`]). Returns its waiter, if it was waiting.
    pub fn leave(&mut self, id: u32) -> Option<W> {
        for callout in self.by_key.values_mut() {
            if callout.owner == Some(id) {
                callout.owner = None;
            }
        }
        let key = self.by_waiter.remove(&id)?;
        let callout = self.by_key.get_mut(&key)?;
        let at = callout.waiters.iter().position(|(w, _)| *w == id)?;
        Some(callout.waiters.remove(at).1)
    }

    /// Calls that need the adapter at `now_ms`: past their request's timeout plus `grace_ms`
    /// (expired, removed), or orphaned (to send again). Calls that nobody waits for and
    /// nobody owns are dropped silently.
    pub fn sweep(&mut self, now_ms: u64, grace_ms: u64) -> Vec<Swept<W>> {
        let mut expired = Vec::new();
        let mut orphaned = Vec::new();
        let mut dropped = Vec::new();
        for (key, callout) in &mut self.by_key {
            let limit = callout.request.timeout_ms.saturating_add(grace_ms);
            if callout.waiters.is_empty() && callout.owner.is_none() {
                dropped.push(*key);
            } else if now_ms.saturating_sub(callout.started_ms) > limit {
                expired.push(*key);
            } else if callout.owner.is_none() {
                if let Some(call) = callout.call.take() {
                    self.by_call.remove(&call);
                }
                orphaned.push(*key);
            }
        }
        for key in &dropped {
            self.remove(key);
        }
        let mut swept: Vec<Swept<W>> = expired
            .iter()
            .filter_map(|key| self.remove(key))
            .map(Swept::Expired)
            .collect();
        swept.extend(orphaned.into_iter().map(Swept::Orphaned));
        swept
    }

    /// How many requests wait.
    pub fn waiting(&self) -> usize {
        self.by_waiter.len()
    }

    /// Whether call id `call` is expected to answer.
    pub fn is_in_flight(&self, call: u32) -> bool {
        self.by_call.contains_key(&call)
    }

    /// Whether waiter `id` is waiting.
    pub fn is_waiting(&self, id: u32) -> bool {
        self.by_waiter.contains_key(&id)
    }

    /// Forgets every call and waiter (a new configuration).
    pub fn clear(&mut self) {
        self.by_key.clear();
        self.by_call.clear();
        self.by_waiter.clear();
    }

    fn remove(&mut self, key: &TokenKey) -> Option<Finished<W>> {
        let callout = self.by_key.remove(key)?;
        if let Some(call) = callout.call {
            self.by_call.remove(&call);
        }
        for (id, _) in &callout.waiters {
            self.by_waiter.remove(id);
        }
        Some(Finished {
            key: *key,
            waiters: callout.waiters,
            started_ms: callout.started_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_join_one_call_only_where_the_host_lets_a_context_act_for_another() {
        let mut t = Callouts::new(8);
        let (a, b) = (group_key(A, 7, true), group_key(A, 8, true));
        assert_eq!((a, b), (A, A));
        assert_eq!(t.register(a, 7, 'a', call(500), 0), Registered::Send);
        assert_eq!(t.register(b, 8, 'b', call(500), 0), Registered::Joined);
        // Kong: one call per request, and a stream that leaves takes its call with it.
        let mut t = Callouts::new(8);
        let (a, b) = (group_key(A, 7, false), group_key(A, 8, false));
        assert_ne!(a, b);
        assert_ne!(a, A);
        assert_eq!(group_key(A, 7, false), a, "stable for one waiter");
        assert_eq!(t.register(a, 7, 'a', call(500), 0), Registered::Send);
        assert_eq!(t.register(b, 8, 'b', call(500), 0), Registered::Send);
        t.sent(&a, 70, 7);
        t.leave(7);
        assert!(
            t.sweep(10, 1000).is_empty(),
            "nothing to rescue for another stream"
        );
        assert_eq!(t.waiting(), 1);
    }

    const A: TokenKey = [1; 32];
    const B: TokenKey = [2; 32];
    const ROOT: u32 = 1;

    fn call(timeout_ms: u64) -> HttpRequest {
        HttpRequest {
            upstream: "idp".into(),
            headers: vec![(":path".into(), "/introspect".into())],
            body: b"token=t".to_vec(),
            timeout_ms,
        }
    }

    fn table() -> Callouts<&'static str> {
        Callouts::new(100)
    }

    fn ids<W>(finished: &Finished<W>) -> Vec<u32> {
        finished.waiters.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn the_first_waiter_sends_later_ones_join_completion_resumes_all() {
        let mut t = table();
        assert_eq!(t.register(A, 10, "a10", call(500), 0), Registered::Send);
        assert_eq!(t.request(&A).map(|r| r.timeout_ms), Some(500));
        t.sent(&A, 7, 10);
        assert_eq!(t.register(A, 11, "a11", call(500), 5), Registered::Joined);
        assert_eq!(t.register(B, 12, "b12", call(500), 5), Registered::Send);
        assert_eq!(t.call_of(&A), Some(7));
        assert!(t.is_in_flight(7) && !t.is_in_flight(8));
        assert_eq!(t.call_of(&B), None, "not sent yet");
        assert_eq!(t.waiting(), 3);
        let done = t.complete(7).unwrap();
        assert_eq!(done.key, A);
        assert_eq!(done.waiters, vec![(10, "a10"), (11, "a11")]);
        assert_eq!(done.started_ms, 0);
        assert_eq!(t.waiting(), 1);
        assert!(!t.is_waiting(10) && t.is_waiting(12));
        // The next request with token A starts a new call.
        assert_eq!(t.register(A, 13, "a13", call(500), 9), Registered::Send);
    }

    #[test]
    fn duplicate_and_unknown_call_ids_resume_nobody() {
        let mut t = table();
        assert_eq!(t.complete(99), None, "never sent");
        t.register(A, 10, "a10", call(500), 0);
        t.sent(&A, 7, 10);
        assert!(t.complete(7).is_some());
        assert_eq!(t.complete(7), None, "answered already");
        // A new call for the same token is not finished by the old id.
        t.register(A, 11, "a11", call(500), 1);
        t.sent(&A, 8, 11);
        assert_eq!(t.complete(7), None);
        assert_eq!(ids(&t.complete(8).unwrap()), vec![11]);
    }

    #[test]
    fn a_waiter_that_leaves_is_not_resumed() {
        let mut t = table();
        t.register(A, 10, "a10", call(500), 0);
        t.sent(&A, 7, 10);
        t.register(A, 11, "a11", call(500), 0);
        assert_eq!(t.leave(11), Some("a11"));
        assert_eq!(t.leave(11), None, "left already");
        assert_eq!(t.leave(42), None, "never waited");
        assert_eq!(ids(&t.complete(7).unwrap()), vec![10]);
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn the_owner_leaving_orphans_the_call_and_a_live_context_takes_over() {
        let mut t = table();
        t.register(A, 10, "a10", call(500), 0);
        t.sent(&A, 7, 10);
        t.register(A, 11, "a11", call(500), 0);
        assert_eq!(t.leave(10), Some("a10"));
        assert_eq!(t.sweep(100, 1000), vec![Swept::Orphaned(A)]);
        // The old call's answer is no longer expected (the host may deliver it nowhere).
        assert_eq!(t.complete(7), None);
        assert_eq!(
            t.request(&A).map(|r| r.body.clone()),
            Some(b"token=t".to_vec())
        );
        t.sent(&A, 8, ROOT);
        assert_eq!(t.sweep(200, 1000), vec![], "owned again");
        let done = t.complete(8).unwrap();
        assert_eq!(done.waiters, vec![(11, "a11")]);
        assert_eq!(done.started_ms, 0, "latency counts from the first send");
    }

    #[test]
    fn completion_after_the_owner_left_still_resumes_the_others() {
        // The host delivered the answer before the sweep noticed the owner was gone.
        let mut t = table();
        t.register(A, 10, "a10", call(500), 0);
        t.sent(&A, 7, 10);
        t.register(A, 11, "a11", call(500), 0);
        t.leave(10);
        assert_eq!(ids(&t.complete(7).unwrap()), vec![11]);
        assert_eq!(t.sweep(100, 1000), vec![]);
    }

    #[test]
    fn an_orphaned_call_nobody_waits_for_is_dropped() {
        let mut t = table();
        t.register(A, 10, "a10", call(500), 0);
        t.sent(&A, 7, 10);
        t.leave(10);
        assert_eq!(t.sweep(100, 1000), vec![]);
        assert_eq!(t.complete(7), None);
        assert_eq!(t.request(&A), None);
        // A call whose owner lives on is kept even without waiters: its answer fills the cache.
        t.register(B, 11, "b11", call(500), 0);
        t.sent(&B, 8, ROOT);
        t.leave(11);
        assert_eq!(t.sweep(100, 1000), vec![]);
        assert!(t.complete(8).is_some());
    }

    #[test]
    fn calls_past_timeout_and_grace_expire() {
        let mut t = table();
        t.register(A, 10, "a10", call(500), 1_000);
        t.sent(&A, 7, 10);
        t.register(B, 11, "b11", call(2_000), 1_000);
        t.sent(&B, 8, 11);
        assert_eq!(t.sweep(2_500, 1_000), vec![], "at the limit, not past it");
        let swept = t.sweep(2_501, 1_000);
        assert_eq!(
            swept,
            vec![Swept::Expired(Finished {
                key: A,
                waiters: vec![(10, "a10")],
                started_ms: 1_000
            })]
        );
        assert_eq!(t.complete(7), None, "a late answer finds nobody");
        assert!(t.is_waiting(11));
        // An orphan past its time expires rather than being sent again.
        t.leave(11);
        t.register(B, 12, "b12", call(2_000), 4_000);
        assert_eq!(t.sweep(10_000, 1_000).len(), 1);
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn a_send_failure_hands_back_every_waiter() {
        let mut t = table();
        assert_eq!(t.register(A, 10, "a10", call(500), 0), Registered::Send);
        assert_eq!(t.register(A, 11, "a11", call(500), 0), Registered::Joined);
        assert_eq!(ids(&t.send_failed(&A).unwrap()), vec![10, 11]);
        assert_eq!(t.send_failed(&A), None);
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn full_tables_and_duplicate_waiters_are_refused() {
        let mut t = Callouts::new(2);
        assert_eq!(t.register(A, 10, "a10", call(500), 0), Registered::Send);
        assert_eq!(
            t.register(A, 10, "again", call(500), 0),
            Registered::Refused("again")
        );
        assert_eq!(t.register(B, 11, "b11", call(500), 0), Registered::Send);
        assert_eq!(
            t.register(A, 12, "a12", call(500), 0),
            Registered::Refused("a12")
        );
        t.leave(11);
        assert_eq!(t.register(A, 12, "a12", call(500), 0), Registered::Joined);
        t.clear();
        assert_eq!(t.waiting(), 0);
        assert_eq!(t.register(A, 10, "a10", call(500), 0), Registered::Send);
    }
}

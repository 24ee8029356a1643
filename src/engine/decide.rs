//! The decision for one request. Order: cheap before expensive (route, token present and
//! well-formed, cached verification or header, key, signature, claims), then revocation
//! (exact tables, then the filter, then introspection where the filter hits), then the route's
//! requirements.

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use super::{Engine, KeySource, Refused, Verified, REFUSED_TTL_SECS};
use crate::config::{FailMode, IntrospectionPolicy, OpaqueTokens, RouteRule, StaleMode};
use crate::coordination::verdicts::{SharedAnswer, SharedVerdict};
use crate::decision::{Decision, DecisionLog, Introspect, PendingIntrospection};
use crate::extract::{extract, Extracted};
use crate::http::HttpOutcome;
use crate::introspection::{
    build_request, parse_response, Cached, IntrospectionAnswer, IntrospectionError,
};
use crate::jwt::{self, Claims, TokenError};
use crate::path;
use crate::reason::Reason;
use crate::request::RequestView;
use crate::routes;
use crate::snapshot::{IdKind, TokenIds, Verdict};
use crate::token_cache::token_key;

/// Why a token not seen before was not verified.
enum Unverified {
    /// Deny for this reason.
    Refused(Reason),
    /// An infrastructure failure (no usable keys) that the configuration lets through.
    LetThrough(Reason),
}

/// Where the revocation step leaves a verified token.
enum Revocation {
    Clear,
    /// Let through by the stale-data failure mode.
    ClearFailOpen,
    Denied(Reason),
    /// Confirm with the issuer; `None` when no snapshot hit asked for it (policy or staleness).
    Confirm(Option<IdKind>),
}

impl Engine {
    /// Decides one request at time `now` (Unix seconds).
    pub fn decide(&mut self, req: &RequestView, now: u64) -> Decision {
        let policy = Rc::clone(&self.policy);
        let config = &policy.config;
        let default_route = &config.default_route;
        if !routes::is_canonical_method(req.method) {
            return self.deny(
                Reason::InvalidRequest,
                default_route,
                DecisionLog::default(),
            );
        }
        let Ok(target) = path::normalize(req.path, &config.path_normalization) else {
            return self.deny(Reason::InvalidPath, default_route, DecisionLog::default());
        };
        let Ok(route_index) = routes::select_index(config, req.method, &target) else {
            return self.deny(Reason::InvalidPath, default_route, DecisionLog::default());
        };
        let decision = self.decide_on_route(req, route_index, now);
        self.for_upstream(decision, target.forward)
    }

    /// The decision for a request whose method and path passed, under rule `route_index`.
    fn decide_on_route(
        &mut self,
        req: &RequestView,
        route_index: Option<usize>,
        now: u64,
    ) -> Decision {
        let policy = Rc::clone(&self.policy);
        let config = &policy.config;
        let route = routes::rule(config, route_index);
        let mut log = DecisionLog {
            route: route.name.clone(),
            ..DecisionLog::default()
        };
        if route.no_auth {
            return Decision::Allow(self.allow(None, None, log, req));
        }

        // The verified-token cache is asked first, as the extraction meets the token: a hit is
        // byte for byte a token that passed every syntax check, so its scans are skipped. A hit
        // whose key set went stale is not used: full verification then applies the
        // keys-unavailable failure mode to it, as to a token never seen.
        let mut cached: Option<Rc<Verified>> = None;
        let extracted = extract(
            req,
            &config.token_sources,
            config.limits.max_token_bytes,
            |token| {
                cached = self
                    .verified
                    .get(token, now)
                    .filter(|v| self.still_usable(v, now))
                    .map(Rc::clone);
                cached.is_some()
            },
        );
        let token = match extracted {
            Extracted::Token(t) => t,
            Extracted::Missing => return self.deny(Reason::MissingToken, route, log),
            Extracted::Invalid(_) => return self.deny(Reason::InvalidRequest, route, log),
        };
        if cached.is_none() && !looks_like_jwt(token) {
            let decision = match config.opaque_tokens {
                OpaqueTokens::Reject => self.deny(Reason::MalformedToken, route, log),
                OpaqueTokens::Introspect => {
                    let key = token_key(token);
                    self.introspect(token, key, None, None, route_index, req, log, now)
                }
            };
            return named(decision, || log_name(token));
        }

        // The token's key, where it was computed: a snapshot hit asking the issuer reuses it.
        let (verified, key) = match cached {
            Some(v) => {
                log.cached = true;
                (v, None)
            }
            None => {
                // Hashed only off the cached path: the failed-verification memory's key, and
                // what the proxy's workers share about the token.
                let key = token_key(token);
                match self.verify(token, &key, now, &mut log) {
                    Ok(v) => {
                        let v = Rc::new(v);
                        self.verified
                            .insert(token, Rc::clone(&v), v.claims.exp, now);
                        (v, Some(key))
                    }
                    Err(unverified) => {
                        let decision = match unverified {
                            Unverified::Refused(reason) => self.deny(reason, route, log),
                            Unverified::LetThrough(reason) => {
                                self.fail_open(reason, route, log, req)
                            }
                        };
                        return named(decision, || log_name(token));
                    }
                }
            }
        };
        log.issuer = Some(verified.claims.iss.clone());
        log.kid = verified.kid.clone();
        log.snapshot_generation = self.snapshot_generation();

        let claims = Rc::clone(&verified.claims);
        let decision = match self.revocation_check(&verified, route, now) {
            Revocation::Denied(reason) => self.deny(reason, route, log),
            Revocation::Confirm(trigger) => self.introspect(
                token,
                key.unwrap_or_else(|| token_key(token)),
                Some(Rc::clone(&claims)),
                trigger,
                route_index,
                req,
                log,
                now,
            ),
            Revocation::Clear => self.finish(&claims, route, req, None, log, now),
            Revocation::ClearFailOpen => self.finish(
                &claims,
                route,
                req,
                Some(Reason::StaleRevocationData),
                log,
                now,
            ),
        };
        // A verified token is named by its `jti` where it has one: the id revocations name. Once
        // per token: a revoked token sent again is named from its cache entry.
        named(decision, || {
            let jti_or_token = claims.jti.as_deref().unwrap_or(token);
            verified
                .log_name
                .get_or_init(|| log_name(jti_or_token))
                .clone()
        })
    }

    /// Finishes a decision that waited for introspection. `outcome` is the issuer's answer, or
    /// `Failed` for a timeout or reset. `req` is the same request (for route requirements).
    pub fn complete_introspection(
        &mut self,
        mut pending: PendingIntrospection,
        outcome: HttpOutcome,
        req: &RequestView,
        now: u64,
    ) -> Decision {
        let forward_path = pending.forward_path.take();
        let decision = self.introspection_answered(pending, outcome, req, now);
        self.for_upstream(decision, forward_path)
    }

    fn introspection_answered(
        &mut self,
        pending: PendingIntrospection,
        outcome: HttpOutcome,
        req: &RequestView,
        now: u64,
    ) -> Decision {
        let policy = Rc::clone(&self.policy);
        let config = &policy.config;
        let route = routes::rule(config, pending.route);
        let mut log = pending.log;
        let mut body = None;
        let parsed = match (outcome, &policy.introspection) {
            (
                HttpOutcome::Response {
                    status, body: b, ..
                },
                Some(settings),
            ) => {
                body = Some(b);
                parse_response(status, b, settings.max_response_bytes).map_err(|e| e.to_string())
            }
            (HttpOutcome::Failed, _) => Err(IntrospectionError::NoResponse.to_string()),
            // Not reached: an introspection is only asked for when one is configured.
            (HttpOutcome::Response { .. }, None) => Err("introspection is not configured".into()),
        };
        let answer = match parsed {
            Ok(answer) => {
                if let Some(body) = body {
                    self.publish_answer(pending.token_key, body, now);
                }
                answer
            }
            Err(detail) => {
                log.detail = Some(detail);
                let mode = route
                    .on_introspection_failure
                    .unwrap_or(config.failure_modes.introspection_failure);
                return match (mode, pending.claims) {
                    (FailMode::Allow, Some(claims)) => self.finish(
                        &claims,
                        route,
                        req,
                        Some(Reason::IntrospectionFailed),
                        log,
                        now,
                    ),
                    (FailMode::Allow, None) => {
                        self.fail_open(Reason::IntrospectionFailed, route, log, req)
                    }
                    (FailMode::Deny, _) => self.deny(Reason::IntrospectionFailed, route, log),
                };
            }
        };
        log.introspected = true;
        // A JWT keeps its own verified claims; the answer only confirms it is still active.
        let Some(claims) = pending.claims else {
            return self.opaque_answered(pending.token_key, answer, route, req, log, now);
        };
        let ttl = self.introspection_ttl();
        self.introspected
            .put(pending.token_key, answer, Some(claims.exp), ttl, now);
        match self.introspected.get(&pending.token_key, now) {
            Some(Cached::Active(_)) => self.finish(&claims, route, req, None, log, now),
            _ => self.deny(inactive_reason(pending.trigger), route, log),
        }
    }

    /// The answer about an opaque token: its only identity. Checked (`opaque_claims`) before
    /// it is cached, so a refused answer is remembered as refused, never as active.
    fn opaque_answered(
        &mut self,
        token_key: [u8; 32],
        answer: IntrospectionAnswer,
        route: &RouteRule,
        req: &RequestView,
        log: DecisionLog,
        now: u64,
    ) -> Decision {
        let ttl = self.introspection_ttl();
        match self.cache_opaque_answer(token_key, answer, ttl, now) {
            Err(reason) => self.deny(reason, route, log),
            Ok(claims) => self.finish(&claims, route, req, None, log, now),
        }
    }

    /// Caches the answer about an opaque token for at most `ttl` (the configured TTL, or what
    /// is left of it for an answer another worker received): inactive, refused with the
    /// reason `opaque_claims` gives, or active. Returns that outcome.
    fn cache_opaque_answer(
        &mut self,
        token_key: [u8; 32],
        answer: IntrospectionAnswer,
        ttl: u64,
        now: u64,
    ) -> Result<Claims, Reason> {
        if !answer.active {
            self.introspected.put(token_key, answer, None, ttl, now);
            return Err(Reason::TokenInactive);
        }
        match self.opaque_claims(&answer, now) {
            Err(reason) => {
                let until = refusal_until(reason, &answer, self.skew(), ttl, now);
                self.introspected.put_refused(token_key, reason, until, now);
                Err(reason)
            }
            Ok(claims) => {
                // The cache judges `exp` and `nbf` without skew: inside the skew window it
                // would keep this accepted answer as inactive. `nbf` has been judged (time only
                // moves on), so the cached copy drops it; an answer already past its `exp` is
                // not cached, and a repeat asks the issuer again until the skew runs out.
                if answer.exp.is_some_and(|exp| exp <= now) {
                    self.introspected.forget(&token_key);
                } else {
                    let answer = IntrospectionAnswer {
                        nbf: None,
                        ..answer
                    };
                    self.introspected.put(token_key, answer, None, ttl, now);
                }
                Ok(claims)
            }
        }
    }

    /// Shares an answer from the issuer (an HTTP 200 body that parsed) with the other workers.
    fn publish_answer(&mut self, token_key: [u8; 32], body: &[u8], now: u64) {
        let generation = self.snapshot_generation();
        if let Some(sharing) = self.sharing.as_mut().filter(|s| s.answers_on()) {
            sharing.publish_answer(&SharedAnswer {
                token_key,
                answered_at: now,
                generation,
                body: body.to_vec(),
            });
        }
    }

    /// On a miss in this worker's introspection cache: the answer another worker of this proxy
    /// received for the token, put into this cache under exactly the rules a fresh answer
    /// follows (as if it had arrived here when it arrived there, so its TTL counts from then),
    /// and forgotten if active and given before the revocation generation in force here (as
    /// [`Engine::load_snapshot`] forgets active answers). Returns what the cache then holds.
    fn adopt_shared_answer(
        &mut self,
        token_key: &[u8; 32],
        jwt_exp: Option<u64>,
        now: u64,
    ) -> Option<Cached> {
        let shared = self
            .sharing
            .as_ref()
            .filter(|s| s.answers_on())?
            .answer(token_key)?;
        let max_bytes = self.policy.introspection.as_ref()?.max_response_bytes;
        let ttl = shared
            .answered_at
            .min(now)
            .saturating_add(self.introspection_ttl())
            .checked_sub(now)
            .filter(|left| *left > 0)?;
        let answer = parse_response(200, &shared.body, max_bytes).ok()?;
        match jwt_exp {
            Some(exp) => self
                .introspected
                .put(*token_key, answer, Some(exp), ttl, now),
            None => {
                // The outcome is read back from the cache below.
                let _ = self.cache_opaque_answer(*token_key, answer, ttl, now);
            }
        }
        let cached = self.introspected.get(token_key, now);
        if matches!(cached, Some(Cached::Active(_)))
            && shared.generation != self.snapshot_generation()
        {
            self.introspected.forget(token_key);
            return None;
        }
        if cached.is_some() {
            self.shared_answer_hits = self.shared_answer_hits.saturating_add(1);
        }
        cached
    }

    /// The identity an active answer gives an opaque token, after the checks RFC 7662
    /// section 4 leaves to the resource server: the issuer says the token is active, not that
    /// it was issued for us or is an access token. Every use of an answer for an opaque token,
    /// fresh or cached, goes through here.
    fn opaque_claims(&self, answer: &IntrospectionAnswer, now: u64) -> Result<Claims, Reason> {
        if !answer.active {
            return Err(Reason::TokenInactive);
        }
        // Absent, or an access token. oidc-provider 9.x (lib/actions/introspection.js) answers
        // the token's `tokenType`, `Bearer` or `DPoP`, for access tokens and omits `token_type`
        // for refresh tokens, which carry no `aud` either: the required audience refuses those.
        // Servers that name the kind (`refresh_token`, RFC 7009 hints) are refused here, and so
        // is `DPoP`: its proof of possession is not checked here (RFC 9449 section 7.1).
        let access = answer.token_type.as_deref().is_none_or(|t| {
            t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("access_token")
        });
        if !access {
            return Err(Reason::WrongType);
        }
        let issuer = answer
            .iss
            .as_deref()
            .and_then(|iss| self.policy.issuer_index(iss))
            .and_then(|i| self.policy.issuers.get(i))
            .ok_or(Reason::WrongIssuer)?;
        let audiences = &issuer.verify.audiences;
        if !answer.aud.iter().any(|aud| audiences.contains(aud)) {
            return Err(Reason::WrongAudience);
        }
        let skew = self.skew();
        if answer.exp.is_some_and(|exp| now > exp.saturating_add(skew)) {
            return Err(Reason::Expired);
        }
        if answer.nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
            return Err(Reason::NotYetValid);
        }
        Ok(claims_from_answer(answer, now, self.introspection_ttl()))
    }

    /// The skew tolerated on an answer's `exp` and `nbf`: the one JWTs get.
    fn skew(&self) -> u64 {
        self.policy
            .config
            .clock_skew_secs
            .min(jwt::MAX_CLOCK_SKEW_SECS)
    }

    fn introspection_ttl(&self) -> u64 {
        self.policy
            .introspection
            .as_ref()
            .map_or(0, |s| s.cache_ttl_secs)
    }

    /// Verifies a token not seen before. Cheap refusals first: a token whose signature step
    /// failed recently (the failed-verification memory, keyed by `token_key`), then the
    /// claims read from the unverified payload (`jwt::precheck`); only then the signature.
    fn verify(
        &mut self,
        token: &str,
        token_key: &[u8; 32],
        now: u64,
        log: &mut DecisionLog,
    ) -> Result<Verified, Unverified> {
        if let Some(refused) = self.remembered_refusal(token_key, now) {
            log.kid.clone_from(&refused.kid);
            log.token_hash = Some(refused.log_name.clone());
            log.issuer = self
                .policy
                .issuers
                .get(refused.issuer)
                .map(|p| p.verify.issuer.clone());
            return Err(Unverified::Refused(refused.reason));
        }
        let policy = Rc::clone(&self.policy);
        let inspected = jwt::inspect(token, policy.config.limits.max_token_bytes)
            .map_err(|e| Unverified::Refused(e.reason()))?;
        log.kid = inspected.header.kid.clone();
        let issuer = inspected
            .unverified_issuer
            .as_deref()
            .and_then(|iss| policy.issuer_index(iss))
            .ok_or(Unverified::Refused(Reason::WrongIssuer))?;
        let Some(issuer_policy) = policy.issuers.get(issuer) else {
            return Err(Unverified::Refused(Reason::WrongIssuer));
        };
        log.issuer = Some(issuer_policy.verify.issuer.clone());
        let key_sets = self.usable_keys(issuer, now);
        if key_sets.is_empty() {
            return Err(match policy.config.failure_modes.keys_unavailable {
                FailMode::Deny => Unverified::Refused(Reason::KeysUnavailable),
                FailMode::Allow => Unverified::LetThrough(Reason::KeysUnavailable),
            });
        }
        let sources: Vec<KeySource> = key_sets.iter().map(|(source, _)| *source).collect();
        // Another worker of this proxy verified this very token under the same key sets: the
        // signature step is skipped, nothing else (its claims are checked here, at `now`, by
        // the checks `precheck` and `verify` make, in their order; revocation follows as for
        // any token). After the key-set check, as for every token.
        // A token already past its claimed `exp` is refused by `precheck` below: a replayed
        // expired token costs no shared-data read.
        let may_be_live = jwt::unverified_exp(&inspected)
            .is_none_or(|exp| now <= exp.saturating_add(self.skew()));
        let fingerprint = self
            .sharing
            .as_ref()
            .filter(|s| s.verdicts_on() && may_be_live)
            .map(|_| self.usable_keys_fingerprint(issuer, now));
        let shared = fingerprint.and_then(|fp| self.shared_verdict(token_key, &fp, &sources, now));
        if let Some(source) = shared {
            let kid = inspected.header.kid.clone();
            let claims = jwt::claims_verified_elsewhere(inspected, &issuer_policy.verify, now)
                .map_err(|e| Unverified::Refused(e.reason()))?;
            self.shared_verdict_hits = self.shared_verdict_hits.saturating_add(1);
            return Ok(Verified {
                issuer,
                key_set: source,
                kid,
                claims: Rc::new(claims),
                hashed_ids: Cell::new(None),
                log_name: OnceCell::new(),
            });
        }
        // After the key-set check, so that the keys-unavailable failure mode still applies
        // first, as it does for every token: outcomes are those of the signature path.
        jwt::precheck(&inspected, &issuer_policy.verify, now)
            .map_err(|e| Unverified::Refused(e.reason()))?;
        let mut result = Err(TokenError::UnknownKey {
            kid: inspected.header.kid.clone(),
        });
        let mut key_set = KeySource::Inline;
        let mut checks = 0;
        for (source, keys) in key_sets {
            key_set = source;
            checks += 1;
            result = jwt::verify_inspected(token, &inspected, keys, &issuer_policy.verify, now);
            if !matches!(result, Err(TokenError::UnknownKey { .. })) {
                break;
            }
        }
        self.signature_checks = self.signature_checks.saturating_add(checks);
        match result {
            Ok(claims) => {
                if let (Some(key_sets), Some(sharing)) = (fingerprint, self.sharing.as_mut()) {
                    sharing.publish_verdict(&SharedVerdict {
                        token_key: *token_key,
                        key_sets,
                        exp: claims.exp,
                        source: key_set.byte(),
                    });
                }
                Ok(Verified {
                    issuer,
                    key_set,
                    kid: inspected.header.kid,
                    claims: Rc::new(claims),
                    hashed_ids: Cell::new(None),
                    log_name: OnceCell::new(),
                })
            }
            Err(e) => {
                if matches!(e, TokenError::UnknownKey { .. }) {
                    if let Some(state) = self.issuers.get_mut(issuer) {
                        state.unknown_kid_seen = true;
                    }
                } else if remembered(&e) {
                    let until = jwt::unverified_exp(&inspected)
                        .unwrap_or(u64::MAX)
                        .min(now.saturating_add(REFUSED_TTL_SECS));
                    let name = log_name(token);
                    log.token_hash = Some(name.clone());
                    let refused = Refused {
                        reason: e.reason(),
                        issuer,
                        sources,
                        kid: inspected.header.kid,
                        log_name: name,
                    };
                    self.refused
                        .insert(token_key.as_slice(), refused, until, now);
                }
                Err(Unverified::Refused(e.reason()))
            }
        }
    }

    /// The key set another worker verified this token with, if its shared verdict was given
    /// under key sets with fingerprint `key_sets` (this worker's own) and is not past the
    /// token's `exp` (the claims check decides; this only skips hopeless entries).
    fn shared_verdict(
        &self,
        token_key: &[u8; 32],
        key_sets: &[u8; 32],
        sources: &[KeySource],
        now: u64,
    ) -> Option<KeySource> {
        let verdict = self.sharing.as_ref()?.verdict(token_key)?;
        let live = now <= verdict.exp.saturating_add(self.skew());
        let source = KeySource::from_byte(verdict.source).filter(|s| sources.contains(s))?;
        (verdict.key_sets == *key_sets && live).then_some(source)
    }

    /// A refusal remembered for this token, while the key sets it was refused with are still
    /// the usable ones.
    fn remembered_refusal(&self, token_key: &[u8; 32], now: u64) -> Option<&Refused> {
        let refused = self.refused.get(token_key.as_slice(), now)?;
        let usable = self.usable_keys(refused.issuer, now);
        let same = usable.len() == refused.sources.len()
            && usable
                .iter()
                .zip(&refused.sources)
                .all(|((source, _), was)| source == was);
        same.then_some(refused)
    }

    fn revocation_check(&self, verified: &Verified, route: &RouteRule, now: u64) -> Revocation {
        let claims = &verified.claims;
        let config = &self.policy.config;
        let has_introspection = self.policy.introspection.is_some();
        let always = route.introspection == IntrospectionPolicy::Always;
        let Some(state) = self
            .revocation
            .as_ref()
            .filter(|_| !self.revocation_is_stale(now))
        else {
            if self.policy.revocation.is_none() {
                return if always {
                    Revocation::Confirm(None)
                } else {
                    Revocation::Clear
                };
            }
            return match config.failure_modes.revocation_stale {
                StaleMode::Deny => Revocation::Denied(Reason::StaleRevocationData),
                StaleMode::Allow if always => Revocation::Confirm(None),
                StaleMode::Allow => Revocation::ClearFailOpen,
                StaleMode::Introspect => Revocation::Confirm(None),
            };
        };
        let hashed = match verified.hashed_ids.get() {
            Some((salt, ids)) if salt == *state.salt() => ids,
            _ => {
                let tenant = claims.claim(&config.tenant_claim);
                let ids = state.hash_ids(&TokenIds {
                    jti: claims.jti.as_deref(),
                    sid: claims.sid.as_deref(),
                    sub: claims.sub.as_deref(),
                    tenant: tenant.as_ref().and_then(|t| t.as_str()),
                    issued_at: claims.iat,
                });
                verified.hashed_ids.set(Some((*state.salt(), ids)));
                ids
            }
        };
        match state.check_hashed(&hashed) {
            Verdict::Revoked(kind) => Revocation::Denied(revoked_reason(kind)),
            Verdict::MaybeRevoked(kind) => {
                if has_introspection && route.introspection != IntrospectionPolicy::Never {
                    Revocation::Confirm(Some(kind))
                } else {
                    Revocation::Denied(revoked_reason(kind))
                }
            }
            Verdict::Clear if always => Revocation::Confirm(None),
            Verdict::Clear => Revocation::Clear,
        }
    }

    /// Answers from the introspection cache, or asks the adapter to call the issuer.
    #[allow(clippy::too_many_arguments)]
    fn introspect(
        &mut self,
        token: &str,
        token_key: [u8; 32],
        claims: Option<Rc<Claims>>,
        trigger: Option<IdKind>,
        route: Option<usize>,
        req: &RequestView,
        mut log: DecisionLog,
        now: u64,
    ) -> Decision {
        let policy = Rc::clone(&self.policy);
        let rule = routes::rule(&policy.config, route);
        let Some(settings) = policy.introspection.as_ref() else {
            return self.deny(inactive_reason(trigger), rule, log);
        };
        let cached = match self.introspected.get(&token_key, now) {
            Some(cached) => Some(cached),
            None => self.adopt_shared_answer(&token_key, claims.as_ref().map(|c| c.exp), now),
        };
        match cached {
            Some(Cached::Active(answer)) => {
                log.introspected = true;
                let claims = match claims {
                    Some(claims) => claims,
                    None => match self.opaque_claims(&answer, now) {
                        Ok(claims) => Rc::new(claims),
                        Err(reason) => return self.deny(reason, rule, log),
                    },
                };
                self.finish(&claims, rule, req, None, log, now)
            }
            Some(Cached::Inactive) => {
                log.introspected = true;
                self.deny(inactive_reason(trigger), rule, log)
            }
            Some(Cached::Refused(reason)) => {
                log.introspected = true;
                self.deny(reason, rule, log)
            }
            None => Decision::Introspect(Introspect {
                request: build_request(settings, token, Some("access_token")),
                pending: PendingIntrospection {
                    token_key,
                    claims,
                    trigger,
                    route,
                    forward_path: None,
                    log,
                },
            }),
        }
    }
}

/// Refusals from the signature step that the same token would get again from the same key
/// sets: a bad signature, an algorithm the key does not allow, a token jwt-simple cannot
/// decode. An unknown kid is not remembered: each sighting asks for a key refetch.
fn remembered(error: &TokenError) -> bool {
    matches!(
        error,
        TokenError::BadSignature
            | TokenError::DisallowedAlgorithm
            | TokenError::Malformed(_)
            | TokenError::ForbiddenHeader(_)
            | TokenError::WrongType
    )
}

/// Tokens with two dots are JWS compact serialisations; anything else is opaque. (`split` on a
/// char finds each dot with the standard library's word-at-a-time memchr, not byte by byte.)
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// What a log line names a token by (`text`: a verified token's `jti`, else the token): the
/// first 8 bytes of its SHA-256, hex, as `printf %s "$token" | sha256sum | cut -c1-16` gives.
fn log_name(text: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
    crate::wire::hex(digest.get(..8).unwrap_or_default())
}

/// Names the token in `decision`'s log where a line may be written: a denial, or an
/// introspection (its answer may deny). An allow writes none, so it never pays for the SHA-256
/// (twice the token's key). A name already given (a remembered refusal's) stands.
fn named(mut decision: Decision, name: impl FnOnce() -> String) -> Decision {
    let log = match &mut decision {
        Decision::Deny(denial) => &mut denial.log,
        Decision::Introspect(introspect) => &mut introspect.pending.log,
        Decision::Allow(_) => return decision,
    };
    log.token_hash.get_or_insert_with(name);
    decision
}

fn revoked_reason(kind: IdKind) -> Reason {
    match kind {
        IdKind::Jti => Reason::Revoked,
        IdKind::Sid => Reason::RevokedSession,
        IdKind::Subject => Reason::RevokedSubject,
        IdKind::Tenant => Reason::RevokedTenant,
    }
}

/// An inactive answer after a snapshot hit confirms that revocation; otherwise it is just inactive.
fn inactive_reason(trigger: Option<IdKind>) -> Reason {
    trigger.map_or(Reason::TokenInactive, revoked_reason)
}

/// How long a refusal of an active answer holds: a token not valid yet may be from
/// `nbf - skew` on (and is asked about again then); any other reason holds as long as the
/// token (its `exp`), else for the cache TTL.
fn refusal_until(
    reason: Reason,
    answer: &IntrospectionAnswer,
    skew: u64,
    ttl: u64,
    now: u64,
) -> u64 {
    let ttl_end = now.saturating_add(ttl);
    match reason {
        Reason::NotYetValid => answer
            .nbf
            .map_or(ttl_end, |nbf| nbf.saturating_sub(skew).min(ttl_end)),
        _ => answer.exp.filter(|exp| *exp > now).unwrap_or(ttl_end),
    }
}

/// The identity an opaque token carries, from its (active, checked) introspection answer.
fn claims_from_answer(answer: &IntrospectionAnswer, now: u64, ttl: u64) -> Claims {
    Claims {
        iss: answer.iss.clone().unwrap_or_default(),
        sub: answer.sub.clone(),
        aud: answer.aud.clone(),
        exp: answer.exp.unwrap_or(now.saturating_add(ttl)),
        nbf: answer.nbf,
        iat: answer.iat,
        jti: answer.jti.clone(),
        sid: answer.sid.clone(),
        auth_time: None,
        scopes: answer.scope.clone(),
        extra: answer.extra.clone(),
    }
}

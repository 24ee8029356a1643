//! Load with churn, and the "introspect every request" baseline measured in the same run.
//!
//! Open-loop traffic at a fixed simulated rate (one request per millisecond) across four worker
//! VMs, each request's token drawn from a pool of pre-signed tokens (most requests hit the
//! verified cache, as real traffic does; each worker has seen each token once before measuring), while the origin publishes a revocation every
//! simulated second, alternating full snapshots and deltas. Revoked tokens keep being sent: for
//! each, the time from publication to the first denial on each worker is the propagation time,
//! and any acceptance later than the propagation bound fails the test. The same traffic then goes
//! through a proxy whose policy introspects every request (no snapshot, route introspection
//! `always`, the smallest cache TTL), against an IdP with a fixed latency.

use crate::campaign::{full, human_nanos, percentile, scale, table, Rng};
use crate::rg::*;
use revguard::snapshot::RevocationTarget;
use revguard_test_host::{
    CalloutRequest, HttpRequest, HttpResponse, Proxy, ProxyConfig, StreamId, Upstream,
    UpstreamReply, UpstreamResponse,
};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
/// Simulated time between requests (1,000 requests per simulated second).
const STEP_MS: u64 = 1;
/// A revocation is published every this many requests (one simulated second).
const REVOKE_EVERY: usize = 1000;
const REFRESH_SECS: u64 = 10;
const ORIGIN_DELAY_MS: u64 = 50;
const IDP_LATENCY_MS: u64 = 20;
/// Tokens revoked most recently, sent often so their propagation is seen to the millisecond.
const RECENT: usize = 25;

/// An RFC 7662 endpoint for the load runs: counts calls, keeps no request log (a million
/// callouts), answers after a fixed latency.
struct LoadIdp {
    inactive: Mutex<HashSet<String>>,
    calls: AtomicU64,
}

impl Upstream for LoadIdp {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let token = form_value(&request.body, "token").unwrap_or_default();
        let inactive = self
            .inactive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&token);
        let body = json!({"active": !inactive, "exp": T0 + 3600}).to_string();
        UpstreamReply::response(UpstreamResponse::new(
            200,
            &[("content-type", "application/json")],
            body.as_bytes(),
        ))
        .after(Duration::from_millis(IDP_LATENCY_MS))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    Revguard,
    IntrospectEveryRequest,
}

impl Policy {
    fn label(self) -> &'static str {
        match self {
            Policy::Revguard => "revguard (snapshot, introspect on filter hits)",
            Policy::IntrospectEveryRequest => "introspect every request (cache TTL 1 s)",
        }
    }
}

/// A revoked pool token: when it was published and when each worker first denied it.
struct Revoked {
    published_ms: u64,
    first_denial_ms: [Option<u64>; WORKERS],
}

#[derive(Default)]
struct Stats {
    requests: usize,
    wall: Duration,
    /// Wall time of each request's synchronous part (context, headers, decision), ns.
    decision_ns: Vec<u64>,
    /// Fuel of each request's synchronous part (fuel runs only).
    decision_fuel: Vec<u64>,
    /// Simulated time each request waited (paused for a callout), ms.
    waited_ms: Vec<u64>,
    total_fuel: u64,
    callouts: u64,
    origin_fetches: usize,
    allowed: usize,
    denied_revoked: usize,
    denied_other: usize,
    accepted_after_bound: usize,
    /// Per (revoked token, worker): publication to first denial, ms.
    propagation_ms: Vec<u64>,
    /// (revoked token, worker) pairs the traffic never sent past the bound, probed once at the end.
    probed: usize,
    /// Of those, the ones the worker still allowed.
    never_denied: usize,
    revocations: usize,
}

struct Pool {
    tokens: Vec<String>,
}

impl Pool {
    fn new(issuer: &Issuer, n: usize) -> Pool {
        Pool {
            tokens: (0..n)
                .map(|i| issuer.token("k1", &format!("u{i}"), &format!("j{i}"), None, T0))
                .collect(),
        }
    }
}

fn plugin(policy: Policy, origin_key: &str) -> String {
    let base = config(ENVOY, origin_key, json!({}));
    let mut v: Value = serde_json::from_str(&base).unwrap();
    match policy {
        Policy::Revguard => {
            v["revocation"]["refresh_interval_secs"] = json!(REFRESH_SECS);
        }
        Policy::IntrospectEveryRequest => {
            v.as_object_mut().unwrap().remove("revocation");
            v["default_route"] = json!({"introspection": "always"});
            v["introspection"]["cache_ttl_secs"] = json!(1);
        }
    }
    v.to_string()
}

/// The bound on propagation: the refresh interval, one tick for the due fetch, the fetch (origin
/// delay), one tick for the other workers to load the published data, one introspection call.
fn bound_ms() -> u64 {
    REFRESH_SECS * 1000 + 1000 + ORIGIN_DELAY_MS + 1000 + IDP_LATENCY_MS
}

/// Counts one answer; for a revoked token, notes the first denial per worker and any acceptance
/// past the bound.
fn record(
    stats: &mut Stats,
    revoked: &mut HashMap<usize, Revoked>,
    (token, worker, at_ms): (usize, usize, u64),
    verdict: &str,
) {
    let rev = revoked.get_mut(&token);
    match (verdict, rev) {
        ("allow", Some(r)) if at_ms > r.published_ms + bound_ms() => {
            stats.allowed += 1;
            stats.accepted_after_bound += 1;
        }
        ("allow", _) => stats.allowed += 1,
        ("revoked" | "revoked_subject" | "token_inactive", r) => {
            stats.denied_revoked += 1;
            if let Some(r) = r {
                if r.first_denial_ms[worker].is_none() {
                    r.first_denial_ms[worker] = Some(at_ms.saturating_sub(r.published_ms));
                }
            }
        }
        _ => stats.denied_other += 1,
    }
}

struct InFlight {
    stream: StreamId,
    token: usize,
    sent_ms: u64,
}

fn drive(policy: Policy, requests: usize, pool_size: usize, fuel: bool, seed: u64) -> Stats {
    let mut rng = Rng::new(seed);
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    origin.set_delay(Duration::from_millis(ORIGIN_DELAY_MS));
    let idp = Arc::new(LoadIdp {
        inactive: Mutex::default(),
        calls: AtomicU64::new(0),
    });
    let pool = Pool::new(&issuer, pool_size);
    let mut proxy_config = ProxyConfig::envoy()
        .upstream(ENVOY.origin, origin.upstream.clone() as Arc<dyn Upstream>)
        .upstream(ENVOY.idp, idp.clone() as Arc<dyn Upstream>);
    proxy_config.workers = WORKERS;
    proxy_config.fuel = fuel;
    proxy_config.plugin_configuration = plugin(policy, &origin.public_key()).into_bytes();
    let mut proxy = Proxy::start(&compiled(fuel), proxy_config).expect("revguard loads");
    proxy.advance(Duration::from_secs(3)).unwrap();
    // Warm-up, not measured: every worker sees every pool token once (steady state: the
    // verified cache holds the live tokens, as with real traffic).
    for worker in 0..WORKERS {
        for token in &pool.tokens {
            assert_eq!(
                send(&mut proxy, worker, token).verdict(),
                "allow",
                "warm-up"
            );
        }
    }
    proxy.take_logs();
    let clock = proxy.config().clock.clone();
    let start_ns = clock.now_nanos();
    let now_ms = |c: &revguard_test_host::Clock| (c.now_nanos() - start_ns) / 1_000_000;
    let origin_before = origin.upstream.requests().len();
    let callouts_before = idp.calls.load(Ordering::Relaxed);
    let fuel_before: u64 = (0..WORKERS).filter_map(|w| proxy.fuel_consumed(w)).sum();

    let mut stats = Stats {
        requests,
        ..Stats::default()
    };
    let mut revoked: HashMap<usize, Revoked> = HashMap::new();
    let mut recent: Vec<usize> = Vec::new();
    let mut in_flight: Vec<InFlight> = Vec::new();
    let bound = bound_ms();
    let started = Instant::now();
    for i in 0..requests {
        let t = i as u64 * STEP_MS;
        let now = now_ms(&clock);
        if t > now {
            proxy.advance(Duration::from_millis(t - now)).unwrap();
        }
        // Streams resumed by callout answers.
        let mut k = 0;
        while k < in_flight.len() {
            let f = &in_flight[k];
            let outcome = proxy.outcome(f.stream).unwrap();
            if let Some(v) = verdict(&outcome) {
                let f = in_flight.swap_remove(k);
                let at = now_ms(&clock);
                stats.waited_ms.push(at - f.sent_ms);
                record(&mut stats, &mut revoked, (f.token, f.stream.worker, at), &v);
                proxy.finish(f.stream, HttpResponse::new(200)).unwrap();
            } else {
                k += 1;
            }
        }
        if i % REVOKE_EVERY == REVOKE_EVERY / 2 {
            let candidates = pool_size - revoked.len();
            if candidates > 0 {
                let token = (0..pool_size)
                    .cycle()
                    .skip(rng.below(pool_size))
                    .find(|t| !revoked.contains_key(t))
                    .unwrap();
                let unix = clock.now_nanos() / 1_000_000_000;
                if stats.revocations % 3 == 2 {
                    origin.revoke(RevocationTarget::Subject {
                        sub: format!("u{token}"),
                        not_before: unix,
                    });
                } else {
                    origin.revoke(RevocationTarget::Jti(format!("j{token}")));
                }
                idp.inactive
                    .lock()
                    .unwrap()
                    .insert(pool.tokens[token].clone());
                if stats.revocations.is_multiple_of(2) {
                    origin.publish_snapshot(unix);
                } else {
                    origin.publish_delta(unix);
                }
                stats.revocations += 1;
                revoked.insert(
                    token,
                    Revoked {
                        published_ms: now_ms(&clock),
                        first_denial_ms: [None; WORKERS],
                    },
                );
                recent.push(token);
                if recent.len() > RECENT {
                    recent.remove(0);
                }
            }
        }
        let token = if !recent.is_empty() && rng.chance(40) {
            *rng.pick(&recent)
        } else {
            rng.below(pool_size)
        };
        let worker = i % WORKERS;
        let request = HttpRequest::get("api", "/orders")
            .header("authorization", format!("Bearer {}", pool.tokens[token]));
        let fuel_at = proxy.fuel_consumed(worker);
        let t0 = Instant::now();
        let stream = proxy.send_request(worker, request).unwrap();
        stats.decision_ns.push(t0.elapsed().as_nanos() as u64);
        if let (Some(a), Some(b)) = (fuel_at, proxy.fuel_consumed(worker)) {
            stats.decision_fuel.push(b - a);
        }
        let outcome = proxy.outcome(stream).unwrap();
        match verdict(&outcome) {
            Some(v) => {
                stats.waited_ms.push(0);
                record(
                    &mut stats,
                    &mut revoked,
                    (token, worker, now_ms(&clock)),
                    &v,
                );
                proxy.finish(stream, HttpResponse::new(200)).unwrap();
            }
            None => in_flight.push(InFlight {
                stream,
                token,
                sent_ms: now_ms(&clock),
            }),
        }
        if i % 10_000 == 0 {
            proxy.take_logs();
        }
    }
    // Let the last callouts finish.
    proxy.advance(Duration::from_secs(2)).unwrap();
    for f in in_flight.drain(..) {
        let outcome = proxy.outcome(f.stream).unwrap();
        let v = verdict(&outcome).expect("no request left hanging");
        let at = now_ms(&clock);
        stats.waited_ms.push(at - f.sent_ms);
        record(&mut stats, &mut revoked, (f.token, f.stream.worker, at), &v);
        proxy.finish(f.stream, HttpResponse::new(200)).unwrap();
    }
    stats.wall = started.elapsed();
    let end_ms = now_ms(&clock);
    // Random traffic misses some (revoked token, worker) pairs; probe each once so every worker
    // is shown to deny every revoked token, not only the ones the traffic happened to send it.
    for (&token, r) in &revoked {
        for (worker, d) in r.first_denial_ms.iter().enumerate() {
            match d {
                Some(ms) => stats.propagation_ms.push(*ms),
                None if end_ms > r.published_ms + bound => {
                    stats.probed += 1;
                    if send(&mut proxy, worker, &pool.tokens[token]).verdict() == "allow" {
                        stats.never_denied += 1;
                    }
                }
                None => {}
            }
        }
    }
    stats.callouts = idp.calls.load(Ordering::Relaxed) - callouts_before;
    stats.origin_fetches = origin.upstream.requests().len() - origin_before;
    let fuel_after: u64 = (0..WORKERS).filter_map(|w| proxy.fuel_consumed(w)).sum();
    stats.total_fuel = fuel_after - fuel_before;
    for w in 0..WORKERS {
        assert_eq!(proxy.vm_failure(w), None);
    }
    stats.decision_ns.sort_unstable();
    stats.decision_fuel.sort_unstable();
    stats.waited_ms.sort_unstable();
    stats.propagation_ms.sort_unstable();
    stats
}

fn pcts(v: &[u64], f: impl Fn(u64) -> String) -> String {
    format!(
        "{} / {} / {}",
        f(percentile(v, 50.0)),
        f(percentile(v, 90.0)),
        f(percentile(v, 99.0))
    )
}

#[test]
fn campaign_load_with_churn_and_introspect_every_request_baseline() {
    let seed = Rng::from_env("load", 0x6c6f_6164_0000_0001).next_u64();
    let requests = scale(20_000, 1_000_000);
    let pool = scale(400, 4_000);
    let fuel_sample = scale(3_000, 50_000);
    let mut runs = Vec::new();
    for policy in [Policy::Revguard, Policy::IntrospectEveryRequest] {
        let main = drive(policy, requests, pool, false, seed);
        let sample = drive(policy, fuel_sample, pool, true, seed);
        runs.push((policy, main, sample));
    }
    let bound = bound_ms();
    let (_, rg, _) = &runs[0];
    let mode = if full() { "full" } else { "smoke" };
    let ms = |n: u64| format!("{n} ms");
    let load_rows = vec![
        vec!["requests".into(), rg.requests.to_string()],
        vec![
            "workers / simulated rate".into(),
            format!("{WORKERS} / {} req/s", 1000 / STEP_MS),
        ],
        vec![
            "token pool / revocations published".into(),
            format!(
                "{pool} / {} (one per simulated second, snapshot and delta alternating)",
                rg.revocations
            ),
        ],
        vec![
            "wall time".into(),
            format!("{:.1} s", rg.wall.as_secs_f64()),
        ],
        vec![
            "throughput (wall)".into(),
            format!("{:.0} req/s", rg.requests as f64 / rg.wall.as_secs_f64()),
        ],
        vec![
            "decision cost p50 / p90 / p99 (wall)".into(),
            pcts(&rg.decision_ns, human_nanos),
        ],
        vec![
            format!("decision cost p50 / p90 / p99 (fuel, {fuel_sample}-request sample)"),
            pcts(&runs[0].2.decision_fuel, |n| n.to_string()),
        ],
        vec![
            "propagation p50 / p90 / max (publish to first denial, per worker)".into(),
            format!(
                "{} / {} / {}",
                ms(percentile(&rg.propagation_ms, 50.0)),
                ms(percentile(&rg.propagation_ms, 90.0)),
                ms(rg.propagation_ms.last().copied().unwrap_or(0))
            ),
        ],
        vec![
            "propagation bound (interval + 2 ticks + origin delay + one introspection)".into(),
            ms(bound),
        ],
        vec![
            "revoked tokens accepted after the bound".into(),
            rg.accepted_after_bound.to_string(),
        ],
        vec![
            "(revoked token, worker) pairs the traffic missed, probed at the end / allowed".into(),
            format!("{} / {}", rg.probed, rg.never_denied),
        ],
        vec![
            "allowed / denied revoked / denied other".into(),
            format!(
                "{} / {} / {}",
                rg.allowed, rg.denied_revoked, rg.denied_other
            ),
        ],
        vec![
            "origin fetches (snapshot, delta, keys)".into(),
            rg.origin_fetches.to_string(),
        ],
    ];
    println!(
        "\n### Load with churn ({mode}, seed {seed:#x})\n\n{}",
        table(&["measure", "value"], &load_rows)
    );
    let mut base_rows = Vec::new();
    for (policy, main, sample) in &runs {
        let wait_mean = main.waited_ms.iter().sum::<u64>() as f64 / main.requests as f64;
        base_rows.push(vec![
            policy.label().to_string(),
            format!("{:.4}", main.callouts as f64 / main.requests as f64),
            human_nanos((main.wall.as_nanos() / main.requests as u128) as u64),
            pcts(&main.decision_ns, human_nanos),
            format!("{:.0}", sample.total_fuel as f64 / sample.requests as f64),
            format!(
                "{wait_mean:.2} ms / {}",
                ms(percentile(&main.waited_ms, 99.0))
            ),
            format!(
                "{} / {}",
                ms(percentile(&main.propagation_ms, 50.0)),
                ms(main.propagation_ms.last().copied().unwrap_or(0))
            ),
            main.accepted_after_bound.to_string(),
        ]);
    }
    println!(
        "\n### Baseline: introspect every request vs revguard ({mode}, same traffic, IdP latency {IDP_LATENCY_MS} ms)\n\n{}",
        table(
            &[
                "policy",
                "callouts / request",
                "wall / request (all work)",
                "decision p50 / p90 / p99 (wall)",
                "fuel / request (all work)",
                "waited for the IdP mean / p99",
                "propagation p50 / max",
                "revoked accepted after bound"
            ],
            &base_rows
        )
    );
    for (policy, main, _) in &runs {
        assert_eq!(
            main.accepted_after_bound,
            0,
            "{}: revoked tokens accepted after the bound",
            policy.label()
        );
        assert_eq!(main.never_denied, 0, "{}", policy.label());
        assert_eq!(main.denied_other, 0, "{}", policy.label());
    }
    assert!(
        rg.callouts * 10 < runs[1].1.callouts,
        "revguard calls out far less"
    );
}

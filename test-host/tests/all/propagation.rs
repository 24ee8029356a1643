//! Propagation with the plugin's defaults (`hold_secs` 25, `refresh_interval_secs` 10) and real
//! parts: the origin service as a real process (`revguard origin serve`), the real filter in two
//! test-host proxies (several worker VMs each, real clock, real HTTP), and nginx as a static
//! server. The origin holds the lease holder's conditional delta request until a new generation
//! exists, so a POSTed revocation reaches every worker in about a second; a static server is
//! polled at the refresh interval.
//!
//! Timing figures are printed, never asserted; what is asserted is liveness (with generous
//! limits) and deterministic budgets (requests per proxy).
//!
//! `cargo test -p revguard-test-host --test all propagation:: -- --nocapture --test-threads 1`;
//! the 200-revocation campaign quoted in BENCHMARKS.md:
//! `cargo test -p revguard-test-host --test all propagation::campaign -- --ignored --nocapture --test-threads 1`.

use crate::origin::{self, percentile, status, temp_dir, unix_now};
use crate::rg::{Issuer, ISSUER};
use revguard_test_host::origin_service::OriginService;
use revguard_test_host::{
    CalloutRequest, Clock, HttpUpstream, Proxy, ProxyConfig, Upstream, UpstreamOutcome,
    UpstreamReply,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A real HTTP upstream that counts what crosses the wire per `:path`: requests, and bytes
/// both ways (request line and headers; status line, headers and body), as HTTP/1.1 frames
/// them. Egress figures come from here.
struct Counting {
    inner: Arc<HttpUpstream>,
    stats: Arc<Mutex<HashMap<String, PathStats>>>,
    bytes: Arc<AtomicU64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct PathStats {
    requests: u64,
    held: u64,
}

impl Counting {
    fn new(addr: SocketAddr) -> Arc<Counting> {
        Arc::new(Counting {
            inner: HttpUpstream::new(addr).expect("loopback"),
            stats: Arc::default(),
            bytes: Arc::default(),
        })
    }

    fn requests(&self, path: &str) -> u64 {
        lock(&self.stats).get(path).map_or(0, |s| s.requests)
    }

    fn held(&self, path: &str) -> u64 {
        lock(&self.stats).get(path).map_or(0, |s| s.held)
    }

    fn total_requests(&self) -> u64 {
        lock(&self.stats).values().map(|s| s.requests).sum()
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Upstream for Counting {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply {
        let path = request.headers.get_str(":path").unwrap_or("").to_string();
        let held = request.headers.get("prefer").is_some();
        {
            let mut stats = lock(&self.stats);
            let entry = stats.entry(path.clone()).or_default();
            entry.requests += 1;
            entry.held += u64::from(held);
        }
        // `GET <path> HTTP/1.1\r\n`, each header `name: value\r\n` (`host` for `:authority`,
        // plus `content-length: 0` and `connection: close`), the blank line.
        let mut out = 16 + path.len() as u64 + 2;
        for (name, value) in request.headers.iter() {
            if name != b":method" && name != b":path" {
                out += name.len() as u64 + value.len() as u64 + 4;
            }
        }
        out += "content-length: 0\r\nconnection: close\r\n\r\n".len() as u64;
        self.bytes.fetch_add(out, Ordering::SeqCst);
        match self.inner.call(request) {
            UpstreamReply::Pending(rx) => {
                let (tx, forwarded) = channel();
                let bytes = Arc::clone(&self.bytes);
                std::thread::spawn(move || {
                    if let Ok(outcome) = rx.recv() {
                        if let UpstreamOutcome::Response(r) = &outcome {
                            // `HTTP/1.1 200 OK\r\n`, headers, blank line, body.
                            let mut n = 17 + 2 + r.body.len() as u64;
                            for (name, value) in r.headers.iter() {
                                if name != b":status" {
                                    n += name.len() as u64 + value.len() as u64 + 4;
                                }
                            }
                            bytes.fetch_add(n, Ordering::SeqCst);
                        }
                        let _ = tx.send(outcome);
                    }
                });
                UpstreamReply::Pending(forwarded)
            }
            other => other,
        }
    }
}

/// The plugin policy with the revocation defaults; `revocation` members override them.
fn policy(issuer: &Issuer, public_key: &str, node: &str, overrides: Value) -> String {
    let mut revocation = json!({
        "upstream": "origin", "path": "/revocations/snapshot", "delta_path": "/revocations/delta",
        "public_keys": [public_key], "node_id": node
    });
    if let (Some(base), Some(extra)) = (revocation.as_object_mut(), overrides.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({
        "issuers": [{"issuer": ISSUER, "audiences": ["api"], "algorithms": ["ES256"],
                     "jwks": issuer.jwks(&["k1"])}],
        "revocation": revocation,
        "forward_claims": [{"claim": "sub", "header": "x-user"}]
    })
    .to_string()
}

fn proxy(workers: usize, policy: String, upstream: Arc<Counting>) -> Proxy {
    let mut config = ProxyConfig::envoy();
    config.workers = workers;
    config.clock = Clock::real();
    config.plugin_configuration = policy.into_bytes();
    Proxy::new(
        &crate::rg::wasm(),
        config.upstream("origin", upstream as Arc<dyn Upstream>),
    )
    .expect("revguard loads")
}

fn advance(proxies: &mut [&mut Proxy], by: Duration) {
    for p in proxies.iter_mut() {
        p.advance(by).unwrap();
    }
}

/// Runs the proxies in real time until every worker answers `want` for `token`; the seconds
/// after `since` of the slowest worker. `limit` is a liveness bound, not a performance claim.
fn until_every_worker(
    proxies: &mut [&mut Proxy],
    token: &str,
    want: u32,
    since: Instant,
    limit: Duration,
) -> f64 {
    origin::until_every_worker(proxies, token, want, since, limit)
        .into_iter()
        .flatten()
        .fold(0.0, f64::max)
}

fn summary(times: &mut [f64]) -> String {
    times.sort_by(f64::total_cmp);
    format!(
        "p50 {:.2} s, p99 {:.2} s, max {:.2} s over {}",
        percentile(times, 0.5),
        percentile(times, 0.99),
        times.last().copied().unwrap_or(f64::NAN),
        times.len()
    )
}

/// Two proxies (4 and 3 workers) with the default policy against the origin.
fn two_proxies(
    issuer: &Issuer,
    origin: &OriginService,
    overrides: Value,
) -> (Proxy, Proxy, Arc<Counting>, Arc<Counting>) {
    let (ua, ub) = (Counting::new(origin.addr), Counting::new(origin.addr));
    let a = proxy(
        4,
        policy(issuer, &origin.public_key, "proxy-a", overrides.clone()),
        Arc::clone(&ua),
    );
    let b = proxy(
        3,
        policy(issuer, &origin.public_key, "proxy-b", overrides),
        Arc::clone(&ub),
    );
    (a, b, ua, ub)
}

const DELTA: &str = "/revocations/delta";
const SNAPSHOT: &str = "/revocations/snapshot";

#[test]
fn with_the_defaults_a_held_request_per_proxy_carries_each_revocation_in_about_a_second() {
    let dir = temp_dir("propagation-held");
    let origin = OriginService::start(&dir, json!({})).unwrap();
    let issuer = Issuer::new(&["k1"]);
    let (mut a, mut b, ua, ub) = two_proxies(&issuer, &origin, json!({}));
    let warm = issuer.token("k1", "warm", "jti-warm", None, unix_now());
    until_every_worker(
        &mut [&mut a, &mut b],
        &warm,
        200,
        Instant::now(),
        Duration::from_secs(30),
    );
    // Let the holders settle into their held delta request.
    advance(&mut [&mut a, &mut b], Duration::from_secs(1));

    let rounds = 8;
    let mut times = Vec::new();
    let requests_before = ua.total_requests() + ub.total_requests();
    for round in 0..rounds {
        let token = issuer.token(
            "k1",
            "alice",
            &format!("jti-{round}"),
            Some(&format!("s-{round}")),
            unix_now(),
        );
        until_every_worker(
            &mut [&mut a, &mut b],
            &token,
            200,
            Instant::now(),
            Duration::from_secs(30),
        );
        let posted = Instant::now();
        origin
            .revoke(&json!({"sid": format!("s-{round}"), "source": "propagation"}))
            .unwrap();
        times.push(until_every_worker(
            &mut [&mut a, &mut b],
            &token,
            401,
            posted,
            Duration::from_secs(30),
        ));
    }
    let requests = ua.total_requests() + ub.total_requests() - requests_before;
    println!(
        "held (hold_secs 25, refresh 10 s): POST -> denial at all 7 workers of 2 proxies: {}; \
         {requests} origin requests for {rounds} revocations",
        summary(&mut times)
    );
    // Budget: per proxy and revocation, the held answer and the next held request (a few
    // more if a heartbeat or the first snapshot check falls in), never one per worker.
    assert!(
        requests <= 2 * rounds * 4,
        "{requests} requests for {rounds} revocations"
    );
    assert!(
        ua.held(DELTA) >= 1 && ub.held(DELTA) >= 1,
        "the delta is held"
    );

    // Idle: one held request per proxy per `hold_secs`, and the heartbeat's delta.
    let (bytes_a, bytes_b) = (ua.bytes(), ub.bytes());
    let (req_a, snap_a) = (ua.total_requests(), ua.requests(SNAPSHOT));
    let idle = Duration::from_secs(30);
    advance(&mut [&mut a, &mut b], idle);
    let per_sec = |now: u64, before: u64| (now - before) as f64 / idle.as_secs_f64();
    println!(
        "idle egress per proxy (both directions): proxy a {:.0} B/s, proxy b {:.0} B/s \
         ({} requests from proxy a in {idle:?}, {} of them snapshot)",
        per_sec(ua.bytes(), bytes_a),
        per_sec(ub.bytes(), bytes_b),
        ua.total_requests() - req_a,
        ua.requests(SNAPSHOT) - snap_a,
    );
    assert!(per_sec(ua.bytes(), bytes_a) < 1024.0);
    assert!(per_sec(ub.bytes(), bytes_b) < 1024.0);
    // The delta's answers name the snapshot: it is not polled every 10 s while held.
    assert!(ua.requests(SNAPSHOT) - snap_a <= 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_static_server_is_polled_at_the_refresh_interval_and_still_carries_revocations() {
    let Some(bin) = crate::origin::Nginx::binary() else {
        println!("SKIPPED: nginx is not installed (apt-get install nginx)");
        return;
    };
    let dir = temp_dir("propagation-static");
    let export = dir.join("export");
    let origin = OriginService::start(&dir.join("origin"), json!({"export_dir": export})).unwrap();
    let nginx = crate::origin::Nginx::start(bin, &dir, &export);
    let issuer = Issuer::new(&["k1"]);
    let upstream = Counting::new(nginx.addr);
    // Defaults except a short interval, so the test is short: hold_secs stays 25.
    let mut p = proxy(
        3,
        policy(
            &issuer,
            &origin.public_key,
            "proxy-static",
            json!({"refresh_interval_secs": 2}),
        ),
        Arc::clone(&upstream),
    );
    let token = issuer.token("k1", "carol", "jti-carol", None, unix_now());
    until_every_worker(
        &mut [&mut p],
        &token,
        200,
        Instant::now(),
        Duration::from_secs(30),
    );
    let before = upstream.total_requests();
    let window = Duration::from_secs(10);
    p.advance(window).unwrap();
    let polls = upstream.total_requests() - before;
    println!("nginx, refresh 2 s: {polls} requests in {window:?} (snapshot and delta)");
    // nginx answers at once and never says `Preference-Applied`: polling, not a hot loop
    // (two resources every 2 s, plus one for timing slack each).
    assert!(polls <= 2 * (10 / 2 + 1), "{polls} requests in {window:?}");
    let posted = Instant::now();
    origin.revoke(&json!({"jti": "jti-carol"})).unwrap();
    let t = until_every_worker(&mut [&mut p], &token, 401, posted, Duration::from_secs(30));
    println!("through nginx (refresh 2 s, hold_secs 25 ignored): POST -> denial {t:.2} s");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fault_table_origin_restart_and_origin_down() {
    let dir = temp_dir("propagation-faults");
    let port = free_port();
    let config = json!({"listen": format!("127.0.0.1:{port}"), "heartbeat_secs": 10,
                        "max_age_secs": 60});
    let origin = OriginService::start(&dir, config.clone()).unwrap();
    let issuer = Issuer::new(&["k1"]);
    // max_staleness 20 s so the stale phase is reached in the test.
    let (mut a, mut b, ua, _ub) = two_proxies(&issuer, &origin, json!({"max_staleness_secs": 20}));
    let t1 = issuer.token("k1", "u1", "jti-1", None, unix_now());
    let t2 = issuer.token("k1", "u2", "jti-2", None, unix_now());
    let t3 = issuer.token("k1", "u3", "jti-3", None, unix_now());
    let limit = Duration::from_secs(40);
    until_every_worker(&mut [&mut a, &mut b], &t1, 200, Instant::now(), limit);
    origin.revoke(&json!({"jti": "jti-1"})).unwrap();
    until_every_worker(&mut [&mut a, &mut b], &t1, 401, Instant::now(), limit);
    advance(&mut [&mut a, &mut b], Duration::from_millis(500));

    // 1. The origin restarts while the delta requests are held.
    drop(origin);
    advance(&mut [&mut a, &mut b], Duration::from_secs(1));
    // The last generation is kept: t1 still denied, t2 still allowed.
    for w in 0..a.workers() {
        assert_eq!(status(&mut a, w, &t1), 401);
        assert_eq!(status(&mut a, w, &t2), 200);
    }
    let origin = OriginService::start(&dir, config.clone()).unwrap();
    assert_eq!(origin.addr.port(), port);
    let posted = Instant::now();
    origin.revoke(&json!({"jti": "jti-2"})).unwrap();
    let after_restart = until_every_worker(&mut [&mut a, &mut b], &t2, 401, posted, limit);
    println!("revocation after an origin restart: denied at every worker {after_restart:.2} s after the POST");
    // Holding resumed (the proxies went back to held requests, not polling).
    let held_before = ua.held(DELTA);
    let posted = Instant::now();
    origin.revoke(&json!({"jti": "jti-3"})).unwrap();
    let next = until_every_worker(&mut [&mut a, &mut b], &t3, 401, posted, limit);
    println!("next revocation: {next:.2} s");
    assert!(ua.held(DELTA) > held_before);

    // 2. The origin goes down: last good generation kept, retries back off, then stale.
    drop(origin);
    let requests_before = ua.total_requests();
    let down = Instant::now();
    let t4 = issuer.token("k1", "u4", "jti-4", None, unix_now());
    advance(&mut [&mut a, &mut b], Duration::from_secs(8));
    for w in 0..a.workers() {
        assert_eq!(status(&mut a, w, &t3), 401, "still revoked while down");
        assert_eq!(status(&mut a, w, &t4), 200, "last good data in force");
    }
    let tries = ua.total_requests() - requests_before;
    println!("origin down: proxy a made {tries} requests in 8 s (backoff 2, 4, 8 s...)");
    // One holder per proxy retrying with backoff: a handful, not one per worker per tick.
    assert!(tries <= 8, "{tries} requests in 8 s while down");
    // Past max_staleness (20 s after the last data was built): fail closed, with the
    // infrastructure status, not a token error.
    let stale = until_every_worker(
        &mut [&mut a, &mut b],
        &t4,
        503,
        down,
        Duration::from_secs(60),
    );
    println!("origin down: stale-data mode at every worker {stale:.1} s after it went down");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A revocation of the campaign not yet denied everywhere: its index, when it was POSTed, and
/// the (proxy, worker) pairs still allowing its token.
type Open = (usize, Instant, Vec<(usize, usize)>);

/// One campaign: `count` revocations POSTed every `every`, each timed from its POST to its
/// denial at every worker of both proxies; revocations overlap in time.
fn campaign(slug: &str, label: &str, overrides: Value, count: usize, every: Duration) {
    let dir = temp_dir(&format!("propagation-campaign-{slug}"));
    let origin = OriginService::start(&dir, json!({})).unwrap();
    let issuer = Issuer::new(&["k1"]);
    let (mut a, mut b, ua, ub) = two_proxies(&issuer, &origin, overrides);
    let tokens: Vec<String> = (0..count)
        .map(|i| issuer.token("k1", "user", &format!("c-{i}"), None, unix_now()))
        .collect();
    // Every worker has verified every token once (the verified-token cache), as in production
    // where the tokens in use are cached.
    for token in &tokens {
        until_every_worker(
            &mut [&mut a, &mut b],
            token,
            200,
            Instant::now(),
            Duration::from_secs(60),
        );
    }
    advance(&mut [&mut a, &mut b], Duration::from_secs(2));
    let (bytes_before, started) = (ua.bytes() + ub.bytes(), Instant::now());
    let workers: Vec<(usize, usize)> = [a.workers(), b.workers()]
        .iter()
        .enumerate()
        .flat_map(|(p, n)| (0..*n).map(move |w| (p, w)))
        .collect();
    let mut open: Vec<Open> = Vec::new();
    let mut times = Vec::new();
    let mut next = 0usize;
    let mut next_post = Instant::now();
    while times.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "campaign stuck"
        );
        if next < count && Instant::now() >= next_post {
            let posted = Instant::now();
            origin.revoke(&json!({"jti": format!("c-{next}")})).unwrap();
            open.push((next, posted, workers.clone()));
            next += 1;
            next_post = posted + every;
        }
        advance(&mut [&mut a, &mut b], Duration::from_millis(2));
        let proxies = [&mut a, &mut b];
        let mut proxies = proxies;
        open.retain_mut(|(i, posted, pending)| {
            let token = &tokens[*i];
            pending.retain(|&(p, w)| status(proxies[p], w, token) != 401);
            if pending.is_empty() {
                times.push(posted.elapsed().as_secs_f64());
                return false;
            }
            true
        });
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "campaign {label}: POST -> denial at all 7 workers of 2 proxies: {}; \
         egress {:.0} B/s for both proxies over {elapsed:.0} s ({} + {} origin requests)",
        summary(&mut times),
        (ua.bytes() + ub.bytes() - bytes_before) as f64 / elapsed,
        ua.total_requests(),
        ub.total_requests(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "a 200-revocation campaign (minutes): run by the command in BENCHMARKS.md"]
fn campaign_held() {
    campaign(
        "held",
        "held (defaults: hold_secs 25)",
        json!({}),
        200,
        Duration::from_millis(400),
    );
}

#[test]
#[ignore = "a 200-revocation campaign (minutes): run by the command in BENCHMARKS.md"]
fn campaign_polling() {
    campaign(
        "polling",
        "polling (hold_secs 0, refresh 10 s)",
        json!({"hold_secs": 0}),
        200,
        Duration::from_millis(400),
    );
}

/// The worker step: what an idle tick costs each worker VM (simulated clock, 4 workers, the
/// scripted origin of `rg`), as deterministic counts (hostcalls, wasmtime fuel) and wall time.
/// A non-holder's tick reads one small version key per resource; the holder also renews its
/// lease once a second and polls.
#[test]
fn an_idle_tick_costs_a_few_hostcalls() {
    use crate::rg::{config, start, Idp, Origin, ENVOY};
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(ENVOY, &origin.public_key(), json!({}));
    let mut proxy_config = ProxyConfig::envoy();
    proxy_config.fuel = true;
    let workers = 4;
    let mut proxy = start(proxy_config, workers, plugin, ENVOY, &origin, &idp);
    proxy.advance(Duration::from_secs(20)).unwrap();
    let window = Duration::from_secs(20);
    let ticks = (window.as_millis() / 200) as u64;
    let before: Vec<(u64, u64)> = (0..workers)
        .map(|w| (proxy.hostcalls(w).unwrap(), proxy.fuel_consumed(w).unwrap()))
        .collect();
    let wall = Instant::now();
    proxy.advance(window).unwrap();
    let wall = wall.elapsed();
    let mut per_tick = Vec::new();
    for (w, (calls, fuel)) in before.iter().enumerate() {
        let calls = (proxy.hostcalls(w).unwrap() - calls) as f64 / ticks as f64;
        let fuel = (proxy.fuel_consumed(w).unwrap() - fuel) as f64 / ticks as f64;
        per_tick.push((calls, fuel));
    }
    println!(
        "idle tick (200 ms) per worker over {ticks} ticks: hostcalls/tick {:?}, fuel/tick {:?}; \
         wall time {:.1} us per worker tick (debug build of the host, with fuel metering)",
        per_tick
            .iter()
            .map(|(c, _)| format!("{c:.1}"))
            .collect::<Vec<_>>(),
        per_tick
            .iter()
            .map(|(_, f)| format!("{f:.0}"))
            .collect::<Vec<_>>(),
        wall.as_secs_f64() * 1e6 / (ticks as f64 * workers as f64),
    );
    // A budget, not a timing: the quietest worker (not the holder) reads a handful of keys
    // and writes its gauges; no worker averages more than a few dozen hostcalls a tick.
    let quietest = per_tick.iter().map(|(c, _)| *c).fold(f64::MAX, f64::min);
    let busiest = per_tick.iter().map(|(c, _)| *c).fold(0f64, f64::max);
    assert!(quietest <= 16.0, "{per_tick:?}");
    assert!(busiest <= 40.0, "{per_tick:?}");
}

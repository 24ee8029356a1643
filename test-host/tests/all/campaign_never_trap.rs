//! Never trap: random and adversarial requests (header maps, tokens) and upstream answers
//! (origin snapshots, deltas, key sets; IdP introspection) through the real revguard .wasm in
//! the Envoy and the Kong profile. Every request must end (forwarded or answered locally, never
//! still paused after the callout timeout plus one second), no worker VM may fail, and valid
//! tokens must still be allowed once the chaos stops.

use crate::campaign::{full, now_secs, scale, table, Rng};
use crate::rg::*;
use revguard::snapshot::RevocationTarget;
use revguard_test_host::{
    CalloutRequest, HeaderMap, HttpRequest, HttpResponse, Outcome, Proxy, ProxyConfig,
    ScriptedUpstream, Upstream, UpstreamOutcome, UpstreamReply, UpstreamResponse,
};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Introspection timeout of the campaign's configuration; no request may stay paused past it
/// plus one second.
const CALLOUT_TIMEOUT_MS: u64 = 500;

/// Wraps a real upstream and, while `on`, answers most calls adversarially.
struct Chaos {
    inner: Arc<ScriptedUpstream>,
    rng: Mutex<Rng>,
    on: AtomicBool,
    answered: AtomicU64,
}

impl Chaos {
    fn new(inner: Arc<ScriptedUpstream>, seed: u64) -> Arc<Chaos> {
        Arc::new(Chaos {
            inner,
            rng: Mutex::new(Rng::new(seed)),
            on: AtomicBool::new(true),
            answered: AtomicU64::new(0),
        })
    }
}

fn response(status: u16, headers: HeaderMap, body: Vec<u8>) -> UpstreamReply {
    let mut all = HeaderMap::new();
    all.add(b":status", status.to_string().as_bytes());
    for (k, v) in headers.iter() {
        all.add(k, v);
    }
    UpstreamReply::response(UpstreamResponse {
        headers: all,
        body,
        trailers: HeaderMap::new(),
    })
}

/// Nested JSON arrays `depth` deep (parsers with recursion must refuse, not overflow).
fn deep_json(depth: usize) -> Vec<u8> {
    let mut v = vec![b'['; depth];
    v.extend(std::iter::repeat_n(b']', depth));
    v
}

impl Upstream for Chaos {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply {
        self.answered.fetch_add(1, Ordering::Relaxed);
        let real = self.inner.call(request);
        if !self.on.load(Ordering::Relaxed) {
            return real;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let real_body = match &real {
            UpstreamReply::Ready {
                outcome: UpstreamOutcome::Response(r),
                ..
            } => r.body.clone(),
            _ => Vec::new(),
        };
        match rng.below(14) {
            0 | 1 => real,
            // Huge: up to 2 MiB of random bytes, or a real body padded past every limit.
            2 => {
                let n = 1 + rng.below(2 << 20);
                response(200, HeaderMap::new(), rng.bytes(n))
            }
            3 => response(200, HeaderMap::new(), Vec::new()),
            // Not UTF-8, random status.
            4 => {
                let status = rng.below(1000) as u16;
                let n = rng.below(4096);
                let mut body = rng.bytes(n);
                body.push(0xff);
                response(status, HeaderMap::new(), body)
            }
            // The real body cut anywhere.
            5 => {
                let cut = rng.below(real_body.len().max(1));
                response(200, HeaderMap::new(), real_body[..cut].to_vec())
            }
            // The real body with flipped bits.
            6 => {
                let mut body = real_body;
                for _ in 0..1 + rng.below(8) {
                    if !body.is_empty() {
                        let at = rng.below(body.len());
                        body[at] ^= 1 << rng.below(8);
                    }
                }
                response(200, HeaderMap::new(), body)
            }
            7 => response(rng.below(1000) as u16, HeaderMap::new(), real_body),
            8 => UpstreamReply::reset(),
            9 => UpstreamReply::connect_failure(),
            10 => UpstreamReply::Hang,
            11 => real.after(Duration::from_millis(rng.below(3000) as u64)),
            // Odd headers: duplicated, empty, huge or non-UTF-8 ETags and names, no `:status`.
            12 => {
                let mut headers = HeaderMap::new();
                headers.add(b"etag", b"\"a\"");
                headers.add(b"etag", b"\"b\"");
                headers.add(b"", b"");
                headers.add(b"\xff\xfe", b"\x00\xff");
                let etag_len = rng.below(70_000);
                headers.add(b"etag", &vec![b'e'; etag_len]);
                headers.add(b"content-length", b"-1");
                if rng.chance(30) {
                    return UpstreamReply::response(UpstreamResponse {
                        headers,
                        body: real_body,
                        trailers: HeaderMap::new(),
                    });
                }
                response(200, headers, real_body)
            }
            // Valid JSON of the wrong shape.
            _ => {
                let bodies: [&[u8]; 8] = [
                    b"null",
                    b"[]",
                    br#"{"active":"yes"}"#,
                    br#"{"active":true,"exp":-1,"scope":7,"sub":{"x":1}}"#,
                    br#"{"active":true,"exp":18446744073709551616}"#,
                    br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"k1"}]}"#,
                    br#"{"keys":"none"}"#,
                    b"{\"keys\":[],\"\xff\":1}",
                ];
                let body = if rng.chance(20) {
                    deep_json(100_000)
                } else {
                    rng.pick(&bodies).to_vec()
                };
                response(200, HeaderMap::new(), body)
            }
        }
    }
}

/// Tokens the request generator draws from.
struct Tokens {
    valid: Vec<String>,
    /// Signed by the issuer's second key, which the key set never lists.
    unknown_kid: String,
    expired: String,
    deep_claims: String,
    huge: String,
}

impl Tokens {
    fn new(issuer: &Issuer) -> Tokens {
        let valid = (0..8)
            .map(|i| issuer.token("k1", &format!("u{i}"), &format!("j{i}"), Some("s1"), T0))
            .collect();
        let nested =
            serde_json::from_slice::<serde_json::Value>(&deep_json(100)).expect("100 levels parse");
        let deep_claims = issuer.sign(
            "k1",
            &json!({"iss": ISSUER, "aud": "api", "sub": "deep", "exp": T0 + 3600, "x": nested}),
        );
        let huge = issuer.sign(
            "k1",
            &json!({"iss": ISSUER, "aud": "api", "sub": "h", "exp": T0 + 3600,
                     "pad": "x".repeat(70_000)}),
        );
        Tokens {
            valid,
            unknown_kid: issuer.token("k2", "eve", "e1", None, T0),
            expired: issuer.token("k1", "old", "o1", None, T0 - 10_000),
            deep_claims,
            huge,
        }
    }

    /// A token-like value: valid, damaged, foreign or random.
    fn draw(&self, rng: &mut Rng) -> Vec<u8> {
        let valid = rng.pick(&self.valid).as_bytes().to_vec();
        match rng.below(14) {
            0..=2 => valid,
            3 => {
                let mut t = valid;
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(t.len());
                    t[at] ^= 1 << rng.below(8);
                }
                t
            }
            4 => {
                let cut = rng.below(valid.len());
                valid[..cut].to_vec()
            }
            5 => self.unknown_kid.as_bytes().to_vec(),
            6 => self.expired.as_bytes().to_vec(),
            7 => self.deep_claims.as_bytes().to_vec(),
            8 => self.huge.as_bytes().to_vec(),
            9 => {
                let n = rng.below(600);
                rng.bytes(n)
            }
            // `alg: none`, and an HS256 header over the ES256 payload.
            10 => {
                let payload = valid.split(|b| *b == b'.').nth(1).unwrap_or(b"").to_vec();
                let header: &[u8] = if rng.chance(50) {
                    b"eyJhbGciOiJub25lIn0"
                } else {
                    b"eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0"
                };
                [header, b".", &payload, b"."].concat()
            }
            11 => b"a.b.c".to_vec(),
            12 => vec![b'.'; rng.below(40)],
            _ => {
                let n = rng.below(64);
                (0..n).map(|_| b'A' + (rng.below(58) as u8)).collect()
            }
        }
    }
}

fn bearer(rng: &mut Rng, token: &[u8]) -> Vec<u8> {
    let scheme: &[u8] = rng.pick::<&[u8]>(&[
        b"Bearer ".as_slice(),
        b"bearer ",
        b"BEARER\t",
        b"Bearer  ",
        b"Bearer",
        b"Basic ",
        b"",
    ]);
    [scheme, token].concat()
}

/// A random, mostly hostile request. Pseudo-headers may be missing, repeated or not UTF-8.
fn adversarial_request(rng: &mut Rng, tokens: &Tokens) -> HttpRequest {
    let mut h = HeaderMap::new();
    if !rng.chance(3) {
        let method: &[u8] =
            rng.pick::<&[u8]>(&[b"GET".as_slice(), b"POST", b"DELETE", b"", b"G\xffT"]);
        h.add(b":method", method);
    }
    if !rng.chance(3) {
        let mut path: Vec<u8> = rng
            .pick(&[
                b"/orders".as_slice(),
                b"/healthz",
                b"/admin/users",
                b"/%2e%2e/healthz",
                b"/healthz/../admin/x",
                b"",
                b"*",
                b"/\xff\xfe",
            ])
            .to_vec();
        if rng.chance(15) {
            path.extend_from_slice(b"?access_token=");
            let t = tokens.draw(rng);
            path.extend_from_slice(&t);
            if rng.chance(30) {
                path.extend_from_slice(b"&access_token=x");
            }
        }
        h.add(b":path", &path);
    }
    h.add(b":scheme", b"https");
    h.add(b":authority", b"api");
    if rng.chance(5) {
        h.add(b":path", b"/second");
    }
    for _ in 0..rng.below(7) {
        match rng.below(11) {
            0..=2 => {
                let t = tokens.draw(rng);
                h.add(b"authorization", &bearer(rng, &t));
            }
            3 => {
                let (a, b) = (tokens.draw(rng), tokens.draw(rng));
                h.add(b"authorization", &bearer(rng, &a));
                h.add(b"Authorization", &bearer(rng, &b));
            }
            4 => {
                let t = tokens.draw(rng);
                h.add(
                    b"cookie",
                    &[b"a=1; access_token=".as_slice(), &t, b"; b"].concat(),
                );
            }
            // Huge values, up to about 1 MB.
            5 if rng.chance(25) => {
                let n = rng.below(1 << 20);
                let value = vec![b'x'; n];
                let name: &[u8] =
                    rng.pick::<&[u8]>(&[b"authorization".as_slice(), b"x-big", b"cookie"]);
                h.add(name, &value);
            }
            6 => h.add(b"", b""),
            7 => {
                let (n, v) = (rng.below(40), rng.below(200));
                h.add(&rng.bytes(n), &rng.bytes(v));
            }
            // Headers the filter forwards or reads: forged identity, tenant, request id.
            8 => h.add(b"x-user", b"admin"),
            9 => {
                let n = rng.below(100);
                h.add(b"x-request-id", &rng.bytes(n));
            }
            _ => h.add(b"x-tenant-id", b"\x00t1"),
        }
    }
    let body = rng.chance(10).then(|| {
        let n = rng.below(2048);
        rng.bytes(n)
    });
    HttpRequest {
        headers: h,
        body,
        trailers: None,
    }
}

struct Run {
    profile: &'static str,
    requests: usize,
    forwarded: usize,
    local: usize,
    abandoned: usize,
    callouts: u64,
    wall: Duration,
}

/// Fails the test if `proxy` logged a trap or a worker VM failed.
fn assert_alive(proxy: &Proxy, profile: &str, seed_hint: usize) {
    let trap = proxy
        .take_logs()
        .into_iter()
        .find(|l| l.message.contains("wasm trap in"));
    assert!(trap.is_none(), "{profile}, request {seed_hint}: {trap:?}");
    for w in 0..proxy.workers() {
        assert_eq!(proxy.vm_failure(w), None, "{profile}, worker {w}");
    }
}

fn campaign(profile: &'static str, requests: usize, seed: u64) -> Run {
    let (names, proxy_config, host) = match profile {
        "envoy" => (ENVOY, ProxyConfig::envoy(), json!("envoy")),
        _ => (
            KONG,
            ProxyConfig::kong(),
            json!({"kong": {"shm_zone": "revguard"}}),
        ),
    };
    let mut rng = Rng::new(seed);
    let issuer = Issuer::new(&["k1", "k2"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    idp.set_mode(IdpMode::Up, Duration::from_millis(20));
    let tokens = Tokens::new(&issuer);
    for t in &tokens.valid {
        idp.set_active(t, true);
    }
    let origin_chaos = Chaos::new(origin.upstream.clone(), rng.next_u64());
    let idp_chaos = Chaos::new(idp.upstream.clone(), rng.next_u64());
    let plugin = config(
        names,
        &origin.public_key(),
        json!({
            "host": host,
            "token_sources": [{"header": "authorization"}, {"cookie": "access_token"},
                              {"query": "access_token"}],
            "opaque_tokens": "introspect",
            "routes": [
                {"name": "health", "path": "/healthz", "no_auth": true},
                {"name": "admin", "path_prefix": "/admin/", "introspection": "always"}
            ],
            "introspection": {"upstream": names.idp, "path": "/introspect", "client_id": "gw",
                "client_secret": "secret", "timeout_ms": CALLOUT_TIMEOUT_MS, "cache_ttl_secs": 5},
        }),
    );
    let mut proxy_config = proxy_config
        .upstream(names.origin, origin_chaos.clone() as Arc<dyn Upstream>)
        .upstream(names.idp, idp_chaos.clone() as Arc<dyn Upstream>);
    proxy_config.workers = 2;
    proxy_config.plugin_configuration = plugin.into_bytes();
    let mut proxy = Proxy::start(&compiled(false), proxy_config).expect("revguard loads");
    let max_wait = Duration::from_millis(CALLOUT_TIMEOUT_MS + 1000);
    let started = Instant::now();
    let mut run = Run {
        profile,
        requests,
        forwarded: 0,
        local: 0,
        abandoned: 0,
        callouts: 0,
        wall: Duration::ZERO,
    };
    for i in 0..requests {
        if rng.chance(15) {
            proxy
                .advance(Duration::from_millis(rng.below(4000) as u64))
                .unwrap();
        }
        if rng.chance(1) {
            let now = now_secs(&proxy);
            origin.revoke(RevocationTarget::Jti(format!("j{}", rng.below(8))));
            if rng.chance(50) {
                origin.publish_snapshot(now);
            } else {
                origin.publish_delta(now);
            }
        }
        let worker = rng.below(2);
        let request = adversarial_request(&mut rng, &tokens);
        // A client that goes away while its request waits for a callout.
        if rng.chance(5) {
            let stream = proxy.send_request(worker, request).unwrap();
            proxy.end_stream(stream).unwrap();
            run.abandoned += 1;
            assert_alive(&proxy, profile, i);
            continue;
        }
        let (stream, outcome) = proxy.run_request(worker, request, max_wait).unwrap();
        match &outcome {
            Outcome::Continued(_) => run.forwarded += 1,
            Outcome::LocalReply(r) => {
                assert_ne!(r.details, "wasm_fail_stream", "{profile}, request {i}");
                assert!(r.status >= 400, "{profile}, request {i}: {r:?}");
                run.local += 1;
            }
            other => panic!("{profile}, request {i} did not end within {max_wait:?}: {other:?}"),
        }
        proxy.finish(stream, HttpResponse::new(200)).unwrap();
        assert_alive(&proxy, profile, i);
    }
    // Chaos off, fresh data: the VMs still serve valid tokens.
    origin_chaos.on.store(false, Ordering::Relaxed);
    idp_chaos.on.store(false, Ordering::Relaxed);
    let now = now_secs(&proxy);
    origin.publish_snapshot(now);
    proxy.advance(Duration::from_secs(25)).unwrap();
    let fresh = issuer.token("k1", "final", "final-1", None, now_secs(&proxy));
    for worker in 0..2 {
        let answer = send(&mut proxy, worker, &fresh);
        assert_eq!(
            answer.verdict(),
            "allow",
            "{profile}: worker {worker} healthy"
        );
    }
    assert_alive(&proxy, profile, requests);
    assert_eq!(proxy.healthy_workers(), vec![0, 1]);
    run.callouts =
        origin_chaos.answered.load(Ordering::Relaxed) + idp_chaos.answered.load(Ordering::Relaxed);
    run.wall = started.elapsed();
    run
}

#[test]
fn campaign_never_trap_adversarial_requests_and_upstream_answers() {
    let mut rng = Rng::from_env("never_trap", 0x6e76_7472_6170_0001);
    let requests = scale(1_500, 50_000);
    let runs: Vec<Run> = ["envoy", "kong"]
        .into_iter()
        .map(|profile| campaign(profile, requests, rng.next_u64()))
        .collect();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.profile.to_string(),
                r.requests.to_string(),
                r.forwarded.to_string(),
                r.local.to_string(),
                r.abandoned.to_string(),
                r.callouts.to_string(),
                "0".to_string(),
                format!("{:.1} s", r.wall.as_secs_f64()),
                "PASS".to_string(),
            ]
        })
        .collect();
    println!(
        "\n### Never trap ({})\n\n{}",
        if full() { "full" } else { "smoke" },
        table(
            &[
                "profile",
                "requests",
                "forwarded",
                "local replies",
                "abandoned mid-callout",
                "upstream answers (mostly adversarial)",
                "traps / hung",
                "wall",
                "result"
            ],
            &rows
        )
    );
}

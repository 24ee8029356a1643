//! `bench`: what each decision path costs per request in the real filter, in wall time and in
//! wasmtime fuel (deterministic: the same on any machine), next to two baseline filters in the
//! same engine and host: one that only runs jwt-simple's own verification, and one that only runs
//! the bare signature operation of the crate revguard uses for each algorithm (`bare-crypto`).
//!
//! Paths are measured interleaved, one request of each per round, so that machine noise hits them
//! alike and the ratios hold even where the absolute figures wander.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use revguard::snapshot::{build_snapshot, BuildOptions, Revocation, RevocationTarget, SigningKey};
use revguard_test_host::{
    CalloutRequest, Engine, HttpRequest, HttpResponse, Outcome, Proxy, ProxyConfig,
    ScriptedUpstream, Upstream, UpstreamReply, UpstreamResponse,
};
use serde_json::{json, Value};

use crate::common::{jwks, payload, Key, Signer, AUDIENCE, ISSUER, NOW};

const ALGS: [&str; 6] = ["ES256", "ES384", "EdDSA", "RS256", "PS256", "HS256"];
/// The algorithms with a bare-operation baseline, and the crate operation it runs
/// (test-host/tests/fixtures/bare-crypto).
const BARE: [(&str, &str); 5] = [
    ("RS256", "rsa 0.10 PKCS#1 v1.5"),
    ("PS256", "rsa 0.10 PSS"),
    ("HS256", "hmac-sha256"),
    ("ES256", "p256 ECDSA"),
    ("EdDSA", "ed25519-compact"),
];
/// Distinct flagged tokens in the snapshot-hit path (each should cost one callout per TTL).
const FLAGGED: usize = 10;
/// Back-to-back requests per round on the cheap paths.
const BURST: usize = 10;

#[derive(ClapArgs)]
pub struct Args {
    /// Rounds (one request per path per round).
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The filter module (default: build this repository's filter).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Instead: four workers share one proxy; signature checks and introspection calls per
    /// token with sharing off and on, and the cost of a shared verdict (bench_fleet.rs).
    #[arg(long)]
    fleet: bool,
    /// Distinct tokens of `--fleet`.
    #[arg(long, default_value_t = 1000)]
    tokens: usize,
}

/// Per-request samples of one path.
#[derive(Default)]
struct Samples {
    nanos: Vec<u64>,
    fuel: Vec<u64>,
    hostcalls: Vec<u64>,
    /// The last request's hostcalls by import name (a path makes the same calls every time).
    calls: BTreeMap<&'static str, u64>,
}

impl Samples {
    fn median(values: &[u64]) -> u64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or(0)
    }

    fn p90(values: &[u64]) -> u64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.get(sorted.len() * 9 / 10).copied().unwrap_or(0)
    }

    fn micros(&self) -> f64 {
        Samples::median(&self.nanos) as f64 / 1e3
    }

    fn fuel(&self) -> u64 {
        Samples::median(&self.fuel)
    }

    fn hostcalls(&self) -> u64 {
        Samples::median(&self.hostcalls)
    }

    /// `proxy_log 1, proxy_get_header_map_pairs 1, ...`, most frequent first.
    fn calls_text(&self) -> String {
        let mut calls: Vec<(&&str, &u64)> = self.calls.iter().collect();
        calls.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        calls
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One proxy (one worker, simulated clock, fuel counting) and the requests sent through it.
struct Bench {
    proxy: Proxy,
}

impl Bench {
    fn new(
        wasm: &[u8],
        plugin_config: &Value,
        upstreams: &[(&str, Arc<ScriptedUpstream>)],
    ) -> Result<Bench, String> {
        let mut config = ProxyConfig::envoy();
        config.fuel = true;
        config.engine = Engine::Wasmtime;
        config.clock = revguard_test_host::Clock::simulated(NOW);
        config.plugin_configuration = plugin_config.to_string().into_bytes();
        for (name, upstream) in upstreams {
            config = config.upstream(name, upstream.clone() as Arc<dyn Upstream>);
        }
        let mut proxy = Proxy::new(wasm, config).map_err(|e| e.to_string())?;
        // The first tick fetches key sets and the snapshot.
        proxy
            .advance(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        Ok(Bench { proxy })
    }

    /// Sends one request with `token`, records its cost, and returns the status the client got.
    fn request(&mut self, token: &str, samples: &mut Samples) -> Result<u32, String> {
        let request =
            HttpRequest::get("api", "/orders").header("authorization", format!("Bearer {token}"));
        self.send(request, samples)
    }

    fn send(&mut self, request: HttpRequest, samples: &mut Samples) -> Result<u32, String> {
        let fuel_before = self.proxy.fuel_consumed(0).unwrap_or(0);
        let calls_before = self.proxy.hostcalls_by_name(0).unwrap_or_default();
        let started = Instant::now();
        let (stream, outcome) = self
            .proxy
            .run_request(0, request, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let status = match outcome {
            Outcome::Continued(_) => {
                self.proxy
                    .finish(stream, HttpResponse::new(200))
                    .map_err(|e| e.to_string())?;
                200
            }
            Outcome::LocalReply(reply) => {
                self.proxy.end_stream(stream).map_err(|e| e.to_string())?;
                reply.status
            }
            other => return Err(format!("the request did not finish: {other:?}")),
        };
        samples
            .nanos
            .push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        samples.fuel.push(
            self.proxy
                .fuel_consumed(0)
                .unwrap_or(0)
                .saturating_sub(fuel_before),
        );
        let mut calls = self.proxy.hostcalls_by_name(0).unwrap_or_default();
        for (name, n) in calls.iter_mut() {
            *n = n.saturating_sub(calls_before.get(name).copied().unwrap_or(0));
        }
        calls.retain(|_, n| *n > 0);
        samples.hostcalls.push(calls.values().sum());
        samples.calls = calls;
        Ok(status)
    }
}

fn token(signer: &Signer, sub: &str, jti: &str) -> String {
    let mut claims = payload();
    claims["sub"] = json!(sub);
    claims["jti"] = json!(jti);
    signer.sign(&claims)
}

/// `token` with one signature character changed: same length, never valid.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = token.len() - 10;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap_or_default()
}

fn public_pem(signer: &Signer) -> String {
    let pem = match &signer.key {
        Key::ES256(k) => k.public_key().to_pem(),
        Key::ES384(k) => k.public_key().to_pem(),
        Key::EdDSA(k) => Ok(k.public_key().to_pem()),
        Key::RS256(k) => k.public_key().to_pem(),
        Key::PS256(k) => k.public_key().to_pem(),
        _ => Ok(String::new()),
    };
    pem.unwrap_or_default()
}

fn respond(body: Vec<u8>) -> UpstreamReply {
    UpstreamReply::response(UpstreamResponse::new(200, &[], &body))
}

pub fn run(args: Args) -> Result<(), String> {
    // The published figures (time and fuel) are wasmtime's: no silent fallback to the interpreter.
    Engine::Wasmtime
        .require()
        .map_err(|e| format!("bench measures on wasmtime: {e}"))?;
    let rounds = args.rounds.max(FLAGGED + 1);
    let wasm = crate::wasm::revguard(args.wasm.as_deref())?;
    if args.fleet {
        return crate::bench_fleet::run_fleet(&wasm, args.tokens, args.json.as_deref());
    }
    let baseline_wasm = crate::wasm::fixture("jwt-baseline")?;
    let bare_wasm = crate::wasm::fixture("bare-crypto")?;
    eprintln!("signing tokens ...");
    let signers: Vec<Signer> = ALGS
        .iter()
        .map(|alg| Signer::generate(alg, &alg.to_lowercase()))
        .collect();
    let key_set = jwks(&signers.iter().map(Signer::public_jwk).collect::<Vec<_>>());
    let origin_key = SigningKey::from_seed([9; 32]).map_err(|e| e.to_string())?;
    let mut revoked = vec![Revocation {
        target: RevocationTarget::Subject {
            sub: "revoked-user".into(),
            not_before: NOW,
        },
        exp: None,
    }];
    revoked.extend((0..FLAGGED).map(|i| Revocation {
        target: RevocationTarget::Jti(format!("flagged-{i}")),
        exp: None,
    }));
    let options = BuildOptions {
        generation: 1,
        built_at: NOW,
        max_age_secs: 3600,
        fp_rate: 0.001,
        salt: [3; 32],
    };
    let snapshot = build_snapshot(&revoked, &options, &origin_key).map_err(|e| e.to_string())?;

    let active = json!({"active": true, "sub": "user-1", "exp": NOW + 3540})
        .to_string()
        .into_bytes();
    let idp = ScriptedUpstream::with_fallback(move |req: &CalloutRequest| {
        match req.headers.get_str(":path") {
            Some("/jwks") => respond(key_set.clone()),
            _ => respond(active.clone()),
        }
    });
    let origin =
        ScriptedUpstream::with_fallback(move |_: &CalloutRequest| respond(snapshot.clone()));
    let config = json!({
        "issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE], "algorithms": ALGS,
                     "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
        "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
        "routes": [{"name": "health", "path": "/healthz", "no_auth": true}],
        "revocation": {"upstream": "origin", "path": "/current.snap", "refresh_interval_secs": 10,
                       "max_staleness_secs": 3600, "public_keys": [origin_key.public_key_text()]},
        "introspection": {"upstream": "idp", "path": "/introspect", "client_id": "gw",
                          "client_secret": "s", "cache_ttl_secs": 300}
    });
    let loading = Instant::now();
    let mut revguard = Bench::new(&wasm, &config, &[("idp", idp.clone()), ("origin", origin)])?;
    let load_wall = loading.elapsed();
    let startup = revguard.proxy.startup();
    let mut baselines = Vec::new();
    for signer in &signers {
        let config = json!({"alg": signer.alg, "pem": public_pem(signer), "jwk": signer.public_jwk(),
                            "issuer": ISSUER, "audience": AUDIENCE});
        baselines.push(Bench::new(&baseline_wasm, &config, &[])?);
    }
    // One bare-operation filter per BARE algorithm, keyed by its index in ALGS.
    let mut bare = Vec::new();
    for (alg, op) in BARE {
        let i = ALGS
            .iter()
            .position(|a| *a == alg)
            .ok_or_else(|| format!("{alg} is not benchmarked"))?;
        let config = json!({"alg": alg, "jwk": signers[i].public_jwk()});
        bare.push((
            i,
            format!("bare {op} {alg}"),
            Bench::new(&bare_wasm, &config, &[])?,
        ));
    }

    eprintln!("signing {} tokens per algorithm ...", rounds);
    let fresh: Vec<Vec<String>> = signers
        .iter()
        .map(|s| {
            (0..rounds)
                .map(|r| token(s, "user-1", &format!("fresh-{r}")))
                .collect()
        })
        .collect();
    let es256 = &signers[0];
    let cached = token(es256, "user-1", "cached");
    let revoked_token = token(es256, "revoked-user", "old");
    let flagged: Vec<String> = (0..FLAGGED)
        .map(|i| token(es256, "user-1", &format!("flagged-{i}")))
        .collect();
    // Cheap denials (issue 15): RS256, the dearest signature to check, refused again and again.
    let rs256 = &signers[3];
    let mut expired_claims = payload();
    expired_claims["iat"] = json!(NOW - 7200);
    expired_claims["nbf"] = json!(NOW - 7200);
    expired_claims["exp"] = json!(NOW - 3600);
    let expired = rs256.sign(&expired_claims);
    let bad_signature = tampered(&token(rs256, "user-1", "forged"));
    // Warm: verify once so the cached paths start cached.
    revguard.request(&cached, &mut Samples::default())?;
    revguard.request(&revoked_token, &mut Samples::default())?;

    let mut results: BTreeMap<String, Samples> = BTreeMap::new();
    let callouts_before = introspections(&idp);
    eprintln!("measuring {rounds} rounds ...");
    for round in 0..rounds {
        for (i, alg) in ALGS.iter().enumerate() {
            let t = &fresh[i][round];
            expect(
                revguard.request(t, entry(&mut results, &format!("first-seen {alg}")))?,
                200,
                alg,
            )?;
            expect(
                baselines[i].request(
                    t,
                    entry(&mut results, &format!("jwt-simple verify only {alg}")),
                )?,
                200,
                alg,
            )?;
            for (_, name, bench) in bare.iter_mut().filter(|(at, _, _)| *at == i) {
                expect(bench.request(t, entry(&mut results, name))?, 200, name)?;
            }
        }
        // Cheap paths run in bursts, as a busy gateway runs them back to back: a lone sample after a
        // signature check measures cold CPU caches more than the path.
        for _ in 0..BURST {
            expect(
                revguard.request(&cached, entry(&mut results, "cached token"))?,
                200,
                "cached",
            )?;
        }
        for _ in 0..BURST {
            let health = HttpRequest::get("api", "/healthz")
                .header("authorization", format!("Bearer {cached}"));
            expect(
                revguard.send(
                    health,
                    entry(&mut results, "no_auth route (host + SDK floor)"),
                )?,
                200,
                "no_auth",
            )?;
        }
        for _ in 0..BURST {
            expect(
                revguard.request(
                    &revoked_token,
                    entry(&mut results, "revoked (exact subject table)"),
                )?,
                401,
                "revoked",
            )?;
        }
        for _ in 0..BURST {
            expect(
                revguard.request(
                    &bad_signature,
                    entry(&mut results, "bad signature RS256, sent again"),
                )?,
                401,
                "bad signature",
            )?;
        }
        for _ in 0..BURST {
            expect(
                revguard.request(&expired, entry(&mut results, "expired RS256, sent again"))?,
                401,
                "expired",
            )?;
        }
        for _ in 0..BURST {
            expect(
                revguard.send(
                    HttpRequest::get("api", "/orders"),
                    entry(&mut results, "missing token"),
                )?,
                401,
                "missing token",
            )?;
        }
        let path = if round < FLAGGED {
            "snapshot hit, introspection call"
        } else {
            "snapshot hit, cached answer"
        };
        let repeat = if round < FLAGGED { 1 } else { BURST };
        for _ in 0..repeat {
            expect(
                revguard.request(&flagged[round % FLAGGED], entry(&mut results, path))?,
                200,
                path,
            )?;
        }
    }
    let callouts = introspections(&idp) - callouts_before;
    report(
        &results,
        callouts,
        wasm.len(),
        startup,
        load_wall,
        args.json.as_deref(),
    )
}

fn entry<'a>(results: &'a mut BTreeMap<String, Samples>, name: &str) -> &'a mut Samples {
    results.entry(name.to_string()).or_default()
}

fn expect(status: u32, want: u32, path: &str) -> Result<(), String> {
    if status == want {
        Ok(())
    } else {
        Err(format!(
            "{path}: expected {want}, got {status}: the bench would measure the wrong path"
        ))
    }
}

fn introspections(idp: &ScriptedUpstream) -> usize {
    idp.requests()
        .iter()
        .filter(|r| r.headers.get_str(":path") == Some("/introspect"))
        .count()
}

fn report(
    results: &BTreeMap<String, Samples>,
    callouts: usize,
    wasm_bytes: usize,
    startup: revguard_test_host::Startup,
    load_wall: Duration,
    json_file: Option<&std::path::Path>,
) -> Result<(), String> {
    let get = |name: &str| {
        results
            .get(name)
            .ok_or_else(|| format!("no samples for {name}"))
    };
    let first = get("first-seen ES256")?;
    let cached = get("cached token")?;
    println!(
        "{:<36} {:>11} {:>11} {:>13} {:>10}",
        "path (per request)", "median µs", "p90 µs", "median fuel", "hostcalls"
    );
    let mut rows = Vec::new();
    for (name, s) in results {
        println!(
            "{:<36} {:>11.1} {:>11.1} {:>13} {:>10}",
            name,
            s.micros(),
            Samples::p90(&s.nanos) as f64 / 1e3,
            s.fuel(),
            s.hostcalls()
        );
        rows.push(json!({"path": name, "median_us": s.micros(), "p90_us": Samples::p90(&s.nanos) as f64 / 1e3,
                         "median_fuel": s.fuel(), "median_hostcalls": s.hostcalls(),
                         "hostcalls_by_name": s.calls, "samples": s.nanos.len()}));
    }
    println!();
    println!("hostcalls per request, by name (the last request of each path):");
    for (name, s) in results {
        println!("  {name}: {}", s.calls_text());
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    println!();
    println!(
        "cached vs first-seen ES256: {:.0}x cheaper in time, {:.0}x in fuel",
        ratio(first.micros(), cached.micros()),
        ratio(first.fuel() as f64, cached.fuel() as f64)
    );
    let mut overheads = Vec::new();
    for alg in ALGS {
        let ours = get(&format!("first-seen {alg}"))?;
        let base = get(&format!("jwt-simple verify only {alg}"))?;
        let time = ratio(ours.micros(), base.micros());
        let fuel = ratio(ours.fuel() as f64, base.fuel() as f64);
        println!("first-seen {alg} vs jwt-simple's own verify: time {time:.3}x, fuel {fuel:.3}x");
        overheads.push(json!({"alg": alg, "time_ratio": time, "fuel_ratio": fuel}));
    }
    let mut versus_bare = Vec::new();
    for (alg, op) in BARE {
        let ours = get(&format!("first-seen {alg}"))?;
        let base = get(&format!("bare {op} {alg}"))?;
        let time = ratio(ours.micros(), base.micros());
        let fuel = ratio(ours.fuel() as f64, base.fuel() as f64);
        println!("first-seen {alg} vs bare {op}: time {time:.3}x, fuel {fuel:.3}x");
        versus_bare
            .push(json!({"alg": alg, "operation": op, "time_ratio": time, "fuel_ratio": fuel}));
    }
    let flagged_requests = get("snapshot hit, introspection call")?.nanos.len()
        + get("snapshot hit, cached answer")?.nanos.len();
    println!(
        "introspection: {callouts} callouts for {flagged_requests} requests carrying {FLAGGED} distinct flagged tokens"
    );
    println!(
        "module: {wasm_bytes} bytes; compile {:.1} ms, start one VM {:.2} ms (load + first fetches {:.0} ms)",
        startup.compile.as_secs_f64() * 1e3,
        startup.start_per_vm.as_secs_f64() * 1e3,
        load_wall.as_secs_f64() * 1e3
    );
    let json = json!({
        "paths": rows,
        "cached_vs_first_seen_es256": {"time": ratio(first.micros(), cached.micros()),
                                        "fuel": ratio(first.fuel() as f64, cached.fuel() as f64)},
        "first_seen_vs_jwt_simple": overheads,
        "first_seen_vs_bare": versus_bare,
        "introspection": {"callouts": callouts, "requests": flagged_requests, "distinct_flagged_tokens": FLAGGED},
        "module": {"bytes": wasm_bytes, "compile_ms": startup.compile.as_secs_f64() * 1e3,
                   "start_vm_ms": startup.start_per_vm.as_secs_f64() * 1e3},
    });
    print_and_save(&json, json_file)
}

/// Prints a bench's results as JSON and, with `--json FILE`, writes them there too.
pub fn print_and_save(json: &Value, file: Option<&std::path::Path>) -> Result<(), String> {
    println!("\n{json}");
    if let Some(file) = file {
        std::fs::write(file, serde_json::to_string_pretty(json).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

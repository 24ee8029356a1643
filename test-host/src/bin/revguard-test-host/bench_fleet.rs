//! `bench --fleet`: one proxy of four worker VMs, 1,000 distinct ES256 tokens, each sent to all
//! four workers in turn. Counts signature checks (the filter's `revguard_signature_checks`) and
//! introspection calls (the identity provider's request log) per token with sharing off
//! (`sharing.verdict_slots` and `answer_slots` 0: every worker verifies and asks for itself) and
//! on, and measures what a request that takes another worker's verdict costs next to one that
//! verifies a first-seen ES256 token, in wall time and wasmtime fuel.
//!
//! Requests alternate between the workers token by token, so machine noise hits both paths alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use revguard_test_host::{
    CalloutRequest, Clock, Engine, HttpRequest, HttpResponse, MetricValue, Outcome, Proxy,
    ProxyConfig, ScriptedUpstream, Upstream, UpstreamReply, UpstreamResponse,
};
use serde_json::{json, Value};

use crate::common::{jwks, payload, Signer, AUDIENCE, ISSUER, NOW};

const WORKERS: usize = 4;

/// Per-request samples of one path.
#[derive(Default)]
struct Samples {
    nanos: Vec<u64>,
    fuel: Vec<u64>,
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

impl Samples {
    fn micros(&self) -> f64 {
        median(&self.nanos) as f64 / 1e3
    }

    fn fuel(&self) -> u64 {
        median(&self.fuel)
    }
}

/// One run: what the fleet did for `tokens` tokens, and the samples of each path.
struct Run {
    signature_checks: u64,
    verdict_hits: u64,
    introspection_calls: usize,
    answer_hits: u64,
    first_seen: Samples,
    shared: Samples,
    cached: Samples,
}

fn counter(proxy: &Proxy, name: &str) -> u64 {
    match proxy.guest_metric(name) {
        Some(MetricValue::Counter(n)) => n,
        _ => 0,
    }
}

fn respond(body: &[u8]) -> UpstreamReply {
    UpstreamReply::response(UpstreamResponse::new(200, &[], body))
}

/// Sends `token` through `worker`; records its cost; fails unless it is allowed.
fn request(
    proxy: &mut Proxy,
    worker: usize,
    token: &str,
    samples: &mut Samples,
) -> Result<(), String> {
    let request =
        HttpRequest::get("api", "/orders").header("authorization", format!("Bearer {token}"));
    let fuel_before = proxy.fuel_consumed(worker).unwrap_or(0);
    let started = Instant::now();
    let (stream, outcome) = proxy
        .run_request(worker, request, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let Outcome::Continued(_) = outcome else {
        return Err(format!("worker {worker}: not allowed: {outcome:?}"));
    };
    proxy
        .finish(stream, HttpResponse::new(200))
        .map_err(|e| e.to_string())?;
    samples
        .nanos
        .push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    let fuel = proxy.fuel_consumed(worker).unwrap_or(0);
    samples.fuel.push(fuel.saturating_sub(fuel_before));
    Ok(())
}

/// Four workers with `sharing` (and every token introspected when `introspect`), each token
/// sent to every worker in turn, then once more to the second worker (its own cache).
fn run(
    wasm: &[u8],
    signer: &Signer,
    tokens: &[String],
    sharing: Value,
    introspect: bool,
) -> Result<Run, String> {
    let key_set = jwks(&[signer.public_jwk()]);
    let active = json!({"active": true}).to_string().into_bytes();
    let idp = ScriptedUpstream::with_fallback(move |req: &CalloutRequest| {
        match req.headers.get_str(":path") {
            Some("/jwks") => respond(&key_set),
            _ => respond(&active),
        }
    });
    let route = if introspect { "always" } else { "never" };
    let plugin = json!({
        "issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE], "algorithms": ["ES256"],
                     "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
        "introspection": {"upstream": "idp", "path": "/introspect", "client_id": "gw",
                          "client_secret": "s", "cache_ttl_secs": 300},
        "default_route": {"introspection": route},
        "limits": {"verified_cache_entries": 4 * tokens.len().max(1)},
        "sharing": sharing,
    });
    let mut config = ProxyConfig::envoy();
    config.workers = WORKERS;
    config.fuel = true;
    config.engine = Engine::Wasmtime;
    config.clock = Clock::simulated(NOW);
    config.plugin_configuration = plugin.to_string().into_bytes();
    config = config.upstream("idp", idp.clone() as Arc<dyn Upstream>);
    let mut proxy = Proxy::new(wasm, config).map_err(|e| e.to_string())?;
    // The first ticks fetch the key set and share it with every worker.
    proxy
        .advance(Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    let calls_before = introspections(&idp);
    let mut run = Run {
        signature_checks: 0,
        verdict_hits: 0,
        introspection_calls: 0,
        answer_hits: 0,
        first_seen: Samples::default(),
        shared: Samples::default(),
        cached: Samples::default(),
    };
    for (i, token) in tokens.iter().enumerate() {
        // The first worker to see a token rotates, so every worker writes and reads verdicts.
        let first = i % WORKERS;
        request(&mut proxy, first, token, &mut run.first_seen)?;
        for k in 1..WORKERS {
            request(&mut proxy, (first + k) % WORKERS, token, &mut run.shared)?;
        }
        request(&mut proxy, (first + 1) % WORKERS, token, &mut run.cached)?;
    }
    run.signature_checks = counter(&proxy, "revguard_signature_checks");
    run.verdict_hits = counter(&proxy, "revguard_shared_verdict_hit");
    run.answer_hits = counter(&proxy, "revguard_shared_answer_hit");
    run.introspection_calls = introspections(&idp) - calls_before;
    Ok(run)
}

fn introspections(idp: &ScriptedUpstream) -> usize {
    idp.requests()
        .iter()
        .filter(|r| r.headers.get_str(":path") == Some("/introspect"))
        .count()
}

pub fn run_fleet(
    wasm: &[u8],
    tokens: usize,
    json_file: Option<&std::path::Path>,
) -> Result<(), String> {
    let tokens = tokens.max(1);
    eprintln!("signing {tokens} ES256 tokens ...");
    let signer = Signer::generate("ES256", "es256");
    let tokens: Vec<String> = (0..tokens)
        .map(|i| {
            let mut claims = payload();
            claims["jti"] = json!(format!("fleet-{i}"));
            signer.sign(&claims)
        })
        .collect();
    let off = json!({"verdict_slots": 0, "answer_slots": 0});
    let on = json!({"verdict_slots": 1024, "answer_slots": 1024});
    let n = tokens.len() as f64;
    let mut rows = Vec::new();
    println!(
        "{WORKERS} workers x {} tokens (ES256), each token sent to every worker",
        tokens.len()
    );
    println!(
        "{:<34} {:>22} {:>22}",
        "per token", "sharing off", "sharing on"
    );
    let mut counts = Vec::new();
    for introspect in [false, true] {
        eprintln!("measuring (introspection {introspect}) ...");
        let before = run(wasm, &signer, &tokens, off.clone(), introspect)?;
        let after = run(wasm, &signer, &tokens, on.clone(), introspect)?;
        let what = if introspect {
            "introspection calls"
        } else {
            "signature checks"
        };
        let (b, a) = if introspect {
            (
                before.introspection_calls as f64,
                after.introspection_calls as f64,
            )
        } else {
            (
                before.signature_checks as f64,
                after.signature_checks as f64,
            )
        };
        println!("{what:<34} {:>22.2} {:>22.2}", b / n, a / n);
        counts.push(json!({"what": what, "sharing_off_per_token": b / n, "sharing_on_per_token": a / n,
                           "shared_verdict_hits": after.verdict_hits, "shared_answer_hits": after.answer_hits}));
        let label = if introspect {
            ", every token introspected"
        } else {
            ""
        };
        for (name, samples) in [
            (format!("first seen ES256{label}"), &after.first_seen),
            (format!("another worker's verdict{label}"), &after.shared),
            (format!("cached in the worker{label}"), &after.cached),
        ] {
            rows.push((name, samples.micros(), samples.fuel()));
        }
        if !introspect {
            // Sharing off: the other workers' requests are first-seen verifications too.
            rows.push((
                "first seen ES256, sharing off (workers 2-4)".to_string(),
                before.shared.micros(),
                before.shared.fuel(),
            ));
        }
    }
    println!();
    println!(
        "{:<52} {:>11} {:>13}",
        "request (sharing on)", "median µs", "median fuel"
    );
    for (name, micros, fuel) in &rows {
        println!("{name:<52} {micros:>11.1} {fuel:>13}");
    }
    let find = |prefix: &str| {
        rows.iter()
            .find(|r| r.0 == prefix)
            .map(|r| (r.1, r.2 as f64))
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut ratios = json!({});
    if let (Some(first), Some(shared)) =
        (find("first seen ES256"), find("another worker's verdict"))
    {
        let (time, fuel) = (ratio(first.0, shared.0), ratio(first.1, shared.1));
        println!("\nanother worker's verdict vs first-seen ES256: {time:.0}x cheaper in time, {fuel:.0}x in fuel");
        ratios = json!({"time": time, "fuel": fuel});
    }
    let json = json!({
        "workers": WORKERS,
        "tokens": tokens.len(),
        "per_token": counts,
        "paths": rows.iter().map(|(name, us, fuel)| json!({"path": name, "median_us": us, "median_fuel": fuel})).collect::<Vec<_>>(),
        "shared_verdict_vs_first_seen_es256": ratios,
    });
    crate::bench::print_and_save(&json, json_file)
}

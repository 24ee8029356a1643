//! `demo`: the story a newcomer should see first, with real parts: the real filter in N worker VMs,
//! the real origin service (`revguard origin serve`, a child process with its SQLite store) and an
//! IdP on loopback (real HTTP), real ES256 tokens and signed snapshots and deltas, a real clock.
//! Revoke a session at the origin's API and watch every worker start denying its token, then read
//! the origin's fleet view.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use revguard_test_host::origin_service::OriginService;
use revguard_test_host::{
    Clock, HttpRequest, HttpResponse, HttpUpstream, MetricValue, Outcome, Proxy, ProxyConfig,
    Upstream,
};
use serde_json::json;

use crate::gateway::stats_text;
use crate::loopback::{Idp, AUDIENCE, ISSUER};

#[derive(ClapArgs)]
pub struct Args {
    /// Proxies (each an Envoy with its own worker VMs and shared data).
    #[arg(long, default_value_t = 2)]
    proxies: usize,
    /// Worker VMs per proxy (Envoy: one per worker thread).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// `revocation.hold_secs` of the demo policy (0: plain polling every 10 s, the static-origin
    /// case). Default: the plugin's default (held requests).
    #[arg(long)]
    hold_secs: Option<u64>,
    /// The filter module (default: build this repository's filter).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// The wasm engine (`wasmtime` or `wasmi`; default: wasmi when built in).
    #[arg(long, value_parser = crate::parse_engine)]
    engine: Option<revguard_test_host::Engine>,
}

/// The demo policy: one issuer whose keys come from the IdP, revocation data from the origin
/// (the plugin's default timings: held delta requests), and introspection to confirm snapshot
/// hits. Everything else is revguard's (fail-closed) default.
fn policy(origin: &OriginService, node_id: &str, hold_secs: Option<u64>) -> serde_json::Value {
    let mut revocation = json!({
        "upstream": "origin", "path": "/revocations/snapshot",
        "delta_path": "/revocations/delta", "authority": "origin.demo",
        "node_id": node_id, "public_keys": [origin.public_key]
    });
    if let Some(hold) = hold_secs {
        revocation["hold_secs"] = json!(hold);
    }
    json!({
        "issuers": [{
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "algorithms": ["ES256"],
            "jwks_upstream": {"upstream": "idp", "path": "/jwks", "authority": "idp.demo"}
        }],
        "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
        "revocation": revocation,
        "introspection": {
            "upstream": "idp", "path": "/introspect", "authority": "idp.demo",
            "client_id": "revguard-demo", "client_secret": "demo-secret",
            "timeout_ms": 1000, "cache_ttl_secs": 60
        }
    })
}

/// What the client got: the status and the reason code or forwarded subject.
fn send(proxy: &mut Proxy, worker: usize, token: &str) -> Result<(u32, String), String> {
    let request =
        HttpRequest::get("api.demo", "/orders").header("authorization", format!("Bearer {token}"));
    let (stream, outcome) = proxy
        .run_request(worker, request, Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    let answer = match &outcome {
        Outcome::Continued(forwarded) => {
            let subject = forwarded
                .headers
                .get_str("x-auth-subject")
                .unwrap_or("?")
                .to_string();
            proxy
                .finish(stream, HttpResponse::new(200))
                .map_err(|e| e.to_string())?;
            (200, format!("forwarded, x-auth-subject: {subject}"))
        }
        Outcome::LocalReply(reply) => {
            proxy.end_stream(stream).map_err(|e| e.to_string())?;
            let body = String::from_utf8_lossy(&reply.body).into_owned();
            (reply.status, body)
        }
        other => return Err(format!("request did not finish: {other:?}")),
    };
    Ok(answer)
}

/// The reason code of a denial body (`401 {"error":"revoked_session",...}` -> `401 revoked_session`).
fn short(answer: &str) -> String {
    let (status, body) = answer.split_once(' ').unwrap_or((answer, ""));
    let error = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    match error {
        Some(e) => format!("{status} {e}"),
        None => answer.chars().take(40).collect(),
    }
}

/// How many workers hold `what` (fetched it themselves or loaded the copy another published).
fn holders(proxy: &Proxy, what: &str) -> u64 {
    let count = |name: String| match proxy.guest_metric(&name) {
        Some(MetricValue::Counter(n)) => n,
        _ => 0,
    };
    count(format!("revguard_fetch_{what}_updated"))
        + count(format!("revguard_shared_{what}_loaded"))
}

/// Until every worker has the key set and the snapshot (a proxy answers 503 before that: fail closed).
fn wait_until_ready(proxy: &mut Proxy, name: &str, workers: usize) -> Result<(), String> {
    let started = Instant::now();
    let workers = workers as u64;
    while holders(proxy, "keys_0") < workers || holders(proxy, "snapshot") < workers {
        if started.elapsed() > Duration::from_secs(15) {
            return Err("the workers did not load the key set and snapshot within 15 s".into());
        }
        proxy
            .advance(Duration::from_millis(100))
            .map_err(|e| e.to_string())?;
    }
    println!(
        "   {name}: every worker holds the key set and the snapshot after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn run(args: Args) -> Result<(), String> {
    // The origin's binary and the filter are two cargo builds with their own target directories:
    // side by side, each fills the core the other leaves idle in its serial phases (the filter's
    // single-unit LTO link, SQLite's C compile). On a fresh clone that is most of the wait.
    eprintln!("building the origin service (the revguard binary) ...");
    let origin_build = std::thread::spawn(revguard_test_host::origin_service::revguard_binary);
    let wasm = crate::wasm::revguard(args.wasm.as_deref());
    let origin_built = origin_build
        .join()
        .unwrap_or_else(|_| Err("the origin build thread failed".to_string()));
    let wasm = wasm?;
    origin_built?;
    let state = std::env::temp_dir().join(format!("revguard-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let origin = OriginService::start(&state, json!({}))?;
    let idp = Idp::start()?;
    let (proxies, workers) = (args.proxies.max(1), args.workers.max(1));
    let engine = args.engine.unwrap_or_else(crate::default_engine);
    println!(
        "== revguard demo: {proxies} proxies x {workers} worker VMs of the real filter in the test host ({engine})"
    );
    println!(
        "   origin service (revguard origin serve, store in {}) on http://{}\n   IdP (JWKS + introspection) on http://{}",
        state.display(),
        origin.addr,
        idp.addr
    );
    match args.hold_secs {
        Some(0) => println!("   policy: poll the origin every 10 s (hold_secs 0: the static-origin case)"),
        _ => println!(
            "   policy: plugin defaults: one held request per proxy (Prefer: wait), 200 ms worker tick"
        ),
    }

    let mut gateways = Vec::new();
    for i in 0..proxies {
        let name = format!("demo-proxy-{}", char::from(b'a' + (i % 26) as u8));
        let mut config = ProxyConfig::envoy();
        config.workers = workers;
        config.engine = engine;
        config.clock = Clock::real();
        config.random_seed ^= i as u64 + 1;
        config.plugin_configuration = policy(&origin, &name, args.hold_secs)
            .to_string()
            .into_bytes();
        let to_origin = HttpUpstream::new(origin.addr).ok_or("origin is not on loopback")?;
        let to_idp = HttpUpstream::new(idp.addr).ok_or("IdP is not on loopback")?;
        let config = config
            .upstream("origin", to_origin as Arc<dyn Upstream>)
            .upstream("idp", to_idp as Arc<dyn Upstream>);
        let started = Instant::now();
        let proxy = Proxy::new(&wasm, config).map_err(|e| e.to_string())?;
        println!(
            "   {name}: module {} bytes, compiled and {workers} VMs started in {:.0} ms",
            wasm.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        gateways.push((name, proxy));
    }

    let alice = idp.issue("alice", "session-alice")?;
    let bob = idp.issue("bob", "session-bob")?;
    for (name, proxy) in &mut gateways {
        wait_until_ready(proxy, name, workers)?;
    }

    println!("\n== 1. traffic: alice and bob, every worker of every proxy");
    for (name, proxy) in &mut gateways {
        for worker in 0..workers {
            let (status, what) = send(proxy, worker, &alice)?;
            println!("   {name} worker {worker}: alice -> {status} {what}");
        }
        let (status, what) = send(proxy, 0, &bob)?;
        println!("   {name} worker 0: bob   -> {status} {what}");
    }

    println!(
        "\n== 2. alice signs out: revoke her session at the origin (POST /v1/revocations, t = 0)"
    );
    idp.revoke_session("session-alice");
    let introspections_before = idp.introspections();
    let revoked_at = Instant::now();
    let answer = origin.revoke(&json!({"sid": "session-alice", "reason": "user logged out",
                                       "source": "demo"}))?;
    println!(
        "   committed (fsync'd) after {:.0} ms: {answer}",
        revoked_at.elapsed().as_secs_f64() * 1e3
    );

    // Per proxy, per worker: when it first denied alice, and what it answered.
    let mut first_denial: Vec<Vec<Option<(f64, String)>>> = vec![vec![None; workers]; proxies];
    let deadline = Duration::from_secs(if args.hold_secs == Some(0) { 25 } else { 10 });
    let undecided = |d: &Vec<Vec<Option<(f64, String)>>>| d.iter().flatten().any(Option::is_none);
    while undecided(&first_denial) && revoked_at.elapsed() < deadline {
        for ((_, proxy), denials) in gateways.iter_mut().zip(first_denial.iter_mut()) {
            for (worker, denial) in denials.iter_mut().enumerate() {
                if denial.is_some() {
                    continue;
                }
                let (status, body) = send(proxy, worker, &alice)?;
                if status != 200 {
                    let t = revoked_at.elapsed().as_secs_f64();
                    *denial = Some((t, format!("{status} {body}")));
                }
            }
            let (status, _) = send(proxy, 0, &bob)?;
            if status != 200 {
                return Err(format!(
                    "bob was denied ({status}) although only alice was revoked"
                ));
            }
            proxy
                .advance(Duration::from_millis(10))
                .map_err(|e| e.to_string())?;
        }
    }
    let waited = revoked_at.elapsed().as_secs_f64();
    let fleet = origin.fleet()?;

    println!("\n== 3. each worker's first denial of alice (bob stayed allowed) | the origin's fleet view (GET /v1/fleet)");
    let nodes: Vec<&serde_json::Value> = fleet["nodes"].as_array().into_iter().flatten().collect();
    let mut worst = 0f64;
    for ((name, _), denials) in gateways.iter().zip(&first_denial) {
        let node = nodes
            .iter()
            .find(|n| n["node"].as_str() == Some(name.as_str()));
        let fleet_line = node.map_or_else(
            || "not seen by the origin".to_string(),
            |n| {
                format!(
                    "node {name}: generation {} of {}, behind: {}",
                    n["generation"], fleet["generation"], n["behind"]
                )
            },
        );
        for (worker, denial) in denials.iter().enumerate() {
            let left = match denial {
                Some((t, answer)) => {
                    worst = worst.max(*t);
                    format!(
                        "{name} worker {worker}: denied after {t:.2} s ({})",
                        short(answer)
                    )
                }
                None => format!("{name} worker {worker}: still allowing after {waited:.1} s"),
            };
            let right = if worker == 0 { fleet_line.as_str() } else { "" };
            println!("   {left:<62} | {right}");
        }
    }
    if let Some(reached) = fleet["published"]
        .as_array()
        .and_then(|p| p.first())
        .and_then(|g| g["reached_all_live_nodes_after_ms"].as_u64())
    {
        println!(
            "   {:<62} | generation {} reached every live node {reached} ms after it was published",
            "", fleet["generation"]
        );
    }
    println!(
        "   slowest worker: {worst:.2} s after the commit (bound with held requests: about a second;\n   polling: refresh_interval_secs + one fetch)"
    );
    println!(
        "   IdP: {} introspection calls (a delta names the session exactly: nothing to confirm)",
        idp.introspections() - introspections_before
    );
    for generation in fleet["published"].as_array().into_iter().flatten().take(3) {
        println!("   published {generation}");
    }

    println!(
        "\n== 4. the denial log line (no raw token) and the metrics of {}",
        gateways.first().map_or("", |(n, _)| n.as_str())
    );
    if let Some((_, proxy)) = gateways.first() {
        if let Some(line) = proxy
            .take_logs()
            .into_iter()
            .find(|l| l.message.contains("\"reason\""))
        {
            println!("   [worker {}] {}", line.worker, line.message);
        }
        for line in stats_text(&proxy.metrics()).lines() {
            println!("   {line}");
        }
    }
    if undecided(&first_denial) {
        return Err("a worker never started denying the revoked session".into());
    }
    Ok(())
}

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
    /// Worker VMs (Envoy: one per worker thread).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// `revocation.refresh_interval_secs` of the demo policy.
    #[arg(long, default_value_t = 2)]
    interval: u64,
    /// The filter module (default: build this repository's filter).
    #[arg(long)]
    wasm: Option<PathBuf>,
}

/// The demo policy: one issuer whose keys come from the IdP, snapshots from the origin, and
/// introspection to confirm snapshot hits. Everything else is revguard's (fail-closed) default.
fn policy(origin: &OriginService, interval: u64) -> serde_json::Value {
    json!({
        "issuers": [{
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "algorithms": ["ES256"],
            "jwks_upstream": {"upstream": "idp", "path": "/jwks", "authority": "idp.demo"}
        }],
        "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
        "revocation": {
            "upstream": "origin", "path": "/revocations/snapshot",
            "delta_path": "/revocations/delta", "authority": "origin.demo",
            "refresh_interval_secs": interval, "node_id": "demo-proxy",
            "public_keys": [origin.public_key]
        },
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

/// How many workers hold `what` (fetched it themselves or loaded the copy another published).
fn holders(proxy: &Proxy, what: &str) -> u64 {
    let count = |name: String| match proxy.guest_metric(&name) {
        Some(MetricValue::Counter(n)) => n,
        _ => 0,
    };
    count(format!("revguard.fetch.{what}.updated"))
        + count(format!("revguard.shared.{what}.loaded"))
}

/// Until every worker has the key set and the snapshot (a proxy answers 503 before that: fail closed).
fn wait_until_ready(proxy: &mut Proxy, workers: usize) -> Result<(), String> {
    let started = Instant::now();
    let workers = workers as u64;
    while holders(proxy, "keys.0") < workers || holders(proxy, "snapshot") < workers {
        if started.elapsed() > Duration::from_secs(15) {
            return Err("the workers did not load the key set and snapshot within 15 s".into());
        }
        proxy
            .advance(Duration::from_millis(100))
            .map_err(|e| e.to_string())?;
    }
    println!(
        "   every worker holds the key set and the snapshot after {:.1} s",
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
    println!(
        "== revguard demo: {} worker VMs of the real filter in the wasmtime test host",
        args.workers
    );
    println!(
        "   origin service (revguard origin serve, store in {}) on http://{}\n   IdP (JWKS + introspection) on http://{}",
        state.display(),
        origin.addr,
        idp.addr
    );
    println!(
        "   policy: refresh the snapshot every {} s; confirm snapshot hits with introspection",
        args.interval
    );

    let mut config = ProxyConfig::envoy();
    config.workers = args.workers;
    config.clock = Clock::real();
    config.plugin_configuration = policy(&origin, args.interval).to_string().into_bytes();
    let to_origin = HttpUpstream::new(origin.addr).ok_or("origin is not on loopback")?;
    let to_idp = HttpUpstream::new(idp.addr).ok_or("IdP is not on loopback")?;
    let config = config
        .upstream("origin", to_origin as Arc<dyn Upstream>)
        .upstream("idp", to_idp as Arc<dyn Upstream>);
    let started = Instant::now();
    let mut proxy = Proxy::new(&wasm, config).map_err(|e| e.to_string())?;
    println!(
        "   module: {} bytes, compiled and {} VMs started in {:.0} ms",
        wasm.len(),
        args.workers,
        started.elapsed().as_secs_f64() * 1e3
    );

    let alice = idp.issue("alice", "session-alice")?;
    let bob = idp.issue("bob", "session-bob")?;
    wait_until_ready(&mut proxy, args.workers)?;

    println!("\n== 1. traffic: alice and bob, every worker");
    for worker in 0..args.workers {
        let (status, what) = send(&mut proxy, worker, &alice)?;
        println!("   worker {worker}: alice -> {status} {what}");
    }
    let (status, what) = send(&mut proxy, 0, &bob)?;
    println!("   worker 0: bob   -> {status} {what}");

    println!("\n== 2. revoke alice's session: POST /v1/revocations to the origin (t = 0)");
    idp.revoke_session("session-alice");
    let introspections_before = idp.introspections();
    let revoked_at = Instant::now();
    let answer = origin.revoke(&json!({"sid": "session-alice", "reason": "user logged out",
                                       "source": "demo"}))?;
    println!(
        "   committed (fsync'd) after {:.0} ms: {answer}",
        revoked_at.elapsed().as_secs_f64() * 1e3
    );

    let mut first_denial: Vec<Option<(f64, String)>> = vec![None; args.workers];
    let deadline = Duration::from_secs(args.interval * 3 + 5);
    while first_denial.iter().any(Option::is_none) && revoked_at.elapsed() < deadline {
        for (worker, denial) in first_denial.iter_mut().enumerate() {
            if denial.is_some() {
                continue;
            }
            let (status, body) = send(&mut proxy, worker, &alice)?;
            if status != 200 {
                *denial = Some((
                    revoked_at.elapsed().as_secs_f64(),
                    format!("{status} {body}"),
                ));
            }
        }
        let (status, _) = send(&mut proxy, 0, &bob)?;
        if status != 200 {
            return Err(format!(
                "bob was denied ({status}) although only alice was revoked"
            ));
        }
        proxy
            .advance(Duration::from_millis(50))
            .map_err(|e| e.to_string())?;
    }
    let waited = revoked_at.elapsed().as_secs_f64();

    println!(
        "\n== 3. the moment each worker started denying alice (bob stayed allowed throughout)"
    );
    let mut worst = 0f64;
    for (worker, denial) in first_denial.iter().enumerate() {
        match denial {
            Some((t, answer)) => {
                worst = worst.max(*t);
                println!("   worker {worker}: denied after {t:.2} s: {answer}");
            }
            None => println!("   worker {worker}: still allowing after {waited:.1} s"),
        }
    }
    println!(
        "   slowest worker: {worst:.2} s (bound: refresh interval {} s + one fetch; the origin\n   published a signed delta about 50 ms after the commit)",
        args.interval
    );
    println!(
        "   IdP: {} introspection calls (a delta names the session exactly: nothing to confirm)",
        idp.introspections() - introspections_before
    );
    let fleet = origin.fleet()?;
    println!("\n== 4. the origin's fleet view (GET /v1/fleet): which enforcement point holds which generation");
    for node in fleet["nodes"].as_array().into_iter().flatten() {
        println!(
            "   node {}: generation {} (current {}), behind: {}",
            node["node"], node["generation"], fleet["generation"], node["behind"]
        );
    }
    for generation in fleet["published"].as_array().into_iter().flatten().take(3) {
        println!("   published {generation}");
    }

    println!("\n== 5. the denial log line (no raw token) and the metrics");
    if let Some(line) = proxy
        .take_logs()
        .into_iter()
        .find(|l| l.message.contains("\"reason\""))
    {
        println!("   [worker {}] {}", line.worker, line.message);
    }
    let metrics = proxy.metrics();
    for line in stats_text(&metrics).lines() {
        println!("   {line}");
    }
    if first_denial.iter().any(Option::is_none) {
        return Err("a worker never started denying the revoked session".into());
    }
    Ok(())
}

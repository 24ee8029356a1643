//! The whole chain with real parts: the origin service as a real process on loopback
//! (`revguard origin serve`, SQLite store, signed deltas), the real filter in two test-host
//! proxies (several worker VMs each, real clock, real HTTP), and, for the static path, the
//! origin's export served by nginx. A revocation POSTed to the origin is denied by every
//! worker; the origin's fleet view shows which proxy holds which generation.
//!
//! The figures printed here (POST -> denial on every worker) are quoted in BENCHMARKS.md:
//! `cargo test -p revguard-test-host --test all origin:: -- --nocapture --test-threads 1`.

use crate::rg::{Issuer, ISSUER};
use revguard_test_host::origin_service::OriginService;
use revguard_test_host::{Clock, HttpRequest, HttpUpstream, Outcome, Proxy, ProxyConfig, Upstream};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("revguard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The plugin policy: keys inline, revocation data from `upstream` polled every `interval` s.
fn policy(issuer: &Issuer, public_key: &str, interval: u64, node: Option<&str>) -> String {
    let mut revocation = json!({
        "upstream": "origin", "path": "/revocations/snapshot", "delta_path": "/revocations/delta",
        "refresh_interval_secs": interval, "max_staleness_secs": 120, "timeout_ms": 2000,
        "public_keys": [public_key]
    });
    if let Some(node) = node {
        revocation["node_id"] = json!(node);
    }
    json!({
        "issuers": [{"issuer": ISSUER, "audiences": ["api"], "algorithms": ["ES256"],
                     "jwks": issuer.jwks(&["k1"])}],
        "revocation": revocation,
        "forward_claims": [{"claim": "sub", "header": "x-user"}]
    })
    .to_string()
}

fn proxy(workers: usize, policy: String, origin: SocketAddr) -> Proxy {
    let mut config = ProxyConfig::envoy();
    config.workers = workers;
    config.clock = Clock::real();
    config.plugin_configuration = policy.into_bytes();
    let upstream = HttpUpstream::new(origin).expect("loopback") as Arc<dyn Upstream>;
    Proxy::new(&crate::rg::wasm(), config.upstream("origin", upstream)).expect("revguard loads")
}

/// 200 (forwarded) or the denial's status.
pub(crate) fn status(proxy: &mut Proxy, worker: usize, token: &str) -> u32 {
    let request =
        HttpRequest::get("api", "/orders").header("authorization", format!("Bearer {token}"));
    let (stream, outcome) = proxy
        .run_request(worker, request, Duration::from_secs(5))
        .unwrap();
    let status = match &outcome {
        Outcome::Continued(_) => 200,
        Outcome::LocalReply(reply) => reply.status,
        other => panic!("{other:?}"),
    };
    let _ = proxy.end_stream(stream);
    status
}

/// Advances both proxies in real time until every worker of each answers `want` for
/// `token`; returns, per proxy and worker, the seconds after `since` of its first such
/// answer. Gives up after `limit` (a liveness bound, not a performance assertion).
pub(crate) fn until_every_worker(
    proxies: &mut [&mut Proxy],
    token: &str,
    want: u32,
    since: Instant,
    limit: Duration,
) -> Vec<Vec<f64>> {
    let mut first: Vec<Vec<Option<f64>>> =
        proxies.iter().map(|p| vec![None; p.workers()]).collect();
    while first.iter().flatten().any(Option::is_none) {
        assert!(
            since.elapsed() < limit,
            "not every worker answered {want} within {limit:?}: {first:?}"
        );
        for (p, proxy) in proxies.iter_mut().enumerate() {
            proxy.advance(Duration::from_millis(10)).unwrap();
            for (w, slot) in first[p].iter_mut().enumerate() {
                if slot.is_none() && status(proxy, w, token) == want {
                    *slot = Some(since.elapsed().as_secs_f64());
                }
            }
        }
    }
    first
        .into_iter()
        .map(|p| p.into_iter().map(|s| s.unwrap_or(f64::NAN)).collect())
        .collect()
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

#[test]
fn a_revocation_posted_to_the_origin_is_denied_by_every_worker_of_two_proxies() {
    let dir = temp_dir("origin-e2e");
    let origin = OriginService::start(&dir, json!({"heartbeat_secs": 10})).unwrap();
    let issuer = Issuer::new(&["k1"]);
    let interval = 1;
    let mut a = proxy(
        3,
        policy(&issuer, &origin.public_key, interval, Some("proxy-a")),
        origin.addr,
    );
    let mut b = proxy(
        2,
        policy(&issuer, &origin.public_key, interval, Some("proxy-b")),
        origin.addr,
    );
    let rounds = 5;
    let mut slowest = Vec::new();
    for round in 0..rounds {
        let sid = format!("session-{round}");
        let token = issuer.token(
            "k1",
            "alice",
            &format!("jti-{round}"),
            Some(&sid),
            unix_now(),
        );
        let bob = issuer.token("k1", "bob", &format!("jti-bob-{round}"), None, unix_now());
        until_every_worker(
            &mut [&mut a, &mut b],
            &token,
            200,
            Instant::now(),
            Duration::from_secs(30),
        );

        let posted = Instant::now();
        let answer = origin
            .revoke(&json!({"sid": sid, "reason": "logout", "source": "e2e"}))
            .unwrap();
        assert_eq!(answer["committed"], json!(true), "{answer}");
        let denied = until_every_worker(
            &mut [&mut a, &mut b],
            &token,
            401,
            posted,
            Duration::from_secs(30),
        );
        let worst = denied.iter().flatten().fold(0f64, |m, t| m.max(*t));
        println!(
            "round {round}: POST -> denial per worker (s): proxy a {:?}, proxy b {:?}",
            denied[0], denied[1]
        );
        slowest.push(worst);
        // Only the revoked session: bob is still let through everywhere.
        for w in 0..a.workers() {
            assert_eq!(status(&mut a, w, &bob), 200);
        }
    }
    slowest.sort_by(f64::total_cmp);
    println!(
        "POST -> denial on every worker of 2 proxies (5 workers), polling every {interval} s: \
         p50 {:.2} s, p99 {:.2} s over {rounds} revocations",
        percentile(&slowest, 0.5),
        percentile(&slowest, 0.99)
    );

    // The fleet view: both proxies (not one entry per worker) hold the current generation.
    a.advance(Duration::from_secs(2)).unwrap();
    b.advance(Duration::from_secs(2)).unwrap();
    let current = origin.generation().unwrap();
    let fleet = origin.fleet().unwrap();
    let nodes = fleet["nodes"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<&str> = nodes.iter().filter_map(|n| n["node"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["proxy-a", "proxy-b"], "{fleet}");
    for node in &nodes {
        assert!(node["generation"].as_u64() >= Some(current - 1), "{fleet}");
    }
    println!(
        "fleet view: {}",
        serde_json::to_string_pretty(&fleet).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// nginx serving `root` under `/revocations/` on a free loopback port, with ETags (nginx's
/// static module: `"<mtime>-<size>"`) and conditional GETs; its access log records statuses.
pub(crate) struct Nginx {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Nginx {
    pub(crate) fn binary() -> Option<&'static str> {
        ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
    }

    pub(crate) fn start(bin: &str, dir: &Path, root: &Path) -> Nginx {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let log = dir.join("access.log");
        // As root, nginx's workers would switch to `nobody` and could not read the test's
        // private temporary directory.
        let user = if std::env::var("USER").as_deref() == Ok("root") || is_root() {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}\nworker_processes 1;\npid {pid};\nerror_log stderr warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {log} ;\n  \
             client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};\n  \
             uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n  \
             server {{\n    listen 127.0.0.1:{port};\n    \
             location /revocations/ {{ alias {root}/; etag on; default_type application/octet-stream; }}\n  }}\n}}\n",
            pid = dir.join("nginx.pid").display(),
            log = log.display(),
            tmp = dir.display(),
            root = root.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, addr, log }
    }

    /// (status 200 count, status 304 count) of requests for `path`.
    fn statuses(&self, path: &str) -> (usize, usize) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("GET {path} ")))
            .collect();
        let count = |status: &str| {
            lines
                .iter()
                .filter(|l| l.contains(&format!("\" {status} ")))
                .count()
        };
        (count("200"), count("304"))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_static_export_served_by_nginx_feeds_the_filter_with_conditional_gets() {
    let Some(bin) = Nginx::binary() else {
        // .ci/run installs Debian's nginx; a developer machine may not have it.
        println!("SKIPPED: nginx is not installed (apt-get install nginx)");
        return;
    };
    let dir = temp_dir("origin-nginx");
    let export = dir.join("export");
    let origin = OriginService::start(
        &dir.join("origin"),
        json!({"export_dir": export, "heartbeat_secs": 10}),
    )
    .unwrap();
    let nginx = Nginx::start(bin, &dir, &export);
    let issuer = Issuer::new(&["k1"]);
    let mut proxy = proxy(3, policy(&issuer, &origin.public_key, 1, None), nginx.addr);
    let token = issuer.token(
        "k1",
        "carol",
        "jti-carol",
        Some("session-carol"),
        unix_now(),
    );
    until_every_worker(
        &mut [&mut proxy],
        &token,
        200,
        Instant::now(),
        Duration::from_secs(30),
    );
    // Unchanged files: revalidated, not downloaded again.
    proxy.advance(Duration::from_secs(3)).unwrap();
    let (full, not_modified) = nginx.statuses("/revocations/snapshot");
    assert!(
        not_modified >= 1,
        "snapshot: {full} x 200, {not_modified} x 304"
    );

    let posted = Instant::now();
    origin.revoke(&json!({"jti": "jti-carol"})).unwrap();
    let denied = until_every_worker(
        &mut [&mut proxy],
        &token,
        401,
        posted,
        Duration::from_secs(30),
    );
    println!(
        "through nginx: POST -> denial per worker (s): {:?}",
        denied[0]
    );
    let (_, delta_304) = nginx.statuses("/revocations/delta");
    let (delta_200, _) = nginx.statuses("/revocations/delta");
    assert!(delta_200 >= 1, "the delta was downloaded");
    println!("nginx: delta {delta_200} x 200, {delta_304} x 304");

    // `revguard origin export` writes the same files once (read-only on the store).
    let once = dir.join("once");
    origin.export(&once).unwrap();
    assert_eq!(
        std::fs::read(once.join("snapshot")).unwrap(),
        std::fs::read(export.join("snapshot")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

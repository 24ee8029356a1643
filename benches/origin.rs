//! Measurements of the origin service, with the real binary on loopback:
//!
//! 1. POST -> generation published: latency p50/p99 (debounce 50 ms, the default);
//! 2. ingest throughput with durable (fsync'd) commits: single revocations from 4 clients, and
//!    batches of 1,000;
//! 3. N concurrent held fetches (default 1,000): origin RSS and CPU time over a 10 s hold;
//! 4. a store of M entries (default 1,000,000): full snapshot build time and size, and the
//!    delta size for one added revocation.
//!
//! `cargo bench --bench origin` (options after `--`: `--entries M`, `--held N`,
//! `--samples S`, `--phases latency,throughput,held,big`). Prints a Markdown table.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TOKEN: &str = "rgo_bench-token";

struct Origin {
    child: Child,
    base: String,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

fn start(dir: &Path, extra: Value) -> Origin {
    let hash = revguard::wire::hex(&revguard::origin::auth::token_digest(TOKEN));
    let mut config = json!({
        "listen": "127.0.0.1:0",
        "database": "origin.db",
        "signing_key_file": "origin.key",
        "api_tokens": [{"name": "bench", "sha256": hash}],
        "max_body_bytes": 8 << 20,
        "max_wait_secs": 60,
    });
    if let (Some(c), Value::Object(e)) = (config.as_object_mut(), extra) {
        for (k, v) in e {
            c.insert(k, v);
        }
    }
    std::fs::write(dir.join("origin.json"), config.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_revguard"))
        .args(["origin", "serve", "--config"])
        .arg(dir.join("origin.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("origin exited").unwrap();
        if let Some(a) = line.split("listening on ").nth(1) {
            break a.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Origin { child, base }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_revguard"))
        .args(["keygen", "--out"])
        .arg(dir.join("origin"))
        .output()
        .unwrap();
    assert!(out.status.success());
    dir
}

fn post(a: &ureq::Agent, base: &str, body: &str) -> u16 {
    a.post(&format!("{base}/v1/revocations"))
        .header("content-type", "application/json")
        .header("authorization", &format!("Bearer {TOKEN}"))
        .send(body)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn get(a: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, usize) {
    let mut req = a.get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let mut r = req.call().unwrap();
    let etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let len = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .map(|b| b.len())
        .unwrap_or(0);
    (r.status().as_u16(), etag, len)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn proc_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ")".
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn proc_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fleet(a: &ureq::Agent, base: &str) -> Value {
    let mut r = a
        .get(&format!("{base}/v1/fleet"))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap()
}

fn generation(a: &ureq::Agent, base: &str) -> u64 {
    let mut r = a.get(&format!("{base}/healthz")).call().unwrap();
    let v: Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
    v["generation"].as_u64().unwrap()
}

fn wait_generation(a: &ureq::Agent, base: &str, g: u64) {
    while generation(a, base) < g {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the generation has not changed for 5 s (heartbeats are every 30 s); returns it.
fn wait_quiet(a: &ureq::Agent, base: &str) -> u64 {
    let mut last = generation(a, base);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let g = generation(a, base);
        if g != last {
            last = g;
            since = Instant::now();
        } else if since.elapsed() > Duration::from_secs(5) {
            return g;
        }
    }
}

/// Whether a phase runs: all by default, or those named by `--phases a,b`.
fn phase(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--phases") {
        Some(i) => args
            .get(i + 1)
            .is_some_and(|v| v.split(',').any(|p| p == name)),
        None => true,
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let entries = arg("--entries", 1_000_000);
    let held = arg("--held", 1_000);
    let samples = arg("--samples", 200);
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. POST -> published latency.
    if phase("latency") {
        let dir = fresh_dir("bench_origin_latency");
        let o = start(&dir, json!({}));
        let a = agent();
        let delta_url = format!("{}/revocations/delta", o.base);
        let mut commit = Vec::new();
        let mut published = Vec::new();
        for i in 0..samples {
            let (_, tag, _) = get(&a, &delta_url, &[]);
            let tag = tag.unwrap();
            let t = Instant::now();
            assert_eq!(
                post(&a, &o.base, &json!({"jti": format!("lat-{i}")}).to_string()),
                201
            );
            commit.push(t.elapsed().as_secs_f64() * 1000.0);
            let (status, _, _) = get(
                &a,
                &delta_url,
                &[("if-none-match", &tag), ("prefer", "wait=10")],
            );
            assert!(status == 200 || status == 404);
            published.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        commit.sort_by(f64::total_cmp);
        published.sort_by(f64::total_cmp);
        rows.push((
            format!("POST answered (durable commit), {samples} sequential"),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms",
                pct(&commit, 0.5),
                pct(&commit, 0.99)
            ),
        ));
        rows.push((
            format!("POST -> new generation served (debounce 50 ms), {samples} sequential"),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms",
                pct(&published, 0.5),
                pct(&published, 0.99)
            ),
        ));
    }

    // 2. Ingest throughput.
    if phase("throughput") {
        let dir = fresh_dir("bench_origin_throughput");
        let o = start(&dir, json!({}));
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (count, stop, base) = (Arc::clone(&count), Arc::clone(&stop), o.base.clone());
                std::thread::spawn(move || {
                    let a = agent();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let body = json!({"jti": format!("t{t}-{i}")}).to_string();
                        if post(&a, &base, &body) == 201 {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        for th in threads {
            th.join().unwrap();
        }
        let n = count.load(Ordering::Relaxed) as f64;
        rows.push((
            "ingest, single revocations, 4 clients, 5 s".into(),
            format!("{:.0} commits/s", n / t.elapsed().as_secs_f64()),
        ));
        let a = agent();
        let t = Instant::now();
        let batches = 20;
        for b in 0..batches {
            let batch: Vec<Value> = (0..1000)
                .map(|i| json!({"jti": format!("b{b}-{i}")}))
                .collect();
            assert_eq!(post(&a, &o.base, &json!(batch).to_string()), 201);
        }
        rows.push((
            "ingest, batches of 1,000, 1 client".into(),
            format!(
                "{:.0} revocations/s",
                (batches * 1000) as f64 / t.elapsed().as_secs_f64()
            ),
        ));
    }

    // 3. Held fetches.
    if phase("held") {
        let dir = fresh_dir("bench_origin_held");
        let o = start(&dir, json!({}));
        let pid = o.child.id();
        let a = agent();
        let url = format!("{}/revocations/snapshot", o.base);
        let (_, tag, _) = get(&a, &url, &[]);
        let tag = tag.unwrap();
        let rss_idle = proc_rss_kib(pid);
        let threads: Vec<_> = (0..held)
            .map(|i| {
                let (url, tag) = (url.clone(), tag.clone());
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || {
                        let a = agent();
                        let node = format!("bench-{i}");
                        let (status, _, _) = get(
                            &a,
                            &url,
                            &[
                                ("if-none-match", &tag),
                                ("prefer", "wait=12"),
                                ("x-revguard-node", &node),
                            ],
                        );
                        status
                    })
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let cpu0 = proc_cpu_secs(pid);
        std::thread::sleep(Duration::from_secs(10));
        let cpu1 = proc_cpu_secs(pid);
        let rss_held = proc_rss_kib(pid);
        let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let not_modified = statuses.iter().filter(|s| **s == 304).count();
        rows.push((
            format!("{held} held fetches (Prefer: wait=12), 10 s"),
            format!(
                "origin CPU {:.2} s over 10 s; RSS {} KiB idle -> {} KiB held; {not_modified} answered 304",
                cpu1 - cpu0,
                rss_idle,
                rss_held
            ),
        ));
    }

    // 4. A big store.
    if phase("big") {
        let dir = fresh_dir("bench_origin_big");
        let o = start(&dir, json!({"max_batch": 20_000}));
        let a = agent();
        let t = Instant::now();
        let per = 20_000;
        let mut n = 0;
        while n < entries {
            let batch: Vec<Value> = (n..(n + per).min(entries))
                .map(|i| json!({"jti": format!("big-{i:08}")}))
                .collect();
            assert_eq!(post(&a, &o.base, &json!(batch).to_string()), 201);
            n += per;
        }
        let ingest = t.elapsed().as_secs_f64();
        // Let the publisher catch up (full builds during the ingest) before measuring.
        let g = wait_quiet(&a, &o.base);
        // Removing one entry forces a full snapshot of the rest.
        // Find one id to remove.
        let mut r = a
            .get(&format!("{}/v1/revocations?limit=1", o.base))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        let v: Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
        let id = v["revocations"][0]["id"].as_str().unwrap().to_string();
        let mut r = a
            .delete(&format!("{}/v1/revocations/{id}", o.base))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        let _ = r.body_mut().read_to_vec();
        let mut full = Value::Null;
        while full.is_null() {
            std::thread::sleep(Duration::from_millis(50));
            let f = fleet(&a, &o.base);
            if let Some(p) = f["published"].as_array().and_then(|p| {
                p.iter()
                    .find(|p| p["kind"] == "snapshot" && p["generation"].as_u64() > Some(g))
            }) {
                full = p.clone();
            }
        }
        let g2 = wait_quiet(&a, &o.base);
        assert_eq!(full["generation"].as_u64(), Some(g2));
        assert_eq!(post(&a, &o.base, r#"{"jti":"one-more"}"#), 201);
        wait_generation(&a, &o.base, g2 + 1);
        let (status, _, delta_len) = get(&a, &format!("{}/revocations/delta", o.base), &[]);
        assert_eq!(status, 200, "no delta was published");
        rows.push((
            format!("store of {entries} entries: ingest in batches of {per}"),
            format!(
                "{:.1} s ({:.0} revocations/s)",
                ingest,
                entries as f64 / ingest
            ),
        ));
        rows.push((
            format!(
                "store of {entries} entries: full snapshot build (read + hash + filter + sign)"
            ),
            format!("{} ms, {} bytes", full["build_ms"], full["bytes"]),
        ));
        rows.push((
            format!("store of {entries} entries: delta for one added revocation"),
            format!("{delta_len} bytes"),
        ));
        let db = std::fs::metadata(dir.join("origin.db"))
            .map(|m| m.len())
            .unwrap_or(0);
        rows.push((
            format!("store of {entries} entries: database file"),
            format!("{} MiB", db >> 20),
        ));
    }

    println!("| measurement | result |");
    println!("|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
}

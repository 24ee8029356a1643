//! Runs the handler in `wasmtime serve` on loopback, in front of a backend, with an origin that
//! serves the issuer's key set, a signed snapshot (the core's builder) and introspection, all
//! started here on loopback. Sends allowed, denied and revoked requests.
//!
//! Needs the handler built (`cargo build --release --target wasm32-wasip2`, or
//! `REVGUARD_EXAMPLE_WASM`) and the wasmtime CLI (`WASMTIME`, default `wasmtime` on PATH).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant, SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::*;
use revguard::snapshot::{build_snapshot, BuildOptions, Revocation, RevocationTarget, SigningKey};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example";

/// One parsed HTTP/1.1 request or response.
#[derive(Debug)]
struct Message {
    start: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Message {
    fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Reads a message: head, then a body framed by content-length or chunked encoding (or EOF).
fn read_message(stream: &mut impl BufRead, until_eof: bool) -> Message {
    let mut start = String::new();
    stream.read_line(&mut start).unwrap();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let mut body = Vec::new();
    if let Some(len) = headers.get("content-length") {
        body.resize(len.parse().unwrap(), 0);
        stream.read_exact(&mut body).unwrap();
    } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if until_eof {
        stream.read_to_end(&mut body).unwrap();
    }
    Message {
        start: start.trim_end().to_string(),
        headers,
        body,
    }
}

/// A loopback HTTP server answering each request with `answer`; returns its address.
fn serve(answer: impl Fn(&Message) -> (u16, Vec<u8>) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let request = read_message(&mut reader, false);
            let (status, body) = answer(&request);
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    addr
}

/// `wasmtime serve` with the handler; killed on drop.
struct Gateway {
    child: Child,
    addr: String,
}

impl Gateway {
    fn start(config: &Value, backend: &str, extra: &[&str]) -> Gateway {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let wasm = std::env::var("REVGUARD_EXAMPLE_WASM").map_or_else(
            |_| root.join("target/wasm32-wasip2/release/revguard_http_example.wasm"),
            PathBuf::from,
        );
        assert!(wasm.exists(), "build the handler first: {}", wasm.display());
        let wasmtime = std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".into());
        let mut child = Command::new(wasmtime)
            .args(["serve", "-S", "cli", "--addr", "127.0.0.1:0"])
            .args(extra)
            .arg("--env")
            .arg(format!("REVGUARD_CONFIG={config}"))
            .arg("--env")
            .arg(format!("REVGUARD_BACKEND={backend}"))
            .arg(&wasm)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let addr = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "wasmtime serve exited"
            );
            if let Some(rest) = line.trim().strip_prefix("Serving HTTP on http://") {
                break rest.trim_end_matches('/').to_string();
            }
        };
        // Relay its log (shown with --nocapture or on failure) so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("wasmtime serve: {line}");
            }
        });
        Gateway { child, addr }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Message {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(StdDuration::from_secs(30)))
            .unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        read_message(&mut BufReader::new(stream), true)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct World {
    idp: ES256KeyPair,
    config: Value,
    backend: String,
    /// Requests the origin saw, by path.
    origin_hits: Arc<Mutex<BTreeMap<String, usize>>>,
    now: u64,
}

impl World {
    fn new() -> World {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let idp = ES256KeyPair::generate().with_key_id("k1");
        let origin_key = SigningKey::from_seed([42; 32]).unwrap();
        let revoked = |target| Revocation { target, exp: None };
        let snapshot = build_snapshot(
            &[
                revoked(RevocationTarget::Jti("jti-leaked".into())),
                revoked(RevocationTarget::Subject {
                    sub: "offboarded".into(),
                    not_before: now - 10,
                }),
            ],
            &BuildOptions {
                generation: 7,
                built_at: now,
                max_age_secs: 3600,
                fp_rate: 0.001,
                salt: [9; 32],
            },
            &origin_key,
        )
        .unwrap();
        let jwk: Value = serde_json::from_str(&idp.public_key().to_jwk()).unwrap();
        let jwks = serde_json::to_vec(&json!({ "keys": [jwk] })).unwrap();

        let origin_hits = Arc::new(Mutex::new(BTreeMap::new()));
        let hits = Arc::clone(&origin_hits);
        let origin = serve(move |request| {
            let path = request.start.split(' ').nth(1).unwrap_or("").to_string();
            *hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
            match path.as_str() {
                "/jwks" => (200, jwks.clone()),
                "/current.snap" => (200, snapshot.clone()),
                // The issuer confirms the snapshot hit: the token is no longer active.
                "/introspect" => (200, br#"{"active":false}"#.to_vec()),
                _ => (404, Vec::new()),
            }
        });
        let backend = serve(|request| {
            let echo = json!({"request": request.start, "headers": request.headers});
            (200, serde_json::to_vec(&echo).unwrap())
        });
        let config = json!({
            "issuers": [{"issuer": ISSUER, "audiences": ["orders"], "algorithms": ["ES256"],
                         "jwks_upstream": {"upstream": origin, "path": "/jwks"}}],
            "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
            "routes": [{"name": "health", "path": "/healthz", "no_auth": true}],
            "revocation": {"upstream": origin, "path": "/current.snap", "refresh_interval_secs": 60,
                           "public_keys": [origin_key.public_key_text()]},
            "introspection": {"upstream": origin, "path": "/introspect", "client_id": "gateway",
                              "client_secret": "s3cret"}
        });
        World {
            idp,
            config,
            backend,
            origin_hits,
            now,
        }
    }

    fn token(&self, sub: &str, jti: &str) -> String {
        let mut claims = Claims::create(Duration::from_secs(600))
            .with_issuer(ISSUER)
            .with_audience("orders")
            .with_subject(sub)
            .with_jwt_id(jti);
        let iat = self.now - 60;
        claims.issued_at = Some(UnixTimeStamp::from_secs(iat));
        claims.invalid_before = Some(UnixTimeStamp::from_secs(iat));
        claims.expires_at = Some(UnixTimeStamp::from_secs(iat + 600));
        format!("Bearer {}", self.idp.sign(claims).unwrap())
    }

    fn hits(&self, path: &str) -> usize {
        self.origin_hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn assert_denied(response: &Message, status: u16, reason: &str) {
    assert_eq!(response.status(), status, "{response:?}");
    assert_eq!(response.json()["error"], reason, "{response:?}");
    assert!(response.headers["www-authenticate"].starts_with("Bearer realm="));
}

#[test]
fn allowed_denied_and_revoked_requests() {
    let world = World::new();
    let gateway = Gateway::start(&world.config, &world.backend, &[]);
    let alice = world.token("alice", "jti-alice");
    let mut timings = Vec::new();
    let mut timed = |path: &str, headers: &[(&str, &str)]| {
        let start = Instant::now();
        let response = gateway.get(path, headers);
        timings.push(start.elapsed());
        response
    };

    // Allowed: the backend sees the verified subject, never the client's forged copy.
    let allowed = timed(
        "/orders/1?x=y",
        &[("authorization", &alice), ("x-auth-subject", "mallory")],
    );
    assert_eq!(allowed.status(), 200, "{allowed:?}");
    let echo = allowed.json();
    assert_eq!(echo["request"], "GET /orders/1?x=y HTTP/1.1");
    assert_eq!(echo["headers"]["x-auth-subject"], "alice");

    // The backend gets the normalised target the rules matched, and no other spelling of an
    // identity header; a path a backend could read differently is refused.
    let normalised = timed(
        "//orders/./1/../%32?x=%2e",
        &[("authorization", &alice), ("x_auth_subject", "mallory")],
    );
    assert_eq!(normalised.status(), 200, "{normalised:?}");
    let echo = normalised.json();
    assert_eq!(echo["request"], "GET /orders/2?x=%2e HTTP/1.1");
    assert_eq!(echo["headers"]["x-auth-subject"], "alice");
    assert!(echo["headers"].get("x_auth_subject").is_none(), "{echo}");
    let refused = timed("/orders%2F1", &[("authorization", &alice)]);
    assert_eq!(refused.status(), 400, "{refused:?}");
    assert_eq!(refused.json()["error"], "invalid_path", "{refused:?}");

    // Denied before any backend call.
    assert_denied(&timed("/orders", &[]), 401, "missing_token");
    assert_denied(
        &timed("/orders", &[("authorization", "Bearer not-a-jwt")]),
        401,
        "malformed_token",
    );
    let other_key = ES256KeyPair::generate().with_key_id("k1");
    let forged = format!(
        "Bearer {}",
        other_key
            .sign(
                Claims::create(Duration::from_secs(600))
                    .with_issuer(ISSUER)
                    .with_audience("orders")
            )
            .unwrap()
    );
    assert_denied(
        &timed("/orders", &[("authorization", &forged)]),
        401,
        "bad_signature",
    );
    assert_eq!(timed("/healthz", &[]).status(), 200);

    // Revoked: exactly (the subject's not-before table), and through the snapshot's filter
    // confirmed by introspection.
    let offboarded = world.token("offboarded", "jti-offboarded");
    assert_denied(
        &timed("/orders", &[("authorization", &offboarded)]),
        401,
        "revoked_subject",
    );
    let leaked = world.token("bob", "jti-leaked");
    assert_denied(
        &timed("/orders", &[("authorization", &leaked)]),
        401,
        "revoked",
    );
    assert_eq!(world.hits("/introspect"), 1);

    // A new instance per request (the default): every request fetched key set and snapshot.
    assert_eq!(world.hits("/current.snap"), timings.len());
    assert_eq!(world.hits("/jwks"), timings.len());
    timings.sort();
    eprintln!(
        "instance per request: {} requests, median {:?}, max {:?}",
        timings.len(),
        timings[timings.len() / 2],
        timings[timings.len() - 1]
    );
}

#[test]
fn a_reused_instance_keeps_its_state() {
    let world = World::new();
    let gateway = Gateway::start(
        &world.config,
        &world.backend,
        &[
            "--max-instance-reuse-count",
            "1000",
            "--idle-instance-timeout",
            "60s",
        ],
    );
    let alice = world.token("alice", "jti-alice");
    let leaked = world.token("bob", "jti-leaked");
    let mut timings = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let allowed = gateway.get("/orders", &[("authorization", &alice)]);
        timings.push(start.elapsed());
        assert_eq!(allowed.status(), 200, "{allowed:?}");
        assert_denied(
            &gateway.get("/orders", &[("authorization", &leaked)]),
            401,
            "revoked",
        );
    }
    // One instance: one fetch of each, and one introspection answer, cached until the token's exp.
    assert_eq!(world.hits("/current.snap"), 1);
    assert_eq!(world.hits("/jwks"), 1);
    assert_eq!(world.hits("/introspect"), 1);
    timings.sort();
    eprintln!(
        "reused instance: {} allowed requests, median {:?}, slowest (the first) {:?}",
        timings.len(),
        timings[timings.len() / 2],
        timings[timings.len() - 1]
    );
}

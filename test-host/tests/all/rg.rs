//! Support for the revguard scenario tests: the real revguard .wasm (built once per run), an
//! issuer minting real ES256 tokens, an origin serving signed snapshots, deltas and the JWKS,
//! an introspection endpoint, and a small client.

use jwt_simple::prelude::*;
use revguard::snapshot::{
    build_delta, build_snapshot, BuildOptions, DeltaOptions, Revocation, RevocationTarget,
    SigningKey,
};
use revguard_test_host::{
    CalloutRequest, Compiled, Engine, HttpRequest, HttpResponse, Outcome, Proxy, ProxyConfig,
    ScriptedUpstream, Upstream, UpstreamReply, UpstreamResponse,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The host's simulated clock starts here (2026-01-01T00:00:00Z).
pub const T0: u64 = 1_767_225_600;
pub const ISSUER: &str = "https://idp.example";

/// The release revguard .wasm, built once per test run into its own target dir; or, when
/// `REVGUARD_FILTER_WASM` names a file, that module (`.ci/release` runs the tests on its
/// wasm-opt output this way).
pub fn wasm() -> Vec<u8> {
    if let Some(path) = std::env::var_os("REVGUARD_FILTER_WASM") {
        return std::fs::read(&path)
            .unwrap_or_else(|e| panic!("REVGUARD_FILTER_WASM={}: {e}", path.to_string_lossy()));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("../Cargo.toml");
    super::fixture::build_wasm(
        &manifest,
        &["-p", "revguard", "--lib"],
        &root.join("target/revguard-wasm"),
        "revguard",
    )
}

/// [`wasm`] compiled once per run and fuel setting on the preferred engine (wasmtime): compiling
/// takes seconds, starting a proxy from it milliseconds.
pub fn compiled(fuel: bool) -> Compiled {
    compiled_on(Engine::preferred(), fuel)
}

/// [`compiled`] on `engine`.
pub fn compiled_on(engine: Engine, fuel: bool) -> Compiled {
    static CACHE: Mutex<Vec<(Engine, bool, Compiled)>> = Mutex::new(Vec::new());
    let mut cache = lock(&CACHE);
    if let Some((_, _, c)) = cache.iter().find(|(e, f, _)| *e == engine && *f == fuel) {
        return c.clone();
    }
    let c = Proxy::compile_on(engine, &wasm(), fuel).expect("revguard compiles");
    cache.push((engine, fuel, c.clone()));
    c
}

/// Where [`wasm`] leaves the module (for tests that run the command-line tool).
pub fn wasm_path() -> PathBuf {
    if let Some(path) = std::env::var_os("REVGUARD_FILTER_WASM") {
        return PathBuf::from(path);
    }
    wasm();
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/revguard-wasm/wasm32-wasip1/release/revguard.wasm")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An issuer's ES256 signing keys, by kid.
pub struct Issuer {
    keys: Vec<ES256KeyPair>,
}

impl Issuer {
    pub fn new(kids: &[&str]) -> Issuer {
        Issuer {
            keys: kids
                .iter()
                .map(|kid| ES256KeyPair::generate().with_key_id(kid))
                .collect(),
        }
    }

    /// The JWKS with the public keys of `kids`.
    pub fn jwks(&self, kids: &[&str]) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| kids.contains(&k.key_id().as_deref().unwrap_or("")))
            .map(|k| serde_json::from_str(&k.public_key().to_jwk()).unwrap())
            .collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` (complete: nothing is added) with key `kid`.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let key = self
            .keys
            .iter()
            .find(|k| k.key_id().as_deref() == Some(kid))
            .expect("known kid");
        let claims = JWTClaims {
            issued_at: None,
            expires_at: None,
            invalid_before: None,
            issuer: None,
            subject: None,
            audiences: None,
            jwt_id: None,
            nonce: None,
            custom: claims.as_object().unwrap().clone(),
        };
        key.sign(claims).unwrap()
    }

    /// A token for `sub` with `jti` (and `sid` if given), issued at `iat`, valid one hour.
    pub fn token(&self, kid: &str, sub: &str, jti: &str, sid: Option<&str>, iat: u64) -> String {
        let mut claims = json!({
            "iss": ISSUER, "aud": "api", "sub": sub, "jti": jti,
            "iat": iat, "exp": iat + 3600, "scope": "orders:read",
        });
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        self.sign(kid, &claims)
    }
}

/// How the origin answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginMode {
    Up,
    /// Connection refused.
    Down,
    /// Never answers (the fetch times out).
    Hang,
    /// 200 with bytes that are not a snapshot.
    Garbage,
    /// 200 with the first half of the right body (a cut-off transfer).
    Truncated,
}

struct OriginState {
    key: SigningKey,
    /// Serves snapshots signed by this key instead (a wrong signature).
    forger: Option<SigningKey>,
    entries: Vec<Revocation>,
    generation: u64,
    snapshot: Vec<u8>,
    snapshot_generation: u64,
    delta: Option<(Vec<u8>, u64)>,
    jwks: Value,
    mode: OriginMode,
    /// Modes for single paths, over `mode` (for example only `/jwks` down).
    path_modes: HashMap<String, OriginMode>,
    delay: Duration,
    /// Serve a full snapshot this many times with an old generation (rollback attempt).
    stale_copy: Option<Vec<u8>>,
    /// Revocations in the current full snapshot (the rest go into the next delta).
    in_snapshot: usize,
    /// Reset this many snapshot fetches (a dropped response).
    drop_snapshots: usize,
}

/// The origin: snapshot at `/snapshot`, delta at `/delta`, keys at `/jwks`, with ETags.
#[derive(Clone)]
pub struct Origin {
    state: Arc<Mutex<OriginState>>,
    pub upstream: Arc<ScriptedUpstream>,
}

fn salt(generation: u64) -> [u8; 32] {
    let mut salt = [7u8; 32];
    salt[..8].copy_from_slice(&generation.to_be_bytes());
    salt[31] = 0x5a;
    salt
}

impl Origin {
    pub fn new(jwks: Value) -> Origin {
        let key = SigningKey::from_seed([42u8; 32]).unwrap();
        let state = Arc::new(Mutex::new(OriginState {
            key,
            forger: None,
            entries: Vec::new(),
            generation: 0,
            snapshot: Vec::new(),
            snapshot_generation: 0,
            delta: None,
            jwks,
            mode: OriginMode::Up,
            path_modes: HashMap::new(),
            delay: Duration::ZERO,
            stale_copy: None,
            in_snapshot: 0,
            drop_snapshots: 0,
        }));
        let served = state.clone();
        let upstream = ScriptedUpstream::with_fallback(move |req| serve(&served, req));
        let origin = Origin { state, upstream };
        origin.publish_snapshot(T0);
        origin
    }

    pub fn public_key(&self) -> String {
        lock(&self.state).key.public_key_text()
    }

    /// Revokes `target` (in the next snapshot or delta).
    pub fn revoke(&self, target: RevocationTarget) {
        lock(&self.state)
            .entries
            .push(Revocation { target, exp: None });
    }

    /// Builds and serves a full snapshot of every revocation, built at `now`.
    pub fn publish_snapshot(&self, now: u64) -> u64 {
        let mut s = lock(&self.state);
        s.generation += 1;
        let opts = BuildOptions {
            generation: s.generation,
            built_at: now,
            max_age_secs: 300,
            fp_rate: 0.001,
            salt: salt(s.generation),
        };
        let signer = s.forger.clone().unwrap_or_else(|| s.key.clone());
        let previous = std::mem::take(&mut s.snapshot);
        s.snapshot = build_snapshot(&s.entries, &opts, &signer).unwrap();
        if previous.is_empty() {
            s.stale_copy = None;
        } else {
            s.stale_copy = Some(previous);
        }
        s.snapshot_generation = s.generation;
        s.in_snapshot = s.entries.len();
        s.delta = None;
        s.generation
    }

    /// Publishes a delta over the current snapshot with every revocation added since it.
    pub fn publish_delta(&self, now: u64) -> u64 {
        let mut s = lock(&self.state);
        s.generation += 1;
        let added = s.entries[s.in_snapshot..].to_vec();
        let options = DeltaOptions {
            generation: s.generation,
            built_at: now,
            max_age_secs: 300,
        };
        let delta = build_delta(&s.snapshot, &added, &options, &s.key).unwrap();
        s.delta = Some((delta, s.generation));
        s.generation
    }

    /// Resets the next `n` snapshot fetches (the response is lost on the way).
    pub fn drop_snapshots(&self, n: usize) {
        lock(&self.state).drop_snapshots = n;
    }

    pub fn set_mode(&self, mode: OriginMode) {
        lock(&self.state).mode = mode;
    }

    /// How `path` alone answers (`None`: as the rest of the origin).
    pub fn set_path_mode(&self, path: &str, mode: Option<OriginMode>) {
        let mut s = lock(&self.state);
        match mode {
            Some(mode) => s.path_modes.insert(path.to_string(), mode),
            None => s.path_modes.remove(path),
        };
    }

    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// Sign the next snapshots with a key the filter does not trust (`None`: stop).
    pub fn forge(&self, forge: bool) {
        lock(&self.state).forger = forge.then(|| SigningKey::from_seed([9u8; 32]).unwrap());
    }

    /// Serve the previous snapshot again (a rollback attempt).
    pub fn roll_back(&self) {
        let mut s = lock(&self.state);
        if let Some(old) = s.stale_copy.take() {
            s.snapshot = old;
            s.snapshot_generation = 0;
            s.delta = None;
        }
    }

    pub fn set_jwks(&self, jwks: Value) {
        lock(&self.state).jwks = jwks;
    }

    /// Requests the origin received for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.upstream
            .requests()
            .iter()
            .filter(|r| r.headers.get_str(":path") == Some(path))
            .count()
    }
}

fn etag_of(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

fn serve(state: &Mutex<OriginState>, req: &CalloutRequest) -> UpstreamReply {
    let mut s = lock(state);
    if s.drop_snapshots > 0 && req.headers.get_str(":path") == Some("/snapshot") {
        s.drop_snapshots -= 1;
        return UpstreamReply::reset();
    }
    let path = req.headers.get_str(":path").unwrap_or("");
    let mode = s.path_modes.get(path).copied().unwrap_or(s.mode);
    let reply = match mode {
        OriginMode::Down => return UpstreamReply::connect_failure(),
        OriginMode::Hang => return UpstreamReply::Hang,
        OriginMode::Garbage => {
            UpstreamReply::response(UpstreamResponse::new(200, &[], b"\x00garbage\xff"))
        }
        OriginMode::Truncated => {
            let body = match path {
                "/snapshot" => s.snapshot.clone(),
                "/delta" => s.delta.as_ref().map(|(d, _)| d.clone()).unwrap_or_default(),
                _ => s.jwks.to_string().into_bytes(),
            };
            UpstreamReply::response(UpstreamResponse::new(200, &[], &body[..body.len() / 2]))
        }
        OriginMode::Up => {
            let body = match req.headers.get_str(":path") {
                Some("/snapshot") => Some(s.snapshot.clone()),
                Some("/delta") => s.delta.as_ref().map(|(d, _)| d.clone()),
                Some("/jwks") => Some(s.jwks.to_string().into_bytes()),
                _ => None,
            };
            match body {
                None => UpstreamReply::response(UpstreamResponse::new(404, &[], b"")),
                Some(body) => {
                    let etag = etag_of(&body);
                    if req.headers.get_str("if-none-match") == Some(etag.as_str()) {
                        UpstreamReply::response(UpstreamResponse::new(304, &[("etag", &etag)], b""))
                    } else {
                        UpstreamReply::response(UpstreamResponse::new(
                            200,
                            &[("etag", &etag)],
                            &body,
                        ))
                    }
                }
            }
        }
    };
    reply.after(s.delay)
}

/// How the introspection endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdpMode {
    Up,
    Down,
    Hang,
    Garbage,
    /// 500 Internal Server Error.
    Error,
}

/// An RFC 7662 endpoint: tokens listed as active answer `active: true`; others inactive.
#[derive(Clone)]
pub struct Idp {
    active: Arc<Mutex<HashMap<String, bool>>>,
    mode: Arc<Mutex<(IdpMode, Duration)>>,
    pub upstream: Arc<ScriptedUpstream>,
}

impl Idp {
    pub fn new() -> Idp {
        let active: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
        let mode = Arc::new(Mutex::new((IdpMode::Up, Duration::from_millis(20))));
        let (a, m) = (active.clone(), mode.clone());
        let upstream = ScriptedUpstream::with_fallback(move |req| {
            let (mode, delay) = *lock(&m);
            let token = form_value(&req.body, "token").unwrap_or_default();
            let reply = match mode {
                IdpMode::Down => return UpstreamReply::connect_failure(),
                IdpMode::Hang => return UpstreamReply::Hang,
                IdpMode::Garbage => {
                    UpstreamReply::response(UpstreamResponse::new(200, &[], b"{not json"))
                }
                IdpMode::Error => UpstreamReply::response(UpstreamResponse::new(500, &[], b"oops")),
                IdpMode::Up => {
                    let is_active = lock(&a).get(&token).copied().unwrap_or(false);
                    let body = json!({ "active": is_active }).to_string();
                    UpstreamReply::response(UpstreamResponse::new(
                        200,
                        &[("content-type", "application/json")],
                        body.as_bytes(),
                    ))
                }
            };
            reply.after(delay)
        });
        Idp {
            active,
            mode,
            upstream,
        }
    }

    pub fn set_active(&self, token: &str, active: bool) {
        lock(&self.active).insert(token.to_string(), active);
    }

    pub fn set_mode(&self, mode: IdpMode, delay: Duration) {
        *lock(&self.mode) = (mode, delay);
    }

    pub fn calls(&self) -> usize {
        self.upstream.requests().len()
    }
}

pub fn form_value(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.replace("%2E", ".").replace("%2e", "."))
    })
}

/// Upstream names as the profile spells them.
#[derive(Clone, Copy)]
pub struct Names {
    pub origin: &'static str,
    pub idp: &'static str,
}

pub const ENVOY: Names = Names {
    origin: "origin",
    idp: "idp",
};
pub const KONG: Names = Names {
    origin: "127.0.0.1:9001",
    idp: "127.0.0.1:9002",
};

/// The plugin configuration; `extra`'s top-level members replace the defaults'.
pub fn config(names: Names, origin_key: &str, extra: Value) -> String {
    let mut base = json!({
        "issuers": [{
            "issuer": ISSUER, "audiences": ["api"], "algorithms": ["ES256"],
            "jwks_upstream": {"upstream": names.origin, "path": "/jwks",
                "refresh_interval_secs": 300, "unknown_kid_cooldown_secs": 5}
        }],
        "revocation": {"upstream": names.origin, "path": "/snapshot", "delta_path": "/delta",
            "refresh_interval_secs": 10, "max_staleness_secs": 120, "timeout_ms": 1000,
            "public_keys": [origin_key]},
        "introspection": {"upstream": names.idp, "path": "/introspect", "client_id": "gw",
            "client_secret": "secret", "timeout_ms": 500, "cache_ttl_secs": 60},
        "forward_claims": [{"claim": "sub", "header": "x-user"}]
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base.to_string()
}

/// A proxy running revguard with `workers` workers, started and synced (keys and snapshot
/// fetched and shared).
pub fn start(
    mut proxy_config: ProxyConfig,
    workers: usize,
    plugin: String,
    names: Names,
    origin: &Origin,
    idp: &Idp,
) -> Proxy {
    proxy_config.workers = workers;
    proxy_config.plugin_configuration = plugin.into_bytes();
    let proxy_config = proxy_config
        .upstream(names.origin, origin.upstream.clone() as Arc<dyn Upstream>)
        .upstream(names.idp, idp.upstream.clone() as Arc<dyn Upstream>);
    let mut proxy = Proxy::start(
        &compiled_on(proxy_config.engine, proxy_config.fuel),
        proxy_config,
    )
    .expect("revguard loads");
    proxy.advance(Duration::from_secs(3)).unwrap();
    proxy
}

/// What the client got.
#[derive(Debug)]
pub struct Answer {
    pub status: u32,
    /// The `error` of a denial's JSON body.
    pub error: Option<String>,
    /// Headers the upstream received, for allowed requests.
    pub forwarded: BTreeMap<String, String>,
}

/// Sends a GET with `token` through `worker` and finishes the stream.
pub fn send(proxy: &mut Proxy, worker: usize, token: &str) -> Answer {
    send_request(
        proxy,
        worker,
        HttpRequest::get("api", "/orders").header("authorization", format!("Bearer {token}")),
    )
}

pub fn send_request(proxy: &mut Proxy, worker: usize, request: HttpRequest) -> Answer {
    let (stream, outcome) = proxy
        .run_request(worker, request, Duration::from_secs(5))
        .unwrap();
    let answer = match &outcome {
        Outcome::Continued(f) => Answer {
            status: 200,
            error: None,
            forwarded: f
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
        },
        Outcome::LocalReply(r) => Answer {
            status: r.status,
            error: serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string)),
            forwarded: BTreeMap::new(),
        },
        other => panic!("request did not finish: {other:?}"),
    };
    proxy.finish(stream, HttpResponse::new(200)).unwrap();
    answer
}

/// A finished request's verdict: `"allow"`, the denial's error code (else `"status N"`), or
/// `"reset"`; `None` while it is still paused.
pub fn verdict(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Continued(_) => Some("allow".into()),
        Outcome::LocalReply(r) => Some(
            serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("status {}", r.status)),
        ),
        Outcome::Paused => None,
        Outcome::Reset => Some("reset".into()),
    }
}

impl Answer {
    /// `"allow"` or the denial's error code, for compact assertions.
    pub fn verdict(&self) -> String {
        match self.status {
            200 => "allow".to_string(),
            _ => self
                .error
                .clone()
                .unwrap_or_else(|| format!("status {}", self.status)),
        }
    }
}

//! Real HTTP servers on loopback for the demo and the bench: an identity provider serving its JWKS
//! and answering RFC 7662 introspection, and a backend that echoes the identity headers it
//! receives. The demo's origin is the real one (`revguard origin serve`, test-host's
//! `origin_service`).

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use jwt_simple::prelude::*;
use serde_json::json;

/// What a handler sees of a request.
pub struct Request {
    pub method: String,
    pub url: String,
    pub body: Vec<u8>,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Serves `handler` on a fresh loopback port from a background thread.
pub fn serve(handler: impl Fn(Request) -> Reply + Send + 'static) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("the server has no IP address")?;
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = Vec::new();
            let _ = request.as_reader().take(1 << 20).read_to_end(&mut body);
            let seen = Request {
                method: request.method().as_str().to_string(),
                url: request.url().to_string(),
                body,
            };
            let reply = handler(seen);
            let mut response =
                tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
            for (name, value) in &reply.headers {
                if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                    response.add_header(h);
                }
            }
            let _ = request.respond(response);
        }
    });
    Ok(addr)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct IdpState {
    revoked_sessions: HashSet<String>,
    introspections: u64,
}

/// The identity provider: ES256 tokens, `GET /jwks`, `POST /introspect` (RFC 7662).
#[derive(Clone)]
pub struct Idp {
    key: Arc<ES256KeyPair>,
    state: Arc<Mutex<IdpState>>,
    pub addr: SocketAddr,
}

pub const ISSUER: &str = "https://idp.demo";
pub const AUDIENCE: &str = "orders-api";

impl Idp {
    pub fn start() -> Result<Idp, String> {
        let key = Arc::new(ES256KeyPair::generate().with_key_id("demo-1"));
        let state = Arc::new(Mutex::new(IdpState {
            revoked_sessions: HashSet::new(),
            introspections: 0,
        }));
        let jwk: serde_json::Value =
            serde_json::from_str(&key.public_key().to_jwk()).map_err(|e| e.to_string())?;
        let jwks = json!({ "keys": [jwk] }).to_string();
        let (served_key, served) = (key.clone(), state.clone());
        let addr = serve(move |req| match (req.method.as_str(), req.url.as_str()) {
            ("GET", "/jwks") => {
                Reply::new(200, jwks.clone()).header("content-type", "application/json")
            }
            ("POST", "/introspect") => {
                let answer = introspect(&served_key, &served, &req.body);
                Reply::new(200, answer.to_string()).header("content-type", "application/json")
            }
            _ => Reply::new(404, "not found"),
        })?;
        Ok(Idp { key, state, addr })
    }

    /// An access token for `sub` in session `sid`, valid for an hour from now.
    pub fn issue(&self, sub: &str, sid: &str) -> Result<String, String> {
        let custom = json!({"sid": sid, "scope": "orders:read"});
        let claims = Claims::with_custom_claims(custom, Duration::from_secs(3600))
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE)
            .with_subject(sub)
            .with_jwt_id(format!("{sid}-at-1"));
        self.key.sign(claims).map_err(|e| e.to_string())
    }

    /// Ends a session: introspection answers `active: false` for its tokens from now on.
    pub fn revoke_session(&self, sid: &str) {
        lock(&self.state).revoked_sessions.insert(sid.to_string());
    }

    pub fn introspections(&self) -> u64 {
        lock(&self.state).introspections
    }
}

fn introspect(key: &ES256KeyPair, state: &Mutex<IdpState>, body: &[u8]) -> serde_json::Value {
    let mut s = lock(state);
    s.introspections += 1;
    let token = String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("token=").map(str::to_string))
        .unwrap_or_default();
    let Ok(claims) = key
        .public_key()
        .verify_token::<serde_json::Map<String, serde_json::Value>>(&token, None)
    else {
        return json!({"active": false});
    };
    let sid = claims
        .custom
        .get("sid")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if s.revoked_sessions.contains(sid) {
        return json!({"active": false});
    }
    json!({
        "active": true,
        "sub": claims.subject,
        "exp": claims.expires_at.map(|t| t.as_secs()),
        "iss": ISSUER,
    })
}

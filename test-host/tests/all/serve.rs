//! Black-box test of `revguard-test-host serve`: the real binary runs the real filter as a gateway
//! on loopback, with an IdP, a revocation origin and a backend as real HTTP servers. A client sends
//! allowed, unauthenticated and revoked requests (ureq) and reads the admin `/stats`.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use revguard::snapshot::{build_snapshot, BuildOptions, Revocation, RevocationTarget, SigningKey};
use serde_json::json;

use super::rg::Issuer;

/// The headers of the last request a server saw.
type SeenHeaders = Arc<Mutex<Vec<(String, String)>>>;

/// Serves `handler` (path -> status, body) on a fresh loopback port; also returns the headers of the
/// last request seen, so the backend can show what the gateway forwarded.
fn http_server(
    handler: impl Fn(&str) -> (u16, Vec<u8>) + Send + 'static,
) -> (SocketAddr, SeenHeaders) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            *record.lock().unwrap() = request
                .headers()
                .iter()
                .map(|h| {
                    (
                        h.field.to_string().to_ascii_lowercase(),
                        h.value.to_string(),
                    )
                })
                .collect();
            let (status, body) = handler(request.url());
            let _ = request.respond(tiny_http::Response::from_data(body).with_status_code(status));
        }
    });
    (addr, seen)
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange (ureq, the target as given: it neither normalises paths nor follows
/// redirects); returns the status and the response as text: `name: value` header lines, a blank
/// line, the body.
fn get(addr: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .new_agent();
    let uri = ureq::http::Uri::builder()
        .scheme("http")
        .authority(addr)
        .path_and_query(path)
        .build()
        .ok()?;
    let mut request = ureq::http::Request::get(uri)
        .header("host", "api.test")
        .header("connection", "close");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = agent.run(request.body(()).ok()?).ok()?;
    let status = response.status().as_u16();
    let mut text = String::new();
    for (name, value) in response.headers() {
        text.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str("\r\n");
    text.push_str(&response.into_body().read_to_string().ok()?);
    Some((status, text))
}

/// The `serve` process, killed on drop.
pub(super) struct Gateway(pub(super) Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn serve_is_a_working_gateway_that_picks_up_revocations() {
    let wasm = super::rg::wasm_path();
    let issuer = Issuer::new(&["k1"]);
    let jwks = issuer.jwks(&["k1"]).to_string();
    let (idp, _) = http_server(move |_| (200, jwks.clone().into_bytes()));
    let key = SigningKey::from_seed([5; 32]).unwrap();
    let snapshot_of = {
        let key = key.clone();
        move |generation: u64, entries: &[Revocation]| {
            let options = BuildOptions {
                generation,
                built_at: unix_now(),
                max_age_secs: 600,
                fp_rate: 0.001,
                salt: [generation as u8; 32],
            };
            build_snapshot(entries, &options, &key).unwrap()
        }
    };
    let published = Arc::new(Mutex::new(snapshot_of(1, &[])));
    let served = published.clone();
    let (origin, _) = http_server(move |_| (200, served.lock().unwrap().clone()));
    let (backend, forwarded) =
        http_server(|url| (200, format!("hello from the backend: {url}").into_bytes()));

    let config = json!({
        "issuers": [{"issuer": super::rg::ISSUER, "audiences": ["api"], "algorithms": ["ES256"],
                     "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
        "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
        "revocation": {"upstream": "origin", "path": "/current.snap", "refresh_interval_secs": 1,
                       "max_staleness_secs": 600, "public_keys": [key.public_key_text()]}
    });
    let dir = std::env::temp_dir().join(format!("revguard-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_file = dir.join("policy.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let _gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_revguard-test-host"))
            .args([
                "serve",
                "--workers",
                "2",
                "--listen",
                &listen,
                "--admin",
                &admin,
            ])
            .arg("--wasm")
            .arg(&wasm)
            .arg("--config")
            .arg(&config_file)
            .args(["--backend", &format!("http://{backend}")])
            .args(["--upstream", &format!("idp=http://{idp}")])
            .args(["--upstream", &format!("origin=http://{origin}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let now = unix_now();
    let alice = issuer.token("k1", "alice", "jti-alice", None, now);
    // Until both workers hold keys and snapshot (before that the gateway fails closed with 503).
    let started = Instant::now();
    let mut allowed_in_a_row = 0;
    while allowed_in_a_row < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway never became ready"
        );
        match get(&listen, "/orders", Some(&alice)) {
            Some((200, _)) => allowed_in_a_row += 1,
            _ => {
                allowed_in_a_row = 0;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let (status, body) = get(&listen, "/orders", Some(&alice)).unwrap();
    assert_eq!(status, 200);
    assert!(body.ends_with("hello from the backend: /orders"), "{body}");
    let headers = forwarded.lock().unwrap().clone();
    assert!(
        headers.contains(&("x-auth-subject".to_string(), "alice".to_string())),
        "{headers:?}"
    );
    // The backend gets the normalised target the filter set as `:path`.
    let (status, body) = get(&listen, "//orders/./x/../y?q=%2e", Some(&alice)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("hello from the backend: /orders/y?q=%2e"),
        "{body}"
    );

    let (status, body) = get(&listen, "/orders", None).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{body}"
    );
    assert!(body.contains("missing_token"), "{body}");

    // Revoke alice's token at the origin: both workers deny it after the next refresh.
    let revoked = [Revocation {
        target: RevocationTarget::Subject {
            sub: "alice".into(),
            not_before: now + 1,
        },
        exp: None,
    }];
    *published.lock().unwrap() = snapshot_of(2, &revoked);
    let revoked_at = Instant::now();
    let mut denials_in_a_row = 0;
    while denials_in_a_row < 4 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(15),
            "the revocation never took effect"
        );
        match get(&listen, "/orders", Some(&alice)) {
            Some((401, body)) => {
                assert!(body.contains("revoked_subject"), "{body}");
                denials_in_a_row += 1;
            }
            _ => {
                denials_in_a_row = 0;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let bob = issuer.token("k1", "bob", "jti-bob", None, now);
    assert_eq!(get(&listen, "/orders", Some(&bob)).unwrap().0, 200);

    // A worker adds its request counters to the proxy's metrics on its next tick (up to one
    // tick period later), so the admin endpoint is read until they show up.
    let shown_at = Instant::now();
    loop {
        let (status, stats) = get(&admin, "/stats", None).unwrap();
        assert_eq!(status, 200);
        let complete = stats.contains("wasmcustom.revguard_deny_revoked_subject: ")
            && stats.contains("wasmcustom.revguard_snapshot_generation: 2");
        if complete {
            break;
        }
        assert!(
            shown_at.elapsed() < Duration::from_secs(5),
            "the metrics never showed the revocation: {stats}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

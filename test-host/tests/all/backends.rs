//! Issue 11, end to end: "a request must be judged by the rule that the backend will actually
//! apply". `revguard-test-host serve` (the real binary and the real filter) stands in front of real
//! backends on loopback, and a client writes request lines byte for byte over TCP (an HTTP client
//! library would normalise the paths and hide the attack):
//!
//! - `python3 -m http.server` on a directory holding `admin/secret`: a file server that resolves
//!   dot segments and merges slashes itself;
//! - a wsgiref (WSGI) app that routes like a lax framework: it serves the admin handler for every
//!   PATH_INFO that reads as `/admin...` after its own decoding (backslashes, `;` parameters, a
//!   second percent-decoding, overlong dots, IIS `%u` escapes, dot segments, letter case), and
//!   echoes the method, the raw target and the identity headers (CGI names) it received;
//! - the same kind of app on Flask/werkzeug, when Flask happens to be installed (not required).
//!
//! Python 3 standard library only, so CI installs nothing. With a token that has scope `read` and
//! with no token, no spelling of `/admin/secret` may reach the admin content; with scope `admin`
//! the backend must receive the normalised path. Forged identity headers under any spelling must
//! not reach the backend.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::rg::{Issuer, ISSUER};
use super::serve::{free_port, unix_now, Gateway};

/// The content of `admin/secret` on the file server.
const ADMIN_FILE: &str = "ADMIN-SECRET-7c41";

/// The WSGI backend (wsgiref, standard library). Each handler logs `"<request line>" <status>` to
/// stderr and prints its port on stdout.
const WSGI_APP: &str = r#"
import json, posixpath, re, sys
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, make_server


class Handler(WSGIRequestHandler):
    def get_environ(self):
        env = super().get_environ()
        # The target as received (BaseHTTPRequestHandler rewrites a leading '//' in self.path).
        parts = self.requestline.split(' ')
        env['RAW_TARGET'] = parts[1] if len(parts) > 1 else ''
        return env

    def log_request(self, code='-', size='-'):
        sys.stderr.write('"%s" %s\n' % (self.requestline, code))
        sys.stderr.flush()

    def log_message(self, *args):
        pass


def route(path_info):
    """Where a lax framework routes PATH_INFO (which wsgiref already percent-decoded once)."""
    p = path_info.replace('\\', '/')
    p = '/'.join(segment.split(';', 1)[0] for segment in p.split('/'))
    p = re.sub(r'%u([0-9a-fA-F]{4})', lambda m: chr(int(m.group(1), 16)), p)
    p = unquote(p)                       # a second decoding, as some middleware does
    p = p.replace('\xc0\xae', '.')       # the overlong '.' (read as Latin-1 by wsgiref)
    p = posixpath.normpath(re.sub('/+', '/', '/' + p))
    return p.lower()


def app(environ, start_response):
    path = environ.get('PATH_INFO', '')
    method = environ['REQUEST_METHOD']
    routed = route(path)
    if routed.startswith('/admin'):
        status, head = '200 OK', 'ADMIN:' + path
    elif routed.startswith('/api/') and method.upper() == 'POST':
        status, head = '200 OK', 'WRITE:' + path
    elif routed.startswith('/api/') or routed.startswith('/public/'):
        status, head = '200 OK', 'OK:' + path
    else:
        status, head = '404 Not Found', 'NOT-FOUND:' + path
    seen = {
        'method': method,
        'raw_target': environ.get('RAW_TARGET', ''),
        'path_info': path,
        'identity': {k: v for k, v in environ.items() if k.startswith('HTTP_X_AUTH')},
    }
    body = (head + '\n' + json.dumps(seen, sort_keys=True)).encode('utf-8')
    start_response(status, [('Content-Type', 'text/plain; charset=utf-8'),
                            ('Content-Length', str(len(body)))])
    return [body]


server = make_server('127.0.0.1', 0, app, handler_class=Handler)
print(server.server_port, flush=True)
server.serve_forever()
"#;

/// The same routes on Flask (werkzeug's server); prints `no-flask` when Flask is not installed.
const FLASK_APP: &str = r#"
import json, logging, sys
try:
    from flask import Flask, request
    from werkzeug.serving import WSGIRequestHandler, make_server
except ImportError:
    print('no-flask', flush=True)
    sys.exit(0)

logging.getLogger('werkzeug').setLevel(logging.ERROR)


class Handler(WSGIRequestHandler):
    def make_environ(self):
        env = super().make_environ()
        parts = self.requestline.split(' ')
        env['RAW_TARGET'] = parts[1] if len(parts) > 1 else ''
        return env

    def log_request(self, code='-', size='-'):
        sys.stderr.write('"%s" %s\n' % (self.requestline, getattr(code, 'value', code)))
        sys.stderr.flush()


app = Flask(__name__)
ALL = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD']


def seen():
    return json.dumps({
        'method': request.method,
        'raw_target': request.environ.get('RAW_TARGET', ''),
        'path_info': request.path,
        'identity': {k: v for k, v in request.environ.items() if k.startswith('HTTP_X_AUTH')},
    }, sort_keys=True)


@app.route('/admin/<path:rest>', methods=ALL)
def admin(rest):
    return 'ADMIN:' + request.path + '\n' + seen()


@app.route('/api/<path:rest>', methods=ALL)
def api(rest):
    return ('WRITE:' if request.method == 'POST' else 'OK:') + request.path + '\n' + seen()


@app.route('/public/<path:rest>')
def public(rest):
    return 'OK:' + request.path + '\n' + seen()


@app.errorhandler(404)
def not_found(_):
    return 'NOT-FOUND:' + request.path + '\n' + seen(), 404


server = make_server('127.0.0.1', 0, app, threaded=True, request_handler=Handler)
print(server.port, flush=True)
server.serve_forever()
"#;

/// A Python server, killed on drop. `lines` carries its stderr (the request log).
struct Python {
    child: Child,
    port: u16,
    lines: Receiver<String>,
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Python {
    /// Runs `python3 -u args...`; the port is the first number on the first stdout line. `None`
    /// when that line is `no-flask` (an optional backend that is not installed).
    fn start(args: &[&str], dir: &Path) -> Option<Python> {
        let mut child = Command::new("python3")
            .arg("-u")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the backend tests (standard library only)");
        let lines = forward_lines(child.stderr.take().unwrap());
        let stdout = forward_lines(child.stdout.take().unwrap());
        let mut python = Python {
            child,
            port: 0,
            lines,
        };
        let first = stdout
            .recv_timeout(Duration::from_secs(20))
            .expect("the Python backend never printed its port");
        if first.trim() == "no-flask" {
            return None;
        }
        // http.server: "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ...".
        python.port = first
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .find_map(|w| w.parse().ok().filter(|&p: &u16| p > 1024))
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        Some(python)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The request lines the backend logged since the last call, waiting up to `wait` for one
    /// (other log lines, such as http.server's "code 404, message ...", come before it).
    fn saw(&self, wait: Duration) -> Vec<String> {
        let is_request = |l: &str| l.contains(" HTTP/1.");
        let deadline = Instant::now() + wait;
        let mut lines = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = is_request(&line);
            lines.push(line);
            if done {
                break;
            }
        }
        lines.extend(self.lines.try_iter());
        lines
            .iter()
            .filter(|l| is_request(l))
            .map(|l| {
                // `... "GET /x HTTP/1.1" 200 -` -> `GET /x HTTP/1.1 -> 200`.
                match (l.find('"'), l.rfind('"')) {
                    (Some(s), Some(e)) if e > s => {
                        let code = l[e + 1..].split_whitespace().next().unwrap_or("?");
                        format!("{} -> {code}", &l[s + 1..e])
                    }
                    _ => l.clone(),
                }
            })
            .collect()
    }
}

fn forward_lines(source: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// One response as the client got it.
struct Response {
    status: u16,
    body: String,
}

impl Response {
    /// The filter's reason code (`{"error": ...}` local replies).
    fn reason(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        Some(v.get("error")?.as_str()?.to_string())
    }

    /// The JSON a Python app echoed (second body line).
    fn echo(&self) -> Option<Value> {
        serde_json::from_str(self.body.lines().nth(1)?).ok()
    }
}

/// Writes `method target HTTP/1.1` and `headers` as given, byte for byte.
///
/// The one hand-written HTTP/1.1 client kept in the repository (the test host's upstream, `serve`'s
/// test client and the component example's test use ureq and tiny_http). A client crate cannot send
/// every spelling this test needs as written: ureq (through the `http` crate's URI) drops a `#...`
/// from the target as a fragment and sends an absolute-form target (`http://host/admin/secret`) in
/// origin form, so those attacks would never reach the gateway. Writing bytes also keeps duplicate
/// and `_`/case-variant header names in the order given, and a reset reads as status 0.
fn raw_request(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = format!("{method} {target} HTTP/1.1\r\nhost: api.test\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("content-length: 0\r\nconnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        body: body.to_string(),
    }
}

/// Starts `serve` with the filter in front of `backend_port`; see [`wait_ready`].
fn start_gateway(
    wasm: &Path,
    dir: &Path,
    name: &str,
    config: &Value,
    backend_port: u16,
) -> (Gateway, String) {
    let config_file = dir.join(format!("policy-{name}.json"));
    std::fs::write(&config_file, config.to_string()).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_revguard-test-host"))
            .args(["serve", "--workers", "1", "--listen", &listen])
            .args(["--admin", &admin])
            .arg("--wasm")
            .arg(wasm)
            .arg("--config")
            .arg(&config_file)
            .args(["--backend", &format!("http://127.0.0.1:{backend_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (gateway, listen)
}

/// `serve` listens once the module is compiled and instantiated.
fn wait_ready(listen: &str) {
    let started = Instant::now();
    while TcpStream::connect(listen).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway on {listen} never listened"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `python3 -m http.server`: admin content is the file's text.
    Files,
    /// wsgiref or Flask: admin content is an `ADMIN:` answer; also `WRITE:` for POST.
    App,
}

struct Backend {
    name: &'static str,
    kind: Kind,
    python: Python,
    listen: String,
    _gateway: Gateway,
}

impl Backend {
    /// Whether `response` is content that only an admin (or a writer) may get.
    fn privileged(&self, response: &Response) -> bool {
        match self.kind {
            Kind::Files => response.body.contains(ADMIN_FILE),
            Kind::App => response.body.starts_with("ADMIN:") || response.body.starts_with("WRITE:"),
        }
    }

    /// Sends one request; returns the response and what the backend logged for it.
    fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> (Response, Vec<String>) {
        let response = raw_request(&self.listen, method, target, headers);
        // A local reply of the filter never reached the backend (checked at the end: no line is
        // left over); anything else did, and its log line may trail the response a little.
        let wait = if response.reason().is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(2)
        };
        let saw = self.python.saw(wait);
        (response, saw)
    }
}

/// What the backend saw as identity, if not what the filter verified: `reader`'s scope and
/// subject for `who == "read"` (a token), none otherwise, whatever forged spellings (`what`) came.
fn identity_failure(b: &Backend, who: &str, what: &str, r: &Response) -> Option<String> {
    let identity = r.echo().map(|e| e["identity"].clone());
    let want = if who == "read" {
        json!({"HTTP_X_AUTH_SCOPE": "read", "HTTP_X_AUTH_SUBJECT": "reader"})
    } else {
        json!({})
    };
    (r.status != 200 || identity.as_ref() != Some(&want)).then(|| {
        format!(
            "{} {who} {what}: backend identity {identity:?}, want {want} ({} {})",
            b.name, r.status, r.body
        )
    })
}

/// A spelling of `/admin/secret` (or of a method) and how the gateway must judge it with a
/// read-scope token: the status and the filter's reason code.
struct Variant {
    method: &'static str,
    target: String,
    read: (u16, &'static str),
}

fn variants(listen: &str) -> Vec<Variant> {
    let v = |method, target: &str, read| Variant {
        method,
        target: target.to_string(),
        read,
    };
    let scope = (403, "insufficient_scope");
    let path = (400, "invalid_path");
    let request = (400, "invalid_request");
    vec![
        v("GET", "/admin/secret", scope),
        // The directory itself: a "/admin/" prefix covers "/admin" (an Express-style mount
        // serves it as the admin index).
        v("GET", "/admin", scope),
        v("GET", "/ADMIN", path),
        v("GET", "//admin/secret", scope),
        v("GET", "/%61dmin/secret", scope),
        v("GET", "/./admin/secret", scope),
        v("GET", "/api/../admin/secret", scope),
        v("GET", "/Admin/secret", path),
        v("GET", "/ADMIN/secret", path),
        v("GET", "/admin;x/secret", path),
        v("GET", "/admin%2fsecret", path),
        v("GET", "/admin%5csecret", path),
        v("GET", "/admin\\secret", path),
        v("GET", "/public/../admin/secret", scope),
        v("GET", "/public/..;/admin/secret", path),
        v("GET", "/public/%2e%2e/admin/secret", scope),
        v("GET", "/public/%252e%252e/admin/secret", path),
        v("GET", "/public/%c0%ae%c0%ae/admin/secret", path),
        v("GET", "/%u0061dmin/secret", path),
        v("GET", "/admin/secret%00.html", path),
        v("GET", "/admin/secret#x", path),
        v("GET", &format!("http://{listen}/admin/secret"), path),
        v("GET", "/admin/./secret", scope),
        v("GET", "/pub%6cic/../admin/secret", scope),
        v("get", "/admin/secret", request),
        v("get", "/api/x", request),
        v("POST", "/api/x", scope),
        v("post", "/api/x", request),
    ]
}

fn policy(issuer: &Issuer) -> Value {
    json!({
        "issuers": [{"issuer": ISSUER, "audiences": ["api"], "algorithms": ["ES256"],
                     "jwks": issuer.jwks(&["k1"])}],
        "routes": [
            {"name": "public", "path_prefix": "/public/", "no_auth": true},
            {"name": "admin", "path_prefix": "/admin/", "required_scopes": ["admin"]},
            {"name": "api-write", "path_prefix": "/api/", "methods": ["POST"],
             "required_scopes": ["write"]}
        ],
        "forward_claims": [{"claim": "scope", "header": "x-auth-scope"},
                           {"claim": "sub", "header": "x-auth-subject"}]
    })
}

fn token(issuer: &Issuer, sub: &str, scope: &str) -> String {
    let now = unix_now();
    issuer.sign(
        "k1",
        &json!({"iss": ISSUER, "aud": "api", "sub": sub, "jti": format!("jti-{sub}"),
                "iat": now, "exp": now + 600, "scope": scope}),
    )
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn no_spelling_of_a_protected_path_reaches_a_real_backend() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("revguard-backends-{}", std::process::id())));
    let root = dir.0.join("www");
    for (file, text) in [
        ("admin/secret", ADMIN_FILE),
        ("public/index.html", "PUBLIC-INDEX"),
        ("api/x", "API-X"),
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(dir.0.join("wsgi_app.py"), WSGI_APP).unwrap();
    std::fs::write(dir.0.join("flask_app.py"), FLASK_APP).unwrap();

    let issuer = Issuer::new(&["k1"]);
    let config = policy(&issuer);
    let www = root.to_str().unwrap();
    let pythons = [
        (
            "http.server",
            Kind::Files,
            Python::start(
                &[
                    "-m",
                    "http.server",
                    "0",
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    www,
                ],
                &dir.0,
            ),
        ),
        (
            "wsgiref",
            Kind::App,
            Python::start(&["wsgi_app.py"], &dir.0),
        ),
        ("flask", Kind::App, Python::start(&["flask_app.py"], &dir.0)),
    ];
    // Start every gateway first: each compiles the module, in parallel.
    let wasm = super::rg::wasm_path();
    let mut backends = Vec::new();
    for (name, kind, python) in pythons {
        let Some(python) = python else {
            println!("{name}: not installed, skipped");
            continue;
        };
        let (gateway, listen) = start_gateway(&wasm, &dir.0, name, &config, python.port);
        backends.push(Backend {
            name,
            kind,
            python,
            listen,
            _gateway: gateway,
        });
    }
    for b in &backends {
        wait_ready(&b.listen);
    }

    let read = token(&issuer, "reader", "read");
    let admin = token(&issuer, "root", "admin read");
    let read_auth = format!("Bearer {read}");
    let admin_auth = format!("Bearer {admin}");
    let mut failures = Vec::new();
    let mut table = vec![format!(
        "{:<11} {:<10} {:<5} {:<6} {:<46} {:>6}  {:<18} backend saw (via the gateway)",
        "backend", "direct", "token", "method", "target", "status", "reason"
    )];
    let mut row = |b: &Backend,
                   direct: &str,
                   who: &str,
                   method: &str,
                   target: &str,
                   r: &Response,
                   saw: &[String]| {
        let mut saw = if saw.is_empty() {
            "-".to_string()
        } else {
            saw.join(" | ")
        };
        if let Some(echo) = r.echo() {
            saw.push_str(&format!(" {}", echo["identity"]));
        }
        let reason = r.reason().unwrap_or_else(|| "-".into());
        table.push(format!(
            "{:<11} {:<10} {:<5} {:<6} {:<46} {:>6}  {:<18} {saw}",
            b.name, direct, who, method, target, r.status, reason
        ));
    };

    for b in &backends {
        // The gateway answers and forwards at all.
        let (r, saw) = b.send("GET", "/public/index.html", &[]);
        row(b, "", "none", "GET", "/public/index.html", &r, &saw);
        if r.status != 200 || saw.is_empty() {
            failures.push(format!(
                "{}: /public/index.html: {} {}",
                b.name, r.status, r.body
            ));
        }

        for v in variants(&b.listen) {
            // What the backend does with the spelling on its own, without the gateway.
            let direct = raw_request(&b.python.addr(), v.method, &v.target, &[]);
            let _ = b.python.saw(if direct.status == 0 {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(2)
            });
            let direct = match (b.privileged(&direct), direct.status) {
                (true, _) if direct.body.starts_with("WRITE:") => "WRITE!".to_string(),
                (true, _) => "ADMIN!".to_string(),
                (false, 0) => "reset".to_string(),
                (false, status) => status.to_string(),
            };
            for (who, auth) in [("read", Some(read_auth.as_str())), ("none", None)] {
                let headers: Vec<(&str, &str)> =
                    auth.map(|a| ("authorization", a)).into_iter().collect();
                let (r, saw) = b.send(v.method, &v.target, &headers);
                row(b, &direct, who, v.method, &v.target, &r, &saw);
                let expected = match (who, v.read) {
                    ("none", (403, _)) => (401, "missing_token"),
                    (_, e) => e,
                };
                let what = format!("{} {who} {} {}", b.name, v.method, v.target);
                if b.privileged(&r) {
                    failures.push(format!("{what}: PRIVILEGED CONTENT SERVED: {}", r.body));
                }
                // The gateway refused (400/401/403), or the backend answered 404 for a path
                // that is genuinely a different one.
                let refused = matches!(r.status, 400 | 401 | 403) && saw.is_empty();
                let elsewhere = r.status == 404 && !saw.is_empty() && !b.privileged(&r);
                if !(refused || elsewhere) {
                    failures.push(format!("{what}: {} reached the backend: {saw:?}", r.status));
                }
                if (r.status, r.reason().as_deref()) != (expected.0, Some(expected.1)) {
                    failures.push(format!(
                        "{what}: expected {} {}, got {} {:?}",
                        expected.0,
                        expected.1,
                        r.status,
                        r.reason()
                    ));
                }
            }
        }

        // Scope admin: the content, and the backend receives the normalised target.
        for (target, forwarded) in [
            ("/admin/secret", "/admin/secret"),
            ("//admin/secret", "/admin/secret"),
            ("/%61dmin/./secret?q=%2e%2e", "/admin/secret?q=%2e%2e"),
        ] {
            let (r, saw) = b.send("GET", target, &[("authorization", &admin_auth)]);
            row(b, "", "admin", "GET", target, &r, &saw);
            let expected_line = format!("GET {forwarded} HTTP/1.1 -> 200");
            if r.status != 200 || !b.privileged(&r) || saw != [expected_line.clone()] {
                failures.push(format!(
                    "{} admin {target}: want 200, the content and {expected_line:?}; got {} {saw:?} {}",
                    b.name, r.status, r.body
                ));
            }
            if b.kind == Kind::App {
                let echo = r.echo().unwrap_or_default();
                if echo["identity"]["HTTP_X_AUTH_SCOPE"] != "admin read" {
                    failures.push(format!("{} admin {target}: identity {echo}", b.name));
                }
            }
        }
    }

    // Identity headers under other spellings. tiny_http (the `serve` listener) takes any header
    // name without whitespace, `_` included, keeps it as sent (serve lower-cases it) and neither
    // drops nor folds it, so `x_auth_scope` reaches the filter as a header of its own; wsgiref
    // (like CGI) folds `-` and `_` into HTTP_X_AUTH_SCOPE, so a forged spelling left in place
    // would arrive as the verified header (joined as "read,admin", or first). werkzeug (Flask)
    // drops header names with `_` from the environ. The `direct` column is what the backend's
    // HTTP_X_AUTH_SCOPE is without the gateway, with the forged header next to a real one.
    for b in backends.iter().filter(|b| b.kind == Kind::App) {
        for forged in [
            "x_auth_scope",
            "X_Auth_Scope",
            "x-auth-scope",
            "X-AUTH-SCOPE",
        ] {
            let direct = raw_request(
                &b.python.addr(),
                "GET",
                "/api/x",
                &[("x-auth-scope", "read"), (forged, "admin")],
            );
            let _ = b.python.saw(Duration::from_secs(2));
            let direct = direct.echo().map_or("?".to_string(), |e| {
                e["identity"]["HTTP_X_AUTH_SCOPE"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string()
            });
            for (who, target) in [("read", "/api/x"), ("none", "/public/index.html")] {
                let mut headers = vec![(forged, "admin")];
                if who == "read" {
                    headers.insert(0, ("authorization", read_auth.as_str()));
                }
                let (r, saw) = b.send("GET", target, &headers);
                let label = format!("{target} + {forged}: admin");
                row(b, &direct, who, "GET", &label, &r, &saw);
                failures.extend(identity_failure(b, who, forged, &r));
            }
        }
        // Several copies at once, the exact name among them: the filter removes only what the
        // request carries (issue 15), so every copy must go, not just the first a set would
        // replace on an older Envoy.
        let copies = [
            ("x-auth-scope", "admin"),
            ("X-Auth-Scope", "root"),
            ("x_auth_subject", "root"),
            ("X-AUTH-SUBJECT", "root"),
        ];
        for (who, target) in [("read", "/api/x"), ("none", "/public/index.html")] {
            let mut headers = copies.to_vec();
            if who == "read" {
                headers.insert(0, ("authorization", read_auth.as_str()));
            }
            let (r, saw) = b.send("GET", target, &headers);
            row(
                b,
                "",
                who,
                "GET",
                &format!("{target} + 4 forged copies"),
                &r,
                &saw,
            );
            failures.extend(identity_failure(b, who, "forged copies", &r));
        }
        // Two credentials: a Basic and a Bearer authorization header.
        let (r, saw) = b.send(
            "GET",
            "/api/x",
            &[
                ("authorization", "Basic cm9vdDpyb290"),
                ("authorization", read_auth.as_str()),
            ],
        );
        row(b, "", "read", "GET", "/api/x + Basic and Bearer", &r, &saw);
        if (r.status, r.reason().as_deref()) != (400, Some("invalid_request")) || !saw.is_empty() {
            failures.push(format!(
                "{} two authorization headers: {} {}",
                b.name, r.status, r.body
            ));
        }
    }

    // Nothing reached a backend without being accounted for above.
    std::thread::sleep(Duration::from_millis(100));
    for b in &backends {
        let stray = b.python.saw(Duration::ZERO);
        if !stray.is_empty() {
            failures.push(format!(
                "{}: unaccounted backend requests {stray:?}",
                b.name
            ));
        }
    }
    println!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

//! The real origin service (`revguard origin serve`, src/origin/) as a child process on loopback,
//! for the demo and the end-to-end tests: keys from `revguard keygen`, an API token from
//! `revguard origin token`, a SQLite store in a directory of its own, real HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// The repository root (the workspace of `revguard` and this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the `revguard` binary (dev profile, the workspace's target directory) and returns its
/// path. A no-op once built: the tests and the demo run the same command.
///
/// `-p revguard-test-host` is selected too (only the `revguard` binary is built): cargo unifies
/// dependency features over the selected packages, so the binary's dependencies resolve as in the
/// test host's own build and reuse most of its compiled units (syn, serde and the proc macros);
/// only what axum adds features to (serde_json, then jwt-simple and revguard) builds again. With
/// `-p revguard` alone the proc macros resolve differently and nearly everything builds twice.
pub fn revguard_binary() -> Result<PathBuf, String> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "revguard-test-host",
            "-p",
            "revguard",
        ])
        .args(["--bin", "revguard"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env_remove("RUSTFLAGS")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the revguard binary failed ({status})"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug").join("revguard"))
}

fn run(bin: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "revguard {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running origin. Killed when dropped.
pub struct OriginService {
    child: Child,
    pub addr: SocketAddr,
    /// The API token (bearer) for `/v1/...`.
    pub token: String,
    /// The signing key's public half, for the plugin's `revocation.public_keys`.
    pub public_key: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    bin: PathBuf,
}

impl OriginService {
    /// Starts `revguard origin serve` with its state in `dir` (created), on a free loopback
    /// port; `extra`'s members are added to (or replace those of) the configuration.
    pub fn start(dir: &Path, extra: Value) -> Result<OriginService, String> {
        let bin = revguard_binary()?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key_prefix = dir.join("origin");
        let key_file = dir.join("origin.key");
        if !key_file.exists() {
            run(&bin, &["keygen", "--out", &key_prefix.to_string_lossy()])?;
        }
        let public_key = std::fs::read_to_string(dir.join("origin.pub"))
            .map_err(|e| format!("origin.pub: {e}"))?
            .trim()
            .to_string();
        let printed = run(&bin, &["origin", "token", "--name", "test-host"])?;
        let field = |prefix: &str| {
            printed
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_string)
                .ok_or_else(|| format!("`revguard origin token` printed no {prefix:?}"))
        };
        let token = field("token: ")?;
        let entry: Value = serde_json::from_str(&field("api_tokens entry: ")?)
            .map_err(|e| format!("api_tokens entry: {e}"))?;
        let mut config = json!({
            "listen": "127.0.0.1:0",
            "database": dir.join("origin.db"),
            "signing_key_file": key_file,
            "api_tokens": [entry],
        });
        if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        let config_path = dir.join("origin.json");
        std::fs::write(&config_path, config.to_string()).map_err(|e| e.to_string())?;
        let mut origin = OriginService {
            child: spawn(&bin, &config_path)?,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token,
            public_key,
            dir: dir.to_path_buf(),
            config_path,
            bin,
        };
        origin.addr = listening_on(&mut origin.child)?;
        Ok(origin)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs one revocation or a batch; the answer's JSON (2xx: committed) or the error.
    pub fn revoke(&self, body: &Value) -> Result<Value, String> {
        let mut answer = agent()
            .post(&self.url("/v1/revocations"))
            .header("authorization", &format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| format!("POST /v1/revocations: {e}"))?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            return Err(format!("POST /v1/revocations: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// `GET /v1/fleet`: which node holds which generation.
    pub fn fleet(&self) -> Result<Value, String> {
        let mut answer = agent()
            .get(&self.url("/v1/fleet"))
            .header("authorization", &format!("Bearer {}", self.token))
            .call()
            .map_err(|e| format!("GET /v1/fleet: {e}"))?;
        let text = answer
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("GET /v1/fleet: {e}: {text}"))
    }

    /// The newest generation published (`GET /healthz`).
    pub fn generation(&self) -> Result<u64, String> {
        let mut answer = agent()
            .get(&self.url("/healthz"))
            .call()
            .map_err(|e| format!("GET /healthz: {e}"))?;
        let text = answer
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["generation"].as_u64())
            .ok_or_else(|| format!("GET /healthz: {text}"))
    }

    /// `revguard origin export --dir`: the store's current files, written atomically.
    pub fn export(&self, dir: &Path) -> Result<(), String> {
        run(
            &self.bin,
            &[
                "origin",
                "export",
                "--config",
                &self.config_path.to_string_lossy(),
                "--dir",
                &dir.to_string_lossy(),
            ],
        )
        .map(|_| ())
    }
}

impl Drop for OriginService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No proxy from the environment, no redirects, every status an answer.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn spawn(bin: &Path, config: &Path) -> Result<Child, String> {
    Command::new(bin)
        .args(["origin", "serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the origin: {e}"))
}

/// Reads the child's stdout until `revguard origin listening on http://ADDR` (10 s at most);
/// the rest of its output is passed through.
fn listening_on(child: &mut Child) -> Result<SocketAddr, String> {
    let stdout = child.stdout.take().ok_or("the origin has no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            match line.strip_prefix("revguard origin listening on http://") {
                Some(addr) if !sent => {
                    sent = tx.send(addr.trim().to_string()).is_ok();
                }
                _ => println!("[origin] {line}"),
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the origin did not start listening within 10 s".to_string())?;
    addr.parse()
        .map_err(|e| format!("the origin printed a bad address {addr:?}: {e}"))
}

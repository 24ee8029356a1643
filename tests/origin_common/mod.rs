//! Shared kit of the origin tests: a real `revguard origin serve` process on loopback, its
//! configuration in a scratch directory, and a blocking HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use revguard::snapshot::{RevocationState, SnapshotKeys, TokenIds};
use serde_json::{json, Value};

pub const TOKEN: &str = "rgo_test-token-for-the-origin-tests";

pub fn token_hash() -> String {
    revguard::wire::hex(&revguard::origin::auth::token_digest(TOKEN))
}

/// A fresh scratch directory.
pub fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn revguard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_revguard"))
        .args(args)
        .output()
        .unwrap()
}

/// A directory with a signing key and an origin.json; `extra` is merged into the config.
pub struct Setup {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub public_key: String,
}

impl Setup {
    pub fn new(name: &str, extra: Value) -> Setup {
        let dir = workdir(name);
        let out = revguard(&["keygen", "--out", dir.join("origin").to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let s = Setup {
            config: dir.join("origin.json"),
            dir,
            public_key,
        };
        s.write_config(extra);
        s
    }

    pub fn write_config(&self, extra: Value) {
        let mut config = json!({
            "listen": "127.0.0.1:0",
            "database": "origin.db",
            "signing_key_file": "origin.key",
            "debounce_ms": 20,
            "api_tokens": [{"name": "tests", "sha256": token_hash()}],
        });
        if let (Some(c), Value::Object(e)) = (config.as_object_mut(), extra) {
            for (k, v) in e {
                c.insert(k, v);
            }
        }
        std::fs::write(&self.config, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }

    pub fn keys(&self) -> SnapshotKeys {
        SnapshotKeys::parse(std::slice::from_ref(&self.public_key)).unwrap()
    }

    pub fn start(&self) -> Origin {
        self.start_with(&[]).unwrap()
    }

    /// Starts the origin; `Err(stderr)` if it exits before listening.
    pub fn start_with(&self, args: &[&str]) -> Result<Origin, String> {
        let log = self.dir.join("origin.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_revguard"))
            .args(["origin", "serve", "--config", self.config.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Ok(Origin {
                child,
                base,
                agent: agent(),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(std::fs::read_to_string(&log).unwrap_or_default())
            }
        }
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.unwrap();
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = r
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

pub struct Origin {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub agent: ureq::Agent,
    pub log: PathBuf,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Origin {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn post(&self, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .agent
            .post(&self.url("/v1/revocations"))
            .header("content-type", "application/json")
            .header("authorization", &format!("Bearer {TOKEN}"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        answer(req.send(body))
    }

    /// POST with exactly `headers` (no default authorization or content type).
    pub fn post_raw(&self, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.agent.post(&self.url("/v1/revocations"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        answer(req.send(body))
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.agent.get(&self.url(path));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        answer(req.call())
    }

    pub fn get_auth(&self, path: &str) -> Answer {
        self.get(path, &[("authorization", &format!("Bearer {TOKEN}"))])
    }

    pub fn delete(&self, path: &str) -> Answer {
        answer(
            self.agent
                .delete(&self.url(path))
                .header("authorization", &format!("Bearer {TOKEN}"))
                .call(),
        )
    }

    pub fn fleet(&self) -> Value {
        let a = self.get_auth("/v1/fleet");
        assert_eq!(a.status, 200, "{a:?}");
        a.json()
    }

    pub fn generation(&self) -> u64 {
        self.get("/healthz", &[]).json()["generation"]
            .as_u64()
            .unwrap()
    }

    /// Every revocation listed (following the cursor), with `query`.
    pub fn list_all(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = format!("/v1/revocations?limit=1000{query}");
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let a = self.get_auth(&q);
            assert_eq!(a.status, 200, "{a:?}");
            let v = a.json();
            out.extend(v["revocations"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// Waits (polling, no timing assertion) until the served generation is at least `g`.
    pub fn wait_generation(&self, g: u64) -> u64 {
        let start = Instant::now();
        loop {
            let now = self.generation();
            if now >= g {
                return now;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "generation {now} never reached {g}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The plugin's view: the served snapshot plus the delta, if any, decoded and verified.
    pub fn state(&self, keys: &SnapshotKeys) -> RevocationState {
        let snap = self.get("/revocations/snapshot", &[]);
        assert_eq!(snap.status, 200, "{snap:?}");
        let mut state = RevocationState::from_snapshot(&snap.body, keys).unwrap();
        let delta = self.get("/revocations/delta", &[]);
        match delta.status {
            200 => {
                state.apply_delta(&delta.body, keys).unwrap();
            }
            404 => {}
            other => panic!("delta answered {other}"),
        }
        state
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The ids of a token that carries only `jti`.
pub fn jti(v: &str) -> TokenIds<'_> {
    TokenIds {
        jti: Some(v),
        ..TokenIds::default()
    }
}

//! `revguard check`: decide one request offline, for operators debugging a 401 and for
//! black-box tests. Same engine, same decision as the plugins.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use serde_json::json;

use super::{print_json, read_file, CliResult};
use revguard::decision::Decision;
use revguard::http::HttpOutcome;
use revguard::{Engine, RequestView};

#[derive(ClapArgs)]
#[command(
    after_help = "Example:\n  revguard check --config policy.json --snapshot current.snap \\\n    -H 'authorization: Bearer eyJ...' --method GET --path /api/orders --now 1767225600"
)]
pub struct Args {
    /// Plugin configuration (JSON).
    #[arg(long)]
    config: PathBuf,
    /// A revocation snapshot to load.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// A delta to apply on top of the snapshot.
    #[arg(long, requires = "snapshot")]
    delta: Option<PathBuf>,
    /// A fetched key set for an issuer: `FILE` (issuer 0) or `N=FILE` (issuer N). Repeatable.
    #[arg(long = "jwks", value_name = "[N=]FILE")]
    jwks: Vec<String>,
    /// The time to decide at, Unix seconds (default: now).
    #[arg(long)]
    now: Option<u64>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Path and optional query string.
    #[arg(long, default_value = "/")]
    path: String,
    /// A request header, `name: value`. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// If the decision is to introspect, use this file as the issuer's answer (HTTP 200 body).
    #[arg(long)]
    introspection_response: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let config = read_file(&args.config)?;
    let mut engine =
        Engine::from_config_json(&config).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let now = args.now.map_or_else(super::unix_now, Ok)?;
    for spec in &args.jwks {
        let (issuer, file) = match spec.split_once('=') {
            Some((n, f)) => (
                n.parse::<usize>()
                    .map_err(|_| format!("--jwks {spec}: N must be an issuer index"))?,
                f,
            ),
            None => (0, spec.as_str()),
        };
        let bytes = read_file(file.as_ref())?;
        engine
            .load_keys(issuer, &bytes, now)
            .map_err(|e| format!("{file}: {e}"))?;
    }
    if let Some(path) = &args.snapshot {
        engine
            .load_snapshot(&read_file(path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.delta {
        engine
            .load_delta(&read_file(path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }

    let mut headers = Vec::with_capacity(args.headers.len());
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not `name: value`"))?;
        headers.push((
            name.trim().to_ascii_lowercase(),
            value.trim().as_bytes().to_vec(),
        ));
    }
    let views: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = RequestView {
        method: &args.method,
        path: &args.path,
        headers: &views,
    };

    let answer = args
        .introspection_response
        .as_deref()
        .map(read_file)
        .transpose()?;
    let decision = match (engine.decide(&req, now), &answer) {
        (Decision::Introspect(i), Some(body)) => {
            let outcome = HttpOutcome::Response {
                status: 200,
                etag: None,
                body,
                origin: Default::default(),
            };
            engine.complete_introspection(i.pending, outcome, &req, now)
        }
        (decision, _) => decision,
    };
    let mut out = serde_json::to_value(&decision).map_err(|e| e.to_string())?;
    if let (Decision::Deny(d), Some(obj)) = (&decision, out.as_object_mut()) {
        obj.insert("body".into(), json!(d.body()));
    }
    print_json(&json!({ "now": now, "result": out, "engine": engine.status(now) }))
}

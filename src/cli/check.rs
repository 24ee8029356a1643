//! `revguard check`: check a configuration before deploying it, and decide one request offline,
//! for operators debugging a 401 and for black-box tests. Same engine, same decision as the
//! plugins.
//!
//! Without a request (none of `-H`, `--method`, `--path`, `--introspection-response`) it checks
//! the configuration, and any key set, snapshot or delta given, and says what it found.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use serde_json::json;

use super::{print_json, read_file, CliResult};
use revguard::config::HostKind;
use revguard::decision::Decision;
use revguard::http::HttpOutcome;
use revguard::{Engine, Policy, RequestView};

#[derive(ClapArgs)]
#[command(
    after_help = "Examples:\n  revguard check --config policy.json\n  revguard check --config policy.json --snapshot current.snap \\\n    -H 'authorization: Bearer eyJ...' --method GET --path /api/orders --now 1767225600"
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
    /// The request's method (default GET).
    #[arg(long)]
    method: Option<String>,
    /// The request's path and optional query string (default /).
    #[arg(long)]
    path: Option<String>,
    /// A request header, `name: value`. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// If the decision is to introspect, use this file as the issuer's answer (HTTP 200 body).
    #[arg(long)]
    introspection_response: Option<PathBuf>,
}

impl Args {
    /// A request to decide was described; otherwise only the configuration is checked.
    fn has_request(&self) -> bool {
        !self.headers.is_empty()
            || self.method.is_some()
            || self.path.is_some()
            || self.introspection_response.is_some()
    }
}

pub fn run(args: Args) -> CliResult {
    let config = read_file(&args.config)?;
    let mut engine = Engine::from_config_json(&config).map_err(|e| {
        // One line per problem: a long document can have many.
        let lines: Vec<String> = e.0.iter().map(|e| format!("\n  {e}")).collect();
        let count = match lines.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        };
        format!(
            "{}: invalid configuration ({count}):{}",
            args.config.display(),
            lines.concat()
        )
    })?;
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

    if !args.has_request() {
        println!(
            "config OK: {}",
            summary(engine.policy(), args.snapshot.is_some(), args.jwks.len())
        );
        return Ok(());
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
        method: args.method.as_deref().unwrap_or("GET"),
        path: args.path.as_deref().unwrap_or("/"),
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

/// What a valid configuration sets up, in one line: what an operator checks before deploying.
fn summary(policy: &Policy, snapshot_loaded: bool, key_sets_loaded: usize) -> String {
    let config = &policy.config;
    let issuers: Vec<&str> = config.issuers.iter().map(|i| i.issuer.as_str()).collect();
    let mut parts = vec![
        format!("{} issuer(s) ({})", issuers.len(), issuers.join(", ")),
        format!("{} route rule(s) + the default rule", config.routes.len()),
    ];
    parts.push(match &policy.revocation {
        Some(r) => {
            let delta = r
                .delta
                .as_ref()
                .map(|d| format!(", delta {}", d.path()))
                .unwrap_or_default();
            format!(
                "revocation snapshot from {} {}{delta}, {} key(s), stale after {} s",
                r.snapshot.upstream(),
                r.snapshot.path(),
                r.keys.key_ids().count(),
                r.max_staleness_secs
            )
        }
        None => "no revocation snapshot (no revocation check)".into(),
    });
    parts.push(match &policy.introspection {
        Some(i) => format!(
            "introspection at {} {}",
            i.endpoint.upstream(),
            i.endpoint.path()
        ),
        None => "no introspection".into(),
    });
    parts.push(format!(
        "host {}",
        match policy.host {
            HostKind::Envoy => "envoy",
            HostKind::Kong => "kong",
        }
    ));
    if key_sets_loaded > 0 {
        parts.push(format!("{key_sets_loaded} key set(s) loaded"));
    }
    if snapshot_loaded {
        parts.push("snapshot verified".into());
    }
    parts.join("; ")
}

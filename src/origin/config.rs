//! `origin.json`: the origin service's configuration, parsed once and validated with messages
//! that name the field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::feeds::config::{
    validate_logout, validate_ssf, LogoutIdp, RawLogoutIdp, RawSsfTransmitter, SsfTransmitter,
};
use crate::snapshot::{MAX_FP_RATE, MIN_FP_RATE};

/// Longest accepted `Prefer: wait=N`, whatever the configuration says.
pub const MAX_WAIT_CAP_SECS: u64 = 300;

/// One API token: its name (for the audit trail and logs) and the SHA-256 of the token text,
/// lower-case hex (`revguard origin token` prints both). The token itself is never stored.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub name: String,
    pub sha256: String,
}

/// The configuration file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// The SQLite database (created if missing).
    pub database: PathBuf,
    /// The high-water-mark file, outside the database (default: `<database>.hwm`).
    #[serde(default)]
    pub high_water_mark_file: Option<PathBuf>,
    /// The signing key, as written by `revguard keygen` (mode 0600 or stricter).
    pub signing_key_file: PathBuf,
    /// Public keys served on /v1/keys (e.g. the next key during a rotation).
    #[serde(default)]
    pub public_keys: Vec<String>,
    #[serde(default = "defaults::snapshot_path")]
    pub snapshot_path: String,
    #[serde(default = "defaults::delta_path")]
    pub delta_path: String,
    #[serde(default = "defaults::debounce_ms")]
    pub debounce_ms: u64,
    #[serde(default = "defaults::heartbeat_secs")]
    pub heartbeat_secs: u64,
    #[serde(default = "defaults::full_snapshot_interval_secs")]
    pub full_snapshot_interval_secs: u64,
    #[serde(default = "defaults::compaction_min_entries")]
    pub compaction_min_entries: u64,
    #[serde(default = "defaults::compaction_fraction")]
    pub compaction_fraction: f64,
    #[serde(default = "defaults::max_age_secs")]
    pub max_age_secs: u64,
    #[serde(default = "defaults::fp_rate")]
    pub fp_rate: f64,
    pub api_tokens: Vec<ApiToken>,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "defaults::max_batch")]
    pub max_batch: usize,
    #[serde(default = "defaults::max_wait_secs")]
    pub max_wait_secs: u64,
    #[serde(default = "defaults::fleet_live_window_secs")]
    pub fleet_live_window_secs: u64,
    #[serde(default = "defaults::fleet_max_nodes")]
    pub fleet_max_nodes: usize,
    #[serde(default)]
    pub export_dir: Option<PathBuf>,
    /// SQLite `PRAGMA max_page_count`: caps the database size (pages of 4096 bytes). For
    /// operators who want a hard size limit, and for testing the "disk full" path.
    #[serde(default)]
    pub sqlite_max_page_count: Option<u64>,
    /// Identity providers whose OpenID Connect back-channel logout tokens are accepted on
    /// `POST /v1/logout/backchannel`.
    #[serde(default)]
    pub backchannel_logout: Vec<RawLogoutIdp>,
    /// Shared Signals transmitters whose Security Event Tokens are accepted on
    /// `POST /v1/ssf/push` (RFC 8935 push delivery).
    #[serde(default)]
    pub ssf: Vec<RawSsfTransmitter>,
}

mod defaults {
    pub fn listen() -> String {
        "127.0.0.1:8080".into()
    }
    pub fn snapshot_path() -> String {
        "/revocations/snapshot".into()
    }
    pub fn delta_path() -> String {
        "/revocations/delta".into()
    }
    pub fn debounce_ms() -> u64 {
        50
    }
    pub fn heartbeat_secs() -> u64 {
        30
    }
    pub fn full_snapshot_interval_secs() -> u64 {
        3600
    }
    pub fn compaction_min_entries() -> u64 {
        10_000
    }
    pub fn compaction_fraction() -> f64 {
        0.05
    }
    pub fn max_age_secs() -> u64 {
        300
    }
    pub fn fp_rate() -> f64 {
        crate::snapshot::DEFAULT_FP_RATE
    }
    pub fn max_body_bytes() -> usize {
        1 << 20
    }
    pub fn max_batch() -> usize {
        10_000
    }
    pub fn max_wait_secs() -> u64 {
        60
    }
    pub fn fleet_live_window_secs() -> u64 {
        120
    }
    pub fn fleet_max_nodes() -> usize {
        10_000
    }
}

/// The validated configuration; relative paths are resolved against the config file's
/// directory.
#[derive(Clone, Debug)]
pub struct OriginConfig {
    pub listen: SocketAddr,
    pub database: PathBuf,
    pub high_water_mark_file: PathBuf,
    pub signing_key_file: PathBuf,
    pub public_keys: Vec<String>,
    pub snapshot_path: String,
    pub delta_path: String,
    pub debounce_ms: u64,
    pub heartbeat_secs: u64,
    pub full_snapshot_interval_secs: u64,
    pub compaction_min_entries: u64,
    pub compaction_fraction: f64,
    pub max_age_secs: u64,
    pub fp_rate: f64,
    /// (name, SHA-256 digest)
    pub api_tokens: Vec<(String, [u8; 32])>,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_wait_secs: u64,
    pub fleet_live_window_secs: u64,
    pub fleet_max_nodes: usize,
    pub export_dir: Option<PathBuf>,
    pub sqlite_max_page_count: Option<u64>,
    pub backchannel_logout: Vec<LogoutIdp>,
    pub ssf: Vec<SsfTransmitter>,
}

impl OriginConfig {
    /// The file name an export writes the snapshot to: the last segment of its path.
    pub fn snapshot_file_name(&self) -> &str {
        last_segment(&self.snapshot_path)
    }

    pub fn delta_file_name(&self) -> &str {
        last_segment(&self.delta_path)
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<OriginConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&bytes, base).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses and validates configuration text; relative paths are joined to `base`.
pub fn parse(bytes: &[u8], base: &Path) -> Result<OriginConfig, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid origin config: {}", e.inner())
        } else {
            format!("invalid origin config at {path}: {}", e.inner())
        }
    })?;
    de.end()
        .map_err(|e| format!("invalid origin config: {e}"))?;
    validate(raw, base)
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn check_path(field: &str, value: &str) -> Result<(), String> {
    let ok = value.starts_with('/')
        && value.len() > 1
        && !value.ends_with('/')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
        && !value.split('/').any(|s| s == "." || s == "..")
        && !value.starts_with("/v1/")
        && value != "/metrics";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field}: {value:?} must be an absolute URL path like /revocations/snapshot \
             (letters, digits, - . _ ~ and /; not ending in /; not under /v1/ or /metrics)"
        ))
    }
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = text.get(i * 2..i * 2 + 2)?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn validate(raw: RawConfig, base: &Path) -> Result<OriginConfig, String> {
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        format!(
            "listen: {:?} is not an address:port like 127.0.0.1:8080",
            raw.listen
        )
    })?;
    check_path("snapshot_path", &raw.snapshot_path)?;
    check_path("delta_path", &raw.delta_path)?;
    if raw.snapshot_path == raw.delta_path {
        return Err("snapshot_path and delta_path must differ".into());
    }
    if last_segment(&raw.snapshot_path) == last_segment(&raw.delta_path) {
        return Err(
            "snapshot_path and delta_path must end in different names (export file names)".into(),
        );
    }
    if raw.debounce_ms > 250 {
        return Err(format!(
            "debounce_ms: {} is over 250 (a commit must be published within 250 ms)",
            raw.debounce_ms
        ));
    }
    if raw.max_age_secs == 0 {
        return Err("max_age_secs: must be at least 1".into());
    }
    if raw.heartbeat_secs == 0 || raw.heartbeat_secs.saturating_mul(2) > raw.max_age_secs {
        return Err(format!(
            "heartbeat_secs: {} must be at least 1 and at most half of max_age_secs ({}); keep it \
             well under the plugins' max_staleness_secs (120 by default)",
            raw.heartbeat_secs, raw.max_age_secs
        ));
    }
    if raw.full_snapshot_interval_secs == 0 {
        return Err("full_snapshot_interval_secs: must be at least 1".into());
    }
    if !(raw.compaction_fraction.is_finite()
        && raw.compaction_fraction >= 0.0
        && raw.compaction_fraction <= 1.0)
    {
        return Err("compaction_fraction: must be between 0 and 1".into());
    }
    if !(raw.fp_rate.is_finite() && raw.fp_rate >= MIN_FP_RATE && raw.fp_rate <= MAX_FP_RATE) {
        return Err(format!(
            "fp_rate: must be between {MIN_FP_RATE} and {MAX_FP_RATE}"
        ));
    }
    if raw.api_tokens.is_empty() {
        return Err(
            "api_tokens: at least one token is required (`revguard origin token --name NAME`)"
                .into(),
        );
    }
    let mut tokens: Vec<(String, [u8; 32])> = Vec::with_capacity(raw.api_tokens.len());
    for (i, t) in raw.api_tokens.iter().enumerate() {
        if t.name.is_empty() || t.name.len() > 64 {
            return Err(format!("api_tokens[{i}].name: must be 1 to 64 characters"));
        }
        if tokens.iter().any(|(n, _)| *n == t.name) {
            return Err(format!("api_tokens[{i}].name: {:?} is used twice", t.name));
        }
        let digest = parse_digest(&t.sha256).ok_or_else(|| {
            format!(
                "api_tokens[{i}].sha256: must be 64 lower-case hex digits (SHA-256 of the token)"
            )
        })?;
        tokens.push((t.name.clone(), digest));
    }
    if raw.max_body_bytes < 1024 || raw.max_body_bytes > 64 << 20 {
        return Err("max_body_bytes: must be between 1024 and 67108864".into());
    }
    if raw.max_batch == 0 || raw.max_batch > 1_000_000 {
        return Err("max_batch: must be between 1 and 1000000".into());
    }
    if raw.max_wait_secs > MAX_WAIT_CAP_SECS {
        return Err(format!(
            "max_wait_secs: must be at most {MAX_WAIT_CAP_SECS}"
        ));
    }
    if raw.fleet_live_window_secs == 0 {
        return Err("fleet_live_window_secs: must be at least 1".into());
    }
    if raw.fleet_max_nodes == 0 || raw.fleet_max_nodes > 1_000_000 {
        return Err("fleet_max_nodes: must be between 1 and 1000000".into());
    }
    if raw.sqlite_max_page_count == Some(0) {
        return Err("sqlite_max_page_count: must be at least 1".into());
    }
    if !raw.public_keys.is_empty() {
        crate::snapshot::SnapshotKeys::parse(&raw.public_keys)
            .map_err(|e| format!("public_keys: {e}"))?;
    }
    let backchannel_logout = validate_logout(&raw.backchannel_logout)?;
    let ssf = validate_ssf(&raw.ssf, parse_digest)?;
    let database = resolve(base, &raw.database);
    let high_water_mark_file = match &raw.high_water_mark_file {
        Some(p) => resolve(base, p),
        None => {
            let mut name = database.as_os_str().to_os_string();
            name.push(".hwm");
            PathBuf::from(name)
        }
    };
    Ok(OriginConfig {
        listen,
        high_water_mark_file,
        database,
        signing_key_file: resolve(base, &raw.signing_key_file),
        public_keys: raw.public_keys,
        snapshot_path: raw.snapshot_path,
        delta_path: raw.delta_path,
        debounce_ms: raw.debounce_ms,
        heartbeat_secs: raw.heartbeat_secs,
        full_snapshot_interval_secs: raw.full_snapshot_interval_secs,
        compaction_min_entries: raw.compaction_min_entries,
        compaction_fraction: raw.compaction_fraction,
        max_age_secs: raw.max_age_secs,
        fp_rate: raw.fp_rate,
        api_tokens: tokens,
        max_body_bytes: raw.max_body_bytes,
        max_batch: raw.max_batch,
        max_wait_secs: raw.max_wait_secs,
        fleet_live_window_secs: raw.fleet_live_window_secs,
        fleet_max_nodes: raw.fleet_max_nodes,
        export_dir: raw.export_dir.map(|d| resolve(base, &d)),
        sqlite_max_page_count: raw.sqlite_max_page_count,
        backchannel_logout,
        ssf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn cfg(extra: &str) -> Result<OriginConfig, String> {
        let tokens = if extra.contains("api_tokens") {
            String::new()
        } else {
            format!(r#","api_tokens":[{{"name":"ops","sha256":"{HASH}"}}]"#)
        };
        let text =
            format!(r#"{{"database":"db.sqlite","signing_key_file":"k.key"{tokens}{extra}}}"#);
        parse(text.as_bytes(), Path::new("/etc/rg"))
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = cfg("").unwrap();
        assert_eq!(c.database, PathBuf::from("/etc/rg/db.sqlite"));
        assert_eq!(
            c.high_water_mark_file,
            PathBuf::from("/etc/rg/db.sqlite.hwm")
        );
        assert_eq!(c.snapshot_file_name(), "snapshot");
        assert_eq!(c.delta_file_name(), "delta");
        assert_eq!(c.debounce_ms, 50);
        assert_eq!(c.api_tokens.len(), 1);
    }

    #[test]
    fn the_example_is_valid() {
        let text = include_bytes!("../../examples/origin/origin.json");
        let c = parse(text, Path::new("/")).unwrap();
        assert_eq!(c.heartbeat_secs, 30);
    }

    #[test]
    fn errors_name_the_field() {
        for (extra, needle) in [
            (r#","bogus":1"#, "unknown field `bogus`"),
            (r#","debounce_ms":"x""#, "debounce_ms"),
            (r#","debounce_ms":1000"#, "debounce_ms"),
            (r#","heartbeat_secs":200"#, "heartbeat_secs"),
            (r#","listen":"nowhere""#, "listen"),
            (r#","snapshot_path":"snap""#, "snapshot_path"),
            (r#","delta_path":"/revocations/snapshot""#, "must differ"),
            (r#","fp_rate":2"#, "fp_rate"),
            (r#","api_tokens":[]"#, "api_tokens"),
            (
                r#","api_tokens":[{"name":"a","sha256":"00"}]"#,
                "api_tokens[0].sha256",
            ),
            (r#","public_keys":["nope"]"#, "public_keys"),
            (
                r#","backchannel_logout":[{"issuer":"i","jwks_uri":"https://i/j","client_ids":["a"],"x":1}]"#,
                "backchannel_logout[0]",
            ),
            (
                r#","backchannel_logout":[{"issuer":"i","jwks_uri":"http://i/j","client_ids":["a"]}]"#,
                "backchannel_logout[0].jwks_uri",
            ),
            (
                r#","backchannel_logout":[{"issuer":"i","jwks_uri":"https://i/j","client_ids":[]}]"#,
                "backchannel_logout[0].client_ids",
            ),
            (
                r#","ssf":[{"issuer":"i","jwks_uri":"https://i/j","audience":"a","api_token_sha256":"0"}]"#,
                "ssf[0].api_token_sha256",
            ),
            (
                r#","ssf":[{"issuer":"i","jwks_uri":"https://i/j","audience":"a","max_age_secs":0}]"#,
                "ssf[0].max_age_secs",
            ),
        ] {
            let err = cfg(extra).unwrap_err();
            assert!(err.contains(needle), "{extra}: {err}");
        }
    }
}

//! Validation: every error names the field (a JSON path) and says what is wrong.

use std::fmt;

use super::endpoint::Endpoint;
use super::types::*;
use crate::introspection::{ClientAuth, IntrospectionSettings};
use crate::jwks::{Algorithm, KeySet};
use crate::jwt::VerifyPolicy;
use crate::snapshot::SnapshotKeys;

/// Largest configuration document accepted.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the field, e.g. `issuers[0].audiences`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the problems found in one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid configuration: {}", lines.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

/// One issuer, compiled.
#[derive(Debug)]
pub struct IssuerPolicy {
    pub verify: VerifyPolicy,
    pub algorithms: Vec<Algorithm>,
    /// Keys given inline (never stale).
    pub inline_keys: Option<KeySet>,
    /// Keys fetched from the issuer (`jwks_upstream`).
    pub key_fetch: Option<KeyFetch>,
}

/// An issuer's `jwks_upstream`, compiled.
#[derive(Clone, Debug)]
pub struct KeyFetch {
    pub endpoint: Endpoint,
    /// At least 1.
    pub refresh_interval_secs: u64,
    /// A token with an unknown `kid` triggers at most one refetch per this period.
    pub unknown_kid_cooldown_secs: u64,
    /// At least `refresh_interval_secs`.
    pub max_staleness_secs: u64,
}

/// Longest hold a plugin asks for: the origin's own cap of `Prefer: wait` (its
/// `max_wait_secs` is at most 300). A held call that outlives an idle timeout on the path is cut
/// and costs a retry, so the default stays well below.
pub const MAX_HOLD_SECS: u64 = 300;

/// Most slots of either `sharing` kind: 65,536 verdicts are about 6 MiB of shared data.
pub const MAX_SHARING_SLOTS: u32 = 65_536;

/// The `revocation` section, compiled.
#[derive(Debug)]
pub struct RevocationPolicy {
    pub snapshot: Endpoint,
    /// The snapshot's delta: same upstream, authority and timeout, `delta_path`.
    pub delta: Option<Endpoint>,
    /// At least 1.
    pub refresh_interval_secs: u64,
    /// 0 (plain polling) to [`MAX_HOLD_SECS`].
    pub hold_secs: u64,
    /// At least `refresh_interval_secs`.
    pub max_staleness_secs: u64,
    /// 1 KiB to 256 MiB.
    pub max_snapshot_bytes: usize,
    /// The accepted origin keys, with the size limit.
    pub keys: SnapshotKeys,
}

/// A validated configuration with everything derived from it once. The engine runs on the
/// compiled parts (issuers, revocation, introspection, host kind) and reads the plain values
/// (routes, failure modes, limits, claim names) from `config`.
#[derive(Debug)]
pub struct Policy {
    pub config: Config,
    pub issuers: Vec<IssuerPolicy>,
    pub revocation: Option<RevocationPolicy>,
    pub introspection: Option<IntrospectionSettings>,
    pub host: HostKind,
}

impl Policy {
    pub fn from_json(bytes: &[u8]) -> Result<Policy, ConfigErrors> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(one(
                "$",
                format!("the document is larger than {MAX_CONFIG_BYTES} bytes"),
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "$".to_string() } else { path };
            one(&field, strip_position(&e.inner().to_string()))
        })?;
        de.end()
            .map_err(|e| one("$", strip_position(&e.to_string())))?;
        Policy::from_config(config)
    }

    pub fn from_config(mut config: Config) -> Result<Policy, ConfigErrors> {
        // Kong's upstream URI comes from Kong's router (kong/templates/nginx_kong.lua:
        // `proxy_pass ...$upstream_uri`), not from the `:path` a filter sets (ngx_wasm_module's
        // ngx_proxy_wasm_maps_set_path in ngx_proxy_wasm_maps.c changes `r->uri` only):
        // there a non-normal path is refused rather than forwarded as the client wrote it.
        // Envoy re-selects the route after a wasm filter changes request headers on ABI 0.2.1
        // (source/extensions/common/wasm/context.cc, onHeadersModified -> clearRouteCache).
        let host = config.host.kind();
        let forward = &mut config.path_normalization.forward;
        if forward.is_none() {
            *forward = Some(match host {
                HostKind::Envoy => ForwardPath::Normalized,
                HostKind::Kong => ForwardPath::Reject,
            });
        }
        let mut v = Validator {
            errors: Vec::new(),
            host,
        };
        let issuers = v.issuers(&config);
        v.globals(&config);
        v.token_sources(&config.token_sources);
        for (i, route) in config.routes.iter().enumerate() {
            v.route(&format!("routes[{i}]"), route, false, &config);
        }
        v.route("default_route", &config.default_route, true, &config);
        v.forward_claims(&config.forward_claims);
        let revocation = config.revocation.as_ref().map(|r| v.revocation(r));
        let introspection = config
            .introspection
            .as_ref()
            .map(|i| v.introspection(i, &config.limits));
        v.failure_modes(&config);
        if !v.errors.is_empty() {
            return Err(ConfigErrors(v.errors));
        }
        // A section compiles to `None` only with an error reported, so none is `None` here.
        match (revocation, introspection) {
            (Some(None), _) | (_, Some(None)) => Err(one("$", "a section did not compile".into())),
            (revocation, introspection) => Ok(Policy {
                config,
                issuers,
                revocation: revocation.flatten(),
                introspection: introspection.flatten(),
                host,
            }),
        }
    }

    /// The issuer whose `iss` is `iss`.
    pub fn issuer_index(&self, iss: &str) -> Option<usize> {
        self.issuers.iter().position(|i| i.verify.issuer == iss)
    }
}

fn one(field: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        field: field.to_string(),
        message,
    }])
}

/// serde_json appends "at line L column C"; the JSON path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

struct Validator {
    errors: Vec<ConfigError>,
    host: HostKind,
}

impl Validator {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn non_empty(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.err(field, "must not be empty");
        }
    }

    /// The endpoint a section (at `at`) names; `None` with its errors reported.
    fn endpoint(
        &mut self,
        at: &str,
        upstream: &str,
        path: &str,
        authority: Option<&str>,
        timeout_ms: u64,
    ) -> Option<Endpoint> {
        let kong_needs_port = self.host == HostKind::Kong && !is_host_port(upstream);
        if kong_needs_port {
            self.err(
                format!("{at}.upstream"),
                "the kong host profile needs host:port",
            );
        }
        match Endpoint::new(upstream, path, authority, timeout_ms) {
            Ok(endpoint) => (!kong_needs_port).then_some(endpoint),
            Err(errors) => {
                for e in errors {
                    self.err(format!("{at}.{}", e.field()), e.to_string());
                }
                None
            }
        }
    }

    fn issuers(&mut self, config: &Config) -> Vec<IssuerPolicy> {
        if config.issuers.is_empty() {
            self.err("issuers", "at least one issuer is required");
        }
        let mut out = Vec::new();
        for (i, issuer) in config.issuers.iter().enumerate() {
            let at = format!("issuers[{i}]");
            self.non_empty(&format!("{at}.issuer"), &issuer.issuer);
            if config
                .issuers
                .iter()
                .take(i)
                .any(|o| o.issuer == issuer.issuer)
            {
                self.err(format!("{at}.issuer"), "duplicate issuer");
            }
            if issuer.audiences.is_empty() || issuer.audiences.iter().any(|a| a.is_empty()) {
                self.err(
                    format!("{at}.audiences"),
                    "list at least one non-empty audience",
                );
            }
            let mut algorithms = Vec::new();
            for (j, name) in issuer.algorithms.iter().enumerate() {
                match Algorithm::parse(name) {
                    Some(alg) => algorithms.push(alg),
                    None => self.err(
                        format!("{at}.algorithms[{j}]"),
                        format!("unknown algorithm {name:?} (one of {})", algorithm_names()),
                    ),
                }
            }
            if issuer.algorithms.is_empty() {
                self.err(format!("{at}.algorithms"), "list at least one algorithm");
            }
            let inline_keys = match &issuer.jwks {
                Some(jwks) => match serde_json::to_vec(jwks) {
                    Ok(bytes) => match KeySet::from_jwks(&bytes, &algorithms) {
                        Ok(keys) => Some(keys),
                        Err(e) => {
                            self.err(format!("{at}.jwks"), e.to_string());
                            None
                        }
                    },
                    Err(e) => {
                        self.err(format!("{at}.jwks"), e.to_string());
                        None
                    }
                },
                None => None,
            };
            let key_fetch = issuer.jwks_upstream.as_ref().and_then(|up| {
                let at = format!("{at}.jwks_upstream");
                let endpoint = self.endpoint(
                    &at,
                    &up.upstream,
                    &up.path,
                    up.authority.as_deref(),
                    up.timeout_ms,
                );
                if up.refresh_interval_secs == 0 {
                    self.err(format!("{at}.refresh_interval_secs"), "must be at least 1");
                }
                if up.max_staleness_secs < up.refresh_interval_secs {
                    self.err(
                        format!("{at}.max_staleness_secs"),
                        "must be at least refresh_interval_secs",
                    );
                }
                Some(KeyFetch {
                    endpoint: endpoint?,
                    refresh_interval_secs: up.refresh_interval_secs,
                    unknown_kid_cooldown_secs: up.unknown_kid_cooldown_secs,
                    max_staleness_secs: up.max_staleness_secs,
                })
            });
            if issuer.jwks.is_none() && issuer.jwks_upstream.is_none() {
                self.err(
                    &at,
                    "give keys inline (jwks) or an upstream (jwks_upstream), or both",
                );
            }
            if let Some(t) = &issuer.required_type {
                self.non_empty(&format!("{at}.required_type"), t);
            }
            out.push(IssuerPolicy {
                verify: VerifyPolicy {
                    issuer: issuer.issuer.clone(),
                    audiences: issuer.audiences.clone(),
                    clock_skew_secs: config.clock_skew_secs,
                    max_lifetime_secs: config.max_token_lifetime_secs,
                    required_claims: config.required_claims.clone(),
                    required_type: issuer.required_type.clone(),
                    max_token_bytes: config.limits.max_token_bytes,
                },
                algorithms,
                inline_keys,
                key_fetch,
            });
        }
        out
    }

    fn globals(&mut self, config: &Config) {
        if config.clock_skew_secs > 600 {
            self.err("clock_skew_secs", "must be at most 600 (10 minutes)");
        }
        if config.max_token_lifetime_secs == Some(0) {
            self.err("max_token_lifetime_secs", "must be at least 1 when set");
        }
        for (i, c) in config.required_claims.iter().enumerate() {
            self.non_empty(&format!("required_claims[{i}]"), c);
        }
        self.non_empty("tenant_claim", &config.tenant_claim);
        self.non_empty("roles_claim", &config.roles_claim);
        let limits = &config.limits;
        if !(256..=65_536).contains(&limits.max_token_bytes) {
            self.err("limits.max_token_bytes", "must be between 256 and 65536");
        }
        if !(1..=1_000_000).contains(&limits.verified_cache_entries) {
            self.err(
                "limits.verified_cache_entries",
                "must be between 1 and 1000000",
            );
        }
        if !(1..=1_000_000).contains(&limits.introspection_cache_entries) {
            self.err(
                "limits.introspection_cache_entries",
                "must be between 1 and 1000000",
            );
        }
        for (name, slots) in [
            ("sharing.verdict_slots", config.sharing.verdict_slots),
            ("sharing.answer_slots", config.sharing.answer_slots),
        ] {
            if slots > MAX_SHARING_SLOTS {
                self.err(
                    name,
                    format!("must be at most {MAX_SHARING_SLOTS} (0 turns it off)"),
                );
            }
        }
        if let HostProfile::Kong(kong) = &config.host {
            self.non_empty("host.kong.shm_zone", &kong.shm_zone);
            // Kong resolves a key's zone from the text before its first `/`
            // (ngx_wa_shm_kv_resolve_key, src/common/shm/ngx_wa_shm_kv.c): a `/` in the name
            // would send every key to another zone, or trap when none matches. The length
            // bound keeps a key, a 3 KiB piece and the store's node within one page
            // (coordination::header::KONG_CHUNK_BYTES).
            let zone = &kong.shm_zone;
            if zone.len() > 64 || !zone.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
                self.err(
                    "host.kong.shm_zone",
                    "must be the name of an shm_kv zone: at most 64 visible ASCII characters, no `/`",
                );
            }
        }
    }

    fn token_sources(&mut self, sources: &[TokenSource]) {
        if sources.is_empty() {
            self.err("token_sources", "list at least one source");
        }
        for (i, source) in sources.iter().enumerate() {
            let (kind, name) = match source {
                TokenSource::Header(n) => ("header", n),
                TokenSource::Cookie(n) => ("cookie", n),
                TokenSource::Query(n) => ("query", n),
            };
            let at = format!("token_sources[{i}].{kind}");
            if name.is_empty() || !name.bytes().all(is_tchar) {
                self.err(
                    &at,
                    "must be a non-empty token (letters, digits, !#$%&'*+-.^_`|~)",
                );
            } else if kind == "header" && name.bytes().any(|b| b.is_ascii_uppercase()) {
                self.err(&at, "header names must be lowercase");
            }
            if sources.iter().take(i).any(|s| s == source) {
                self.err(&at, "duplicate source");
            }
        }
    }

    fn route(&mut self, at: &str, route: &RouteRule, is_default: bool, config: &Config) {
        if is_default {
            if route.path.is_some() || !route.methods.is_empty() {
                self.err(
                    at,
                    "the default route takes no path, path_prefix or methods",
                );
            }
        } else {
            match &route.path {
                Some(matcher) => {
                    let (field, p) = (matcher.field(), matcher.as_str());
                    if !p.starts_with('/') {
                        self.err(format!("{at}.{field}"), "must start with '/'");
                    } else if !is_normal_path(p) {
                        self.err(
                            format!("{at}.{field}"),
                            "must be a normalised path (docs/PATHS.md): no '.', '..' or empty \
                             segments, no ';', '?', '#' or '\\', escapes only for what is not \
                             unreserved, in upper case",
                        );
                    }
                }
                None => self.err(at, "give exactly one of path and path_prefix"),
            }
            for (j, m) in route.methods.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                    self.err(
                        format!("{at}.methods[{j}]"),
                        "must be an uppercase method name",
                    );
                }
            }
        }
        let has_requirements = !route.required_scopes.is_empty()
            || !route.required_roles.is_empty()
            || route.required_tenant.is_some()
            || route.max_auth_age_secs.is_some();
        if route.no_auth && has_requirements {
            self.err(
                at,
                "a no_auth route cannot also require scopes, roles, a tenant or auth_time",
            );
        }
        if route.introspection == IntrospectionPolicy::Always && config.introspection.is_none() {
            self.err(
                format!("{at}.introspection"),
                "\"always\" needs the introspection section",
            );
        }
        if let Some(TenantRequirement::MatchesHeader(h)) = &route.required_tenant {
            if !is_canonical_header(h) {
                self.err(
                    format!("{at}.required_tenant.matches_header"),
                    HEADER_NAME_RULE,
                );
            }
        }
    }

    fn forward_claims(&mut self, forwards: &[ForwardClaim]) {
        for (i, f) in forwards.iter().enumerate() {
            let at = format!("forward_claims[{i}]");
            self.non_empty(&format!("{at}.claim"), &f.claim);
            let h = f.header.as_str();
            if !is_canonical_header(h) {
                self.err(format!("{at}.header"), HEADER_NAME_RULE);
            } else if RESERVED_HEADERS.contains(&h) {
                self.err(format!("{at}.header"), format!("{h} cannot carry identity"));
            }
            if forwards.iter().take(i).any(|o| o.header == f.header) {
                self.err(format!("{at}.header"), "duplicate header");
            }
        }
    }

    fn revocation(&mut self, r: &RevocationConfig) -> Option<RevocationPolicy> {
        let snapshot = self.endpoint(
            "revocation",
            &r.upstream,
            &r.path,
            r.authority.as_deref(),
            r.timeout_ms,
        );
        if r.refresh_interval_secs == 0 {
            self.err("revocation.refresh_interval_secs", "must be at least 1");
        }
        if r.hold_secs > MAX_HOLD_SECS {
            self.err(
                "revocation.hold_secs",
                format!("must be at most {MAX_HOLD_SECS} (0: plain polling)"),
            );
        }
        if r.max_staleness_secs < r.refresh_interval_secs {
            self.err(
                "revocation.max_staleness_secs",
                "must be at least refresh_interval_secs",
            );
        }
        if r.node_id
            .as_deref()
            .is_some_and(|id| !crate::node_id::is_valid(id))
        {
            self.err(
                "revocation.node_id",
                format!(
                    "must be 1 to {} visible ASCII characters",
                    crate::node_id::MAX_NODE_ID
                ),
            );
        }
        let delta_is_relative = r.delta_path.as_ref().is_some_and(|p| !p.starts_with('/'));
        if delta_is_relative {
            self.err("revocation.delta_path", "must start with '/'");
        }
        if r.max_snapshot_bytes < 1024 || r.max_snapshot_bytes > 256 * 1024 * 1024 {
            self.err(
                "revocation.max_snapshot_bytes",
                "must be between 1 KiB and 256 MiB",
            );
        }
        if r.public_keys.is_empty() {
            self.err(
                "revocation.public_keys",
                "list at least one origin public key",
            );
            return None;
        }
        let keys = match SnapshotKeys::parse(&r.public_keys) {
            Ok(keys) => keys.with_max_bytes(r.max_snapshot_bytes),
            Err(e) => {
                self.err("revocation.public_keys", e.to_string());
                return None;
            }
        };
        let snapshot = snapshot?;
        let delta = match &r.delta_path {
            Some(path) => Some(snapshot.with_path(path)?),
            None => None,
        };
        Some(RevocationPolicy {
            snapshot,
            delta,
            refresh_interval_secs: r.refresh_interval_secs,
            hold_secs: r.hold_secs,
            max_staleness_secs: r.max_staleness_secs,
            max_snapshot_bytes: r.max_snapshot_bytes,
            keys,
        })
    }

    fn introspection(
        &mut self,
        i: &IntrospectionConfig,
        limits: &Limits,
    ) -> Option<IntrospectionSettings> {
        let endpoint = self.endpoint(
            "introspection",
            &i.upstream,
            &i.path,
            i.authority.as_deref(),
            i.timeout_ms,
        );
        self.non_empty("introspection.client_id", &i.client_id);
        if i.cache_ttl_secs == 0 {
            self.err("introspection.cache_ttl_secs", "must be at least 1");
        }
        if !(64..=1024 * 1024).contains(&i.max_response_bytes) {
            self.err(
                "introspection.max_response_bytes",
                "must be between 64 and 1048576",
            );
        }
        Some(IntrospectionSettings {
            endpoint: endpoint?,
            client_id: i.client_id.clone(),
            client_secret: i.client_secret.clone(),
            auth: match i.client_auth {
                ClientAuthMethod::ClientSecretBasic => ClientAuth::Basic,
                ClientAuthMethod::ClientSecretPost => ClientAuth::Post,
            },
            cache_ttl_secs: i.cache_ttl_secs,
            cache_capacity: limits.introspection_cache_entries,
            max_response_bytes: i.max_response_bytes,
        })
    }

    fn failure_modes(&mut self, config: &Config) {
        if config.introspection.is_none() {
            if config.failure_modes.revocation_stale == StaleMode::Introspect {
                self.err(
                    "failure_modes.revocation_stale",
                    "\"introspect\" needs the introspection section",
                );
            }
            if config.opaque_tokens == OpaqueTokens::Introspect {
                self.err(
                    "opaque_tokens",
                    "\"introspect\" needs the introspection section",
                );
            }
        }
    }
}

/// Headers that must never be set from a claim.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "proxy-authorization",
    "set-cookie",
];

const HEADER_NAME_RULE: &str =
    "must be a lowercase header name with '-', not '_' (backends fold '_' into '-')";

/// Identity and tenant headers are named in one spelling; every other spelling a backend folds
/// into it is treated as the same header (crate::request::same_header).
fn is_canonical_header(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| is_tchar(b) && !b.is_ascii_uppercase() && b != b'_')
}

/// A rule path is matched against normalised request paths, so it must be one itself.
fn is_normal_path(p: &str) -> bool {
    let strict = PathConfig {
        forward: Some(ForwardPath::Reject),
        ..PathConfig::default()
    };
    crate::path::normalize(p, &strict).is_ok_and(|n| n.matched == p) && !p.contains('?')
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

fn algorithm_names() -> String {
    Algorithm::ALL
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> serde_json::Value {
        json!({"issuers": [{"issuer": "https://idp", "audiences": ["api"], "algorithms": ["ES256"],
                            "jwks_upstream": {"upstream": "idp:443", "path": "/jwks"}}]})
    }

    fn policy(doc: &serde_json::Value) -> Result<Policy, Vec<String>> {
        Policy::from_json(doc.to_string().as_bytes())
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn upstream_sections_compile_to_endpoints() {
        let origin = crate::snapshot::SigningKey::from_seed([7; 32])
            .unwrap()
            .public_key_text();
        let mut doc = minimal();
        doc["revocation"] = json!({"upstream": "origin", "path": "/s", "delta_path": "/d",
                                   "authority": "cdn.example", "timeout_ms": 900,
                                   "public_keys": [origin]});
        doc["introspection"] = json!({"upstream": "idp", "path": "/i", "client_id": "gw",
                                      "client_secret": "s"});
        let p = policy(&doc).unwrap();
        let keys = &p.issuers[0].key_fetch.as_ref().unwrap().endpoint;
        assert_eq!((keys.upstream(), keys.authority()), ("idp:443", "idp:443"));
        assert_eq!((keys.path(), keys.timeout_ms()), ("/jwks", 2000));
        let r = p.revocation.as_ref().unwrap();
        assert_eq!(
            (r.snapshot.path(), r.snapshot.authority()),
            ("/s", "cdn.example")
        );
        let delta = r.delta.as_ref().unwrap();
        assert_eq!((delta.upstream(), delta.path()), ("origin", "/d"));
        assert_eq!(
            (delta.authority(), delta.timeout_ms()),
            ("cdn.example", 900)
        );
        let i = &p.introspection.as_ref().unwrap().endpoint;
        assert_eq!(
            (i.upstream(), i.path(), i.authority()),
            ("idp", "/i", "idp")
        );
        assert_eq!(p.host, HostKind::Envoy);

        doc["revocation"]["delta_path"] = json!("d");
        doc["introspection"]["timeout_ms"] = json!(0);
        doc["issuers"][0]["jwks_upstream"]["path"] = json!("jwks");
        let errors = policy(&doc).unwrap_err();
        assert_eq!(
            errors,
            [
                "issuers[0].jwks_upstream.path: must start with '/'",
                "revocation.delta_path: must start with '/'",
                "introspection.timeout_ms: must be between 1 and 60000",
            ]
        );
    }

    #[test]
    fn hold_secs_defaults_to_25_and_is_bounded() {
        let origin = crate::snapshot::SigningKey::from_seed([7; 32])
            .unwrap()
            .public_key_text();
        let mut doc = minimal();
        doc["revocation"] = json!({"upstream": "origin", "path": "/s", "public_keys": [origin]});
        let hold = |doc: &serde_json::Value| policy(doc).map(|p| p.revocation.unwrap().hold_secs);
        assert_eq!(hold(&doc), Ok(25));
        doc["revocation"]["hold_secs"] = json!(0);
        assert_eq!(hold(&doc), Ok(0));
        doc["revocation"]["hold_secs"] = json!(MAX_HOLD_SECS);
        assert_eq!(hold(&doc), Ok(MAX_HOLD_SECS));
        doc["revocation"]["hold_secs"] = json!(MAX_HOLD_SECS + 1);
        assert_eq!(
            hold(&doc),
            Err(vec![
                "revocation.hold_secs: must be at most 300 (0: plain polling)".to_string()
            ])
        );
    }

    #[test]
    fn a_route_names_one_path_match() {
        let mut doc = minimal();
        doc["routes"] = json!([{"path": "/a"}, {"path_prefix": "/b/", "name": "b"}]);
        let p = policy(&doc).unwrap();
        let matches: Vec<_> = p.config.routes.iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            matches,
            [
                Some(PathMatch::Exact("/a".into())),
                Some(PathMatch::Prefix("/b/".into()))
            ]
        );
        assert_eq!(p.config.default_route.path, None);
        // The document form is kept when written back.
        let written = serde_json::to_value(&p.config.routes[1]).unwrap();
        assert_eq!(written["path_prefix"], "/b/");
        assert_eq!(written["path"], serde_json::Value::Null);

        doc["routes"] = json!([{"path": "/a", "path_prefix": "/a"}]);
        assert_eq!(
            policy(&doc).unwrap_err(),
            ["routes[0]: give exactly one of path and path_prefix"]
        );
        doc["routes"] = json!([{"name": "nothing"}]);
        assert_eq!(
            policy(&doc).unwrap_err(),
            ["routes[0]: give exactly one of path and path_prefix"]
        );
        doc["routes"] = json!([]);
        doc["default_route"] = json!({"path_prefix": "/"});
        assert_eq!(
            policy(&doc).unwrap_err(),
            ["default_route: the default route takes no path, path_prefix or methods"]
        );
    }

    #[test]
    fn the_kong_section_is_accepted_as_before_and_the_core_keeps_only_the_kind() {
        let mut doc = minimal();
        doc["host"] = json!({"kong": {"shm_zone": "rg", "tls": true}});
        let p = policy(&doc).unwrap();
        assert_eq!(p.host, HostKind::Kong);
        assert_eq!(
            p.config.host,
            HostProfile::Kong(KongSettings {
                shm_zone: "rg".into(),
                tls: true,
                metrics: false,
            })
        );
        doc["host"] = json!({"kong": {}});
        let HostProfile::Kong(kong) = policy(&doc).unwrap().config.host else {
            panic!("not kong");
        };
        assert_eq!(
            (kong.shm_zone.as_str(), kong.tls, kong.metrics),
            ("revguard", false, false)
        );
        doc["host"] = json!({"kong": {"metrics": true}});
        let HostProfile::Kong(kong) = policy(&doc).unwrap().config.host else {
            panic!("not kong");
        };
        assert!(kong.metrics);
        doc["host"] = json!("envoy");
        assert_eq!(policy(&doc).unwrap().host, HostKind::Envoy);
        doc["host"] = json!({"kong": {"zone": "x"}});
        let errors = policy(&doc).unwrap_err();
        assert!(errors[0].contains("unknown field `zone`"), "{errors:?}");
        doc["host"] = json!({"kong": {"shm_zone": " "}});
        assert_eq!(
            policy(&doc).unwrap_err()[0],
            "host.kong.shm_zone: must not be empty"
        );
        for zone in ["rg/x", "a b", &"z".repeat(65)] {
            doc["host"] = json!({"kong": {"shm_zone": zone}});
            let errors = policy(&doc).unwrap_err();
            assert!(
                errors[0].starts_with("host.kong.shm_zone: must be the name"),
                "{errors:?}"
            );
        }
        doc["host"] = json!({"kong": {"shm_zone": "z".repeat(64)}});
        assert!(policy(&doc).is_ok());
    }
}

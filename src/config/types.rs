//! The configuration document, as proxies pass it (JSON). Every struct rejects unknown fields,
//! and every default fails closed. Field reference: docs/CONFIGURATION.md.
//!
//! This is the document's shape. Validation (`validate.rs`) compiles what the engine runs on
//! from it: [`Endpoint`](super::Endpoint)s for the upstream sections, key-fetch and revocation
//! settings, the host kind; route rules hold a [`PathMatch`] rather than two optional paths.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Accepted token issuers; at least one.
    pub issuers: Vec<IssuerConfig>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "defaults::clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// Longest accepted `exp - iat`; tokens without `iat` are then refused.
    #[serde(default)]
    pub max_token_lifetime_secs: Option<u64>,
    /// Claims every token must carry, besides `exp` (always required).
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Where to look for the token, in order; the request must carry exactly one.
    #[serde(default = "defaults::token_sources")]
    pub token_sources: Vec<TokenSource>,
    /// What to do with a bearer token that is not a JWT.
    #[serde(default)]
    pub opaque_tokens: OpaqueTokens,
    /// How request paths are normalised before rules match them (docs/PATHS.md).
    #[serde(default)]
    pub path_normalization: PathConfig,
    /// Route rules, first match wins; requests matching none use `default_route`.
    #[serde(default)]
    pub routes: Vec<RouteRule>,
    /// The rule for requests that match no route (no path or method matchers).
    #[serde(default)]
    pub default_route: RouteRule,
    /// Claims forwarded to the upstream as headers; incoming copies are always removed.
    #[serde(default)]
    pub forward_claims: Vec<ForwardClaim>,
    /// The claim that names the token's tenant (revocation table, tenant rules).
    #[serde(default = "defaults::tenant_claim")]
    pub tenant_claim: String,
    /// The claim that lists the token's roles (array, or space-separated string).
    #[serde(default = "defaults::roles_claim")]
    pub roles_claim: String,
    /// Remove the Authorization header before forwarding an allowed request.
    #[serde(default)]
    pub strip_authorization: bool,
    /// The realm in `WWW-Authenticate` challenges.
    #[serde(default = "defaults::realm")]
    pub realm: String,
    /// The signed revocation snapshot; without it, no revocation check is made.
    #[serde(default)]
    pub revocation: Option<RevocationConfig>,
    /// The issuer's RFC 7662 introspection endpoint.
    #[serde(default)]
    pub introspection: Option<IntrospectionConfig>,
    /// What to do when a dependency fails.
    #[serde(default)]
    pub failure_modes: FailureModes,
    #[serde(default)]
    pub limits: Limits,
    /// What the worker VMs of one proxy share besides key sets and snapshots (proxy-wasm
    /// builds: Envoy, Kong): verified tokens and introspection answers.
    #[serde(default)]
    pub sharing: Sharing,
    /// Which proxy runs the filter (proxy-wasm builds only). The core reads only its kind
    /// ([`HostProfile::kind`]); Kong's settings belong to the proxy-wasm adapter.
    #[serde(default)]
    #[cfg_attr(
        all(feature = "schema", not(target_arch = "wasm32")),
        schemars(description = "Which proxy runs the filter (proxy-wasm builds only).")
    )]
    pub host: HostProfile,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; the token must name at least one.
    pub audiences: Vec<String>,
    /// Accepted algorithms (e.g. "ES256", "RS256", "EdDSA", "HS256").
    pub algorithms: Vec<String>,
    /// Keys given inline, as a JWKS document.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Keys fetched from the issuer.
    #[serde(default)]
    pub jwks_upstream: Option<JwksUpstream>,
    /// Required JOSE `typ` header, e.g. "at+jwt" (RFC 9068).
    #[serde(default)]
    pub required_type: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct JwksUpstream {
    /// Host upstream: a cluster name (Envoy) or host:port (Kong).
    pub upstream: String,
    pub path: String,
    /// The `:authority` (Host) sent; defaults to the upstream.
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "defaults::fetch_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::jwks_refresh_secs")]
    pub refresh_interval_secs: u64,
    /// A token with an unknown `kid` triggers at most one refetch per this period.
    #[serde(default = "defaults::jwks_cooldown_secs")]
    pub unknown_kid_cooldown_secs: u64,
    /// Keys that cannot be refreshed stay in use this long after their last successful fetch.
    #[serde(default = "defaults::jwks_max_staleness_secs")]
    pub max_staleness_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSource {
    /// A header carrying `Bearer <token>` (scheme case-insensitive), normally `authorization`.
    Header(String),
    /// A cookie holding the bare token.
    Cookie(String),
    /// A query parameter holding the bare token.
    Query(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum OpaqueTokens {
    #[default]
    Reject,
    Introspect,
}

/// Path normalisation choices for what backends disagree on. Defaults refuse (400).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// What the upstream receives when the normalised path differs from the client's. Default:
    /// `normalized` (Envoy, edge, component); `reject` with the Kong profile, whose upstream URI
    /// a filter cannot rewrite reliably (docs/PATHS.md).
    #[serde(default)]
    pub forward: Option<ForwardPath>,
    /// Encoded `/` and `\` (`%2F`, `%5C`).
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// `;` parameters in path segments (`/a;jsessionid=1/b`).
    #[serde(default)]
    pub path_parameters: PathParameters,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum ForwardPath {
    /// The normalised path (query unchanged): the backend serves exactly what was authorised.
    #[default]
    Normalized,
    /// The path as the client sent it.
    Original,
    /// 400 `invalid_path` unless the client sent the path already normalised.
    Reject,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// 400 `invalid_path`.
    #[default]
    Reject,
    /// Part of the segment (for APIs with encoded ids); never matches a `no_auth` rule.
    Keep,
    /// Decoded to `/` before matching (and forwarded decoded with `forward: normalized`).
    Decode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// 400 `invalid_path`.
    #[default]
    Reject,
    /// Rules match each segment without its parameters (as Tomcat, Jetty and Spring route);
    /// they are forwarded. A parameter on an empty or dot segment is still refused.
    StripForMatching,
}

/// A route rule. In the document a listed rule names its paths with exactly one of `path` and
/// `path_prefix` (the default rule with neither); here that is one [`PathMatch`].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    schemars(
        description = "A route rule: at most one of path and path_prefix (a listed rule \
                            exactly one, the default rule neither), and what a token must carry."
    )
)]
#[serde(try_from = "RouteRuleDocument", into = "RouteRuleDocument")]
pub struct RouteRule {
    /// A name for logs and metrics.
    pub name: Option<String>,
    /// The paths the rule applies to; `None`: every path (the default rule only).
    pub path: Option<PathMatch>,
    /// Methods this rule applies to; empty means all.
    pub methods: Vec<String>,
    /// Compare the path with letter case (like Envoy's route match). A path that matches a
    /// case-sensitive rule only when case is ignored is refused unless the rule is `no_auth`:
    /// a case-insensitive backend would serve it as the rule's path.
    pub case_sensitive: bool,
    /// `true` lets requests through without any token check (health checks, public assets).
    pub no_auth: bool,
    /// Every scope listed must be granted (`scope` or `scp` claim).
    pub required_scopes: Vec<String>,
    /// Every role listed must be present in `roles_claim`.
    pub required_roles: Vec<String>,
    /// The token's tenant claim must be present and match.
    pub required_tenant: Option<TenantRequirement>,
    /// Maximum age of `auth_time` (sensitive routes; RFC 9470 step-up on failure).
    pub max_auth_age_secs: Option<u64>,
    /// When to ask the issuer's introspection endpoint.
    pub introspection: IntrospectionPolicy,
    /// When introspection times out, fails or answers garbage; default from `failure_modes`.
    pub on_introspection_failure: Option<FailMode>,
}

/// Which request paths a route rule matches (normalised paths, query string excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// `path`: exactly this path.
    Exact(String),
    /// `path_prefix`: paths starting with this prefix, at a segment boundary or not ("/api"
    /// matches "/apis"); a directory prefix ("/admin/") also matches the directory ("/admin").
    Prefix(String),
}

impl PathMatch {
    /// The rule's path or prefix.
    pub fn as_str(&self) -> &str {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p,
        }
    }

    /// The document member it comes from.
    pub fn field(&self) -> &'static str {
        match self {
            PathMatch::Exact(_) => "path",
            PathMatch::Prefix(_) => "path_prefix",
        }
    }
}

/// A route rule as the document writes it. The schema says what `TryFrom` checks: never both
/// `path` and `path_prefix` (that a listed rule names one, and the default rule none, is checked
/// by validation, which knows where the rule stands).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    schemars(extend("not" = {"required": ["path", "path_prefix"]}))
)]
#[serde(deny_unknown_fields)]
pub struct RouteRuleDocument {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default = "defaults::yes")]
    case_sensitive: bool,
    #[serde(default)]
    no_auth: bool,
    #[serde(default)]
    required_scopes: Vec<String>,
    #[serde(default)]
    required_roles: Vec<String>,
    #[serde(default)]
    required_tenant: Option<TenantRequirement>,
    #[serde(default)]
    max_auth_age_secs: Option<u64>,
    #[serde(default)]
    introspection: IntrospectionPolicy,
    #[serde(default)]
    on_introspection_failure: Option<FailMode>,
}

impl TryFrom<RouteRuleDocument> for RouteRule {
    type Error = &'static str;

    fn try_from(d: RouteRuleDocument) -> Result<RouteRule, &'static str> {
        let path = match (d.path, d.path_prefix) {
            (Some(_), Some(_)) => return Err("give exactly one of path and path_prefix"),
            (Some(exact), None) => Some(PathMatch::Exact(exact)),
            (None, Some(prefix)) => Some(PathMatch::Prefix(prefix)),
            (None, None) => None,
        };
        Ok(RouteRule {
            name: d.name,
            path,
            methods: d.methods,
            case_sensitive: d.case_sensitive,
            no_auth: d.no_auth,
            required_scopes: d.required_scopes,
            required_roles: d.required_roles,
            required_tenant: d.required_tenant,
            max_auth_age_secs: d.max_auth_age_secs,
            introspection: d.introspection,
            on_introspection_failure: d.on_introspection_failure,
        })
    }
}

impl From<RouteRule> for RouteRuleDocument {
    fn from(r: RouteRule) -> RouteRuleDocument {
        let (path, path_prefix) = match r.path {
            Some(PathMatch::Exact(p)) => (Some(p), None),
            Some(PathMatch::Prefix(p)) => (None, Some(p)),
            None => (None, None),
        };
        RouteRuleDocument {
            name: r.name,
            path_prefix,
            path,
            methods: r.methods,
            case_sensitive: r.case_sensitive,
            no_auth: r.no_auth,
            required_scopes: r.required_scopes,
            required_roles: r.required_roles,
            required_tenant: r.required_tenant,
            max_auth_age_secs: r.max_auth_age_secs,
            introspection: r.introspection,
            on_introspection_failure: r.on_introspection_failure,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TenantRequirement {
    /// The tenant claim must be present (any value).
    Present,
    /// The tenant claim must equal this value.
    Equals(String),
    /// The tenant claim must equal this request header's value.
    MatchesHeader(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum IntrospectionPolicy {
    /// Only when the snapshot's filter flags the token (the normal case).
    #[default]
    OnSnapshotHit,
    /// Every token (cached for the cache TTL).
    Always,
    /// Never: a filter hit is then denied as revoked.
    Never,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct ForwardClaim {
    pub claim: String,
    pub header: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Where the full snapshot is served (`path`).
    /// Host upstream: a cluster name (Envoy) or host:port (Kong).
    pub upstream: String,
    pub path: String,
    /// The `:authority` (Host) sent; defaults to the upstream.
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "defaults::fetch_timeout_ms")]
    pub timeout_ms: u64,
    /// The delta for the current snapshot (optional).
    #[serde(default)]
    pub delta_path: Option<String>,
    #[serde(default = "defaults::snapshot_refresh_secs")]
    pub refresh_interval_secs: u64,
    /// Seconds the origin may hold a conditional fetch of the delta (of the snapshot without a
    /// delta) until the data changes (`Prefer: wait=N`, RFC 7240); 0: plain polling.
    #[serde(default = "defaults::hold_secs")]
    pub hold_secs: u64,
    /// Snapshot data older than this (or than its own max age) is stale.
    #[serde(default = "defaults::snapshot_max_staleness_secs")]
    pub max_staleness_secs: u64,
    /// Accepted origin signing keys (output of `revguard keygen`); several allow rotation.
    pub public_keys: Vec<String>,
    /// Largest snapshot accepted, in bytes.
    #[serde(default = "defaults::max_snapshot_bytes")]
    pub max_snapshot_bytes: usize,
    /// This enforcement point's name in the origin's fleet view, sent with every revocation
    /// fetch. Default: chosen by the build (Envoy's `node.id`, else a random id per proxy;
    /// the edge build: one per isolate).
    #[serde(default)]
    pub node_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// Host upstream: a cluster name (Envoy) or host:port (Kong).
    pub upstream: String,
    pub path: String,
    /// The `:authority` (Host) sent; defaults to the upstream.
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "defaults::fetch_timeout_ms")]
    pub timeout_ms: u64,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
    /// How long an "active" answer is trusted (never past the token's `exp`).
    #[serde(default = "defaults::introspection_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    #[serde(default = "defaults::max_introspection_bytes")]
    pub max_response_bytes: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    Deny,
    Allow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(rename_all = "snake_case")]
pub enum StaleMode {
    Deny,
    Allow,
    /// Confirm every token with the introspection endpoint until fresh data arrives.
    Introspect,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct FailureModes {
    /// No usable key set (never loaded, or past `max_staleness_secs`).
    #[serde(default = "defaults::deny")]
    pub keys_unavailable: FailMode,
    /// No snapshot yet, or snapshot data past its max staleness.
    #[serde(default = "defaults::stale_deny")]
    pub revocation_stale: StaleMode,
    /// Introspection timeout, error or garbage (routes may override).
    #[serde(default = "defaults::deny")]
    pub introspection_failure: FailMode,
}

impl Default for FailureModes {
    fn default() -> Self {
        FailureModes {
            keys_unavailable: FailMode::Deny,
            revocation_stale: StaleMode::Deny,
            introspection_failure: FailMode::Deny,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "defaults::max_token_bytes")]
    pub max_token_bytes: usize,
    #[serde(default = "defaults::verified_cache_entries")]
    pub verified_cache_entries: usize,
    #[serde(default = "defaults::introspection_cache_entries")]
    pub introspection_cache_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_token_bytes: defaults::max_token_bytes(),
            verified_cache_entries: defaults::verified_cache_entries(),
            introspection_cache_entries: defaults::introspection_cache_entries(),
        }
    }
}

/// `sharing`: slots in the host's shared data through which the worker VMs of one proxy share
/// verified tokens and introspection answers, so a token is verified and introspected once per
/// proxy rather than once per worker. A fixed number of keys, because Envoy's shared data never
/// deletes an entry (crate::coordination::verdicts). 0 turns either off.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct Sharing {
    /// Slots for "this token's signature verified under these keys" (about 100 bytes each).
    #[serde(default = "defaults::sharing_slots")]
    pub verdict_slots: u32,
    /// Slots for introspection answers (each at most 2 KiB, usually a few hundred bytes).
    #[serde(default = "defaults::answer_slots")]
    pub answer_slots: u32,
}

impl Default for Sharing {
    fn default() -> Self {
        Sharing {
            verdict_slots: defaults::sharing_slots(),
            answer_slots: defaults::answer_slots(),
        }
    }
}

/// `host`: which proxy runs the filter. The core's rules depend on the kind only
/// ([`HostKind`]: upstream syntax, path forwarding); the Kong section's members are settings
/// of the proxy-wasm adapter ([`KongSettings`]), validated here with the rest of the document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    schemars(
        description = "\"envoy\" (upstreams are cluster names) or {\"kong\": {...}} \
                            (upstreams are host:port, shared data in an shm_kv zone)."
    )
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HostProfile {
    /// Upstreams are cluster names; shared data is process-wide.
    #[default]
    Envoy,
    /// Upstreams are host:port; shared data lives in the named `shm_kv` zone and may be evicted.
    Kong(KongSettings),
}

/// The proxy-wasm adapter's settings for Kong (`host.kong`): the core never reads them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(
    all(feature = "schema", not(target_arch = "wasm32")),
    derive(schemars::JsonSchema)
)]
#[serde(deny_unknown_fields)]
pub struct KongSettings {
    /// The `shm_kv` zone holding the shared data of every worker: at most 64 visible ASCII
    /// characters, no `/` (Kong takes a key's zone from the text before its first `/`).
    #[serde(default = "defaults::kong_shm_zone")]
    #[cfg_attr(
        all(feature = "schema", not(target_arch = "wasm32")),
        schemars(regex(pattern = r"^[!-.0-~]{1,64}$"))
    )]
    pub shm_zone: String,
    /// Send callouts with `:scheme: https`: ngx_wasm_module opens TLS to the upstream only then
    /// (Envoy takes TLS from the cluster and needs no such setting).
    #[serde(default)]
    pub tls: bool,
    /// Define proxy-wasm metrics. Off by default: ngx_wasm_module before prerelease-0.4.0
    /// (Kong 3.4-3.7) traps on `proxy_define_metric` ("function not yet implemented"), which
    /// would fail every request, and the filter cannot ask the host which it is without that
    /// trap. Off, the counters go to a log line a minute. Kong 3.8 and later: set `true`.
    #[serde(default)]
    pub metrics: bool,
}

/// Which proxy runs the filter, as far as the core's rules care.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostKind {
    #[default]
    Envoy,
    Kong,
}

impl HostProfile {
    pub fn kind(&self) -> HostKind {
        match self {
            HostProfile::Envoy => HostKind::Envoy,
            HostProfile::Kong(_) => HostKind::Kong,
        }
    }
}

impl Default for RouteRule {
    fn default() -> Self {
        RouteRule {
            name: None,
            path: None,
            methods: Vec::new(),
            case_sensitive: true,
            no_auth: false,
            required_scopes: Vec::new(),
            required_roles: Vec::new(),
            required_tenant: None,
            max_auth_age_secs: None,
            introspection: IntrospectionPolicy::default(),
            on_introspection_failure: None,
        }
    }
}

impl RouteRule {
    /// The rule asks more of a token than its signature and claims: a fail-open path that has
    /// no verified identity must deny it rather than skip the requirements.
    pub fn has_requirements(&self) -> bool {
        !self.required_scopes.is_empty()
            || !self.required_roles.is_empty()
            || self.required_tenant.is_some()
            || self.max_auth_age_secs.is_some()
            || self.introspection == IntrospectionPolicy::Always
    }
}

pub(crate) mod defaults {
    use super::*;

    pub fn yes() -> bool {
        true
    }

    pub fn clock_skew_secs() -> u64 {
        60
    }
    pub fn token_sources() -> Vec<TokenSource> {
        vec![TokenSource::Header("authorization".into())]
    }
    pub fn tenant_claim() -> String {
        "tenant".into()
    }
    pub fn roles_claim() -> String {
        "roles".into()
    }
    pub fn realm() -> String {
        "revguard".into()
    }
    pub fn jwks_refresh_secs() -> u64 {
        300
    }
    pub fn jwks_cooldown_secs() -> u64 {
        30
    }
    pub fn jwks_max_staleness_secs() -> u64 {
        86_400
    }
    pub fn fetch_timeout_ms() -> u64 {
        2_000
    }
    pub fn snapshot_refresh_secs() -> u64 {
        10
    }
    /// Below the 30 s idle timeouts common on load balancers and NATs.
    pub fn hold_secs() -> u64 {
        25
    }
    pub fn snapshot_max_staleness_secs() -> u64 {
        120
    }
    /// The snapshot format's default limit, shared with the CLI and the origin.
    pub fn max_snapshot_bytes() -> usize {
        crate::snapshot::DEFAULT_MAX_BYTES
    }
    pub fn introspection_cache_ttl_secs() -> u64 {
        60
    }
    pub fn max_introspection_bytes() -> usize {
        16 * 1024
    }
    pub fn deny() -> FailMode {
        FailMode::Deny
    }
    pub fn stale_deny() -> StaleMode {
        StaleMode::Deny
    }
    pub fn max_token_bytes() -> usize {
        8 * 1024
    }
    pub fn verified_cache_entries() -> usize {
        10_000
    }
    pub fn introspection_cache_entries() -> usize {
        10_000
    }
    pub fn sharing_slots() -> u32 {
        1024
    }
    pub fn answer_slots() -> u32 {
        256
    }
    pub fn kong_shm_zone() -> String {
        "revguard".into()
    }
}

//! The feeds' part of `origin.json`: the identity providers whose back-channel logout tokens
//! are accepted (`backchannel_logout`) and the Shared Signals transmitters whose pushed
//! Security Event Tokens are accepted (`ssf`). Errors name the field.

use std::time::Duration;

use serde::Deserialize;

use crate::jwks::Algorithm;

/// One IdP of `backchannel_logout`, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogoutIdp {
    /// The audit name (`created_by` = `backchannel_logout:<name>`); default: the issuer.
    #[serde(default)]
    pub name: Option<String>,
    pub issuer: String,
    pub jwks_uri: String,
    /// The RP's client ids: a logout token's `aud` must contain one.
    pub client_ids: Vec<String>,
    /// Oldest accepted `iat`, in seconds before now (also how long a `jti` is remembered).
    #[serde(default = "defaults::logout_max_age_secs")]
    pub max_age_secs: u64,
    #[serde(default = "defaults::clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// The longest lifetime of the IdP's access tokens: a revocation is kept until the event
    /// time plus this (and the skew), when every token it can match has expired.
    #[serde(default = "defaults::token_lifetime_secs")]
    pub token_lifetime_secs: u64,
    #[serde(default = "defaults::jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    #[serde(default = "defaults::jwks_refetch_cooldown_secs")]
    pub jwks_refetch_cooldown_secs: u64,
    #[serde(default = "defaults::jwks_max_stale_secs")]
    pub jwks_max_stale_secs: u64,
    #[serde(default = "defaults::jwks_timeout_secs")]
    pub jwks_timeout_secs: u64,
}

/// One transmitter of `ssf`, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsfTransmitter {
    #[serde(default)]
    pub name: Option<String>,
    pub issuer: String,
    pub jwks_uri: String,
    /// This receiver's audience: a SET's `aud` must contain it.
    pub audience: String,
    /// SHA-256 (lower-case hex) of the bearer token the transmitter pushes with; none: no
    /// transmitter authentication beyond the SET's signature.
    #[serde(default)]
    pub api_token_sha256: Option<String>,
    /// Map `email` subjects to `sub` revocations (only for IdPs whose `sub` is the email).
    #[serde(default)]
    pub email_is_sub: bool,
    #[serde(default = "defaults::ssf_max_age_secs")]
    pub max_age_secs: u64,
    #[serde(default = "defaults::clock_skew_secs")]
    pub clock_skew_secs: u64,
    #[serde(default = "defaults::token_lifetime_secs")]
    pub token_lifetime_secs: u64,
    #[serde(default = "defaults::jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    #[serde(default = "defaults::jwks_refetch_cooldown_secs")]
    pub jwks_refetch_cooldown_secs: u64,
    #[serde(default = "defaults::jwks_max_stale_secs")]
    pub jwks_max_stale_secs: u64,
    #[serde(default = "defaults::jwks_timeout_secs")]
    pub jwks_timeout_secs: u64,
}

mod defaults {
    pub fn logout_max_age_secs() -> u64 {
        300
    }
    pub fn ssf_max_age_secs() -> u64 {
        3600
    }
    pub fn clock_skew_secs() -> u64 {
        60
    }
    pub fn token_lifetime_secs() -> u64 {
        86_400
    }
    pub fn jwks_refresh_secs() -> u64 {
        300
    }
    pub fn jwks_refetch_cooldown_secs() -> u64 {
        10
    }
    pub fn jwks_max_stale_secs() -> u64 {
        86_400
    }
    pub fn jwks_timeout_secs() -> u64 {
        5
    }
}

/// Where and how an issuer's key set is fetched and cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksSource {
    pub uri: String,
    /// Refetch when the keys are older than this.
    pub refresh: Duration,
    /// At most one fetch per this interval (an unknown `kid` cannot make us hammer the IdP).
    pub cooldown: Duration,
    /// Last good keys are used this long after their fetch while refreshes fail; then none.
    pub max_stale: Duration,
    pub timeout: Duration,
}

/// What both feeds check of a token's time and how long their revocations live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeRules {
    pub max_age_secs: u64,
    pub clock_skew_secs: u64,
    pub token_lifetime_secs: u64,
}

impl TimeRules {
    /// How long a `jti` is remembered after `iat`: past it, the age check refuses the token.
    pub fn replay_until(&self, iat: u64) -> u64 {
        iat.saturating_add(self.max_age_secs)
            .saturating_add(self.clock_skew_secs)
            .saturating_add(1)
    }

    /// The `exp` of a revocation for an event at `at`: every token it can match has expired.
    pub fn revocation_exp(&self, at: u64) -> u64 {
        at.saturating_add(self.token_lifetime_secs)
            .saturating_add(self.clock_skew_secs)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutIdp {
    pub name: String,
    pub issuer: String,
    pub client_ids: Vec<String>,
    pub time: TimeRules,
    pub jwks: JwksSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsfTransmitter {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub api_token_sha256: Option<[u8; 32]>,
    pub email_is_sub: bool,
    pub time: TimeRules,
    pub jwks: JwksSource,
}

/// The signature algorithms accepted from an IdP: asymmetric only (a JWKS is public; an HMAC
/// key in it would let anyone sign). Each key still fixes its own algorithm.
pub const FEED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// `https://...`, or `http://` to a loopback host only (tests, a local sidecar).
pub fn check_jwks_uri(field: &str, uri: &str) -> Result<(), String> {
    let rest = if let Some(rest) = uri.strip_prefix("https://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match host.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
            return Err(format!(
                "{field}: {uri:?} must be https:// (http:// only to 127.0.0.1, localhost or [::1])"
            ));
        }
        rest
    } else {
        return Err(format!("{field}: {uri:?} must be an https:// URL"));
    };
    if rest.is_empty() || uri.len() > 2048 || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{field}: {uri:?} is not a usable URL"));
    }
    Ok(())
}

fn name_of(field: &str, name: &Option<String>, issuer: &str) -> Result<String, String> {
    let name = name.clone().unwrap_or_else(|| issuer.to_string());
    if name.is_empty() || name.len() > 256 {
        return Err(format!("{field}.name: must be 1 to 256 characters"));
    }
    Ok(name)
}

fn check_issuer(field: &str, issuer: &str) -> Result<(), String> {
    if issuer.is_empty() || issuer.len() > 1024 {
        return Err(format!("{field}.issuer: must be 1 to 1024 characters"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn rules(
    field: &str,
    max_age_secs: u64,
    clock_skew_secs: u64,
    token_lifetime_secs: u64,
    refresh: u64,
    cooldown: u64,
    max_stale: u64,
    timeout: u64,
    uri: &str,
) -> Result<(TimeRules, JwksSource), String> {
    if max_age_secs == 0 || max_age_secs > 7 * 86_400 {
        return Err(format!(
            "{field}.max_age_secs: must be between 1 and 604800"
        ));
    }
    if clock_skew_secs > 3600 {
        return Err(format!("{field}.clock_skew_secs: must be at most 3600"));
    }
    if token_lifetime_secs == 0 || token_lifetime_secs > 366 * 86_400 {
        return Err(format!(
            "{field}.token_lifetime_secs: must be between 1 and 31622400"
        ));
    }
    if refresh == 0 {
        return Err(format!("{field}.jwks_refresh_secs: must be at least 1"));
    }
    if cooldown > refresh {
        return Err(format!(
            "{field}.jwks_refetch_cooldown_secs: must be at most jwks_refresh_secs"
        ));
    }
    if max_stale < refresh {
        return Err(format!(
            "{field}.jwks_max_stale_secs: must be at least jwks_refresh_secs"
        ));
    }
    if timeout == 0 || timeout > 60 {
        return Err(format!(
            "{field}.jwks_timeout_secs: must be between 1 and 60"
        ));
    }
    check_jwks_uri(&format!("{field}.jwks_uri"), uri)?;
    Ok((
        TimeRules {
            max_age_secs,
            clock_skew_secs,
            token_lifetime_secs,
        },
        JwksSource {
            uri: uri.to_string(),
            refresh: Duration::from_secs(refresh),
            cooldown: Duration::from_secs(cooldown),
            max_stale: Duration::from_secs(max_stale),
            timeout: Duration::from_secs(timeout),
        },
    ))
}

pub fn validate_logout(raw: &[RawLogoutIdp]) -> Result<Vec<LogoutIdp>, String> {
    let mut out: Vec<LogoutIdp> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let field = format!("backchannel_logout[{i}]");
        check_issuer(&field, &r.issuer)?;
        if out.iter().any(|o| o.issuer == r.issuer) {
            return Err(format!(
                "{field}.issuer: {:?} is configured twice",
                r.issuer
            ));
        }
        if r.client_ids.is_empty() || r.client_ids.iter().any(|c| c.is_empty()) {
            return Err(format!(
                "{field}.client_ids: at least one non-empty client id is required"
            ));
        }
        let (time, jwks) = rules(
            &field,
            r.max_age_secs,
            r.clock_skew_secs,
            r.token_lifetime_secs,
            r.jwks_refresh_secs,
            r.jwks_refetch_cooldown_secs,
            r.jwks_max_stale_secs,
            r.jwks_timeout_secs,
            &r.jwks_uri,
        )?;
        out.push(LogoutIdp {
            name: name_of(&field, &r.name, &r.issuer)?,
            issuer: r.issuer.clone(),
            client_ids: r.client_ids.clone(),
            time,
            jwks,
        });
    }
    Ok(out)
}

pub fn validate_ssf(
    raw: &[RawSsfTransmitter],
    parse_digest: impl Fn(&str) -> Option<[u8; 32]>,
) -> Result<Vec<SsfTransmitter>, String> {
    let mut out: Vec<SsfTransmitter> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let field = format!("ssf[{i}]");
        check_issuer(&field, &r.issuer)?;
        if out.iter().any(|o| o.issuer == r.issuer) {
            return Err(format!(
                "{field}.issuer: {:?} is configured twice",
                r.issuer
            ));
        }
        if r.audience.is_empty() {
            return Err(format!("{field}.audience: must not be empty"));
        }
        let api_token_sha256 = match &r.api_token_sha256 {
            None => None,
            Some(text) => Some(parse_digest(text).ok_or_else(|| {
                format!(
                    "{field}.api_token_sha256: must be 64 lower-case hex digits (SHA-256 of the token)"
                )
            })?),
        };
        let (time, jwks) = rules(
            &field,
            r.max_age_secs,
            r.clock_skew_secs,
            r.token_lifetime_secs,
            r.jwks_refresh_secs,
            r.jwks_refetch_cooldown_secs,
            r.jwks_max_stale_secs,
            r.jwks_timeout_secs,
            &r.jwks_uri,
        )?;
        out.push(SsfTransmitter {
            name: name_of(&field, &r.name, &r.issuer)?,
            issuer: r.issuer.clone(),
            audience: r.audience.clone(),
            api_token_sha256,
            email_is_sub: r.email_is_sub,
            time,
            jwks,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_uris() {
        assert!(check_jwks_uri("u", "https://idp.example/jwks").is_ok());
        assert!(check_jwks_uri("u", "http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_jwks_uri("u", "http://localhost/jwks").is_ok());
        assert!(check_jwks_uri("u", "http://[::1]:9/jwks").is_ok());
        for bad in [
            "http://idp.example/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "ftp://x",
            "https://",
            "https://a b",
        ] {
            assert!(check_jwks_uri("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_rules() {
        let t = TimeRules {
            max_age_secs: 300,
            clock_skew_secs: 60,
            token_lifetime_secs: 3600,
        };
        assert_eq!(t.replay_until(1000), 1361);
        assert_eq!(t.revocation_exp(1000), 4660);
    }
}

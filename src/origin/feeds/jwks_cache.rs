//! The identity providers' key sets, fetched over HTTPS and cached per `jwks_uri`, like the
//! plugin does: refreshed when older than the refresh interval, refetched when a token names
//! an unknown `kid` (at most once per cooldown, so a stream of made-up `kid`s cannot make us
//! hammer the IdP), and the last good keys kept while a refresh fails (up to `max_stale`).
//! A fetch that fails with no usable keys is the IdP's outage, not the sender's fault: the
//! caller answers with a retryable status and applies nothing.
//!
//! The decision of what to do ([`plan`], [`after_fetch`]) is pure and tested here; the fetch
//! is a blocking `ureq` call on tokio's blocking pool.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::jwks::{KeySet, MAX_JWKS_BYTES};

use super::config::{JwksSource, FEED_ALGORITHMS};

/// What is cached for one `jwks_uri` (times: Unix milliseconds).
#[derive(Clone, Default)]
pub struct Entry {
    pub keys: Option<Arc<KeySet>>,
    pub fetched_at_ms: Option<i64>,
    pub last_attempt_ms: Option<i64>,
}

/// Why no keys can be given: the caller answers 503 with `Retry-After`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysUnavailable {
    pub retry_after_secs: u64,
    /// For the log (never a token; the IdP's URL and error).
    pub detail: String,
}

fn has_kid(keys: &KeySet, kid: &str) -> bool {
    keys.kids().any(|k| k == Some(kid))
}

fn elapsed(since: Option<i64>, now_ms: i64) -> Option<Duration> {
    since.map(|t| Duration::from_millis(u64::try_from(now_ms.saturating_sub(t)).unwrap_or(0)))
}

/// Whether to fetch now: no keys, keys older than the refresh interval, or a `kid` they lack;
/// and never twice within the cooldown.
pub fn plan(entry: &Entry, src: &JwksSource, kid: Option<&str>, now_ms: i64) -> bool {
    let wanted = match (&entry.keys, elapsed(entry.fetched_at_ms, now_ms)) {
        (Some(keys), Some(age)) => age >= src.refresh || kid.is_some_and(|kid| !has_kid(keys, kid)),
        _ => true,
    };
    let allowed = elapsed(entry.last_attempt_ms, now_ms).is_none_or(|since| since >= src.cooldown);
    wanted && allowed
}

/// The keys to verify with after an optional fetch, or why there are none: no keys ever, keys
/// older than `max_stale`, or a `kid` the keys lack and no fetch since the request arrived
/// (`asked_at_ms`): a failed refetch, or one held by the cooldown. It may be a key the IdP
/// just rotated in, so the token is neither accepted nor refused: the sender retries (an IdP
/// does not retry a 400, and the logout would be lost). Only a `kid` missing from a key set
/// fetched after the request arrived is refused.
pub fn after_fetch(
    entry: &Entry,
    src: &JwksSource,
    kid: Option<&str>,
    asked_at_ms: i64,
    now_ms: i64,
    error: Option<&str>,
) -> Result<Arc<KeySet>, KeysUnavailable> {
    let retry_after_secs = {
        let since = elapsed(entry.last_attempt_ms, now_ms).unwrap_or_default();
        src.cooldown.saturating_sub(since).as_secs().max(1)
    };
    let unavailable = |what: &str| KeysUnavailable {
        retry_after_secs,
        detail: match error {
            Some(e) => format!("{what} ({}: {e})", src.uri),
            None => format!("{what} ({})", src.uri),
        },
    };
    let (Some(keys), Some(age)) = (&entry.keys, elapsed(entry.fetched_at_ms, now_ms)) else {
        return Err(unavailable("the key set could not be fetched yet"));
    };
    if age > src.max_stale {
        return Err(unavailable("the key set is stale and cannot be refreshed"));
    }
    if let Some(kid) = kid {
        let fetched_since_asked = entry.fetched_at_ms.is_some_and(|t| t >= asked_at_ms);
        if !has_kid(keys, kid) && !fetched_since_asked {
            return Err(unavailable(
                "the token's key is not in the cached key set, which cannot be refreshed now",
            ));
        }
    }
    Ok(Arc::clone(keys))
}

/// Fetches and parses a key set (blocking). Redirects are not followed: a JWKS URL is
/// configured exactly.
pub fn fetch(src: &JwksSource) -> Result<KeySet, String> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(src.timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent("revguard-origin")
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = agent
        .get(&src.uri)
        .header("accept", "application/json, application/jwk-set+json")
        .call()
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("answered HTTP {status}"));
    }
    let limit = u64::try_from(MAX_JWKS_BYTES).unwrap_or(u64::MAX);
    let body = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| format!("cannot read the key set: {e}"))?;
    KeySet::from_jwks(&body, FEED_ALGORITHMS).map_err(|e| e.to_string())
}

/// The cache: one entry per `jwks_uri`, each behind its own async lock, so one slow IdP does
/// not hold another's requests and concurrent misses on one IdP cause one fetch.
#[derive(Default)]
pub struct JwksCache {
    entries: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

impl JwksCache {
    pub fn new() -> JwksCache {
        JwksCache::default()
    }

    fn entry(&self, uri: &str) -> Result<Arc<tokio::sync::Mutex<Entry>>, KeysUnavailable> {
        let mut map = self.entries.lock().map_err(|_| KeysUnavailable {
            retry_after_secs: 1,
            detail: "the key cache lock is poisoned".into(),
        })?;
        Ok(Arc::clone(map.entry(uri.to_string()).or_default()))
    }

    /// The keys for a token with `kid` from `src`, fetching as [`plan`] says.
    pub async fn keys(
        &self,
        src: &JwksSource,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeysUnavailable> {
        let slot = self.entry(&src.uri)?;
        let asked_at_ms = super::now_ms();
        let mut entry = slot.lock().await;
        let now_ms = super::now_ms();
        let mut error = None;
        if plan(&entry, src, kid, now_ms) {
            entry.last_attempt_ms = Some(now_ms);
            let source = src.clone();
            let fetched = tokio::task::spawn_blocking(move || fetch(&source))
                .await
                .unwrap_or_else(|e| Err(format!("the fetch task failed: {e}")));
            let now_ms = super::now_ms();
            match fetched {
                Ok(keys) => {
                    entry.keys = Some(Arc::new(keys));
                    entry.fetched_at_ms = Some(now_ms);
                }
                Err(e) => {
                    eprintln!(
                        "revguard origin: key set {} could not be refreshed: {e}",
                        src.uri
                    );
                    error = Some(e);
                }
            }
        }
        after_fetch(
            &entry,
            src,
            kid,
            asked_at_ms,
            super::now_ms(),
            error.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::test_fixtures::{jwks, Signer};

    fn src() -> JwksSource {
        JwksSource {
            uri: "https://idp.example/jwks".into(),
            refresh: Duration::from_secs(300),
            cooldown: Duration::from_secs(10),
            max_stale: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
        }
    }

    fn with_keys(fetched_at_ms: i64) -> Entry {
        let signer = Signer::generate("ES256", "k1");
        let keys = KeySet::from_jwks(&jwks(&[signer.public_jwk()]), FEED_ALGORITHMS).unwrap();
        Entry {
            keys: Some(Arc::new(keys)),
            fetched_at_ms: Some(fetched_at_ms),
            last_attempt_ms: Some(fetched_at_ms),
        }
    }

    /// A one-connection server on loopback answering `reply` to whatever it receives.
    fn serve_once(reply: Vec<u8>) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(&reply);
            }
        });
        port
    }

    #[test]
    fn fetch_over_http_and_https() {
        let signer = Signer::generate("ES256", "k1");
        let body = jwks(&[signer.public_jwk()]);
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(&body);
        let mut s = src();
        s.uri = format!("http://127.0.0.1:{}/jwks", serve_once(reply));
        let keys = fetch(&s).unwrap();
        assert_eq!(keys.kids().collect::<Vec<_>>(), vec![Some("k1")]);
        // A status other than 200, and TLS to a server that does not speak it: errors, not
        // panics (the rustls client is configured and runs).
        s.uri = format!(
            "http://127.0.0.1:{}/jwks",
            serve_once(b"HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n".to_vec())
        );
        assert!(fetch(&s).is_err());
        s.uri = format!(
            "https://127.0.0.1:{}/jwks",
            serve_once(b"HTTP/1.1 200 OK\r\n\r\n".to_vec())
        );
        let err = fetch(&s).unwrap_err();
        assert!(err.contains("request failed"), "{err}");
    }

    #[test]
    fn fetch_plan() {
        let s = src();
        assert!(plan(&Entry::default(), &s, None, 1_000));
        let e = with_keys(1_000_000);
        assert!(!plan(&e, &s, Some("k1"), 1_001_000));
        assert!(!plan(&e, &s, None, 1_001_000));
        // An unknown kid: a refetch, but not within the cooldown.
        assert!(!plan(&e, &s, Some("k2"), 1_005_000));
        assert!(plan(&e, &s, Some("k2"), 1_010_000));
        // Old keys are refreshed.
        assert!(plan(&e, &s, Some("k1"), 1_300_000));
        // A failure is not retried within the cooldown either.
        let failed = Entry {
            last_attempt_ms: Some(2_000),
            ..Entry::default()
        };
        assert!(!plan(&failed, &s, None, 5_000));
        assert!(plan(&failed, &s, None, 12_000));
    }

    #[test]
    fn keys_after_a_fetch() {
        let s = src();
        let none = Entry {
            last_attempt_ms: Some(1_000),
            ..Entry::default()
        };
        let err = after_fetch(&none, &s, None, 4_000, 4_000, Some("refused")).unwrap_err();
        assert_eq!(err.retry_after_secs, 7);
        assert!(err.detail.contains("refused"), "{}", err.detail);
        let e = with_keys(1_000_000);
        assert!(after_fetch(&e, &s, Some("k1"), 1_001_000, 1_001_000, None).is_ok());
        // An unknown kid, keys fetched for this request: the keys (the token is then refused).
        assert!(after_fetch(&e, &s, Some("k2"), 999_999, 1_000_001, None).is_ok());
        // ... keys from before the request (refetch held by the cooldown, or failed):
        // unavailable, it may be a new key.
        assert!(after_fetch(&e, &s, Some("k2"), 1_001_000, 1_001_000, None).is_err());
        let mut failing = e.clone();
        failing.last_attempt_ms = Some(1_400_000);
        assert!(after_fetch(&failing, &s, Some("k2"), 1_400_000, 1_400_000, Some("x")).is_err());
        // Last good keys are kept while refreshes fail, up to max_stale.
        assert!(after_fetch(&failing, &s, Some("k1"), 1_400_000, 1_400_000, Some("x")).is_ok());
        let late = 1_000_000 + 3_601_000;
        assert!(after_fetch(&failing, &s, Some("k1"), late, late, Some("x")).is_err());
    }
}

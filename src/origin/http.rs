//! The HTTP API: revocation ingest, listing and removal (bearer token), the fleet view
//! (bearer token), the snapshot and delta (public: conditional GETs, long-poll), public keys,
//! health, and Prometheus metrics (public); the identity-provider feeds (back-channel logout,
//! Shared Signals push: verified by signature, src/origin/feeds/).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tokio::sync::{watch, Notify};

use super::auth::authenticate;
use super::config::OriginConfig;
use super::error::OriginError;
use super::fleet::{parse_generation, valid_node_id, Fleet};
use super::ingest::{parse_body, valid_key};
use super::metrics::Metrics;
use super::publish::{unix_now_ms, Publisher, Served, ServedFile};
use super::store::{IngestOutcome, ListFilter, ListState, Store};

/// `Cache-Control` of the snapshot and delta: a CDN may keep them one second (so it adds at
/// most about a second to propagation and sends the origin at most one revalidation per
/// second per edge location); clients revalidate every time (cheap: ETag, 304).
pub const FILE_CACHE_CONTROL: &str = "public, max-age=0, s-maxage=1, must-revalidate";
/// Held (long-poll) answers and API answers are never cached.
pub const NO_STORE: &str = "no-store";

/// The current full snapshot's generation, on file answers (a client holding an older one
/// fetches the snapshot before the delta): the name the plugins' core reads.
pub use crate::http::SNAPSHOT_GENERATION_HEADER;
/// The node id and generation-held headers plugins send (the core's, [`crate::node_id`]); the
/// generation header also carries the current generation on file answers.
pub use crate::node_id::{GENERATION_HEADER, NODE_HEADER};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<OriginConfig>,
    pub store: Arc<Store>,
    pub publisher: Arc<Publisher>,
    pub served: watch::Receiver<Served>,
    pub changed: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    pub fleet: Arc<Fleet>,
    pub signing_public_key: String,
    /// The identity providers' key sets (the feeds).
    pub jwks: Arc<super::feeds::jwks_cache::JwksCache>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Snapshot,
    Delta,
}

pub fn router(state: AppState) -> Router {
    let snapshot_path = state.config.snapshot_path.clone();
    let delta_path = state.config.delta_path.clone();
    Router::new()
        .route(
            "/v1/revocations",
            get(list_revocations).post(post_revocations),
        )
        .route(
            "/v1/revocations/{id}",
            axum::routing::delete(delete_revocation),
        )
        .route("/v1/fleet", get(get_fleet))
        .route(
            "/v1/logout/backchannel",
            axum::routing::post(super::feeds::handlers::backchannel_logout),
        )
        .route(
            "/v1/ssf/push",
            axum::routing::post(super::feeds::handlers::ssf_push),
        )
        .route("/v1/keys", get(get_keys))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            &snapshot_path,
            get(|s: State<AppState>, h: HeaderMap| serve_file(s, h, FileKind::Snapshot)),
        )
        .route(
            &delta_path,
            get(|s: State<AppState>, h: HeaderMap| serve_file(s, h, FileKind::Delta)),
        )
        .fallback(|| async { OriginError::NotFound("no such resource".into()) })
        .with_state(state)
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    r
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OriginError> + Send + 'static,
) -> Result<T, OriginError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OriginError::Internal(format!("a task failed: {e}")))?
}

fn now_secs() -> u64 {
    u64::try_from(unix_now_ms() / 1000).unwrap_or(0)
}

async fn post_revocations(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match ingest(&st, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            st.metrics.ingest(e.code());
            e.into_response()
        }
    }
}

async fn ingest(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, OriginError> {
    let actor = authenticate(headers, &st.config.api_tokens)?.to_string();
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" {
            return Err(OriginError::UnsupportedMediaType);
        }
    }
    let limit = st.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(OriginError::BodyTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| OriginError::BodyTooLarge { limit })?;
    let items = parse_body(&bytes, st.config.max_batch)?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v.to_str().unwrap_or("");
            if !valid_key(key) {
                return Err(OriginError::InvalidHeader(
                    "Idempotency-Key must be 1 to 256 characters of A-Z a-z 0-9 . _ : -".into(),
                ));
            }
            Some(key.to_string())
        }
    };
    let request_fp = {
        let mut h = hmac_sha256::Hash::new();
        for item in &items {
            h.update(item.id.as_deref().unwrap_or("").as_bytes());
            h.update([0u8]);
            h.update(item.fingerprint().as_bytes());
        }
        crate::wire::hex(&h.finalize())
    };
    // Never accept what cannot be published: with the clock behind the last build time, a
    // 2xx would promise a generation that is held.
    let now = now_secs();
    let last_built_at = st.served.borrow().built_at();
    if now < last_built_at {
        return Err(OriginError::ClockBehind { now, last_built_at });
    }
    let store = Arc::clone(&st.store);
    let outcome = blocking(move || {
        store.ingest(
            &items,
            idempotency_key.as_deref().map(|k| (k, request_fp.as_str())),
            &actor,
            unix_now_ms(),
        )
    })
    .await?;
    match outcome {
        IngestOutcome::Committed { response, inserted } => {
            if inserted > 0 {
                st.changed.notify_one();
            }
            st.metrics.ingest("ok");
            st.metrics.ingested(inserted);
            Ok(json_response(StatusCode::CREATED, response))
        }
        IngestOutcome::Replayed(response) => {
            st.metrics.ingest("replayed");
            let mut r = json_response(StatusCode::CREATED, response);
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(r)
        }
    }
}

fn parse_list_query(query: Option<&str>) -> Result<ListFilter, OriginError> {
    let mut f = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    let mut seen: HashMap<String, ()> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if seen.insert(k.to_string(), ()).is_some() {
            return Err(OriginError::InvalidQuery(format!("{k} is given twice")));
        }
        let v = v.into_owned();
        match k.as_ref() {
            "kind" => {
                if !["jti", "sid", "sub", "tenant"].contains(&v.as_str()) {
                    return Err(OriginError::InvalidQuery(
                        "kind must be jti, sid, sub or tenant".into(),
                    ));
                }
                f.kind = Some(v);
            }
            "value" => f.value = Some(v),
            "source" => f.source = Some(v),
            "since" => {
                f.since =
                    Some(v.parse().map_err(|_| {
                        OriginError::InvalidQuery("since must be Unix seconds".into())
                    })?)
            }
            "state" => {
                f.state = match v.as_str() {
                    "active" => ListState::Active,
                    "removed" => ListState::Removed,
                    "all" => ListState::All,
                    _ => {
                        return Err(OriginError::InvalidQuery(
                            "state must be active, removed or all".into(),
                        ))
                    }
                }
            }
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| OriginError::InvalidQuery("limit must be 1 to 1000".into()))?
            }
            "cursor" => {
                f.after_seq = v.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                    OriginError::InvalidQuery(
                        "cursor must be a next_cursor value from an earlier page".into(),
                    )
                })?
            }
            other => {
                return Err(OriginError::InvalidQuery(format!(
                    "unknown parameter {other:?} (kind, value, source, since, state, limit, cursor)"
                )))
            }
        }
    }
    Ok(f)
}

async fn list_revocations(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, OriginError> {
    authenticate(&headers, &st.config.api_tokens)?;
    let filter = parse_list_query(query.as_deref())?;
    let store = Arc::clone(&st.store);
    let (rows, next) = blocking(move || store.list(&filter)).await?;
    let body = json!({
        "revocations": rows,
        "next_cursor": next.map(|n| n.to_string()),
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

async fn delete_revocation(
    State(st): State<AppState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, OriginError> {
    let actor = authenticate(&headers, &st.config.api_tokens)?.to_string();
    if !valid_key(&id) {
        return Err(OriginError::NotFound(format!(
            "no revocation with id {id:?}"
        )));
    }
    let mut reason: Option<String> = None;
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "reason" if v.len() <= 256 => reason = Some(v.into_owned()),
            "reason" => {
                return Err(OriginError::InvalidQuery(
                    "reason is longer than 256 bytes".into(),
                ))
            }
            other => {
                return Err(OriginError::InvalidQuery(format!(
                    "unknown parameter {other:?} (reason)"
                )))
            }
        }
    }
    let store = Arc::clone(&st.store);
    let record =
        blocking(move || store.remove(&id, &actor, reason.as_deref(), unix_now_ms())).await?;
    st.changed.notify_one();
    st.metrics.removed();
    Ok(json_response(
        StatusCode::OK,
        json!({"removed": record}).to_string(),
    ))
}

async fn get_fleet(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OriginError> {
    authenticate(&headers, &st.config.api_tokens)?;
    let served = st.served.borrow().clone();
    let now_ms = unix_now_ms();
    let current = served.generation();
    let (nodes, recent) = st.fleet.view(current, now_ms);
    let counts = st.fleet.counts(current, now_ms);
    let store = Arc::clone(&st.store);
    let published = blocking(move || store.generations(64)).await?;
    let reached: HashMap<u64, Option<i64>> = recent
        .iter()
        .map(|g| (g.generation, g.reached_all_live_nodes_after_ms))
        .collect();
    let published: Vec<serde_json::Value> = published
        .into_iter()
        .map(|g| {
            let mut v = serde_json::to_value(&g).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "reached_all_live_nodes_after_ms".into(),
                    json!(reached.get(&g.generation).copied().flatten()),
                );
            }
            v
        })
        .collect();
    let body = json!({
        "generation": current,
        "snapshot_generation": served.snapshot_generation(),
        "built_at": served.built_at(),
        "live_window_secs": st.config.fleet_live_window_secs,
        "counts": counts,
        "published": published,
        "nodes": nodes,
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

async fn get_keys(State(st): State<AppState>) -> Response {
    let mut keys = vec![st.signing_public_key.clone()];
    for k in &st.config.public_keys {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    json_response(
        StatusCode::OK,
        json!({"signing_key": st.signing_public_key, "public_keys": keys}).to_string(),
    )
}

async fn healthz(State(st): State<AppState>) -> Response {
    let served = st.served.borrow().clone();
    let status = if served.snapshot.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        json!({"generation": served.generation(), "built_at": served.built_at()}).to_string(),
    )
}

async fn metrics(State(st): State<AppState>) -> Response {
    let current = st.served.borrow().generation();
    let counts = st.fleet.counts(current, unix_now_ms());
    let text = st.metrics.render(&counts);
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// The seconds of a `Prefer: wait=N` preference (RFC 7240), if any.
pub fn prefer_wait(headers: &HeaderMap) -> Option<u64> {
    for value in headers.get_all("prefer") {
        let Ok(text) = value.to_str() else { continue };
        for pref in text.split(',') {
            let token = pref.split(';').next().unwrap_or("").trim();
            if let Some((name, v)) = token.split_once('=') {
                if name.trim().eq_ignore_ascii_case("wait") {
                    if let Ok(n) = v.trim().trim_matches('"').parse::<u64>() {
                        return Some(n);
                    }
                }
            }
        }
    }
    None
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, RFC 9110 13.1.2).
fn none_match(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// The current file of `kind` and its validator ("none" validator for an absent delta).
fn pick(served: &Served, kind: FileKind) -> Option<ServedFile> {
    match kind {
        FileKind::Snapshot => served.snapshot.clone(),
        FileKind::Delta => served.delta.clone(),
    }
}

fn validator(served: &Served, kind: FileKind) -> String {
    match pick(served, kind) {
        Some(f) => f.etag,
        None => format!("\"none-{}\"", served.snapshot_generation()),
    }
}

fn record_fleet(st: &AppState, headers: &HeaderMap) {
    let Some(node) = headers.get(NODE_HEADER).map(|v| v.as_bytes()) else {
        return;
    };
    if !valid_node_id(node) {
        return;
    }
    let generation = headers
        .get(GENERATION_HEADER)
        .and_then(|v| parse_generation(v.as_bytes()))
        .unwrap_or(0);
    let node = String::from_utf8_lossy(node);
    for seconds in st.fleet.seen(&node, generation, unix_now_ms()) {
        st.metrics.reached_fleet(seconds);
    }
}

async fn serve_file(State(st): State<AppState>, headers: HeaderMap, kind: FileKind) -> Response {
    record_fleet(&st, &headers);
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut rx = st.served.clone();
    let served = rx.borrow_and_update().clone();
    let mut held = None;
    if let (Some(inm), Some(wait)) = (&if_none_match, prefer_wait(&headers)) {
        let wait = wait.min(st.config.max_wait_secs);
        let current = validator(&served, kind);
        if wait > 0 && none_match(inm, &current) {
            held = Some(wait);
            let _guard = st.metrics.hold();
            // Held until this resource changes or the wait ends: no CPU while waiting.
            let _ = tokio::time::timeout(
                Duration::from_secs(wait),
                rx.wait_for(|s| validator(s, kind) != current),
            )
            .await;
        }
    }
    let served = st.served.borrow().clone();
    let mut response = match pick(&served, kind) {
        None => {
            let error = if kind == FileKind::Delta {
                OriginError::NotFound("no delta since the current snapshot".into())
            } else {
                OriginError::NotFound("no snapshot published yet".into())
            };
            let mut r = error.into_response();
            // A validator for "no delta", so a client can hold until one exists.
            if let Ok(v) = HeaderValue::from_str(&validator(&served, kind)) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Some(file) => {
            let not_modified = if_none_match
                .as_deref()
                .is_some_and(|inm| none_match(inm, &file.etag));
            let mut r = if not_modified {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                let mut r = (StatusCode::OK, file.bytes.clone()).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                r
            };
            if let Ok(v) = HeaderValue::from_str(&file.etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
    };
    let h = response.headers_mut();
    let cache = if held.is_some() {
        NO_STORE
    } else {
        FILE_CACHE_CONTROL
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(wait) = held {
        if let Ok(v) = HeaderValue::from_str(&format!("wait={wait}")) {
            h.insert("preference-applied", v);
        }
    }
    h.insert(GENERATION_HEADER, HeaderValue::from(served.generation()));
    h.insert(
        SNAPSHOT_GENERATION_HEADER,
        HeaderValue::from(served.snapshot_generation()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_and_if_none_match() {
        let mut h = HeaderMap::new();
        assert_eq!(prefer_wait(&h), None);
        h.insert("prefer", HeaderValue::from_static("respond-async, wait=10"));
        assert_eq!(prefer_wait(&h), Some(10));
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(!none_match("\"a\"", "\"b\""));
        assert!(none_match("*", "\"b\""));
    }

    #[test]
    fn list_query() {
        let f = parse_list_query(Some("kind=jti&limit=5&cursor=7&state=all")).unwrap();
        assert_eq!((f.limit, f.after_seq, f.state), (5, 7, ListState::All));
        for bad in [
            "kind=x",
            "limit=0",
            "limit=1001",
            "cursor=-1",
            "bogus=1",
            "since=x",
            "limit=1&limit=2",
        ] {
            assert_eq!(
                parse_list_query(Some(bad)).unwrap_err().code(),
                "invalid_query",
                "{bad}"
            );
        }
    }
}

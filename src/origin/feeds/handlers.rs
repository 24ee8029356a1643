//! The feeds' HTTP endpoints, translation only: `POST /v1/logout/backchannel` (OpenID Connect
//! Back-Channel Logout 1.0, section 2.5 request, section 2.8 answers) and `POST /v1/ssf/push`
//! (RFC 8935 push delivery: section 2 request, sections 2.2-2.4 answers). The rules are in
//! [`super::logout`] and [`super::ssf`]; the commit is [`crate::origin::store::Store::ingest_event`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::SsfTransmitter;
use super::{logout, ssf, FeedError, FeedEvent, MAX_EVENT_TOKEN_BYTES, MAX_FEED_BODY_BYTES};
use crate::jwt::TokenError;
use crate::origin::auth::token_digest;
use crate::origin::error::OriginError;
use crate::origin::http::AppState;
use crate::origin::store::EventOutcome;

const NO_STORE: &str = "no-store";

fn essence(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

async fn read_body(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, FeedError> {
    let limit = MAX_FEED_BODY_BYTES.min(st.config.max_body_bytes);
    let too_large = || FeedError::BadRequest(format!("the body is over the {limit}-byte limit"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| too_large())
}

/// The unverified header and issuer of a token (only to pick the configuration and key).
fn inspect(token: &str) -> Result<(Option<String>, String), FeedError> {
    let inspected = crate::jwt::inspect(token, MAX_EVENT_TOKEN_BYTES).map_err(|e| match e {
        TokenError::Malformed(what) => {
            FeedError::BadRequest(format!("the token is not a signed JWT: {what}"))
        }
        other => other.into(),
    })?;
    let iss = inspected
        .unverified_issuer
        .ok_or_else(|| FeedError::Invalid("the token has no iss".into()))?;
    Ok((inspected.header.kid, iss))
}

/// Commits a verified event: replay record and revocations in one transaction.
async fn commit(st: &AppState, event: FeedEvent) -> Result<(), FeedError> {
    // As for the API: never accept what cannot be published.
    let now = u64::try_from(super::now_ms() / 1000).unwrap_or(0);
    let last_built_at = st.served.borrow().built_at();
    if now < last_built_at {
        return Err(OriginError::ClockBehind { now, last_built_at }.into());
    }
    let store = Arc::clone(&st.store);
    let outcome = tokio::task::spawn_blocking(move || {
        store.ingest_event(
            &event.replay,
            &event.revocations,
            &event.actor,
            super::now_ms(),
        )
    })
    .await
    .map_err(|e| OriginError::Internal(format!("a task failed: {e}")))??;
    match outcome {
        EventOutcome::Replayed => Err(FeedError::Replayed),
        EventOutcome::Committed { inserted } => {
            if inserted > 0 {
                st.changed.notify_one();
            }
            st.metrics.ingested(inserted);
            Ok(())
        }
    }
}

fn now_secs() -> u64 {
    u64::try_from(super::now_ms() / 1000).unwrap_or(0)
}

// ---- OpenID Connect Back-Channel Logout 1.0 ----

pub async fn backchannel_logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = logout_request(&st, &headers, body).await;
    st.metrics.feed_event(
        logout::FEED,
        match &result {
            Ok(()) => "ok",
            Err(e) => e.code(),
        },
    );
    match result {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            r
        }
        Err(e) => {
            // The reason, never the token (untrusted parts in it are bounded and escaped).
            eprintln!(
                "revguard origin: back-channel logout refused ({}): {e}",
                e.code()
            );
            logout_error(&e)
        }
    }
}

async fn logout_request(st: &AppState, headers: &HeaderMap, body: Body) -> Result<(), FeedError> {
    if essence(headers) != "application/x-www-form-urlencoded" {
        return Err(FeedError::BadRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let body = read_body(st, headers, body).await?;
    let mut token = None;
    for (k, v) in form_urlencoded::parse(&body) {
        if k == "logout_token" {
            if token.is_some() {
                return Err(FeedError::BadRequest("logout_token is given twice".into()));
            }
            token = Some(v.into_owned());
        }
    }
    let token = token.ok_or_else(|| FeedError::BadRequest("no logout_token".into()))?;
    let (kid, iss) = inspect(&token)?;
    let idp = st
        .config
        .backchannel_logout
        .iter()
        .find(|i| i.issuer == iss)
        .ok_or(FeedError::UnknownIssuer)?;
    let keys = st
        .jwks
        .keys(&idp.jwks, kid.as_deref())
        .await
        .map_err(FeedError::KeysUnavailable)?;
    let event = logout::validate(&token, idp, &keys, now_secs())?;
    commit(st, event).await
}

/// Section 2.8: 400 with an OAuth-style error for a token that is not valid (a replay too);
/// the IdP's keys unavailable or our store failing: a retryable 5xx.
fn logout_code(e: &FeedError) -> (StatusCode, &'static str) {
    match e {
        FeedError::KeysUnavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        FeedError::Origin(o) if o.status() == StatusCode::SERVICE_UNAVAILABLE => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        FeedError::Origin(o) => (o.status(), "server_error"),
        _ => (StatusCode::BAD_REQUEST, "invalid_request"),
    }
}

fn logout_error(e: &FeedError) -> Response {
    let (status, code) = logout_code(e);
    let body = json!({"error": code, "error_description": e.to_string()});
    respond(status, body, retry_after(e))
}

// ---- Shared Signals push delivery (RFC 8935) ----

pub async fn ssf_push(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = push_request(&st, &headers, body).await;
    st.metrics.feed_event(
        ssf::FEED,
        match &result {
            Ok(()) => "ok",
            Err(e) => e.code(),
        },
    );
    match result {
        Ok(()) => {
            let mut r = StatusCode::ACCEPTED.into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            r
        }
        Err(e) => {
            eprintln!("revguard origin: SSF push refused ({}): {e}", e.code());
            ssf_error(&e)
        }
    }
}

/// The transmitter a bearer token belongs to, if one was presented; a presented token that
/// matches none fails authentication. Compared with every configured hash, no early exit.
fn transmitter_by_token<'a>(
    headers: &HeaderMap,
    all: &'a [SsfTransmitter],
) -> Result<Option<&'a SsfTransmitter>, FeedError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| FeedError::AuthenticationFailed)?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(FeedError::AuthenticationFailed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(FeedError::AuthenticationFailed);
    }
    let digest = token_digest(token.trim());
    let mut found = None;
    for t in all {
        if let Some(expected) = &t.api_token_sha256 {
            let mut diff = 0u8;
            for (x, y) in digest.iter().zip(expected.iter()) {
                diff |= x ^ y;
            }
            if diff == 0 && found.is_none() {
                found = Some(t);
            }
        }
    }
    found.map(Some).ok_or(FeedError::AuthenticationFailed)
}

async fn push_request(st: &AppState, headers: &HeaderMap, body: Body) -> Result<(), FeedError> {
    let authenticated = transmitter_by_token(headers, &st.config.ssf)?;
    if essence(headers) != "application/secevent+jwt" {
        return Err(FeedError::BadRequest(
            "the body must be one SET, Content-Type: application/secevent+jwt".into(),
        ));
    }
    let body = read_body(st, headers, body).await?;
    let token = std::str::from_utf8(&body)
        .map_err(|_| FeedError::BadRequest("the body is not a compact JWS".into()))?
        .trim();
    let (kid, iss) = inspect(token)?;
    let transmitter = st
        .config
        .ssf
        .iter()
        .find(|t| t.issuer == iss)
        .ok_or(FeedError::UnknownIssuer)?;
    if transmitter.api_token_sha256.is_some() {
        match authenticated {
            None => return Err(FeedError::AuthenticationFailed),
            Some(a) if a.issuer != transmitter.issuer => return Err(FeedError::AccessDenied),
            Some(_) => {}
        }
    }
    let keys = st
        .jwks
        .keys(&transmitter.jwks, kid.as_deref())
        .await
        .map_err(FeedError::KeysUnavailable)?;
    let event = ssf::validate(token, transmitter, &keys, now_secs())?;
    commit(st, event).await
}

/// RFC 8935 section 2.3 error codes, `{"err": code, "description": text}`.
pub fn ssf_code(e: &FeedError) -> (StatusCode, &'static str) {
    match e {
        FeedError::BadRequest(_) | FeedError::Invalid(_) | FeedError::Replayed => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        FeedError::UnknownIssuer => (StatusCode::BAD_REQUEST, "invalid_issuer"),
        FeedError::WrongAudience => (StatusCode::BAD_REQUEST, "invalid_audience"),
        FeedError::BadKey(_) => (StatusCode::BAD_REQUEST, "invalid_key"),
        FeedError::AuthenticationFailed => (StatusCode::UNAUTHORIZED, "authentication_failed"),
        FeedError::AccessDenied => (StatusCode::FORBIDDEN, "access_denied"),
        FeedError::KeysUnavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        FeedError::Origin(o) if o.status() == StatusCode::SERVICE_UNAVAILABLE => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        FeedError::Origin(o) => (o.status(), "server_error"),
    }
}

fn ssf_error(e: &FeedError) -> Response {
    let (status, code) = ssf_code(e);
    let mut r = respond(
        status,
        json!({"err": code, "description": e.to_string()}),
        retry_after(e),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"revguard-origin\""),
        );
    }
    r
}

// ---- shared ----

fn retry_after(e: &FeedError) -> Option<u64> {
    match e {
        FeedError::KeysUnavailable(u) => Some(u.retry_after_secs),
        FeedError::Origin(o) if o.status() == StatusCode::SERVICE_UNAVAILABLE => Some(1),
        _ => None,
    }
}

fn respond(status: StatusCode, body: serde_json::Value, retry_after: Option<u64>) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    if let Some(secs) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

//! The one error type of the origin service, and the one place it becomes an HTTP answer:
//! `{"error": code, "detail": text}` with the status the code implies.

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why a request (or a publish) did not succeed. Every variant leaves the store unchanged.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum OriginError {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// A bearer token that matches no configured token hash.
    InvalidToken,
    /// The body is not JSON (or not UTF-8).
    InvalidJson(String),
    /// A revocation is malformed; the detail names the field (`[2].not_before: ...`).
    InvalidRevocation(String),
    /// A query string parameter is wrong.
    InvalidQuery(String),
    /// A request header is malformed (e.g. `Idempotency-Key`).
    InvalidHeader(String),
    /// A `Content-Type` other than JSON.
    UnsupportedMediaType,
    /// The body is over `max_body_bytes`.
    BodyTooLarge { limit: usize },
    /// More revocations in one request than `max_batch`.
    BatchTooLarge { count: usize, limit: usize },
    /// The `Idempotency-Key` or an event id was used before with a different body.
    IdempotencyConflict(String),
    /// No such revocation.
    NotFound(String),
    /// The revocation was already removed.
    AlreadyRemoved(String),
    /// The clock is behind the last published build time: publishing is held.
    ClockBehind { now: u64, last_built_at: u64 },
    /// The next generation would pass the generation bound.
    GenerationExhausted(u64),
    /// The database or disk is full: nothing was committed.
    StorageFull,
    /// Any other storage failure: nothing was committed.
    Storage(String),
    /// A failure that is not the caller's.
    Internal(String),
}

impl OriginError {
    /// The stable error code of the JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            OriginError::MissingToken => "missing_token",
            OriginError::InvalidToken => "invalid_token",
            OriginError::InvalidJson(_) => "invalid_json",
            OriginError::InvalidRevocation(_) => "invalid_revocation",
            OriginError::InvalidQuery(_) => "invalid_query",
            OriginError::InvalidHeader(_) => "invalid_header",
            OriginError::UnsupportedMediaType => "unsupported_media_type",
            OriginError::BodyTooLarge { .. } => "body_too_large",
            OriginError::BatchTooLarge { .. } => "batch_too_large",
            OriginError::IdempotencyConflict(_) => "idempotency_conflict",
            OriginError::NotFound(_) => "not_found",
            OriginError::AlreadyRemoved(_) => "already_removed",
            OriginError::ClockBehind { .. } => "clock_behind",
            OriginError::GenerationExhausted(_) => "generation_exhausted",
            OriginError::StorageFull => "storage_full",
            OriginError::Storage(_) => "storage_error",
            OriginError::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            OriginError::MissingToken | OriginError::InvalidToken => StatusCode::UNAUTHORIZED,
            OriginError::InvalidJson(_)
            | OriginError::InvalidQuery(_)
            | OriginError::InvalidHeader(_) => StatusCode::BAD_REQUEST,
            OriginError::InvalidRevocation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            OriginError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OriginError::BodyTooLarge { .. } | OriginError::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            OriginError::IdempotencyConflict(_) | OriginError::AlreadyRemoved(_) => {
                StatusCode::CONFLICT
            }
            OriginError::NotFound(_) => StatusCode::NOT_FOUND,
            OriginError::ClockBehind { .. } | OriginError::GenerationExhausted(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OriginError::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            OriginError::Storage(_) | OriginError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginError::MissingToken => f.write_str("an Authorization: Bearer token is required"),
            OriginError::InvalidToken => f.write_str("the bearer token is not valid"),
            OriginError::InvalidJson(d) => write!(f, "the body is not valid JSON: {d}"),
            OriginError::InvalidRevocation(d) => write!(f, "invalid revocation: {d}"),
            OriginError::InvalidQuery(d) => write!(f, "invalid query: {d}"),
            OriginError::InvalidHeader(d) => write!(f, "invalid header: {d}"),
            OriginError::UnsupportedMediaType => {
                f.write_str("the body must be JSON (Content-Type: application/json)")
            }
            OriginError::BodyTooLarge { limit } => {
                write!(f, "the body is over the {limit}-byte limit")
            }
            OriginError::BatchTooLarge { count, limit } => {
                write!(
                    f,
                    "{count} revocations in one request, over the limit of {limit}"
                )
            }
            OriginError::IdempotencyConflict(d) => write!(f, "{d}"),
            OriginError::NotFound(d) => write!(f, "{d}"),
            OriginError::AlreadyRemoved(id) => write!(f, "revocation {id:?} was already removed"),
            OriginError::ClockBehind { now, last_built_at } => write!(
                f,
                "the clock ({now}) is behind the last published build time ({last_built_at}): \
                 publishing is held until it catches up"
            ),
            OriginError::GenerationExhausted(g) => {
                write!(
                    f,
                    "generation {g} is at the generation bound: refusing to publish"
                )
            }
            OriginError::StorageFull => {
                f.write_str("the database or disk is full: nothing was committed")
            }
            OriginError::Storage(d) => write!(f, "storage error, nothing was committed: {d}"),
            OriginError::Internal(d) => write!(f, "internal error: {d}"),
        }
    }
}

impl std::error::Error for OriginError {}

impl From<rusqlite::Error> for OriginError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(inner, _) = &e {
            if inner.code == rusqlite::ErrorCode::DiskFull {
                return OriginError::StorageFull;
            }
        }
        OriginError::Storage(e.to_string())
    }
}

impl From<std::io::Error> for OriginError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(28) {
            return OriginError::StorageFull;
        }
        OriginError::Storage(e.to_string())
    }
}

impl IntoResponse for OriginError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({"error": self.code(), "detail": self.to_string()});
        let mut response = (status, axum::Json(body)).into_response();
        let challenge = match self {
            OriginError::MissingToken => Some("Bearer realm=\"revguard-origin\""),
            OriginError::InvalidToken => {
                Some("Bearer realm=\"revguard-origin\", error=\"invalid_token\"")
            }
            _ => None,
        };
        if let Some(value) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        response
    }
}

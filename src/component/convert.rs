//! Conversions between the WIT types of `revguard:policy` and the core's types. Counts are
//! widened or saturated, never truncated.

use super::exports::revguard::policy::policy::{
    Allow, Decision, Deny, EngineStatus, FetchError, FetchKind, FetchRequest, FetchResult,
    HttpOutcome, HttpRequest, Introspect, LoadError, PendingIntrospection, RequestView,
};
use super::revguard::policy::types::{DecisionLog, Reason};
use super::PendingResource;
use crate::decision::{Decision as CoreDecision, DecisionLog as CoreLog};
use crate::engine::{
    EngineStatus as CoreStatus, FetchError as CoreFetchError, FetchKind as CoreFetchKind,
    FetchRequest as CoreFetchRequest, FetchResult as CoreFetchResult, LoadError as CoreLoadError,
};
use crate::http::{HttpOutcome as CoreOutcome, HttpRequest as CoreHttpRequest};
use crate::reason::Reason as CoreReason;
use crate::request::RequestView as CoreRequestView;

/// Borrowed header pairs for a [`CoreRequestView`].
pub(super) fn header_views(request: &RequestView) -> Vec<(&str, &[u8])> {
    request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect()
}

pub(super) fn request_view<'a>(
    request: &'a RequestView,
    headers: &'a [(&'a str, &'a [u8])],
) -> CoreRequestView<'a> {
    CoreRequestView {
        method: &request.method,
        path: &request.path,
        headers,
    }
}

pub(super) fn http_outcome(outcome: &HttpOutcome) -> CoreOutcome<'_> {
    match outcome {
        HttpOutcome::Response(r) => CoreOutcome::Response {
            status: r.status,
            etag: r.etag.as_deref(),
            body: &r.body,
            origin: Default::default(),
        },
        HttpOutcome::Failed => CoreOutcome::Failed,
    }
}

/// `request_id`: the request's `x-request-id`, for a denial's log line.
pub(super) fn decision(decision: CoreDecision, request_id: Option<&str>) -> Decision {
    match decision {
        CoreDecision::Allow(a) => Decision::Allow(Allow {
            remove_headers: a.remove_headers,
            set_headers: a.set_headers,
            path: a.path,
            fail_open: a.fail_open.map(reason),
            log: log(&a.log),
        }),
        CoreDecision::Deny(d) => Decision::Deny(Deny {
            status: d.status,
            reason: reason(d.reason),
            body: d.body(),
            log_line: d.log_line(request_id),
            www_authenticate: d.www_authenticate,
            log: log(&d.log),
        }),
        CoreDecision::Introspect(i) => Decision::Introspect(Introspect {
            request: http_request(i.request),
            pending: PendingIntrospection::new(PendingResource { pending: i.pending }),
        }),
    }
}

fn http_request(request: CoreHttpRequest) -> HttpRequest {
    HttpRequest {
        upstream: request.upstream,
        headers: request.headers,
        body: request.body,
        timeout_ms: request.timeout_ms,
    }
}

pub(super) fn log(log: &CoreLog) -> DecisionLog {
    DecisionLog {
        route: log.route.clone(),
        issuer: log.issuer.clone(),
        kid: log.kid.clone(),
        snapshot_generation: log.snapshot_generation,
        token_hash: log.token_hash.clone(),
        cached: log.cached,
        introspected: log.introspected,
    }
}

/// One arm per core reason: a new core reason does not compile until the WIT names it.
pub(super) fn reason(reason: CoreReason) -> Reason {
    match reason {
        CoreReason::MissingToken => Reason::MissingToken,
        CoreReason::InvalidRequest => Reason::InvalidRequest,
        CoreReason::InvalidPath => Reason::InvalidPath,
        CoreReason::MalformedToken => Reason::MalformedToken,
        CoreReason::DisallowedAlgorithm => Reason::DisallowedAlgorithm,
        CoreReason::ForbiddenHeader => Reason::ForbiddenHeader,
        CoreReason::UnknownKey => Reason::UnknownKey,
        CoreReason::BadSignature => Reason::BadSignature,
        CoreReason::Expired => Reason::Expired,
        CoreReason::NotYetValid => Reason::NotYetValid,
        CoreReason::IssuedInFuture => Reason::IssuedInFuture,
        CoreReason::TokenTooOld => Reason::TokenTooOld,
        CoreReason::MissingClaim => Reason::MissingClaim,
        CoreReason::WrongIssuer => Reason::WrongIssuer,
        CoreReason::WrongAudience => Reason::WrongAudience,
        CoreReason::WrongType => Reason::WrongType,
        CoreReason::Revoked => Reason::Revoked,
        CoreReason::RevokedSession => Reason::RevokedSession,
        CoreReason::RevokedSubject => Reason::RevokedSubject,
        CoreReason::RevokedTenant => Reason::RevokedTenant,
        CoreReason::TokenInactive => Reason::TokenInactive,
        CoreReason::InsufficientScope => Reason::InsufficientScope,
        CoreReason::WrongTenant => Reason::WrongTenant,
        CoreReason::AuthTooOld => Reason::AuthTooOld,
        CoreReason::KeysUnavailable => Reason::KeysUnavailable,
        CoreReason::StaleRevocationData => Reason::StaleRevocationData,
        CoreReason::IntrospectionFailed => Reason::IntrospectionFailed,
        CoreReason::NotReady => Reason::NotReady,
    }
}

pub(super) fn load_error(error: &CoreLoadError) -> LoadError {
    match error {
        CoreLoadError::Keys(e) => LoadError::Keys(e.to_string()),
        CoreLoadError::Snapshot(e) => LoadError::Snapshot(e.to_string()),
        CoreLoadError::NoSuchIssuer(i) => {
            LoadError::NoSuchIssuer(u32::try_from(*i).unwrap_or(u32::MAX))
        }
        CoreLoadError::RevocationNotConfigured => LoadError::RevocationNotConfigured,
        CoreLoadError::NoBaseSnapshot => LoadError::NoBaseSnapshot,
    }
}

fn fetch_kind(kind: CoreFetchKind) -> FetchKind {
    match kind {
        CoreFetchKind::Keys(i) => FetchKind::Keys(u32::try_from(i).unwrap_or(u32::MAX)),
        CoreFetchKind::Snapshot => FetchKind::Snapshot,
        CoreFetchKind::Delta => FetchKind::Delta,
    }
}

/// The core's kind, or the issuer number that does not fit this platform's `usize`.
pub(super) fn core_fetch_kind(kind: FetchKind) -> Result<CoreFetchKind, u32> {
    match kind {
        FetchKind::Keys(i) => usize::try_from(i).map(CoreFetchKind::Keys).map_err(|_| i),
        FetchKind::Snapshot => Ok(CoreFetchKind::Snapshot),
        FetchKind::Delta => Ok(CoreFetchKind::Delta),
    }
}

pub(super) fn fetch_request(request: CoreFetchRequest) -> FetchRequest {
    FetchRequest {
        kind: fetch_kind(request.kind),
        request: http_request(request.request),
    }
}

pub(super) fn fetch_result(result: CoreFetchResult) -> FetchResult {
    match result {
        CoreFetchResult::Updated(n) => FetchResult::Updated(n),
        CoreFetchResult::NotModified => FetchResult::NotModified,
    }
}

pub(super) fn fetch_error(error: &CoreFetchError) -> FetchError {
    match error {
        CoreFetchError::Unreachable => FetchError::Unreachable,
        CoreFetchError::Status(s) => FetchError::Status(*s),
        CoreFetchError::TooLarge(n) => FetchError::TooLarge(u64::try_from(*n).unwrap_or(u64::MAX)),
        CoreFetchError::Rejected(e) => FetchError::Rejected(load_error(e)),
    }
}

pub(super) fn status(status: &CoreStatus) -> EngineStatus {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    EngineStatus {
        snapshot_generation: status.snapshot_generation,
        snapshot_age_secs: status.snapshot_age_secs,
        snapshot_stale: status.snapshot_stale,
        key_set_age_secs: status.key_set_age_secs.clone(),
        verified_cache_entries: count(status.verified_cache_entries),
        introspection_cache_entries: count(status.introspection_cache_entries),
    }
}

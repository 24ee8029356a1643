//! The last step: the route's requirements (scopes, roles, tenant, authentication age), then
//! the header changes that carry the verified identity to the upstream.

use serde_json::Value;

use super::Engine;
use crate::config::{RouteRule, TenantRequirement};
use crate::decision::{Allow, Decision, DecisionLog, Denial};
use crate::jwt::Claims;
use crate::reason::Reason;
use crate::request::{same_header, RequestView};

/// Longest identity header value forwarded; longer claims are not forwarded.
const MAX_FORWARDED_VALUE: usize = 4096;

impl Engine {
    pub(super) fn finish(
        &self,
        claims: &Claims,
        route: &RouteRule,
        req: &RequestView,
        fail_open: Option<Reason>,
        log: DecisionLog,
        now: u64,
    ) -> Decision {
        match self.route_requirements(claims, route, req, now) {
            Ok(()) => Decision::Allow(Allow {
                fail_open,
                ..self.allow(Some(claims), None, log, req)
            }),
            Err(reason) => self.deny(reason, route, log),
        }
    }

    fn route_requirements(
        &self,
        claims: &Claims,
        route: &RouteRule,
        req: &RequestView,
        now: u64,
    ) -> Result<(), Reason> {
        let config = &self.policy.config;
        if !route
            .required_scopes
            .iter()
            .all(|s| claims.scopes.iter().any(|g| g == s))
        {
            return Err(Reason::InsufficientScope);
        }
        if !route.required_roles.is_empty() {
            let roles = string_list(claims.claim(&config.roles_claim));
            if !route
                .required_roles
                .iter()
                .all(|r| roles.iter().any(|g| g == r))
            {
                return Err(Reason::InsufficientScope);
            }
        }
        if let Some(requirement) = &route.required_tenant {
            let tenant = claims.claim(&config.tenant_claim);
            let tenant = tenant.as_ref().and_then(Value::as_str);
            let ok = match (requirement, tenant) {
                (_, None) => false,
                (TenantRequirement::Present, Some(_)) => true,
                (TenantRequirement::Equals(want), Some(t)) => t == want,
                (TenantRequirement::MatchesHeader(h), Some(t)) => {
                    let mut values = req.header_values_folded(h);
                    matches!((values.next(), values.next()), (Some(v), None) if v == t.as_bytes())
                }
            };
            if !ok {
                return Err(Reason::WrongTenant);
            }
        }
        if let Some(max_age) = route.max_auth_age_secs {
            // An authentication later than now (beyond the skew) is no proof of a recent one:
            // a token minted with a future `auth_time` would otherwise pass step-up forever.
            let skew = config.clock_skew_secs;
            let fresh = claims.auth_time.is_some_and(|t| {
                t <= now.saturating_add(skew)
                    && now.saturating_sub(t) <= max_age.saturating_add(skew)
            });
            if !fresh {
                return Err(Reason::AuthTooOld);
            }
        }
        Ok(())
    }

    /// What every decision carries to the upstream besides the verdict: an allow gets the
    /// normalised target; an introspection keeps the target for later. (An allow's header
    /// removals are the request's own, [`Engine::allow`].)
    pub(super) fn for_upstream(
        &self,
        mut decision: Decision,
        forward_path: Option<String>,
    ) -> Decision {
        match &mut decision {
            Decision::Allow(allow) => allow.path = forward_path,
            Decision::Introspect(introspect) => introspect.pending.forward_path = forward_path,
            Decision::Deny(_) => {}
        }
        decision
    }

    /// An allow: identity headers removed from the request, then set from `claims` if given.
    ///
    /// Removed: every header `req` carries under any spelling a backend folds into an identity
    /// header (`X-Auth-Subject`, `x_auth_subject` for `x-auth-subject`; `authorization` too
    /// when it is stripped), lower case, as every host delivers names: the same list in every
    /// build. A header the request does not carry needs no removal (no hostcall on the hot
    /// path); one it carries is removed even when set again, because not every host's set
    /// replaces every copy: Envoy's `replaceHeaderMapValue` -> `HeaderMapImpl::setCopy`
    /// replaced only the first occurrence before `http_set_copy_replace_all_headers`
    /// (source/common/http/header_map_impl.cc), and the component's forwarder appends the set
    /// headers (examples/component/src/handler.rs, `forward`).
    pub(super) fn allow(
        &self,
        claims: Option<&Claims>,
        fail_open: Option<Reason>,
        log: DecisionLog,
        req: &RequestView,
    ) -> Allow {
        let config = &self.policy.config;
        let strip_authorization = config.strip_authorization && claims.is_some();
        let protected = |name: &str| {
            config
                .forward_claims
                .iter()
                .any(|f| same_header(name, &f.header))
                || (strip_authorization && same_header(name, "authorization"))
        };
        let mut remove_headers: Vec<String> = Vec::new();
        for (name, _) in req.headers {
            if !protected(name) {
                continue;
            }
            if !remove_headers.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                remove_headers.push(name.to_ascii_lowercase());
            }
        }
        let set_headers = claims
            .map(|c| {
                config
                    .forward_claims
                    .iter()
                    .filter_map(|f| header_value(c.claim(&f.claim)?).map(|v| (f.header.clone(), v)))
                    .collect()
            })
            .unwrap_or_default();
        Allow {
            remove_headers,
            set_headers,
            path: None,
            fail_open,
            // The token's name is for the line a denial writes: an introspection that ends in
            // an allow drops the one it carried (`DecisionLog::token_hash`).
            log: DecisionLog {
                token_hash: None,
                ..log
            },
        }
    }

    /// An infrastructure failure configured to fail open, for a token with no verified
    /// identity: let through without identity, unless the route asks for scopes, roles, a
    /// tenant, a recent authentication or introspection. Those cannot be checked without
    /// claims, and skipping them would open the route to any string in a bearer header.
    pub(super) fn fail_open(
        &self,
        reason: Reason,
        route: &RouteRule,
        log: DecisionLog,
        req: &RequestView,
    ) -> Decision {
        if route.has_requirements() {
            return self.deny(reason, route, log);
        }
        Decision::Allow(self.allow(None, Some(reason), log, req))
    }

    pub(super) fn deny(&self, reason: Reason, route: &RouteRule, log: DecisionLog) -> Decision {
        let scope = (reason == Reason::InsufficientScope && !route.required_scopes.is_empty())
            .then(|| route.required_scopes.join(" "));
        Decision::Deny(Denial::new(
            reason,
            &self.policy.config.realm,
            scope.as_deref(),
            log,
        ))
    }
}

/// A claim as a header value: strings as-is, numbers and booleans printed, arrays of strings
/// joined by ','. Values with control characters or over the size limit are not forwarded.
fn header_value(value: Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .into_iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect();
            parts?.join(",")
        }
        Value::Null | Value::Object(_) => return None,
    };
    let safe = text.len() <= MAX_FORWARDED_VALUE
        && text
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80);
    safe.then_some(text)
}

/// Roles as a JSON array of strings or one space-separated string.
fn string_list(value: Option<Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

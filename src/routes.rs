//! Route matching on the normalised path (crate::path): the first rule whose path and method
//! match, else the default rule.

use crate::config::{Config, PathMatch, RouteRule};
use crate::path::NormalizedTarget;

/// The request would be judged by a laxer rule than a backend may apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseMismatch;

/// The index of the rule for `method` and `target` in `config.routes`; `Ok(None)` is the
/// default rule.
///
/// A path that matches a case-sensitive rule only when letter case is ignored ("/Admin/" for
/// "/admin/") is refused unless that rule is `no_auth`: a case-insensitive backend serves it as
/// the rule's path, and falling through would skip the rule's requirements. A path that kept an
/// encoded slash never matches a `no_auth` rule.
pub fn select_index(
    config: &Config,
    method: &str,
    target: &NormalizedTarget,
) -> Result<Option<usize>, CaseMismatch> {
    let path = target.matched.as_str();
    for (i, rule) in config.routes.iter().enumerate() {
        if rule.no_auth && target.kept_escaped_slash {
            continue;
        }
        if !method_matches(rule, method) {
            continue;
        }
        if path_matches(rule, path, rule.case_sensitive) {
            return Ok(Some(i));
        }
        if rule.case_sensitive && !rule.no_auth && path_matches(rule, path, false) {
            return Err(CaseMismatch);
        }
    }
    Ok(None)
}

/// The rule at `index` (from [`select_index`]), or the default rule.
pub fn rule(config: &Config, index: Option<usize>) -> &RouteRule {
    index
        .and_then(|i| config.routes.get(i))
        .unwrap_or(&config.default_route)
}

fn method_matches(rule: &RouteRule, method: &str) -> bool {
    rule.methods.is_empty() || rule.methods.iter().any(|m| m == method)
}

fn path_matches(rule: &RouteRule, path: &str, case_sensitive: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    };
    match &rule.path {
        Some(PathMatch::Exact(exact)) => eq(path, exact),
        // A directory prefix ("/admin/") also covers the directory itself ("/admin"): backends
        // serve it as the directory's index (Express mounts, http.server's redirect).
        Some(PathMatch::Prefix(prefix)) => {
            path.get(..prefix.len()).is_some_and(|p| eq(p, prefix))
                || prefix
                    .strip_suffix('/')
                    .is_some_and(|dir| !dir.is_empty() && eq(path, dir))
        }
        None => true,
    }
}

/// A method is a token (RFC 9110 section 9.1) and, as every registered method, upper case:
/// methods are case-sensitive, but several frameworks upper-case them before routing, so
/// "post" would be judged as an unknown method and served as POST.
pub fn is_canonical_method(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| crate::config::is_tchar(b) && !b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PathConfig;
    use crate::path::normalize;

    fn config() -> Config {
        serde_json::from_value(serde_json::json!({
            "issuers": [],
            "routes": [
                {"name": "health", "path": "/healthz", "no_auth": true},
                {"name": "public", "path_prefix": "/public/", "no_auth": true},
                {"name": "admin-write", "path_prefix": "/admin", "methods": ["POST", "DELETE"], "required_scopes": ["admin"]},
                {"name": "admin", "path_prefix": "/admin"},
                {"name": "docs", "path_prefix": "/docs/", "case_sensitive": false, "required_scopes": ["docs"]}
            ]
        }))
        .unwrap()
    }

    fn name(c: &Config, method: &str, path: &str) -> Result<Option<String>, CaseMismatch> {
        let target = normalize(path, &PathConfig::default()).unwrap();
        select_index(c, method, &target).map(|i| rule(c, i).name.clone())
    }

    #[test]
    fn first_match_wins() {
        let c = config();
        let n = |m, p| name(&c, m, p).unwrap();
        assert_eq!(n("GET", "/healthz").as_deref(), Some("health"));
        assert_eq!(n("GET", "/healthz/x"), None);
        assert_eq!(n("POST", "/admin/users").as_deref(), Some("admin-write"));
        assert_eq!(n("GET", "/admin/users").as_deref(), Some("admin"));
        assert_eq!(n("GET", "/other"), None);
        assert_eq!(n("GET", "/public").as_deref(), Some("public"));
        assert_eq!(n("GET", "/publicity"), None);
    }

    #[test]
    fn rules_match_the_normalised_path() {
        let c = config();
        for p in [
            "//admin/x",
            "/./admin/x",
            "/api/../admin/x",
            "/%61dmin/x",
            "/public/../admin",
        ] {
            assert_eq!(name(&c, "GET", p), Ok(Some("admin".into())), "{p}");
        }
    }

    #[test]
    fn case_variants_never_fall_through_to_a_laxer_rule() {
        let c = config();
        assert_eq!(name(&c, "GET", "/Admin/x"), Err(CaseMismatch));
        assert_eq!(name(&c, "POST", "/ADMIN"), Err(CaseMismatch));
        // A case-insensitive rule applies; a no_auth near miss only falls through (stricter).
        assert_eq!(name(&c, "GET", "/DOCS/a"), Ok(Some("docs".into())));
        assert_eq!(name(&c, "GET", "/PUBLIC/a"), Ok(None));
    }

    #[test]
    fn kept_escaped_slashes_never_match_no_auth() {
        let c = config();
        let keep = PathConfig {
            escaped_slashes: crate::config::EscapedSlashes::Keep,
            ..PathConfig::default()
        };
        let target = normalize("/public/..%2fadmin", &keep).unwrap();
        assert_eq!(select_index(&c, "GET", &target), Ok(None));
    }

    #[test]
    fn methods_must_be_canonical() {
        assert!(is_canonical_method("POST"));
        assert!(is_canonical_method("M-SEARCH"));
        for m in ["post", "Post", "", "GE T", "GET\0"] {
            assert!(!is_canonical_method(m), "{m:?}");
        }
    }
}

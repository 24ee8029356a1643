//! Route matching: the first rule whose path and method match, else the default rule.

use crate::config::{Config, RouteRule};

/// The rule that applies to `method` and `path` (query string already removed).
///
/// A path that a backend could normalise into another one (dot segments, encoded slashes or
/// dots, backslashes) never matches a `no_auth` rule: "/public/../admin" must not skip the check.
pub fn select<'c>(config: &'c Config, method: &str, path: &str) -> &'c RouteRule {
    select_index(config, method, path)
        .and_then(|i| config.routes.get(i))
        .unwrap_or(&config.default_route)
}

/// The index of the matching rule in `config.routes`; `None` means the default rule.
pub fn select_index(config: &Config, method: &str, path: &str) -> Option<usize> {
    let ambiguous = is_ambiguous(path);
    config
        .routes
        .iter()
        .position(|r| !(ambiguous && r.no_auth) && matches(r, method, path))
}

fn matches(rule: &RouteRule, method: &str, path: &str) -> bool {
    let path_ok = match (&rule.path, &rule.path_prefix) {
        (Some(exact), _) => path == exact,
        (None, Some(prefix)) => path.starts_with(prefix.as_str()),
        (None, None) => true,
    };
    path_ok && (rule.methods.is_empty() || rule.methods.iter().any(|m| m == method))
}

fn is_ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || path.contains('\\')
        || path.split('/').any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        serde_json::from_value(serde_json::json!({
            "issuers": [],
            "routes": [
                {"name": "health", "path": "/healthz", "no_auth": true},
                {"name": "public", "path_prefix": "/public/", "no_auth": true},
                {"name": "admin-write", "path_prefix": "/admin", "methods": ["POST", "DELETE"], "required_scopes": ["admin"]},
                {"name": "admin", "path_prefix": "/admin"}
            ]
        }))
        .unwrap()
    }

    fn name(c: &Config, method: &str, path: &str) -> Option<String> {
        select(c, method, path).name.clone()
    }

    #[test]
    fn first_match_wins() {
        let c = config();
        assert_eq!(name(&c, "GET", "/healthz").as_deref(), Some("health"));
        assert_eq!(name(&c, "GET", "/healthz/x"), None);
        assert_eq!(
            name(&c, "POST", "/admin/users").as_deref(),
            Some("admin-write")
        );
        assert_eq!(name(&c, "GET", "/admin/users").as_deref(), Some("admin"));
        assert_eq!(name(&c, "GET", "/other"), None);
    }

    #[test]
    fn ambiguous_paths_never_skip_auth() {
        let c = config();
        for p in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/..%2Fadmin",
            "/public/.\\x",
            "/public/./a",
        ] {
            assert!(!select(&c, "GET", p).no_auth, "{p}");
        }
        assert!(select(&c, "GET", "/public/logo.png").no_auth);
    }
}

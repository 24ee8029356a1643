//! Arbitrary requests (method, path, header map with any bytes) through token extraction,
//! path normalisation, route matching and the whole decision, against a fixed policy with keys.
//!
//! Property (issue 11): an allowed request is never one that a backend could read as a path a
//! stricter rule matches. The forwarded target is read the ways backends read paths (fully
//! percent-decoded, `;` parameters stripped, `\` as `/`, letter case folded), each reading
//! resolved (RFC 3986 dot segments, merged slashes) by the small independent model below, and
//! matched by plain prefix comparison; no reading may select a stricter rule than the one that
//! allowed the request. And the forwarded target is a fixed point: deciding it again allows it
//! on the same rule and leaves it unchanged.

use revguard::decision::Decision;
use revguard::{Engine, RequestView};
use serde_json::Value;

const CONFIG: &str = include_str!("../../tests/fixtures/fuzz-config.json");
/// HS256 with the fuzz config's inline key: iss https://idp.fuzz, aud api, scope "read",
/// tenant "acme", exp 2100-01-01. A first input byte of 0x01 adds it as a bearer token.
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImgxIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC5mdXp6IiwiYXVkIjoiYXBpIiwic3ViIjoiZnV6eiIsImlhdCI6MTc2NzIyNTYwMCwiZXhwIjo0MTAyNDQ0ODAwLCJzY29wZSI6InJlYWQiLCJ0ZW5hbnQiOiJhY21lIn0.Cng5ob1L4yNiQ7ivfvpBsEijhN5-zlE4731o4rx7JWc";
const NOW: u64 = 1_767_225_600;

pub fn run(data: &[u8]) {
    let Ok(mut engine) = Engine::from_config_json(CONFIG.as_bytes()) else {
        return;
    };
    let (with_token, data) = match data.split_first() {
        Some((1, rest)) => (true, rest),
        _ => (false, data),
    };
    // Split the input into fields at 0xff bytes: method, path, then name/value pairs.
    let mut parts = data.split(|b| *b == 0xff);
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut headers = Vec::new();
    if with_token {
        headers.push((
            "authorization".to_string(),
            format!("Bearer {TOKEN}").into_bytes(),
        ));
    }
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        headers.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            value.to_vec(),
        ));
    }
    let views: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = RequestView {
        method: &method,
        path: &path,
        headers: &views,
    };
    let Decision::Allow(allow) = engine.decide(&req, NOW) else {
        return;
    };
    let forwarded = allow.path.clone().unwrap_or_else(|| path.clone());
    let rule = allow.log.route.clone();

    let again = RequestView {
        path: &forwarded,
        ..req
    };
    match engine.decide(&again, NOW) {
        Decision::Allow(a) => {
            assert_eq!(a.path, None, "{forwarded:?} is not a fixed point");
            assert_eq!(a.log.route, rule, "{forwarded:?} changed rule");
        }
        other => panic!("{path:?} allowed, its forwarded form {forwarded:?} not: {other:?}"),
    }

    let config: Value = serde_json::from_str(CONFIG).unwrap_or_default();
    let routes = config["routes"].as_array().cloned().unwrap_or_default();
    let allowed_on = strictness(&routes, rule.as_deref());
    let path_only = forwarded.split('?').next().unwrap_or_default();
    for reading in backend_readings(path_only) {
        let resolved = resolve(&reading);
        let (name, rank) = match_plain(&routes, &method, &resolved);
        assert!(
            name == rule || rank <= allowed_on,
            "{path:?} was allowed on {rule:?}, but a backend may read {resolved:?} (rule {name:?})"
        );
    }
}

/// 0: no_auth; 1: a token only (the default rule, or a rule without requirements);
/// 2: a rule with requirements.
fn strictness(routes: &[Value], name: Option<&str>) -> u8 {
    let Some(rule) = routes
        .iter()
        .find(|r| r["name"].as_str() == name && name.is_some())
    else {
        return 1;
    };
    if rule["no_auth"] == Value::Bool(true) {
        return 0;
    }
    let has = |k: &str| rule.get(k).is_some_and(|v| !v.is_null());
    if has("required_scopes") || has("required_roles") || has("required_tenant") {
        2
    } else {
        1
    }
}

/// The first rule a plain matcher picks for an already resolved path, ignoring case (the most
/// permissive reading for every rule).
fn match_plain(routes: &[Value], method: &str, path: &str) -> (Option<String>, u8) {
    for rule in routes {
        let methods = rule["methods"].as_array();
        if methods.is_some_and(|m| !m.is_empty() && !m.iter().any(|x| x.as_str() == Some(method))) {
            continue;
        }
        let hit = match (rule["path"].as_str(), rule["path_prefix"].as_str()) {
            (Some(exact), _) => path.eq_ignore_ascii_case(exact),
            (None, Some(prefix)) => {
                path.get(..prefix.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
                    || prefix
                        .strip_suffix('/')
                        .is_some_and(|dir| path.eq_ignore_ascii_case(dir))
            }
            _ => false,
        };
        if hit {
            let name = rule["name"].as_str().map(str::to_string);
            let rank = strictness(routes, name.as_deref());
            return (name, rank);
        }
    }
    (None, 1)
}

/// Ways backends read a path: as sent, fully percent-decoded (once), with `;` parameters
/// stripped from each segment (Tomcat, Jetty, Spring), with `\` as `/` (IIS, Windows).
fn backend_readings(path: &str) -> Vec<String> {
    let decoded = percent_decode(path);
    let mut readings = vec![path.to_string(), decoded.clone()];
    for base in [path.to_string(), decoded] {
        readings.push(base.replace('\\', "/"));
        readings.push(
            base.split('/')
                .map(|seg| seg.split(';').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    readings
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 section 5.2.4 dot-segment removal with merged slashes.
fn resolve(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in path.split('/').skip(1) {
        trailing = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut joined = String::new();
    for s in &out {
        joined.push('/');
        joined.push_str(s);
    }
    if joined.is_empty() || trailing {
        joined.push('/');
    }
    joined
}

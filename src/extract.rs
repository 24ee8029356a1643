//! Finding the bearer token in a request (RFC 6750 section 2): the Authorization header with
//! the Bearer scheme (case-insensitive), a cookie, or a query parameter, in configured order.

use crate::config::TokenSource;
use crate::request::RequestView;

#[derive(Debug, PartialEq, Eq)]
pub enum Extracted<'a> {
    Token(&'a str),
    Missing,
    /// Several credentials, a malformed header, or bytes outside the b64token syntax.
    Invalid(&'static str),
}

/// Looks in every configured source; exactly one token may be present (RFC 6750 section 2:
/// clients MUST NOT use more than one method).
///
/// `known`: whether a candidate is byte for byte a token that passed these checks before (the
/// caller's verified-token cache): its b64token scan, a pass over every byte, is skipped. Every
/// other check still applies to it.
pub fn extract<'a>(
    req: &RequestView<'a>,
    sources: &'a [TokenSource],
    max_bytes: usize,
    mut known: impl FnMut(&str) -> bool,
) -> Extracted<'a> {
    let mut found: Option<&'a str> = None;
    for source in sources {
        let candidates: Vec<Result<&'a str, &'static str>> = match source {
            TokenSource::Header(name) => {
                // Two Authorization headers (e.g. Basic and Bearer) reach the backend together;
                // which one it reads is its choice, not ours: refuse.
                let mut values = req.header_values(name);
                let first = values.next();
                if values.next().is_some() {
                    return Extracted::Invalid("more than one credential header");
                }
                first.and_then(bearer_from_header).into_iter().collect()
            }
            TokenSource::Cookie(name) => req
                .header_values("cookie")
                .flat_map(|v| cookie_values(v, name))
                .collect(),
            TokenSource::Query(name) => req
                .query()
                .map(|q| query_values(q, name))
                .unwrap_or_default(),
        };
        for candidate in candidates {
            let token = match candidate {
                Ok(t) => t,
                Err(why) => return Extracted::Invalid(why),
            };
            if token.len() > max_bytes {
                return Extracted::Invalid("token too large");
            }
            if !known(token) && !is_b64token(token) {
                return Extracted::Invalid("token has characters outside the b64token syntax");
            }
            if found.is_some() {
                return Extracted::Invalid("more than one token in the request");
            }
            found = Some(token);
        }
    }
    found.map_or(Extracted::Missing, Extracted::Token)
}

/// `Bearer <token>`; other schemes (e.g. Basic) are not ours and count as no token (`None`).
fn bearer_from_header(value: &[u8]) -> Option<Result<&str, &'static str>> {
    let Ok(value) = std::str::from_utf8(value) else {
        return Some(Err("authorization header is not UTF-8"));
    };
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Some(Err("empty bearer token"));
    }
    Some(Ok(token))
}

fn cookie_values<'a>(header: &'a [u8], name: &'a str) -> Vec<Result<&'a str, &'static str>> {
    let Ok(header) = std::str::from_utf8(header) else {
        return vec![Err("cookie header is not UTF-8")];
    };
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| Ok(v.trim_matches('"')))
        .collect()
}

fn query_values<'a>(query: &'a str, name: &'a str) -> Vec<Result<&'a str, &'static str>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(n, _)| *n == name)
        // A JWT is URL-safe already; a percent-encoded token is refused rather than decoded.
        .map(|(_, v)| Ok(v))
        .collect()
}

/// RFC 6750: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
/// The b64token characters before the `=` padding (RFC 6750 section 2.1): letters, digits and
/// `-._~+/`, one table lookup per byte (the check runs over every byte of every token: a
/// comparison chain per byte was a third of a cached request's cost in wasm). Built at compile
/// time: an index out of range there is a build error, not a panic.
#[allow(clippy::indexing_slicing)]
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || c == b'-'
            || c == b'.'
            || c == b'_'
            || c == b'~'
            || c == b'+'
            || c == b'/';
        b += 1;
    }
    table
};

fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| B64TOKEN.get(usize::from(b)).copied().unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Vec<TokenSource> {
        vec![
            TokenSource::Header("authorization".into()),
            TokenSource::Cookie("at".into()),
            TokenSource::Query("access_token".into()),
        ]
    }

    fn run<'a>(
        path: &'a str,
        headers: &'a [(&'a str, &'a [u8])],
        s: &'a [TokenSource],
    ) -> Extracted<'a> {
        extract(
            &RequestView {
                method: "GET",
                path,
                headers,
            },
            s,
            100,
            |_| false,
        )
    }

    #[test]
    fn finds_each_source() {
        let s = sources();
        assert_eq!(
            run("/", &[("authorization", b"Bearer a.b.c")], &s),
            Extracted::Token("a.b.c")
        );
        assert_eq!(
            run("/", &[("Authorization", b"bEaReR  a.b.c ")], &s),
            Extracted::Token("a.b.c")
        );
        assert_eq!(
            run("/", &[("cookie", b"x=1; at=a.b.c")], &s),
            Extracted::Token("a.b.c")
        );
        assert_eq!(
            run("/p?x=1&access_token=a.b.c", &[], &s),
            Extracted::Token("a.b.c")
        );
        assert_eq!(run("/", &[], &s), Extracted::Missing);
    }

    #[test]
    fn refuses_ambiguity_and_junk() {
        let s = sources();
        let two: &[(&str, &[u8])] = &[("authorization", b"Bearer a.b.c"), ("cookie", b"at=d.e.f")];
        assert!(matches!(run("/", two, &s), Extracted::Invalid(_)));
        assert_eq!(
            run("/", &[("authorization", b"Basic Zm9vOmJhcg==")], &s),
            Extracted::Missing
        );
        let basic_and_bearer: &[(&str, &[u8])] = &[
            ("authorization", b"Basic Zm9vOmJhcg=="),
            ("Authorization", b"Bearer a.b.c"),
        ];
        assert!(matches!(
            run("/", basic_and_bearer, &s),
            Extracted::Invalid(_)
        ));
        assert!(matches!(
            run("/", &[("authorization", b"Bearer a b")], &s),
            Extracted::Invalid(_)
        ));
        assert!(matches!(
            run("/", &[("authorization", b"Bearer \xff")], &s),
            Extracted::Invalid(_)
        ));
        assert!(matches!(
            run("/", &[("authorization", b"Bearer ")], &s),
            Extracted::Invalid(_)
        ));
        let long = format!("Bearer {}", "a".repeat(101));
        let h: &[(&str, &[u8])] = &[("authorization", long.as_bytes())];
        assert!(matches!(
            run("/", h, &s),
            Extracted::Invalid("token too large")
        ));
    }

    /// A known token skips the syntax scan only; the other checks still hold.
    #[test]
    fn a_known_token_skips_only_the_syntax_scan() {
        let s = sources();
        let view = |headers| RequestView {
            method: "GET",
            path: "/",
            headers,
        };
        let odd: &[(&str, &[u8])] = &[("authorization", b"Bearer a.b.c!")];
        assert!(matches!(
            extract(&view(odd), &s, 100, |_| false),
            Extracted::Invalid(_)
        ));
        assert_eq!(
            extract(&view(odd), &s, 100, |t| t == "a.b.c!"),
            Extracted::Token("a.b.c!")
        );
        let two: &[(&str, &[u8])] = &[("authorization", b"Bearer a.b.c"), ("cookie", b"at=a.b.c")];
        assert!(matches!(
            extract(&view(two), &s, 100, |_| true),
            Extracted::Invalid(_)
        ));
        let long = format!("Bearer {}", "a".repeat(101));
        let h: &[(&str, &[u8])] = &[("authorization", long.as_bytes())];
        assert_eq!(
            extract(&view(h), &s, 100, |_| true),
            Extracted::Invalid("token too large")
        );
    }

    #[test]
    fn only_configured_sources_count() {
        let s = vec![TokenSource::Header("authorization".into())];
        assert_eq!(
            run("/?access_token=a.b.c", &[("cookie", b"at=x")], &s),
            Extracted::Missing
        );
    }
}

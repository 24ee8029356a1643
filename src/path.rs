//! The one path normalisation: what route rules match, and what the upstream receives.
//!
//! A route rule is only as good as the agreement between the path the plugin matched and the
//! path the backend serves. Backends decode percent escapes, resolve dot segments, merge
//! slashes, strip `;` parameters or turn `\` into `/`, each in its own way; a path written so
//! that two readings differ ("//admin", "/%61dmin", "/public/..;/admin", "%252e") would let a
//! request be judged by a laxer rule than the one the backend applies. So every request target
//! goes through one normalisation, specified in docs/PATHS.md:
//!
//! 1. origin form only (`/...`): absolute form and `*` are refused;
//! 2. bytes a URI cannot carry raw (controls, space, `#`, `\`, non-ASCII) are refused;
//! 3. `%XX` escapes are decoded when they name an unreserved character (RFC 3986 section
//!    6.2.2.2), kept (upper-case hex) otherwise; invalid escapes, encoded controls and NUL,
//!    double encoding (`%25` followed by two hex digits) and encoded bytes that are not valid
//!    UTF-8 (overlong forms included) are refused; encoded `/` and `\` follow
//!    `path_normalization.escaped_slashes`;
//! 4. `;` parameters follow `path_normalization.path_parameters`;
//! 5. empty segments are merged (`//` -> `/`) and dot segments removed (RFC 3986 section 5.2.4).
//!
//! Rules match the result; by default it is also what the upstream receives, so the backend
//! serves exactly the path that was authorised. The query string is passed through untouched.

use crate::config::{EscapedSlashes, ForwardPath, PathConfig, PathParameters};

/// Why a request target was refused. Each is a way a backend could read the path differently
/// from the rule that matched it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not origin form (`/...`): absolute form, `*`, or empty.
    NotOriginForm,
    /// A byte a URI cannot carry unencoded: control, space, `#` (fragment), `\`, non-ASCII.
    ForbiddenByte,
    /// `%` not followed by two hex digits (also IIS `%uXXXX`).
    BadEscape,
    /// An encoded control character or NUL (`%00`..`%1F`, `%7F`).
    EncodedControl,
    /// `%25` followed by two hex digits: a second decoding would change the path.
    DoubleEncoding,
    /// Encoded bytes that are not valid UTF-8 (overlong forms such as `%C0%AE` included).
    InvalidUtf8,
    /// `%2F` or `%5C` with `escaped_slashes: reject`.
    EscapedSlash,
    /// A `;` parameter with `path_parameters: reject`.
    PathParameter,
    /// A `;` parameter on an empty or dot segment (`..;x`), refused in every mode.
    ParameterOnDotSegment,
    /// Not already normalised, with `forward: reject`.
    NotNormalized,
}

impl PathError {
    pub fn describe(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "the request target is not a path",
            PathError::ForbiddenByte => "the path has a byte that must be percent-encoded",
            PathError::BadEscape => "the path has an invalid percent escape",
            PathError::EncodedControl => "the path has an encoded control character",
            PathError::DoubleEncoding => "the path is percent-encoded twice",
            PathError::InvalidUtf8 => "the path's encoded bytes are not UTF-8",
            PathError::EscapedSlash => "the path has an encoded slash or backslash",
            PathError::PathParameter => "the path has ';' parameters",
            PathError::ParameterOnDotSegment => "the path has a ';' parameter on a dot segment",
            PathError::NotNormalized => "the path is not in normal form",
        }
    }
}

/// A request target after normalisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedTarget {
    /// The path route rules match (no query).
    pub matched: String,
    /// The target to send upstream instead of the original one: `Some` only when forwarding the
    /// normalised path is configured and it differs from what the client sent.
    pub forward: Option<String>,
    /// The matched path keeps an encoded `/` or `\` (`escaped_slashes: keep`): some backend may
    /// still decode it, so such a path never matches a `no_auth` rule.
    pub kept_escaped_slash: bool,
}

/// One segment: the text rules match and the text forwarded (they differ only by `;` parameters
/// with `path_parameters: strip_for_matching`).
struct Segment {
    matched: String,
    forwarded: String,
}

/// Normalises `target` (path plus optional `?query`) under `options`.
pub fn normalize(target: &str, options: &PathConfig) -> Result<NormalizedTarget, PathError> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if query.is_some_and(|q| q.bytes().any(forbidden_raw)) {
        return Err(PathError::ForbiddenByte);
    }
    let (decoded, kept_escaped_slash) = decode(path, options.escaped_slashes)?;

    let mut segments: Vec<Segment> = Vec::new();
    let mut trailing_slash = false;
    // `decoded` starts with '/', so the first piece is empty and skipped.
    for raw in decoded.split('/').skip(1) {
        let (name, has_params) = split_parameters(raw);
        if has_params {
            if options.path_parameters == PathParameters::Reject {
                return Err(PathError::PathParameter);
            }
            // "..;x" is ".." to Tomcat and a plain name to nginx: no reading is safe.
            if name.is_empty() || name == "." || name == ".." {
                return Err(PathError::ParameterOnDotSegment);
            }
        }
        trailing_slash = false;
        match name {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            _ => segments.push(Segment {
                matched: name.to_string(),
                forwarded: raw.to_string(),
            }),
        }
    }
    let join = |pick: fn(&Segment) -> &str| {
        let mut out = String::with_capacity(decoded.len());
        for s in &segments {
            out.push('/');
            out.push_str(pick(s));
        }
        if out.is_empty() || trailing_slash {
            out.push('/');
        }
        out
    };
    let matched = join(|s| &s.matched);
    let forward = match options.forward.unwrap_or_default() {
        ForwardPath::Original => None,
        mode => {
            let mut forwarded = join(|s| &s.forwarded);
            if let Some(q) = query {
                forwarded.push('?');
                forwarded.push_str(q);
            }
            match (forwarded == target, mode) {
                (true, _) => None,
                (false, ForwardPath::Reject) => return Err(PathError::NotNormalized),
                (false, _) => Some(forwarded),
            }
        }
    };
    Ok(NormalizedTarget {
        matched,
        forward,
        kept_escaped_slash,
    })
}

/// Percent-decodes what RFC 3986 allows to decode and refuses what backends disagree on.
/// Returns the path with unreserved characters decoded, other escapes upper-cased, and whether
/// an encoded slash was kept.
fn decode(path: &str, escaped_slashes: EscapedSlashes) -> Result<(String, bool), PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut kept_slash = false;
    // Encoded bytes >= 0x80 in a row: they must form valid UTF-8 on their own.
    let mut utf8_run: Vec<u8> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            flush_utf8(&mut utf8_run)?;
            if forbidden_raw(b) {
                return Err(PathError::ForbiddenByte);
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let byte = hex_pair(bytes.get(i + 1..i + 3)).ok_or(PathError::BadEscape)?;
        i += 3;
        if byte >= 0x80 {
            utf8_run.push(byte);
            push_escape(&mut out, byte);
            continue;
        }
        flush_utf8(&mut utf8_run)?;
        match byte {
            0x00..=0x1f | 0x7f => return Err(PathError::EncodedControl),
            b'%' if hex_pair(bytes.get(i..i + 2)).is_some() => {
                return Err(PathError::DoubleEncoding)
            }
            b'/' | b'\\' => match escaped_slashes {
                EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                EscapedSlashes::Decode => out.push('/'),
                EscapedSlashes::Keep => {
                    kept_slash = true;
                    push_escape(&mut out, byte);
                }
            },
            _ if is_unreserved(byte) => out.push(char::from(byte)),
            _ => push_escape(&mut out, byte),
        }
    }
    flush_utf8(&mut utf8_run)?;
    Ok((out, kept_slash))
}

/// A segment's name and whether `;` parameters follow. An encoded `;` (`%3B`, kept encoded by
/// [`decode`]) counts too: servers that decode before stripping parameters read "..%3B" as "..".
fn split_parameters(segment: &str) -> (&str, bool) {
    let at = match (segment.find(';'), segment.find("%3B")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match at {
        Some(i) => (segment.get(..i).unwrap_or(segment), true),
        None => (segment, false),
    }
}

fn flush_utf8(run: &mut Vec<u8>) -> Result<(), PathError> {
    if !run.is_empty() {
        std::str::from_utf8(run).map_err(|_| PathError::InvalidUtf8)?;
        run.clear();
    }
    Ok(())
}

/// Bytes a request target never carries unencoded, and that backends read in different ways.
fn forbidden_raw(b: u8) -> bool {
    b <= 0x20 || b >= 0x7f || b == b'#' || b == b'\\'
}

/// RFC 3986 section 2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    match pair? {
        [hi, lo] => Some(u8::try_from(digit(*hi)? * 16 + digit(*lo)?).ok()?),
        _ => None,
    }
}

fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    for nibble in [byte >> 4, byte & 0xf] {
        out.push(char::from(
            HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(escaped: EscapedSlashes, params: PathParameters) -> PathConfig {
        PathConfig {
            forward: Some(ForwardPath::Normalized),
            escaped_slashes: escaped,
            path_parameters: params,
        }
    }

    fn matched(target: &str) -> Result<String, PathError> {
        normalize(target, &PathConfig::default()).map(|n| n.matched)
    }

    #[test]
    fn rfc3986_dot_segments_and_merged_slashes() {
        for (input, want) in [
            ("/", "/"),
            ("/admin/secret", "/admin/secret"),
            ("//admin/secret", "/admin/secret"),
            ("/./admin/secret", "/admin/secret"),
            ("/api/../admin/secret", "/admin/secret"),
            ("/../../admin", "/admin"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a//", "/a/"),
            ("/admin/", "/admin/"),
            ("/%61dmin/secret", "/admin/secret"),
            ("/%2e%2E/admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%3fb", "/a%3Fb"),
            ("/a%20b", "/a%20b"),
            ("/100%25", "/100%25"),
            ("/a?x=../..", "/a"),
        ] {
            assert_eq!(matched(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn ambiguous_forms_are_refused_by_default() {
        use PathError::*;
        for (input, want) in [
            ("", NotOriginForm),
            ("*", NotOriginForm),
            ("http://api/admin/secret", NotOriginForm),
            ("admin", NotOriginForm),
            ("/admin\\secret", ForbiddenByte),
            ("/admin secret", ForbiddenByte),
            ("/admin#x", ForbiddenByte),
            ("/admin\u{e9}", ForbiddenByte),
            ("/admin\u{0}", ForbiddenByte),
            ("/admin?\u{1}", ForbiddenByte),
            ("/adm%in", BadEscape),
            ("/adm%6", BadEscape),
            ("/%u002e%u002e/admin", BadEscape),
            ("/admin%00.json", EncodedControl),
            ("/admin%0a", EncodedControl),
            ("/public/%252e%252e/admin", DoubleEncoding),
            ("/public/%c0%ae%c0%ae/admin", InvalidUtf8),
            ("/public/%e0%80%ae", InvalidUtf8),
            ("/caf%c3", InvalidUtf8),
            ("/public/..%2fadmin", EscapedSlash),
            ("/public/..%5Cadmin", EscapedSlash),
            ("/admin;x/secret", PathParameter),
            ("/public/..;/admin/", PathParameter),
            ("/public/..%3b/admin/", PathParameter),
        ] {
            assert_eq!(matched(input), Err(want), "{input}");
        }
    }

    #[test]
    fn escaped_slash_modes() {
        let keep = opts(EscapedSlashes::Keep, PathParameters::Reject);
        let n = normalize("/repos/a%2fb/x", &keep).unwrap();
        assert_eq!(n.matched, "/repos/a%2Fb/x");
        assert!(n.kept_escaped_slash);
        let decode = opts(EscapedSlashes::Decode, PathParameters::Reject);
        let n = normalize("/public/..%2fadmin/x", &decode).unwrap();
        assert_eq!(n.matched, "/admin/x");
        assert_eq!(n.forward.as_deref(), Some("/admin/x"));
        assert!(!n.kept_escaped_slash);
    }

    #[test]
    fn parameters_are_ignored_for_matching_and_forwarded_when_allowed() {
        let strip = opts(EscapedSlashes::Reject, PathParameters::StripForMatching);
        let n = normalize("/admin;jsessionid=1/secret?q=1", &strip).unwrap();
        assert_eq!(n.matched, "/admin/secret");
        assert_eq!(n.forward, None);
        let n = normalize("//admin;v=2/./x", &strip).unwrap();
        assert_eq!(n.forward.as_deref(), Some("/admin;v=2/x"));
        for input in [
            "/public/..;/admin/",
            "/public/.;x/a",
            "/;x/admin",
            "/public/..%3Bx/a",
        ] {
            assert_eq!(
                normalize(input, &strip),
                Err(PathError::ParameterOnDotSegment),
                "{input}"
            );
        }
    }

    #[test]
    fn forwarding_keeps_the_query_and_reports_only_changes() {
        let n = normalize("//a/../b?x=%2e%2e&y", &PathConfig::default()).unwrap();
        assert_eq!(n.forward.as_deref(), Some("/b?x=%2e%2e&y"));
        assert_eq!(
            normalize("/b?x", &PathConfig::default()).unwrap().forward,
            None
        );
        let original = PathConfig {
            forward: Some(ForwardPath::Original),
            ..PathConfig::default()
        };
        assert_eq!(normalize("//a", &original).unwrap().forward, None);
        let reject = PathConfig {
            forward: Some(ForwardPath::Reject),
            ..PathConfig::default()
        };
        assert_eq!(normalize("//a", &reject), Err(PathError::NotNormalized));
        assert_eq!(normalize("/a?x=%2e", &reject).unwrap().forward, None);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for input in ["//a/./b/../c/", "/%61%2e%7e", "/caf%c3%a9/x", "/a%3f/%25"] {
            let once = matched(input).unwrap();
            assert_eq!(matched(&once).unwrap(), once, "{input}");
        }
    }
}

//! The origin's revocation list: JSON Lines, one revocation per line.
//!
//! ```text
//! {"jti":"..."}                              one token
//! {"sid":"..."}                              every token of a session
//! {"sub":"...","not_before":1700000000}      a subject's tokens issued before that time
//! {"tenant":"...","not_before":1700000000}   a tenant's tokens issued before that time
//! ```
//! Each may carry `"exp":<unix s>`, after which a build drops it. Blank lines are allowed;
//! unknown fields, two kinds on one line, and missing or stray `not_before` are errors.

use std::fmt;

use serde::Deserialize;

/// What is revoked.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationTarget {
    Jti(String),
    Sid(String),
    Subject { sub: String, not_before: u64 },
    Tenant { tenant: String, not_before: u64 },
}

/// One line of the revocation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub target: RevocationTarget,
    /// After this time the entry can be dropped (the tokens it covers have expired).
    pub exp: Option<u64>,
}

impl Revocation {
    /// Whether a build at `now` still needs this entry.
    pub fn is_live(&self, now: u64) -> bool {
        self.exp.is_none_or(|exp| exp >= now)
    }
}

/// Limits on an untrusted revocation list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationLimits {
    /// Longest accepted line in bytes, without the line break.
    pub max_line_bytes: usize,
    /// Most entries accepted.
    pub max_entries: usize,
}

impl Default for RevocationLimits {
    fn default() -> Self {
        RevocationLimits {
            max_line_bytes: 4096,
            max_entries: 50_000_000,
        }
    }
}

/// Why a revocation list was refused. Lines are numbered from 1.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevocationListError {
    LineTooLong {
        line: usize,
        limit: usize,
    },
    TooManyEntries {
        line: usize,
        limit: usize,
    },
    NotUtf8 {
        line: usize,
    },
    /// Not a JSON object of the expected shape; `detail` is the JSON parser's explanation.
    InvalidJson {
        line: usize,
        detail: String,
    },
    NoKind {
        line: usize,
    },
    SeveralKinds {
        line: usize,
    },
    MissingNotBefore {
        line: usize,
        kind: &'static str,
    },
    UnexpectedNotBefore {
        line: usize,
        kind: &'static str,
    },
    EmptyId {
        line: usize,
    },
}

impl fmt::Display for RevocationListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevocationListError::LineTooLong { line, limit } => {
                write!(f, "line {line}: longer than {limit} bytes")
            }
            RevocationListError::TooManyEntries { line, limit } => {
                write!(f, "line {line}: more than {limit} entries")
            }
            RevocationListError::NotUtf8 { line } => write!(f, "line {line}: not valid UTF-8"),
            RevocationListError::InvalidJson { line, detail } => {
                write!(f, "line {line}: invalid revocation: {detail}")
            }
            RevocationListError::NoKind { line } => {
                write!(f, "line {line}: needs one of \"jti\", \"sid\", \"sub\", \"tenant\"")
            }
            RevocationListError::SeveralKinds { line } => write!(
                f,
                "line {line}: has more than one of \"jti\", \"sid\", \"sub\", \"tenant\" (one per line)"
            ),
            RevocationListError::MissingNotBefore { line, kind } => {
                write!(f, "line {line}: a \"{kind}\" revocation needs \"not_before\"")
            }
            RevocationListError::UnexpectedNotBefore { line, kind } => {
                write!(f, "line {line}: a \"{kind}\" revocation takes no \"not_before\"")
            }
            RevocationListError::EmptyId { line } => write!(f, "line {line}: the id is empty"),
        }
    }
}

impl std::error::Error for RevocationListError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    jti: Option<String>,
    sid: Option<String>,
    sub: Option<String>,
    tenant: Option<String>,
    not_before: Option<u64>,
    exp: Option<u64>,
}

/// Parses a whole revocation list.
pub fn parse_revocations(
    input: &[u8],
    limits: &RevocationLimits,
) -> Result<Vec<Revocation>, RevocationListError> {
    let mut out = Vec::new();
    for (index, raw) in input.split(|b| *b == b'\n').enumerate() {
        let line = index.saturating_add(1);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > limits.max_line_bytes {
            return Err(RevocationListError::LineTooLong {
                line,
                limit: limits.max_line_bytes,
            });
        }
        let text = std::str::from_utf8(raw).map_err(|_| RevocationListError::NotUtf8 { line })?;
        if text.trim().is_empty() {
            continue;
        }
        if out.len() >= limits.max_entries {
            return Err(RevocationListError::TooManyEntries {
                line,
                limit: limits.max_entries,
            });
        }
        out.push(parse_line(text, line)?);
    }
    Ok(out)
}

fn parse_line(text: &str, line: usize) -> Result<Revocation, RevocationListError> {
    let raw: RawLine =
        serde_json::from_str(text).map_err(|e| RevocationListError::InvalidJson {
            line,
            detail: e.to_string(),
        })?;
    let fields = RevocationFields {
        jti: raw.jti,
        sid: raw.sid,
        sub: raw.sub,
        tenant: raw.tenant,
        not_before: raw.not_before,
    };
    let target = target_from_fields(fields).map_err(|e| match e {
        TargetError::NoKind => RevocationListError::NoKind { line },
        TargetError::SeveralKinds => RevocationListError::SeveralKinds { line },
        TargetError::EmptyId => RevocationListError::EmptyId { line },
        TargetError::MissingNotBefore(kind) => RevocationListError::MissingNotBefore { line, kind },
        TargetError::UnexpectedNotBefore(kind) => {
            RevocationListError::UnexpectedNotBefore { line, kind }
        }
    })?;
    Ok(Revocation {
        target,
        exp: raw.exp,
    })
}

/// The fields of one revocation, as the JSON Lines list and the origin's API spell them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationFields {
    pub jti: Option<String>,
    pub sid: Option<String>,
    pub sub: Option<String>,
    pub tenant: Option<String>,
    pub not_before: Option<u64>,
}

/// Why fields do not name one revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    NoKind,
    SeveralKinds,
    EmptyId,
    /// `sub` and `tenant` need `not_before`.
    MissingNotBefore(&'static str),
    /// `jti` and `sid` take none.
    UnexpectedNotBefore(&'static str),
}

/// The one rule of what a revocation is, for the list and the origin's API alike: exactly one
/// of `jti`, `sid`, `sub`, `tenant`, not empty; `not_before` with `sub` and `tenant` only.
pub fn target_from_fields(f: RevocationFields) -> Result<RevocationTarget, TargetError> {
    let kinds = [&f.jti, &f.sid, &f.sub, &f.tenant];
    match kinds.iter().filter(|k| k.is_some()).count() {
        0 => return Err(TargetError::NoKind),
        1 => {}
        _ => return Err(TargetError::SeveralKinds),
    }
    if kinds.iter().any(|k| k.as_deref() == Some("")) {
        return Err(TargetError::EmptyId);
    }
    Ok(match (f.jti, f.sid, f.sub, f.tenant, f.not_before) {
        (Some(_), _, _, _, Some(_)) => return Err(TargetError::UnexpectedNotBefore("jti")),
        (_, Some(_), _, _, Some(_)) => return Err(TargetError::UnexpectedNotBefore("sid")),
        (Some(jti), _, _, _, None) => RevocationTarget::Jti(jti),
        (_, Some(sid), _, _, None) => RevocationTarget::Sid(sid),
        (_, _, Some(sub), _, Some(not_before)) => RevocationTarget::Subject { sub, not_before },
        (_, _, _, Some(tenant), Some(not_before)) => {
            RevocationTarget::Tenant { tenant, not_before }
        }
        (_, _, Some(_), _, None) => return Err(TargetError::MissingNotBefore("sub")),
        (_, _, _, Some(_), None) => return Err(TargetError::MissingNotBefore("tenant")),
        (None, None, None, None, _) => return Err(TargetError::NoKind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<Revocation>, RevocationListError> {
        parse_revocations(s.as_bytes(), &RevocationLimits::default())
    }

    #[test]
    fn every_kind_parses() {
        let list = parse(
            "{\"jti\":\"a\"}\n\n  \r\n{\"sid\":\"s\",\"exp\":5}\r\n{\"sub\":\"u\",\"not_before\":10}\n{\"tenant\":\"t\",\"not_before\":20}",
        )
        .unwrap();
        assert_eq!(
            list,
            vec![
                Revocation {
                    target: RevocationTarget::Jti("a".into()),
                    exp: None
                },
                Revocation {
                    target: RevocationTarget::Sid("s".into()),
                    exp: Some(5)
                },
                Revocation {
                    target: RevocationTarget::Subject {
                        sub: "u".into(),
                        not_before: 10
                    },
                    exp: None
                },
                Revocation {
                    target: RevocationTarget::Tenant {
                        tenant: "t".into(),
                        not_before: 20
                    },
                    exp: None
                },
            ]
        );
        assert!(list[1].is_live(5) && !list[1].is_live(6));
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let cases: &[(&str, RevocationListError)] = &[
            (
                "{\"jti\":\"a\"}\n{\"jti\":\"b\",\"x\":1}",
                RevocationListError::InvalidJson {
                    line: 2,
                    detail: String::new(),
                },
            ),
            ("{}", RevocationListError::NoKind { line: 1 }),
            ("{\"exp\":3}", RevocationListError::NoKind { line: 1 }),
            (
                "\n{\"jti\":\"a\",\"sid\":\"b\"}",
                RevocationListError::SeveralKinds { line: 2 },
            ),
            (
                "{\"sub\":\"a\"}",
                RevocationListError::MissingNotBefore {
                    line: 1,
                    kind: "sub",
                },
            ),
            (
                "{\"tenant\":\"a\"}",
                RevocationListError::MissingNotBefore {
                    line: 1,
                    kind: "tenant",
                },
            ),
            (
                "{\"jti\":\"a\",\"not_before\":1}",
                RevocationListError::UnexpectedNotBefore {
                    line: 1,
                    kind: "jti",
                },
            ),
            (
                "{\"sid\":\"a\",\"not_before\":1}",
                RevocationListError::UnexpectedNotBefore {
                    line: 1,
                    kind: "sid",
                },
            ),
            ("{\"jti\":\"\"}", RevocationListError::EmptyId { line: 1 }),
            (
                "{\"jti\":7}",
                RevocationListError::InvalidJson {
                    line: 1,
                    detail: String::new(),
                },
            ),
            (
                "{\"sub\":\"a\",\"not_before\":-1}",
                RevocationListError::InvalidJson {
                    line: 1,
                    detail: String::new(),
                },
            ),
            (
                "[1]",
                RevocationListError::InvalidJson {
                    line: 1,
                    detail: String::new(),
                },
            ),
            (
                "{\"jti\":\"a\"} {\"jti\":\"b\"}",
                RevocationListError::InvalidJson {
                    line: 1,
                    detail: String::new(),
                },
            ),
        ];
        for (input, expected) in cases {
            let err = parse(input).unwrap_err();
            match (&err, expected) {
                (
                    RevocationListError::InvalidJson { line, .. },
                    RevocationListError::InvalidJson { line: want, .. },
                ) => assert_eq!(line, want, "{input}"),
                _ => assert_eq!(&err, expected, "{input}"),
            }
            assert!(err.to_string().starts_with("line "), "{err}");
        }
    }

    #[test]
    fn limits_apply() {
        let limits = RevocationLimits {
            max_line_bytes: 20,
            max_entries: 2,
        };
        let long = format!("{{\"jti\":\"{}\"}}", "x".repeat(30));
        assert_eq!(
            parse_revocations(long.as_bytes(), &limits),
            Err(RevocationListError::LineTooLong { line: 1, limit: 20 })
        );
        let three = "{\"jti\":\"a\"}\n\n{\"jti\":\"b\"}\n{\"jti\":\"c\"}\n";
        assert_eq!(
            parse_revocations(three.as_bytes(), &limits),
            Err(RevocationListError::TooManyEntries { line: 4, limit: 2 })
        );
        assert_eq!(
            parse_revocations(b"{\"jti\":\"\xff\"}", &limits),
            Err(RevocationListError::NotUtf8 { line: 1 })
        );
    }
}

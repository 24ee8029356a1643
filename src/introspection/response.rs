//! Strict parsing of the RFC 7662 section 2.2 introspection answer.
//!
//! The answer decides whether a possibly revoked token is let through, so anything ambiguous is
//! an error: a status other than 200, anything but one JSON object, a repeated member (JSON
//! parsers disagree on which copy wins), a missing or non-boolean `active`, a member of the
//! wrong type. Members are read by the rules JWT claims follow too (crate::claims): JSON `null`
//! is the wrong type, not an absent member; numeric dates are non-negative seconds (a fraction,
//! which RFC 7519 allows, is dropped); `scope` is split on spaces.

use std::fmt;

use serde_json::{Map, Value};

use crate::claims;
use crate::json::{self, StrictJsonError};
use crate::reason::Reason;

/// Why an introspection call gave no usable answer. Every case denies or allows per the
/// route's failure policy with reason `introspection_failed`; none is the client's fault.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntrospectionError {
    /// The endpoint answered with this HTTP status instead of 200.
    Status(u16),
    /// No answer arrived: timeout, connection refused or reset (`HttpOutcome::Failed`).
    NoResponse,
    /// The body is larger than `max_response_bytes`.
    TooLarge,
    /// The body is not exactly one well-formed JSON value.
    NotJson,
    /// The body is JSON but not an object.
    NotAnObject,
    /// The required `active` member is absent.
    MissingActive,
    /// A known member has the wrong JSON type (or a date is negative or out of range).
    WrongType { field: &'static str },
    /// A top-level member appears twice; holds its name, cut to 64 characters.
    DuplicateMember(String),
}

impl IntrospectionError {
    /// The decision reason for every introspection failure.
    pub fn reason(&self) -> Reason {
        Reason::IntrospectionFailed
    }
}

impl fmt::Display for IntrospectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(
                f,
                "the introspection endpoint answered HTTP {status} instead of 200"
            ),
            Self::NoResponse => f.write_str(
                "the introspection endpoint did not answer (timeout, refused or reset connection)",
            ),
            Self::TooLarge => {
                f.write_str("the introspection answer exceeds the configured size limit")
            }
            Self::NotJson => {
                f.write_str("the introspection answer is not a single well-formed JSON value")
            }
            Self::NotAnObject => f.write_str("the introspection answer is JSON but not an object"),
            Self::MissingActive => {
                f.write_str("the introspection answer lacks the required \"active\" member")
            }
            Self::WrongType { field } => write!(
                f,
                "the introspection answer's \"{field}\" member must be {}",
                expected_type(field)
            ),
            // Escaped: the name is untrusted and must not forge log lines.
            Self::DuplicateMember(name) => write!(
                f,
                "the introspection answer repeats the member \"{}\"",
                name.escape_debug()
            ),
        }
    }
}

impl std::error::Error for IntrospectionError {}

fn expected_type(field: &str) -> &'static str {
    match field {
        "active" => "a JSON boolean",
        "exp" | "iat" | "nbf" => "a non-negative integer (Unix seconds)",
        "scope" => "a string of space-separated scopes",
        "aud" => "a string or an array of strings",
        _ => "a string",
    }
}

/// A parsed introspection answer. When `active` is false every other field is empty: RFC 7662
/// says nothing else about an inactive token may be relied on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntrospectionAnswer {
    pub active: bool,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
    pub nbf: Option<u64>,
    pub scope: Vec<String>,
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub token_type: Option<String>,
    pub iss: Option<String>,
    pub aud: Vec<String>,
    pub jti: Option<String>,
    pub sid: Option<String>,
    /// Every other top-level member, unvalidated.
    pub extra: Map<String, Value>,
}

impl IntrospectionAnswer {
    /// Active, and at `now` neither expired (`exp` is the first invalid second, as in JWT)
    /// nor not yet valid.
    pub fn is_active_at(&self, now: u64) -> bool {
        self.active && self.exp.is_none_or(|exp| now < exp) && self.nbf.is_none_or(|nbf| nbf <= now)
    }
}

/// Parses an answer. `max_bytes` bounds the body; it is checked before any parsing.
pub fn parse_response(
    status: u16,
    body: &[u8],
    max_bytes: usize,
) -> Result<IntrospectionAnswer, IntrospectionError> {
    if status != 200 {
        return Err(IntrospectionError::Status(status));
    }
    if body.len() > max_bytes {
        return Err(IntrospectionError::TooLarge);
    }
    let members = parse_unique_object(body)?;
    answer_from_members(members)
}

/// One JSON object, nothing after it, no member name twice.
fn parse_unique_object(body: &[u8]) -> Result<Map<String, Value>, IntrospectionError> {
    json::parse_object(body).map_err(|e| match e {
        StrictJsonError::NotJson => IntrospectionError::NotJson,
        StrictJsonError::NotAnObject => IntrospectionError::NotAnObject,
        StrictJsonError::DuplicateMember(name) => IntrospectionError::DuplicateMember(name),
    })
}

fn answer_from_members(
    mut members: Map<String, Value>,
) -> Result<IntrospectionAnswer, IntrospectionError> {
    let active = match members.remove("active") {
        None => return Err(IntrospectionError::MissingActive),
        Some(Value::Bool(active)) => active,
        Some(_) => return Err(IntrospectionError::WrongType { field: "active" }),
    };
    if !active {
        return Ok(IntrospectionAnswer::default());
    }
    Ok(IntrospectionAnswer {
        active,
        exp: take_date(&mut members, "exp")?,
        iat: take_date(&mut members, "iat")?,
        nbf: take_date(&mut members, "nbf")?,
        scope: take_scope(&mut members)?,
        sub: take_string(&mut members, "sub")?,
        client_id: take_string(&mut members, "client_id")?,
        username: take_string(&mut members, "username")?,
        token_type: take_string(&mut members, "token_type")?,
        iss: take_string(&mut members, "iss")?,
        aud: take_audience(&mut members)?,
        jti: take_string(&mut members, "jti")?,
        sid: take_string(&mut members, "sid")?,
        extra: members,
    })
}

fn take_date(
    members: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<u64>, IntrospectionError> {
    claims::date(members.remove(field).as_ref())
        .map_err(|_| IntrospectionError::WrongType { field })
}

fn take_string(
    members: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, IntrospectionError> {
    claims::string(members.remove(field).as_ref())
        .map_err(|_| IntrospectionError::WrongType { field })
}

fn take_scope(members: &mut Map<String, Value>) -> Result<Vec<String>, IntrospectionError> {
    claims::scope(members.remove("scope").as_ref())
        .map_err(|_| IntrospectionError::WrongType { field: "scope" })
}

fn take_audience(members: &mut Map<String, Value>) -> Result<Vec<String>, IntrospectionError> {
    claims::audience(members.remove("aud").as_ref())
        .map_err(|_| IntrospectionError::WrongType { field: "aud" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 16 * 1024;

    fn parse(body: &str) -> Result<IntrospectionAnswer, IntrospectionError> {
        parse_response(200, body.as_bytes(), LIMIT)
    }

    #[test]
    fn rfc7662_example_answer() {
        // RFC 7662 section 2.2, plus a member the RFC does not define.
        let answer = parse(
            r#"{
              "active": true,
              "client_id": "l238j323ds-23ij4",
              "username": "jdoe",
              "scope": "read write dolphin",
              "sub": "Z5O3upPC88QrAjx00dis",
              "aud": "https://protected.example.net/resource",
              "iss": "https://server.example.com/",
              "exp": 1419356238,
              "iat": 1419350238,
              "extension_field": "twenty-seven"
            }"#,
        )
        .unwrap();
        assert!(answer.active);
        assert_eq!(answer.client_id.as_deref(), Some("l238j323ds-23ij4"));
        assert_eq!(answer.username.as_deref(), Some("jdoe"));
        assert_eq!(answer.scope, ["read", "write", "dolphin"]);
        assert_eq!(answer.sub.as_deref(), Some("Z5O3upPC88QrAjx00dis"));
        assert_eq!(answer.aud, ["https://protected.example.net/resource"]);
        assert_eq!(answer.iss.as_deref(), Some("https://server.example.com/"));
        assert_eq!(answer.exp, Some(1419356238));
        assert_eq!(answer.iat, Some(1419350238));
        assert_eq!(answer.nbf, None);
        assert_eq!(answer.extra.len(), 1);
        assert_eq!(answer.extra["extension_field"], "twenty-seven");
        assert!(answer.is_active_at(1419350238));
        assert!(answer.is_active_at(1419356237));
        assert!(!answer.is_active_at(1419356238));
    }

    #[test]
    fn all_known_members() {
        let answer = parse(
            r#"{"active":true,"nbf":10,"jti":"j1","sid":"s1","token_type":"Bearer",
                "aud":["a","b"],"scope":"  x  y "}"#,
        )
        .unwrap();
        assert_eq!(answer.nbf, Some(10));
        assert_eq!(answer.jti.as_deref(), Some("j1"));
        assert_eq!(answer.sid.as_deref(), Some("s1"));
        assert_eq!(answer.token_type.as_deref(), Some("Bearer"));
        assert_eq!(answer.aud, ["a", "b"]);
        assert_eq!(answer.scope, ["x", "y"]);
        assert_eq!(answer.exp, None);
        assert_eq!(answer.username, None);
        assert!(answer.extra.is_empty());
        assert!(!answer.is_active_at(9));
        assert!(answer.is_active_at(10));
    }

    #[test]
    fn inactive_ignores_everything_else() {
        let inactive = IntrospectionAnswer::default();
        assert_eq!(parse(r#"{"active":false}"#).unwrap(), inactive);
        // Wrong types and unknown members are not even looked at.
        assert_eq!(
            parse(r#"{"active":false,"exp":"soon","scope":7,"aud":{},"x":1}"#).unwrap(),
            inactive
        );
        assert!(!inactive.is_active_at(0));
    }

    #[test]
    fn active_must_be_present_and_boolean() {
        assert_eq!(parse("{}"), Err(IntrospectionError::MissingActive));
        assert_eq!(
            parse(r#"{"scope":"a"}"#),
            Err(IntrospectionError::MissingActive)
        );
        for bad in [r#""true""#, "1", "0", "null", "[true]", "{}", r#""false""#] {
            assert_eq!(
                parse(&format!(r#"{{"active":{bad}}}"#)),
                Err(IntrospectionError::WrongType { field: "active" }),
                "{bad}"
            );
        }
    }

    #[test]
    fn each_wrong_type_is_refused() {
        let cases: &[(&str, &str)] = &[
            ("exp", r#""1419356238""#),
            ("exp", "-1"),
            ("exp", "1e300"),
            ("exp", "true"),
            ("iat", "[1]"),
            ("iat", "-0.5"),
            ("nbf", r#"{"t":1}"#),
            ("scope", r#"["read","write"]"#),
            ("scope", "1"),
            ("sub", "42"),
            ("client_id", "true"),
            ("username", "[]"),
            ("token_type", "{}"),
            ("iss", "1.0"),
            ("aud", "1"),
            ("aud", r#"["a",1]"#),
            ("aud", r#"["a",null]"#),
            ("aud", "{}"),
            ("jti", "false"),
            ("sid", "[\"s\"]"),
            // `null` is not an absent member (the rule JWT claims follow: crate::claims).
            ("exp", "null"),
            ("nbf", "null"),
            ("scope", "null"),
            ("username", "null"),
            ("aud", "null"),
            ("iss", "null"),
        ];
        for (field, value) in cases {
            let body = format!(r#"{{"active":true,"{field}":{value}}}"#);
            match parse(&body) {
                Err(IntrospectionError::WrongType { field: f }) => assert_eq!(f, *field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn dates_accept_integral_floats_and_large_integers() {
        let answer = parse(r#"{"active":true,"exp":1419356238.0,"iat":1.4e9,"nbf":0}"#).unwrap();
        assert_eq!(answer.exp, Some(1419356238));
        assert_eq!(answer.iat, Some(1_400_000_000));
        assert_eq!(answer.nbf, Some(0));
        let answer = parse(r#"{"active":true,"exp":18446744073709551615}"#).unwrap();
        assert_eq!(answer.exp, Some(u64::MAX));
        assert_eq!(
            parse(r#"{"active":true,"exp":18446744073709551616}"#),
            Err(IntrospectionError::WrongType { field: "exp" })
        );
    }

    #[test]
    fn duplicates_are_refused() {
        for body in [
            r#"{"active":false,"active":true}"#,
            r#"{"active":true,"active":false}"#,
            r#"{"active":true,"active":true}"#,
        ] {
            assert_eq!(
                parse(body),
                Err(IntrospectionError::DuplicateMember("active".to_owned()))
            );
        }
        assert_eq!(
            parse(r#"{"active":true,"sub":"a","exp":1,"sub":"b"}"#),
            Err(IntrospectionError::DuplicateMember("sub".to_owned()))
        );
        // Escaped names are compared after unescaping.
        assert_eq!(
            parse(r#"{"active":true,"\u0061ctive":false}"#),
            Err(IntrospectionError::DuplicateMember("active".to_owned()))
        );
        // Even when inactive, and for unknown members.
        assert_eq!(
            parse(r#"{"active":false,"x":1,"x":2}"#),
            Err(IntrospectionError::DuplicateMember("x".to_owned()))
        );
    }

    #[test]
    fn duplicate_name_is_cut_and_escaped_in_messages() {
        let name = format!("{}\n", "n".repeat(200));
        let body = format!(
            r#"{{"active":true,"{0}":1,"{0}":2}}"#,
            name.replace('\n', "\\n")
        );
        let err = parse(&body).unwrap_err();
        let IntrospectionError::DuplicateMember(kept) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(kept.chars().count(), 64);
        let err = parse(r#"{"a\nb":1,"a\nb":2}"#).unwrap_err();
        assert!(!err.to_string().contains('\n'));
        assert!(err.to_string().contains("a\\nb"));
    }

    #[test]
    fn size_limit_is_inclusive() {
        let body = br#"{"active":false}"#;
        assert!(parse_response(200, body, body.len()).is_ok());
        assert_eq!(
            parse_response(200, body, body.len() - 1),
            Err(IntrospectionError::TooLarge)
        );
        assert_eq!(
            parse_response(200, b"", 0),
            Err(IntrospectionError::NotJson)
        );
    }

    #[test]
    fn not_json_and_not_objects() {
        for body in [
            "",
            " ",
            "{",
            r#"{"active":true"#,
            r#"{"active":true,}"#,
            "{'active':true}",
            r#"{"active":true} {"active":false}"#,
            r#"{"active":true}x"#,
            r#"{"active":true}]"#,
            "\u{feff}{\"active\":true}",
            "active=true",
        ] {
            assert_eq!(parse(body), Err(IntrospectionError::NotJson), "{body:?}");
        }
        assert_eq!(
            parse_response(200, b"{\"active\":true,\"sub\":\"\xff\"}", LIMIT),
            Err(IntrospectionError::NotJson)
        );
        for body in ["true", "null", "[]", r#"[{"active":true}]"#, r#""{}""#, "1"] {
            assert_eq!(parse(body), Err(IntrospectionError::NotAnObject), "{body}");
        }
        // Surrounding whitespace is part of JSON.
        assert!(parse(" \n{\"active\":false}\r\n ").is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = format!(
            r#"{{"active":true,"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse_response(200, body.as_bytes(), usize::MAX),
            Err(IntrospectionError::NotJson)
        );
    }

    #[test]
    fn status_must_be_200() {
        for status in [0, 199, 201, 204, 301, 400, 401, 403, 404, 500, 503, 65535] {
            assert_eq!(
                parse_response(status, br#"{"active":true}"#, LIMIT),
                Err(IntrospectionError::Status(status))
            );
        }
    }

    #[test]
    fn every_error_explains_itself_and_maps_to_introspection_failed() {
        let errors = [
            IntrospectionError::Status(401),
            IntrospectionError::NoResponse,
            IntrospectionError::TooLarge,
            IntrospectionError::NotJson,
            IntrospectionError::NotAnObject,
            IntrospectionError::MissingActive,
            IntrospectionError::WrongType { field: "exp" },
            IntrospectionError::DuplicateMember("active".to_owned()),
        ];
        for err in &errors {
            assert!(err.to_string().starts_with("the introspection"), "{err}");
            assert_eq!(err.reason(), Reason::IntrospectionFailed);
        }
        assert!(errors[0].to_string().contains("401"));
        assert!(errors[6].to_string().contains("non-negative integer"));
    }
}

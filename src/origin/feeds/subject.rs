//! Subject identifiers of Security Event Tokens (RFC 9493; SSF 1.0 `sub_id`, and the older
//! per-event `subject` member) turned into what a revocation can name: a session (`sid`), a
//! user (`sub`) or a tenant.
//!
//! Formats: `opaque` (`id`), `iss_sub` (`sub`; its `iss` is the token issuer's and not
//! checked here: the snapshot names a `sub` for every issuer), `email` (only where the
//! transmitter is configured with `email_is_sub`), and `complex` with `user`, `session` and
//! `tenant` members, each a simple identifier. Older drafts spell the format `subject_type`
//! and `iss-sub`: both are read. Other formats (phone numbers, DIDs, URIs, ...) cannot name
//! anything a token carries and are refused.

use serde_json::{Map, Value};

use super::FeedError;

/// What a subject names, most specific first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub session: Option<String>,
    pub user: Option<String>,
    pub tenant: Option<String>,
}

fn bad(what: String) -> FeedError {
    FeedError::Invalid(what)
}

fn member<'a>(obj: &'a Map<String, Value>, name: &str, at: &str) -> Result<&'a str, FeedError> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(bad(format!("{at}.{name} must be a non-empty string"))),
        None => Err(bad(format!("{at} has no {name}"))),
    }
}

fn format_of(obj: &Map<String, Value>, at: &str) -> Result<String, FeedError> {
    let format = match (obj.get("format"), obj.get("subject_type")) {
        (Some(Value::String(f)), _) | (None, Some(Value::String(f))) => f,
        (None, None) => return Err(bad(format!("{at} has no format"))),
        _ => return Err(bad(format!("{at}.format must be a string"))),
    };
    Ok(format.replace('-', "_"))
}

/// A simple identifier: the value it names.
fn simple(value: &Value, at: &str, email_is_sub: bool) -> Result<String, FeedError> {
    let Value::Object(obj) = value else {
        return Err(bad(format!("{at} is not a JSON object")));
    };
    match format_of(obj, at)?.as_str() {
        "opaque" => Ok(member(obj, "id", at)?.to_string()),
        "iss_sub" => {
            member(obj, "iss", at)?;
            Ok(member(obj, "sub", at)?.to_string())
        }
        "email" if email_is_sub => Ok(member(obj, "email", at)?.to_string()),
        "email" => Err(bad(format!(
            "{at}: email subjects are not mapped for this transmitter (email_is_sub)"
        ))),
        other => Err(bad(format!(
            "{at}: subject format {:?} is not supported",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

/// Parses a subject identifier found at `at` (for error messages).
pub fn parse(value: &Value, at: &str, email_is_sub: bool) -> Result<Subject, FeedError> {
    let Value::Object(obj) = value else {
        return Err(bad(format!("{at} is not a JSON object")));
    };
    if format_of(obj, at)? != "complex" {
        return Ok(Subject {
            user: Some(simple(value, at, email_is_sub)?),
            ..Subject::default()
        });
    }
    let part = |name: &str| -> Result<Option<String>, FeedError> {
        obj.get(name)
            .map(|v| simple(v, &format!("{at}.{name}"), email_is_sub))
            .transpose()
    };
    let subject = Subject {
        session: part("session")?,
        user: part("user")?,
        tenant: part("tenant")?,
    };
    if subject == Subject::default() {
        return Err(bad(format!(
            "{at}: a complex subject needs a user, session or tenant"
        )));
    }
    Ok(subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<Subject, FeedError> {
        parse(&v, "sub_id", false)
    }

    #[test]
    fn formats() {
        assert_eq!(
            p(json!({"format": "opaque", "id": "u1"}))
                .unwrap()
                .user
                .as_deref(),
            Some("u1")
        );
        assert_eq!(
            p(json!({"format": "iss_sub", "iss": "https://i", "sub": "u2"}))
                .unwrap()
                .user
                .as_deref(),
            Some("u2")
        );
        assert_eq!(
            p(json!({"subject_type": "iss-sub", "iss": "https://i", "sub": "u3"}))
                .unwrap()
                .user
                .as_deref(),
            Some("u3")
        );
        assert!(p(json!({"format": "email", "email": "a@b"})).is_err());
        assert_eq!(
            parse(&json!({"format": "email", "email": "a@b"}), "s", true)
                .unwrap()
                .user
                .as_deref(),
            Some("a@b")
        );
        let c = p(json!({"format": "complex",
            "user": {"format": "iss_sub", "iss": "https://i", "sub": "u"},
            "session": {"format": "opaque", "id": "s"},
            "tenant": {"format": "opaque", "id": "t"}}))
        .unwrap();
        assert_eq!(
            c,
            Subject {
                session: Some("s".into()),
                user: Some("u".into()),
                tenant: Some("t".into())
            }
        );
        for bad in [
            json!("u"),
            json!({"id": "u"}),
            json!({"format": "phone_number", "phone_number": "+1"}),
            json!({"format": "opaque", "id": ""}),
            json!({"format": "opaque", "id": 5}),
            json!({"format": "complex"}),
            json!({"format": "complex", "user": {"format": "complex", "user": {}}}),
        ] {
            assert!(p(bad.clone()).is_err(), "{bad}");
        }
    }
}

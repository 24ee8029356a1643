//! How a claim's JSON value is read, the same whether a JWT payload (crate::jwt) or an
//! introspection answer (crate::introspection, RFC 7662) carries it. Each reader takes the
//! member as found (`None`: absent) and gives its value, or [`WrongType`], which the caller turns
//! into its own error (a malformed token, an unusable introspection answer).
//!
//! Where the two parsers used to differ, the stricter rule is the one kept:
//! - `null` is a value of the wrong type, not an absent member (a member that is there says
//!   something; an issuer that means "absent" leaves it out).
//! - A date (RFC 7519 NumericDate) is a non-negative number of seconds: an integer, or a float
//!   up to 2^53 (where floats stop being exact). RFC 7519 section 2 allows non-integer values,
//!   so a fraction is accepted and dropped: sub-second precision is far below the clock skew
//!   every time check tolerates.
//! - `scope` is one string of scopes separated by spaces (RFC 6749 section 3.3: U+0020 only;
//!   repeated, leading and trailing spaces are tolerated). A tab or line break is part of a
//!   scope, so such a scope matches nothing.
//! - `scp` (JWT profiles that list scopes) is such a string or an array of strings.
//! - `aud` is one string or an array of strings (RFC 7519 section 4.1.3).

use serde_json::Value;

/// The member is there but its value is not of the claim's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongType;

/// The largest float that still holds every smaller integer exactly (2^53).
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// A string claim (`iss`, `sub`, `jti`, `client_id`, ...).
pub fn string(value: Option<&Value>) -> Result<Option<String>, WrongType> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(WrongType),
    }
}

/// A date in Unix seconds (`exp`, `nbf`, `iat`, `auth_time`).
pub fn date(value: Option<&Value>) -> Result<Option<u64>, WrongType> {
    let Some(value) = value else {
        return Ok(None);
    };
    let number = value.as_number().ok_or(WrongType)?;
    if let Some(seconds) = number.as_u64() {
        return Ok(Some(seconds));
    }
    match number.as_f64() {
        // In range, so the truncation only drops the fraction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f) if (0.0..=MAX_EXACT_FLOAT).contains(&f) => Ok(Some(f.trunc() as u64)),
        _ => Err(WrongType),
    }
}

/// `aud`: one audience, or an array of them.
pub fn audience(value: Option<&Value>) -> Result<Vec<String>, WrongType> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(items)) => strings(items),
        Some(_) => Err(WrongType),
    }
}

/// `scope`: a string of space-separated scopes.
pub fn scope(value: Option<&Value>) -> Result<Vec<String>, WrongType> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(scope)) => Ok(split_scope(scope)),
        Some(_) => Err(WrongType),
    }
}

/// `scp`: a string of space-separated scopes, or an array of scopes.
pub fn scope_list(value: Option<&Value>) -> Result<Vec<String>, WrongType> {
    match value {
        Some(Value::Array(items)) => strings(items),
        other => scope(other),
    }
}

/// RFC 6749 section 3.3: `scope = scope-token *( SP scope-token )`.
pub fn split_scope(scope: &str) -> Vec<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn strings(items: &[Value]) -> Result<Vec<String>, WrongType> {
    items
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or(WrongType))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<T>(
        f: fn(Option<&Value>) -> Result<T, WrongType>,
        value: Value,
    ) -> Result<T, WrongType> {
        f(Some(&value))
    }

    #[test]
    fn absent_is_empty_and_null_is_the_wrong_type() {
        assert_eq!(string(None), Ok(None));
        assert_eq!(date(None), Ok(None));
        assert_eq!(audience(None), Ok(vec![]));
        assert_eq!(scope(None), Ok(vec![]));
        assert_eq!(scope_list(None), Ok(vec![]));
        assert_eq!(read(string, Value::Null), Err(WrongType));
        assert_eq!(read(date, Value::Null), Err(WrongType));
        assert_eq!(read(audience, Value::Null), Err(WrongType));
        assert_eq!(read(scope, Value::Null), Err(WrongType));
        assert_eq!(read(scope_list, Value::Null), Err(WrongType));
    }

    #[test]
    fn dates_are_non_negative_seconds_and_fractions_are_dropped() {
        assert_eq!(read(date, json!(0)), Ok(Some(0)));
        assert_eq!(read(date, json!(1419356238)), Ok(Some(1419356238)));
        assert_eq!(read(date, json!(1419356238.0)), Ok(Some(1419356238)));
        assert_eq!(read(date, json!(1.4e9)), Ok(Some(1_400_000_000)));
        assert_eq!(read(date, json!(u64::MAX)), Ok(Some(u64::MAX)));
        assert_eq!(
            read(date, json!(9_007_199_254_740_992.0)),
            Ok(Some(1 << 53))
        );
        assert_eq!(read(date, json!(1.5)), Ok(Some(1)));
        assert_eq!(read(date, json!(1419356238.9)), Ok(Some(1419356238)));
        for bad in [
            json!(-1),
            json!(-0.5),
            json!(1e300),
            json!(18446744073709551616.0),
            json!("1419356238"),
            json!(true),
            json!([1]),
            json!({"t": 1}),
        ] {
            assert_eq!(read(date, bad.clone()), Err(WrongType), "{bad}");
        }
    }

    #[test]
    fn scopes_are_split_on_spaces_only() {
        assert_eq!(
            read(scope, json!("  read  write ")),
            Ok(vec!["read".to_string(), "write".to_string()])
        );
        assert_eq!(read(scope, json!("")), Ok(vec![]));
        assert_eq!(read(scope, json!("a\tb")), Ok(vec!["a\tb".to_string()]));
        assert_eq!(read(scope, json!(["a", "b"])), Err(WrongType));
        assert_eq!(read(scope, json!(1)), Err(WrongType));
        assert_eq!(
            read(scope_list, json!(["a", "b"])),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            read(scope_list, json!("a b")),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(read(scope_list, json!(["a", 1])), Err(WrongType));
        assert_eq!(read(scope_list, json!({})), Err(WrongType));
    }

    #[test]
    fn audiences_and_strings() {
        assert_eq!(read(audience, json!("api")), Ok(vec!["api".to_string()]));
        assert_eq!(
            read(audience, json!(["a", "b"])),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(read(audience, json!([])), Ok(vec![]));
        for bad in [json!(1), json!(["a", 1]), json!(["a", null]), json!({})] {
            assert_eq!(read(audience, bad.clone()), Err(WrongType), "{bad}");
        }
        assert_eq!(read(string, json!("s")), Ok(Some("s".to_string())));
        for bad in [json!(42), json!(true), json!([]), json!({}), json!(1.0)] {
            assert_eq!(read(string, bad.clone()), Err(WrongType), "{bad}");
        }
    }
}

//! Strict JSON objects for untrusted input (token headers and payloads, introspection answers):
//! exactly one object, nothing after it, and no member name twice. serde_json's own maps keep
//! the last copy of a repeated name, so `{"active":false,"active":true}` would read differently
//! in different parsers; we refuse it instead.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Longest member name kept for an error message.
const MAX_NAME_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrictJsonError {
    NotJson,
    NotAnObject,
    /// The repeated name, cut to 64 characters (untrusted: escape it before logging).
    DuplicateMember(String),
}

/// Where [`parse_members`] puts an object's members: a map, or a structure that keeps some
/// members in fixed places (a token's payload, crate::jwt).
pub trait Members: Default {
    /// The member of this name, if there is one.
    fn member(&self, name: &str) -> Option<&Value>;
    /// Adds a member whose name is not there yet.
    fn insert(&mut self, name: Cow<'_, str>, value: Value);
}

impl Members for Map<String, Value> {
    fn member(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }

    fn insert(&mut self, name: Cow<'_, str>, value: Value) {
        Map::insert(self, name.into_owned(), value);
    }
}

/// Parses `bytes` as one JSON object with unique top-level member names.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    parse_members(bytes)
}

/// [`parse_object`] into any [`Members`]; names are borrowed from `bytes` while checked (a name
/// is copied only when kept, and only if it has escapes or goes into a map).
pub fn parse_members<M: Members>(bytes: &[u8]) -> Result<M, StrictJsonError> {
    let mut duplicate = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = UniqueMembers {
        duplicate: &mut duplicate,
        members: PhantomData,
    }
    .deserialize(&mut deserializer)
    .and_then(|members| deserializer.end().map(|()| members));
    match parsed {
        Ok(members) => Ok(members),
        Err(_) => Err(match duplicate {
            Some(name) => StrictJsonError::DuplicateMember(name),
            // Only failures are parsed twice, and callers bound the input size.
            None => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) if !value.is_object() => StrictJsonError::NotAnObject,
                _ => StrictJsonError::NotJson,
            },
        }),
    }
}

/// Collects an object's members, refusing a name seen before; records that name.
struct UniqueMembers<'a, M> {
    duplicate: &'a mut Option<String>,
    members: PhantomData<M>,
}

impl<'de, M: Members> DeserializeSeed<'de> for UniqueMembers<'_, M> {
    type Value = M;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, M: Members> Visitor<'de> for UniqueMembers<'_, M> {
    type Value = M;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut members = M::default();
        while let Some(name) = access.next_key_seed(Name)? {
            if members.member(&name).is_some() {
                *self.duplicate = Some(name.chars().take(MAX_NAME_CHARS).collect());
                return Err(de::Error::custom("duplicate member"));
            }
            let value = access.next_value::<Value>()?;
            members.insert(name, value);
        }
        Ok(members)
    }
}

/// A member name, borrowed from the input when it has no escapes.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }

    fn visit_string<E: de::Error>(self, name: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_trailing_bytes_and_non_objects() {
        assert_eq!(parse_object(br#"{"a":1,"b":2}"#).map(|m| m.len()), Ok(2));
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#),
            Err(StrictJsonError::DuplicateMember("a".into()))
        );
        assert_eq!(
            parse_object(br#"{"\u0061":1,"a":2}"#),
            Err(StrictJsonError::DuplicateMember("a".into()))
        );
        assert_eq!(parse_object(br#"{"a":1} x"#), Err(StrictJsonError::NotJson));
        assert_eq!(parse_object(b"[1]"), Err(StrictJsonError::NotAnObject));
        assert_eq!(parse_object(b"\xff"), Err(StrictJsonError::NotJson));
        // Nested duplicates are not top-level members: kept (last wins), as JSON allows.
        assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_ok());
    }
}

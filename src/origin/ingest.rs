//! The body of `POST /v1/revocations`: one revocation object, or a JSON array of them (a
//! batch, committed all or nothing). Fields are those of the JSON Lines input plus an optional
//! event `id`, `reason` and `source`; unknown fields are refused and errors name the field.

use serde::Deserialize;

use super::error::OriginError;
use crate::snapshot::{
    target_from_fields, Revocation, RevocationFields, RevocationTarget, TargetError,
};

/// Longest id (jti, sid, sub, tenant) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// Longest event id, reason or source, in bytes.
pub const MAX_TEXT_BYTES: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRevocation {
    id: Option<String>,
    jti: Option<String>,
    sid: Option<String>,
    sub: Option<String>,
    tenant: Option<String>,
    not_before: Option<u64>,
    exp: Option<u64>,
    reason: Option<String>,
    source: Option<String>,
}

/// One validated revocation of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRevocation {
    /// The caller's event id, if any (idempotency: the same id with the same content is a
    /// no-op; with different content, a conflict).
    pub id: Option<String>,
    pub revocation: Revocation,
    pub reason: Option<String>,
    pub source: Option<String>,
}

impl NewRevocation {
    /// SHA-256 (hex) of the content, the event id excluded: what "the same revocation" means.
    pub fn fingerprint(&self) -> String {
        let (kind, value, not_before) = target_parts(&self.revocation.target);
        let canonical = serde_json::json!([
            kind,
            value,
            not_before,
            self.revocation.exp,
            self.reason,
            self.source
        ]);
        crate::wire::hex(&hmac_sha256::Hash::hash(canonical.to_string().as_bytes()))
    }
}

/// (kind, value, not_before) of a target, as stored.
pub fn target_parts(target: &RevocationTarget) -> (&'static str, &str, Option<u64>) {
    match target {
        RevocationTarget::Jti(v) => ("jti", v, None),
        RevocationTarget::Sid(v) => ("sid", v, None),
        RevocationTarget::Subject { sub, not_before } => ("sub", sub, Some(*not_before)),
        RevocationTarget::Tenant { tenant, not_before } => ("tenant", tenant, Some(*not_before)),
    }
}

/// The target from its stored parts.
pub fn target_from_parts(
    kind: &str,
    value: String,
    not_before: Option<u64>,
) -> Option<RevocationTarget> {
    Some(match (kind, not_before) {
        ("jti", None) => RevocationTarget::Jti(value),
        ("sid", None) => RevocationTarget::Sid(value),
        ("sub", Some(not_before)) => RevocationTarget::Subject {
            sub: value,
            not_before,
        },
        ("tenant", Some(not_before)) => RevocationTarget::Tenant {
            tenant: value,
            not_before,
        },
        _ => return None,
    })
}

/// Whether `id` is a usable event id or idempotency key: 1 to 256 of `A-Z a-z 0-9 . _ : -`.
pub fn valid_key(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TEXT_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Parses a request body.
pub fn parse_body(body: &[u8], max_batch: usize) -> Result<Vec<NewRevocation>, OriginError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| OriginError::InvalidJson(e.to_string()))?;
    match value {
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                return Err(OriginError::InvalidRevocation(
                    "the batch is empty".to_string(),
                ));
            }
            if items.len() > max_batch {
                return Err(OriginError::BatchTooLarge {
                    count: items.len(),
                    limit: max_batch,
                });
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(parse_one(item, &format!("[{i}]"))?);
            }
            check_unique_ids(&out)?;
            Ok(out)
        }
        serde_json::Value::Object(_) => Ok(vec![parse_one(value, "")?]),
        _ => Err(OriginError::InvalidRevocation(
            "the body must be a revocation object or an array of them".to_string(),
        )),
    }
}

fn check_unique_ids(items: &[NewRevocation]) -> Result<(), OriginError> {
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(id) = &item.id {
            if !seen.insert(id.as_str()) {
                return Err(OriginError::InvalidRevocation(format!(
                    "[{i}].id: {id:?} appears twice in the batch"
                )));
            }
        }
    }
    Ok(())
}

fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn parse_one(value: serde_json::Value, prefix: &str) -> Result<NewRevocation, OriginError> {
    let raw: RawRevocation = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}: ")
            }
        } else {
            format!("{}: ", field(prefix, &path))
        };
        OriginError::InvalidRevocation(format!("{at}{}", e.inner()))
    })?;
    let bad = |name: &str, what: &str| {
        OriginError::InvalidRevocation(format!("{}: {what}", field(prefix, name)))
    };
    let kinds = [
        ("jti", &raw.jti),
        ("sid", &raw.sid),
        ("sub", &raw.sub),
        ("tenant", &raw.tenant),
    ];
    let present: Vec<&str> = kinds
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect();
    if present.len() != 1 {
        let at = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}: ")
        };
        return Err(OriginError::InvalidRevocation(format!(
            "{at}needs exactly one of \"jti\", \"sid\", \"sub\", \"tenant\" (found {})",
            present.len()
        )));
    }
    for (name, v) in kinds {
        if let Some(v) = v {
            if v.is_empty() || v.len() > MAX_ID_BYTES {
                return Err(bad(name, &format!("must be 1 to {MAX_ID_BYTES} bytes")));
            }
        }
    }
    for (name, v) in [("reason", &raw.reason), ("source", &raw.source)] {
        if v.as_ref().is_some_and(|v| v.len() > MAX_TEXT_BYTES) {
            return Err(bad(name, &format!("longer than {MAX_TEXT_BYTES} bytes")));
        }
    }
    if let Some(id) = &raw.id {
        if !valid_key(id) {
            return Err(bad(
                "id",
                "must be 1 to 256 characters of A-Z a-z 0-9 . _ : -",
            ));
        }
    }
    let fields = RevocationFields {
        jti: raw.jti,
        sid: raw.sid,
        sub: raw.sub,
        tenant: raw.tenant,
        not_before: raw.not_before,
    };
    // Kinds and lengths were checked above, with the field named: what is left is not_before.
    let target = target_from_fields(fields).map_err(|e| match e {
        TargetError::MissingNotBefore(kind) => bad(
            "not_before",
            &format!("a \"{kind}\" revocation needs not_before"),
        ),
        TargetError::UnexpectedNotBefore(kind) => bad(
            "not_before",
            &format!("a \"{kind}\" revocation takes no not_before"),
        ),
        TargetError::NoKind | TargetError::SeveralKinds | TargetError::EmptyId => {
            OriginError::InvalidRevocation(
                "needs exactly one non-empty \"jti\", \"sid\", \"sub\" or \"tenant\"".to_string(),
            )
        }
    })?;
    Ok(NewRevocation {
        id: raw.id,
        revocation: Revocation {
            target,
            exp: raw.exp,
        },
        reason: raw.reason,
        source: raw.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse_body(body.as_bytes(), 3).unwrap_err() {
            OriginError::InvalidRevocation(d) | OriginError::InvalidJson(d) => d,
            other => other.code().to_string(),
        }
    }

    #[test]
    fn one_or_a_batch() {
        let one = parse_body(br#"{"jti":"a","reason":"leak","id":"e-1"}"#, 3).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id.as_deref(), Some("e-1"));
        let batch = parse_body(br#"[{"sid":"s"},{"sub":"u","not_before":5,"exp":9}]"#, 3).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].revocation.exp, Some(9));
        assert_ne!(batch[0].fingerprint(), batch[1].fingerprint());
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"[{"jti":"a"},{"jti":"b","x":1}]"#).contains("[1]"));
        assert!(err(r#"[{"jti":"a"},{"jti":"b","x":1}]"#).contains("unknown field"));
        assert!(err(r#"{"sub":"a","not_before":"x"}"#).starts_with("not_before"));
        assert!(err(r#"{"sub":"a"}"#).contains("needs not_before"));
        assert!(err(r#"{"jti":"a","sid":"b"}"#).contains("exactly one"));
        assert!(err(r#"{"jti":""}"#).starts_with("jti"));
        assert!(err(r#"[{"jti":"a","id":"x"},{"jti":"b","id":"x"}]"#).contains("twice"));
        assert!(err(r#"{"jti":"a","id":"a b"}"#).starts_with("id"));
        assert_eq!(
            err(r#"[{"jti":"a"},{"jti":"b"},{"jti":"c"},{"jti":"d"}]"#),
            "batch_too_large"
        );
        assert!(err("[]").contains("empty"));
        assert!(err("7").contains("object"));
        assert!(err("{").contains("EOF"));
    }
}

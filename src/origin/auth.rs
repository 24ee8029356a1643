//! API bearer tokens: only their SHA-256 is configured; a presented token is hashed and
//! compared in constant time with every configured hash. Tokens are never logged.

use axum::http::{header, HeaderMap};
use ct_codecs::{Base64UrlSafeNoPadding, Encoder};

use super::error::OriginError;

/// Starts every token `revguard origin token` prints (recognisable in secret scanners).
pub const TOKEN_PREFIX: &str = "rgo_";

/// SHA-256 of a token's text.
pub fn token_digest(token: &str) -> [u8; 32] {
    hmac_sha256::Hash::hash(token.as_bytes())
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

/// The name of the token that authenticates `headers`, or why none does.
pub fn authenticate<'a>(
    headers: &HeaderMap,
    tokens: &'a [(String, [u8; 32])],
) -> Result<&'a str, OriginError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(OriginError::MissingToken)?;
    let text = value.to_str().map_err(|_| OriginError::InvalidToken)?;
    let (scheme, token) = text.split_once(' ').ok_or(OriginError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(OriginError::MissingToken);
    }
    let digest = token_digest(token.trim());
    // Compare with every configured hash (no early exit), so timing says nothing about which.
    let mut found: Option<&'a str> = None;
    for (name, expected) in tokens {
        if ct_eq(&digest, expected) && found.is_none() {
            found = Some(name);
        }
    }
    found.ok_or(OriginError::InvalidToken)
}

/// A fresh random token and its SHA-256, lower-case hex.
pub fn new_token() -> Result<(String, String), String> {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).map_err(|e| format!("cannot get random bytes: {e}"))?;
    let text = Base64UrlSafeNoPadding::encode_to_string(raw)
        .map_err(|e| format!("cannot encode the token: {e}"))?;
    let token = format!("{TOKEN_PREFIX}{text}");
    let digest = crate::wire::hex(&token_digest(&token));
    Ok((token, digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_authenticate_by_hash() {
        let (token, hex) = new_token().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(hex.len(), 64);
        let tokens = vec![
            ("other".to_string(), [9u8; 32]),
            ("ops".to_string(), token_digest(&token)),
        ];
        let mut h = HeaderMap::new();
        assert_eq!(authenticate(&h, &tokens), Err(OriginError::MissingToken));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert_eq!(authenticate(&h, &tokens), Ok("ops"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(authenticate(&h, &tokens), Err(OriginError::InvalidToken));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(authenticate(&h, &tokens), Err(OriginError::MissingToken));
    }
}

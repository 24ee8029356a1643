//! Building the RFC 7662 section 2.1 introspection request.
//!
//! Pure: the result is a description of the HTTP call; adapters perform it. The client
//! authenticates per RFC 6749 section 2.3.1 (`client_secret_basic` by default, or
//! `client_secret_post`).

use std::fmt;

pub use crate::http::HttpRequest;

use crate::config::Endpoint;

use ct_codecs::{Base64, Encoder};

/// How the plugin authenticates to the introspection endpoint (RFC 6749 section 2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with form-urlencoded id and secret. Every server must
    /// support it, so it is the default.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the request body.
    Post,
}

/// Where and how to introspect. Values come from configuration, which validates them
/// (no control characters in `path` or `authority`).
#[derive(Clone, PartialEq, Eq)]
pub struct IntrospectionSettings {
    /// Where the call goes (upstream, path such as `/oauth2/introspect`, authority) and how
    /// long the host waits for an answer before the call counts as failed.
    pub endpoint: Endpoint,
    pub client_id: String,
    pub client_secret: String,
    pub auth: ClientAuth,
    /// The longest an active answer is reused (see `IntrospectionCache::put`).
    pub cache_ttl_secs: u64,
    /// How many answers the cache holds.
    pub cache_capacity: usize,
    /// Larger answers are refused unread (see `parse_response`).
    pub max_response_bytes: usize,
}

/// The secret never reaches a log through `{:?}`.
impl fmt::Debug for IntrospectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionSettings")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth", &self.auth)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("cache_capacity", &self.cache_capacity)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// The introspection call for `token`. `token_type_hint` is usually `Some("access_token")`.
pub fn build_request(
    settings: &IntrospectionSettings,
    token: &str,
    token_type_hint: Option<&str>,
) -> HttpRequest {
    let mut pairs: Vec<(&str, &str)> = vec![("token", token)];
    if let Some(hint) = token_type_hint {
        pairs.push(("token_type_hint", hint));
    }
    let mut headers = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), settings.endpoint.path().to_owned()),
        (
            ":authority".to_owned(),
            settings.endpoint.authority().to_owned(),
        ),
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("accept".to_owned(), "application/json".to_owned()),
    ];
    match settings.auth {
        ClientAuth::Basic => {
            // Encoding fails only when the length overflows `usize`, which no in-memory string
            // reaches; the call would then go without credentials and be refused (fail closed).
            if let Ok(value) = basic_authorization(&settings.client_id, &settings.client_secret) {
                headers.push(("authorization".to_owned(), value));
            }
        }
        ClientAuth::Post => {
            pairs.push(("client_id", &settings.client_id));
            pairs.push(("client_secret", &settings.client_secret));
        }
    }
    HttpRequest {
        upstream: settings.endpoint.upstream().to_owned(),
        headers,
        body: form_body(&pairs).into_bytes(),
        timeout_ms: settings.endpoint.timeout_ms(),
    }
}

/// RFC 6749 section 2.3.1: id and secret are form-urlencoded, then joined by ':' and base64ed.
fn basic_authorization(client_id: &str, client_secret: &str) -> Result<String, ct_codecs::Error> {
    let credentials = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    Ok(format!("Basic {}", Base64::encode_to_string(credentials)?))
}

/// `application/x-www-form-urlencoded` (RFC 6749 appendix B).
fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (name, value) in pairs {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(&form_encode(name));
        body.push('=');
        body.push_str(&form_encode(value));
    }
    body
}

fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(auth: ClientAuth) -> IntrospectionSettings {
        IntrospectionSettings {
            endpoint: Endpoint::new(
                "idp_cluster",
                "/oauth2/introspect",
                Some("idp.example.com"),
                250,
            )
            .unwrap(),
            client_id: "s6BhdRkqt3".to_owned(),
            client_secret: "7Fjfp0ZBr1KtDRbnfVdmIw".to_owned(),
            auth,
            cache_ttl_secs: 30,
            cache_capacity: 1000,
            max_response_bytes: 16384,
        }
    }

    fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn basic_request_has_exact_headers_and_body() {
        let request = build_request(
            &settings(ClientAuth::Basic),
            "mF_9.B5f-4.1JqM",
            Some("access_token"),
        );
        assert_eq!(request.upstream, "idp_cluster");
        assert_eq!(request.timeout_ms, 250);
        let expected: Vec<(String, String)> = [
            (":method", "POST"),
            (":path", "/oauth2/introspect"),
            (":authority", "idp.example.com"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
            // RFC 6749 section 2.3.1's own example credentials.
            (
                "authorization",
                "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3",
            ),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(request.headers, expected);
        assert_eq!(
            request.body,
            b"token=mF_9.B5f-4.1JqM&token_type_hint=access_token"
        );
    }

    #[test]
    fn post_auth_puts_credentials_in_the_body_only() {
        let request = build_request(&settings(ClientAuth::Post), "abc", Some("access_token"));
        assert_eq!(header(&request, "authorization"), None);
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            "token=abc&token_type_hint=access_token&client_id=s6BhdRkqt3&client_secret=7Fjfp0ZBr1KtDRbnfVdmIw"
        );
    }

    #[test]
    fn hint_is_optional() {
        let request = build_request(&settings(ClientAuth::Basic), "abc", None);
        assert_eq!(request.body, b"token=abc");
    }

    #[test]
    fn tricky_token_is_form_encoded() {
        let token = "a+b/c=d&token=evil %é\u{0}\n~*-._";
        let request = build_request(&settings(ClientAuth::Basic), token, Some("access_token"));
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            "token=a%2Bb%2Fc%3Dd%26token%3Devil+%25%C3%A9%00%0A%7E*-._&token_type_hint=access_token"
        );
    }

    #[test]
    fn tricky_secret_is_form_encoded_before_base64() {
        let mut s = settings(ClientAuth::Basic);
        s.client_id = "my client:1".to_owned();
        s.client_secret = "p@ss:w0rd/+=&é".to_owned();
        let request = build_request(&s, "t", None);
        let value = header(&request, "authorization").unwrap();
        let encoded = value.strip_prefix("Basic ").unwrap();
        let decoded =
            <ct_codecs::Base64 as ct_codecs::Decoder>::decode_to_vec(encoded, None).unwrap();
        assert_eq!(decoded, b"my+client%3A1:p%40ss%3Aw0rd%2F%2B%3D%26%C3%A9");
        // Exactly one raw ':' separates id and secret, so the server can split it.
        assert_eq!(decoded.iter().filter(|b| **b == b':').count(), 1);
        assert_eq!(
            value,
            "Basic bXkrY2xpZW50JTNBMTpwJTQwc3MlM0F3MHJkJTJGJTJCJTNEJTI2JUMzJUE5"
        );
    }

    #[test]
    fn post_credentials_are_form_encoded() {
        let mut s = settings(ClientAuth::Post);
        s.client_id = "id&x=1".to_owned();
        s.client_secret = "se cret+".to_owned();
        let request = build_request(&s, "t", None);
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            "token=t&client_id=id%26x%3D1&client_secret=se+cret%2B"
        );
    }

    #[test]
    fn debug_output_hides_secrets_and_token() {
        let s = settings(ClientAuth::Basic);
        let request = build_request(&s, "SECRET-TOKEN-VALUE", None);
        let shown = format!("{s:?} {request:?}");
        assert!(!shown.contains("7Fjfp0ZBr1KtDRbnfVdmIw"));
        assert!(!shown.contains("czZCaGRSa3F0"));
        assert!(!shown.contains("SECRET-TOKEN-VALUE"));
        assert!(shown.contains("authorization"));
    }
}

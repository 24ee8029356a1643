//! Introspection answers are untrusted bytes: parsing must never panic, and whatever parses
//! must go through the cache without breaking its bounds.

use revguard::config::Endpoint;
use revguard::introspection::{
    build_request, parse_response, Cached, ClientAuth, IntrospectionCache, IntrospectionSettings,
};

pub fn run(data: &[u8]) {
    let (head, body) = data.split_at(data.len().min(10));
    let byte = |i: usize| u64::from(head.get(i).copied().unwrap_or(0));
    let status = if byte(0) % 8 == 0 { 404 } else { 200 };
    let max_bytes = if byte(1) % 16 == 0 {
        body.len() / 2
    } else {
        64 * 1024
    };

    let Ok(answer) = parse_response(status, body, max_bytes) else {
        return;
    };
    assert!(answer.active || answer == Default::default());

    let now = byte(2) << 24 | byte(3) << 8 | byte(4);
    let ttl = byte(5);
    let token_exp = (byte(6) % 2 == 0).then(|| now.saturating_add(byte(7)).saturating_sub(8));
    let mut cache = IntrospectionCache::new(2);
    let key = revguard::token_cache::token_key("token");
    cache.put(key, answer.clone(), token_exp, ttl, now);
    for t in [now, now.saturating_add(ttl), now.saturating_add(byte(8))] {
        if let Some(Cached::Active(cached)) = cache.get(&key, t) {
            assert!(t < now.saturating_add(ttl));
            assert!(token_exp.is_none_or(|e| t < e));
            assert!(cached.exp.is_none_or(|e| t < e));
        }
    }
    assert!(cache.len() <= 2);

    let Ok(endpoint) = Endpoint::new("idp", "/introspect", Some("idp.example"), 100) else {
        return;
    };
    let settings = IntrospectionSettings {
        endpoint,
        client_id: answer.client_id.clone().unwrap_or_default(),
        client_secret: answer.sub.clone().unwrap_or_default(),
        auth: if byte(9) % 2 == 0 {
            ClientAuth::Basic
        } else {
            ClientAuth::Post
        },
        cache_ttl_secs: ttl,
        cache_capacity: 2,
        max_response_bytes: max_bytes,
    };
    let token = String::from_utf8_lossy(body);
    let request = build_request(&settings, &token, Some("access_token"));
    assert!(request.body.iter().all(|b| b.is_ascii_graphic()));
}

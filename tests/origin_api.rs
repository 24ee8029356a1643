//! The origin's HTTP API against the real binary on loopback: ingest -> publication -> what a
//! plugin decodes; un-revoking; idempotency; listing; conditional and held GETs; heartbeats;
//! expiry at compaction; bad input; the fleet view and metrics.
#![cfg(not(target_arch = "wasm32"))] // spawns the native binary and talks HTTP

mod origin_common;

use std::time::Duration;

use origin_common::{jti, now_secs, Setup};
use revguard::snapshot::{IdKind, TokenIds, Verdict};
use serde_json::json;

#[test]
fn an_ingested_revocation_reaches_the_plugin() {
    let s = Setup::new("origin_ingest", json!({}));
    let o = s.start();
    let keys = s.keys();
    let g0 = o.wait_generation(1);
    assert!(o.state(&keys).check(&jti("tok-1")) == Verdict::Clear);

    let a = o.post(r#"{"jti":"tok-1","reason":"leaked","source":"ops"}"#, &[]);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.json()["committed"], true);
    let g1 = o.wait_generation(g0 + 1);
    let state = o.state(&keys);
    assert_eq!(state.generation(), g1);
    assert_eq!(state.check(&jti("tok-1")), Verdict::Revoked(IdKind::Jti));

    let now = now_secs();
    let batch = json!([
        {"sid": "sess-1"},
        {"sub": "alice", "not_before": now},
        {"tenant": "acme", "not_before": now, "exp": now + 3600}
    ]);
    let a = o.post(&batch.to_string(), &[]);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.json()["revocations"].as_array().unwrap().len(), 3);
    o.wait_generation(g1 + 1);
    let state = o.state(&keys);
    let check = |ids: TokenIds<'_>| state.check(&ids);
    assert_eq!(
        check(TokenIds {
            sid: Some("sess-1"),
            ..TokenIds::default()
        }),
        Verdict::Revoked(IdKind::Sid)
    );
    assert_eq!(
        check(TokenIds {
            sub: Some("alice"),
            issued_at: Some(now - 10),
            ..TokenIds::default()
        }),
        Verdict::Revoked(IdKind::Subject)
    );
    assert_eq!(
        check(TokenIds {
            sub: Some("alice"),
            issued_at: Some(now + 10),
            ..TokenIds::default()
        }),
        Verdict::Clear
    );
    assert_eq!(
        check(TokenIds {
            tenant: Some("acme"),
            issued_at: Some(now - 10),
            ..TokenIds::default()
        }),
        Verdict::Revoked(IdKind::Tenant)
    );
    // The audit trail keeps reason, source and who committed it.
    let listed = o.list_all("&kind=jti");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["reason"], "leaked");
    assert_eq!(listed[0]["source"], "ops");
    assert_eq!(listed[0]["created_by"], "tests");
    assert!(
        !o.log_text().contains(origin_common::TOKEN),
        "a raw token was logged"
    );
}

#[test]
fn un_revoking_publishes_a_full_snapshot_without_the_entry() {
    let s = Setup::new("origin_unrevoke", json!({}));
    let o = s.start();
    let keys = s.keys();
    let a = o.post(r#"[{"jti":"a","id":"evt-a"},{"jti":"b"}]"#, &[]);
    assert_eq!(a.status, 201, "{a:?}");
    let g = o.wait_generation(2);
    assert_eq!(
        o.state(&keys).check(&jti("a")),
        Verdict::Revoked(IdKind::Jti)
    );

    let d = o.delete("/v1/revocations/evt-a?reason=mistake");
    assert_eq!(d.status, 200, "{d:?}");
    assert_eq!(d.json()["removed"]["removed"]["reason"], "mistake");
    let g2 = o.wait_generation(g + 1);
    // A full snapshot: the delta is gone, the snapshot is the newest generation.
    let snap = o.get("/revocations/snapshot", &[]);
    assert_eq!(
        snap.header("x-revguard-snapshot-generation"),
        Some(g2.to_string().as_str())
    );
    assert_eq!(o.get("/revocations/delta", &[]).status, 404);
    let state = o.state(&keys);
    assert_eq!(state.snapshot_generation(), g2);
    assert_eq!(state.check(&jti("a")), Verdict::Clear);
    assert_eq!(state.check(&jti("b")), Verdict::MaybeRevoked(IdKind::Jti));

    let removed = o.list_all("&state=removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["id"], "evt-a");
    assert_eq!(removed[0]["removed"]["by"], "tests");
    assert_eq!(o.list_all("").len(), 1);
    let again = o.delete("/v1/revocations/evt-a");
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "already_removed")
    );
    let missing = o.delete("/v1/revocations/nope");
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );
}

#[test]
fn idempotency_by_key_and_by_event_id() {
    let s = Setup::new("origin_idempotency", json!({}));
    let o = s.start();
    let first = o.post(r#"{"jti":"x"}"#, &[("idempotency-key", "req-1")]);
    assert_eq!(first.status, 201);
    let again = o.post(r#"{"jti":"x"}"#, &[("idempotency-key", "req-1")]);
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json(), first.json());
    assert_eq!(o.list_all("").len(), 1);
    let conflict = o.post(r#"{"jti":"y"}"#, &[("idempotency-key", "req-1")]);
    assert_eq!(
        (conflict.status, conflict.error_code().as_str()),
        (409, "idempotency_conflict")
    );

    let e1 = o.post(r#"{"id":"evt-1","jti":"z"}"#, &[]);
    assert_eq!(e1.json()["revocations"][0]["created"], true);
    let e2 = o.post(r#"{"id":"evt-1","jti":"z"}"#, &[]);
    assert_eq!(e2.status, 201);
    assert_eq!(e2.json()["revocations"][0]["created"], false);
    let e3 = o.post(r#"{"id":"evt-1","jti":"other"}"#, &[]);
    assert_eq!(
        (e3.status, e3.error_code().as_str()),
        (409, "idempotency_conflict")
    );
    // A batch with one conflicting event id commits nothing.
    let mixed = o.post(r#"[{"jti":"new-1"},{"id":"evt-1","jti":"other"}]"#, &[]);
    assert_eq!(mixed.status, 409);
    assert_eq!(o.list_all("").len(), 2);
}

#[test]
fn listing_filters_and_pages() {
    let s = Setup::new("origin_list", json!({}));
    let o = s.start();
    let mut batch = Vec::new();
    for i in 0..25 {
        let source = if i % 2 == 0 { "idp" } else { "ops" };
        if i % 5 == 0 {
            batch.push(json!({"sid": format!("s-{i}"), "source": source}));
        } else {
            batch.push(json!({"jti": format!("j-{i}"), "source": source}));
        }
    }
    assert_eq!(o.post(&json!(batch).to_string(), &[]).status, 201);
    assert_eq!(o.list_all("").len(), 25);
    assert_eq!(o.list_all("&kind=sid").len(), 5);
    assert_eq!(o.list_all("&source=idp").len(), 13);
    assert_eq!(o.list_all("&kind=jti&source=ops").len(), 10);
    let one = o.list_all("&value=j-7");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["kind"], "jti");
    assert_eq!(o.list_all(&format!("&since={}", now_secs() + 60)).len(), 0);
    assert_eq!(o.list_all(&format!("&since={}", now_secs() - 60)).len(), 25);
    // Paging: 10 + 10 + 5, in order, no duplicates.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let a = o.get_auth(&format!("/v1/revocations?limit=10{cursor}"));
        let v = a.json();
        pages += 1;
        for r in v["revocations"].as_array().unwrap() {
            seen.push(r["seq"].as_i64().unwrap());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen);
    assert_eq!(seen.len(), 25);
}

#[test]
fn conditional_gets_and_held_requests() {
    let s = Setup::new("origin_conditional", json!({"max_wait_secs": 30}));
    let o = s.start();
    let snap = o.get("/revocations/snapshot", &[]);
    assert_eq!(snap.status, 200);
    let etag = snap.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    assert!(snap.header("cache-control").unwrap().contains("s-maxage"));
    let again = o.get("/revocations/snapshot", &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert!(again.body.is_empty());

    // No delta yet: 404 with a validator to hold on.
    let none = o.get("/revocations/delta", &[]);
    assert_eq!(none.status, 404);
    assert_eq!(none.error_code(), "not_found");
    let none_tag = none.header("etag").unwrap().to_string();

    // A held request is answered by the next publication.
    let base = o.base.clone();
    let tag = none_tag.clone();
    let held = std::thread::spawn(move || {
        let agent = origin_common::agent();
        let mut r = agent
            .get(&format!("{base}/revocations/delta"))
            .header("if-none-match", &tag)
            .header("prefer", "wait=30")
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let applied = r
            .headers()
            .get("preference-applied")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.body_mut().read_to_vec().unwrap();
        (status, applied, body)
    });
    // Wait until the request is held (the gauge counts held requests).
    while !String::from_utf8(o.get("/metrics", &[]).body)
        .unwrap()
        .contains("revguard_origin_held_requests 1")
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let g = o.generation();
    assert_eq!(o.post(r#"{"jti":"held"}"#, &[]).status, 201);
    let (status, applied, body) = held.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(applied.as_deref(), Some("wait=30"));
    let mut state = o.state(&s.keys());
    assert!(state.generation() > g);
    state = {
        let snap = o.get("/revocations/snapshot", &[]);
        let mut st =
            revguard::snapshot::RevocationState::from_snapshot(&snap.body, &s.keys()).unwrap();
        st.apply_delta(&body, &s.keys()).unwrap();
        st
    };
    assert_eq!(state.check(&jti("held")), Verdict::Revoked(IdKind::Jti));

    // Nothing new within the wait: 304 (the wait is capped by max_wait_secs).
    let delta = o.get("/revocations/delta", &[]);
    let dtag = delta.header("etag").unwrap().to_string();
    let idle = o.get(
        "/revocations/delta",
        &[("if-none-match", &dtag), ("prefer", "wait=1")],
    );
    assert_eq!(idle.status, 304);
    assert_eq!(idle.header("cache-control"), Some("no-store"));
}

#[test]
fn an_idle_origin_keeps_re_signing() {
    let s = Setup::new(
        "origin_heartbeat",
        json!({"heartbeat_secs": 1, "max_age_secs": 4}),
    );
    let o = s.start();
    let g = o.wait_generation(1);
    let built = o.get("/healthz", &[]).json()["built_at"].as_u64().unwrap();
    let later = o.wait_generation(g + 2);
    assert!(later >= g + 2);
    let state = o.state(&s.keys());
    assert!(state.built_at() > built, "no newer build time");
    assert!(!state.is_stale(now_secs(), 120, 60));
    assert_eq!(o.get("/revocations/delta", &[]).status, 200);
}

#[test]
fn expired_entries_are_dropped_at_compaction() {
    let s = Setup::new("origin_expiry", json!({}));
    let o = s.start();
    let keys = s.keys();
    let exp = now_secs() + 4;
    let body = json!([{"jti": "short", "exp": exp}, {"jti": "keep"}, {"jti": "filler", "id": "f"}]);
    assert_eq!(o.post(&body.to_string(), &[]).status, 201);
    let g = o.wait_generation(2);
    assert_eq!(
        o.state(&keys).check(&jti("short")),
        Verdict::Revoked(IdKind::Jti)
    );
    while now_secs() <= exp + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Removing an entry forces a full snapshot: the expired entry is not in it.
    assert_eq!(o.delete("/v1/revocations/f").status, 200);
    let g2 = o.wait_generation(g + 1);
    let state = o.state(&keys);
    assert_eq!(state.snapshot_generation(), g2);
    assert_eq!(state.check(&jti("short")), Verdict::Clear);
    assert_eq!(
        state.check(&jti("keep")),
        Verdict::MaybeRevoked(IdKind::Jti)
    );
    // Still listed for the audit trail.
    assert_eq!(o.list_all("&value=short").len(), 1);
}

#[test]
fn bad_input_gets_a_clear_answer_and_changes_nothing() {
    let s = Setup::new(
        "origin_bad_input",
        json!({"max_body_bytes": 2048, "max_batch": 5}),
    );
    let o = s.start();
    assert_eq!(o.post(r#"{"jti":"existing"}"#, &[]).status, 201);
    let g = o.wait_generation(2);
    let count = o.list_all("").len();
    let auth = format!("Bearer {}", origin_common::TOKEN);
    let json_ct = ("content-type", "application/json");
    let big = format!(r#"{{"jti":"{}"}}"#, "x".repeat(4000));
    let six = json!([{"jti":"1"},{"jti":"2"},{"jti":"3"},{"jti":"4"},{"jti":"5"},{"jti":"6"}])
        .to_string();
    /// (name, headers, body, status, error code, text in the detail)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        String,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "no token",
            vec![json_ct],
            r#"{"jti":"a"}"#.into(),
            401,
            "missing_token",
            "",
        ),
        (
            "wrong token",
            vec![json_ct, ("authorization", "Bearer nope")],
            r#"{"jti":"a"}"#.into(),
            401,
            "invalid_token",
            "",
        ),
        (
            "malformed",
            vec![json_ct, ("authorization", &auth)],
            r#"{"jti":"#.into(),
            400,
            "invalid_json",
            "",
        ),
        (
            "unknown field",
            vec![json_ct, ("authorization", &auth)],
            r#"{"jti":"a","jit":"b"}"#.into(),
            422,
            "invalid_revocation",
            "jit",
        ),
        (
            "wrong type",
            vec![json_ct, ("authorization", &auth)],
            r#"[{"jti":"a"},{"sub":"u","not_before":"soon"}]"#.into(),
            422,
            "invalid_revocation",
            "[1].not_before",
        ),
        (
            "two kinds",
            vec![json_ct, ("authorization", &auth)],
            r#"{"jti":"a","sid":"b"}"#.into(),
            422,
            "invalid_revocation",
            "exactly one",
        ),
        (
            "missing not_before",
            vec![json_ct, ("authorization", &auth)],
            r#"{"tenant":"t"}"#.into(),
            422,
            "invalid_revocation",
            "not_before",
        ),
        (
            "empty batch",
            vec![json_ct, ("authorization", &auth)],
            "[]".into(),
            422,
            "invalid_revocation",
            "empty",
        ),
        (
            "not json",
            vec![("content-type", "text/plain"), ("authorization", &auth)],
            r#"{"jti":"a"}"#.into(),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            "oversized",
            vec![json_ct, ("authorization", &auth)],
            big,
            413,
            "body_too_large",
            "",
        ),
        (
            "batch too large",
            vec![json_ct, ("authorization", &auth)],
            six,
            413,
            "batch_too_large",
            "",
        ),
        (
            "bad idempotency key",
            vec![
                json_ct,
                ("authorization", &auth),
                ("idempotency-key", "a b"),
            ],
            r#"{"jti":"a"}"#.into(),
            400,
            "invalid_header",
            "",
        ),
    ];
    for (name, headers, body, status, code, detail) in cases {
        let a = o.post_raw(&body, &headers);
        assert_eq!(a.status, status, "{name}: {a:?}");
        let v = a.json();
        assert_eq!(v["error"], code, "{name}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains(detail),
            "{name}: {v}"
        );
        if status == 401 {
            assert!(
                a.header("www-authenticate").unwrap().starts_with("Bearer"),
                "{name}"
            );
        }
    }
    for (path, status, code) in [
        ("/v1/revocations?limit=0", 400, "invalid_query"),
        ("/v1/revocations?kind=email", 400, "invalid_query"),
        ("/v1/revocations?colour=red", 400, "invalid_query"),
    ] {
        let a = o.get_auth(path);
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (status, code),
            "{path}"
        );
    }
    for path in ["/v1/fleet", "/v1/revocations"] {
        let a = o.get(path, &[]);
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (401, "missing_token"),
            "{path}"
        );
    }
    assert_eq!(o.get("/nowhere", &[]).status, 404);
    assert_eq!(o.list_all("").len(), count);
    assert_eq!(o.generation(), g);
}

#[test]
fn the_fleet_view_and_metrics() {
    let s = Setup::new("origin_fleet", json!({"fleet_live_window_secs": 600}));
    let o = s.start();
    let g = o.wait_generation(1);
    let fetch = |node: &str, generation: u64| {
        let gen = generation.to_string();
        let a = o.get(
            "/revocations/snapshot",
            &[("x-revguard-node", node), ("x-revguard-generation", &gen)],
        );
        assert_eq!(a.status, 200);
    };
    fetch("gw-1", 0);
    fetch("gw-2", g);
    fetch(&"x".repeat(300), 0); // too long: not recorded
    assert_eq!(o.post(r#"{"jti":"f"}"#, &[]).status, 201);
    let g2 = o.wait_generation(g + 1);
    fetch("gw-1", g2);
    let view = o.fleet();
    assert_eq!(view["generation"], g2);
    assert_eq!(view["counts"]["seen"], 2);
    assert_eq!(view["counts"]["behind"], 1);
    let nodes = view["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["node"], "gw-1");
    assert_eq!(nodes[0]["generation"], g2);
    assert_eq!(nodes[1]["behind"], true);
    fetch("gw-2", g2);
    let view = o.fleet();
    assert_eq!(view["counts"]["behind"], 0);
    let published = view["published"].as_array().unwrap();
    let newest = published.iter().find(|p| p["generation"] == g2).unwrap();
    assert!(
        newest["reached_all_live_nodes_after_ms"].is_i64(),
        "{newest}"
    );
    assert!(newest["bytes"].as_u64().unwrap() > 0);

    let m = o.get("/metrics", &[]);
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    let generation_line = format!("revguard_origin_generation {g2}");
    for needle in [
        generation_line.as_str(),
        "revguard_origin_fleet_nodes_seen 2",
        "revguard_origin_fleet_nodes_behind 0",
        "revguard_origin_revocations_ingested_total 1",
        "revguard_origin_ingest_requests_total{outcome=\"ok\"} 1",
        "revguard_origin_generation_reached_fleet_seconds_count",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    let keys = o.get("/v1/keys", &[]).json();
    assert_eq!(keys["signing_key"], s.public_key);
}

#[test]
fn origin_token_prints_a_token_and_its_hash() {
    let out = origin_common::revguard(&["origin", "token", "--name", "ci"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap();
    let entry: serde_json::Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("api_tokens entry: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(entry["name"], "ci");
    assert_eq!(
        entry["sha256"],
        revguard::wire::hex(&revguard::origin::auth::token_digest(token))
    );
    // The entry works in a configuration.
    let s = Setup::new("origin_token", json!({"api_tokens": [entry]}));
    let o = s.start();
    let a = o.post_raw(
        r#"{"jti":"t"}"#,
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {token}")),
        ],
    );
    assert_eq!(a.status, 201, "{a:?}");
    assert!(!o.log_text().contains(token));
}

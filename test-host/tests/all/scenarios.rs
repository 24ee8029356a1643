//! revguard end to end: the real .wasm in Envoy- and Kong-like proxies, real ES256 tokens,
//! real signed snapshots, scripted origin and IdP.

use crate::rg::*;
use revguard::snapshot::RevocationTarget;
use revguard_test_host::{Engine, MetricValue, ProxyConfig};
use serde_json::json;
use std::time::Duration;

fn envoy(
    workers: usize,
    extra: serde_json::Value,
) -> (revguard_test_host::Proxy, Issuer, Origin, Idp) {
    envoy_on(Engine::preferred(), workers, extra)
}

/// An Envoy of `workers` VMs on `engine`, with its issuer, origin and IdP.
fn envoy_on(
    engine: Engine,
    workers: usize,
    extra: serde_json::Value,
) -> (revguard_test_host::Proxy, Issuer, Origin, Idp) {
    let issuer = Issuer::new(&["k1", "k2"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(ENVOY, &origin.public_key(), extra);
    let mut proxy_config = ProxyConfig::envoy();
    proxy_config.engine = engine;
    let proxy = start(proxy_config, workers, plugin, ENVOY, &origin, &idp);
    (proxy, issuer, origin, idp)
}

/// Several worker VMs sharing one origin fetch through shared data: on each engine.
#[test]
fn allows_a_valid_token_and_denies_a_revoked_one() {
    for engine in crate::fixture::both_engines() {
        eprintln!("{engine}");
        allows_a_valid_token_and_denies_a_revoked_one_on(engine);
    }
}

fn allows_a_valid_token_and_denies_a_revoked_one_on(engine: Engine) {
    let (mut proxy, issuer, origin, _idp) = envoy_on(engine, 2, json!({}));
    let good = issuer.token("k1", "alice", "t-1", None, T0);
    let answer = send(&mut proxy, 0, &good);
    assert_eq!(answer.verdict(), "allow", "{:?}", proxy.logs());
    assert_eq!(
        answer.forwarded.get("x-user").map(String::as_str),
        Some("alice")
    );
    assert_eq!(send(&mut proxy, 1, "garbage").verdict(), "malformed_token");
    origin.revoke(RevocationTarget::Subject {
        sub: "alice".into(),
        not_before: T0 + 1,
    });
    origin.publish_snapshot(T0 + 3);
    proxy.advance(Duration::from_secs(12)).unwrap();
    for worker in 0..2 {
        assert_eq!(send(&mut proxy, worker, &good).verdict(), "revoked_subject");
    }
    // Per-request counters are written at the next tick (issue 15: no metric hostcall per request).
    proxy.advance(Duration::from_millis(200)).unwrap();
    assert_eq!(
        proxy.guest_metric("revguard_deny_revoked_subject"),
        Some(MetricValue::Counter(2))
    );
}

/// Sends the same request on `worker` from `n` streams at once, then drives the clock.
pub(crate) fn concurrent(
    proxy: &mut revguard_test_host::Proxy,
    worker: usize,
    token: &str,
    n: usize,
) -> Vec<String> {
    let streams: Vec<_> = (0..n)
        .map(|_| {
            proxy
                .send_request(
                    worker,
                    revguard_test_host::HttpRequest::get("api", "/orders")
                        .header("authorization", format!("Bearer {token}")),
                )
                .unwrap()
        })
        .collect();
    proxy.advance(Duration::from_secs(1)).unwrap();
    streams
        .into_iter()
        .map(|s| {
            let outcome = proxy.outcome(s).unwrap();
            let verdict = match &outcome {
                revguard_test_host::Outcome::Continued(_) => "allow".to_string(),
                revguard_test_host::Outcome::LocalReply(r) => {
                    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["error"]
                        .as_str()
                        .unwrap()
                        .to_string()
                }
                other => format!("{other:?}"),
            };
            proxy
                .finish(s, revguard_test_host::HttpResponse::new(200))
                .unwrap();
            verdict
        })
        .collect()
}

#[test]
fn scenario_1_2_6_revoked_token_and_session_confirmed_once_and_cached() {
    let (mut gateway, issuer, origin, idp) = envoy(2, json!({}));
    // A second, downstream filter instance fed by the same origin.
    let mut downstream = start(
        ProxyConfig::envoy(),
        1,
        config(ENVOY, &origin.public_key(), json!({})),
        ENVOY,
        &origin,
        &idp,
    );
    let token = issuer.token("k1", "bob", "t-revoked", None, T0);
    let other = issuer.token("k1", "bob", "t-other", Some("s-1"), T0);
    let refreshed = issuer.token("k1", "bob", "t-refreshed", Some("s-1"), T0 + 2);
    assert_eq!(send(&mut gateway, 0, &token).verdict(), "allow");
    origin.revoke(RevocationTarget::Jti("t-revoked".into()));
    origin.revoke(RevocationTarget::Sid("s-1".into()));
    origin.publish_snapshot(T0 + 4);
    gateway.advance(Duration::from_secs(12)).unwrap();
    downstream.advance(Duration::from_secs(12)).unwrap();
    let calls = idp.calls();
    // Three concurrent requests with the flagged token share one callout.
    assert_eq!(concurrent(&mut gateway, 0, &token, 3), vec!["revoked"; 3]);
    assert_eq!(idp.calls(), calls + 1, "one callout per flagged token");
    assert_eq!(send(&mut gateway, 0, &token).verdict(), "revoked");
    assert_eq!(idp.calls(), calls + 1, "cached until exp");
    assert_eq!(send(&mut downstream, 0, &token).verdict(), "revoked");
    for t in [&other, &refreshed] {
        assert_eq!(send(&mut gateway, 1, t).verdict(), "revoked_session");
    }
    let denials: Vec<_> = gateway
        .logs()
        .into_iter()
        .filter(|l| l.message.contains("revguard.deny"))
        .collect();
    assert!(!denials.is_empty());
    for line in &denials {
        assert!(
            !line.message.contains(&token) && !line.message.contains(&other),
            "no raw token in logs"
        );
    }
}

#[test]
fn scenario_3_subject_not_before_drops_old_tokens_only() {
    let (mut proxy, issuer, origin, _idp) = envoy(1, json!({}));
    let old = issuer.token("k1", "carol", "c-1", None, T0 - 100);
    assert_eq!(send(&mut proxy, 0, &old).verdict(), "allow");
    origin.revoke(RevocationTarget::Subject {
        sub: "carol".into(),
        not_before: T0,
    });
    origin.publish_snapshot(T0 + 3);
    proxy.advance(Duration::from_secs(12)).unwrap();
    assert_eq!(send(&mut proxy, 0, &old).verdict(), "revoked_subject");
    let fresh = issuer.token("k1", "carol", "c-2", None, T0 + 10);
    assert_eq!(send(&mut proxy, 0, &fresh).verdict(), "allow");
}

#[test]
fn scenario_5_filter_hit_that_introspection_clears_is_allowed_and_cached() {
    let (mut proxy, issuer, origin, idp) = envoy(1, json!({}));
    let token = issuer.token("k1", "dave", "t-hit", None, T0);
    // From the filter's view a false positive: a filter hit the IdP calls active.
    origin.revoke(RevocationTarget::Jti("t-hit".into()));
    origin.publish_snapshot(T0 + 3);
    idp.set_active(&token, true);
    proxy.advance(Duration::from_secs(12)).unwrap();
    let calls = idp.calls();
    assert_eq!(send(&mut proxy, 0, &token).verdict(), "allow");
    assert_eq!(send(&mut proxy, 0, &token).verdict(), "allow");
    assert_eq!(idp.calls(), calls + 1, "no second callout");
    proxy.advance(Duration::from_millis(200)).unwrap();
    assert!(proxy
        .guest_metric("revguard_cache_introspection_hit")
        .is_some());
}

#[test]
fn scenario_7_idp_failures_follow_the_failure_mode() {
    for (mode, fail_mode, expected) in [
        (IdpMode::Down, "deny", "introspection_failed"),
        (IdpMode::Hang, "deny", "introspection_failed"),
        (IdpMode::Garbage, "deny", "introspection_failed"),
        (IdpMode::Error, "deny", "introspection_failed"),
        (IdpMode::Down, "allow", "allow"),
        (IdpMode::Hang, "allow", "allow"),
    ] {
        let (mut proxy, issuer, origin, idp) = envoy(
            1,
            json!({"failure_modes": {"introspection_failure": fail_mode}}),
        );
        let token = issuer.token("k1", "erin", "t-x", None, T0);
        origin.revoke(RevocationTarget::Jti("t-x".into()));
        origin.publish_snapshot(T0 + 3);
        proxy.advance(Duration::from_secs(12)).unwrap();
        idp.set_mode(mode, Duration::from_millis(10));
        assert_eq!(
            send(&mut proxy, 0, &token).verdict(),
            expected,
            "{mode:?} {fail_mode}"
        );
        assert!(proxy.healthy_workers() == vec![0], "no trap");
    }
}

#[test]
fn scenario_7_bad_origin_data_keeps_the_last_good_snapshot() {
    let (mut proxy, issuer, origin, _idp) = envoy(2, json!({}));
    let token = issuer.token("k1", "frank", "t-f", None, T0);
    let generation = |p: &revguard_test_host::Proxy| p.guest_metric("revguard_snapshot_generation");
    let before = generation(&proxy);
    for mode in [OriginMode::Down, OriginMode::Garbage, OriginMode::Hang] {
        origin.set_mode(mode);
        proxy.advance(Duration::from_secs(12)).unwrap();
        assert_eq!(send(&mut proxy, 1, &token).verdict(), "allow", "{mode:?}");
    }
    origin.set_mode(OriginMode::Up);
    origin.forge(true);
    origin.revoke(RevocationTarget::Subject {
        sub: "frank".into(),
        not_before: T0 + 1,
    });
    origin.publish_snapshot(T0 + 40);
    proxy.advance(Duration::from_secs(12)).unwrap();
    assert_eq!(
        send(&mut proxy, 0, &token).verdict(),
        "allow",
        "wrong signature refused"
    );
    assert_eq!(generation(&proxy), before);
    origin.forge(false);
    origin.publish_snapshot(T0 + 60);
    proxy.advance(Duration::from_secs(12)).unwrap();
    assert_eq!(send(&mut proxy, 0, &token).verdict(), "revoked_subject");
    origin.roll_back();
    proxy.advance(Duration::from_secs(12)).unwrap();
    assert_eq!(
        send(&mut proxy, 1, &token).verdict(),
        "revoked_subject",
        "rollback refused"
    );
    // Past max staleness with the origin down: the default denies.
    origin.set_mode(OriginMode::Down);
    proxy.advance(Duration::from_secs(130)).unwrap();
    assert_eq!(
        send(&mut proxy, 0, &token).verdict(),
        "stale_revocation_data"
    );
}

#[test]
fn scenario_8_key_rotation() {
    let (mut proxy, issuer, origin, _idp) = envoy(2, json!({}));
    let old = issuer.token("k1", "gina", "g-1", None, T0);
    let new = issuer.token("k2", "gina", "g-2", None, T0);
    assert_eq!(send(&mut proxy, 1, &new).verdict(), "unknown_key");
    origin.set_jwks(issuer.jwks(&["k1", "k2"]));
    proxy.advance(Duration::from_secs(8)).unwrap();
    assert_eq!(
        send(&mut proxy, 1, &new).verdict(),
        "allow",
        "unknown kid refetched"
    );
    origin.set_jwks(issuer.jwks(&["k2"]));
    proxy.advance(Duration::from_secs(300)).unwrap();
    for worker in 0..2 {
        assert_eq!(send(&mut proxy, worker, &old).verdict(), "unknown_key");
        assert_eq!(
            send(&mut proxy, worker, &new).verdict(),
            "stale_revocation_data"
        );
    }
}

/// Several worker VMs sharing one origin fetch through shared data: on each engine.
#[test]
fn four_workers_origin_sees_one_fetch_per_interval_and_propagation_is_bounded() {
    for engine in crate::fixture::both_engines() {
        eprintln!("{engine}");
        four_workers_origin_sees_one_fetch_per_interval_and_propagation_is_bounded_on(engine);
    }
}

fn four_workers_origin_sees_one_fetch_per_interval_and_propagation_is_bounded_on(engine: Engine) {
    let (mut proxy, issuer, origin, _idp) = envoy_on(engine, 4, json!({}));
    let start_count = origin.count("/snapshot");
    proxy.advance(Duration::from_secs(60)).unwrap();
    let fetched = origin.count("/snapshot") - start_count;
    assert!(
        (5..=7).contains(&fetched),
        "{fetched} snapshot fetches in 60 s at a 10 s interval"
    );
    assert_eq!(origin.count("/jwks"), 1);
    // (label, origin delay, seconds the origin is down after publishing, snapshot responses lost)
    let cases = [
        ("steady", Duration::ZERO, 0, 0),
        ("origin delay 800 ms", Duration::from_millis(800), 0, 0),
        ("origin down 15 s", Duration::ZERO, 15, 0),
        ("dropped snapshot", Duration::ZERO, 0, 1),
    ];
    for (n, (label, delay, down_secs, dropped)) in cases.into_iter().enumerate() {
        origin.set_delay(delay);
        let sub = format!("hank-{n}");
        let token = issuer.token("k1", &sub, "h-2", None, T0);
        assert_eq!(send(&mut proxy, 0, &token).verdict(), "allow");
        origin.revoke(RevocationTarget::Subject {
            sub: sub.clone(),
            not_before: T0 + 1,
        });
        origin.publish_snapshot(T0 + 61);
        origin.drop_snapshots(dropped);
        if down_secs > 0 {
            origin.set_mode(OriginMode::Down);
        }
        let mut denied_at = [None; 4];
        for second in 1..=60u64 {
            proxy.advance(Duration::from_secs(1)).unwrap();
            if second == down_secs {
                origin.set_mode(OriginMode::Up);
            }
            for (worker, slot) in denied_at.iter_mut().enumerate() {
                if slot.is_none() && send(&mut proxy, worker, &token).verdict() == "revoked_subject"
                {
                    *slot = Some(second);
                }
            }
            if denied_at.iter().all(Option::is_some) {
                break;
            }
        }
        println!("propagation ({label}): first denial per worker after {denied_at:?} s");
        // Refresh interval (10 s) + one fetch; a lost response or an outage adds the retry
        // backoff (at most the interval) after the fault ends.
        let bound = if down_secs > 0 || dropped > 0 {
            down_secs + 22
        } else {
            12
        };
        assert!(
            denied_at.iter().all(|d| d.is_some_and(|s| s <= bound)),
            "{label}: {denied_at:?}"
        );
    }
}

/// Several worker VMs sharing one origin fetch through shared data: on each engine.
#[test]
fn a_delta_revokes_exactly_on_every_worker_without_a_new_snapshot() {
    for engine in crate::fixture::both_engines() {
        eprintln!("{engine}");
        a_delta_revokes_exactly_on_every_worker_without_a_new_snapshot_on(engine);
    }
}

fn a_delta_revokes_exactly_on_every_worker_without_a_new_snapshot_on(engine: Engine) {
    let (mut proxy, issuer, origin, idp) = envoy_on(engine, 2, json!({}));
    let token = issuer.token("k1", "ida", "ida-1", None, T0);
    assert_eq!(send(&mut proxy, 1, &token).verdict(), "allow");
    let snapshots = origin.count("/snapshot");
    origin.revoke(RevocationTarget::Jti("ida-1".into()));
    origin.publish_delta(T0 + 2);
    proxy.advance(Duration::from_secs(12)).unwrap();
    for worker in 0..2 {
        // An exact delta entry denies without asking the IdP.
        assert_eq!(send(&mut proxy, worker, &token).verdict(), "revoked");
    }
    assert_eq!(idp.calls(), 0);
    assert!(origin.count("/delta") >= 1);
    assert!(
        origin.count("/snapshot") - snapshots <= 2,
        "conditional snapshot fetches only"
    );
    assert_eq!(
        proxy.guest_metric("revguard_snapshot_generation"),
        Some(MetricValue::Gauge(2))
    );
}

#[test]
fn scenario_9_kong_host_port_upstreams_and_evicted_shared_data() {
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config(
        KONG,
        &origin.public_key(),
        json!({"host": {"kong": {"shm_zone": "rg", "tls": true}}}),
    );
    let mut kong = ProxyConfig::kong();
    // The smallest zone Kong accepts (three pages, NGX_WA_SHM_MIN_SIZE): entries are evicted;
    // a large snapshot through it is host_limits::the_smallest_kong_zone_costs_fetches_never_a_trapped_worker.
    if let revguard_test_host::Profile::Kong(k) = &mut kong.profile {
        k.shm_capacity_bytes = 3 * 4096;
    }
    let mut proxy = start(kong, 3, plugin, KONG, &origin, &idp);
    // Workers that cannot read the published data fetch for themselves.
    proxy.advance(Duration::from_secs(3)).unwrap();
    let token = issuer.token("k1", "ivy", "i-1", None, T0);
    for worker in 0..3 {
        assert_eq!(send(&mut proxy, worker, &token).verdict(), "allow");
    }
    // host:port upstreams, and `tls` asks ngx_wasm_module for TLS with `:scheme: https`.
    assert!(origin
        .upstream
        .requests()
        .iter()
        .all(|r| r.upstream == "127.0.0.1:9001" && r.headers.get_str(":scheme") == Some("https")));
    origin.revoke(RevocationTarget::Subject {
        sub: "ivy".into(),
        not_before: T0 + 1,
    });
    origin.publish_snapshot(T0 + 3);
    proxy.advance(Duration::from_secs(25)).unwrap();
    for worker in 0..3 {
        assert_eq!(
            send(&mut proxy, worker, &token).verdict(),
            "revoked_subject",
            "worker {worker}"
        );
    }
    // Kong without `metrics` (the default: Kong 3.4-3.7 trap on any metric call) defines none;
    // the counters reach the log once a minute instead.
    assert!(proxy.metric("pw.revguard.revguard_decision_deny").is_none());
    proxy.advance(Duration::from_secs(61)).unwrap();
    let counted = proxy.logs().iter().any(|l| {
        l.message.contains(r#""event":"revguard.counters""#)
            && l.message.contains(r#""revguard_deny_revoked_subject":1"#)
    });
    assert!(counted, "{:?}", proxy.logs());
}

#[test]
fn garbage_headers_and_tokens_never_trap() {
    let (mut proxy, issuer, _origin, _idp) = envoy(1, json!({}));
    let good = issuer.token("k1", "jo", "j-1", None, T0);
    let mut inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer a.b.c".to_vec(),
        b"Bearer \xff\xfe.\x00.x".to_vec(),
        vec![b'A'; 20_000],
        b"Basic abc".to_vec(),
        format!("Bearer {good}x").into_bytes(),
        format!("Bearer {}", &good[..good.len() / 2]).into_bytes(),
    ];
    for i in 0..50u8 {
        let mut t = format!("Bearer {good}").into_bytes();
        let at = 7 + (usize::from(i) * 37) % (t.len() - 7);
        t[at] = i.wrapping_mul(61);
        inputs.push(t);
    }
    for value in inputs {
        let request = revguard_test_host::HttpRequest::get("api", "/x")
            .header("authorization", &value)
            .header("x-request-id", b"\xff\n\"id")
            .header("\u{fffd}weird", b"\x00");
        let answer = send_request(&mut proxy, 0, request);
        assert!(answer.status == 200 || answer.status >= 400);
        assert!(proxy.vm_failure(0).is_none(), "{:?}", proxy.vm_failure(0));
    }
}

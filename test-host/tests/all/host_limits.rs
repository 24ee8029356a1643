//! The real filter against the limits of the hosts it is deployed on: Kong's ngx_wasm_module
//! generations (metrics: none before 0.4.0, name and memory limits after), a host that refuses
//! shared-data values over 64 KiB, and a Kong zone sized from the snapshot.

use crate::rg::*;
use revguard::snapshot::RevocationTarget;
use revguard_test_host::{KongOptions, NgxWasmModule, Profile, Proxy, ProxyConfig};
use serde_json::json;
use std::time::Duration;

/// A Kong proxy of `workers` workers with `kong` as the filter's `host.kong` section.
fn kong(config: ProxyConfig, workers: usize, kong: serde_json::Value) -> (Proxy, Issuer, Origin) {
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config_for(KONG, &origin, json!({"host": {"kong": kong}}));
    (
        start(config, workers, plugin, KONG, &origin, &idp),
        issuer,
        origin,
    )
}

fn config_for(names: Names, origin: &Origin, extra: serde_json::Value) -> String {
    config(names, &origin.public_key(), extra)
}

fn prometheus_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The host's log line for the first trap of any VM (Kong recycles a trapped instance).
fn trap_logged(proxy: &revguard_test_host::Proxy) -> String {
    proxy
        .logs()
        .iter()
        .map(|l| l.message.clone())
        .find(|m| m.contains("wasm trap"))
        .unwrap_or_default()
}

#[test]
fn kong_3_4_to_3_7_trap_every_metric_call() {
    // The filter as it was (metrics defined on every decision) is what `metrics: true` does:
    // on ngx_wasm_module before 0.4.0 the first metric call traps (since issue 15, the tick's:
    // requests make none), Kong recycles the instance, and no request is let through.
    let (mut old, issuer, _origin) = kong(
        ProxyConfig::kong_with(NgxWasmModule::NoMetrics),
        2,
        json!({"metrics": true}),
    );
    let token = issuer.token("k1", "ann", "a-1", None, T0);
    let status = send(&mut old, 0, &token).status;
    assert!(status >= 500, "{status}");
    let failure = trap_logged(&old);
    assert!(
        failure.contains("host trap (function not yet implemented): proxy_define_metric"),
        "{failure}"
    );
}

/// Run with `REVGUARD_FILTER_WASM=<a filter built before host.kong.metrics existed>`, this fails:
/// that filter defined metrics on every decision, so its first request answers 500.
#[test]
fn kong_3_4_to_3_7_run_the_filter_by_default_and_it_counts_in_its_log() {
    // The default on Kong: no metric call at all, every worker decides, counts go to the log.
    let (mut proxy, issuer, origin) = kong(
        ProxyConfig::kong_with(NgxWasmModule::NoMetrics),
        2,
        json!({}),
    );
    let token = issuer.token("k1", "ann", "a-1", None, T0);
    for worker in 0..2 {
        assert_eq!(send(&mut proxy, worker, &token).verdict(), "allow");
    }
    origin.revoke(RevocationTarget::Subject {
        sub: "ann".into(),
        not_before: T0 + 1,
    });
    origin.publish_snapshot(T0 + 3);
    proxy.advance(Duration::from_secs(70)).unwrap();
    for worker in 0..2 {
        assert_eq!(
            send(&mut proxy, worker, &token).verdict(),
            "revoked_subject"
        );
        assert_eq!(proxy.vm_failure(worker), None);
    }
    assert!(proxy.metrics().is_empty());
    proxy.advance(Duration::from_secs(61)).unwrap();
    let logged = proxy
        .logs()
        .iter()
        .filter(|l| l.message.contains(r#""revguard_deny_revoked_subject":1"#))
        .count();
    assert_eq!(
        logged,
        2,
        "one counters line per worker: {:?}",
        proxy.logs()
    );
}

#[test]
fn kong_3_9_exports_every_metric_under_a_valid_prometheus_name() {
    let (mut proxy, issuer, _origin) = kong(ProxyConfig::kong(), 2, json!({"metrics": true}));
    let token = issuer.token("k1", "bo", "b-1", None, T0);
    assert_eq!(send(&mut proxy, 0, &token).verdict(), "allow");
    assert_eq!(send(&mut proxy, 1, "garbage").status, 401);
    // Per-request counters are written at the next tick.
    proxy.advance(Duration::from_millis(200)).unwrap();
    let names: Vec<String> = proxy.metrics().into_iter().map(|(n, _)| n).collect();
    assert!(names.len() > 8, "{names:?}");
    for name in &names {
        assert!(name.starts_with("pw:revguard:revguard_"), "{name}");
        // Kong 3.9's Prometheus plugin replaces only the colons of `pw:<filter>:<name>`.
        let exported = name.replace(':', "_");
        assert!(prometheus_name(&exported), "{exported}");
    }
    assert!(names.contains(&"pw:revguard:revguard_deny_malformed_token".to_string()));
}

#[test]
fn a_metric_name_over_kongs_limit_traps_as_ngx_wasm_module_does() {
    let config = ProxyConfig {
        profile: Profile::Kong(KongOptions {
            max_metric_name_length: 30,
            ..KongOptions::default()
        }),
        ..ProxyConfig::kong()
    };
    let (mut proxy, issuer, _origin) = kong(config, 1, json!({"metrics": true}));
    let token = issuer.token("k1", "cy", "c-1", None, T0);
    let status = send(&mut proxy, 0, &token).status;
    assert!(status >= 500, "{status}");
    let failure = trap_logged(&proxy);
    assert!(failure.contains("too long"), "{failure}");
}

/// An origin serving a snapshot that revokes 8,000 subjects (`user-0` ...) issued before
/// T0 + 1: about 24 bytes each, about 190 KB. Also returns how many snapshot fetches it has seen.
fn large_snapshot_origin() -> (Issuer, Origin, Idp, usize) {
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    for i in 0..8000 {
        origin.revoke(RevocationTarget::Subject {
            sub: format!("user-{i}"),
            not_before: T0 + 1,
        });
    }
    origin.publish_snapshot(T0);
    let snapshots = origin.count("/snapshot");
    (issuer, origin, Idp::new(), snapshots)
}

/// Each of the 4 workers denies a token of revoked subject `sub` and allows another subject's.
fn every_worker_denies_only_the_revoked(proxy: &mut Proxy, issuer: &Issuer, sub: &str, jti: &str) {
    let revoked = issuer.token("k1", sub, jti, None, T0);
    let other = issuer.token("k1", "dee", "d-1", None, T0);
    for worker in 0..4 {
        assert_eq!(
            send(proxy, worker, &revoked).verdict(),
            "revoked_subject",
            "worker {worker}: {:?}",
            proxy.logs()
        );
        assert_eq!(send(proxy, worker, &other).verdict(), "allow");
    }
}

#[test]
fn a_snapshot_over_64_kib_reaches_every_worker_through_shared_data() {
    let (issuer, origin, idp, snapshots) = large_snapshot_origin();
    let config = ProxyConfig {
        shared_value_limit: Some(64 * 1024),
        ..ProxyConfig::envoy()
    };
    let plugin = config_for(ENVOY, &origin, json!({}));
    let mut proxy = start(config, 4, plugin, ENVOY, &origin, &idp);
    every_worker_denies_only_the_revoked(&mut proxy, &issuer, "user-7", "u-7");
    assert_eq!(
        origin.count("/snapshot") - snapshots,
        1,
        "one worker fetched it, the others took it from shared data"
    );
    assert_eq!(
        proxy.guest_metric("revguard_shared_snapshot_loaded"),
        Some(revguard_test_host::MetricValue::Counter(3))
    );
    assert_eq!(proxy.guest_metric("revguard_shared_publish_failed"), None);
}

#[test]
fn a_kong_zone_sized_from_the_snapshot_limit_keeps_the_workers_on_one_fetch() {
    let (issuer, origin, idp, snapshots) = large_snapshot_origin();
    // examples/kong/kong.conf: twice the largest snapshot (a publication replacing the last)
    // plus room for the key sets, deltas and leases; here 2 x 190 KB + 64 KiB.
    let config = ProxyConfig {
        profile: Profile::Kong(KongOptions {
            shm_capacity_bytes: 2 * 190_000 + 64 * 1024,
            ..KongOptions::default()
        }),
        ..ProxyConfig::kong()
    };
    let plugin = config_for(KONG, &origin, json!({"host": {"kong": {}}}));
    let mut proxy = start(config, 4, plugin, KONG, &origin, &idp);
    let revoked = issuer.token("k1", "user-9", "u-9", None, T0);
    for worker in 0..4 {
        assert_eq!(
            send(&mut proxy, worker, &revoked).verdict(),
            "revoked_subject"
        );
    }
    assert_eq!(origin.count("/snapshot") - snapshots, 1);
    assert_eq!(proxy.shared_data_evictions(), 0);
}

#[test]
fn the_smallest_kong_zone_costs_fetches_never_a_trapped_worker() {
    // Kong accepts a zone of three pages (NGX_WA_SHM_MIN_SIZE); a value it cannot hold even
    // after evicting everything else traps (the test host does as Kong does). The filter
    // writes pieces of at most 3 KiB on Kong, so a 190 KB snapshot through a 12 KiB zone only
    // evicts: readers miss pieces and fetch for themselves, every decision is right.
    let (issuer, origin, idp, snapshots) = large_snapshot_origin();
    let config = ProxyConfig {
        profile: Profile::Kong(KongOptions {
            shm_capacity_bytes: 3 * 4096,
            ..KongOptions::default()
        }),
        ..ProxyConfig::kong()
    };
    let plugin = config_for(KONG, &origin, json!({"host": {"kong": {}}}));
    let mut proxy = start(config, 4, plugin, KONG, &origin, &idp);
    // A worker that finds the published data evicted fetches for itself at its next tick.
    proxy.advance(Duration::from_secs(3)).unwrap();
    every_worker_denies_only_the_revoked(&mut proxy, &issuer, "user-3", "u-3");
    assert!(proxy.shared_data_evictions() > 0);
    for worker in 0..4 {
        assert_eq!(proxy.vm_failure(worker), None, "worker {worker} trapped");
    }
    let fetches = origin.count("/snapshot") - snapshots;
    assert!((1..=4).contains(&fetches), "{fetches} snapshot fetches");
}

#[test]
fn on_kong_each_request_has_its_own_introspection_call() {
    // Kong's `proxy_set_effective_context` does nothing: an answer can only resume the request
    // that dispatched the call, so requests carrying one flagged token cannot share a call as
    // they do on Envoy (scenario_1_2_6); joined ones would wait until Kong timed them out.
    let issuer = Issuer::new(&["k1"]);
    let origin = Origin::new(issuer.jwks(&["k1"]));
    let idp = Idp::new();
    let plugin = config_for(KONG, &origin, json!({"host": {"kong": {}}}));
    let mut proxy = start(ProxyConfig::kong(), 1, plugin, KONG, &origin, &idp);
    let token = issuer.token("k1", "eve", "t-flagged", None, T0);
    origin.revoke(RevocationTarget::Jti("t-flagged".into()));
    origin.publish_snapshot(T0 + 4);
    proxy.advance(Duration::from_secs(12)).unwrap();
    let calls = idp.calls();
    assert_eq!(
        crate::scenarios::concurrent(&mut proxy, 0, &token, 3),
        vec!["revoked"; 3]
    );
    assert_eq!(idp.calls(), calls + 3, "one call per request on Kong");
    assert_eq!(send(&mut proxy, 0, &token).verdict(), "revoked");
    assert_eq!(idp.calls(), calls + 3, "then cached");
}

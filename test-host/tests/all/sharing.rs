//! One verification and one introspection call per token per proxy, not per worker VM
//! (issue 15): the real filter, four workers, Envoy and Kong profiles, both engines. Signature
//! work is counted by the filter's own counter `revguard_signature_checks` (one per signature
//! step the engine runs; `revguard_shared_verdict_hit` when another worker's verdict stood in
//! for it), introspection calls by the identity provider's request log. Counts, never times.

use crate::fixture::both_engines;
use crate::rg::*;
use revguard_test_host::{MetricValue, Proxy, ProxyConfig};
use serde_json::{json, Value};
use std::time::Duration;

const WORKERS: usize = 4;

fn counter(proxy: &Proxy, name: &str) -> u64 {
    match proxy.guest_metric(name) {
        Some(MetricValue::Counter(n)) => n,
        None => 0,
        other => panic!("{name}: {other:?}"),
    }
}

struct Setup {
    proxy: Proxy,
    issuer: Issuer,
    origin: Origin,
    idp: Idp,
}

impl Setup {
    fn signature_checks(&self) -> u64 {
        counter(&self.proxy, "revguard_signature_checks")
    }

    fn verdict_hits(&self) -> u64 {
        counter(&self.proxy, "revguard_shared_verdict_hit")
    }

    /// Sends `token` to every worker in turn; each must allow it.
    fn send_to_every_worker(&mut self, token: &str) {
        for worker in 0..WORKERS {
            let answer = send(&mut self.proxy, worker, token);
            assert_eq!(answer.verdict(), "allow", "worker {worker}");
        }
    }
}

/// Every combination of profile and engine, with `extra` merged into the configuration.
fn each_proxy(extra: Value, test: impl Fn(&mut Setup)) {
    for engine in both_engines() {
        for kong in [false, true] {
            eprintln!("{engine} {}", if kong { "kong" } else { "envoy" });
            let (mut proxy_config, names, mut extra) = if kong {
                (ProxyConfig::kong(), KONG, extra.clone())
            } else {
                (ProxyConfig::envoy(), ENVOY, extra.clone())
            };
            if kong {
                extra["host"] = json!({"kong": {"shm_zone": "revguard", "metrics": true}});
            }
            proxy_config.engine = engine;
            let issuer = Issuer::new(&["k1", "k2"]);
            let origin = Origin::new(issuer.jwks(&["k1"]));
            let idp = Idp::new();
            let plugin = config(names, &origin.public_key(), extra);
            let proxy = start(proxy_config, WORKERS, plugin, names, &origin, &idp);
            let mut setup = Setup {
                proxy,
                issuer,
                origin,
                idp,
            };
            test(&mut setup);
            assert_eq!(setup.proxy.shared_data_evictions(), 0);
            // Every publication reached the other workers (on Kong, republishing a key needs
            // the CAS-mismatch retry of `coordination::overwrite`).
            assert_eq!(counter(&setup.proxy, "revguard_shared_publish_failed"), 0);
        }
    }
}

#[test]
fn a_token_is_verified_once_per_proxy() {
    each_proxy(json!({}), |s| {
        for i in 0..3 {
            let token = s.issuer.token("k1", "alice", &format!("j{i}"), None, T0);
            let (checks, hits) = (s.signature_checks(), s.verdict_hits());
            s.send_to_every_worker(&token);
            s.send_to_every_worker(&token);
            assert_eq!(s.signature_checks() - checks, 1, "token {i}");
            assert_eq!(s.verdict_hits() - hits, WORKERS as u64 - 1, "token {i}");
        }
    });
}

#[test]
fn without_sharing_every_worker_verifies() {
    let off = json!({"sharing": {"verdict_slots": 0, "answer_slots": 0}});
    each_proxy(off, |s| {
        let token = s.issuer.token("k1", "alice", "j1", None, T0);
        let checks = s.signature_checks();
        s.send_to_every_worker(&token);
        assert_eq!(s.signature_checks() - checks, WORKERS as u64);
        assert_eq!(s.verdict_hits(), 0);
    });
}

#[test]
fn after_a_key_rotation_a_token_is_verified_again_once() {
    each_proxy(json!({}), |s| {
        let token = s.issuer.token("k1", "alice", "j1", None, T0);
        assert_eq!(send(&mut s.proxy, 0, &token).verdict(), "allow");
        let checks = s.signature_checks();
        // The issuer publishes a second key; every worker loads the new set at the refresh.
        s.origin.set_jwks(s.issuer.jwks(&["k1", "k2"]));
        s.proxy.advance(Duration::from_secs(200)).unwrap();
        // (A fresh snapshot, so that revocation data does not go stale meanwhile.)
        s.origin.publish_snapshot(T0 + 203);
        s.proxy.advance(Duration::from_secs(120)).unwrap();
        // Worker 0 still has the token in its own cache; the others may not use the verdict
        // given under the old set: the first verifies, the next two take its new verdict.
        s.send_to_every_worker(&token);
        assert_eq!(s.signature_checks() - checks, 1);
    });
}

#[test]
fn an_introspected_token_is_introspected_once_per_proxy_and_again_once_per_generation() {
    let always = json!({"default_route": {"introspection": "always"}});
    each_proxy(always, |s| {
        let token = s.issuer.token("k1", "alice", "j1", None, T0);
        s.idp.set_active(&token, true);
        let calls = s.idp.calls();
        s.send_to_every_worker(&token);
        s.send_to_every_worker(&token);
        assert_eq!(s.idp.calls() - calls, 1);
        assert_eq!(
            counter(&s.proxy, "revguard_shared_answer_hit"),
            WORKERS as u64 - 1
        );
        // A new revocation generation reaches every worker: each forgets its active answers,
        // and the shared one, given under the old generation, is not used either.
        s.origin.publish_snapshot(T0 + 10);
        s.proxy.advance(Duration::from_secs(25)).unwrap();
        let generation = s.proxy.guest_metric("revguard_snapshot_generation");
        assert!(
            matches!(generation, Some(MetricValue::Gauge(g)) if g >= 2),
            "{generation:?}"
        );
        let calls = s.idp.calls();
        s.send_to_every_worker(&token);
        assert_eq!(s.idp.calls() - calls, 1);
    });
}

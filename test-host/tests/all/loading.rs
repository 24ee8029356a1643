use crate::fixture::wasm;
use revguard_test_host::{HostError, Proxy, ProxyConfig};

#[test]
fn unknown_import_is_refused_at_load_by_name() {
    let err = Proxy::new(&wasm("unknown-import"), ProxyConfig::envoy())
        .err()
        .unwrap();
    assert_eq!(
        err,
        HostError::UnknownImport {
            module: "env".into(),
            name: "proxy_definitely_not_a_host_function".into()
        }
    );
    assert!(err
        .to_string()
        .contains("env.proxy_definitely_not_a_host_function"));
}

#[test]
fn garbage_and_non_proxy_modules_are_refused() {
    assert!(matches!(
        Proxy::new(b"\0asm garbage", ProxyConfig::envoy()),
        Err(HostError::Engine(_))
    ));
    // A valid empty module: no ABI version export.
    let empty = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    assert!(matches!(
        Proxy::new(&empty, ProxyConfig::envoy()),
        Err(HostError::BadModule(_))
    ));
    let mut config = ProxyConfig::envoy();
    config.workers = 0;
    assert!(matches!(
        Proxy::new(&wasm("fixture-filter"), config),
        Err(HostError::Config(_))
    ));
}

#[test]
fn configure_returning_false_refuses_the_plugin() {
    let mut config = ProxyConfig::envoy();
    config.plugin_configuration = b"reject".to_vec();
    let err = Proxy::new(&wasm("fixture-filter"), config).err().unwrap();
    assert_eq!(
        err,
        HostError::StartRejected {
            worker: 0,
            callback: "proxy_on_configure"
        }
    );
}

#[test]
fn every_fixture_import_is_one_envoy_provides() {
    let proxy = Proxy::new(&wasm("fixture-filter"), ProxyConfig::envoy()).unwrap();
    let provided = proxy.provided_imports();
    for name in [
        "env.proxy_log",
        "env.proxy_http_call",
        "env.proxy_set_shared_data",
        "env.proxy_define_metric",
        "wasi_snapshot_preview1.fd_write",
        "wasi_snapshot_preview1.random_get",
    ] {
        assert!(provided.iter().any(|p| p == name), "{name} missing");
    }
    assert!(
        !provided.iter().any(|p| p.ends_with(".poll_oneoff")),
        "Envoy does not provide poll_oneoff"
    );
}

/// Host functions called directly with arguments the SDK never produces: statuses as Envoy returns them,
/// and out-of-bounds pointers refused with InvalidMemoryAccess (6), never a host crash.
#[test]
fn raw_abi_probes_get_envoy_statuses() {
    let config = ProxyConfig::envoy().upstream(
        "idp",
        revguard_test_host::ScriptedUpstream::new()
            as std::sync::Arc<dyn revguard_test_host::Upstream>,
    );
    let mut proxy = Proxy::new(&wasm("raw-abi"), config).unwrap();
    let stream = proxy
        .send_request(0, revguard_test_host::HttpRequest::get("a", "/"))
        .unwrap();
    let forwarded = proxy.outcome(stream).unwrap().forwarded().cloned().unwrap();
    let probe = |name: &str| {
        forwarded
            .headers
            .get_str(&format!("x-probe-{name}"))
            .unwrap_or("absent")
            .to_string()
    };
    let expected = [
        ("log-oob", "6"),
        ("log-level", "2"),
        ("value-missing", "1"),
        ("value-bad-map", "2"),
        ("value-call-map", "2"),
        ("pairs-call-map", "0:0:0"),
        ("size-call-map", "2"),
        ("pairs-oob-return", "6"),
        ("plugin-config", "1"),
        ("buffer-bad-type", "2"),
        ("buffer-overflow", "0"),
        ("set-body-in-headers", "1"),
        ("effective-unknown", "2"),
        ("call-garbage-headers", "2"),
        ("call-negative-timeout", "2"),
        ("call-token-oob", "6"),
        ("metric-bad-type", "2"),
        ("metric-unknown", "1"),
        ("dequeue-unknown", "1"),
        ("shared-missing", "1"),
        ("time-oob", "6"),
        ("tick-off", "0"),
        ("continue-bad", "2"),
        ("foreign", "1"),
        ("property-missing", "1"),
        ("empty-value", "0:0:0"),
        ("fd-write-bad-fd", "8"),
        ("fd-write-oob", "21"),
        ("fdstat-bad-fd", "8"),
        ("clock-bad-id", "28"),
    ];
    for (name, status) in expected {
        assert_eq!(probe(name), status, "probe {name}");
    }
    assert_eq!(
        proxy.pending_calls(),
        0,
        "refused calls leave nothing pending"
    );
    assert!(proxy.vm_failure(0).is_none());
}

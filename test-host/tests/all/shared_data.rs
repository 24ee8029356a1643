//! Shared data and queues across worker VMs, on each engine (the host functions are shared; the
//! engines must agree).

use crate::fixture::{body_text, both_engines, wasm};
use revguard_test_host::{Engine, HttpRequest, Proxy, ProxyConfig, Status};
use std::time::Duration;

fn two_workers(engine: Engine) -> Proxy {
    let mut config = ProxyConfig::envoy();
    config.workers = 2;
    config.engine = engine;
    Proxy::new(&wasm("fixture-filter"), config).unwrap()
}

#[test]
fn cas_increments_are_shared_across_worker_vms() {
    for engine in both_engines() {
        eprintln!("{engine}");
        let mut proxy = two_workers(engine);
        for i in 1..=10u32 {
            let worker = (i % 2) as usize;
            let (_, outcome) = proxy
                .run_request(
                    worker,
                    HttpRequest::get("a", "/shared/incr"),
                    Duration::ZERO,
                )
                .unwrap();
            assert_eq!(body_text(&outcome), i.to_string());
        }
        assert_eq!(proxy.shared_data("counter").unwrap().0, b"10");
    }
}

#[test]
fn stale_cas_is_refused_and_cas_zero_is_unconditional() {
    for engine in both_engines() {
        eprintln!("{engine}");
        let mut proxy = two_workers(engine);
        let (_, outcome) = proxy
            .run_request(0, HttpRequest::get("a", "/shared/stale"), Duration::ZERO)
            .unwrap();
        assert_eq!(body_text(&outcome), "Ok(()) Err(CasMismatch) a true Ok(())");
        assert_eq!(proxy.shared_data("stale").unwrap().0, b"c");
    }
}

#[test]
fn host_writes_are_seen_by_guests_with_their_cas() {
    for engine in both_engines() {
        eprintln!("{engine}");
        let mut proxy = two_workers(engine);
        proxy.set_shared_data("snap", b"gen-7", 0).unwrap();
        let (_, cas) = proxy.shared_data("snap").unwrap();
        assert_eq!(
            proxy.set_shared_data("snap", b"x", cas.wrapping_add(1)),
            Err(Status::CasMismatch)
        );
        let request = HttpRequest::get("a", "/shared/get").header("x-key", "snap");
        let (_, outcome) = proxy.run_request(1, request, Duration::ZERO).unwrap();
        assert_eq!(body_text(&outcome), format!("gen-7|{cas}"));
        let request = HttpRequest::get("a", "/shared/get").header("x-key", "absent");
        let (_, outcome) = proxy.run_request(1, request, Duration::ZERO).unwrap();
        assert_eq!(body_text(&outcome), "none|0");
    }
}

#[test]
fn shared_queue_notifies_the_registering_root() {
    for engine in both_engines() {
        eprintln!("{engine}");
        let mut proxy = two_workers(engine);
        let (_, outcome) = proxy
            .run_request(0, HttpRequest::get("a", "/enqueue"), Duration::ZERO)
            .unwrap();
        assert_eq!(body_text(&outcome), "Some(1) None");
        assert_eq!(proxy.shared_data("queue_seen").unwrap().0, b"hello");
        proxy.enqueue("events", b"from-host").unwrap();
        proxy.poll().unwrap();
        assert_eq!(proxy.shared_data("queue_seen").unwrap().0, b"from-host");
        assert_eq!(proxy.enqueue("nope", b"x"), Err(Status::NotFound));
    }
}

use crate::fixture::{body_text, wasm};
use revguard_test_host::{HttpRequest, HttpUpstream, Proxy, ProxyConfig, Upstream};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// Serves one connection with `answer` and returns what it received.
fn serve_once(answer: &'static [u8]) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(9).any(|w| w == b"token=abc") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        conn.write_all(answer).unwrap();
        got
    });
    (addr, handle)
}

fn proxy_to(addr: std::net::SocketAddr) -> Proxy {
    let config =
        ProxyConfig::envoy().upstream("idp", HttpUpstream::new(addr).unwrap() as Arc<dyn Upstream>);
    Proxy::new(&wasm("fixture-filter"), config).unwrap()
}

#[test]
fn real_http_upstream_on_loopback() {
    let (addr, server) =
        serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nactive");
    let mut proxy = proxy_to(addr);
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/call"), Duration::from_secs(5))
        .unwrap();
    let forwarded = outcome
        .forwarded()
        .cloned()
        .unwrap_or_else(|| panic!("{outcome:?}"));
    assert_eq!(forwarded.headers.get_str("x-call-body"), Some("active"));
    let seen = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(
        seen.starts_with("POST /check HTTP/1.1\r\nhost: idp.local\r\n"),
        "{seen}"
    );
}

#[test]
fn garbage_from_a_real_upstream_is_a_protocol_error() {
    let (addr, server) = serve_once(b"SPDY/9 what\r\n\r\n");
    let mut proxy = proxy_to(addr);
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/call"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        body_text(&outcome),
        "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
    );
    server.join().unwrap();
}

#[test]
fn refused_connection_on_loopback_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut proxy = proxy_to(addr);
    let (_, outcome) = proxy
        .run_request(0, HttpRequest::get("a", "/call"), Duration::from_secs(5))
        .unwrap();
    assert!(
        body_text(&outcome).ends_with("reset reason: connection failure"),
        "{outcome:?}"
    );
}

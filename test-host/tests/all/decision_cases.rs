//! The shared decision cases (every `../tests/cases/*.json`) through the real proxy-wasm filter:
//! key set, snapshot and delta are fetched by the filter from scripted upstreams, the request goes
//! through an Envoy worker, and what the client would see must match the native core's answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use revguard_test_host::{
    CalloutRequest, Clock, Compiled, Engine, Outcome, Proxy, ProxyConfig, ScriptedUpstream,
    Upstream, UpstreamReply, UpstreamResponse,
};
use serde_json::Value;

fn b64(v: &Value) -> Vec<u8> {
    use ct_codecs::{Base64, Decoder};
    Base64::decode_to_vec(v.as_str().unwrap(), None).unwrap()
}

fn reply(body: &[u8]) -> UpstreamReply {
    UpstreamReply::response(UpstreamResponse::new(200, &[], body))
}

/// The normalized answer (as tests/decision_cases.rs writes it) checked against what the client
/// got, and a denial's `token_hash` against the denial's log line (`logs`: the proxy's log).
fn check(case: &Value, outcome: &Outcome, logs: &[String]) {
    let name = &case["name"];
    let expect = &case["expect"];
    match (expect["decision"].as_str().unwrap(), outcome) {
        ("allow", Outcome::Continued(forwarded)) => {
            // The upstream gets the normalised target the filter set, else the client's.
            let path = expect["path"]
                .as_str()
                .unwrap_or_else(|| case["request"]["path"].as_str().unwrap());
            assert_eq!(
                forwarded.headers.get_all(":path"),
                vec![path.as_bytes()],
                "{name}: :path"
            );
            let set = expect["set_headers"].as_array().unwrap();
            for pair in set {
                let header = pair[0].as_str().unwrap();
                assert_eq!(
                    forwarded.headers.get_all(header),
                    vec![pair[1].as_str().unwrap().as_bytes()],
                    "{name}: {header}"
                );
            }
            for removed in expect["remove_headers"].as_array().unwrap() {
                let header = removed.as_str().unwrap();
                if !set.iter().any(|p| p[0] == *removed) {
                    assert!(
                        forwarded.headers.get(header).is_none(),
                        "{name}: {header} not removed"
                    );
                }
            }
        }
        ("deny", Outcome::LocalReply(reply)) => {
            assert_eq!(
                u64::from(reply.status),
                expect["status"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(
                reply.headers.get_str("www-authenticate"),
                expect["www_authenticate"].as_str(),
                "{name}"
            );
            assert_eq!(
                String::from_utf8_lossy(&reply.body),
                expect["body"].as_str().unwrap(),
                "{name}"
            );
            let lines: Vec<Value> = logs
                .iter()
                .filter_map(|m| serde_json::from_str::<Value>(m).ok())
                .filter(|line| line["event"] == "revguard.deny")
                .collect();
            assert_eq!(lines.len(), 1, "{name}: {logs:?}");
            assert_eq!(lines[0]["token_hash"], expect["token_hash"], "{name}");
        }
        ("introspect", Outcome::Paused) => {}
        (want, got) => panic!("{name}: expected {want}, the filter gave {got:?}"),
    }
}

/// Every shared cases file (`tests/cases/*.json`), by name; decisions.json must be one of them.
pub fn case_files() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/cases");
    let mut files: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let file = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, file)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let decisions = files.iter().find(|(name, _)| name == "decisions.json");
    let count = |file: &Value| file["cases"].as_array().map_or(0, Vec::len);
    assert!(
        decisions.is_some_and(|(_, file)| count(file) >= 20),
        "tests/cases/decisions.json with at least 20 cases"
    );
    for (name, file) in &files {
        assert!(count(file) > 0, "{name} has no cases");
    }
    files
}

/// On each engine: the host functions and the driver are shared, the engines must not differ in
/// what the filter decides.
#[test]
fn the_filter_gives_the_shared_decisions() {
    for engine in super::fixture::both_engines() {
        let compiled = Proxy::compile_on(engine, &super::rg::wasm(), false).unwrap();
        for (name, file) in case_files() {
            eprintln!(
                "{engine}: {name}: {} cases",
                file["cases"].as_array().unwrap().len()
            );
            run_file(engine, &compiled, &file);
        }
    }
}

fn run_file(engine: Engine, compiled: &Compiled, file: &Value) {
    let jwks = file["jwks"][0].as_str().unwrap().as_bytes().to_vec();
    let snapshot = b64(&file["snapshot"]);
    let delta = (!file["delta"].is_null()).then(|| b64(&file["delta"]));
    let cases = file["cases"].as_array().unwrap();
    for case in cases {
        let now = case["now"].as_u64().unwrap();
        let answer = case["introspection"].clone();
        let keys = jwks.clone();
        let idp = ScriptedUpstream::with_fallback(move |req: &CalloutRequest| {
            if req.headers.get_str(":path") == Some("/jwks") {
                return reply(&keys);
            }
            if answer.is_null() {
                // The case stops at "introspect": the call stays unanswered.
                return UpstreamReply::Hang;
            }
            match answer["status"].as_u64() {
                Some(status) => UpstreamReply::response(UpstreamResponse::new(
                    status as u16,
                    &[],
                    answer["body"].as_str().unwrap_or("").as_bytes(),
                )),
                None => UpstreamReply::reset(),
            }
        });
        let (snap, del) = (snapshot.clone(), delta.clone());
        let origin = ScriptedUpstream::with_fallback(move |req: &CalloutRequest| {
            match req.headers.get_str(":path") {
                Some("/current.delta") => match &del {
                    Some(del) => reply(del),
                    None => UpstreamReply::response(UpstreamResponse::new(404, &[], b"")),
                },
                _ => reply(&snap),
            }
        });
        let mut config = ProxyConfig::envoy();
        config.engine = engine;
        // Ticks at now-4 .. now: keys and snapshot on the first, the delta on the next.
        config.clock = Clock::simulated(now - 5);
        config.plugin_configuration = serde_json::to_vec(&file["config"]).unwrap();
        let config = config
            .upstream("idp", idp as Arc<dyn Upstream>)
            .upstream("origin", origin as Arc<dyn Upstream>);
        let mut proxy = Proxy::start(compiled, config).unwrap();
        proxy.advance(Duration::from_secs(5)).unwrap();

        let request = &case["request"];
        let mut http = revguard_test_host::HttpRequest::new(
            request["method"].as_str().unwrap(),
            "api",
            request["path"].as_str().unwrap(),
        );
        for h in request["headers"].as_array().unwrap() {
            http = http.header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
        }
        proxy.take_logs();
        let (_, outcome) = proxy
            .run_request(0, http, Duration::from_millis(100))
            .unwrap();
        let logs: Vec<String> = proxy.take_logs().into_iter().map(|l| l.message).collect();
        check(case, &outcome, &logs);
    }
}

//! The whole decision with arbitrary state: a key set, a snapshot, a delta and an introspection
//! answer from the input, then a request, decided and (if asked) completed with that answer.
//! Nothing may panic whatever the engine was fed before.

use revguard::decision::Decision;
use revguard::http::HttpOutcome;
use revguard::{Engine, RequestView};

const CONFIG: &str = include_str!("../../tests/fixtures/fuzz-config.json");
const NOW: u64 = 1_767_225_600;

pub fn run(data: &[u8]) {
    let Ok(mut engine) = Engine::from_config_json(CONFIG.as_bytes()) else {
        return;
    };
    // Fields separated by 0xfe: key set, snapshot, delta, introspection status byte + body,
    // method, path, then header name/value pairs.
    let mut parts = data.split(|b| *b == 0xfe);
    let mut next = || parts.next().unwrap_or_default();
    let _ = engine.load_keys(0, next(), NOW);
    let _ = engine.load_snapshot(next());
    let _ = engine.load_delta(next());
    let answer = next();
    let method = String::from_utf8_lossy(next()).into_owned();
    let path = String::from_utf8_lossy(next()).into_owned();
    let mut headers = Vec::new();
    loop {
        let (name, value) = (next(), next());
        if name.is_empty() && value.is_empty() {
            break;
        }
        headers.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            value.to_vec(),
        ));
    }
    let views: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = RequestView {
        method: &method,
        path: &path,
        headers: &views,
    };
    for now in [NOW, NOW + 3600] {
        if let Decision::Introspect(i) = engine.decide(&req, now) {
            let outcome = match answer.split_first() {
                Some((0, _)) | None => HttpOutcome::Failed,
                Some((status, body)) => HttpOutcome::Response {
                    status: 100 + u16::from(*status),
                    etag: None,
                    body,
                    origin: Default::default(),
                },
            };
            let _ = engine.complete_introspection(i.pending, outcome, &req, now);
        }
    }
}

//! Arbitrary requests (method, path, header map with any bytes) through token extraction,
//! route matching and the whole decision, against a fixed policy with keys and a snapshot.

use revguard::{Engine, RequestView};

const CONFIG: &str = include_str!("../../tests/fixtures/fuzz-config.json");

pub fn run(data: &[u8]) {
    let Ok(mut engine) = Engine::from_config_json(CONFIG.as_bytes()) else {
        return;
    };
    // Split the input into fields at 0xff bytes: method, path, then name/value pairs.
    let mut parts = data.split(|b| *b == 0xff);
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut headers = Vec::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
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
    let _ = engine.decide(&req, 1_767_225_600);
}

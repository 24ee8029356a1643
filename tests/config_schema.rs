//! The configuration's JSON Schema and the files generated from it, and the example and policy
//! configurations that operators copy: every one of them must pass `revguard check`.
//!
//! The checked-in schema files are generated; regenerate them with
//! `REVGUARD_REGENERATE_SCHEMA=1 cargo test --test config_schema`. Validating documents against
//! the schema takes a JSON Schema validator: `.ci/check-examples` runs Python's `jsonschema` on
//! the same files, the configurations embedded in the Envoy, Kong, Istio and wrangler examples,
//! and `tests/fixtures/config-refused.json`.

mod support;

use std::path::{Path, PathBuf};

use revguard::config::schema::{config_schema, kong_filter_meta};
use revguard::snapshot::DEFAULT_MAX_BYTES;
use revguard::Policy;
use serde_json::Value;
use support::revguard;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Compares a checked-in generated file with what the code generates now (or rewrites it).
fn generated(path: &str, value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap() + "\n";
    let path = repo(path);
    if std::env::var_os("REVGUARD_REGENERATE_SCHEMA").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        on_disk == text,
        "{} is out of date: REVGUARD_REGENERATE_SCHEMA=1 cargo test --test config_schema",
        path.display()
    );
}

#[test]
fn the_published_schema_and_kongs_filter_metadata_are_generated_from_the_types() {
    generated("docs/config.schema.json", &config_schema());
    generated("examples/kong/revguard.meta.json", &kong_filter_meta());
}

#[test]
fn the_cli_prints_the_generated_schema() {
    for (args, expected) in [
        (&["config-schema"][..], config_schema()),
        (&["config-schema", "--kong-meta"][..], kong_filter_meta()),
    ] {
        let out = revguard(args);
        assert!(out.status.success(), "{args:?}");
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(printed, expected, "{args:?}");
    }
}

/// Facts the schema states, checked on the generated value (a validator checks documents
/// against it in .ci/check-examples).
#[test]
fn the_schema_states_what_serde_enforces() {
    let schema = config_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    // deny_unknown_fields everywhere, so a typo is an error in an editor as in the plugin.
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["issuers"]));
    let defs = schema["definitions"].as_object().unwrap();
    for (name, def) in defs {
        if def["type"] == "object" && def.get("properties").is_some() {
            assert_eq!(def["additionalProperties"], false, "{name}");
        }
    }
    // The route rule's schema is the document form (path / path_prefix), not the compiled one.
    let route = &defs["RouteRule"];
    assert!(route["properties"]["path_prefix"].is_object());
    assert_eq!(
        route["not"],
        serde_json::json!({"required": ["path", "path_prefix"]})
    );
    // Defaults come from the same functions serde uses.
    let revocation = &defs["RevocationConfig"]["properties"];
    assert_eq!(
        revocation["max_snapshot_bytes"]["default"],
        DEFAULT_MAX_BYTES
    );
    assert_eq!(revocation["hold_secs"]["default"], 25);

    let kong = kong_filter_meta();
    let draft4 = &kong["config_schema"];
    assert_eq!(draft4["$schema"], "http://json-schema.org/draft-04/schema#");
    let text = draft4.to_string();
    assert!(!text.contains("\"const\""), "draft 4 has no const");
    assert!(!text.contains("uint"), "no non-standard formats");
    assert_eq!(boolean_subschemas(&config_schema()), 0);
    assert_eq!(
        boolean_subschemas(draft4),
        0,
        "draft 4 has no boolean schemas"
    );
}

/// Subschemas (property values, items, members of anyOf/allOf/oneOf) that are booleans.
fn boolean_subschemas(schema: &Value) -> usize {
    let Value::Object(map) = schema else {
        return 0;
    };
    let mut count = 0;
    for (key, value) in map {
        let subschemas: Vec<&Value> = match key.as_str() {
            "properties" | "definitions" => value.as_object().unwrap().values().collect(),
            "items" | "not" => vec![value],
            "anyOf" | "allOf" | "oneOf" => value.as_array().unwrap().iter().collect(),
            _ => continue,
        };
        for sub in subschemas {
            count += match sub {
                Value::Bool(_) => 1,
                other => boolean_subschemas(other),
            };
        }
    }
    count
}

/// The ready policies name no signing key: an unedited copy must fail closed.
const POLICY_KEY_PLACEHOLDER: &str = "REPLACE-WITH-THE-OUTPUT-OF-revguard-keygen";

/// Every configuration the repository ships (ready policies, the per-host examples, the
/// complete example in docs/CONFIGURATION.md) is valid: `revguard check` says so. The ready
/// policies once their key placeholder is filled in (with the test key); unedited, their one
/// problem is that key.
#[test]
fn every_shipped_configuration_passes_revguard_check() {
    let dir = support::workdir("config_schema_examples");
    let test_key = std::fs::read_to_string(repo("tests/fixtures/origin.pub")).unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let unedited = revguard(&["check", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&unedited.stderr);
        assert!(
            !unedited.status.success()
                && stderr.contains("(1 problem):\n  revocation.public_keys: "),
            "{}: {stderr}",
            path.display()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(POLICY_KEY_PLACEHOLDER), "{}", path.display());
        let filled = dir.join(path.file_name().unwrap());
        std::fs::write(
            &filled,
            text.replace(POLICY_KEY_PLACEHOLDER, test_key.trim()),
        )
        .unwrap();
        files.push(filled);
    }
    for dir in std::fs::read_dir(repo("examples")).unwrap() {
        let candidate = dir.unwrap().path().join("revguard.json");
        if candidate.exists() {
            files.push(candidate);
        }
    }
    let complete = dir.join("configuration-md-complete-example.json");
    std::fs::write(&complete, complete_example_of_configuration_md()).unwrap();
    files.push(complete);
    assert!(files.len() >= 7, "{files:?}");

    for file in &files {
        let out = revguard(&["check", "--config", file.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("config OK: "),
            "{}: {stdout}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The ```json block under "## A complete example".
fn complete_example_of_configuration_md() -> String {
    let text = std::fs::read_to_string(repo("docs/CONFIGURATION.md")).unwrap();
    let section = text.split("## A complete example").nth(1).unwrap();
    let block = section.split("```json\n").nth(1).unwrap();
    block.split("\n```").next().unwrap().to_string()
}

/// The documents the schema must refuse are refused by the parser too, at the serde stage
/// (the schema covers what serde checks, not the validation rules after it).
#[test]
fn the_refused_fixtures_are_refused_by_the_parser() {
    let file: Value =
        serde_json::from_slice(&std::fs::read(repo("tests/fixtures/config-refused.json")).unwrap())
            .unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let bytes = serde_json::to_vec(&case["config"]).unwrap();
        let errors = Policy::from_json(&bytes).expect_err(case["why"].as_str().unwrap());
        assert_eq!(errors.0.len(), 1, "{}: {errors}", case["why"]);
    }
}

/// The snapshot size limit is one figure: the plugin's default, the format's and the CLI's
/// limit, and what the documents say.
#[test]
fn the_snapshot_size_limit_is_one_figure_in_code_and_docs() {
    let mib = DEFAULT_MAX_BYTES >> 20;
    assert_eq!(mib << 20, DEFAULT_MAX_BYTES);
    let minimal = br#"{"issuers": [{"issuer": "https://idp", "audiences": ["api"],
        "algorithms": ["EdDSA"], "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
        "revocation": {"upstream": "o", "path": "/s",
                       "public_keys": ["IVL40Zt5HSRFMkLhXy6rbLfP-ntqXtMAl5YOBpiB2xI"]}}"#;
    let policy = Policy::from_json(minimal).unwrap();
    assert_eq!(
        policy.revocation.unwrap().max_snapshot_bytes,
        DEFAULT_MAX_BYTES
    );
    let format = std::fs::read_to_string(repo("docs/SNAPSHOT_FORMAT.md")).unwrap();
    assert!(
        format.contains(&format!("default {mib} MiB")),
        "SNAPSHOT_FORMAT.md"
    );
    let configuration = std::fs::read_to_string(repo("docs/CONFIGURATION.md")).unwrap();
    assert!(
        configuration.contains(&format!(
            "| `max_snapshot_bytes` | 1 KiB..=256 MiB | {mib} MiB |"
        )),
        "CONFIGURATION.md"
    );
}

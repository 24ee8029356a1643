//! `revguard check` as an operator uses it: the real binary, a config file, a key set, a
//! snapshot built by `revguard snapshot build`, and a real token. Output is JSON.

mod support;

use serde_json::{json, Value};
use support::{revguard, workdir, Kit, T0};

fn check(args: &[&str]) -> Value {
    let out = revguard(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// keygen -> snapshot build -> check: an operator debugging why a token is refused.
#[test]
fn decides_offline_with_files_built_by_the_cli() {
    let dir = workdir("cli_check_offline");
    let key = dir.join("origin");
    assert!(revguard(&["keygen", "--out", key.to_str().unwrap()])
        .status
        .success());
    let public = std::fs::read_to_string(dir.join("origin.pub")).unwrap();

    let kit = Kit::new();
    let config = json!({
        "issuers": [{"issuer": support::ISSUER, "audiences": [support::AUDIENCE], "algorithms": ["ES256"],
                     "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
        "forward_claims": [{"claim": "sub", "header": "x-auth-subject"}],
        "revocation": {"upstream": "origin", "path": "/s", "public_keys": [public.trim()], "max_staleness_secs": 600}
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, kit.jwks()).unwrap();
    let list = dir.join("revoked.jsonl");
    std::fs::write(&list, "{\"sid\": \"s-bad\"}\n").unwrap();
    let snap = dir.join("current.snap");
    let now = (T0 + 10).to_string();
    let built = revguard(&[
        "snapshot",
        "build",
        "--revocations",
        list.to_str().unwrap(),
        "--generation",
        "7",
        "--key",
        dir.join("origin.key").to_str().unwrap(),
        "--out",
        snap.to_str().unwrap(),
        "--now",
        &T0.to_string(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let good = format!(
        "authorization: Bearer {}",
        kit.token("alice", json!({"sid": "s-good"}))
    );
    let bad = format!(
        "authorization: Bearer {}",
        kit.token("bob", json!({"sid": "s-bad"}))
    );
    let base = [
        "check",
        "--config",
        config_path.to_str().unwrap(),
        "--jwks",
        jwks_path.to_str().unwrap(),
        "--snapshot",
        snap.to_str().unwrap(),
        "--now",
        &now,
        "--path",
        "/orders",
    ];

    let mut args = base.to_vec();
    args.extend(["-H", &good, "-H", "x-auth-subject: forged"]);
    let out = check(&args);
    assert_eq!(out["result"]["decision"], "allow", "{out:#}");
    assert_eq!(
        out["result"]["set_headers"],
        json!([["x-auth-subject", "alice"]])
    );
    assert_eq!(out["engine"]["snapshot_generation"], 7);

    let mut args = base.to_vec();
    args.extend(["-H", &bad]);
    let out = check(&args);
    assert_eq!(out["result"]["decision"], "deny", "{out:#}");
    assert_eq!(out["result"]["reason"], "revoked_session");
    assert_eq!(out["result"]["status"], 401);
    assert!(out["result"]["body"]
        .as_str()
        .unwrap()
        .contains("revoked_session"));
    // The raw token never appears in the output.
    assert!(!out
        .to_string()
        .contains(&bad["authorization: Bearer ".len()..]));
}

#[test]
fn a_snapshot_hit_can_be_answered_with_an_introspection_file() {
    let dir = workdir("cli_check_introspect");
    let kit = Kit::new();
    let mut config: Value = serde_json::from_slice(&kit.config(json!({
        "introspection": {"upstream": "idp", "path": "/introspect", "client_id": "c", "client_secret": "s"}
    })))
    .unwrap();
    config["revocation"]["max_staleness_secs"] = json!(600);
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, kit.jwks()).unwrap();
    let snap = dir.join("s.snap");
    std::fs::write(&snap, kit.snapshot(3, &[support::sid("s-x")])).unwrap();
    let answer = dir.join("answer.json");
    std::fs::write(&answer, r#"{"active": false}"#).unwrap();
    let header = format!(
        "authorization: Bearer {}",
        kit.token("carol", json!({"sid": "s-x"}))
    );
    let now = (T0 + 1).to_string();
    let base = [
        "check",
        "--config",
        config_path.to_str().unwrap(),
        "--jwks",
        jwks_path.to_str().unwrap(),
        "--snapshot",
        snap.to_str().unwrap(),
        "--now",
        &now,
        "-H",
        &header,
    ];
    let out = check(&base);
    assert_eq!(out["result"]["decision"], "introspect", "{out:#}");
    assert_eq!(out["result"]["request"]["upstream"], "idp");
    let mut args = base.to_vec();
    args.extend(["--introspection-response", answer.to_str().unwrap()]);
    assert_eq!(check(&args)["result"]["reason"], "revoked_session");
}

/// `check --config FILE` alone checks the configuration and says so; a request option asks for
/// a decision instead.
#[test]
fn a_config_alone_is_checked_not_decided() {
    let dir = workdir("cli_check_config_only");
    let config_path = dir.join("config.json");
    std::fs::write(
        &config_path,
        json!({
            "issuers": [{"issuer": support::ISSUER, "audiences": [support::AUDIENCE], "algorithms": ["ES256"],
                         "jwks_upstream": {"upstream": "idp", "path": "/jwks"}}],
            "routes": [{"path": "/healthz", "no_auth": true}],
            "introspection": {"upstream": "idp", "path": "/introspect", "client_id": "gw", "client_secret": "s"}
        })
        .to_string(),
    )
    .unwrap();
    let config = config_path.to_str().unwrap();
    let out = revguard(&["check", "--config", config]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("config OK: 1 issuer(s) ("), "{stdout}");
    for part in [
        "1 route rule(s) + the default rule",
        "no revocation snapshot",
        "introspection at idp /introspect",
        "host envoy",
    ] {
        assert!(stdout.contains(part), "{part}: {stdout}");
    }
    assert!(
        !stdout.contains("\"s\""),
        "never the client secret: {stdout}"
    );

    // Any request option: a decision (here, no token on a protected path).
    for request in [["--path", "/orders"], ["--method", "GET"], ["-H", "x-a: b"]] {
        let mut args = vec!["check", "--config", config, "--now", "1767225600"];
        args.extend(request);
        assert_eq!(
            check(&args)["result"]["reason"],
            "missing_token",
            "{request:?}"
        );
    }
    assert_eq!(
        check(&["check", "--config", config, "--path", "/healthz"])["result"]["decision"],
        "allow"
    );
}

#[test]
fn an_invalid_config_lists_every_problem_one_per_line() {
    let dir = workdir("cli_check_every_error");
    let config_path = dir.join("config.json");
    std::fs::write(
        &config_path,
        r#"{"issuers": [{"issuer": "", "audiences": [], "algorithms": ["HS1"]}],
            "clock_skew_secs": 3600}"#,
    )
    .unwrap();
    let out = revguard(&["check", "--config", config_path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        problems,
        [
            "issuers[0].issuer: must not be empty",
            "issuers[0].audiences: list at least one non-empty audience",
            "issuers[0].algorithms[0]: unknown algorithm \"HS1\" (one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512)",
            "issuers[0]: give keys inline (jwks) or an upstream (jwks_upstream), or both",
            "clock_skew_secs: must be at most 600 (10 minutes)",
        ],
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .next()
            .unwrap()
            .ends_with("invalid configuration (5 problems):"),
        "{stderr}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = workdir("cli_check_errors");
    let config_path = dir.join("config.json");
    std::fs::write(
        &config_path,
        r#"{"issuers": [{"issuer": "x", "audiences": ["a"], "algorithms": ["HS1"]}]}"#,
    )
    .unwrap();
    let out = revguard(&["check", "--config", config_path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("issuers[0].algorithms[0]"), "{stderr}");

    let out = revguard(&[
        "check",
        "--config",
        dir.join("missing.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let out = revguard(&["check", "--help"]);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("--introspection-response")
    );
}

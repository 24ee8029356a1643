//! Runs the real `revguard` binary through keygen -> build -> delta -> inspect, and the
//! error cases: each must fail with a clear message and leave no output behind.

mod support;

use std::path::{Path, PathBuf};

use support::{revguard, workdir};

use revguard::snapshot::{IdKind, RevocationState, SnapshotKeys, TokenIds, Verdict};

/// A fixed build time in the past (2026-09-21): `--now` may not be ahead of the clock.
const NOW: u64 = 1_790_000_000;

fn ok(args: &[&str]) -> String {
    let out = revguard(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str], needle: &str) {
    let out = revguard(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

const V1: &str = r#"{"jti":"tok-1"}
{"sid":"sess-1"}

{"sub":"alice","not_before":1789999000}
{"tenant":"acme","not_before":1789990000,"exp":1900000000}
{"jti":"long-gone","exp":1000}
"#;

const V2_EXTRA: &str = r#"{"jti":"tok-2"}
{"sub":"bob","not_before":1790000000}
"#;

struct Setup {
    dir: PathBuf,
    key: PathBuf,
    public: PathBuf,
    v1: PathBuf,
    v2: PathBuf,
    snap: PathBuf,
}

fn setup(name: &str) -> Setup {
    let dir = workdir(&format!("cli_snapshot_{name}"));
    let prefix = dir.join("origin");
    let printed = ok(&["keygen", "--out", p(&prefix)]);
    let (v1, v2) = (dir.join("v1.jsonl"), dir.join("v2.jsonl"));
    std::fs::write(&v1, V1).unwrap();
    std::fs::write(&v2, format!("{V1}{V2_EXTRA}")).unwrap();
    let s = Setup {
        key: dir.join("origin.key"),
        public: dir.join("origin.pub"),
        snap: dir.join("snap.bin"),
        dir,
        v1,
        v2,
    };
    assert_eq!(std::fs::read_to_string(&s.public).unwrap(), printed);
    ok(&[
        "snapshot",
        "build",
        "--revocations",
        p(&s.v1),
        "--generation",
        "10",
        "--key",
        p(&s.key),
        "--out",
        p(&s.snap),
        "--now",
        &NOW.to_string(),
        "--max-age",
        "120",
    ]);
    s
}

#[test]
fn keygen_build_delta_inspect() {
    let s = setup("flow");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&s.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fails(
        &["keygen", "--out", p(&s.dir.join("origin"))],
        "already exists",
    );

    let report = json(&ok(&[
        "snapshot",
        "inspect",
        p(&s.snap),
        "--pubkey",
        p(&s.public),
    ]));
    assert_eq!(report["kind"], "snapshot");
    assert_eq!(report["generation"], 10);
    assert_eq!(report["built_at"], NOW);
    assert_eq!(report["max_age_secs"], 120);
    assert_eq!(
        report["entries"],
        json(r#"{"jti":1,"sid":1,"subjects":1,"tenants":1}"#)
    );
    assert_eq!(report["filter"]["k"], 10);
    assert!(report["filter"]["size_bytes"].as_u64().unwrap() > 0);
    assert!(report["filter"]["expected_fp_rate"].as_f64().unwrap() < 0.001);
    assert_eq!(report["signature_valid"], true);
    let unsigned = json(&ok(&["snapshot", "inspect", p(&s.snap)]));
    assert_eq!(unsigned["signature_valid"], serde_json::Value::Null);
    // Key text is base64url and may begin with '-' (one key in 64): a value, not an option.
    let other_key = json(&ok(&[
        "snapshot",
        "inspect",
        p(&s.snap),
        "--pubkey",
        "-cQ_q4xSvLVdOds5AUkuzogfz9XG_rpvP3qQ0t2gUPI",
    ]));
    assert_eq!(other_key["signature_valid"], false);

    let delta = s.dir.join("delta.bin");
    ok(&[
        "snapshot",
        "delta",
        "--base",
        p(&s.snap),
        "--from",
        p(&s.v1),
        "--to",
        p(&s.v2),
        "--generation",
        "11",
        "--key",
        p(&s.key),
        "--out",
        p(&delta),
        "--now",
        &(NOW + 30).to_string(),
    ]);
    let public_text = std::fs::read_to_string(&s.public).unwrap();
    let report = json(&ok(&[
        "snapshot",
        "inspect",
        p(&delta),
        "--pubkey",
        public_text.trim(),
    ]));
    assert_eq!(report["kind"], "delta");
    assert_eq!(
        (
            report["generation"].as_u64(),
            report["base_generation"].as_u64()
        ),
        (Some(11), Some(10))
    );
    assert_eq!(
        report["entries"],
        json(r#"{"jti":1,"sid":0,"subjects":1,"tenants":0}"#)
    );
    assert_eq!(report["signature_valid"], true);

    // What the CLI wrote is what the plugin accepts.
    let keys = SnapshotKeys::parse(&[public_text]).unwrap();
    let mut state =
        RevocationState::from_snapshot(&std::fs::read(&s.snap).unwrap(), &keys).unwrap();
    state
        .apply_delta(&std::fs::read(&delta).unwrap(), &keys)
        .unwrap();
    assert_eq!(state.generation(), 11);
    let token = |jti, sub| TokenIds {
        jti: Some(jti),
        sub: Some(sub),
        issued_at: Some(NOW - 10),
        ..TokenIds::default()
    };
    assert_eq!(
        state.check(&token("tok-2", "carol")),
        Verdict::Revoked(IdKind::Jti)
    );
    assert_eq!(
        state.check(&token("tok-1", "carol")),
        Verdict::MaybeRevoked(IdKind::Jti)
    );
    assert_eq!(
        state.check(&token("x", "bob")),
        Verdict::Revoked(IdKind::Subject)
    );
    assert_eq!(state.check(&token("x", "alice")), Verdict::Clear);
}

#[test]
fn a_wrong_public_key_reports_an_invalid_signature() {
    let s = setup("wrongkey");
    ok(&["keygen", "--out", p(&s.dir.join("other"))]);
    let report = json(&ok(&[
        "snapshot",
        "inspect",
        p(&s.snap),
        "--pubkey",
        p(&s.dir.join("other.pub")),
    ]));
    assert_eq!(report["signature_valid"], false);
    let both = json(&ok(&[
        "snapshot",
        "inspect",
        p(&s.snap),
        "--pubkey",
        p(&s.dir.join("other.pub")),
        "--pubkey",
        p(&s.public),
    ]));
    assert_eq!(both["signature_valid"], true);
}

#[test]
fn errors_are_clear_and_write_nothing() {
    let s = setup("errors");
    let out = s.dir.join("out.bin");
    let bad = s.dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"jti\":\"a\"}\n{\"jti\":\"b\",\"sid\":\"c\"}\n").unwrap();
    let build = |list: &Path, key: &Path, extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "build",
            "--revocations",
            p(list),
            "--generation",
            "1",
            "--key",
            p(key),
            "--out",
            p(&out),
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, needle: &str| {
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle)
    };
    run(build(&bad, &s.key, &[]), "line 2");
    run(
        build(&s.dir.join("missing.jsonl"), &s.key, &[]),
        "cannot read",
    );
    run(build(&s.v1, &s.public, &[]), "not a revguard signing key");
    run(
        build(&s.v1, &s.key, &["--fp-rate", "2"]),
        "false-positive rate",
    );
    run(build(&s.v1, &s.key, &["--max-age", "0"]), "max age");
    fails(
        &[
            "snapshot",
            "build",
            "--revocations",
            p(&s.v1),
            "--generation",
            "x",
        ],
        "invalid value",
    );
    fails(
        &[
            "snapshot",
            "delta",
            "--base",
            p(&s.snap),
            "--from",
            p(&s.v1),
            "--to",
            p(&s.v2),
            "--generation",
            "10",
            "--key",
            p(&s.key),
            "--out",
            p(&out),
        ],
        "greater than the base",
    );
    fails(
        &[
            "snapshot",
            "delta",
            "--base",
            p(&s.v1),
            "--from",
            p(&s.v1),
            "--to",
            p(&s.v2),
            "--generation",
            "11",
            "--key",
            p(&s.key),
            "--out",
            p(&out),
        ],
        "bad magic",
    );
    fails(&["snapshot", "inspect", p(&s.v1)], "bad magic");
    fails(
        &["snapshot", "inspect", p(&s.snap), "--pubkey", "not-a-key"],
        "public key #0",
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn every_command_has_help() {
    for args in [
        &["keygen", "--help"][..],
        &["snapshot", "--help"],
        &["snapshot", "build", "--help"],
        &["snapshot", "delta", "--help"],
        &["snapshot", "inspect", "--help"],
        &["origin", "--help"],
        &["origin", "serve", "--help"],
        &["origin", "export", "--help"],
        &["origin", "token", "--help"],
    ] {
        let text = ok(args);
        assert!(text.contains("Usage:"), "{args:?}");
    }
}

#[test]
fn generations_that_would_lock_gateways_are_refused() {
    let s = setup("generations");
    let out = s.dir.join("out.bin");
    let build = |generation: &str, extra: &[&str]| {
        let mut args = vec![
            "snapshot".to_string(),
            "build".into(),
            "--revocations".into(),
            p(&s.v1).into(),
            "--generation".into(),
            generation.into(),
            "--key".into(),
            p(&s.key).into(),
            "--out".into(),
            p(&out).into(),
            "--now".into(),
            NOW.to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let run_fails = |args: Vec<String>, needle: &str| {
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle)
    };
    run_fails(build(&u64::MAX.to_string(), &[]), "2^53");
    run_fails(build(&((1u64 << 53) + 1).to_string(), &[]), "2^53");
    run_fails(build("0", &[]), "between 1 and");
    // A step over 1,000,000 from the previous snapshot needs --force.
    run_fails(build("1000011", &["--previous", p(&s.snap)]), "--force");
    run_fails(build("10", &["--previous", p(&s.snap)]), "greater than");
    assert!(!out.exists());
    let args = build("1000011", &["--previous", p(&s.snap), "--force"]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = build("11", &["--previous", p(&s.snap)]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let delta = |generation: &str, extra: &[&str]| {
        let mut args = vec![
            "snapshot".to_string(),
            "delta".into(),
            "--base".into(),
            p(&s.snap).into(),
            "--from".into(),
            p(&s.v1).into(),
            "--to".into(),
            p(&s.v2).into(),
            "--generation".into(),
            generation.into(),
            "--key".into(),
            p(&s.key).into(),
            "--out".into(),
            p(&s.dir.join("d.bin")).into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    run_fails(delta(&u64::MAX.to_string(), &[]), "2^53");
    run_fails(delta("2000000", &[]), "--force");
    let args = delta("2000000", &["--force"]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn a_build_time_in_the_future_is_refused() {
    let s = setup("future");
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = s.dir.join("future.bin");
    let build = |now: u64| {
        vec![
            "snapshot".to_string(),
            "build".into(),
            "--revocations".into(),
            p(&s.v1).into(),
            "--generation".into(),
            "20".into(),
            "--key".into(),
            p(&s.key).into(),
            "--out".into(),
            p(&out).into(),
            "--now".into(),
            now.to_string(),
        ]
    };
    let args = build(clock + 3600);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "ahead of the clock",
    );
    assert!(!out.exists());
    let args = build(clock + 60);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    fails(
        &[
            "snapshot",
            "delta",
            "--base",
            p(&s.snap),
            "--from",
            p(&s.v1),
            "--to",
            p(&s.v2),
            "--generation",
            "11",
            "--key",
            p(&s.key),
            "--out",
            p(&s.dir.join("d.bin")),
            "--now",
            &(clock + 3600).to_string(),
        ],
        "ahead of the clock",
    );
}

//! Compatibility of the byte format: checked-in snapshot and delta files (tests/fixtures/)
//! must keep decoding, verifying and answering exactly as recorded, and rebuilding them from
//! the checked-in lists with the same key and salt must give the same bytes.
//!
//! Regenerate (only for a deliberate format change, with a version bump and a note in
//! docs/SNAPSHOT_FORMAT.md): `REVGUARD_REGENERATE_FIXTURES=1 cargo test --test snapshot_compat`.

use std::hash::Hasher;
use std::path::PathBuf;

use bloomfilter::reexports::siphasher::sip::SipHasher13;
use revguard::snapshot::{
    bloom_seed, build_delta, build_snapshot, inspect, parse_revocations, BuildOptions,
    DeltaOptions, RevocationLimits, RevocationState, SigningKey, SnapshotKeys, TokenIds, Verdict,
};
use serde_json::{json, Value};

/// The fixture signing key's seed (a public test key: never use it for anything else).
const KEY_SEED: [u8; 32] = [0x42; 32];
const BUILT_AT: u64 = 1_750_000_000;

fn salt() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn build_fixtures() -> (Vec<u8>, Vec<u8>) {
    let key = SigningKey::from_seed(KEY_SEED).unwrap();
    let limits = RevocationLimits::default();
    let base = parse_revocations(&read("revocations.jsonl"), &limits).unwrap();
    let added = parse_revocations(&read("added.jsonl"), &limits).unwrap();
    let opts = BuildOptions {
        generation: 41,
        built_at: BUILT_AT,
        max_age_secs: 300,
        fp_rate: 0.001,
        salt: salt(),
    };
    let snapshot = build_snapshot(&base, &opts, &key).unwrap();
    let dopts = DeltaOptions {
        generation: 42,
        built_at: BUILT_AT + 60,
        max_age_secs: 120,
    };
    let delta = build_delta(&snapshot, &added, &dopts, &key).unwrap();
    (snapshot, delta)
}

/// The documented id hash: HMAC-SHA256(salt, label || 0x00 || value)[0..16].
fn id_hash(label: &str, value: &str) -> [u8; 16] {
    let msg = [label.as_bytes(), &[0], value.as_bytes()].concat();
    hmac_sha256::HMAC::mac(msg, salt())[..16]
        .try_into()
        .unwrap()
}

/// The documented Bloom bit positions of a hashed id.
fn bit_positions(id: &[u8; 16], seed: &[u8; 32], k: u64, bits: u64) -> Vec<u64> {
    let sip = |key: &[u8]| {
        let mut h = SipHasher13::new_with_key(key.try_into().unwrap());
        h.write(id);
        h.finish()
    };
    let (h0, h1) = (sip(&seed[..16]), sip(&seed[16..]));
    (0..k)
        .map(|i| match i {
            0 => h0 % bits,
            1 => h1 % bits,
            _ => (h0.wrapping_add(i.wrapping_mul(h1)) % 0xFFFF_FFFF_FFFF_FFC5) % bits,
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Token cases and the verdicts expected with the snapshot alone and with the delta.
fn cases() -> Vec<(Value, TokenIds<'static>)> {
    let t = |jti, sid, sub, tenant, iat| TokenIds {
        jti,
        sid,
        sub,
        tenant,
        issued_at: iat,
    };
    vec![
        (
            json!("revoked jti"),
            t(Some("jti-revoked-1"), None, Some("u"), None, Some(BUILT_AT)),
        ),
        (
            json!("revoked sid"),
            t(
                Some("fresh"),
                Some("sid-revoked-1"),
                Some("u"),
                None,
                Some(BUILT_AT),
            ),
        ),
        (
            json!("clear"),
            t(
                Some("fresh"),
                Some("sid-fresh"),
                Some("u"),
                Some("t"),
                Some(BUILT_AT),
            ),
        ),
        (
            json!("expired entry dropped"),
            t(Some("jti-expired"), None, None, None, Some(BUILT_AT)),
        ),
        (
            json!("subject before"),
            t(
                Some("fresh"),
                None,
                Some("user-7"),
                None,
                Some(1_749_999_999),
            ),
        ),
        (
            json!("subject at"),
            t(
                Some("fresh"),
                None,
                Some("user-7"),
                None,
                Some(1_750_000_000),
            ),
        ),
        (
            json!("subject no iat"),
            t(Some("fresh"), None, Some("user-7"), None, None),
        ),
        (
            json!("tenant before"),
            t(None, None, Some("u"), Some("tenant-a"), Some(1_740_000_000)),
        ),
        (
            json!("delta jti"),
            t(Some("jti-added-1"), None, None, None, Some(BUILT_AT)),
        ),
        (
            json!("delta sid"),
            t(None, Some("sid-added-1"), None, None, Some(BUILT_AT)),
        ),
        (
            json!("delta subject"),
            t(None, None, Some("user-8"), None, Some(BUILT_AT)),
        ),
        (
            json!("delta tenant"),
            t(None, None, None, Some("tenant-b"), Some(BUILT_AT)),
        ),
    ]
}

fn answers(snapshot: &[u8], delta: &[u8], keys: &SnapshotKeys) -> Value {
    let mut state = RevocationState::from_snapshot(snapshot, keys).unwrap();
    let before: Vec<Verdict> = cases().iter().map(|(_, ids)| state.check(ids)).collect();
    state.apply_delta(delta, keys).unwrap();
    let after: Vec<Verdict> = cases().iter().map(|(_, ids)| state.check(ids)).collect();
    let checks: Vec<Value> = cases()
        .into_iter()
        .zip(before.iter().zip(after.iter()))
        .map(|((name, _), (b, a))| json!({"case": name, "snapshot": b, "with_delta": a}))
        .collect();
    let example = id_hash("jti", "jti-revoked-1");
    let report = inspect(snapshot, Some(keys)).unwrap();
    let filter = report.filter.clone().unwrap();
    let mut snapshot_report = serde_json::to_value(&report).unwrap();
    // Floats are recorded as rounded text: JSON float round trips are not exact.
    for field in ["expected_fp_rate", "bits_per_entry"] {
        let value = &mut snapshot_report["filter"][field];
        *value = json!(format!("{:.9e}", value.as_f64().unwrap()));
    }
    json!({
        "snapshot": snapshot_report,
        "delta": serde_json::to_value(inspect(delta, Some(keys)).unwrap()).unwrap(),
        "state_after_delta": {"generation": state.generation(), "built_at": state.built_at(), "max_age_secs": state.max_age_secs()},
        "worked_example": {
            "jti": "jti-revoked-1",
            "hashed_id": hex(&example),
            "bloom_seed": hex(&bloom_seed(&salt())),
            "bit_positions": bit_positions(&example, &bloom_seed(&salt()), u64::from(filter.k), filter.size_bytes * 8),
        },
        "checks": checks,
    })
}

#[test]
fn fixtures_decode_verify_and_answer_as_recorded() {
    let key = SigningKey::from_seed(KEY_SEED).unwrap();
    if std::env::var_os("REVGUARD_REGENERATE_FIXTURES").is_some() {
        let (snapshot, delta) = build_fixtures();
        std::fs::write(fixture("snapshot.bin"), &snapshot).unwrap();
        std::fs::write(fixture("delta.bin"), &delta).unwrap();
        std::fs::write(
            fixture("origin.pub"),
            format!("{}\n", key.public_key_text()),
        )
        .unwrap();
        let keys = SnapshotKeys::parse(&[key.public_key_text()]).unwrap();
        let expected = answers(&snapshot, &delta, &keys);
        std::fs::write(
            fixture("expected.json"),
            serde_json::to_string_pretty(&expected).unwrap() + "\n",
        )
        .unwrap();
    }
    let snapshot = read("snapshot.bin");
    let delta = read("delta.bin");
    let public = String::from_utf8(read("origin.pub")).unwrap();
    assert_eq!(public.trim(), key.public_key_text());
    let keys = SnapshotKeys::parse(&[public]).unwrap();
    let expected: Value = serde_json::from_slice(&read("expected.json")).unwrap();
    assert_eq!(answers(&snapshot, &delta, &keys), expected);

    // The documented bit positions of the worked example are set in the stored bitmap
    // (offset 115, little-endian bit order inside each byte).
    let bitmap_len = u32::from_be_bytes(snapshot[111..115].try_into().unwrap()) as usize;
    let bitmap = &snapshot[115..115 + bitmap_len];
    for bit in expected["worked_example"]["bit_positions"]
        .as_array()
        .unwrap()
    {
        let bit = bit.as_u64().unwrap() as usize;
        assert!(bitmap[bit / 8] & (1 << (bit % 8)) != 0, "bit {bit}");
    }

    // The encoder is deterministic for a given key and salt: same lists, same bytes.
    let (rebuilt_snapshot, rebuilt_delta) = build_fixtures();
    assert_eq!(rebuilt_snapshot, snapshot, "snapshot encoding changed");
    assert_eq!(rebuilt_delta, delta, "delta encoding changed");
}

#[test]
fn fixture_is_refused_by_another_key_and_when_altered() {
    let other = SigningKey::from_seed([0x43; 32]).unwrap();
    let keys = SnapshotKeys::parse(&[other.public_key_text()]).unwrap();
    assert!(RevocationState::from_snapshot(&read("snapshot.bin"), &keys).is_err());
    let good = SnapshotKeys::parse(&[String::from_utf8(read("origin.pub")).unwrap()]).unwrap();
    let mut snapshot = read("snapshot.bin");
    let mid = snapshot.len() / 2;
    snapshot[mid] ^= 1;
    assert!(RevocationState::from_snapshot(&snapshot, &good).is_err());
}

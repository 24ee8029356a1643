//! Fault campaign: each fault of the origin, the IdP and the key set, and a worker VM restart,
//! injected into a two-worker proxy running the real .wasm with the default (closed) failure
//! modes. For each: no token revoked before the fault is accepted while it lasts, no request
//! waits past the callout timeout plus one second, and the proxy recovers when it ends (new
//! revocations enforced, the IdP answering again, new keys used). Prints a pass/fail table.

use crate::campaign::{full, now_secs, scale, table, Rng};
use crate::rg::*;
use revguard::snapshot::RevocationTarget;
use revguard_test_host::{HttpRequest, HttpResponse, MetricValue, Outcome, Proxy, ProxyConfig};
use serde_json::json;
use std::time::Duration;

const WORKERS: usize = 2;
/// The longest a request may wait: the introspection timeout (500 ms) plus one second.
const MAX_WAIT: Duration = Duration::from_millis(1500);
/// How long after a fault ends the proxy has to recover.
const RECOVERY_BOUND_SECS: u64 = 30;

/// A proxy with a valid token, a subject revoked exactly, and tokens revoked by `jti` in the
/// snapshot's filter (each denial needs an introspection call: every one is used once).
struct Bed {
    proxy: Proxy,
    issuer: Issuer,
    origin: Origin,
    idp: Idp,
    valid: String,
    revoked: String,
    fresh_hits: Vec<String>,
    /// Tokens that must be denied during the fault besides `revoked` and fresh hits.
    must_deny: Vec<String>,
    /// What each worker must answer once recovered (`"denied"`: anything but allow).
    recovery: Vec<(String, &'static str)>,
    /// Probe a fresh filter hit during recovery (the IdP must answer `revoked`).
    recovery_hit: bool,
    /// Origin requests seen when the fault began (the restart row checks none follow).
    origin_calls_at_start: usize,
    longest_wait: Duration,
    hung: usize,
}

impl Bed {
    fn new(seed: u64) -> Bed {
        let issuer = Issuer::new(&["k1", "k2"]);
        let origin = Origin::new(issuer.jwks(&["k1"]));
        let idp = Idp::new();
        let plugin = config(ENVOY, &origin.public_key(), json!({}));
        let proxy = start(ProxyConfig::envoy(), WORKERS, plugin, ENVOY, &origin, &idp);
        let valid = issuer.token("k1", "val", &format!("v-{seed:x}"), None, T0);
        let revoked = issuer.token("k1", "rev", "r-1", None, T0);
        origin.revoke(RevocationTarget::Subject {
            sub: "rev".into(),
            not_before: T0 + 1,
        });
        let fresh_hits = (0..40)
            .map(|i| {
                origin.revoke(RevocationTarget::Jti(format!("h-{i}")));
                issuer.token("k1", &format!("hit-{i}"), &format!("h-{i}"), None, T0)
            })
            .collect();
        origin.publish_snapshot(T0 + 3);
        let mut bed = Bed {
            proxy,
            issuer,
            origin,
            idp,
            valid,
            revoked,
            fresh_hits,
            must_deny: Vec::new(),
            recovery: Vec::new(),
            recovery_hit: false,
            origin_calls_at_start: 0,
            longest_wait: Duration::ZERO,
            hung: 0,
        };
        bed.proxy.advance(Duration::from_secs(12)).unwrap();
        for w in 0..WORKERS {
            let (v, r) = (bed.valid.clone(), bed.revoked.clone());
            assert_eq!(bed.ask(w, &v), "allow", "setup");
            assert_eq!(bed.ask(w, &r), "revoked_subject", "setup");
        }
        bed
    }

    /// Sends `token` through `worker` and returns the verdict (`"hung"` if still paused).
    fn ask(&mut self, worker: usize, token: &str) -> String {
        let before = self.proxy.config().clock.now_nanos();
        let request =
            HttpRequest::get("api", "/orders").header("authorization", format!("Bearer {token}"));
        let (stream, outcome) = self.proxy.run_request(worker, request, MAX_WAIT).unwrap();
        let waited = Duration::from_nanos(self.proxy.config().clock.now_nanos() - before);
        self.longest_wait = self.longest_wait.max(waited);
        let verdict = match verdict(&outcome) {
            Some(v) if v != "reset" => v,
            _ => {
                self.hung += 1;
                "hung".to_string()
            }
        };
        if matches!(outcome, Outcome::Continued(_)) {
            self.proxy.finish(stream, HttpResponse::new(200)).unwrap();
        } else {
            self.proxy.end_stream(stream).unwrap();
        }
        verdict
    }

    fn fresh_hit(&mut self) -> String {
        self.fresh_hits.pop().expect("enough fresh filter hits")
    }

    fn now(&self) -> u64 {
        now_secs(&self.proxy)
    }

    /// Revokes a second subject and returns its token, expected denied after recovery.
    fn revoke_second(&mut self) -> String {
        let token = self.issuer.token("k1", "rev2", "r2-1", None, T0);
        self.origin.revoke(RevocationTarget::Subject {
            sub: "rev2".into(),
            not_before: T0 + 1,
        });
        self.recovery.push((token.clone(), "revoked_subject"));
        token
    }

    fn generation(&self) -> Option<MetricValue> {
        self.proxy.guest_metric("revguard_snapshot_generation")
    }
}

struct Fault {
    name: &'static str,
    secs: u64,
    start: fn(&mut Bed),
    end: fn(&mut Bed),
}

fn origin_fault(bed: &mut Bed, mode: OriginMode) {
    bed.revoke_second();
    let now = bed.now();
    bed.origin.publish_snapshot(now);
    bed.origin.set_mode(mode);
}

fn origin_up(bed: &mut Bed) {
    bed.origin.set_mode(OriginMode::Up);
    bed.origin.set_delay(Duration::ZERO);
}

fn idp_fault(bed: &mut Bed, mode: IdpMode, delay: Duration) {
    bed.idp.set_mode(mode, delay);
    bed.recovery_hit = true;
}

fn idp_up(bed: &mut Bed) {
    bed.idp.set_mode(IdpMode::Up, Duration::from_millis(20));
}

fn faults() -> Vec<Fault> {
    vec![
        Fault {
            name: "origin down",
            secs: 30,
            start: |b| origin_fault(b, OriginMode::Down),
            end: origin_up,
        },
        Fault {
            name: "origin slow (2 s, timeout 1 s)",
            secs: 30,
            start: |b| {
                origin_fault(b, OriginMode::Up);
                b.origin.set_delay(Duration::from_secs(2));
            },
            end: origin_up,
        },
        Fault {
            name: "origin garbage",
            secs: 30,
            start: |b| origin_fault(b, OriginMode::Garbage),
            end: origin_up,
        },
        Fault {
            name: "origin truncated body",
            secs: 30,
            start: |b| origin_fault(b, OriginMode::Truncated),
            end: origin_up,
        },
        Fault {
            name: "origin old generation (without the revocation)",
            secs: 30,
            start: |b| b.origin.roll_back(),
            end: |b| {
                b.revoke_second();
                let now = b.now();
                b.origin.publish_snapshot(now);
            },
        },
        Fault {
            name: "origin wrong signature",
            secs: 30,
            start: |b| {
                b.origin.forge(true);
                origin_fault(b, OriginMode::Up);
            },
            end: |b| {
                b.origin.forge(false);
                let now = b.now();
                b.origin.publish_snapshot(now);
            },
        },
        Fault {
            name: "IdP down",
            secs: 30,
            start: |b| idp_fault(b, IdpMode::Down, Duration::ZERO),
            end: idp_up,
        },
        Fault {
            name: "IdP slow (2 s, timeout 500 ms)",
            secs: 30,
            start: |b| idp_fault(b, IdpMode::Up, Duration::from_secs(2)),
            end: idp_up,
        },
        Fault {
            name: "IdP garbage",
            secs: 30,
            start: |b| idp_fault(b, IdpMode::Garbage, Duration::from_millis(20)),
            end: idp_up,
        },
        Fault {
            name: "key-set rotation (k1 dropped, k2 new)",
            secs: 15,
            start: |b| {
                b.origin.set_jwks(b.issuer.jwks(&["k2"]));
                let valid_k2 = b.issuer.token("k2", "val", "v-k2", None, T0);
                let revoked_k2 = b.issuer.token("k2", "rev", "r-k2", None, T0);
                b.must_deny.push(revoked_k2.clone());
                b.recovery = vec![
                    (valid_k2, "allow"),
                    (revoked_k2, "revoked_subject"),
                    (b.valid.clone(), "unknown_key"),
                ];
            },
            end: |_| {},
        },
        Fault {
            name: "key-set outage (330 s, across a refresh)",
            secs: 330,
            start: |b| {
                b.origin.set_path_mode("/jwks", Some(OriginMode::Down));
                // Asked for during the outage: unknown kid, refetch fails, old keys stay.
                let valid_k2 = b.issuer.token("k2", "val", "v-k2", None, T0);
                b.must_deny
                    .push(b.issuer.token("k2", "rev", "r-k2", None, T0));
                b.recovery = vec![(valid_k2, "allow")];
            },
            end: |b| {
                b.origin.set_path_mode("/jwks", None);
                b.origin.set_jwks(b.issuer.jwks(&["k1", "k2"]));
            },
        },
        Fault {
            name: "worker VM restart",
            secs: 3,
            start: |b| {
                // Restart just after a fetch round, so no other worker fetches for a while.
                let calls = b.origin.upstream.requests().len();
                for _ in 0..12 {
                    b.proxy.advance(Duration::from_secs(1)).unwrap();
                    if b.origin.upstream.requests().len() > calls {
                        break;
                    }
                }
                b.proxy.advance(Duration::from_secs(1)).unwrap();
                b.origin_calls_at_start = b.origin.upstream.requests().len();
                b.proxy.restart_worker(1).unwrap();
            },
            end: |_| {},
        },
    ]
}

struct Row {
    name: &'static str,
    revoked_asked: usize,
    revoked_allowed: usize,
    valid_asked: usize,
    valid_allowed: usize,
    /// Whether the valid token must stay allowed throughout (not when its key is rotated out).
    valid_must_pass: bool,
    longest_wait: Duration,
    hung: usize,
    recovered_after: Option<u64>,
    note: String,
}

impl Row {
    fn pass(&self) -> bool {
        self.revoked_allowed == 0
            && self.hung == 0
            && self.recovered_after.is_some()
            && (!self.valid_must_pass || self.valid_allowed == self.valid_asked)
    }

    /// Adds another round of the same fault: counts summed, the worst wait and recovery kept.
    fn absorb(&mut self, other: Row) {
        self.revoked_asked += other.revoked_asked;
        self.revoked_allowed += other.revoked_allowed;
        self.valid_asked += other.valid_asked;
        self.valid_allowed += other.valid_allowed;
        self.longest_wait = self.longest_wait.max(other.longest_wait);
        self.hung += other.hung;
        self.recovered_after = self
            .recovered_after
            .zip(other.recovered_after)
            .map(|(a, b)| a.max(b));
        if self.note.is_empty() {
            self.note = other.note;
        }
    }
}

/// Whether every worker gives the recovery answers now.
fn recovered(bed: &mut Bed) -> bool {
    let mut checks = vec![
        (bed.valid.clone(), "allow"),
        (bed.revoked.clone(), "denied"),
    ];
    if !bed.recovery.is_empty() {
        checks = bed.recovery.clone();
        checks.push((bed.revoked.clone(), "denied"));
    }
    let mut ok = true;
    for w in 0..WORKERS {
        for (token, expected) in &checks {
            let verdict = bed.ask(w, token);
            ok &= match *expected {
                "denied" => verdict != "allow",
                e => verdict == e,
            };
        }
        if bed.recovery_hit {
            let hit = bed.fresh_hit();
            ok &= bed.ask(w, &hit) == "revoked";
        }
    }
    ok
}

fn run(fault: &Fault, seed: u64) -> Row {
    let mut bed = Bed::new(seed);
    let generation_before = bed.generation();
    (fault.start)(&mut bed);
    let mut row = Row {
        name: fault.name,
        revoked_asked: 0,
        revoked_allowed: 0,
        valid_asked: 0,
        valid_allowed: 0,
        valid_must_pass: !fault.name.starts_with("key-set rotation"),
        longest_wait: Duration::ZERO,
        hung: 0,
        recovered_after: None,
        note: String::new(),
    };
    // Probe every second for short faults, every 5 s for long ones.
    let step = if fault.secs > 60 { 5 } else { 1 };
    let mut elapsed = 0;
    while elapsed < fault.secs {
        for w in 0..WORKERS {
            let valid = bed.valid.clone();
            row.valid_asked += 1;
            row.valid_allowed += usize::from(bed.ask(w, &valid) == "allow");
            let mut revoked = vec![bed.revoked.clone()];
            revoked.extend(bed.must_deny.clone());
            if elapsed % (5 * step * step) == 0 {
                revoked.push(bed.fresh_hit());
            }
            for token in revoked {
                row.revoked_asked += 1;
                row.revoked_allowed += usize::from(bed.ask(w, &token) == "allow");
            }
        }
        bed.proxy.advance(Duration::from_secs(step)).unwrap();
        elapsed += step;
        // The origin re-signs (a delta) well within the 120 s staleness bound.
        if elapsed % 30 == 0 && fault.secs > 60 {
            let now = bed.now();
            bed.origin.publish_delta(now);
        }
    }
    if fault.name.starts_with("origin old") || fault.name.starts_with("origin wrong") {
        assert_eq!(
            bed.generation(),
            generation_before,
            "{}: bad data refused",
            fault.name
        );
    }
    (fault.end)(&mut bed);
    for second in 0..=RECOVERY_BOUND_SECS {
        if recovered(&mut bed) {
            row.recovered_after = Some(second);
            break;
        }
        bed.proxy.advance(Duration::from_secs(1)).unwrap();
    }
    if fault.name == "worker VM restart" {
        let fetched = bed.origin.upstream.requests()[bed.origin_calls_at_start..]
            .iter()
            .map(|r| r.headers.get_str(":path").unwrap_or("").to_string())
            .collect::<Vec<_>>();
        row.note = format!("origin fetches after the restart: {fetched:?}");
        if !fetched.is_empty() {
            row.recovered_after = None;
        }
    }
    row.longest_wait = bed.longest_wait;
    row.hung = bed.hung;
    row
}

#[test]
fn campaign_faults_revoked_denied_nothing_hangs_and_recovery() {
    let mut rng = Rng::from_env("faults", 0x6661_756c_7473_0001);
    let rounds = scale(1, 3);
    let mut rows: Vec<Row> = Vec::new();
    for round in 0..rounds {
        for (i, fault) in faults().iter().enumerate() {
            let row = run(fault, rng.next_u64());
            if round == 0 {
                rows.push(row);
            } else {
                rows[i].absorb(row);
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let yes_no = |ok: bool| if ok { "yes" } else { "NO" }.to_string();
            vec![
                r.name.to_string(),
                format!(
                    "{} ({}/{} denied)",
                    yes_no(r.revoked_allowed == 0),
                    r.revoked_asked - r.revoked_allowed,
                    r.revoked_asked
                ),
                format!(
                    "{}/{}{}",
                    r.valid_allowed,
                    r.valid_asked,
                    if r.valid_must_pass {
                        ""
                    } else {
                        " (its key rotated out)"
                    }
                ),
                format!(
                    "{} (longest {} ms)",
                    yes_no(r.hung == 0),
                    r.longest_wait.as_millis()
                ),
                match r.recovered_after {
                    Some(s) => format!("yes (after {s} s)"),
                    None => "NO".to_string(),
                },
                if r.pass() { "PASS" } else { "FAIL" }.to_string(),
            ]
        })
        .collect();
    println!(
        "\n### Faults ({}, {rounds} round(s), counts summed)\n\n{}",
        if full() { "full" } else { "smoke" },
        table(
            &[
                "fault",
                "revoked denied during fault",
                "valid allowed during fault",
                "no hung request",
                "recovered after fault",
                "result"
            ],
            &cells
        )
    );
    for r in &rows {
        if !r.note.is_empty() {
            println!("{}: {}", r.name, r.note);
        }
    }
    let failed: Vec<&str> = rows.iter().filter(|r| !r.pass()).map(|r| r.name).collect();
    assert!(failed.is_empty(), "failed: {failed:?}");
}

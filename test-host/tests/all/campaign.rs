//! What the test-host campaigns share: the scale knob, a seeded PRNG, the simulated time,
//! percentiles and Markdown tables.

use revguard_test_host::Proxy;

/// `REVGUARD_CAMPAIGN=full` runs the long versions (`test-host/campaigns`); anything else the
/// smoke versions that run in `cargo test --workspace`.
pub fn full() -> bool {
    std::env::var("REVGUARD_CAMPAIGN").is_ok_and(|v| v == "full")
}

/// `smoke` or `full` by the scale knob.
pub fn scale<T>(smoke: T, full_value: T) -> T {
    if full() {
        full_value
    } else {
        smoke
    }
}

/// SplitMix64. No crate: the campaigns only need reproducible bytes from a printed seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `REVGUARD_SEED` if set (decimal or 0x-hex), else `default`; prints the seed
    /// so a failing run can be replayed.
    pub fn from_env(campaign: &str, default: u64) -> Rng {
        let seed = std::env::var("REVGUARD_SEED")
            .ok()
            .and_then(|s| match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            })
            .unwrap_or(default);
        println!(
            "campaign {campaign}: seed {seed:#x} (replay with REVGUARD_SEED={seed:#x}), scale {}",
            if full() { "full" } else { "smoke" }
        );
        Rng(seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The proxy's simulated time in Unix seconds.
pub fn now_secs(proxy: &Proxy) -> u64 {
    proxy.config().clock.now_nanos() / 1_000_000_000
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A Markdown table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", headers.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Nanoseconds as a short human figure (`8.1 µs`, `1.02 ms`).
pub fn human_nanos(n: u64) -> String {
    match n {
        0..=999 => format!("{n} ns"),
        1_000..=999_999 => format!("{:.1} µs", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", n as f64 / 1e6),
        _ => format!("{:.2} s", n as f64 / 1e9),
    }
}

#[test]
fn campaign_support_prng_is_reproducible_and_percentiles_rank() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    assert_eq!(a.bytes(64), b.bytes(64));
    assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
    let v: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile(&v, 50.0), 50);
    assert_eq!(percentile(&v, 99.0), 99);
    assert_eq!(percentile(&v, 100.0), 100);
}

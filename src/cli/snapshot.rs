//! `revguard snapshot build | delta | inspect`: the origin side of the revocation snapshot.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use revguard::snapshot::{
    build_delta, build_snapshot, inspect, parse_revocations, snapshot_header, BuildOptions,
    DeltaOptions, Revocation, RevocationLimits, RevocationTarget, SigningKey, SnapshotKeys,
    DEFAULT_FP_RATE, DEFAULT_MAX_AGE_SECS, MAX_FUTURE_SKEW_SECS, MAX_GENERATION,
    MAX_GENERATION_STEP,
};

use super::{print_json, read_file, write_atomic, CliResult};

#[derive(Subcommand)]
pub enum Command {
    /// Build and sign a full snapshot from a JSON Lines revocation list.
    ///
    /// Each line is one of {"jti":".."}, {"sid":".."}, {"sub":"..","not_before":<unix s>},
    /// {"tenant":"..","not_before":<unix s>}, optionally with "exp":<unix s> (entries
    /// expired at build time are dropped). Every build uses a fresh random salt.
    Build(BuildArgs),
    /// Build and sign a delta: the revocations in --to that are not in --from, for the
    /// base snapshot (its generation and salt are read from --base).
    ///
    /// Deltas are cumulative: make --from the list the base snapshot was built from, so
    /// the delta holds every addition since that snapshot.
    Delta(DeltaArgs),
    /// Print a snapshot's or delta's header, entry counts and filter dimensions as JSON.
    ///
    /// With --pubkey, also checks the signature: "signature_valid" is true or false
    /// (null without --pubkey). The exit status is 0 either way if the file is readable.
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The revocation list (JSON Lines).
    #[arg(long, value_name = "FILE")]
    revocations: PathBuf,
    /// The snapshot's generation: must be greater than any snapshot or delta published before,
    /// and at most 2^53 (plugins never accept a lower generation again).
    #[arg(long)]
    generation: u64,
    /// The signing key file written by `revguard keygen` (<prefix>.key).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to write the snapshot (written atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The snapshot published before this one: --generation must be above its generation by
    /// at most 1,000,000 (unless --force).
    #[arg(long, value_name = "FILE")]
    previous: Option<PathBuf>,
    /// Accept a generation step over 1,000,000.
    #[arg(long)]
    force: bool,
    /// Target false-positive rate of the Bloom filter over jti and sid entries.
    #[arg(long, default_value_t = DEFAULT_FP_RATE)]
    fp_rate: f64,
    /// How long, in seconds, a plugin may trust this snapshot.
    #[arg(long, default_value_t = DEFAULT_MAX_AGE_SECS)]
    max_age: u64,
    /// Build time in Unix seconds (default: now; at most 300 s ahead of the clock).
    #[arg(long)]
    now: Option<u64>,
}

#[derive(clap::Args)]
pub struct DeltaArgs {
    /// The full snapshot this delta applies to.
    #[arg(long, value_name = "FILE")]
    base: PathBuf,
    /// The revocation list the base snapshot was built from.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The current revocation list.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// The delta's generation: greater than the base snapshot's and any earlier delta's, at
    /// most 1,000,000 above the base (unless --force), and at most 2^53.
    #[arg(long)]
    generation: u64,
    /// Accept a generation step over 1,000,000 above the base.
    #[arg(long)]
    force: bool,
    /// The signing key file written by `revguard keygen` (<prefix>.key).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to write the delta (written atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Build time in Unix seconds (default: now; at most 300 s ahead of the clock).
    #[arg(long)]
    now: Option<u64>,
    /// How long, in seconds, a plugin may trust this delta.
    #[arg(long, default_value_t = DEFAULT_MAX_AGE_SECS)]
    max_age: u64,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The snapshot or delta file (detected by its magic bytes).
    file: PathBuf,
    /// A public key to check the signature with: a .pub file or the key text. Repeatable.
    /// (Key text is base64url: it may begin with `-`.)
    #[arg(long, value_name = "FILE_OR_KEY", allow_hyphen_values = true)]
    pubkey: Vec<String>,
}

pub fn run(command: Command) -> CliResult {
    match command {
        Command::Build(args) => run_build(args),
        Command::Delta(args) => run_delta(args),
        Command::Inspect(args) => run_inspect(args),
    }
}

fn run_build(args: BuildArgs) -> CliResult {
    check_generation(args.generation)?;
    if let Some(previous) = &args.previous {
        let bytes = read_file(previous)?;
        let header = snapshot_header(&bytes).map_err(|e| format!("{}: {e}", previous.display()))?;
        if args.generation <= header.generation {
            return Err(format!(
                "--generation {} must be greater than the generation of --previous ({})",
                args.generation, header.generation
            ));
        }
        check_step(header.generation, args.generation, args.force, "--previous")?;
    }
    let key = read_signing_key(&args.key)?;
    let entries = read_revocations(&args.revocations)?;
    let opts = BuildOptions {
        generation: args.generation,
        built_at: now_or(args.now)?,
        max_age_secs: args.max_age,
        fp_rate: args.fp_rate,
        salt: random_salt()?,
    };
    let bytes = build_snapshot(&entries, &opts, &key).map_err(|e| e.to_string())?;
    write_atomic(&args.out, &bytes)?;
    eprintln!(
        "wrote snapshot generation {} ({} bytes, {} entries) to {}",
        opts.generation,
        bytes.len(),
        entries.len(),
        args.out.display()
    );
    Ok(())
}

fn run_delta(args: DeltaArgs) -> CliResult {
    check_generation(args.generation)?;
    let key = read_signing_key(&args.key)?;
    let base = read_file(&args.base)?;
    let base_generation = snapshot_header(&base)
        .map_err(|e| format!("{}: {e}", args.base.display()))?
        .generation;
    check_step(base_generation, args.generation, args.force, "--base")?;
    let from = read_revocations(&args.from)?;
    let to = read_revocations(&args.to)?;
    let known: HashSet<&RevocationTarget> = from.iter().map(|r| &r.target).collect();
    let added: Vec<Revocation> = to
        .into_iter()
        .filter(|r| !known.contains(&r.target))
        .collect();
    let opts = DeltaOptions {
        generation: args.generation,
        built_at: now_or(args.now)?,
        max_age_secs: args.max_age,
    };
    let bytes = build_delta(&base, &added, &opts, &key)
        .map_err(|e| format!("{}: {e}", args.base.display()))?;
    write_atomic(&args.out, &bytes)?;
    eprintln!(
        "wrote delta generation {} ({} bytes, {} added entries) to {}",
        opts.generation,
        bytes.len(),
        added.len(),
        args.out.display()
    );
    Ok(())
}

fn run_inspect(args: InspectArgs) -> CliResult {
    let bytes = read_file(&args.file)?;
    let keys = if args.pubkey.is_empty() {
        None
    } else {
        let texts = args
            .pubkey
            .iter()
            .map(|k| pubkey_text(k))
            .collect::<Result<Vec<_>, _>>()?;
        Some(SnapshotKeys::parse(&texts).map_err(|e| e.to_string())?)
    };
    let report =
        inspect(&bytes, keys.as_ref()).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let value = serde_json::to_value(&report).map_err(|e| format!("cannot encode JSON: {e}"))?;
    print_json(&value)
}

/// A `--pubkey` value: the contents of an existing file, or else the key text itself.
fn pubkey_text(arg: &str) -> Result<String, String> {
    let path = Path::new(arg);
    if path.is_file() {
        let bytes = read_file(path)?;
        String::from_utf8(bytes).map_err(|_| format!("{}: not a public key file", path.display()))
    } else {
        Ok(arg.to_string())
    }
}

fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    let bytes = read_file(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| format!("{}: not a key file", path.display()))?;
    SigningKey::parse(text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_revocations(path: &Path) -> Result<Vec<Revocation>, String> {
    let bytes = read_file(path)?;
    parse_revocations(&bytes, &RevocationLimits::default())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The build time: `--now` if given (refused if more than [`MAX_FUTURE_SKEW_SECS`] ahead of
/// the clock: a future build time keeps a snapshot "fresh" past its real age), else the clock.
fn now_or(now: Option<u64>) -> Result<u64, String> {
    let clock = super::unix_now()?;
    match now {
        Some(t) if t > clock.saturating_add(MAX_FUTURE_SKEW_SECS) => Err(format!(
            "--now {t} is {} s ahead of the clock ({clock}); at most {MAX_FUTURE_SKEW_SECS} s \
             of skew is accepted",
            t - clock
        )),
        Some(t) => Ok(t),
        None => Ok(clock),
    }
}

/// A generation plugins could never move past is refused.
fn check_generation(generation: u64) -> CliResult {
    if generation == 0 || generation > MAX_GENERATION {
        return Err(format!(
            "--generation {generation}: must be between 1 and {MAX_GENERATION} (2^53); plugins \
             refuse every later snapshot with a lower generation"
        ));
    }
    Ok(())
}

/// A step of more than [`MAX_GENERATION_STEP`] over the previous generation needs --force.
fn check_step(previous: u64, generation: u64, force: bool, what: &str) -> CliResult {
    if generation > previous && generation - previous > MAX_GENERATION_STEP && !force {
        return Err(format!(
            "--generation {generation} is {} above the generation of {what} ({previous}), over \
             the bound of {MAX_GENERATION_STEP}; pass --force if this is intended",
            generation - previous
        ));
    }
    Ok(())
}

fn random_salt() -> Result<[u8; 32], String> {
    let mut salt = [0u8; 32];
    getrandom::getrandom(&mut salt).map_err(|e| format!("cannot get random bytes: {e}"))?;
    Ok(salt)
}

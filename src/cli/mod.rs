//! Command-line interface: argument parsing and the shared file helpers. One module per command.

mod check;
mod config_schema;
mod keygen;
mod origin;
mod snapshot;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "revguard",
    version,
    about = "revguard: build, sign and inspect revocation snapshots; decide requests offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 key pair for signing snapshots.
    Keygen(keygen::Args),
    /// Build, diff and inspect revocation snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::Command),
    /// Check a configuration (and decide one request offline, printing the decision as JSON).
    Check(check::Args),
    /// Print the configuration's JSON Schema (or Kong's filter metadata built from it).
    ConfigSchema(config_schema::Args),
    /// The origin service: a durable revocation API that publishes signed snapshots and deltas.
    #[command(subcommand)]
    Origin(origin::Command),
}

/// A command's failure: a message for the operator. Exit status 1.
pub type CliResult = Result<(), String>;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Snapshot(cmd) => snapshot::run(cmd),
        Command::Check(args) => check::run(args),
        Command::ConfigSchema(args) => config_schema::run(args),
        Command::Origin(cmd) => origin::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("revguard: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A temporary file next to `path` (same directory, so a rename or link stays atomic).
pub fn temp_path(path: &Path) -> Result<std::path::PathBuf, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    Ok(dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Writes through a temporary file in the same directory, fsyncs it, renames it into place
/// and fsyncs the directory (the origin's durable writer): a failure or a crash never leaves
/// a half-written snapshot behind, and a written one survives a power loss.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> CliResult {
    use revguard::origin::error::OriginError;
    revguard::origin::export::write_durable(path, bytes).map_err(|e| match e {
        // The detail already names the path.
        OriginError::Storage(detail) => format!("cannot write {detail}"),
        other => format!("cannot write {}: {other}", path.display()),
    })
}

/// The system clock, Unix seconds.
pub fn unix_now() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|e| format!("system clock before 1970: {e}"))
}

/// Prints a JSON value on stdout, pretty.
pub fn print_json(value: &serde_json::Value) -> CliResult {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| format!("cannot encode JSON: {e}"))?;
    println!("{text}");
    Ok(())
}

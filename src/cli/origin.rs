//! `revguard origin serve | export | token`: the origin service (docs/ORIGIN.md).

use std::path::PathBuf;

use clap::Subcommand;
use revguard::origin;

use super::CliResult;

#[derive(Subcommand)]
pub enum Command {
    /// Run the origin: the revocation API, publication, snapshot and delta serving.
    ///
    /// Prints `revguard origin listening on http://ADDR` on stdout once it accepts requests.
    /// Refuses to start when its store is behind what it already published (a restored
    /// backup), unless --jump-generation-to is given.
    Serve(ServeArgs),
    /// Write the current snapshot and delta of the store into a directory (atomically), for
    /// object storage or a static server.
    Export(ExportArgs),
    /// Print a fresh random API token and the `api_tokens` entry (its SHA-256) for origin.json.
    Token(TokenArgs),
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The origin configuration (origin.json).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Keep the current files in this directory (overrides `export_dir` of the config).
    #[arg(long, value_name = "DIR")]
    export_dir: Option<PathBuf>,
    /// Continue at this generation: required when the store is behind what was published
    /// (restored from a backup). Must be above every generation published; the next
    /// publication is a full snapshot.
    #[arg(long, value_name = "N")]
    jump_generation_to: Option<u64>,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The origin configuration (origin.json).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The token's name in the configuration (shown in the audit trail).
    #[arg(long, default_value = "ops")]
    name: String,
}

pub fn run(command: Command) -> CliResult {
    match command {
        Command::Serve(a) => origin::serve(origin::ServeOptions {
            config: a.config,
            export_dir: a.export_dir,
            jump_generation_to: a.jump_generation_to,
        }),
        Command::Export(a) => {
            let generation = origin::export_once(&a.config, &a.dir)?;
            eprintln!("exported generation {generation} to {}", a.dir.display());
            Ok(())
        }
        Command::Token(a) => {
            let (token, hash) = origin::auth::new_token()?;
            let entry = serde_json::json!({"name": a.name, "sha256": hash});
            println!("token: {token}");
            println!("api_tokens entry: {entry}");
            eprintln!("keep the token secret; only its SHA-256 goes into origin.json");
            Ok(())
        }
    }
}

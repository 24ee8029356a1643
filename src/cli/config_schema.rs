//! `revguard config-schema`: the configuration's JSON Schema, derived from the config types,
//! for editors, CI and the release; `--kong-meta` prints `examples/kong/revguard.meta.json`.

use clap::Args as ClapArgs;

use super::{print_json, CliResult};
use revguard::config::schema;

#[derive(ClapArgs)]
pub struct Args {
    /// Print Kong's filter metadata (`revguard.meta.json`, next to `revguard.wasm`): the
    /// schema in draft 4 plus the Prometheus label patterns.
    #[arg(long)]
    kong_meta: bool,
}

pub fn run(args: Args) -> CliResult {
    let document = if args.kong_meta {
        schema::kong_filter_meta()
    } else {
        schema::config_schema()
    };
    print_json(&document)
}

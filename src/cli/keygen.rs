//! `revguard keygen`: a new Ed25519 key pair for signing snapshots.

use std::io::Write;
use std::path::{Path, PathBuf};

use revguard::snapshot::SigningKey;

use super::CliResult;

/// Generate an Ed25519 key pair for signing revocation snapshots and deltas.
///
/// Writes <PREFIX>.key (the private key, file mode 0600: keep it on the origin) and
/// <PREFIX>.pub (the public key, in the text form the plugin's configuration expects),
/// refusing to overwrite either. Prints the public key.
#[derive(clap::Args)]
pub struct Args {
    /// Path prefix of the two files to create, e.g. `keys/origin-2026`.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    let key_path = with_suffix(&args.out, "key")?;
    let pub_path = with_suffix(&args.out, "pub")?;
    for path in [&key_path, &pub_path] {
        if path.exists() {
            return Err(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            ));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("cannot get random bytes: {e}"))?;
    let key = SigningKey::from_seed(seed).map_err(|e| e.to_string())?;
    write_new(&key_path, format!("{}\n", key.to_text()).as_bytes(), 0o600)?;
    if let Err(e) = write_new(
        &pub_path,
        format!("{}\n", key.public_key_text()).as_bytes(),
        0o644,
    ) {
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    eprintln!(
        "wrote {} (private) and {}",
        key_path.display(),
        pub_path.display()
    );
    println!("{}", key.public_key_text());
    Ok(())
}

fn with_suffix(prefix: &Path, suffix: &str) -> Result<PathBuf, String> {
    let name = prefix
        .file_name()
        .ok_or_else(|| format!("{} is not a file path prefix", prefix.display()))?;
    let mut name = name.to_os_string();
    name.push(".");
    name.push(suffix);
    Ok(prefix.with_file_name(name))
}

/// Writes a file that must not exist yet, with `mode`, never leaving a partial file: the
/// bytes go to a private temporary file that is then hard-linked into place (linking fails
/// if the target appeared meanwhile).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> CliResult {
    let tmp = super::temp_path(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

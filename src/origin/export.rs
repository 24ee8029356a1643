//! Durable file writes: the export directory (the current snapshot and delta for object
//! storage or a static server) and the high-water-mark file. Every write goes to a temporary
//! file in the same directory, is fsync'd, renamed into place, and the directory fsync'd, so
//! a reader sees the old file or the new one, never a part, and a crash keeps one of them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::config::OriginConfig;
use super::error::OriginError;
use crate::snapshot::inspect;

fn sync_dir(dir: &Path) -> Result<(), OriginError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

fn io_error(path: &Path, e: std::io::Error) -> OriginError {
    match OriginError::from(e) {
        OriginError::Storage(d) => OriginError::Storage(format!("{}: {d}", path.display())),
        other => other,
    }
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), OriginError> {
    let dir = dir_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| OriginError::Internal(format!("{} is not a file path", path.display())))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(path, e));
    }
    sync_dir(dir)
}

/// Removes `path` (if present) durably.
pub fn remove_durable(path: &Path) -> Result<(), OriginError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(dir_of(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Writes the current files into `dir`: the snapshot under the last segment of
/// `snapshot_path`, the delta under that of `delta_path` (removed when there is none). An old
/// delta is removed before a new snapshot is written, and a delta is written after its
/// snapshot, so a reader pairing the two files sees at worst no delta, never a mismatch
/// that lasts.
pub fn export(
    dir: &Path,
    config: &OriginConfig,
    snapshot: &[u8],
    delta: Option<&[u8]>,
) -> Result<(), OriginError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let snap_path = dir.join(config.snapshot_file_name());
    let delta_path = dir.join(config.delta_file_name());
    match delta {
        None => {
            remove_durable(&delta_path)?;
            write_durable(&snap_path, snapshot)
        }
        Some(d) => {
            write_durable(&snap_path, snapshot)?;
            write_durable(&delta_path, d)
        }
    }
}

/// The highest generation in the export directory's files (0 if none are readable).
pub fn exported_generation(dir: &Path, config: &OriginConfig) -> u64 {
    [config.snapshot_file_name(), config.delta_file_name()]
        .iter()
        .filter_map(|name| std::fs::read(dir.join(name)).ok())
        .filter_map(|bytes| inspect(&bytes, None).ok())
        .map(|i| i.generation)
        .max()
        .unwrap_or(0)
}

/// The generation recorded in the high-water-mark file (0 if it does not exist).
pub fn read_high_water_mark(path: &Path) -> Result<u64, OriginError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|_| {
            OriginError::Storage(format!(
                "{}: not a generation number; fix or remove it deliberately",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Records that `generation` may be served from now on.
pub fn write_high_water_mark(path: &Path, generation: u64) -> Result<(), OriginError> {
    write_durable(path, format!("{generation}\n").as_bytes())
}

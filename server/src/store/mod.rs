//! `store` owns what training leaves on disk: tensor tables ([`tables`]), the files of one run
//! directory ([`RunDir`]), its checkpoints ([`checkpoint`]) and the SQLite run registry of a
//! runs root ([`registry`]).
//!
//! Invariants: every file is written to a temporary name and renamed, so a crash never leaves
//! half a file; no file name of a run directory is spelled outside [`run_dir`]; storage reads
//! and writes records and tensors, it never trains (it does not import `train`).

pub mod checkpoint;
pub mod registry;
pub mod run_dir;
pub mod tables;

use std::path::{Path, PathBuf};

pub use registry::{JobRow, Registry, RunRow, Status};
pub use run_dir::{LoadedModel, RunDir, RunLock};

use crate::error::{IoContext, Result};

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Runs `write` on a temporary name next to `path` (creating the directory), then renames it
/// into place.
pub fn atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let tmp = tmp_path(path);
    write(&tmp)?;
    std::fs::rename(&tmp, path).at(path)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    atomically(path, |tmp| std::fs::write(tmp, bytes).at(tmp))
}

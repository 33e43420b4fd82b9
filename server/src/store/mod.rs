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
pub use run_dir::{Checkpoint, LoadedModel, RunDir, RunLock};

use crate::error::{IoContext, Result};

const TMP: &str = ".tmp-";

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TMP}{}", std::process::id()));
    path.with_file_name(name)
}

/// Whether a file name is one of [`atomically`]'s temporary names (`NAME.tmp-PID`), or a file a
/// writer made from one (burn writes `NAME.tmp-PID.PID-N.tmp` and renames it to `NAME.tmp-PID`).
fn is_temporary(name: &str) -> bool {
    name.match_indices(TMP)
        .any(|(i, _)| name[i + TMP.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Runs `write` on a temporary name next to `path` (creating the directory), then renames it
/// into place.
pub fn atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let tmp = tmp_path(path);
    write(&tmp)?;
    crash_test::maybe_die_in_write(&tmp);
    std::fs::rename(&tmp, path).at(path)
}

/// The crash tests' way to kill a process in the middle of a write (`scripts/crash.py`): with
/// `PERPEFT_KILL_IN_WRITE=N`, the process's N-th atomic write truncates its temporary file to
/// half its length and sends itself SIGKILL before the rename, leaving on disk what a kill
/// inside the write leaves. Unset (always, outside those tests), it costs reading a value read
/// once; `perpeft` warns at start when it is set.
mod crash_test {
    use std::path::Path;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) fn maybe_die_in_write(tmp: &Path) {
        static AT: OnceLock<Option<usize>> = OnceLock::new();
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let at = AT.get_or_init(|| {
            std::env::var("PERPEFT_KILL_IN_WRITE")
                .ok()
                .and_then(|v| v.parse().ok())
        });
        let Some(at) = *at else { return };
        if WRITES.fetch_add(1, Ordering::SeqCst) + 1 == at {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(tmp)
                && let Ok(meta) = f.metadata()
            {
                let _ = f.set_len(meta.len() / 2);
            }
            eprintln!(
                "PERPEFT_KILL_IN_WRITE: killed in write {at}: {}",
                tmp.display()
            );
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    atomically(path, |tmp| std::fs::write(tmp, bytes).at(tmp))
}

//! `error` owns the library's one error type. Its variants are the cases a caller branches on
//! (the HTTP layer maps them to statuses, the CLI to messages); each carries a message that says
//! what went wrong, where, and what to do. `anyhow` is for the binary's edges only.

use std::path::{Path, PathBuf};

use crate::data::DataError;

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but its content is not what it should be (corrupt, wrong format,
    /// missing or mis-shaped tensor).
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// A dataset file is malformed (names the file and line).
    #[error(transparent)]
    Data(#[from] DataError),
    /// What was asked for does not exist (a run, a run's file).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (a run of that name, a resume with another
    /// configuration, data with another checksum).
    #[error("{0}")]
    Conflict(String),
    /// The configuration or input cannot be used as given (flags that do not go together,
    /// data a method cannot train on, an out-of-range value).
    #[error("{0}")]
    Invalid(String),
    /// A device the request needs is not available (no wgpu adapter).
    #[error("{0}")]
    Unavailable(String),
    /// Training produced a non-finite loss.
    #[error("the loss became {value} at step {step}: training diverged")]
    Diverged { step: usize, value: f64 },
    /// Training was stopped by its observer before it finished.
    #[error("training was stopped at {at}")]
    Stopped { at: String },
    /// The run registry (SQLite) failed.
    #[error("run registry: {0}")]
    Registry(#[from] rusqlite::Error),
    /// A numerical library failed (k-means, tokenisation).
    #[error("{0}")]
    Compute(String),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Bad content in `path`.
    pub fn format(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// Names the path an I/O error happened on.
pub trait IoContext<T> {
    /// Maps an I/O error to [`Error::Io`] on `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

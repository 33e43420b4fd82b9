//! `data` owns the path from files to users, items, sequences and training batches.
//!
//! - [`recbole`] reads RecBole atomic files (`.inter`, `.item`);
//! - [`Dataset`] holds contiguous internal ids (items `1..=n`, 0 = padding) and each user's
//!   chronological sequence;
//! - [`split`] is the reference leave-one-out split;
//! - [`sampler`] makes seeded training batches (right-aligned windows, sampled negatives).
//!
//! Nothing here knows about models, devices or HTTP.

pub mod recbole;
pub mod sampler;
pub mod split;

use std::fmt;
use std::path::{Path, PathBuf};

pub use split::Split;

/// An item's identity and display data.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMeta {
    /// The dataset's own id.
    pub raw_id: String,
    /// Display title (e.g. `Toy Story (1995)`).
    pub title: String,
}

/// Users, items and chronological interaction sequences, with contiguous internal ids.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Dataset name, e.g. `ml-100k`.
    pub name: String,
    /// Raw user ids; user index `u` (0-based) is `user_ids[u]`.
    pub user_ids: Vec<String>,
    /// Items; internal item id `i` (1-based) is `items[i - 1]`.
    pub items: Vec<ItemMeta>,
    /// Per user index, internal item ids oldest first.
    pub sequences: Vec<Vec<u32>>,
    /// SHA-256 of the source files, hex; identifies the data a model was trained on.
    pub checksum: String,
}

/// Summary numbers of a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Users with at least one interaction.
    pub users: usize,
    /// Items in the catalogue.
    pub items: usize,
    /// Interactions.
    pub interactions: usize,
    /// Mean sequence length.
    pub avg_len: f64,
    /// interactions / (users × items).
    pub density: f64,
}

impl Dataset {
    /// Number of items (internal ids are `1..=n_items`).
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    /// Item metadata by internal id (`None` for 0 or out of range).
    pub fn item(&self, id: u32) -> Option<&ItemMeta> {
        (id as usize).checked_sub(1).and_then(|i| self.items.get(i))
    }

    /// User index of a raw user id.
    pub fn user_index(&self, raw: &str) -> Option<usize> {
        self.user_ids.iter().position(|u| u == raw)
    }

    /// Summary statistics.
    pub fn stats(&self) -> Stats {
        let interactions: usize = self.sequences.iter().map(Vec::len).sum();
        let users = self.n_users();
        let items = self.n_items();
        Stats {
            users,
            items,
            interactions,
            avg_len: interactions as f64 / users.max(1) as f64,
            density: interactions as f64 / (users.max(1) * items.max(1)) as f64,
        }
    }
}

/// A data file could not be used; says which file, where, and why.
#[derive(Debug)]
pub struct DataError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl DataError {
    pub(crate) fn at(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for DataError {}

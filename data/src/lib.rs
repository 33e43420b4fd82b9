//! `perpeft-data` (the server's `data` module) owns the path from files to users, items,
//! sequences and training batches. Nothing here knows about models, devices or HTTP.
//!
//! - Formats, each a parser over in-memory text/bytes plus a loader over files:
//!   [`recbole`] (RecBole atomic files), [`amazon`] (the PerPEFT authors' Amazon Reviews 2023
//!   release), [`plain`] (CSV/JSONL for a user's own data, see `docs/data-format.md`).
//! - [`Dataset`]: contiguous internal ids (items `1..=n`, 0 = padding), per-user chronological
//!   sequences, item text and (lazily decoded) images.
//! - [`split`]: the reference leave-one-out split. [`sampler`]: seeded training batches with
//!   uniform or group-restricted negatives.

pub mod amazon;
pub mod plain;
pub mod recbole;
pub mod sampler;
pub mod split;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use split::Split;

/// An item's identity, display data, text for a text tower, and optional image.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMeta {
    /// The dataset's own id.
    pub raw_id: String,
    /// Display title (e.g. `Toy Story (1995)`).
    pub title: String,
    /// Text fed to a text encoder (MovieLens: title, year and genres).
    pub text: String,
    /// Categories the dataset gives the item (MovieLens: its genres), for describing groups.
    pub categories: Vec<String>,
    /// Image file, if the dataset has one for this item (decoded on demand).
    pub image: Option<PathBuf>,
}

/// Legitimate skips made while loading, counted so they can be reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Items whose image file does not exist (the item stays, without image).
    pub missing_images: usize,
    /// Items without a title (given the reference's fallback text).
    pub missing_titles: usize,
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
    /// Per user index, the timestamp of each interaction of `sequences` (the dataset's own
    /// numbers: Unix seconds for MovieLens), when the format has real times; see
    /// [`Dataset::with_times`].
    pub times: Option<Vec<Vec<f64>>>,
    /// SHA-256 of the source files, hex; identifies the data a model was trained on.
    pub checksum: String,
    /// What was skipped while loading.
    pub report: LoadReport,
    user_index: HashMap<String, usize>,
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
    /// Assembles a dataset; `checksum` is the SHA-256 of the source bytes.
    pub fn new(
        name: impl Into<String>,
        user_ids: Vec<String>,
        items: Vec<ItemMeta>,
        sequences: Vec<Vec<u32>>,
        checksum: String,
        report: LoadReport,
    ) -> Self {
        let user_index = user_ids
            .iter()
            .enumerate()
            .map(|(i, u)| (u.clone(), i))
            .collect();
        Self {
            name: name.into(),
            user_ids,
            items,
            sequences,
            times: None,
            checksum,
            report,
            user_index,
        }
    }

    /// This dataset with the timestamps of its interactions, one per item of `sequences`.
    ///
    /// Panics when `times` is not shaped as `sequences` (a loader's bug, not bad input).
    pub fn with_times(mut self, times: Vec<Vec<f64>>) -> Self {
        assert!(
            times.len() == self.sequences.len()
                && times
                    .iter()
                    .zip(&self.sequences)
                    .all(|(t, s)| t.len() == s.len()),
            "one timestamp per interaction"
        );
        self.times = Some(times);
        self
    }

    /// The timestamp of user `u`'s interaction at position `pos` of their sequence, if the
    /// dataset has times.
    pub fn time(&self, u: usize, pos: usize) -> Option<f64> {
        self.times.as_ref()?.get(u)?.get(pos).copied()
    }

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
        self.user_index.get(raw).copied()
    }

    /// Decodes item `id`'s image (RGB), or `Ok(None)` when it has none.
    pub fn image(&self, id: u32) -> Result<Option<image::RgbImage>, DataError> {
        let Some(path) = self.item(id).and_then(|m| m.image.as_ref()) else {
            return Ok(None);
        };
        let img = image::open(path)
            .map_err(|e| DataError::at(path, None, format!("cannot decode image: {e}")))?;
        Ok(Some(img.to_rgb8()))
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

/// On-disk layout of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{dir}/{name}.inter`, `.item`, optional `.user`.
    Recbole,
    /// `{dir}/{name}_final.txt`, `_item2id_final.pickle`, `_texts_final.pickle`, `_images/`.
    Amazon,
    /// `{dir}/interactions.{csv,jsonl}` and `{dir}/items.{csv,jsonl}`.
    Plain,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "recbole" => Ok(Format::Recbole),
            "amazon" => Ok(Format::Amazon),
            "plain" => Ok(Format::Plain),
            _ => Err(format!("unknown format {s:?} (recbole, amazon or plain)")),
        }
    }
}

/// Loads the dataset `name` in `format` from `dir`.
pub fn load(format: Format, dir: &Path, name: &str) -> Result<Dataset, DataError> {
    match format {
        Format::Recbole => recbole::load(dir, name),
        Format::Amazon => amazon::load(dir, name),
        Format::Plain => plain::load(dir, name),
    }
}

/// A data file could not be used; says which file, where, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, or a key, when the problem is in one place.
    pub at: Option<Location>,
    /// What is wrong.
    pub message: String,
}

/// Where in a file a problem is.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// 1-based line.
    Line(usize),
    /// A dictionary key (pickles).
    Key(String),
}

impl DataError {
    /// An error at `line` (1-based) of `path`, or about the whole file.
    pub fn at(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            at: line.map(Location::Line),
            message: message.into(),
        }
    }

    /// An error about `key` of a dictionary file.
    pub fn key(path: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            at: Some(Location::Key(key.into())),
            message: message.into(),
        }
    }

    /// The 1-based line, if the error is on one.
    pub fn line(&self) -> Option<usize> {
        match self.at {
            Some(Location::Line(l)) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(Location::Line(line)) => {
                write!(f, "{}:{}: {}", self.path.display(), line, self.message)
            }
            Some(Location::Key(key)) => {
                write!(f, "{}: key {key:?}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for DataError {}

/// The distinct items of a sequence, sorted (for exclusion look-ups by binary search).
pub fn sorted_distinct(items: &[u32]) -> Vec<u32> {
    let mut v = items.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))
}

/// Reads a whole UTF-8 file, naming it on failure.
pub(crate) fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| DataError::at(path, None, format!("not UTF-8: {e}")))
}

/// A timestamp: any finite number, surrounding spaces ignored.
pub(crate) fn parse_time(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// SHA-256 (hex) over several byte strings.
pub(crate) fn checksum(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    format!("{:x}", h.finalize())
}

/// Collects `(user, item, time)` events and sorts each user's by time with a **stable** sort
/// (equal times keep input order). Users are numbered by first appearance.
#[derive(Debug, Default)]
pub(crate) struct Sequences {
    user_ids: Vec<String>,
    index: HashMap<String, usize>,
    events: Vec<Vec<(f64, u32)>>,
}

impl Sequences {
    pub(crate) fn push(&mut self, user: &str, item: u32, time: f64) {
        let u = match self.index.get(user) {
            Some(&u) => u,
            None => {
                self.user_ids.push(user.to_string());
                self.events.push(Vec::new());
                self.index.insert(user.to_string(), self.user_ids.len() - 1);
                self.user_ids.len() - 1
            }
        };
        self.events[u].push((time, item));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.user_ids.is_empty()
    }

    /// User ids, and per user the items and their times, sorted by time (stable).
    pub(crate) fn finish(self) -> (Vec<String>, Vec<Vec<u32>>, Vec<Vec<f64>>) {
        let (seqs, times) = self
            .events
            .into_iter()
            .map(|mut ev| {
                ev.sort_by(|a, b| a.0.total_cmp(&b.0));
                ev.into_iter()
                    .map(|(t, i)| (i, t))
                    .unzip::<_, _, Vec<_>, Vec<_>>()
            })
            .unzip();
        (self.user_ids, seqs, times)
    }
}

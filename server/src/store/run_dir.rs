//! One run directory `ROOT/NAME/` and every file in it. This is the only place that spells their
//! names:
//!
//! | file | what |
//! |---|---|
//! | `run.json` | the [`RunRecord`]: configuration, seed, dataset checksum, code version, per-epoch metrics |
//! | `model.safetensors` | SASRec at the best validation epoch |
//! | `item_table.safetensors` | the item table(s) at that epoch: `table`, then `group_1`, … (PerPEFT) |
//! | `recommender.bpk` | SASRec + projector(s) at that epoch |
//! | `adapters.bpk` | the best epoch's PEFT parameters alone (adapters or IISAN modules) |
//! | `groups.json` | PerPEFT: the [`Groups`] (centroids, every user's group) |
//! | `global/` | PerPEFT: the stage-1 model (`model.safetensors`, `item_table.safetensors`, `recommender.bpk`), with which new users are grouped |
//! | `checkpoint/epoch-N.{model,optimizer,optimizer-peft}.bpk` | the last completed epoch's model and both optimisers' state ([`super::checkpoint`]) |
//! | `checkpoint/global-N.{model,optimizer,optimizer-peft}.bpk`, `global-N.json` | PerPEFT: the same after global-stage epoch N, and (written last, so it marks the checkpoint complete) the stage's seconds so far |
//!
//! The runs root `ROOT` holds the registry ([`super::Registry`]) and, beside each run
//! directory, the lock `.NAME.lock` that whoever trains the run holds (an advisory file lock,
//! released by the system when the process ends, however it ends).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use super::tables::{load_tables, save_tables};
use super::{atomically, write_atomic};
use crate::config::{Groups, RunRecord, SasRecConfig};
use crate::error::{Error, IoContext, Result};
use crate::rec::{Recommender, SasRec};

const RECORD: &str = "run.json";
const MODEL: &str = "model.safetensors";
const TABLES: &str = "item_table.safetensors";
const RECOMMENDER: &str = "recommender.bpk";
const ADAPTERS: &str = "adapters.bpk";
const GROUPS: &str = "groups.json";
const GLOBAL: &str = "global";
const CHECKPOINT: &str = "checkpoint";

/// The files of one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckpointPart {
    /// The trainable model.
    Model,
    /// The optimiser of SASRec and the projectors.
    Optimizer,
    /// The optimiser of the PEFT parameters.
    OptimizerPeft,
}

/// Which checkpoint: after an evaluated epoch, or after an epoch of PerPEFT's (unevaluated)
/// global stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// After evaluated epoch N (the registry records it as done).
    Epoch(usize),
    /// After epoch N of PerPEFT's global stage (complete once its marker is written).
    Global(usize),
}

impl Checkpoint {
    fn prefix(self) -> (&'static str, usize) {
        match self {
            Checkpoint::Epoch(n) => ("epoch-", n),
            Checkpoint::Global(n) => ("global-", n),
        }
    }

    /// The checkpoint a file of `checkpoint/` belongs to, from its name.
    pub(super) fn of_file(file_name: &str) -> Option<Checkpoint> {
        let parse = |prefix: &str| {
            file_name
                .strip_prefix(prefix)
                .and_then(|r| r.split('.').next())
                .and_then(|e| e.parse().ok())
        };
        parse("epoch-")
            .map(Checkpoint::Epoch)
            .or_else(|| parse("global-").map(Checkpoint::Global))
    }
}

/// A run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

/// The training lock of a run ([`RunDir::lock`]); released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// A finished run as loaded for evaluation and serving.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// `run.json`.
    pub record: RunRecord,
    /// SASRec at the best epoch, in inference mode.
    pub sasrec: SasRec,
    /// The item table of each group (one for a single-table run).
    pub tables: Vec<Tensor<2>>,
}

impl RunDir {
    /// The run directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run's name: the directory's last component.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into())
    }

    /// The runs root that holds it (and the registry): its parent directory.
    pub fn root(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// `run.json`.
    pub fn record_file(&self) -> PathBuf {
        self.path.join(RECORD)
    }

    /// `model.safetensors`.
    pub fn model_file(&self) -> PathBuf {
        self.path.join(MODEL)
    }

    /// `item_table.safetensors`.
    pub fn tables_file(&self) -> PathBuf {
        self.path.join(TABLES)
    }

    /// `adapters.bpk`.
    pub fn adapters_file(&self) -> PathBuf {
        self.path.join(ADAPTERS)
    }

    /// `groups.json`.
    pub fn groups_file(&self) -> PathBuf {
        self.path.join(GROUPS)
    }

    /// `checkpoint/`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join(CHECKPOINT)
    }

    /// `checkpoint/{epoch,global}-N.PART.bpk`.
    pub(super) fn checkpoint_file(&self, at: Checkpoint, part: CheckpointPart) -> PathBuf {
        let part = match part {
            CheckpointPart::Model => "model",
            CheckpointPart::Optimizer => "optimizer",
            CheckpointPart::OptimizerPeft => "optimizer-peft",
        };
        let (prefix, n) = at.prefix();
        self.checkpoint_dir()
            .join(format!("{prefix}{n}.{part}.bpk"))
    }

    /// `checkpoint/global-N.json`: the marker of a complete global-stage checkpoint.
    pub(super) fn global_marker(&self, epoch: usize) -> PathBuf {
        self.checkpoint_dir().join(format!("global-{epoch}.json"))
    }

    /// Removes the temporary files a killed writer left in the directory (`NAME.tmp-PID`,
    /// [`super::atomically`]); called by whoever holds the run's lock before it trains.
    /// Returns how many it removed.
    pub fn remove_temporaries(&self) -> Result<usize> {
        let mut removed = 0;
        for dir in [self.path.clone(), self.checkpoint_dir(), self.global().path] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.at(&dir)?.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if super::is_temporary(&name) {
                    std::fs::remove_file(&path).at(&path)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// `global/`: a PerPEFT run's stage-1 model, laid out as a run directory's best-epoch files.
    pub fn global(&self) -> RunDir {
        RunDir::new(self.path.join(GLOBAL))
    }

    /// The best-epoch files that exist, by the kind the registry records them under.
    pub fn best_artifacts(&self) -> Vec<(&'static str, PathBuf)> {
        [
            ("model", MODEL),
            ("item_table", TABLES),
            ("recommender", RECOMMENDER),
            ("adapters", ADAPTERS),
        ]
        .into_iter()
        .map(|(kind, file)| (kind, self.path.join(file)))
        .filter(|(_, path)| path.exists())
        .collect()
    }

    /// `ROOT/.NAME.lock`: outside the run directory, so replacing the run keeps the lock.
    fn lock_file(&self) -> PathBuf {
        self.root().join(format!(".{}.lock", self.name()))
    }

    /// Takes the run's training lock, or fails with `Conflict` when another process (or
    /// another job) trains the run now. The lock lasts as long as the returned value.
    pub fn lock(&self) -> Result<RunLock> {
        let path = self.lock_file();
        std::fs::create_dir_all(self.root()).at(self.root())?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Conflict(format!(
                "{} is being trained by another process now",
                self.path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Whether someone trains the run now (holds its lock).
    pub fn is_locked(&self) -> bool {
        matches!(self.lock(), Err(Error::Conflict(_)))
    }

    /// Whether the directory holds a record (a run was started here).
    pub fn has_record(&self) -> bool {
        self.record_file().exists()
    }

    /// Whether the directory holds a servable model (a record and a best epoch).
    pub fn has_model(&self) -> bool {
        self.has_record() && self.model_file().exists()
    }

    /// Removes the whole directory, if it exists.
    pub fn remove(&self) -> Result<()> {
        if self.path.exists() {
            std::fs::remove_dir_all(&self.path).at(&self.path)?;
        }
        Ok(())
    }

    /// Writes `run.json`.
    pub fn save_record(&self, record: &RunRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::format(&self.path, e))?;
        write_atomic(&self.record_file(), &json)
    }

    /// Reads `run.json` ([`decode_record`]).
    pub fn read_record(&self) -> Result<RunRecord> {
        let path = self.record_file();
        decode_record(
            &path,
            &read_file(&path, "a run directory (is this the right path?)")?,
        )
    }

    /// Writes `groups.json`.
    pub fn save_groups(&self, groups: &Groups) -> Result<()> {
        let json = serde_json::to_vec(groups).map_err(|e| Error::format(&self.path, e))?;
        write_atomic(&self.groups_file(), &json)
    }

    /// Reads `groups.json` ([`decode_groups`]).
    pub fn read_groups(&self) -> Result<Groups> {
        let path = self.groups_file();
        decode_groups(&path, &read_file(&path, "a PerPEFT run")?)
    }

    /// Saves the best-epoch files: SASRec's weights, the item table(s) and the whole recommender.
    pub fn save_best(&self, model: &Recommender, tables: &[Tensor<2>]) -> Result<()> {
        atomically(&self.model_file(), |tmp| {
            let mut store = SafetensorsStore::from_file(tmp);
            model
                .sasrec
                .save_into(&mut store)
                .map_err(|e| Error::format(tmp, format!("{e:?}")))
        })?;
        save_tables(&self.tables_file(), tables)?;
        atomically(&self.path.join(RECOMMENDER), |tmp| {
            model
                .clone()
                .save_file(tmp)
                .map_err(|e| Error::format(tmp, format!("{e:?}")))
        })
    }

    /// Saves only the trainable PEFT parameters of `peft` (LoRA/(IA)3 adapters in the sites, or
    /// the IISAN modules) as `adapters.bpk`; load it back with `try_load_record` on a model of
    /// the same configuration, with `allow_partial`.
    pub fn save_adapters<M: Module>(&self, peft: &M) -> Result<()> {
        atomically(&self.adapters_file(), |tmp| {
            peft.clone()
                .into_record_group(adapter_params())
                .save(tmp)
                .map_err(|e| Error::format(tmp, format!("{e:?}")))
        })
    }

    /// SASRec of configuration `cfg` from `model.safetensors`, on `device`.
    pub fn load_sasrec(&self, cfg: &SasRecConfig, device: &Device) -> Result<SasRec> {
        let path = self.model_file();
        if !path.exists() {
            return Err(Error::NotFound(format!(
                "{} is missing (did the run finish an epoch?)",
                path.display()
            )));
        }
        let mut model = cfg.init(device);
        let mut store = SafetensorsStore::from_file(&path);
        let result = model
            .load_from(&mut store)
            .map_err(|e| Error::format(&path, format!("{e:?}")))?;
        if !result.missing.is_empty() {
            return Err(Error::format(
                &path,
                format!("lacks tensors {:?}", result.missing),
            ));
        }
        Ok(model)
    }

    /// The best epoch's model for evaluation and serving: the record, SASRec and the item
    /// table(s).
    pub fn load_model(&self, device: &Device) -> Result<LoadedModel> {
        self.load_from(self, device)
    }

    /// A PerPEFT run's global (stage-1) model, with the run's record.
    pub fn load_global(&self, device: &Device) -> Result<LoadedModel> {
        self.load_from(&self.global(), device)
    }

    /// SASRec and the item tables saved in `files` (this directory or `global/`), with this
    /// run's record.
    fn load_from(&self, files: &RunDir, device: &Device) -> Result<LoadedModel> {
        let record = self.read_record()?;
        let sasrec = files.load_sasrec(&record.model, device)?;
        let tables = load_tables(&files.tables_file(), device)?;
        Ok(LoadedModel {
            record,
            sasrec,
            tables,
        })
    }
}

/// The parameters `adapters.bpk` keeps: adapters in the sites, or IISAN modules.
pub fn adapter_params() -> burn::module::ParamGroup {
    burn::module::ParamGroup::from_any_predicates(vec!["adapters", "modules"])
}

/// Decodes the bytes of `run.json` (`path` names it in errors). A record written before the
/// training configuration held SASRec's window, dropout and padding mode gets them from its
/// model configuration (they were the model's alone then), so it resumes and reloads as it was
/// trained. Its best epoch must be one of its epochs.
pub fn decode_record(path: &Path, bytes: &[u8]) -> Result<RunRecord> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::format(path, e))?;
    if let Some(model) = value.get("model").cloned()
        && let Some(train) = value.get_mut("train").and_then(|t| t.as_object_mut())
    {
        for field in ["max_len", "dropout", "mode"] {
            if !train.contains_key(field)
                && let Some(v) = model.get(field)
            {
                train.insert(field.into(), v.clone());
            }
        }
    }
    let record: RunRecord = serde_json::from_value(value).map_err(|e| Error::format(path, e))?;
    if record.best_epoch > record.epochs.len() {
        return Err(Error::format(
            path,
            format!(
                "best epoch {} of {} recorded epochs",
                record.best_epoch,
                record.epochs.len()
            ),
        ));
    }
    Ok(record)
}

/// Decodes the bytes of `groups.json`, checked to be consistent: at least one group, `k × dim`
/// centroid values, and every user in one of the `k` groups.
pub fn decode_groups(path: &Path, bytes: &[u8]) -> Result<Groups> {
    let groups: Groups = serde_json::from_slice(bytes).map_err(|e| Error::format(path, e))?;
    let whole = groups.k.checked_mul(groups.dim) == Some(groups.centroids.len());
    if groups.k == 0 || groups.dim == 0 || !whole {
        return Err(Error::format(
            path,
            format!(
                "{} centroid values for {} groups of width {}",
                groups.centroids.len(),
                groups.k,
                groups.dim
            ),
        ));
    }
    if let Some((u, g)) = groups
        .assignment
        .iter()
        .enumerate()
        .find(|&(_, &g)| g >= groups.k)
    {
        return Err(Error::format(
            path,
            format!("user {u} is in group {g} of {}", groups.k),
        ));
    }
    Ok(groups)
}

/// The bytes of `path`; a missing file is `NotFound`, saying it is not `what`.
fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!(
            "{} does not exist: not {what}",
            path.display()
        ))),
        Err(e) => Err(Error::io(path, e)),
    }
}

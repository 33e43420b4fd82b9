//! A run's life on disk: starting it new (or over an old one), resuming it from its last
//! completed epoch, and recording each evaluated epoch so that a run killed at any point can be
//! resumed to exactly where an uninterrupted one would be (the registry decides which epochs are
//! done; files are written ahead of it).

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use shared::api::Metrics;

use super::trainer::{Evaluation, Trainer};
use crate::config::{EpochRecord, Groups, Method, RunRecord, SasRecConfig, TrainConfig};
use crate::config::{code_version, select};
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::store::{Checkpoint, Registry, RunDir, Status};

/// How a training call starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run; fails if the name is taken.
    New,
    /// A new run replacing an existing one of the same name (its files and registry rows).
    Overwrite,
    /// Continue a registered run from its last completed epoch.
    Resume,
}

/// A run being trained: its directory, its registry row and its record.
pub struct RunState {
    pub dir: RunDir,
    registry: Registry,
    id: i64,
    /// The device it runs on now (a resumed run may have started on another).
    device: String,
    /// Whether it was opened to resume (only then are global-stage checkpoints taken up).
    resumed: bool,
    pub record: RunRecord,
}

/// What a run needs to be opened.
pub struct Opening<'a> {
    pub dataset: &'a Dataset,
    /// The dataset's leave-one-out split (for the popularity baseline of a new run).
    pub split: &'a Split,
    pub model: &'a SasRecConfig,
    pub cfg: &'a TrainConfig,
    pub device: &'a str,
}

impl RunState {
    /// Opens the run in `dir` as `start` says. On resume the trainer continues from the last
    /// completed epoch's checkpoint, and a PerPEFT run in its per-group stage gets its groups
    /// back (its banks are grown to them first).
    pub fn open(
        dir: RunDir,
        start: Start,
        how: &Opening<'_>,
        trainer: &mut Trainer<'_>,
    ) -> Result<(Self, Option<Groups>)> {
        let registry = Registry::for_run(&dir)?;
        let name = dir.name();
        // what a process killed in a write left (the caller holds the run's lock)
        let stale = dir.remove_temporaries()?;
        if stale > 0 {
            tracing::info!(run = %name, files = stale, "removed temporary files of a killed writer");
        }
        let mut groups = None;
        let (id, record) = match start {
            Start::Resume => {
                let id = registry.run_id(&name)?.ok_or_else(|| {
                    Error::NotFound(format!(
                        "no run named {name} in {}",
                        registry.path().display()
                    ))
                })?;
                let mut record = resumed_record(&dir, &registry, id, how)?;
                if record.groups.is_some() && record.best_epoch > 0 && record.best_groups.is_empty()
                {
                    // run.json was behind the registry: the per-group metrics of the best epoch
                    // are those of the best-epoch files on disk
                    let e = crate::eval::evaluate_run(&dir, how.dataset, trainer.inner())?;
                    record.best_groups = e.per_group;
                }
                let done = record.epochs.len();
                if how.cfg.method == Method::Perpeft && done > 0 {
                    let g = dir.read_groups()?;
                    trainer.replicate(g.k);
                    groups = Some(g);
                }
                if done > 0 {
                    trainer.load_checkpoint(&dir, Checkpoint::Epoch(done))?;
                }
                tracing::info!(run = %name, completed = done, "resuming");
                (id, record)
            }
            Start::New | Start::Overwrite => {
                if start == Start::Overwrite {
                    registry.delete(&name)?;
                    dir.remove()?;
                } else if dir.has_record() && registry.run_id(&name)?.is_none() {
                    return Err(Error::Conflict(format!(
                        "{} holds a run that is not in the registry; pass --overwrite to replace it",
                        dir.path().display()
                    )));
                }
                let record = RunRecord {
                    method: how.cfg.label(),
                    dataset: how.dataset.name.clone(),
                    dataset_checksum: how.dataset.checksum.clone(),
                    device: how.device.into(),
                    model: how.model.clone(),
                    train: how.cfg.clone(),
                    code_version: code_version(),
                    epochs: Vec::new(),
                    best_epoch: 0,
                    test: Metrics::default(),
                    adapter_params: trainer.adapter_params(),
                    stages: Vec::new(),
                    groups: None,
                    best_groups: Vec::new(),
                    peak_rss_mib: None,
                    popularity: Some(crate::eval::popularity(how.split)),
                };
                let id = registry.create(&name, dir.path(), &record)?;
                dir.save_record(&record)?;
                (id, record)
            }
        };
        registry.set_status(id, Status::Running, how.device)?;
        let run = Self {
            dir,
            registry,
            id,
            device: how.device.to_string(),
            resumed: start == Start::Resume,
            record,
        };
        Ok((run, groups))
    }

    /// Records a file the run used or made (the registry's `artifacts`).
    pub fn record_artifact(&self, kind: &str, path: &Path, epoch: Option<usize>) -> Result<()> {
        self.registry.record_artifact(self.id, kind, path, epoch)
    }

    /// Marks the run finished or failed.
    pub fn set_status(&self, status: Status) -> Result<()> {
        self.registry.set_status(self.id, status, &self.device)
    }

    /// Checkpoints global-stage epoch `epoch` of PerPEFT (the stage took `seconds` so far), so
    /// that a run killed later in the stage resumes after it.
    pub fn record_global_epoch(
        &self,
        trainer: &Trainer<'_>,
        epoch: usize,
        seconds: f64,
    ) -> Result<()> {
        trainer.save_checkpoint(&self.dir, Checkpoint::Global(epoch))?;
        self.dir.complete_global_checkpoint(epoch, seconds)
    }

    /// Where a resumed PerPEFT run's global stage goes on from: its last complete global-stage
    /// checkpoint (loaded into `trainer`) and the stage's seconds until then; `(0, 0.0)` for a
    /// stage that starts afresh.
    pub fn resume_global(&self, trainer: &mut Trainer<'_>) -> Result<(usize, f64)> {
        if !self.resumed {
            // a new run's directory holds no checkpoint of another (an overwrite killed while
            // it removed the old run's files may have left some)
            self.dir.remove_global_checkpoints()?;
            return Ok((0, 0.0));
        }
        match self.dir.last_global_checkpoint()? {
            Some((epoch, _)) if epoch > self.record.train.global_epochs => {
                Err(Error::Conflict(format!(
                    "{} holds a global-stage checkpoint of epoch {epoch}, past this run's {} global epochs: it is not this run's",
                    self.dir.path().display(),
                    self.record.train.global_epochs
                )))
            }
            Some((epoch, seconds)) => {
                trainer.load_checkpoint(&self.dir, Checkpoint::Global(epoch))?;
                tracing::info!(run = %self.dir.name(), epoch, "global stage resumed");
                Ok((epoch, seconds))
            }
            None => Ok((0, 0.0)),
        }
    }

    /// Saves PerPEFT's grouping: `groups.json`, the global model as `global/`, and in
    /// `run.json` the group sizes and the seconds of the global stage and of the grouping
    /// (timed by `grouping`, which started when the global stage ended).
    pub fn save_grouping(
        &mut self,
        groups: &Groups,
        trainer: &Trainer<'_>,
        global_table: &burn::prelude::Tensor<2>,
        global_seconds: f64,
        grouping: Instant,
    ) -> Result<()> {
        self.dir.save_groups(groups)?;
        let global = self.dir.global();
        global.save_best(&trainer.rec.valid(), std::slice::from_ref(global_table))?;
        self.record_artifact("global", global.path(), None)?;
        self.record_artifact("groups", &self.dir.groups_file(), None)?;
        self.record.groups = Some(groups.members().iter().map(Vec::len).collect());
        self.record.stages = vec![
            ("global".into(), global_seconds),
            ("grouping".into(), grouping.elapsed().as_secs_f64()),
        ];
        self.dir.save_record(&self.record)
    }

    /// Records evaluated epoch `e` of `trainer`: the best-epoch files when it is the best so far
    /// ([`select`]), the checkpoint, the registry rows (after which the epoch counts as done),
    /// and `run.json`.
    pub fn record_epoch(
        &mut self,
        e: EpochRecord,
        eval: Evaluation,
        trainer: &Trainer<'_>,
    ) -> Result<()> {
        let epoch = e.epoch;
        let best = self.record.best_epoch;
        let improved = select::improves(
            &eval.valid,
            (best > 0).then(|| &self.record.epochs[best - 1].valid),
        );
        if improved {
            self.dir.save_best(&trainer.rec.valid(), &eval.tables)?;
            if let Some(peft) = trainer.source.peft() {
                self.dir.save_adapters(&peft.valid())?;
            }
        }
        trainer.save_checkpoint(&self.dir, Checkpoint::Epoch(epoch))?;
        self.registry.record_epoch(self.id, &e)?;
        self.record.epochs.push(e);
        if improved {
            self.record.best_epoch = epoch;
            self.record.test = eval.test;
            self.record.best_groups = eval.per_group;
            self.registry.set_best(self.id, epoch, &eval.test)?;
            for (kind, path) in self.dir.best_artifacts() {
                self.record_artifact(kind, &path, Some(epoch))?;
            }
        }
        self.record_artifact("checkpoint", &self.dir.checkpoint_dir(), Some(epoch))?;
        self.dir.prune_checkpoints(epoch, self.record.best_epoch)?;
        self.record.peak_rss_mib = crate::config::record::peak_rss_mib();
        self.dir.save_record(&self.record)
    }
}

/// The record of run `id` to resume: the same data and configuration are required (only the
/// number of epochs may change); the completed epochs and the best one come from the registry,
/// which is the truth (`run.json` may be one epoch behind if the run died between the two
/// writes).
fn resumed_record(
    dir: &RunDir,
    registry: &Registry,
    id: i64,
    how: &Opening<'_>,
) -> Result<RunRecord> {
    let name = dir.name();
    let mut record = dir.read_record()?;
    if record.dataset_checksum != how.dataset.checksum {
        return Err(Error::Conflict(format!(
            "{name} was trained on data with checksum {}, the data on disk has {}",
            record.dataset_checksum, how.dataset.checksum
        )));
    }
    let same_train = TrainConfig {
        epochs: how.cfg.epochs,
        ..record.train.clone()
    } == *how.cfg;
    if record.model != *how.model || !same_train {
        return Err(Error::Conflict(format!(
            "{name} was started with a different configuration; resume it with its own (`perpeft train --resume` takes it from run.json; only --epochs may change)"
        )));
    }
    record.train.epochs = how.cfg.epochs;
    registry.set_epochs(id, how.cfg.epochs)?;
    record.epochs = registry.epochs(id)?;
    let best = select::best_epoch(&record.epochs).map(|e| (e.epoch, e.test));
    if best.map(|b| b.0) != Some(record.best_epoch) {
        record.best_groups.clear();
    }
    (record.best_epoch, record.test) = best.unwrap_or((0, Metrics::default()));
    Ok(record)
}

//! Checkpoints: after each completed epoch, the trainable model (parameter ids included, so the
//! optimiser state still matches after loading) and both optimisers' state, as
//! `checkpoint/epoch-N.{model,optimizer,optimizer-peft}.bpk`. Older epochs are pruned once the
//! registry records the newer one, so a run killed at any moment has a complete checkpoint.
//!
//! PerPEFT's global stage is not evaluated and has no registry rows: after each of its epochs
//! the same files go to `checkpoint/global-N.*.bpk`, then a marker `global-N.json` (the stage's
//! seconds so far) that makes the checkpoint count; the older global checkpoint goes then, and
//! all of them once the first evaluated epoch is recorded.

use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::prelude::*;
use burn::store::ModuleRecord;

use super::run_dir::CheckpointPart;
use super::{Checkpoint, RunDir, atomically, write_atomic};
use crate::error::{Error, IoContext, Result};

/// The two optimisers of a run: SASRec + projectors, and the PEFT parameters.
const OPTIMIZERS: [CheckpointPart; 2] = [CheckpointPart::Optimizer, CheckpointPart::OptimizerPeft];

impl RunDir {
    /// Saves the training state at `at`.
    pub fn save_checkpoint<M: Module>(
        &self,
        at: Checkpoint,
        model: &M,
        optimizers: [&ModuleOptimizer; 2],
    ) -> Result<()> {
        atomically(&self.checkpoint_file(at, CheckpointPart::Model), |tmp| {
            model
                .clone()
                .save_file(tmp)
                .map_err(|e| Error::format(tmp, format!("{e:?}")))
        })?;
        for (optim, part) in optimizers.into_iter().zip(OPTIMIZERS) {
            atomically(&self.checkpoint_file(at, part), |tmp| {
                optim
                    .to_record()
                    .save(tmp)
                    .map_err(|e| Error::format(tmp, format!("{e:?}")))
            })?;
        }
        Ok(())
    }

    /// Whether the model checkpoint at `at` is on disk.
    pub fn has_checkpoint(&self, at: Checkpoint) -> bool {
        self.checkpoint_file(at, CheckpointPart::Model).exists()
    }

    /// Marks global-stage epoch `epoch`'s checkpoint complete, with the stage's seconds so far,
    /// and removes the global checkpoints before it.
    pub fn complete_global_checkpoint(&self, epoch: usize, seconds: f64) -> Result<()> {
        let marker = serde_json::json!({ "epoch": epoch, "seconds": seconds });
        write_atomic(&self.global_marker(epoch), marker.to_string().as_bytes())?;
        self.remove_checkpoints(|c| matches!(c, Checkpoint::Global(e) if e < epoch))
    }

    /// The last complete global-stage checkpoint: its epoch and the stage's seconds until then.
    pub fn last_global_checkpoint(&self) -> Result<Option<(usize, f64)>> {
        let dir = self.checkpoint_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut last = None;
        for entry in entries {
            let name = entry.at(&dir)?.file_name().to_string_lossy().into_owned();
            if let Some(Checkpoint::Global(e)) = Checkpoint::of_file(&name)
                && name.ends_with(".json")
                && last.is_none_or(|l| e > l)
            {
                last = Some(e);
            }
        }
        let Some(epoch) = last else { return Ok(None) };
        let path = self.global_marker(epoch);
        let text = std::fs::read_to_string(&path).at(&path)?;
        let seconds = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["seconds"].as_f64())
            .ok_or_else(|| Error::format(&path, "not a global checkpoint marker"))?;
        Ok(Some((epoch, seconds)))
    }

    /// Removes the checkpoints of epochs before `keep` (called once `keep` is recorded as done)
    /// except the best epoch's (`best`), which a PerPEFT run can start from
    /// (`global_from_best`), and every global-stage checkpoint.
    pub fn prune_checkpoints(&self, keep: usize, best: usize) -> Result<()> {
        self.remove_checkpoints(|c| match c {
            Checkpoint::Epoch(e) => e < keep && e != best,
            Checkpoint::Global(_) => true,
        })
    }

    /// Removes every global-stage checkpoint.
    pub fn remove_global_checkpoints(&self) -> Result<()> {
        self.remove_checkpoints(|c| matches!(c, Checkpoint::Global(_)))
    }

    /// Removes the checkpoint files `which` selects (none when there is no `checkpoint/`).
    fn remove_checkpoints(&self, which: impl Fn(Checkpoint) -> bool) -> Result<()> {
        let dir = self.checkpoint_dir();
        if !dir.exists() {
            return Ok(());
        }
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if Checkpoint::of_file(&name).is_some_and(&which) {
                std::fs::remove_file(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// Restores the training state at `at` into a freshly built `model` and optimisers of the
    /// same configuration.
    pub fn load_checkpoint<M: Module>(
        &self,
        at: Checkpoint,
        model: M,
        optimizers: [ModuleOptimizer; 2],
    ) -> Result<(M, [ModuleOptimizer; 2])> {
        let model = self.load_checkpoint_model(at, model)?;
        let [a, b] = optimizers;
        let state = |part: CheckpointPart| -> Result<OptimizerRecord> {
            let path = self.checkpoint_file(at, part);
            OptimizerRecord::load(&path).map_err(|e| Error::format(&path, format!("{e:?}")))
        };
        Ok((
            model,
            [
                a.load_record(state(OPTIMIZERS[0])?),
                b.load_record(state(OPTIMIZERS[1])?),
            ],
        ))
    }

    /// The model at `at` alone, loaded into a freshly built `model` of the same configuration
    /// (burn materialises optimiser state on its default device, which need not be touched when
    /// only the model is wanted).
    pub fn load_checkpoint_model<M: Module>(&self, at: Checkpoint, model: M) -> Result<M> {
        let path = self.checkpoint_file(at, CheckpointPart::Model);
        let record =
            ModuleRecord::load(&path).map_err(|e| Error::format(&path, format!("{e:?}")))?;
        model
            .try_load_record(record)
            .map_err(|e| Error::format(&path, format!("{e:?}")))
    }
}

//! Checkpoints: after each completed epoch, the trainable model (parameter ids included, so the
//! optimiser state still matches after loading) and both optimisers' state, as
//! `checkpoint/epoch-N.{model,optimizer,optimizer-peft}.bpk`. Older epochs are pruned once the
//! registry records the newer one, so a run killed at any moment has a complete checkpoint.

use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::prelude::*;
use burn::store::ModuleRecord;

use super::run_dir::CheckpointPart;
use super::{RunDir, atomically};
use crate::error::{Error, IoContext, Result};

/// The two optimisers of a run: SASRec + projectors, and the PEFT parameters.
const OPTIMIZERS: [CheckpointPart; 2] = [CheckpointPart::Optimizer, CheckpointPart::OptimizerPeft];

impl RunDir {
    /// Saves the training state after completed epoch `epoch`.
    pub fn save_checkpoint<M: Module>(
        &self,
        epoch: usize,
        model: &M,
        optimizers: [&ModuleOptimizer; 2],
    ) -> Result<()> {
        atomically(&self.checkpoint_file(epoch, CheckpointPart::Model), |tmp| {
            model
                .clone()
                .save_file(tmp)
                .map_err(|e| Error::format(tmp, format!("{e:?}")))
        })?;
        for (optim, part) in optimizers.into_iter().zip(OPTIMIZERS) {
            atomically(&self.checkpoint_file(epoch, part), |tmp| {
                optim
                    .to_record()
                    .save(tmp)
                    .map_err(|e| Error::format(tmp, format!("{e:?}")))
            })?;
        }
        Ok(())
    }

    /// Whether the model checkpoint of completed epoch `epoch` is on disk.
    pub fn has_checkpoint(&self, epoch: usize) -> bool {
        self.checkpoint_file(epoch, CheckpointPart::Model).exists()
    }

    /// Removes the checkpoints of epochs before `keep` (called once `keep` is recorded as done)
    /// except the best epoch's (`best`), which a PerPEFT run can start from
    /// (`global_from_best`).
    pub fn prune_checkpoints(&self, keep: usize, best: usize) -> Result<()> {
        let dir = self.checkpoint_dir();
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if RunDir::checkpoint_epoch(&name).is_some_and(|e| e < keep && e != best) {
                std::fs::remove_file(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// Restores the training state of completed epoch `epoch` into a freshly built `model` and
    /// optimisers of the same configuration.
    pub fn load_checkpoint<M: Module>(
        &self,
        epoch: usize,
        model: M,
        optimizers: [ModuleOptimizer; 2],
    ) -> Result<(M, [ModuleOptimizer; 2])> {
        let model = self.load_checkpoint_model(epoch, model)?;
        let [a, b] = optimizers;
        let state = |part: CheckpointPart| -> Result<OptimizerRecord> {
            let path = self.checkpoint_file(epoch, part);
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

    /// The model of completed epoch `epoch` alone, loaded into a freshly built `model` of the
    /// same configuration (burn materialises optimiser state on its default device, which need
    /// not be touched when only the model is wanted).
    pub fn load_checkpoint_model<M: Module>(&self, epoch: usize, model: M) -> Result<M> {
        let path = self.checkpoint_file(epoch, CheckpointPart::Model);
        let record =
            ModuleRecord::load(&path).map_err(|e| Error::format(&path, format!("{e:?}")))?;
        model
            .try_load_record(record)
            .map_err(|e| Error::format(&path, format!("{e:?}")))
    }
}

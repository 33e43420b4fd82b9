//! `train` owns training: seeded batches → the item table of each batch's unique items →
//! SASRec's loss → two AdamW optimisers, an evaluation after every epoch, the best epoch's
//! artifacts, a checkpoint per completed epoch, and the run's rows in the registry.
//!
//! Methods (`config::Method`): `id-only` (SASRec over ID embeddings), `frozen` (cached
//! frozen backbone features through the projector), `global-peft` (one adapter + projector +
//! SASRec trained jointly) and `perpeft` (docs/method.md §7–§9: a global stage, k-means user
//! groups over the global model's user states, then K adapters and projectors warm-started from
//! the global ones and trained group by group with group-restricted negatives, SASRec shared).
//!
//! - [`batch`]: batches as tensors, and re-indexed onto their unique items.
//! - [`source`]: [`ItemSource`], where features come from, with the trainable part it owns.
//! - [`trainer`]: [`Trainer`], the model and its optimisers: a step, an epoch, tables,
//!   evaluation, checkpoints.
//! - [`stages`]: the global stage, grouping, and the evaluated (per-group) stage.
//! - [`lifecycle`]: [`Start`] (new, overwrite, resume) and the recording of each epoch.
//! - [`observe`]: [`Observer`] of steps, grouping and epochs; progress bars.
//!
//! Invariant: training writes through `store` only; nothing here knows of HTTP.

pub mod batch;
pub mod lifecycle;
pub mod observe;
pub mod source;
pub mod stages;
pub mod trainer;

use std::path::Path;

pub use batch::{LocalBatch, batch_tensors};
pub use lifecycle::Start;
pub use observe::{Event, Observer, ProgressBars, Stage};
pub use source::ItemSource;
pub use trainer::Trainer;

use crate::config::{Method, RunRecord, SasRecConfig, TrainConfig, Windows};
use crate::data::sampler::Sampler;
use crate::data::{Dataset, Split};
use crate::device::Resolved;
use crate::error::{Error, Result};
use crate::store::{RunDir, Status};
use lifecycle::{Opening, RunState};
use stages::Plan;

/// Trains `cfg` on `dataset` into run directory `out_dir` (registered in the registry of its
/// parent directory), with progress bars on stderr. Returns the run record.
pub fn train(
    dataset: &Dataset,
    model_cfg: &SasRecConfig,
    cfg: &TrainConfig,
    resolved: &Resolved,
    out_dir: &Path,
    start: Start,
) -> Result<RunRecord> {
    let mut bars = ProgressBars::default();
    train_with(dataset, model_cfg, cfg, resolved, out_dir, start, &mut bars)
}

/// [`train`], reporting to `observer` instead of progress bars.
pub fn train_with(
    dataset: &Dataset,
    model_cfg: &SasRecConfig,
    cfg: &TrainConfig,
    resolved: &Resolved,
    out_dir: &Path,
    start: Start,
    observer: &mut dyn Observer,
) -> Result<RunRecord> {
    cfg.check()?;
    let split = Split::leave_one_out(&dataset.sequences);
    if *model_cfg != cfg.sasrec(model_cfg.n_items) {
        return Err(Error::Invalid(format!(
            "the model's window, dropout or padding mode ({}, {}, {:?}) is not the configuration's ({}, {}, {:?})",
            model_cfg.max_len,
            model_cfg.dropout,
            model_cfg.mode,
            cfg.max_len,
            cfg.dropout,
            cfg.mode
        )));
    }
    let sampler = Sampler::new(
        &split.train,
        dataset.n_items(),
        model_cfg.max_len,
        cfg.batch_size,
        cfg.seed,
    )
    .with_all_windows(cfg.windows == Windows::All)
    .with_negatives_per_position(cfg.negatives_per_position())
    .with_shared_negatives(cfg.shared_negatives());
    // only per-position negatives exclude a user's items (a softmax's shared ones do not)
    if cfg.negatives_per_position() > 0
        && let Some(&u) = sampler.users_without_negatives().first()
    {
        return Err(Error::Invalid(format!(
            "user {:?} of {} has interacted with every item in training: no negative item can be sampled",
            dataset.user_ids[u], dataset.name
        )));
    }
    // one trainer per run at a time, across processes (held until this returns)
    let _lock = RunDir::new(out_dir).lock()?;
    let (mut trainer, artifacts) = Trainer::new(dataset, &split, model_cfg, cfg, resolved)?;
    let opening = Opening {
        dataset,
        split: &split,
        model: model_cfg,
        cfg,
        device: resolved.name,
    };
    let (mut run, groups) = RunState::open(RunDir::new(out_dir), start, &opening, &mut trainer)?;
    let plan = Plan {
        cfg,
        split: &split,
        sampler,
    };
    let result = (|| -> Result<()> {
        for (kind, path) in &artifacts {
            run.record_artifact(kind, path, None)?;
        }
        let groups = match groups {
            Some(g) => Some(g),
            None if cfg.method == Method::Perpeft => {
                let seconds = match &cfg.global_from {
                    Some(src) => {
                        let seconds = stages::reuse_global(&run, &mut trainer, &RunDir::new(src))?;
                        run.record_artifact("global_from", src, None)?;
                        seconds
                    }
                    None => stages::global_stage(&plan, &run, &mut trainer, observer)?,
                };
                Some(stages::group_users(
                    &plan,
                    &mut run,
                    &mut trainer,
                    seconds,
                    observer,
                )?)
            }
            None => None,
        };
        stages::evaluated_stage(&plan, &mut run, &mut trainer, groups.as_ref(), observer)
    })();
    match &result {
        Ok(()) => run.set_status(Status::Finished)?,
        // stopped on purpose: the run stays `running` in the registry, resumable, and is shown
        // as interrupted once nothing trains it
        Err(Error::Stopped { .. }) => {}
        Err(_) => run.set_status(Status::Failed)?,
    }
    result.map(|()| run.record)
}

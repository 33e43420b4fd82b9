//! The stages of a run (docs/method.md §7–§9): PerPEFT's global stage (trained, or taken from a
//! finished global-peft run), the grouping of users by their global-model states, and the
//! evaluated stage: every epoch of the other methods, or PerPEFT's per-group epochs, where each
//! group's batches use its own adapter and projector and draw negatives from its own pool.

use std::time::Instant;

use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::batch::epoch_seed;
use super::lifecycle::RunState;
use super::observe::{Event, Observer, Stage};
use super::trainer::Trainer;
use crate::cluster;
use crate::config::{EpochRecord, Groups, Method, TrainConfig};
use crate::data::Split;
use crate::data::sampler::{Batch, Negatives, Sampler, group_pool};
use crate::error::{Error, Result};
use crate::eval::window;
use crate::rec::SasRec;
use crate::store::RunDir;

/// What the stages share: the configuration, the split and the sampler of all users.
pub struct Plan<'a> {
    pub cfg: &'a TrainConfig,
    pub split: &'a Split,
    pub sampler: Sampler<'a>,
}

fn stopped_after(what: &str) -> Error {
    Error::Stopped { at: what.into() }
}

/// Stage 1 of PerPEFT: `global_epochs` epochs of global training, not evaluated (as the
/// reference). Seeded exactly as the epochs of a `global-peft` run, so that a finished
/// `global-peft` run can stand in for it (`global_from`). Returns the seconds it took.
pub fn global_stage(
    plan: &Plan<'_>,
    trainer: &mut Trainer<'_>,
    observer: &mut dyn Observer,
) -> Result<f64> {
    let cfg = plan.cfg;
    let clock = Instant::now();
    let steps = cfg.global_epochs * plan.sampler.batches_per_epoch();
    let start = Event::StageStarted {
        stage: Stage::Global,
        first: 1,
        last: cfg.global_epochs,
        steps,
    };
    if observer.on(&start).is_break() {
        return Err(stopped_after("the start of the global stage"));
    }
    for epoch in 1..=cfg.global_epochs {
        trainer.device().seed(epoch_seed(cfg.seed, epoch));
        let batches: Vec<(usize, Batch)> = plan
            .sampler
            .epoch(epoch)
            .into_iter()
            .map(|b| (0, b))
            .collect();
        let loss = trainer.epoch(&batches, Stage::Global, epoch, observer)?;
        tracing::info!(epoch, loss = format!("{loss:.4}"), "global stage");
    }
    Ok(clock.elapsed().as_secs_f64())
}

/// Stage 1 of PerPEFT taken from the finished `global-peft` run in `src`: its last epoch's
/// SASRec, projector and adapter (not its best validation epoch: the global stage is not
/// evaluated). The run must match this one in everything stage 1 depends on. Returns the
/// training seconds it spent.
pub fn reuse_global(run: &RunState, trainer: &mut Trainer<'_>, src: &RunDir) -> Result<f64> {
    let cfg = &run.record.train;
    let source = src.read_record()?;
    let at = src.path().display();
    if source.train.method != Method::GlobalPeft {
        return Err(Error::Invalid(format!(
            "{at} is a {} run; --global-from needs a global-peft run",
            source.method
        )));
    }
    if source.dataset_checksum != run.record.dataset_checksum {
        return Err(Error::Conflict(format!(
            "{at} was trained on other data (checksum {})",
            source.dataset_checksum
        )));
    }
    let stage_one = |c: &TrainConfig| {
        (
            c.backbone,
            c.clip_dir.clone(),
            c.peft.clone(),
            c.modality,
            c.large_global,
            c.batch_size,
        )
    };
    if source.model != run.record.model || stage_one(&source.train) != stage_one(cfg) {
        return Err(Error::Invalid(format!(
            "{at} was trained with a different model, backbone, adapter, modality or batch size than this run asks for"
        )));
    }
    let done = source.epochs.len();
    if done != cfg.global_epochs || done < source.train.epochs {
        return Err(Error::Invalid(format!(
            "{at} has {done} of {} epochs done; the global stage here is {} epochs (pass --global-epochs {done} for a finished run)",
            source.train.epochs, cfg.global_epochs
        )));
    }
    trainer.load_checkpoint_model(src, done)?;
    tracing::info!(from = %at, epochs = done, "global stage reused");
    Ok(source.epochs.iter().map(|e| e.train_seconds).sum())
}

/// Stage 2 of PerPEFT: the user groups from the global model (k-means over each user's state,
/// or random groups for the ablation). Saves the groups and the global model, and leaves the
/// banks grown to K copies with fresh optimisers.
pub fn group_users(
    plan: &Plan<'_>,
    run: &mut RunState,
    trainer: &mut Trainer<'_>,
    global_seconds: f64,
    observer: &mut dyn Observer,
) -> Result<Groups> {
    let cfg = plan.cfg;
    let clock = Instant::now();
    let table = trainer.tables(1)?.remove(0);
    let (reps, dim) = user_representations(&table, &trainer.rec.sasrec.valid(), plan.split);
    let groups = if cfg.random_groups {
        cluster::random(&reps, dim, cfg.groups, cfg.seed)
    } else {
        cluster::kmeans(&reps, dim, cfg.groups, cfg.seed)?
    };
    run.save_grouping(&groups, trainer, &table, global_seconds, clock)?;
    tracing::info!(how = %groups.how, sizes = ?run.record.groups, "user groups");
    trainer.replicate(groups.k);
    if observer.on(&Event::Grouped(&groups)).is_break() {
        return Err(stopped_after("grouping"));
    }
    Ok(groups)
}

/// Each user's representation for grouping (docs/method.md §8): the global model's SASRec state
/// over the right-aligned last items of training + the validation item. Users without a
/// validation item (fewer than 3 interactions, never evaluated) use their training items.
pub fn user_representations(
    table: &Tensor<2>,
    sasrec: &SasRec,
    split: &Split,
) -> (Vec<f32>, usize) {
    let l = sasrec.max_len();
    let device = table.device();
    let n = split.train.len();
    let mut out = Vec::with_capacity(n * sasrec.hidden());
    let users: Vec<usize> = (0..n).collect();
    for chunk in users.chunks(crate::eval::EVAL_BATCH) {
        let seq: Vec<i64> = chunk
            .iter()
            .flat_map(|&u| window(&grouping_history(split, u), l))
            .map(i64::from)
            .collect();
        let seq = Tensor::<2, Int>::from_data(TensorData::new(seq, [chunk.len(), l]), &device);
        let states = sasrec.user_states(seq, table.clone());
        out.extend(states.into_data().iter::<f32>());
    }
    (out, sasrec.hidden())
}

/// The history a user is grouped by: training items + the validation item.
pub fn grouping_history(split: &Split, u: usize) -> Vec<u32> {
    let mut h = split.train[u].clone();
    h.extend(split.valid[u]);
    h
}

/// One sampler per group: its own users, and negatives from its own pool (docs/method.md §9.2)
/// or, for the ablation, uniform over all items.
pub fn group_samplers<'a>(
    sampler: &Sampler<'a>,
    split: &Split,
    groups: &Groups,
    uniform_negatives: bool,
) -> Vec<Sampler<'a>> {
    groups
        .members()
        .into_iter()
        .map(|users| {
            let negatives = if uniform_negatives {
                Negatives::Uniform
            } else {
                Negatives::Pool(group_pool(&split.train, &users))
            };
            sampler.clone().with_users(users).with_negatives(negatives)
        })
        .collect()
}

/// Batches of one epoch of the per-group stage: every group's batches (its own users, its own
/// negatives), interleaved in an order shuffled with the epoch's seed (docs/method.md §9.3).
pub fn group_plan(samplers: &[Sampler<'_>], seed: u64, epoch: usize) -> Vec<(usize, Batch)> {
    let mut plan: Vec<(usize, Batch)> = samplers
        .iter()
        .enumerate()
        .flat_map(|(g, s)| s.epoch(epoch).into_iter().map(move |b| (g, b)))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(epoch_seed(seed ^ 0x9e37, epoch));
    plan.shuffle(&mut rng);
    plan
}

/// The evaluated stage: epochs from the first not yet recorded to `cfg.epochs`, each followed
/// by an evaluation (per group with `groups`) and its record.
pub fn evaluated_stage(
    plan: &Plan<'_>,
    run: &mut RunState,
    trainer: &mut Trainer<'_>,
    groups: Option<&Groups>,
    observer: &mut dyn Observer,
) -> Result<()> {
    let cfg = plan.cfg;
    let samplers =
        groups.map(|g| group_samplers(&plan.sampler, plan.split, g, cfg.uniform_negatives));
    let per_epoch = match &samplers {
        Some(s) => s.iter().map(|s| s.batches_per_epoch()).sum(),
        None => plan.sampler.batches_per_epoch(),
    };
    let first = run.record.epochs.len() + 1;
    tracing::info!(
        dataset = %run.record.dataset, method = %run.record.method, device = %run.record.device,
        batches = per_epoch, first_epoch = first, "training"
    );
    let start = Event::StageStarted {
        stage: Stage::Evaluated,
        first,
        last: cfg.epochs,
        steps: (cfg.epochs + 1).saturating_sub(first) * per_epoch,
    };
    if observer.on(&start).is_break() {
        return Err(stopped_after("the start of training"));
    }
    for epoch in first..=cfg.epochs {
        let clock = Instant::now();
        trainer.device().seed(epoch_seed(cfg.seed, epoch));
        let batches: Vec<(usize, Batch)> = match &samplers {
            Some(s) => group_plan(s, cfg.seed, epoch),
            None => plan
                .sampler
                .epoch(epoch)
                .into_iter()
                .map(|b| (0, b))
                .collect(),
        };
        let loss = trainer.epoch(&batches, Stage::Evaluated, epoch, observer)?;
        let train_seconds = clock.elapsed().as_secs_f64();
        let eval = trainer.evaluate(groups)?;
        let eval_seconds = clock.elapsed().as_secs_f64() - train_seconds;
        let e = EpochRecord {
            epoch,
            loss,
            valid: eval.valid,
            test: eval.test,
            train_seconds,
            eval_seconds,
        };
        tracing::info!(
            epoch,
            loss = format!("{:.4}", e.loss),
            valid_ndcg20 = format!("{:.4}", e.valid.ndcg20),
            test_hr10 = format!("{:.4}", e.test.hr10),
            test_ndcg10 = format!("{:.4}", e.test.ndcg10),
            train_s = format!("{:.2}", train_seconds),
            eval_users_per_s = format!(
                "{:.0}",
                (e.valid.users + e.test.users) as f64 / eval_seconds.max(1e-9)
            ),
            "epoch"
        );
        run.record_epoch(e, eval, trainer)?;
        let recorded = run.record.epochs.last().expect("just recorded");
        if observer.on(&Event::Epoch(recorded)).is_break() {
            return Err(stopped_after(&format!("epoch {epoch}")));
        }
    }
    Ok(())
}

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
use crate::store::{Checkpoint, Registry, RunDir};

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
/// `global-peft` run can stand in for it (`global_from`). Each epoch is checkpointed, and a
/// resumed run goes on after the last checkpointed one. Returns the seconds the stage took.
pub fn global_stage(
    plan: &Plan<'_>,
    run: &RunState,
    trainer: &mut Trainer<'_>,
    observer: &mut dyn Observer,
) -> Result<f64> {
    let cfg = plan.cfg;
    let clock = Instant::now();
    let (done, before) = run.resume_global(trainer)?;
    let steps =
        (cfg.global_epochs - done.min(cfg.global_epochs)) * plan.sampler.batches_per_epoch();
    let start = Event::StageStarted {
        stage: Stage::Global,
        first: done + 1,
        last: cfg.global_epochs,
        steps,
    };
    if done < cfg.global_epochs && observer.on(&start).is_break() {
        return Err(stopped_after("the start of the global stage"));
    }
    for epoch in done + 1..=cfg.global_epochs {
        trainer.device().seed(epoch_seed(cfg.seed, epoch));
        let batches: Vec<(usize, Batch)> = plan
            .sampler
            .epoch(epoch)
            .into_iter()
            .map(|b| (0, b))
            .collect();
        let loss = trainer.epoch(&batches, Stage::Global, epoch, observer)?;
        tracing::info!(epoch, loss = format!("{loss:.4}"), "global stage");
        run.record_global_epoch(trainer, epoch, before + clock.elapsed().as_secs_f64())?;
    }
    Ok(before + clock.elapsed().as_secs_f64())
}

/// Stage 1 of PerPEFT taken from the finished `global-peft` run in `src`: its last epoch's
/// SASRec, projector and adapter (the reference's global stage is not evaluated), or with
/// `global_from_best` its best validation epoch's. The run must match this one in everything stage 1 depends on. Returns the
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
            (c.windows, c.loss, c.negatives),
        )
    };
    if source.model != run.record.model || stage_one(&source.train) != stage_one(cfg) {
        return Err(Error::Invalid(format!(
            "{at} was trained with a different model, backbone, adapter, modality, batch size, windows, loss or negatives than this run asks for"
        )));
    }
    let done = source.epochs.len();
    let epoch = if cfg.global_from_best {
        let finished = Registry::for_run(src)?
            .list()?
            .iter()
            .any(|r| r.name == src.name() && r.status == "finished");
        if !finished || source.best_epoch == 0 {
            return Err(Error::Invalid(format!(
                "{at} has not finished: --global-from-best takes the best epoch of a finished run"
            )));
        }
        if !src.has_checkpoint(Checkpoint::Epoch(source.best_epoch)) {
            return Err(Error::Invalid(format!(
                "{at} has no checkpoint of its best epoch {} (runs trained before checkpoints of the best epoch were kept): start from its last epoch with --global-epochs {done} instead of --global-from-best",
                source.best_epoch
            )));
        }
        source.best_epoch
    } else {
        if source.train.patience > 0 && done != cfg.global_epochs {
            return Err(Error::Invalid(format!(
                "{at} stops early (patience {}): start from its best epoch with --global-from-best",
                source.train.patience
            )));
        }
        if done != cfg.global_epochs || done < source.train.epochs {
            return Err(Error::Invalid(format!(
                "{at} has {done} of {} epochs done; the global stage here is {} epochs (pass --global-epochs {done} for a finished run)",
                source.train.epochs, cfg.global_epochs
            )));
        }
        done
    };
    trainer.load_checkpoint_model(src, Checkpoint::Epoch(epoch))?;
    tracing::info!(from = %at, epoch, "global stage reused");
    Ok(source
        .epochs
        .iter()
        .filter(|e| e.epoch <= epoch)
        .map(|e| e.train_seconds)
        .sum())
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
    // the full softmax's counterpart of group-restricted negatives: the groups' samplers' pools
    // (none for the uniform-negatives ablation)
    if cfg.full_softmax()
        && let Some(pools) = samplers
            .iter()
            .flatten()
            .map(Sampler::pool)
            .collect::<Option<Vec<_>>>()
        && !pools.is_empty()
    {
        trainer.restrict_candidates(&pools);
    }
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
    // group selection: each group's best validation NDCG@20 so far, starting from the model as
    // it is (the global stage's, or on resume the checkpoint, which holds each group's best)
    let mut group_best: Option<Vec<f64>> = match groups {
        Some(g) if cfg.group_select && first <= cfg.epochs => Some(
            trainer
                .evaluate(Some(g))?
                .per_group
                .iter()
                .map(|(v, _)| v.ndcg20)
                .collect(),
        ),
        _ => None,
    };
    for epoch in first..=cfg.epochs {
        // checked before the epoch, so a run resumed after its early stop stops at once
        if epoch > 1 && patience_spent(cfg.patience, epoch - 1, run.record.best_epoch) {
            tracing::info!(
                after = epoch - 1,
                best_epoch = run.record.best_epoch,
                patience = cfg.patience,
                "early stop: validation NDCG@20 has not improved"
            );
            break;
        }
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
        let before = group_best.as_ref().map(|_| trainer.group_state());
        let loss = trainer.epoch(&batches, Stage::Evaluated, epoch, observer)?;
        let train_seconds = clock.elapsed().as_secs_f64();
        let mut eval = trainer.evaluate(groups)?;
        if let (Some(best), Some(before)) = (&mut group_best, &before) {
            let mut back = Vec::new();
            for (g, (v, _)) in eval.per_group.iter().enumerate() {
                if v.ndcg20 > best[g] {
                    best[g] = v.ndcg20;
                } else {
                    back.push(g);
                }
            }
            if !back.is_empty() {
                tracing::info!(epoch, groups = ?back, "groups back to their best adapters");
                trainer.restore_groups(before, &back);
                eval = trainer.evaluate(groups)?;
            }
        }
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

/// Whether training stops after `epoch`: `patience` epochs (> 0) have passed since the best
/// one.
pub fn patience_spent(patience: usize, epoch: usize, best_epoch: usize) -> bool {
    patience > 0 && epoch >= best_epoch + patience
}

//! The trainer: the model being trained (SASRec + projector bank, and the item source with its
//! trainable part), its two AdamW optimisers (SASRec + projectors; PEFT parameters, as the
//! reference), one optimisation step, one pass over a plan of batches, the item tables and the
//! per-group evaluation of the current model, and its checkpoints.

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use shared::api::Metrics;

use super::batch::LocalBatch;
use super::observe::{Event, Observer, Stage};
use super::source::{ItemSource, SourceArtifact};
use crate::config::{Groups, SasRecConfig, TrainConfig};
use crate::data::sampler::Batch;
use crate::data::{Dataset, Split};
use crate::device::Resolved;
use crate::error::{Error, Result};
use crate::eval::{Phase, evaluate_grouped};
use crate::peft::Peft;
use crate::rec::loss::{Candidates, EXCLUDED, loss};
use crate::rec::{Projector, Recommender};
use crate::store::{Checkpoint, RunDir};

/// What a checkpoint holds: the recommender and the PEFT part.
#[derive(Module, Debug)]
pub struct Trainable {
    pub rec: Recommender,
    pub peft: Option<Peft>,
}

/// The validation and test metrics of one evaluation, overall and per group, and the item
/// tables they were computed with (one per group).
pub struct Evaluation {
    pub valid: Metrics,
    pub test: Metrics,
    /// Per group `(valid, test)`; empty without groups.
    pub per_group: Vec<(Metrics, Metrics)>,
    pub tables: Vec<Tensor<2>>,
}

/// The model under training and everything a step needs.
pub struct Trainer<'a> {
    /// SASRec and the projector bank.
    pub rec: Recommender,
    /// The item features and their trainable part.
    pub source: ItemSource,
    optimizers: [ModuleOptimizer; 2],
    dataset: &'a Dataset,
    split: &'a Split,
    cfg: &'a TrainConfig,
    /// The autodiff device training runs on.
    device: Device,
    /// The same device without autodiff, for evaluation.
    inner: Device,
    /// Per group, the full softmax's score bias over every item (0 for candidates,
    /// [`EXCLUDED`] otherwise; row 0 always excluded); one entry for all groups by default.
    candidates: Vec<Tensor<1>>,
    /// Whether steps leave SASRec as it is (PerPEFT's per-group stage with `freeze_shared`).
    freeze_shared: bool,
}

/// A copy of the per-group trainable parts ([`Trainer::group_state`]).
pub struct GroupState {
    projectors: Vec<Projector>,
    iisan: Option<Vec<crate::peft::iisan::Iisan>>,
}

/// The softmax bias over rows `0..n` that excludes row 0 and every row not in `keep`
/// (`None`: keep all).
fn candidate_bias(n: usize, keep: Option<&[u32]>, device: &Device) -> Tensor<1> {
    let mut bias = vec![if keep.is_some() { EXCLUDED } else { 0.0 }; n];
    for &i in keep.unwrap_or(&[]) {
        bias[i as usize] = 0.0;
    }
    bias[0] = EXCLUDED;
    Tensor::from_data(TensorData::new(bias, [n]), device)
}

fn adamw(weight_decay: f64) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay as f32)
        .init()
}

impl<'a> Trainer<'a> {
    /// A fresh model for `cfg` on `resolved`'s device: the item source (seeded `seed + 7`), then
    /// SASRec and the projector (seeded `seed`). Returns it with the cache files it used.
    pub fn new(
        dataset: &'a Dataset,
        split: &'a Split,
        model_cfg: &SasRecConfig,
        cfg: &'a TrainConfig,
        resolved: &Resolved,
    ) -> Result<(Self, Vec<SourceArtifact>)> {
        let inner = resolved.device.clone();
        let device = inner.clone().autodiff();
        let (source, artifacts) = ItemSource::build(cfg, dataset, &inner, &device)?;
        device.seed(cfg.seed);
        let rec = Recommender::new(
            model_cfg.init(&device),
            source
                .feature_dim()
                .map(|d| Projector::new(d, model_cfg.hidden, &device)),
        );
        let candidates = vec![candidate_bias(dataset.n_items() + 1, None, &device)];
        let trainer = Self {
            rec,
            source,
            optimizers: [adamw(cfg.weight_decay), adamw(cfg.peft_weight_decay)],
            dataset,
            split,
            cfg,
            device,
            inner,
            candidates,
            freeze_shared: false,
        };
        Ok((trainer, artifacts))
    }

    /// The training device (with autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same device without autodiff (evaluation).
    pub fn inner(&self) -> &Device {
        &self.inner
    }

    /// Trainable parameters of one PEFT adapter, for PEFT methods.
    pub fn adapter_params(&self) -> Option<usize> {
        self.source.peft().map(|p| p.adapter_params())
    }

    /// Grows the projector and adapter banks to `k` copies of the current ones (the per-group
    /// stage's warm start, docs/method.md §9.1), with fresh optimisers. From here on SASRec
    /// stays as it is if the configuration says `freeze_shared`.
    pub fn replicate(&mut self, k: usize) {
        self.rec = self.rec.clone().replicate(k);
        self.source.replicate(k);
        self.optimizers = [
            adamw(self.cfg.weight_decay),
            adamw(self.cfg.peft_weight_decay),
        ];
        self.freeze_shared = self.cfg.freeze_shared;
    }

    /// The per-group trainable parts (projectors, and IISAN modules), to go back to with
    /// [`Trainer::restore_groups`].
    pub fn group_state(&self) -> GroupState {
        GroupState {
            projectors: self.rec.projectors.clone(),
            iisan: match &self.source {
                ItemSource::Iisan { bank, .. } => Some(bank.modules.clone()),
                _ => None,
            },
        }
    }

    /// Puts groups `groups` back to their parts in `state` (the others keep theirs).
    pub fn restore_groups(&mut self, state: &GroupState, groups: &[usize]) {
        for &g in groups {
            self.rec.projectors[g] = state.projectors[g].clone();
            if let (ItemSource::Iisan { bank, .. }, Some(modules)) =
                (&mut self.source, &state.iisan)
            {
                bank.modules[g] = modules[g].clone();
            }
        }
    }

    /// Restricts the full softmax of group `g`'s batches to `pools[g]` (and the positives,
    /// which are in the pool by construction: a group's pool holds its users' training items).
    pub fn restrict_candidates(&mut self, pools: &[&[u32]]) {
        let n = self.dataset.n_items() + 1;
        self.candidates = pools
            .iter()
            .map(|p| candidate_bias(n, Some(p), &self.device))
            .collect();
    }

    fn select(&mut self, g: usize) {
        self.rec = self.rec.clone().select(g);
        self.source.select(g);
    }

    /// One pass over `plan` (batches tagged with their group), reporting each step to
    /// `observer`; returns the mean loss.
    pub fn epoch(
        &mut self,
        plan: &[(usize, Batch)],
        stage: Stage,
        epoch: usize,
        observer: &mut dyn Observer,
    ) -> Result<f64> {
        let mut loss_sum = 0.0;
        let mut current = usize::MAX;
        for (step, (g, batch)) in plan.iter().enumerate() {
            if *g != current {
                self.select(*g);
                current = *g;
            }
            let loss = self.step(batch, *g, step)?;
            loss_sum += loss;
            let event = Event::Step {
                stage,
                epoch,
                step: step + 1,
                steps: plan.len(),
                group: *g,
                batch,
                loss,
            };
            if observer.on(&event).is_break() {
                return Err(Error::Stopped {
                    at: format!("{stage} epoch {epoch} step {}", step + 1),
                });
            }
        }
        Ok(loss_sum / plan.len().max(1) as f64)
    }

    /// One AdamW step on `batch` with group `g`'s adapter and projector (the active ones).
    fn step(&mut self, batch: &Batch, g: usize, step: usize) -> Result<f64> {
        let full = self.cfg.full_softmax();
        let local = if full {
            LocalBatch::full(batch, self.dataset.n_items())
        } else {
            LocalBatch::new(batch)
        };
        let t = local.tensors(&self.device);
        let candidates = match t.shared {
            Some((shared, bias)) => Candidates::Shared(shared, bias),
            None => Candidates::All(self.candidates[g.min(self.candidates.len() - 1)].clone()),
        };
        let features =
            self.source
                .batch(self.dataset, &local.items, t.items.clone(), &self.device)?;
        let table = self.rec.table_rows(features, t.items);
        let loss = loss(
            self.cfg.loss,
            &self.rec.sasrec,
            table,
            t.seq,
            t.pos,
            t.neg,
            t.targets,
            candidates,
        );
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(Error::Diverged {
                step: step + 1,
                value,
            });
        }
        let mut grads = loss.backward();
        let [optim_rec, optim_peft] = &mut self.optimizers;
        let g_rec = if self.freeze_shared {
            GradientsParams::from_module(&mut grads, &self.rec.projectors)
        } else {
            GradientsParams::from_module(&mut grads, &self.rec)
        };
        self.rec = optim_rec.step(self.cfg.lr, self.rec.clone(), g_rec);
        self.source.step(optim_peft, self.cfg.peft_lr, &mut grads);
        Ok(value)
    }

    /// The item table of each of `k` groups (one without groups), in inference mode.
    pub fn tables(&self, k: usize) -> Result<Vec<Tensor<2>>> {
        let rec = self.rec.valid();
        (0..k)
            .map(|g| {
                let features = self.source.all(g, self.dataset, &self.inner)?;
                Ok(rec.clone().select(g).table(features))
            })
            .collect()
    }

    /// Validation and test metrics, each user scored with their group's table.
    pub fn evaluate(&self, groups: Option<&Groups>) -> Result<Evaluation> {
        let k = groups.map_or(1, |g| g.k);
        let tables = self.tables(k)?;
        let zeros = vec![0; self.dataset.n_users()];
        let assignment = groups.map_or(zeros.as_slice(), |g| g.assignment.as_slice());
        let sasrec = self.rec.sasrec.valid();
        let (valid, vg) = evaluate_grouped(&sasrec, &tables, assignment, self.split, Phase::Valid);
        let (test, tg) = evaluate_grouped(&sasrec, &tables, assignment, self.split, Phase::Test);
        let per_group = if groups.is_some() {
            vg.into_iter().zip(tg).collect()
        } else {
            Vec::new()
        };
        Ok(Evaluation {
            valid,
            test,
            per_group,
            tables,
        })
    }

    /// The trainable model as one module.
    pub fn trainable(&self) -> Trainable {
        Trainable {
            rec: self.rec.clone(),
            peft: self.source.peft(),
        }
    }

    fn restore(&mut self, t: Trainable) {
        self.rec = t.rec;
        self.source.restore(t.peft);
    }

    /// Saves the model and optimiser state as checkpoint `at`.
    pub fn save_checkpoint(&self, dir: &RunDir, at: Checkpoint) -> Result<()> {
        let [a, b] = &self.optimizers;
        dir.save_checkpoint(at, &self.trainable(), [a, b])
    }

    /// Continues from `dir`'s checkpoint `at` (model and optimisers).
    pub fn load_checkpoint(&mut self, dir: &RunDir, at: Checkpoint) -> Result<()> {
        let optimizers = std::mem::replace(
            &mut self.optimizers,
            [
                adamw(self.cfg.weight_decay),
                adamw(self.cfg.peft_weight_decay),
            ],
        );
        let (t, optimizers) = dir.load_checkpoint(at, self.trainable(), optimizers)?;
        self.restore(t);
        self.optimizers = optimizers;
        Ok(())
    }

    /// Takes the model (not the optimiser state) of `dir`'s checkpoint `at`.
    pub fn load_checkpoint_model(&mut self, dir: &RunDir, at: Checkpoint) -> Result<()> {
        let t = dir.load_checkpoint_model(at, self.trainable())?;
        self.restore(t);
        Ok(())
    }
}

//! `train` owns the training loop: seeded batches → item table for the batch's unique items →
//! SASRec loss → AdamW (two optimisers: SASRec + projectors, and the PEFT parameters, as the
//! reference), full-ranking evaluation on validation and test after every epoch, the
//! best-validation artifacts, a checkpoint per completed epoch (so a killed run resumes), and
//! the run's rows in the registry. A progress bar (stderr, hidden when not a terminal) shows
//! the running loss and the ETA.
//!
//! Methods: `id-only` (SASRec over ID embeddings, "w/o MM"), `frozen` (frozen backbone
//! features, computed once and cached, through the projector), `global-peft` (one adapter +
//! projector + SASRec trained jointly) and `perpeft` (the three stages of method doc §7–§9:
//! global PEFT, k-means user groups over the global model's user states, then K adapters and
//! projectors warm-started from the global ones, trained group by group with group-restricted
//! negatives, SASRec shared). Every step builds the item table of the batch's unique items
//! only (§6.2); for LoRA/(IA)3 that runs the backbone with the active adapter, with gradients.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use shared::api::Metrics;

use crate::backbone::{Backbone, BackboneSpec, features};
use crate::cluster::{self, Groups};
use crate::data::sampler::{Batch, Negatives, Sampler, group_pool};
use crate::data::{Dataset, Split};
use crate::device::Resolved;
use crate::eval::{Phase, evaluate_grouped, window};
use crate::peft::{self, HiddenStates, IisanBank, Peft, PeftConfig, PeftKind};
use crate::rec::loss::bce_loss;
use crate::rec::{Projector, Recommender, SasRecConfig};
use crate::store::{self, EpochRecord, Registry, RunRecord, Status};

/// How item embeddings are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// ID embeddings only (the paper's "w/o MM").
    #[default]
    IdOnly,
    /// Frozen backbone features (cached once) through the projector, plus ID embeddings.
    Frozen,
    /// One PEFT adapter + projector + SASRec trained jointly ("Global PEFT").
    GlobalPeft,
    /// Global PEFT, user grouping, then one adapter and projector per group (PerPEFT).
    Perpeft,
}

impl Method {
    /// The name used in records and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::IdOnly => "id-only",
            Self::Frozen => "frozen",
            Self::GlobalPeft => "global-peft",
            Self::Perpeft => "perpeft",
        }
    }

    fn is_peft(self) -> bool {
        matches!(self, Self::GlobalPeft | Self::Perpeft)
    }
}

/// Which foundation model encodes items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneChoice {
    /// all-MiniLM-L6-v2 text + EfficientNet-Lite0 images (fetched by `scripts/fetch_data.py`).
    #[default]
    Minilm,
    /// CLIP from `clip_dir` (Hugging Face layout).
    Clip,
}

/// Which halves of the item feature are used (the modality ablations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Modality {
    /// Image and text (text alone when the dataset has no images).
    #[default]
    Both,
    /// The text half only ("w/o visual modality").
    Text,
    /// The image half only ("w/o textual modality"); needs images.
    Image,
}

/// Training hyper-parameters. A TOML file with any of these fields can be given with
/// `--config`; command-line flags override it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// How item embeddings are made.
    pub method: Method,
    /// Backbone of multimodal methods.
    pub backbone: BackboneChoice,
    /// CLIP directory (for `backbone = "clip"`).
    pub clip_dir: Option<PathBuf>,
    /// Where `scripts/fetch_data.py` put the MiniLM and EfficientNet weights.
    pub weights_dir: PathBuf,
    /// Cache directory for frozen feature tables (`CACHE/features/`).
    pub cache_dir: PathBuf,
    /// Epochs.
    pub epochs: usize,
    /// Users per batch (reference: 16).
    pub batch_size: usize,
    /// AdamW learning rate of SASRec and the projector.
    pub lr: f64,
    /// AdamW decoupled weight decay of SASRec and the projector.
    pub weight_decay: f64,
    /// AdamW learning rate of the PEFT parameters (the second optimiser of the reference).
    pub peft_lr: f64,
    /// AdamW weight decay of the PEFT parameters.
    pub peft_weight_decay: f64,
    /// Seed of initialisation, sampling, dropout and grouping.
    pub seed: u64,
    /// PEFT method and its hyper-parameters (`global-peft`, `perpeft`).
    pub peft: PeftConfig,
    /// Number of user groups K (`perpeft`).
    pub groups: usize,
    /// Epochs of the global stage of `perpeft` (method doc §7: 10); `epochs` counts the
    /// per-group stage (§9: 20).
    pub global_epochs: usize,
    /// Ablation: random user groups instead of k-means.
    pub random_groups: bool,
    /// Ablation: uniform negatives over all items in the per-group stage.
    pub uniform_negatives: bool,
    /// Ablation (`global-peft`): one LoRA adapter of rank `groups · rank` ("Large Global PEFT").
    pub large_global: bool,
    /// Ablation: which feature halves to use.
    pub modality: Modality,
    /// `perpeft`: take stage 1 from this finished `global-peft` run (its last epoch) instead of
    /// training it. The global stage is seeded as a `global-peft` run is, so with the same
    /// seed and `global_epochs` equal to its epochs the result is the same as training it.
    pub global_from: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            method: Method::IdOnly,
            backbone: BackboneChoice::Minilm,
            clip_dir: None,
            weights_dir: PathBuf::from(".cache/weights"),
            cache_dir: PathBuf::from(".cache"),
            epochs: 30,
            batch_size: 16,
            lr: 1e-3,
            weight_decay: 1e-4,
            peft_lr: 1e-4,
            peft_weight_decay: 1e-4,
            seed: 42,
            peft: PeftConfig::default(),
            groups: 8,
            global_epochs: 10,
            random_groups: false,
            uniform_negatives: false,
            large_global: false,
            modality: Modality::Both,
            global_from: None,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML configuration file (unknown keys are an error).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The backbone to load, if the method uses one.
    pub fn backbone_spec(&self) -> Result<Option<BackboneSpec>> {
        if self.method == Method::IdOnly {
            return Ok(None);
        }
        Ok(Some(match self.backbone {
            BackboneChoice::Minilm => BackboneSpec::minilm(&self.weights_dir),
            BackboneChoice::Clip => BackboneSpec::Clip {
                dir: self
                    .clip_dir
                    .clone()
                    .context("--backbone clip needs --clip-dir (a Hugging Face CLIP directory)")?,
            },
        }))
    }

    /// The method as recorded: e.g. `perpeft-lora`, `perpeft-iisan+random-groups`.
    pub fn label(&self) -> String {
        let mut label = self.method.name().to_string();
        if self.method.is_peft() {
            label = format!("{label}-{}", self.peft.kind.name());
        }
        for (on, name) in [
            (self.random_groups, "random-groups"),
            (self.uniform_negatives, "uniform-negatives"),
            (self.large_global, "large"),
            (self.modality == Modality::Text, "text-only"),
            (self.modality == Modality::Image, "image-only"),
        ] {
            if on {
                label = format!("{label}+{name}");
            }
        }
        label
    }

    /// The backbone's name in records (`none` for ID-only).
    pub fn backbone_name(&self) -> &'static str {
        match self.method {
            Method::IdOnly => "none",
            _ => match self.backbone {
                BackboneChoice::Minilm => "minilm",
                BackboneChoice::Clip => "clip",
            },
        }
    }
}

/// Tensors of a batch on `device`: `(seq, pos, neg)`, each `[B, L]`, with global item ids.
pub fn batch_tensors(
    b: &Batch,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>) {
    let shape = [b.users.len(), b.max_len];
    let t = |v: &[u32]| {
        let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        Tensor::<2, Int>::from_data(TensorData::new(v, shape), device)
    };
    (t(&b.seq), t(&b.pos), t(&b.neg))
}

/// A batch re-indexed onto its unique items (method doc §6.2): `items` are the sorted distinct
/// ids of `seq ∪ pos ∪ neg` (0 first), and `seq`/`pos`/`neg` index into `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalBatch {
    pub items: Vec<u32>,
    pub seq: Vec<i64>,
    pub pos: Vec<i64>,
    pub neg: Vec<i64>,
    pub shape: [usize; 2],
}

impl LocalBatch {
    pub fn new(b: &Batch) -> Self {
        let mut items: Vec<u32> = std::iter::once(0)
            .chain(b.seq.iter().chain(&b.pos).chain(&b.neg).copied())
            .collect();
        items.sort_unstable();
        items.dedup();
        let local = |v: &[u32]| -> Vec<i64> {
            v.iter()
                .map(|x| items.binary_search(x).expect("collected above") as i64)
                .collect()
        };
        Self {
            seq: local(&b.seq),
            pos: local(&b.pos),
            neg: local(&b.neg),
            shape: [b.users.len(), b.max_len],
            items,
        }
    }

    /// `(items [n], seq, pos, neg [B, L])` on `device`.
    #[allow(clippy::type_complexity)]
    pub fn tensors(
        &self,
        device: &Device,
    ) -> (
        Tensor<1, Int>,
        Tensor<2, Int>,
        Tensor<2, Int>,
        Tensor<2, Int>,
    ) {
        let t = |v: &[i64]| {
            Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), self.shape), device)
        };
        let items: Vec<i64> = self.items.iter().map(|&i| i as i64).collect();
        let n = items.len();
        (
            Tensor::from_data(TensorData::new(items, [n]), device),
            t(&self.seq),
            t(&self.pos),
            t(&self.neg),
        )
    }
}

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

/// The seed of epoch `epoch`'s dropout masks (sampling has its own per-epoch seed in the data
/// layer): a resumed run draws exactly what an uninterrupted one would.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64)
}

/// The run's name: the run directory's last component.
pub fn run_name(out_dir: &Path) -> String {
    out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
}

/// Where a batch's item features come from.
// one value per model, never in bulk: boxing buys nothing
#[allow(clippy::large_enum_variant)]
enum Source {
    /// ID-only: no features.
    Ids,
    /// A cached frozen table `[N+1, D]` (on the autodiff device and on the inner one).
    Frozen { train: Tensor<2>, eval: Tensor<2> },
    /// The backbone with LoRA/(IA)3 adapters in the loop (tokenizer and preprocessing here);
    /// `Some(d)` keeps only the first `d` columns (the image half).
    Encoder(Box<Backbone>, Option<usize>),
    /// IISAN over cached hidden states.
    Iisan {
        train: HiddenStates,
        eval: HiddenStates,
    },
}

impl Source {
    /// Features of the batch's unique items (`ids`, 0 first) with gradients where trainable.
    fn batch(
        &self,
        peft: Option<&Peft>,
        dataset: &Dataset,
        ids: &[u32],
        ids_t: Tensor<1, Int>,
        device: &Device,
    ) -> Result<Option<Tensor<2>>> {
        Ok(match (self, peft) {
            (Self::Ids, _) => None,
            (Self::Frozen { train, .. }, _) => Some(train.clone().select(0, ids_t)),
            (Self::Encoder(b, keep), Some(Peft::Encoder(e))) => {
                let f = features::encode_items(b, e, dataset, ids, device)?;
                Some(keep.map_or(f.clone(), |d| f.narrow(1, 0, d)))
            }
            (Self::Iisan { train, .. }, Some(Peft::Iisan(bank))) => {
                Some(bank.features(train, ids_t))
            }
            _ => bail!("item source and PEFT module do not match"),
        })
    }

    /// Features of every item (row 0 zero or IISAN's zeroed padding) for evaluation, on
    /// `inner`, with `peft` in inference mode.
    fn all(
        &self,
        peft: Option<&Peft>,
        dataset: &Dataset,
        inner: &Device,
    ) -> Result<Option<Tensor<2>>> {
        let rows = dataset.n_items() + 1;
        Ok(match (self, peft) {
            (Self::Ids, _) => None,
            (Self::Frozen { eval, .. }, _) => Some(eval.clone()),
            (Self::Encoder(b, keep), Some(Peft::Encoder(e))) => {
                let f = features::item_table(b, e, dataset, inner)?;
                Some(keep.map_or(f.clone(), |d| f.narrow(1, 0, d)))
            }
            (Self::Iisan { eval, .. }, Some(Peft::Iisan(bank))) => {
                let ids = Tensor::<1, Int>::arange(0..rows as i64, inner);
                Some(bank.features(eval, ids))
            }
            _ => bail!("item source and PEFT module do not match"),
        })
    }
}

/// What a checkpoint holds: the recommender and the PEFT part.
#[derive(Module, Debug)]
pub struct Trainable {
    pub rec: Recommender,
    pub peft: Option<Peft>,
}

/// The trainable parts and their two optimisers (SASRec + projectors; PEFT parameters).
struct Parts {
    rec: Recommender,
    peft: Option<Peft>,
    optim_rec: ModuleOptimizer,
    optim_peft: ModuleOptimizer,
}

impl Parts {
    fn select(&mut self, g: usize) {
        self.rec = self.rec.clone().select(g);
        self.peft = self.peft.take().map(|p| p.select(g));
    }
}

fn adamw(weight_decay: f64) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay as f32)
        .init()
}

/// Everything an epoch needs besides the trainable parts.
struct Ctx<'a> {
    dataset: &'a Dataset,
    split: &'a Split,
    cfg: &'a TrainConfig,
    device: Device,
    inner: Device,
    source: Source,
}

impl Ctx<'_> {
    /// One pass over `plan` (batches tagged with their group); returns the mean loss.
    fn epoch(&self, parts: &mut Parts, plan: &[(usize, Batch)], bar: &ProgressBar) -> Result<f64> {
        let mut loss_sum = 0.0;
        let mut current = usize::MAX;
        for (step, (g, batch)) in plan.iter().enumerate() {
            if *g != current {
                parts.select(*g);
                current = *g;
            }
            let local = LocalBatch::new(batch);
            let (items, seq, pos, neg) = local.tensors(&self.device);
            let features = self.source.batch(
                parts.peft.as_ref(),
                self.dataset,
                &local.items,
                items.clone(),
                &self.device,
            )?;
            let table = parts.rec.table_rows(features, items);
            let loss = bce_loss(&parts.rec.sasrec, table, seq, pos, neg);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                bail!(
                    "the loss became {value} at step {}: training diverged",
                    step + 1
                );
            }
            loss_sum += value;
            let mut grads = loss.backward();
            let g_rec = GradientsParams::from_module(&mut grads, &parts.rec);
            parts.rec = parts.optim_rec.step(self.cfg.lr, parts.rec.clone(), g_rec);
            if let Some(p) = parts.peft.take() {
                let g_peft = GradientsParams::from_module(&mut grads, &p);
                parts.peft = Some(parts.optim_peft.step(self.cfg.peft_lr, p, g_peft));
            }
            bar.set_message(format!("{:.4}", loss_sum / (step + 1) as f64));
            bar.inc(1);
        }
        Ok(loss_sum / plan.len().max(1) as f64)
    }

    /// The item table of each group (one table without groups), in inference mode on `inner`.
    fn tables(&self, parts: &Parts, k: usize) -> Result<Vec<Tensor<2>>> {
        let rec = parts.rec.valid();
        let peft = parts.peft.as_ref().map(|p| p.valid());
        (0..k)
            .map(|g| {
                let rec_g = rec.clone().select(g);
                let peft_g = peft.clone().map(|p| p.select(g));
                let features = self
                    .source
                    .all(peft_g.as_ref(), self.dataset, &self.inner)?;
                Ok(rec_g.table(features))
            })
            .collect()
    }

    /// Validation and test metrics (overall, per group), and the tables used.
    #[allow(clippy::type_complexity)]
    fn evaluate(
        &self,
        parts: &Parts,
        groups: Option<&Groups>,
    ) -> Result<(Metrics, Metrics, Vec<(Metrics, Metrics)>, Vec<Tensor<2>>)> {
        let k = groups.map_or(1, |g| g.k);
        let tables = self.tables(parts, k)?;
        let zeros = vec![0; self.dataset.n_users()];
        let assignment = groups.map_or(zeros.as_slice(), |g| g.assignment.as_slice());
        let sasrec = parts.rec.sasrec.valid();
        let (valid, vg) = evaluate_grouped(&sasrec, &tables, assignment, self.split, Phase::Valid);
        let (test, tg) = evaluate_grouped(&sasrec, &tables, assignment, self.split, Phase::Test);
        let per_group = if groups.is_some() {
            vg.into_iter().zip(tg).collect()
        } else {
            Vec::new()
        };
        Ok((valid, test, per_group, tables))
    }
}

/// Each user's representation for grouping (method doc §8): the global model's SASRec state
/// over the right-aligned last 9 training items + the validation item. Users without a
/// validation item (fewer than 3 interactions, never evaluated) use their training items.
pub fn user_representations(
    ctx_tables: &Tensor<2>,
    sasrec: &crate::rec::SasRec,
    split: &Split,
) -> (Vec<f32>, usize) {
    let l = sasrec.max_len();
    let device = ctx_tables.device();
    let n = split.train.len();
    let mut out = Vec::with_capacity(n * sasrec.hidden());
    let users: Vec<usize> = (0..n).collect();
    for chunk in users.chunks(crate::eval::EVAL_BATCH) {
        let seq: Vec<i64> = chunk
            .iter()
            .flat_map(|&u| {
                let mut h = split.train[u].clone();
                h.extend(split.valid[u]);
                window(&h, l)
            })
            .map(i64::from)
            .collect();
        let seq = Tensor::<2, Int>::from_data(TensorData::new(seq, [chunk.len(), l]), &device);
        let states = sasrec.user_states(seq, ctx_tables.clone());
        out.extend(states.into_data().iter::<f32>());
    }
    (out, sasrec.hidden())
}

/// Batches of one epoch of the per-group stage: every group's batches (its own users, its own
/// negatives), interleaved in an order shuffled with the epoch's seed (method doc §9.3).
fn group_plan(samplers: &[Sampler<'_>], seed: u64, epoch: usize) -> Vec<(usize, Batch)> {
    let mut plan: Vec<(usize, Batch)> = samplers
        .iter()
        .enumerate()
        .flat_map(|(g, s)| s.epoch(epoch).into_iter().map(move |b| (g, b)))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(epoch_seed(seed ^ 0x9e37, epoch));
    plan.shuffle(&mut rng);
    plan
}

/// Trains on `dataset` into run directory `out_dir` (registered in the registry of its parent
/// directory). Returns the run record.
pub fn train(
    dataset: &Dataset,
    model_cfg: &SasRecConfig,
    cfg: &TrainConfig,
    resolved: &Resolved,
    out_dir: &Path,
    start: Start,
) -> Result<RunRecord> {
    let split = Split::leave_one_out(&dataset.sequences);
    let inner = resolved.device.clone();
    let device = inner.clone().autodiff();
    let sampler = Sampler::new(
        &split.train,
        dataset.n_items(),
        model_cfg.max_len,
        cfg.batch_size,
        cfg.seed,
    );
    if let Some(&u) = sampler.users_without_negatives().first() {
        bail!(
            "user {:?} of {} has interacted with every item in training: no negative item can be sampled",
            dataset.user_ids[u],
            dataset.name
        );
    }
    if cfg.large_global && (cfg.method != Method::GlobalPeft || cfg.peft.kind != PeftKind::Lora) {
        bail!("the large-global ablation is a global-peft run with LoRA");
    }
    if cfg.global_from.is_some() && cfg.method != Method::Perpeft {
        bail!(
            "--global-from gives a perpeft run its global stage; this is a {} run",
            cfg.label()
        );
    }
    let registry = Registry::for_run_dir(out_dir)?;
    let name = run_name(out_dir);
    let spec = cfg.backbone_spec()?;
    if cfg.modality == Modality::Image && !features::has_images(dataset) {
        bail!(
            "--modality image needs a dataset with images; {} has none",
            dataset.name
        );
    }
    let with_images = features::has_images(dataset) && cfg.modality != Modality::Text;
    let image_only = cfg.modality == Modality::Image;
    let mut artifacts: Vec<(&str, PathBuf)> = Vec::new();
    let (source, d_features, peft) = match cfg.method {
        Method::IdOnly => (Source::Ids, None, None),
        Method::Frozen => {
            let spec = spec.expect("frozen has a backbone");
            let (table, path, hit, image_dim) =
                features::frozen_table(&spec, dataset, with_images, &cfg.cache_dir, &inner)?;
            let table = if image_only {
                table.narrow(1, 0, image_dim)
            } else {
                table
            };
            tracing::info!(path = %path.display(), cached = hit, dims = ?table.dims(), "frozen item features");
            artifacts.push(("features", path));
            let d = table.dims()[1];
            let train = Tensor::<2>::from_data(table.to_data(), &device);
            (Source::Frozen { train, eval: table }, Some(d), None)
        }
        Method::GlobalPeft | Method::Perpeft => {
            let spec = spec.expect("peft has a backbone");
            match cfg.peft.kind {
                PeftKind::Iisan => {
                    if image_only {
                        bail!(
                            "IISAN has no image-only variant here (its image side needs CLIP hidden states)"
                        );
                    }
                    let (states, path) =
                        peft::hidden_states(&spec, dataset, &cfg.cache_dir, &inner)?;
                    artifacts.push(("hidden_states", path));
                    let train = HiddenStates {
                        text: Tensor::from_data(states.text.to_data(), &device),
                        image: states
                            .image
                            .as_ref()
                            .map(|t| Tensor::from_data(t.to_data(), &device)),
                    };
                    device.seed(cfg.seed.wrapping_add(7));
                    let bank = IisanBank::new(&train, &device);
                    let [_, _, dt] = train.text.dims();
                    let d = peft::iisan::Iisan::output_dim(
                        dt,
                        train.image.as_ref().map(|t| t.dims()[2]),
                    );
                    (
                        Source::Iisan {
                            train,
                            eval: states,
                        },
                        Some(d),
                        Some(Peft::Iisan(bank)),
                    )
                }
                PeftKind::Lora | PeftKind::Ia3 => {
                    let mut backbone = Backbone::load(&spec, with_images, &device)?;
                    let mut pc = cfg.peft.clone();
                    if cfg.large_global {
                        // K times the parameters at the same LoRA scaling (alpha / r)
                        pc.rank *= cfg.groups;
                        pc.alpha *= cfg.groups as f64;
                    }
                    device.seed(cfg.seed.wrapping_add(7));
                    let encoder = peft::attach(backbone.encoder.clone(), &pc, &device);
                    let keep = image_only.then_some(backbone.dims.0);
                    let d = keep.unwrap_or(backbone.feature_dim());
                    backbone.encoder = encoder.clone();
                    (
                        Source::Encoder(Box::new(backbone), keep),
                        Some(d),
                        Some(Peft::Encoder(encoder)),
                    )
                }
            }
        }
    };

    device.seed(cfg.seed);
    let rec = Recommender::new(
        model_cfg.init(&device),
        d_features.map(|d| Projector::new(d, model_cfg.hidden, &device)),
    );
    let mut parts = Parts {
        rec,
        peft,
        optim_rec: adamw(cfg.weight_decay),
        optim_peft: adamw(cfg.peft_weight_decay),
    };
    let ctx = Ctx {
        dataset,
        split: &split,
        cfg,
        device: device.clone(),
        inner: inner.clone(),
        source,
    };
    let adapter_params = parts.peft.as_ref().map(|p| p.adapter_params());

    let mut groups: Option<Groups> = None;
    let (run, mut record) = match start {
        Start::Resume => {
            let run = registry
                .run_id(&name)?
                .with_context(|| format!("no run named {name} in {}", registry.path().display()))?;
            let mut record = store::read_record(out_dir)?;
            if record.dataset_checksum != dataset.checksum {
                bail!(
                    "{name} was trained on data with checksum {}, the data on disk has {}",
                    record.dataset_checksum,
                    dataset.checksum
                );
            }
            let same_train = TrainConfig {
                epochs: cfg.epochs,
                ..record.train.clone()
            } == *cfg;
            if record.model != *model_cfg || !same_train {
                bail!(
                    "{name} was started with a different configuration; resume it with the same flags (only --epochs may change)"
                );
            }
            record.train.epochs = cfg.epochs;
            registry.set_epochs(run, cfg.epochs)?;
            record.epochs = registry.epochs(run)?;
            // the registry is the truth for completed epochs: re-derive the selection from it
            // (run.json may be one epoch behind if the run died between the two writes)
            let best = record
                .epochs
                .iter()
                .fold(None::<&EpochRecord>, |b, e| match b {
                    Some(b) if b.valid.ndcg20 >= e.valid.ndcg20 => Some(b),
                    _ => Some(e),
                })
                .map(|e| (e.epoch, e.test));
            if best.map(|b| b.0) != Some(record.best_epoch) {
                record.best_groups.clear();
            }
            (record.best_epoch, record.test) = best.unwrap_or((0, Metrics::default()));
            if cfg.method == Method::Perpeft && !record.epochs.is_empty() {
                // the per-group stage is under way: rebuild its banks, then load the checkpoint
                let g = store::read_groups(out_dir)?;
                parts.rec = parts.rec.replicate(g.k);
                parts.peft = parts.peft.take().map(|p| p.replicate(g.k));
                groups = Some(g);
            }
            if !record.epochs.is_empty() {
                let (t, o1, o2) = store::load_checkpoint(
                    out_dir,
                    record.epochs.len(),
                    Trainable {
                        rec: parts.rec,
                        peft: parts.peft,
                    },
                    (parts.optim_rec, parts.optim_peft),
                )?;
                parts = Parts {
                    rec: t.rec,
                    peft: t.peft,
                    optim_rec: o1,
                    optim_peft: o2,
                };
            }
            tracing::info!(run = %name, completed = record.epochs.len(), "resuming");
            (run, record)
        }
        Start::New | Start::Overwrite => {
            if start == Start::Overwrite {
                registry.delete(&name)?;
                if out_dir.exists() {
                    std::fs::remove_dir_all(out_dir)
                        .with_context(|| format!("removing {}", out_dir.display()))?;
                }
            } else if out_dir.join(store::RECORD_FILE).exists() && registry.run_id(&name)?.is_none()
            {
                bail!(
                    "{} holds a run that is not in the registry; pass --overwrite to replace it",
                    out_dir.display()
                );
            }
            let record = RunRecord {
                method: cfg.label(),
                dataset: dataset.name.clone(),
                dataset_checksum: dataset.checksum.clone(),
                device: resolved.name.into(),
                model: model_cfg.clone(),
                train: cfg.clone(),
                code_version: store::code_version(),
                epochs: Vec::new(),
                best_epoch: 0,
                test: Metrics::default(),
                adapter_params,
                stages: Vec::new(),
                groups: None,
                best_groups: Vec::new(),
            };
            let run = registry.create(&name, out_dir, &record)?;
            store::save_record(out_dir, &record)?;
            (run, record)
        }
    };
    registry.set_status(run, Status::Running, resolved.name)?;
    for (kind, path) in &artifacts {
        registry.record_artifact(run, kind, path, None)?;
    }
    let result = (|| -> Result<()> {
        if cfg.method == Method::Perpeft && groups.is_none() {
            let global_seconds = match &cfg.global_from {
                Some(src) => {
                    let seconds = reuse_global(&ctx, src, model_cfg, &mut parts)?;
                    registry.record_artifact(run, "global_from", src, None)?;
                    seconds
                }
                None => global_stage(&ctx, &sampler, &mut parts)?,
            };
            groups = Some(group_users(
                &ctx,
                &mut parts,
                &mut record,
                global_seconds,
                out_dir,
                &registry,
                run,
            )?);
        }
        let plan_samplers: Vec<Sampler<'_>> = match &groups {
            Some(g) => g
                .members()
                .into_iter()
                .map(|users| {
                    let negatives = if cfg.uniform_negatives {
                        Negatives::Uniform
                    } else {
                        Negatives::Pool(group_pool(&split.train, &users))
                    };
                    sampler.clone().with_users(users).with_negatives(negatives)
                })
                .collect(),
            None => Vec::new(),
        };
        epochs(
            &ctx,
            &sampler,
            &plan_samplers,
            groups.as_ref(),
            &mut parts,
            &mut record,
            out_dir,
            &registry,
            run,
        )
    })();
    match &result {
        Ok(()) => registry.set_status(run, Status::Finished, resolved.name)?,
        Err(_) => registry.set_status(run, Status::Failed, resolved.name)?,
    }
    result.map(|()| record)
}

/// Stage 1 of PerPEFT: `global_epochs` epochs of global training (no evaluation, as the
/// reference). Seeded exactly as the epochs of a `global-peft` run, so that a finished
/// `global-peft` run can stand in for it (`global_from`). Returns the seconds it took.
fn global_stage(ctx: &Ctx<'_>, sampler: &Sampler<'_>, parts: &mut Parts) -> Result<f64> {
    let cfg = ctx.cfg;
    let clock = Instant::now();
    let bar = progress((cfg.global_epochs * sampler.batches_per_epoch()) as u64);
    for epoch in 1..=cfg.global_epochs {
        ctx.device.seed(epoch_seed(cfg.seed, epoch));
        bar.set_prefix(format!("global {epoch}/{}", cfg.global_epochs));
        let plan: Vec<(usize, Batch)> = sampler.epoch(epoch).into_iter().map(|b| (0, b)).collect();
        let loss = ctx.epoch(parts, &plan, &bar)?;
        tracing::info!(epoch, loss = format!("{loss:.4}"), "global stage");
    }
    bar.finish_and_clear();
    Ok(clock.elapsed().as_secs_f64())
}

/// Stage 1 of PerPEFT taken from the finished `global-peft` run in `src`: its last epoch's
/// SASRec, projector and adapter (not its best validation epoch: the global stage is not
/// evaluated). The run must match this one in everything stage 1 depends on. Returns the
/// training seconds it spent.
fn reuse_global(
    ctx: &Ctx<'_>,
    src: &Path,
    model_cfg: &SasRecConfig,
    parts: &mut Parts,
) -> Result<f64> {
    let cfg = ctx.cfg;
    let source = store::read_record(src)?;
    let at = src.display();
    if source.train.method != Method::GlobalPeft {
        bail!(
            "{at} is a {} run; --global-from needs a global-peft run",
            source.method
        );
    }
    if source.dataset_checksum != ctx.dataset.checksum {
        bail!(
            "{at} was trained on other data (checksum {})",
            source.dataset_checksum
        );
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
    if source.model != *model_cfg || stage_one(&source.train) != stage_one(cfg) {
        bail!(
            "{at} was trained with a different model, backbone, adapter, modality or batch size than this run asks for"
        );
    }
    let done = source.epochs.len();
    if done != cfg.global_epochs || done < source.train.epochs {
        bail!(
            "{at} has {done} of {} epochs done; the global stage here is {} epochs (pass --global-epochs {done} for a finished run)",
            source.train.epochs,
            cfg.global_epochs
        );
    }
    let trained = store::load_checkpoint_model(
        src,
        done,
        Trainable {
            rec: parts.rec.clone(),
            peft: parts.peft.clone(),
        },
    )?;
    parts.rec = trained.rec;
    parts.peft = trained.peft;
    tracing::info!(from = %at, epochs = done, "global stage reused");
    Ok(source.epochs.iter().map(|e| e.train_seconds).sum())
}

/// Stage 2 of PerPEFT: the user groups from the global model. Leaves the banks replicated K
/// times with fresh optimisers, and saves the groups and the global model.
fn group_users(
    ctx: &Ctx<'_>,
    parts: &mut Parts,
    record: &mut RunRecord,
    global_seconds: f64,
    out_dir: &Path,
    registry: &Registry,
    run: i64,
) -> Result<Groups> {
    let cfg = ctx.cfg;
    let clock = Instant::now();
    let table = ctx.tables(parts, 1)?.remove(0);
    let (reps, dim) = user_representations(&table, &parts.rec.sasrec.valid(), ctx.split);
    let groups = if cfg.random_groups {
        cluster::random(&reps, dim, cfg.groups, cfg.seed)
    } else {
        cluster::kmeans(&reps, dim, cfg.groups, cfg.seed)?
    };
    let sizes: Vec<usize> = groups.members().iter().map(Vec::len).collect();
    tracing::info!(how = %groups.how, ?sizes, "user groups");
    store::save_groups(out_dir, &groups)?;
    // the global model stays with the run: new users are assigned with its states
    store::save_best(&out_dir.join(GLOBAL_DIR), &parts.rec.valid(), &[table])?;
    registry.record_artifact(run, "global", &out_dir.join(GLOBAL_DIR), None)?;
    registry.record_artifact(run, "groups", &out_dir.join(store::GROUPS_FILE), None)?;
    record.groups = Some(sizes);
    record.stages = vec![
        ("global".into(), global_seconds),
        ("grouping".into(), clock.elapsed().as_secs_f64()),
    ];
    parts.rec = parts.rec.clone().replicate(groups.k);
    parts.peft = parts.peft.take().map(|p| p.replicate(groups.k));
    parts.optim_rec = adamw(cfg.weight_decay);
    parts.optim_peft = adamw(cfg.peft_weight_decay);
    Ok(groups)
}

/// Where a PerPEFT run keeps its global (stage-1) model.
pub const GLOBAL_DIR: &str = "global";

/// The group of a user the model has not seen (a history of item ids, oldest first): the
/// nearest centroid to the user's state under the run's global model (method doc §8 groups
/// users by those states). For the server: load once with [`store::load`] on `dir/global`.
pub fn assign_new_user(dir: &Path, history: &[u32], device: &Device) -> Result<usize> {
    let groups = store::read_groups(dir)?;
    let (sasrec, mut tables, _) = store::load_global(&dir.join(GLOBAL_DIR), dir, device)?;
    let table = tables.remove(0);
    let l = sasrec.max_len();
    let seq: Vec<i64> = window(history, l).into_iter().map(i64::from).collect();
    let seq = Tensor::<2, Int>::from_data(TensorData::new(seq, [1, l]), device);
    let state: Vec<f32> = sasrec
        .user_states(seq, table)
        .into_data()
        .iter::<f32>()
        .collect();
    Ok(groups.nearest(&state))
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps, loss {msg}, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The evaluated stage: global training (all methods but PerPEFT) or the per-group stage.
#[allow(clippy::too_many_arguments)]
fn epochs(
    ctx: &Ctx<'_>,
    sampler: &Sampler<'_>,
    group_samplers: &[Sampler<'_>],
    groups: Option<&Groups>,
    parts: &mut Parts,
    record: &mut RunRecord,
    out_dir: &Path,
    registry: &Registry,
    run: i64,
) -> Result<()> {
    let cfg = ctx.cfg;
    let first = record.epochs.len() + 1;
    let per_epoch = if groups.is_some() {
        group_samplers.iter().map(|s| s.batches_per_epoch()).sum()
    } else {
        sampler.batches_per_epoch()
    };
    tracing::info!(
        dataset = %ctx.dataset.name, method = %record.method, users = ctx.dataset.n_users(),
        items = ctx.dataset.n_items(), device = %record.device, batches = per_epoch,
        first_epoch = first, "training"
    );
    let bar = progress(((cfg.epochs + 1).saturating_sub(first) * per_epoch) as u64);
    for epoch in first..=cfg.epochs {
        let start = Instant::now();
        ctx.device.seed(epoch_seed(cfg.seed, epoch));
        bar.set_prefix(format!("epoch {epoch}/{}", cfg.epochs));
        let plan: Vec<(usize, Batch)> = match groups {
            Some(_) => group_plan(group_samplers, cfg.seed, epoch),
            None => sampler.epoch(epoch).into_iter().map(|b| (0, b)).collect(),
        };
        let loss = ctx.epoch(parts, &plan, &bar)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let (valid, test, per_group, tables) = ctx.evaluate(parts, groups)?;
        let eval_seconds = start.elapsed().as_secs_f64() - train_seconds;
        let rec = EpochRecord {
            epoch,
            loss,
            valid,
            test,
            train_seconds,
            eval_seconds,
        };
        tracing::info!(
            epoch,
            loss = format!("{:.4}", rec.loss),
            valid_ndcg20 = format!("{:.4}", valid.ndcg20),
            test_hr10 = format!("{:.4}", test.hr10),
            test_ndcg10 = format!("{:.4}", test.ndcg10),
            train_s = format!("{:.2}", train_seconds),
            eval_users_per_s = format!(
                "{:.0}",
                (valid.users + test.users) as f64 / eval_seconds.max(1e-9)
            ),
            "epoch"
        );
        let improved = record.best_epoch == 0
            || valid.ndcg20 > record.epochs[record.best_epoch - 1].valid.ndcg20;
        if improved {
            let inference = parts.rec.valid();
            store::save_best(out_dir, &inference, &tables)?;
            if let Some(peft) = &parts.peft {
                store::save_adapters(out_dir, &peft.valid())?;
            }
        }
        store::save_checkpoint(
            out_dir,
            epoch,
            &Trainable {
                rec: parts.rec.clone(),
                peft: parts.peft.clone(),
            },
            (&parts.optim_rec, &parts.optim_peft),
        )?;
        // the epoch counts as done once the registry says so; files above are ahead of it
        registry.record_epoch(run, &rec)?;
        record.epochs.push(rec);
        if improved {
            record.best_epoch = epoch;
            record.test = test;
            record.best_groups = per_group;
            registry.set_best(run, epoch, &test)?;
            for (kind, file) in [
                ("model", store::MODEL_FILE),
                ("item_table", store::TABLE_FILE),
                ("recommender", store::RECOMMENDER_FILE),
                ("adapters", store::ADAPTERS_FILE),
            ] {
                if out_dir.join(file).exists() {
                    registry.record_artifact(run, kind, &out_dir.join(file), Some(epoch))?;
                }
            }
        }
        registry.record_artifact(
            run,
            "checkpoint",
            &store::checkpoint_dir(out_dir),
            Some(epoch),
        )?;
        store::prune_checkpoints(out_dir, epoch)?;
        store::save_record(out_dir, record)?;
    }
    bar.finish_and_clear();
    Ok(())
}

//! `train` owns the training loop: seeded batches → item table for the batch's unique items →
//! SASRec loss → AdamW, full-ranking evaluation on validation and test after every epoch, the
//! best-validation artifacts, a checkpoint per completed epoch (so a killed run resumes), and
//! the run's rows in the registry. A progress bar (stderr, hidden when not a terminal) shows
//! the running loss and the ETA.
//!
//! Methods: `id-only` (SASRec over ID embeddings, "w/o MM") and `frozen` (item features from
//! the frozen backbone, computed once and cached, through the projector). Every step builds the
//! item table of the batch's unique items only (method doc §6.2), the path PEFT methods take
//! with an encoder in the loop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use shared::api::Metrics;

use crate::backbone::{BackboneSpec, features};
use crate::data::sampler::{Batch, Sampler};
use crate::data::{Dataset, Split};
use crate::device::Resolved;
use crate::eval::{Phase, evaluate};
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
}

impl Method {
    /// The name used in records and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::IdOnly => "id-only",
            Self::Frozen => "frozen",
        }
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
    /// Seed of initialisation, sampling and dropout.
    pub seed: u64,
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

/// Frozen item features on `device` and their cache file, if the method uses them.
fn frozen_features(
    cfg: &TrainConfig,
    dataset: &Dataset,
    device: &Device,
) -> Result<Option<(Tensor<2>, PathBuf)>> {
    match cfg.method {
        Method::IdOnly => Ok(None),
        Method::Frozen => {
            let spec = cfg.backbone_spec()?.expect("frozen has a backbone");
            let (table, path, hit) =
                features::frozen_table(&spec, dataset, &cfg.cache_dir, device)?;
            tracing::info!(path = %path.display(), cached = hit, dims = ?table.dims(), "frozen item features");
            Ok(Some((table, path)))
        }
    }
}

/// Validation and test metrics of a recommender in inference mode over `features`.
pub fn evaluate_recommender(
    model: &Recommender,
    features: Option<Tensor<2>>,
    split: &Split,
) -> (Metrics, Metrics, Tensor<2>) {
    let table = model.table(features);
    let valid = evaluate(&model.sasrec, &table, split, Phase::Valid);
    let test = evaluate(&model.sasrec, &table, split, Phase::Test);
    (valid, test, table)
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
    let registry = Registry::for_run_dir(out_dir)?;
    let name = run_name(out_dir);
    let (features, features_path) = frozen_features(cfg, dataset, &inner)?.unzip();
    let features_ad = features
        .as_ref()
        .map(|f| Tensor::<2>::from_data(f.to_data(), &device));

    device.seed(cfg.seed);
    let model = Recommender {
        sasrec: model_cfg.init(&device),
        projector: features
            .as_ref()
            .map(|f| Projector::new(f.dims()[1], model_cfg.hidden, &device)),
    };
    let optim: ModuleOptimizer = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(cfg.weight_decay as f32)
        .init();

    let (run, mut record, mut model, mut optim) = match start {
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
            record.epochs = registry.epochs(run)?;
            let (model, optim) = if record.epochs.is_empty() {
                (model, optim)
            } else {
                store::load_checkpoint(out_dir, record.epochs.len(), model, optim)?
            };
            tracing::info!(run = %name, completed = record.epochs.len(), "resuming");
            (run, record, model, optim)
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
                method: cfg.method.name().into(),
                dataset: dataset.name.clone(),
                dataset_checksum: dataset.checksum.clone(),
                device: resolved.name.into(),
                model: model_cfg.clone(),
                train: cfg.clone(),
                code_version: store::code_version(),
                epochs: Vec::new(),
                best_epoch: 0,
                test: Metrics::default(),
            };
            let run = registry.create(&name, out_dir, &record)?;
            store::save_record(out_dir, &record)?;
            (run, record, model, optim)
        }
    };
    registry.set_status(run, Status::Running, resolved.name)?;
    if let Some(path) = &features_path {
        registry.record_artifact(run, "features", path, None)?;
    }
    let result = epochs(
        dataset,
        &split,
        &sampler,
        cfg,
        &device,
        &inner,
        features,
        features_ad,
        out_dir,
        &registry,
        run,
        &mut record,
        &mut model,
        &mut optim,
    );
    match &result {
        Ok(()) => registry.set_status(run, Status::Finished, resolved.name)?,
        Err(_) => registry.set_status(run, Status::Failed, resolved.name)?,
    }
    result.map(|()| record)
}

#[allow(clippy::too_many_arguments)]
fn epochs(
    dataset: &Dataset,
    split: &Split,
    sampler: &Sampler,
    cfg: &TrainConfig,
    device: &Device,
    inner: &Device,
    features: Option<Tensor<2>>,
    features_ad: Option<Tensor<2>>,
    out_dir: &Path,
    registry: &Registry,
    run: i64,
    record: &mut RunRecord,
    model: &mut Recommender,
    optim: &mut ModuleOptimizer,
) -> Result<()> {
    let first = record.epochs.len() + 1;
    tracing::info!(
        dataset = %dataset.name, method = cfg.method.name(), users = dataset.n_users(),
        items = dataset.n_items(), device = %record.device, batches = sampler.batches_per_epoch(),
        first_epoch = first, "training"
    );
    let bar = ProgressBar::new(
        ((cfg.epochs + 1 - first.min(cfg.epochs + 1)) * sampler.batches_per_epoch()) as u64,
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps, loss {msg}, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    for epoch in first..=cfg.epochs {
        let start = Instant::now();
        device.seed(epoch_seed(cfg.seed, epoch));
        let mut loss_sum = 0.0;
        let batches = sampler.epoch(epoch);
        bar.set_prefix(format!("epoch {epoch}/{}", cfg.epochs));
        for (step, batch) in batches.iter().enumerate() {
            let local = LocalBatch::new(batch);
            let (items, seq, pos, neg) = local.tensors(device);
            let rows = features_ad
                .as_ref()
                .map(|f| f.clone().select(0, items.clone()));
            let table = model.table_rows(rows, items);
            let loss = bce_loss(&model.sasrec, table, seq, pos, neg);
            loss_sum += loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &*model);
            *model = optim.step(cfg.lr, model.clone(), grads);
            bar.set_message(format!("{:.4}", loss_sum / (step + 1) as f64));
            bar.inc(1);
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let inference = model.valid();
        let (valid, test, table) = evaluate_recommender(&inference, features.clone(), split);
        let eval_seconds = start.elapsed().as_secs_f64() - train_seconds;
        let rec = EpochRecord {
            epoch,
            loss: loss_sum / batches.len().max(1) as f64,
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
            store::save_best(out_dir, &inference, table.to_device(inner))?;
        }
        store::save_checkpoint(out_dir, epoch, &*model, optim)?;
        // the epoch counts as done once the registry says so; files above are ahead of it
        registry.record_epoch(run, &rec)?;
        record.epochs.push(rec);
        if improved {
            record.best_epoch = epoch;
            record.test = test;
            registry.set_best(run, epoch, &test)?;
            for (kind, file) in [
                ("model", store::MODEL_FILE),
                ("item_table", store::TABLE_FILE),
                ("recommender", store::RECOMMENDER_FILE),
            ] {
                registry.record_artifact(run, kind, &out_dir.join(file), Some(epoch))?;
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

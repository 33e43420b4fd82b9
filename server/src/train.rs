//! `train` owns the training loop: seeded batches → SASRec loss → AdamW, full-ranking
//! evaluation on validation and test after every epoch, and the best-validation checkpoint.
//! A progress bar (stderr, hidden when not a terminal) shows the running loss and the ETA.

use std::path::Path;
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use shared::api::Metrics;

use crate::data::sampler::{Batch, Sampler};
use crate::data::{Dataset, Split};
use crate::device::Resolved;
use crate::eval::evaluate_both;
use crate::rec::loss::bce_loss;
use crate::rec::{SasRec, SasRecConfig};
use crate::store::{self, EpochRecord, RunRecord};

/// Training hyper-parameters of the ID-only recommender.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    /// Epochs.
    pub epochs: usize,
    /// Users per batch (reference: 16).
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of initialisation and sampling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 16,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 42,
        }
    }
}

/// Tensors of a batch on `device`: `(seq, pos, neg)`, each `[B, L]`.
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

/// Trains an ID-only SASRec on `dataset`, writing the best-validation model and the run record
/// to `out_dir` after every improving epoch. Returns the record.
pub fn train_id_only(
    dataset: &Dataset,
    model_cfg: &SasRecConfig,
    cfg: &TrainConfig,
    resolved: &Resolved,
    out_dir: &Path,
) -> anyhow::Result<RunRecord> {
    let split = Split::leave_one_out(&dataset.sequences);
    let device = resolved.device.clone().autodiff();
    device.seed(cfg.seed);
    let mut model: SasRec = model_cfg.init(&device);
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(cfg.weight_decay as f32)
        .init();
    let sampler = Sampler::new(
        &split.train,
        dataset.n_items(),
        model_cfg.max_len,
        cfg.batch_size,
        cfg.seed,
    );
    if let Some(&u) = sampler.users_without_negatives().first() {
        anyhow::bail!(
            "user {:?} of {} has interacted with every item in training: no negative item can be sampled",
            dataset.user_ids[u],
            dataset.name
        );
    }
    let mut record = RunRecord {
        method: "id-only".into(),
        dataset: dataset.name.clone(),
        dataset_checksum: dataset.checksum.clone(),
        device: resolved.name.into(),
        model: model_cfg.clone(),
        train: cfg.clone(),
        code_version: env!("CARGO_PKG_VERSION").into(),
        epochs: Vec::new(),
        best_epoch: 0,
        test: Metrics::default(),
    };
    tracing::info!(
        dataset = %dataset.name, users = dataset.n_users(), items = dataset.n_items(),
        device = resolved.name, batches = sampler.batches_per_epoch(), "training id-only SASRec"
    );
    let bar = ProgressBar::new((cfg.epochs * sampler.batches_per_epoch()) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps, loss {msg}, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        let mut loss_sum = 0.0;
        let batches = sampler.epoch(epoch);
        bar.set_prefix(format!("epoch {epoch}/{}", cfg.epochs));
        for (step, batch) in batches.iter().enumerate() {
            let (seq, pos, neg) = batch_tensors(batch, &device);
            let loss = bce_loss(&model, model.id_table(), seq, pos, neg);
            loss_sum += loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
            bar.set_message(format!("{:.4}", loss_sum / (step + 1) as f64));
            bar.inc(1);
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let inference = model.valid();
        let (valid, test) = evaluate_both(&inference, &split);
        let rec = EpochRecord {
            epoch,
            loss: loss_sum / batches.len().max(1) as f64,
            valid,
            test,
            train_seconds,
            eval_seconds: start.elapsed().as_secs_f64() - train_seconds,
        };
        tracing::info!(
            epoch,
            loss = format!("{:.4}", rec.loss),
            valid_ndcg20 = format!("{:.4}", valid.ndcg20),
            test_hr10 = format!("{:.4}", test.hr10),
            test_ndcg10 = format!("{:.4}", test.ndcg10),
            seconds = format!("{:.2}", start.elapsed().as_secs_f64()),
            "epoch"
        );
        let improved = record.best_epoch == 0
            || valid.ndcg20 > record.epochs[record.best_epoch - 1].valid.ndcg20;
        record.epochs.push(rec);
        if improved {
            record.best_epoch = epoch;
            record.test = test;
            store::save_model(out_dir, &inference)?;
        }
        store::save_record(out_dir, &record)?;
    }
    bar.finish_and_clear();
    Ok(record)
}

//! `store` owns what a training run leaves on disk: `model.safetensors` (the weights) and
//! `run.json` (configuration, dataset checksum, per-epoch metrics, the selected epoch).
//! Every file is written to a temporary name and renamed, so a crash never leaves half a file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};
use shared::api::Metrics;

use crate::rec::{SasRec, SasRecConfig};
use crate::train::TrainConfig;

/// Weights file name inside a run directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// Record file name inside a run directory.
pub const RECORD_FILE: &str = "run.json";

/// One epoch of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Validation metrics.
    pub valid: Metrics,
    /// Test metrics.
    pub test: Metrics,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// Seconds spent evaluating.
    pub eval_seconds: f64,
}

/// Everything needed to reproduce and serve a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Method, e.g. `id-only`.
    pub method: String,
    /// Dataset name.
    pub dataset: String,
    /// SHA-256 of the dataset files.
    pub dataset_checksum: String,
    /// Device trained on.
    pub device: String,
    /// Model hyper-parameters.
    pub model: SasRecConfig,
    /// Training hyper-parameters (seed included).
    pub train: TrainConfig,
    /// Version of this code.
    pub code_version: String,
    /// Per-epoch history.
    pub epochs: Vec<EpochRecord>,
    /// Epoch with the best validation NDCG@20 (the saved weights).
    pub best_epoch: usize,
    /// Test metrics at `best_epoch`.
    pub test: Metrics,
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically (temporary name, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Saves the weights of `model` to `dir/model.safetensors`.
pub fn save_model(dir: &Path, model: &SasRec) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(MODEL_FILE);
    let tmp = tmp_path(&path);
    let mut store = SafetensorsStore::from_file(&tmp);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))
}

/// Saves `run.json`.
pub fn save_record(dir: &Path, record: &RunRecord) -> anyhow::Result<()> {
    write_atomic(&dir.join(RECORD_FILE), &serde_json::to_vec_pretty(record)?)
}

/// Loads `run.json` and the weights it describes onto `device`.
pub fn load(dir: &Path, device: &Device) -> anyhow::Result<(SasRec, RunRecord)> {
    let record_path = dir.join(RECORD_FILE);
    let text = std::fs::read_to_string(&record_path)
        .with_context(|| format!("reading {}", record_path.display()))?;
    let record: RunRecord = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", record_path.display()))?;
    let model_path = dir.join(MODEL_FILE);
    if !model_path.exists() {
        anyhow::bail!("{} is missing", model_path.display());
    }
    let mut model = record.model.init(device);
    let mut store = SafetensorsStore::from_file(&model_path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("loading {}: {e:?}", model_path.display()))?;
    if !result.missing.is_empty() {
        anyhow::bail!(
            "{} lacks tensors {:?}",
            model_path.display(),
            result.missing
        );
    }
    Ok((model, record))
}

//! What a run leaves on record: `run.json` ([`RunRecord`], one [`EpochRecord`] per evaluated
//! epoch) and, for PerPEFT, `groups.json` ([`Groups`]). Written by training, read back by
//! resume, evaluation, the registry and the engine.

use serde::{Deserialize, Serialize};
use shared::api::Metrics;

use super::{SasRecConfig, TrainConfig};

/// One evaluated epoch of a run.
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
    /// Method, e.g. `id-only`, `perpeft-iisan+random-groups` ([`TrainConfig::label`]).
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
    /// Version of this code (`CARGO_PKG_VERSION+git hash`, `-dirty` for uncommitted changes).
    pub code_version: String,
    /// Per-epoch history of the evaluated stage.
    pub epochs: Vec<EpochRecord>,
    /// Epoch with the best validation NDCG@20 (the saved weights), 0 before the first.
    pub best_epoch: usize,
    /// Test metrics at `best_epoch`.
    pub test: Metrics,
    /// Trainable parameters of one PEFT adapter (PEFT methods).
    #[serde(default)]
    pub adapter_params: Option<usize>,
    /// Wall seconds of the stages before the evaluated one (`global`, `grouping`).
    #[serde(default)]
    pub stages: Vec<(String, f64)>,
    /// Sizes of the user groups (PerPEFT).
    #[serde(default)]
    pub groups: Option<Vec<usize>>,
    /// Per-group (validation, test) metrics at `best_epoch` (PerPEFT).
    #[serde(default)]
    pub best_groups: Vec<(Metrics, Metrics)>,
    /// Peak resident memory of the training process so far, MiB (updated every epoch; a server
    /// training several jobs reports its own peak).
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    /// The popularity baseline's (validation, test) metrics on the same split and protocol
    /// (`eval::popularity`); absent in runs recorded before it existed.
    #[serde(default)]
    pub popularity: Option<(Metrics, Metrics)>,
}

impl RunRecord {
    /// Whether the best epoch beats the popularity baseline on validation NDCG@20 (`None`
    /// without a baseline or an epoch).
    pub fn beats_popularity(&self) -> Option<bool> {
        let (pop, _) = self.popularity.as_ref()?;
        Some(super::select::improves(&self.best()?.valid, Some(pop)))
    }

    /// The record of the best epoch (`None` before the first).
    pub fn best(&self) -> Option<&EpochRecord> {
        self.epochs.iter().find(|e| e.epoch == self.best_epoch)
    }
}

/// The process's peak resident memory in MiB (`getrusage`), where the platform tells it.
pub fn peak_rss_mib() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            // Linux reports kilobytes
            return Some(usage.ru_maxrss as f64 / 1024.0);
        }
    }
    None
}

impl RunRecord {
    /// Mean seconds of training per epoch.
    pub fn seconds_per_epoch(&self) -> f64 {
        let n = self.epochs.len().max(1) as f64;
        self.epochs.iter().map(|e| e.train_seconds).sum::<f64>() / n
    }
}

/// This build's code version, as recorded in every run.
pub fn code_version() -> String {
    format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        env!("PERPEFT_GIT_VERSION")
    )
}

/// A grouping of users (docs/method.md §8): the centroids and every user's group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Groups {
    /// Number of groups.
    pub k: usize,
    /// Width of a user representation.
    pub dim: usize,
    /// Row-major centroids `[k, dim]`.
    pub centroids: Vec<f32>,
    /// Group of each user (dataset user index).
    pub assignment: Vec<usize>,
    /// How the groups were made (`kmeans` or `random`).
    pub how: String,
}

impl Groups {
    /// Users of each group, in increasing user index.
    pub fn members(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.k];
        for (u, &g) in self.assignment.iter().enumerate() {
            out[g].push(u);
        }
        out
    }

    /// The group whose centroid is nearest to `state` ([`shared::groups::nearest`]): how a user
    /// the model has not seen is assigned, from their global-model state.
    pub fn nearest(&self, state: &[f32]) -> usize {
        shared::groups::nearest(&self.centroids, self.dim, state)
    }
}

//! `store` owns what training leaves on disk.
//!
//! - A run directory `ROOT/NAME/`: `model.safetensors` (SASRec at the best validation epoch),
//!   `item_table.safetensors` (the item table at that epoch: what the server scores with),
//!   `recommender.bpk` (SASRec + projector at that epoch), `run.json` (a portable copy of the
//!   run record), and `checkpoint/` (the last completed epoch's model and AdamW state, for
//!   `--resume`).
//! - The registry `ROOT/registry.sqlite`: runs (configuration, seed, dataset checksum, code
//!   version, device, status), per-epoch metrics and timings, and artifact paths.
//!
//! Every file is written to a temporary name and renamed, so a crash never leaves half a file.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::prelude::*;
use burn::store::{ModuleRecord, ModuleSnapshot, SafetensorsStore};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use shared::api::Metrics;

use crate::rec::{Recommender, SasRec, SasRecConfig};
use crate::train::TrainConfig;

/// Weights file name inside a run directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// Item table file name inside a run directory.
pub const TABLE_FILE: &str = "item_table.safetensors";
/// Best recommender (SASRec + projector) inside a run directory.
pub const RECOMMENDER_FILE: &str = "recommender.bpk";
/// The best epoch's PEFT parameters (adapters or IISAN modules only, not the frozen backbone).
pub const ADAPTERS_FILE: &str = "adapters.bpk";
/// Record file name inside a run directory.
pub const RECORD_FILE: &str = "run.json";
/// Registry file name in the runs root.
pub const REGISTRY_FILE: &str = "registry.sqlite";

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
    /// Method, e.g. `id-only`, `frozen`.
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
    /// Per-epoch history.
    pub epochs: Vec<EpochRecord>,
    /// Epoch with the best validation NDCG@20 (the saved weights).
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
}

impl RunRecord {
    /// Mean seconds of training per epoch.
    pub fn seconds_per_epoch(&self) -> f64 {
        let n = self.epochs.len().max(1) as f64;
        self.epochs.iter().map(|e| e.train_seconds).sum::<f64>() / n
    }
}

/// This build's code version.
pub fn code_version() -> String {
    format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        env!("PERPEFT_GIT_VERSION")
    )
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically (temporary name, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Runs `write` on a temporary name next to `path`, then renames it into place.
fn atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = tmp_path(path);
    write(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Saves the weights of `model` to `dir/model.safetensors`.
pub fn save_model(dir: &Path, model: &SasRec) -> Result<()> {
    atomically(&dir.join(MODEL_FILE), |tmp| {
        let mut store = SafetensorsStore::from_file(tmp);
        model
            .save_into(&mut store)
            .map_err(|e| anyhow!("writing {}: {e:?}", tmp.display()))
    })
}

fn table_name(g: usize) -> String {
    if g == 0 {
        "table".into()
    } else {
        format!("group_{g}")
    }
}

/// Saves 2-D tables as `path` (safetensors: `table`, then `group_1`, `group_2`, …).
pub fn save_tables(path: &Path, tables: &[Tensor<2>]) -> Result<()> {
    save_tables_with(path, tables, std::collections::HashMap::new())
}

/// [`save_tables`] with string metadata in the safetensors header.
pub fn save_tables_with(
    path: &Path,
    tables: &[Tensor<2>],
    metadata: std::collections::HashMap<String, String>,
) -> Result<()> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tables
        .iter()
        .enumerate()
        .map(|(g, t)| {
            let [rows, d] = t.dims();
            let bytes = t
                .clone()
                .into_data()
                .iter::<f32>()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (table_name(g), vec![rows, d], bytes)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| anyhow!("{e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let serialized = safetensors::serialize(views, metadata).map_err(|e| anyhow!("{e}"))?;
    write_atomic(path, &serialized)
}

/// The string metadata of a safetensors file's header.
pub fn read_metadata(path: &Path) -> Result<std::collections::HashMap<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

/// Saves one 2-D table (tensor `table`).
pub fn save_table(path: &Path, table: Tensor<2>) -> Result<()> {
    save_tables(path, &[table])
}

/// Loads every table written by [`save_tables`], in group order.
pub fn load_tables(path: &Path, device: &Device) -> Result<Vec<Tensor<2>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    while let Ok(t) = st.tensor(&table_name(out.len())) {
        let shape = t.shape().to_vec();
        anyhow::ensure!(shape.len() == 2, "{}: not a 2-D table", path.display());
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.push(Tensor::from_data(
            TensorData::new(values, [shape[0], shape[1]]),
            device,
        ));
    }
    anyhow::ensure!(!out.is_empty(), "{}: no tensor `table`", path.display());
    Ok(out)
}

/// Loads the first table written by [`save_tables`].
pub fn load_table(path: &Path, device: &Device) -> Result<Tensor<2>> {
    Ok(load_tables(path, device)?.remove(0))
}

/// Groups file name inside a run directory (PerPEFT).
pub const GROUPS_FILE: &str = "groups.json";

/// Saves the user groups (centroids and assignment).
pub fn save_groups(dir: &Path, groups: &crate::cluster::Groups) -> Result<()> {
    write_atomic(&dir.join(GROUPS_FILE), &serde_json::to_vec(groups)?)
}

/// Reads the user groups of a PerPEFT run.
pub fn read_groups(dir: &Path) -> Result<crate::cluster::Groups> {
    let path = dir.join(GROUPS_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Saves the best-epoch artifacts: SASRec weights, the item table(s) (one per group for
/// PerPEFT, tensors `table`, `group_1`, …), the whole recommender.
pub fn save_best(dir: &Path, model: &Recommender, tables: &[Tensor<2>]) -> Result<()> {
    save_model(dir, &model.sasrec)?;
    save_tables(&dir.join(TABLE_FILE), tables)?;
    atomically(&dir.join(RECOMMENDER_FILE), |tmp| {
        model
            .clone()
            .save_file(tmp)
            .map_err(|e| anyhow!("writing {}: {e:?}", tmp.display()))
    })
}

/// Saves only the trainable PEFT parameters of `peft` (LoRA/(IA)3 adapters in the sites, or
/// the IISAN modules) as `dir/adapters.bpk`; load it back with `try_load_record` on a model of
/// the same configuration, with `allow_partial`.
pub fn save_adapters<M: Module>(dir: &Path, peft: &M) -> Result<()> {
    let group = burn::module::ParamGroup::from_any_predicates(vec!["adapters", "modules"]);
    atomically(&dir.join(ADAPTERS_FILE), |tmp| {
        peft.clone()
            .into_record_group(group)
            .save(tmp)
            .map_err(|e| anyhow!("writing {}: {e:?}", tmp.display()))
    })
}

/// The checkpoint directory of a run.
pub fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

/// Saves the training state after completed epoch `epoch`: the model (parameter ids included,
/// so the optimizer state still matches after loading) and both optimizers' state, as
/// `checkpoint/epoch-N.{model,optimizer,optimizer-peft}.bpk`.
pub fn save_checkpoint<M: Module>(
    dir: &Path,
    epoch: usize,
    model: &M,
    optims: (&ModuleOptimizer, &ModuleOptimizer),
) -> Result<()> {
    let ckpt = checkpoint_dir(dir);
    atomically(&ckpt.join(format!("epoch-{epoch}.model.bpk")), |tmp| {
        model
            .clone()
            .save_file(tmp)
            .map_err(|e| anyhow!("writing {}: {e:?}", tmp.display()))
    })?;
    for (optim, kind) in [(optims.0, "optimizer"), (optims.1, "optimizer-peft")] {
        atomically(&ckpt.join(format!("epoch-{epoch}.{kind}.bpk")), |tmp| {
            optim
                .to_record()
                .save(tmp)
                .map_err(|e| anyhow!("writing {}: {e:?}", tmp.display()))
        })?;
    }
    Ok(())
}

/// Removes checkpoints of epochs before `keep` (called once `keep` is recorded as done).
pub fn prune_checkpoints(dir: &Path, keep: usize) -> Result<()> {
    let ckpt = checkpoint_dir(dir);
    for entry in std::fs::read_dir(&ckpt).with_context(|| format!("listing {}", ckpt.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let epoch = name
            .strip_prefix("epoch-")
            .and_then(|r| r.split('.').next())
            .and_then(|e| e.parse::<usize>().ok());
        if epoch.is_some_and(|e| e < keep) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Restores the training state of completed epoch `epoch` (saved by [`save_checkpoint`]) into
/// a freshly built `model` and optimizers of the same configuration.
pub fn load_checkpoint<M: Module>(
    dir: &Path,
    epoch: usize,
    model: M,
    optims: (ModuleOptimizer, ModuleOptimizer),
) -> Result<(M, ModuleOptimizer, ModuleOptimizer)> {
    let ckpt = checkpoint_dir(dir);
    let model = load_checkpoint_model(dir, epoch, model)?;
    let state = |kind: &str| -> Result<OptimizerRecord> {
        let path = ckpt.join(format!("epoch-{epoch}.{kind}.bpk"));
        OptimizerRecord::load(&path).map_err(|e| anyhow!("reading {}: {e:?}", path.display()))
    };
    Ok((
        model,
        optims.0.load_record(state("optimizer")?),
        optims.1.load_record(state("optimizer-peft")?),
    ))
}

/// The model of completed epoch `epoch` alone, loaded into a freshly built `model` of the same
/// configuration (burn materialises optimizer state on its default device, which need not be
/// touched when only the model is wanted).
pub fn load_checkpoint_model<M: Module>(dir: &Path, epoch: usize, model: M) -> Result<M> {
    let path = checkpoint_dir(dir).join(format!("epoch-{epoch}.model.bpk"));
    let record =
        ModuleRecord::load(&path).map_err(|e| anyhow!("reading {}: {e:?}", path.display()))?;
    model
        .try_load_record(record)
        .map_err(|e| anyhow!("{}: {e:?}", path.display()))
}

/// Saves `run.json`.
pub fn save_record(dir: &Path, record: &RunRecord) -> Result<()> {
    write_atomic(&dir.join(RECORD_FILE), &serde_json::to_vec_pretty(record)?)
}

/// Reads `run.json`.
pub fn read_record(dir: &Path) -> Result<RunRecord> {
    let record_path = dir.join(RECORD_FILE);
    let text = std::fs::read_to_string(&record_path)
        .with_context(|| format!("reading {}", record_path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", record_path.display()))
}

/// Loads a run for serving and evaluation: SASRec, the item table (runs from before item
/// tables were saved fall back to SASRec's ID table), and the record.
pub fn load(dir: &Path, device: &Device) -> Result<(SasRec, Vec<Tensor<2>>, RunRecord)> {
    let record = read_record(dir)?;
    let model_path = dir.join(MODEL_FILE);
    if !model_path.exists() {
        bail!(
            "{} is missing (did the run finish an epoch?)",
            model_path.display()
        );
    }
    let mut model = record.model.init(device);
    let mut store = SafetensorsStore::from_file(&model_path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow!("loading {}: {e:?}", model_path.display()))?;
    if !result.missing.is_empty() {
        bail!(
            "{} lacks tensors {:?}",
            model_path.display(),
            result.missing
        );
    }
    let table_path = dir.join(TABLE_FILE);
    let tables = if table_path.exists() {
        load_tables(&table_path, device)?
    } else {
        vec![model.id_table()]
    };
    Ok((model, tables, record))
}

/// Loads the global (stage-1) model a PerPEFT run saved in `global_dir`, with the run's
/// record from `run_dir`.
pub fn load_global(
    global_dir: &Path,
    run_dir: &Path,
    device: &Device,
) -> Result<(SasRec, Vec<Tensor<2>>, RunRecord)> {
    let record = read_record(run_dir)?;
    let mut model = record.model.init(device);
    let path = global_dir.join(MODEL_FILE);
    let mut store = SafetensorsStore::from_file(&path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow!("loading {}: {e:?}", path.display()))?;
    if !result.missing.is_empty() {
        bail!("{} lacks tensors {:?}", path.display(), result.missing);
    }
    let tables = load_tables(&global_dir.join(TABLE_FILE), device)?;
    Ok((model, tables, record))
}

/// Status of a run in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Finished,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }
}

/// One row of `perpeft runs`.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub name: String,
    pub method: String,
    pub backbone: String,
    pub dataset: String,
    pub seed: u64,
    pub device: String,
    pub status: String,
    pub epochs_done: usize,
    pub epochs: usize,
    pub best_epoch: Option<usize>,
    pub test: Option<Metrics>,
    pub seconds_per_epoch: Option<f64>,
    pub code_version: String,
    pub dir: String,
}

/// The SQLite run registry.
pub struct Registry {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    dir TEXT NOT NULL,
    method TEXT NOT NULL,
    backbone TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_checksum TEXT NOT NULL,
    seed INTEGER NOT NULL,
    epochs INTEGER NOT NULL,
    config TEXT NOT NULL,
    code_version TEXT NOT NULL,
    device TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    best_epoch INTEGER,
    test_hr10 REAL, test_ndcg10 REAL, test_hr20 REAL, test_ndcg20 REAL,
    test_hr30 REAL, test_ndcg30 REAL, test_users INTEGER,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    loss REAL NOT NULL,
    valid_hr10 REAL NOT NULL, valid_ndcg10 REAL NOT NULL, valid_hr20 REAL NOT NULL,
    valid_ndcg20 REAL NOT NULL, valid_hr30 REAL NOT NULL, valid_ndcg30 REAL NOT NULL,
    valid_users INTEGER NOT NULL,
    test_hr10 REAL NOT NULL, test_ndcg10 REAL NOT NULL, test_hr20 REAL NOT NULL,
    test_ndcg20 REAL NOT NULL, test_hr30 REAL NOT NULL, test_ndcg30 REAL NOT NULL,
    test_users INTEGER NOT NULL,
    train_seconds REAL NOT NULL,
    eval_seconds REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    epoch INTEGER,
    bytes INTEGER,
    PRIMARY KEY (run_id, kind)
);
";

impl Registry {
    /// Opens (creating if needed) `root/registry.sqlite`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let path = root.join(REGISTRY_FILE);
        let conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;")?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("{}: creating the schema", path.display()))?;
        Ok(Self { conn, path })
    }

    /// The registry of the runs root that holds run directory `dir` (its parent).
    pub fn for_run_dir(dir: &Path) -> Result<Self> {
        let root = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::open(root)
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of run `name`, if registered.
    pub fn run_id(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT id FROM runs WHERE name = ?1", [name], |r| r.get(0))
            .optional()?)
    }

    /// Registers a new run (status `running`); fails if the name exists.
    pub fn create(&self, name: &str, dir: &Path, record: &RunRecord) -> Result<i64> {
        if self.run_id(name)?.is_some() {
            bail!(
                "a run named {name} already exists in {}; resume it with --resume, or pass --overwrite to replace it",
                self.path.display()
            );
        }
        self.conn.execute(
            "INSERT INTO runs (name, dir, method, backbone, dataset, dataset_checksum, seed, epochs, config,
                               code_version, device, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'running')",
            params![
                name,
                dir.display().to_string(),
                record.method,
                record.train.backbone_name(),
                record.dataset,
                record.dataset_checksum,
                record.train.seed as i64,
                record.train.epochs as i64,
                serde_json::to_string(&(&record.model, &record.train))?,
                record.code_version,
                record.device,
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Deletes run `name` and its epochs and artifact rows (the files are the caller's).
    pub fn delete(&self, name: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM runs WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Records a completed epoch (replacing a previous record of the same epoch).
    pub fn record_epoch(&self, run: i64, e: &EpochRecord) -> Result<()> {
        let (v, t) = (&e.valid, &e.test);
        self.conn.execute(
            &format!(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, loss, {}, {}, train_seconds, eval_seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                metric_columns("valid"),
                metric_columns("test")
            ),
            params![
                run,
                e.epoch as i64,
                e.loss,
                v.hr10,
                v.ndcg10,
                v.hr20,
                v.ndcg20,
                v.hr30,
                v.ndcg30,
                v.users as i64,
                t.hr10,
                t.ndcg10,
                t.hr20,
                t.ndcg20,
                t.hr30,
                t.ndcg30,
                t.users as i64,
                e.train_seconds,
                e.eval_seconds
            ],
        )?;
        self.conn.execute(
            "UPDATE runs SET updated_at = datetime('now') WHERE id = ?1",
            [run],
        )?;
        Ok(())
    }

    /// The completed epochs of a run, in order.
    pub fn epochs(&self, run: i64) -> Result<Vec<EpochRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT epoch, loss, train_seconds, eval_seconds, {}, {} FROM epochs
             WHERE run_id = ?1 ORDER BY epoch",
            metric_columns("valid"),
            metric_columns("test")
        ))?;
        let rows = stmt.query_map([run], |r| {
            Ok(EpochRecord {
                epoch: r.get::<_, i64>(0)? as usize,
                loss: r.get(1)?,
                train_seconds: r.get(2)?,
                eval_seconds: r.get(3)?,
                valid: read_metrics(r, 4)?,
                test: read_metrics(r, 11)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records an artifact file of a run.
    pub fn record_artifact(
        &self,
        run: i64,
        kind: &str,
        path: &Path,
        epoch: Option<usize>,
    ) -> Result<()> {
        let bytes = std::fs::metadata(path).map(|m| m.len() as i64).ok();
        self.conn.execute(
            "INSERT OR REPLACE INTO artifacts (run_id, kind, path, epoch, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run, kind, path.display().to_string(), epoch.map(|e| e as i64), bytes],
        )?;
        Ok(())
    }

    /// Artifacts of a run: (kind, path).
    pub fn artifacts(&self, run: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, path FROM artifacts WHERE run_id = ?1 ORDER BY kind")?;
        let rows = stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sets the best epoch and its test metrics.
    pub fn set_best(&self, run: i64, epoch: usize, test: &Metrics) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET best_epoch = ?2, test_hr10 = ?3, test_ndcg10 = ?4, test_hr20 = ?5,
                    test_ndcg20 = ?6, test_hr30 = ?7, test_ndcg30 = ?8, test_users = ?9,
                    updated_at = datetime('now')
             WHERE id = ?1",
            params![
                run,
                epoch as i64,
                test.hr10,
                test.ndcg10,
                test.hr20,
                test.ndcg20,
                test.hr30,
                test.ndcg30,
                test.users as i64
            ],
        )?;
        Ok(())
    }

    /// Sets the number of epochs a run is to train (it may grow on resume).
    pub fn set_epochs(&self, run: i64, epochs: usize) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET epochs = ?2, updated_at = datetime('now') WHERE id = ?1",
            params![run, epochs as i64],
        )?;
        Ok(())
    }

    /// Sets a run's status (and the device it now runs on).
    pub fn set_status(&self, run: i64, status: Status, device: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, device = ?3, updated_at = datetime('now') WHERE id = ?1",
            params![run, status.as_str(), device],
        )?;
        Ok(())
    }

    /// The finished run on `dataset` with the best validation NDCG@20 at its selected epoch:
    /// `(name, directory)`.
    pub fn best_run(&self, dataset: &str) -> Result<Option<(String, PathBuf)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT r.name, r.dir FROM runs r
                 JOIN epochs e ON e.run_id = r.id AND e.epoch = r.best_epoch
                 WHERE r.status = 'finished' AND r.dataset = ?1
                 ORDER BY e.valid_ndcg20 DESC, r.id LIMIT 1",
                [dataset],
                |r| Ok((r.get(0)?, PathBuf::from(r.get::<_, String>(1)?))),
            )
            .optional()?)
    }

    /// Every run, oldest first.
    pub fn list(&self) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.name, r.method, r.backbone, r.dataset, r.seed, r.device, r.status, r.epochs,
                    r.best_epoch, r.best_epoch, r.code_version, r.dir,
                    (SELECT COUNT(*) FROM epochs e WHERE e.run_id = r.id),
                    (SELECT AVG(train_seconds) FROM epochs e WHERE e.run_id = r.id),
                    {}
             FROM runs r ORDER BY r.id",
            metric_columns("r.test")
        ))?;
        let rows = stmt.query_map([], |r| {
            let best: Option<i64> = r.get(9)?;
            let test = match best {
                Some(_) => Some(read_metrics(r, 14)?),
                None => None,
            };
            Ok(RunRow {
                name: r.get(0)?,
                method: r.get(1)?,
                backbone: r.get(2)?,
                dataset: r.get(3)?,
                seed: r.get::<_, i64>(4)? as u64,
                device: r.get(5)?,
                status: r.get(6)?,
                epochs: r.get::<_, i64>(7)? as usize,
                best_epoch: r.get::<_, Option<i64>>(8)?.map(|e| e as usize),
                test,
                code_version: r.get(10)?,
                dir: r.get(11)?,
                epochs_done: r.get::<_, i64>(12)? as usize,
                seconds_per_epoch: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The seven metric columns under `prefix` (`valid`, `test`, `r.test`), in [`read_metrics`]'s order.
fn metric_columns(prefix: &str) -> String {
    [
        "hr10", "ndcg10", "hr20", "ndcg20", "hr30", "ndcg30", "users",
    ]
    .map(|m| format!("{prefix}_{m}"))
    .join(", ")
}

/// Metrics from seven columns starting at `at` (stored as SQLite REALs, so they round-trip
/// bit for bit).
fn read_metrics(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Metrics> {
    Ok(Metrics {
        hr10: r.get(at)?,
        ndcg10: r.get(at + 1)?,
        hr20: r.get(at + 2)?,
        ndcg20: r.get(at + 3)?,
        hr30: r.get(at + 4)?,
        ndcg30: r.get(at + 5)?,
        users: r.get::<_, i64>(at + 6)? as usize,
    })
}

/// The runs as a Markdown table.
pub fn runs_table(rows: &[RunRow]) -> String {
    let mut s = String::from(
        "| run | method | backbone | dataset | seed | device | status | epochs | best | HR@10 | NDCG@10 | HR@20 | NDCG@20 | s/epoch |\n\
         |---|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let m = |f: fn(&Metrics) -> f64| {
            r.test
                .as_ref()
                .map_or("-".into(), |t| format!("{:.4}", f(t)))
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.method,
            r.backbone,
            r.dataset,
            r.seed,
            r.device,
            r.status,
            r.epochs_done,
            r.epochs,
            r.best_epoch.map_or("-".into(), |e| e.to_string()),
            m(|t| t.hr10),
            m(|t| t.ndcg10),
            m(|t| t.hr20),
            m(|t| t.ndcg20),
            r.seconds_per_epoch
                .map_or("-".into(), |s| format!("{s:.2}")),
        ));
    }
    s
}

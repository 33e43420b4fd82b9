//! `catalog` owns what a server serves: the runs of one registry (a runs root), each opened as an
//! [`Engine`] on first use and kept, and the datasets they were trained on (loaded once, shared).
//! The registry is read on every listing, so a run appears as soon as it finishes; a run that
//! is trained again (overwritten or resumed) is opened again. A run whose registry row says
//! running is shown as running while some process holds its lock, else as interrupted.
//!
//! Invariant: a run is found by its name in the registry and opened from the directory the
//! registry records; a dataset or run name from a request passes [`check_name`] (letters,
//! digits, `.`, `_`, `-`) before it is joined to a path.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::prelude::Device;
use shared::api::{DatasetInfo, RunStatus, RunSummary};

use crate::data::{self, Dataset, Format};
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::store::{Registry, RunDir, RunRow};

/// Where datasets are read from.
#[derive(Debug, Clone)]
pub struct DataSource {
    pub dir: PathBuf,
    pub format: Format,
}

impl DataSource {
    /// Loads dataset `name` (a plain name: letters, digits, `.`, `_`, `-`).
    pub fn load(&self, name: &str) -> Result<Dataset> {
        check_name(name, "dataset")?;
        let dir = match self.format {
            Format::Amazon => self.dir.clone(),
            Format::Recbole | Format::Plain => self.dir.join(name),
        };
        Ok(data::load(self.format, &dir, name)?)
    }

    /// Names of the datasets in the directory (those whose files of the format are there),
    /// sorted; names a job could not use are left out.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let path = entry.at(&self.dir)?.path();
            let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let name = match self.format {
                Format::Recbole => path.join(format!("{file}.inter")).is_file().then_some(file),
                Format::Plain => (path.join("interactions.csv").is_file()
                    || path.join("interactions.jsonl").is_file())
                .then_some(file),
                Format::Amazon => file.strip_suffix("_final.txt"),
            };
            if let Some(n) = name.filter(|n| check_name(n, "dataset").is_ok()) {
                names.push(n.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The format's name, as the API gives it.
    pub fn format_name(&self) -> &'static str {
        match self.format {
            Format::Recbole => "recbole",
            Format::Amazon => "amazon",
            Format::Plain => "plain",
        }
    }
}

/// Refuses a name that could leave its directory or that a file system would mangle.
pub fn check_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} name {name:?} must be 1 to 64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// An opened run with the registry id, creation time and epoch count it was opened at (a run
/// trained again since differs in one of them).
type Opened = ((i64, String, usize), Arc<Engine>);

/// One mutex per key, so slow work on one key (loading a dataset, opening a run) holds up only
/// requests for that key.
#[derive(Default)]
struct Gates(Mutex<HashMap<String, Arc<Mutex<()>>>>);

impl Gates {
    fn get(&self, key: &str) -> Arc<Mutex<()>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }
}

/// The registry's rows as last read, with the connection that read them: read again only when
/// another connection (a training job, a `perpeft train` process) has committed since, so a
/// request costs one `PRAGMA data_version`, not a query of every run.
#[derive(Default)]
struct Rows {
    registry: Option<Registry>,
    /// The registry file the connection has open (device, inode): a file removed and made
    /// again, or replaced, is opened anew (its `data_version` would never change).
    file: Option<(u64, u64)>,
    version: i64,
    rows: Arc<Vec<RunRow>>,
}

/// Per-run values read from a run's record once per training state (the registry key of
/// [`Opened`]): the seconds of a PerPEFT run's global stage and grouping.
type StageSeconds = HashMap<String, ((i64, String, usize), f64)>;

/// The runs of a registry, served.
pub struct Catalog {
    root: PathBuf,
    data: DataSource,
    device: Device,
    /// Serve only this run (`perpeft serve --model`).
    only: Option<String>,
    datasets: Mutex<HashMap<String, Arc<Dataset>>>,
    /// Opened runs by name.
    engines: Mutex<HashMap<String, Opened>>,
    gates: Gates,
    /// Runs this server is training now (a registry row `running` that is not here was
    /// interrupted).
    live: Mutex<HashSet<String>>,
    rows: Mutex<Rows>,
    stage_seconds: Mutex<StageSeconds>,
}

impl Catalog {
    /// The runs under `root`, opened on `device`, with datasets from `data`.
    pub fn new(root: &Path, data: DataSource, device: Device) -> Self {
        Self {
            root: root.to_path_buf(),
            data,
            device,
            only: None,
            datasets: Mutex::default(),
            engines: Mutex::default(),
            gates: Gates::default(),
            live: Mutex::default(),
            rows: Mutex::default(),
            stage_seconds: Mutex::default(),
        }
    }

    /// Serves the run in `dir` alone (its parent is the runs root).
    pub fn single(dir: &RunDir, data: DataSource, device: Device) -> Self {
        Self {
            only: Some(dir.name()),
            ..Self::new(dir.root(), data, device)
        }
    }

    /// The runs root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where datasets come from.
    pub fn data(&self) -> &DataSource {
        &self.data
    }

    /// The device runs are opened on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Marks run `name` as being trained by this server (or no longer).
    pub fn set_live(&self, name: &str, live: bool) {
        let mut set = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }

    /// The registry's runs (this server's one run with `--model`), read again only when the
    /// registry changed ([`Rows`]).
    /// Run `name`'s row.
    fn row(&self, name: &str) -> Result<RunRow> {
        self.all_rows()?
            .iter()
            .find(|r| r.name == name && self.served(r))
            .cloned()
            .ok_or_else(|| unknown_run(name))
    }

    fn served(&self, r: &RunRow) -> bool {
        self.only.as_ref().is_none_or(|o| *o == r.name)
    }

    /// Every row of the registry, current.
    fn all_rows(&self) -> Result<Arc<Vec<RunRow>>> {
        let mut cache = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let file = registry_file_id(&self.root);
        if cache.registry.is_none() || file.is_none() || cache.file != file {
            cache.registry = Some(Registry::open(&self.root)?);
            cache.file = registry_file_id(&self.root);
            cache.version = -1;
        }
        let registry = cache.registry.as_ref().expect("just opened");
        let version = registry.data_version()?;
        if version != cache.version {
            let rows = registry.list()?;
            cache.rows = Arc::new(rows);
            cache.version = version;
        }
        Ok(cache.rows.clone())
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>> {
        Ok(self
            .all_rows()?
            .iter()
            .filter(|r| self.served(r))
            .map(|r| self.summary(r, None))
            .collect())
    }

    /// Row `r`'s summary; `record` is its run record when the caller has already read it.
    fn summary(&self, r: &RunRow, record: Option<&crate::config::RunRecord>) -> RunSummary {
        let live = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&r.name);
        let mut s = summary(r, live || is_trained_now(r));
        // a PerPEFT run's global stage and grouping took time too (they are in its record)
        if let Some(t) = s.total_seconds.as_mut()
            && r.method.starts_with("perpeft")
        {
            *t += self.stage_seconds(r, record);
        }
        s
    }

    /// The seconds of PerPEFT run `r`'s global stage and grouping, from its record (`record`,
    /// or read once per training state of the run).
    fn stage_seconds(&self, r: &RunRow, record: Option<&crate::config::RunRecord>) -> f64 {
        let of = |rec: &crate::config::RunRecord| rec.stages.iter().map(|(_, s)| s).sum::<f64>();
        if let Some(rec) = record {
            return of(rec);
        }
        let key = (r.id, r.created_at.clone(), r.epochs_done);
        let mut cache = self.stage_seconds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, secs)) = cache.get(&r.name)
            && *k == key
        {
            return *secs;
        }
        let Ok(rec) = RunDir::new(&r.dir).read_record() else {
            return 0.0;
        };
        let secs = of(&rec);
        cache.insert(r.name.clone(), (key, secs));
        secs
    }

    /// The datasets a job can train on.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        Ok(self
            .data
            .list()?
            .into_iter()
            .map(|name| DatasetInfo {
                name,
                format: self.data.format_name().into(),
            })
            .collect())
    }

    /// Run `name`'s summary and record (any status: a run being trained has its epochs so far).
    pub fn record(&self, name: &str) -> Result<(RunSummary, crate::config::RunRecord)> {
        let row = self.row(name)?;
        let record = RunDir::new(&row.dir).read_record()?;
        Ok((self.summary(&row, Some(&record)), record))
    }

    /// Run `name`'s directory, as the registry records it.
    pub fn run_dir(&self, name: &str) -> Result<RunDir> {
        Ok(RunDir::new(&self.row(name)?.dir))
    }

    /// The dataset `name`, loaded once.
    pub fn dataset(&self, name: &str) -> Result<Arc<Dataset>> {
        // one load per dataset; loading one does not hold up requests for the others
        let gate = self.gates.get(&format!("dataset {name}"));
        let _loading = gate.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = self
            .datasets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(d.clone());
        }
        let d = Arc::new(self.data.load(name)?);
        self.datasets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), d.clone());
        Ok(d)
    }

    /// Finished run `name`, opened (the first time, or again when it was trained again since).
    /// Blocking: call it off the async runtime.
    pub fn engine(&self, name: &str) -> Result<Arc<Engine>> {
        let row = self.row(name)?;
        if row.status != "finished" {
            return Err(Error::Conflict(format!(
                "run {name} is {} ({} of {} epochs); it is served once it finishes",
                row.status, row.epochs_done, row.epochs
            )));
        }
        // two requests for one run open it once; opening it does not hold up other runs
        let gate = self.gates.get(&format!("run {name}"));
        let _opening = gate.lock().unwrap_or_else(|e| e.into_inner());
        let key = (row.id, row.created_at.clone(), row.epochs_done);
        if let Some((k, e)) = self
            .engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && *k == key
        {
            return Ok(e.clone());
        }
        let dir = RunDir::new(&row.dir);
        let record = dir.read_record()?;
        let dataset = self.dataset(&record.dataset)?;
        let engine = Arc::new(Engine::open(&dir, dataset, &self.device)?);
        self.engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (key, engine.clone()));
        Ok(engine)
    }
}

/// The (device, inode) of the registry file under `root`, where the platform has them.
fn registry_file_id(root: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(Registry::file(root)).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// A run the registry calls running is trained now if some process holds its lock (else it
/// was interrupted).
fn is_trained_now(r: &RunRow) -> bool {
    r.status == "running" && RunDir::new(&r.dir).is_locked()
}

fn unknown_run(name: &str) -> Error {
    Error::NotFound(format!("no run named {name:?}"))
}

fn summary(r: &RunRow, trained_now: bool) -> RunSummary {
    let status = match r.status.as_str() {
        "finished" => RunStatus::Finished,
        "failed" => RunStatus::Failed,
        "running" if trained_now => RunStatus::Running,
        _ => RunStatus::Interrupted,
    };
    RunSummary {
        name: r.name.clone(),
        method: r.method.clone(),
        backbone: r.backbone.clone(),
        dataset: r.dataset.clone(),
        seed: r.seed,
        device: r.device.clone(),
        status,
        epochs_done: r.epochs_done,
        epochs: r.epochs,
        best_epoch: r.best_epoch,
        test: r.test,
        seconds_per_epoch: r.seconds_per_epoch,
        code_version: r.code_version.clone(),
        adapter: adapter_of(&r.config),
        groups: groups_of(&r.config),
        valid: r.valid,
        total_seconds: r.total_seconds,
        created_at: r.created_at.clone(),
    }
}

/// The training half of a registry row's configuration (`[SASRec's, the training's]`).
fn train_config(config: &str) -> serde_json::Value {
    let mut pair: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    pair.get_mut(1)
        .map(serde_json::Value::take)
        .unwrap_or_default()
}

/// The adapter kind of a PEFT run's configuration.
fn adapter_of(config: &str) -> Option<String> {
    let c = train_config(config);
    match c["method"].as_str()? {
        "global-peft" | "perpeft" => c["peft"]["kind"].as_str().map(String::from),
        _ => None,
    }
}

/// User groups of a run's configuration: `groups` for PerPEFT, else 1.
fn groups_of(config: &str) -> usize {
    let c = train_config(config);
    match c["method"].as_str() {
        Some("perpeft") => c["groups"].as_u64().unwrap_or(1) as usize,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_become_paths_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "x y", &"n".repeat(65)] {
            assert!(check_name(bad, "run").is_err(), "{bad:?}");
        }
        for good in ["ml-100k", "demo_perpeft.iisan", "R2"] {
            check_name(good, "run").unwrap();
        }
    }
}

//! The run registry: one SQLite database per runs root (`ROOT/registry.sqlite`) with a row per
//! run (configuration, seed, dataset checksum, code version, device, status, best epoch and its
//! test metrics), one per evaluated epoch (metrics as REAL columns, so they round-trip bit for
//! bit), the paths of each run's artifacts, and the server's training jobs. A run counts an
//! epoch as done once its row is here.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use shared::api::{JobStatus, Metrics};

use super::RunDir;
use crate::config::{EpochRecord, RunRecord, select};
use crate::error::{Error, IoContext, Result};

/// Registry file name in the runs root.
const REGISTRY: &str = "registry.sqlite";

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

/// One run as the registry lists it.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// The registry's id (never reused in a registry made by this version: a run overwritten
    /// under the same name gets a new one).
    pub id: i64,
    /// When the registry row was made.
    pub created_at: String,
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
    /// The configuration as JSON: `[SASRec's, the training's]`.
    pub config: String,
    /// Validation metrics at the best epoch.
    pub valid: Option<Metrics>,
    /// Training and evaluation seconds summed over the evaluated epochs.
    pub total_seconds: Option<f64>,
}

/// The SQLite run registry.
pub struct Registry {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    resume INTEGER NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'finished', 'failed', 'cancelled', 'interrupted')),
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now'))
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
    /// The registry file of runs root `root`.
    pub fn file(root: &Path) -> PathBuf {
        root.join(REGISTRY)
    }

    /// Opens (creating if needed) `root/registry.sqlite`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).at(root)?;
        let path = Self::file(root);
        let sqlite = |e: rusqlite::Error| Error::format(&path, e);
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;")
            .map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        Ok(Self { conn, path })
    }

    /// The registry of the runs root that holds `dir`.
    pub fn for_run(dir: &RunDir) -> Result<Self> {
        Self::open(dir.root())
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
        let config = serde_json::to_string(&(&record.model, &record.train))
            .map_err(|e| Error::format(&self.path, e))?;
        if self.run_id(name)?.is_some() {
            return Err(Error::Conflict(format!(
                "a run named {name} already exists in {}; resume it with --resume, or pass --overwrite to replace it",
                self.path.display()
            )));
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
                config,
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

    /// The finished run on `dataset` whose selected epoch is best by [`select`] (the oldest
    /// among equals): `(name, directory)`.
    pub fn best_run(&self, dataset: &str) -> Result<Option<(String, PathBuf)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.name, r.dir, {} FROM runs r
             JOIN epochs e ON e.run_id = r.id AND e.epoch = r.best_epoch
             WHERE r.status = 'finished' AND r.dataset = ?1
             ORDER BY r.id",
            metric_columns("e.valid")
        ))?;
        let rows = stmt.query_map([dataset], |r| {
            Ok((
                r.get::<_, String>(0)?,
                PathBuf::from(r.get::<_, String>(1)?),
                read_metrics(r, 2)?,
            ))
        })?;
        let runs = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(select::best(runs, |r| r.2).map(|(name, dir, _)| (name, dir)))
    }

    /// A number that changes whenever another connection has committed to the registry since
    /// this connection last asked (SQLite's `PRAGMA data_version`): a reader's cheap way to
    /// know whether what it read is still current.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Every run, oldest first.
    pub fn list(&self) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.name, r.method, r.backbone, r.dataset, r.seed, r.device, r.status, r.epochs,
                    r.best_epoch, r.id, r.code_version, r.dir,
                    (SELECT COUNT(*) FROM epochs e WHERE e.run_id = r.id),
                    (SELECT AVG(train_seconds) FROM epochs e WHERE e.run_id = r.id),
                    {}, r.created_at, r.config,
                    (SELECT SUM(train_seconds + eval_seconds) FROM epochs e WHERE e.run_id = r.id),
                    {}
             FROM runs r LEFT JOIN epochs b ON b.run_id = r.id AND b.epoch = r.best_epoch
             ORDER BY r.id",
            metric_columns("r.test"),
            metric_columns("b.valid")
        ))?;
        let rows = stmt.query_map([], |r| {
            let best: Option<i64> = r.get(8)?;
            let test = match best {
                Some(_) => Some(read_metrics(r, 14)?),
                None => None,
            };
            let valid = match r.get::<_, Option<f64>>(24)? {
                Some(_) => Some(read_metrics(r, 24)?),
                None => None,
            };
            Ok(RunRow {
                id: r.get(9)?,
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
                created_at: r.get(21)?,
                config: r.get(22)?,
                total_seconds: r.get(23)?,
                valid,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Queues a training job; returns its id.
    pub fn create_job(&self, run: &str, dataset: &str, config: &str, resume: bool) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO jobs (run, dataset, config, resume, status) VALUES (?1, ?2, ?3, ?4, 'queued')",
            params![run, dataset, config, resume],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Sets a job's status and, for a failure, its error.
    pub fn set_job_status(&self, id: i64, status: JobStatus, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE jobs SET status = ?2, error = ?3, updated_at = datetime('now') WHERE id = ?1",
            params![id, status.name(), error],
        )?;
        Ok(())
    }

    /// Moves job `id` from status `from` to `to` if it is still in `from`; whether it was (so
    /// a cancel and the worker's start cannot both win).
    pub fn move_job(&self, id: i64, from: JobStatus, to: JobStatus) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE jobs SET status = ?3, updated_at = datetime('now') WHERE id = ?1 AND status = ?2",
            params![id, from.name(), to.name()],
        )?;
        Ok(n == 1)
    }

    /// Marks every job still queued or running as interrupted (a server starting again finds
    /// them so: their runs resume from their checkpoints with a new job). Returns how many.
    pub fn interrupt_unfinished_jobs(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE jobs SET status = 'interrupted', updated_at = datetime('now')
             WHERE status IN ('queued', 'running')",
            [],
        )?)
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<JobRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, run, dataset, config, resume, status, error, created_at FROM jobs ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let status: String = r.get(5)?;
            Ok(JobRow {
                id: r.get(0)?,
                run: r.get(1)?,
                dataset: r.get(2)?,
                config: r.get(3)?,
                resume: r.get(4)?,
                status: parse_job_status(&status),
                error: r.get(6)?,
                created_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// One training job as the registry keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub run: String,
    pub dataset: String,
    /// The `TrainConfig` it trains, as JSON.
    pub config: String,
    pub resume: bool,
    pub status: JobStatus,
    pub error: Option<String>,
    pub created_at: String,
}

fn parse_job_status(s: &str) -> JobStatus {
    match s {
        "queued" => JobStatus::Queued,
        "running" => JobStatus::Running,
        "finished" => JobStatus::Finished,
        "failed" => JobStatus::Failed,
        "cancelled" => JobStatus::Cancelled,
        // the schema's CHECK allows nothing else
        _ => JobStatus::Interrupted,
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

//! `jobs` owns training on behalf of the server: a queue of jobs kept in the registry (the
//! truth: a job that was queued or running when the server stopped is `interrupted` when a
//! server starts again on that root; its run continues from its checkpoint when a new job asks
//! to resume it, as `--demo` does for the demo runs), one worker thread that trains one job at
//! a time on the server's device (a panic fails the job, not the worker), cancellation, and a
//! stream of [`JobEvent`]s (status, throttled progress, each recorded epoch) for Server-Sent
//! Events. A job and the worker each move a job's status only from the one they expect, so a
//! cancel and the start of a job cannot both win.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use shared::api::{EpochPoint, Job, JobEvent, JobRequest, JobStatus, Progress};
use tokio::sync::broadcast;

use crate::catalog::{Catalog, check_name};
use crate::config::{EpochRecord, Preset, TrainConfig};
use crate::device::Resolved;
use crate::error::{Error, Result};
use crate::store::{JobRow, Registry, RunDir};
use crate::train::{Event, Observer, Stage, Start, train_with};

/// Largest number of epochs a job may ask for (either stage).
pub const MAX_EPOCHS: usize = 500;
/// Largest number of groups a job may ask for.
pub const MAX_GROUPS: usize = 64;
/// Progress events are sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What the server trains with: its device and its own directories (a job cannot name paths).
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub device: Resolved,
    pub weights_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub clip_dir: Option<PathBuf>,
}

/// The server's training jobs.
pub struct Jobs {
    catalog: Arc<Catalog>,
    settings: JobSettings,
    state: Mutex<State>,
    wake: Condvar,
    events: broadcast::Sender<(u64, JobEvent)>,
    stopping: AtomicBool,
}

#[derive(Default)]
struct State {
    /// The latest progress of the running job.
    progress: HashMap<u64, Progress>,
    /// Cancellation flags of queued and running jobs.
    cancel: HashMap<u64, Arc<AtomicBool>>,
}

/// Fields a job may not set: the server's paths.
const SERVER_FIELDS: [&str; 4] = ["clip_dir", "weights_dir", "cache_dir", "global_from"];

impl Jobs {
    /// Marks jobs left queued or running by a previous server as interrupted and starts the
    /// worker.
    pub fn start(catalog: Arc<Catalog>, settings: JobSettings) -> Result<Arc<Self>> {
        let interrupted = Registry::open(catalog.root())?.interrupt_unfinished_jobs()?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "jobs of a previous server were interrupted");
        }
        let (events, _) = broadcast::channel(1024);
        let jobs = Arc::new(Self {
            catalog,
            settings,
            state: Mutex::default(),
            wake: Condvar::new(),
            events,
            stopping: AtomicBool::new(false),
        });
        let worker = jobs.clone();
        std::thread::Builder::new()
            .name("perpeft-jobs".into())
            .spawn(move || worker.work())
            .map_err(|e| Error::Compute(format!("starting the job worker: {e}")))?;
        Ok(jobs)
    }

    fn registry(&self) -> Result<Registry> {
        Registry::open(self.catalog.root())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Receives every job's events.
    pub fn subscribe(&self) -> broadcast::Receiver<(u64, JobEvent)> {
        self.events.subscribe()
    }

    fn send(&self, id: u64, event: JobEvent) {
        // nobody listening is fine
        let _ = self.events.send((id, event));
    }

    /// The training configuration a request asks for. A new run: its preset (`"preset"`:
    /// recommended unless it says reference), the request's fields, the server's paths. A resumed run: its recorded configuration, of which only
    /// `epochs` may change. Refuses paths, unknown fields and out-of-range values.
    pub fn config_of(&self, req: &JobRequest) -> Result<TrainConfig> {
        let mut overrides = match &req.config {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(m) => m.clone(),
            _ => {
                return Err(Error::Invalid(
                    "config must be an object of TrainConfig fields".into(),
                ));
            }
        };
        // "preset" picks the starting point (recommended, as `perpeft train`, or reference)
        let preset_given = overrides.contains_key("preset");
        let preset: Preset = match overrides.remove("preset") {
            None => Preset::default(),
            Some(v) => serde_json::from_value(v).map_err(|_| {
                Error::Invalid("preset must be \"recommended\" or \"reference\"".into())
            })?,
        };
        if let Some(field) = SERVER_FIELDS.iter().find(|f| overrides.contains_key(**f)) {
            return Err(Error::Invalid(format!(
                "config field {field:?} is set by the server, not by a job"
            )));
        }
        let cfg = if req.resume {
            let mut fields = overrides.keys().map(String::as_str);
            let preset = preset_given.then_some("preset");
            if let Some(field) = preset.or_else(|| fields.find(|k| *k != "epochs")) {
                return Err(Error::Invalid(format!(
                    "a resumed run keeps its configuration: only \"epochs\" may change, not {field:?}"
                )));
            }
            let (_, record) = self.catalog.record(&req.run)?;
            record.train.with_overrides(&overrides)?
        } else {
            let mut cfg = preset.config().with_overrides(&overrides)?;
            cfg.weights_dir = self.settings.weights_dir.clone();
            cfg.cache_dir = self.settings.cache_dir.clone();
            cfg.clip_dir = self.settings.clip_dir.clone();
            cfg
        };
        let bounded = |what: &str, v: usize, hi: usize| {
            if (1..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "{what} must be between 1 and {hi}, not {v}"
                )))
            }
        };
        bounded("epochs", cfg.epochs, MAX_EPOCHS)?;
        bounded("global_epochs", cfg.global_epochs, MAX_EPOCHS)?;
        bounded("groups", cfg.groups, MAX_GROUPS)?;
        bounded("batch_size", cfg.batch_size, 4096)?;
        bounded("max_len", cfg.max_len, 1000)?;
        if cfg.negatives > 10_000 {
            return Err(Error::Invalid(format!(
                "negatives must be at most 10000, not {}",
                cfg.negatives
            )));
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// Queues a job: a new run (its name must be free), or `resume` of an existing one.
    pub fn submit(&self, req: &JobRequest) -> Result<Job> {
        self.submit_from(req, None)
    }

    /// [`Jobs::submit`]; a new run's `global_from` set by the server itself to `global_from`
    /// (a run of this runs root: the demo's PerPEFT starts from the demo's global run).
    fn submit_from(&self, req: &JobRequest, global_from: Option<&str>) -> Result<Job> {
        check_name(&req.run, "run")?;
        let registry = self.registry()?;
        let exists = registry.run_id(&req.run)?.is_some();
        if req.resume && !exists {
            return Err(Error::NotFound(format!(
                "no run named {:?} to resume",
                req.run
            )));
        }
        if !req.resume && exists {
            return Err(Error::Conflict(format!(
                "a run named {:?} exists: resume it (\"resume\": true) or choose another name",
                req.run
            )));
        }
        let dir = RunDir::new(self.catalog.root().join(&req.run));
        if dir.path().exists() && !dir.path().is_dir() {
            return Err(Error::Conflict(format!(
                "{:?} names a file of the runs root, not a run",
                req.run
            )));
        }
        if dir.is_locked() {
            return Err(Error::Conflict(format!(
                "run {:?} is being trained by another process now",
                req.run
            )));
        }
        let mut cfg = self.config_of(req)?;
        if let Some(run) = global_from
            && !req.resume
        {
            check_name(run, "run")?;
            cfg.global_from = Some(self.catalog.root().join(run));
            cfg.global_from_best = true;
            cfg.check()?;
        }
        self.catalog.dataset(&req.dataset)?;
        let busy = registry
            .jobs()?
            .into_iter()
            .any(|j| j.run == req.run && j.status.is_live());
        if busy {
            return Err(Error::Conflict(format!(
                "run {:?} already has a job queued or running",
                req.run
            )));
        }
        let config = serde_json::to_string(&cfg).map_err(|e| Error::Compute(e.to_string()))?;
        let id = registry.create_job(&req.run, &req.dataset, &config, req.resume)? as u64;
        self.lock()
            .cancel
            .insert(id, Arc::new(AtomicBool::new(false)));
        self.send(id, status_event(JobStatus::Queued, None));
        self.wake.notify_all();
        self.get(id)
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Result<Vec<Job>> {
        let registry = self.registry()?;
        registry
            .jobs()?
            .into_iter()
            .map(|r| self.job(&registry, r))
            .collect()
    }

    /// Job `id`.
    pub fn get(&self, id: u64) -> Result<Job> {
        let registry = self.registry()?;
        let row = registry
            .jobs()?
            .into_iter()
            .find(|j| j.id as u64 == id)
            .ok_or_else(|| Error::NotFound(format!("no job {id}")))?;
        self.job(&registry, row)
    }

    fn job(&self, registry: &Registry, row: JobRow) -> Result<Job> {
        let epochs = match registry.run_id(&row.run)? {
            Some(run) => registry.epochs(run)?.iter().map(point).collect(),
            None => Vec::new(),
        };
        let id = row.id as u64;
        Ok(Job {
            id,
            run: row.run,
            dataset: row.dataset,
            status: row.status,
            config: serde_json::from_str(&row.config).unwrap_or(serde_json::Value::Null),
            resume: row.resume,
            created_at: row.created_at,
            error: row.error,
            progress: self.lock().progress.get(&id).cloned(),
            epochs,
        })
    }

    /// Cancels job `id`: a queued job never starts, a running one stops after its current step
    /// (its run stays resumable).
    pub fn cancel(&self, id: u64) -> Result<Job> {
        let job = self.get(id)?;
        match job.status {
            JobStatus::Queued | JobStatus::Running => {
                // a queued job that the worker has not claimed is cancelled here; one it has
                // claimed in between stops at its next step
                let cancelled_queued = self.registry()?.move_job(
                    id as i64,
                    JobStatus::Queued,
                    JobStatus::Cancelled,
                )?;
                if cancelled_queued {
                    self.lock().cancel.remove(&id);
                    self.send(id, status_event(JobStatus::Cancelled, None));
                } else {
                    let flag = self.lock().cancel.entry(id).or_default().clone();
                    flag.store(true, Ordering::SeqCst);
                }
            }
            other => {
                return Err(Error::Conflict(format!(
                    "job {id} is {other:?}, not queued or running"
                )));
            }
        }
        self.get(id)
    }

    /// Queues the demo runs on `dataset` that are not finished yet (resuming interrupted ones).
    pub fn submit_demo(&self, dataset: &str) -> Result<Vec<Job>> {
        let runs = self.catalog.runs()?;
        let mut queued = Vec::new();
        for (name, config) in demo_runs() {
            let existing = runs.iter().find(|r| r.name == name);
            if existing.is_some_and(|r| r.status == shared::api::RunStatus::Finished) {
                continue;
            }
            // a resumed run keeps its recorded configuration
            let resume = existing.is_some();
            let req = JobRequest {
                run: name.into(),
                dataset: dataset.into(),
                config: if resume {
                    serde_json::json!({})
                } else {
                    config
                },
                resume,
            };
            let from = (name == DEMO_PERPEFT).then_some(DEMO_GLOBAL);
            queued.push(self.submit_from(&req, from)?);
        }
        Ok(queued)
    }

    fn next_queued(&self) -> Option<JobRow> {
        let rows = self.registry().and_then(|r| r.jobs());
        match rows {
            Ok(rows) => rows.into_iter().find(|j| j.status == JobStatus::Queued),
            Err(e) => {
                tracing::error!(error = %e, "reading the job queue");
                None
            }
        }
    }

    /// Stops the worker after the job it runs (for tests that start servers of their own).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    fn work(&self) {
        // training yields the CPU to requests: this thread and its pool run at the lowest priority
        lower_priority();
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("perpeft-train-{i}"))
            .start_handler(|_| lower_priority())
            .build();
        let pool = match pool {
            Ok(pool) => Some(pool),
            Err(e) => {
                tracing::warn!(error = %e, "no training thread pool: training shares the global one");
                None
            }
        };
        while !self.stopping.load(Ordering::SeqCst) {
            let Some(job) = self.next_queued() else {
                let guard = self.lock();
                // woken by a submission, or checks again in a second
                let _ = self.wake.wait_timeout(guard, Duration::from_secs(1));
                continue;
            };
            match &pool {
                Some(pool) => pool.install(|| self.run(job)),
                None => self.run(job),
            }
        }
    }

    fn run(&self, job: JobRow) {
        let id = job.id as u64;
        let cancel = self.lock().cancel.entry(id).or_default().clone();
        // claimed only if still queued: a cancel may have come first
        match self
            .registry()
            .and_then(|r| r.move_job(job.id, JobStatus::Queued, JobStatus::Running))
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error = %e, job = id, "claiming a job");
                return;
            }
        }
        let status = |s, e: Option<&str>| {
            if let Err(err) = self.registry().and_then(|r| r.set_job_status(job.id, s, e)) {
                tracing::error!(error = %err, job = id, "recording a job's status");
            }
            self.send(id, status_event(s, e.map(String::from)));
        };
        self.send(id, status_event(JobStatus::Running, None));
        tracing::info!(job = id, run = %job.run, "job started");
        self.catalog.set_live(&job.run, true);
        // a panic inside training (a bug, or a configuration burn refuses) fails the job, not
        // the worker
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.train(&job, id, &cancel)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(Error::Compute(format!("training panicked: {what}")))
        });
        self.catalog.set_live(&job.run, false);
        {
            let mut state = self.lock();
            state.progress.remove(&id);
            state.cancel.remove(&id);
        }
        match result {
            Ok(()) => status(JobStatus::Finished, None),
            Err(Error::Stopped { .. }) if cancel.load(Ordering::SeqCst) => {
                status(JobStatus::Cancelled, None)
            }
            Err(e) => {
                tracing::error!(job = id, error = %e, "job failed");
                status(JobStatus::Failed, Some(&e.to_string()))
            }
        }
    }

    fn train(&self, job: &JobRow, id: u64, cancel: &Arc<AtomicBool>) -> Result<()> {
        let cfg: TrainConfig = serde_json::from_str(&job.config)
            .map_err(|e| Error::Compute(format!("job {id}'s configuration: {e}")))?;
        let dataset = self.catalog.dataset(&job.dataset)?;
        let model = cfg.sasrec(dataset.n_items());
        let dir = self.catalog.root().join(&job.run);
        let start = if job.resume {
            Start::Resume
        } else {
            Start::New
        };
        let mut observer = JobObserver::new(self, id, cancel.clone());
        train_with(
            &dataset,
            &model,
            &cfg,
            &self.settings.device,
            &dir,
            start,
            &mut observer,
        )?;
        Ok(())
    }
}

/// The niceness of training threads, where `SCHED_IDLE` is refused.
pub const TRAINING_NICENESS: i32 = 10;

/// Lowers the calling thread's priority: Linux's `SCHED_IDLE` policy (the thread runs only when
/// no other wants the CPU), or niceness [`TRAINING_NICENESS`] where that is refused. So serving
/// keeps its latency while a job trains on the same cores: with niceness alone the p99 under
/// load met 10 ms in 2 runs of 4, with `SCHED_IDLE` in every run (docs/RELIABILITY.md, "Load").
/// `setpriority` and `sched_setscheduler` with 0 apply to the calling thread only.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority has no memory-safety preconditions.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, TRAINING_NICENESS) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "lowering the training priority");
        }
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a valid sched_param; 0 is the calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "SCHED_IDLE for training: niceness only");
        }
    }
}

fn status_event(status: JobStatus, error: Option<String>) -> JobEvent {
    JobEvent::Status { status, error }
}

/// An epoch record as the API shows it.
pub fn point(e: &EpochRecord) -> EpochPoint {
    EpochPoint {
        epoch: e.epoch,
        loss: e.loss,
        valid: e.valid,
        test: e.test,
        train_seconds: e.train_seconds,
        eval_seconds: e.eval_seconds,
    }
}

// named apart from the demo runs of the reference recipe that earlier versions trained, which
// stay served as they are
const DEMO_GLOBAL: &str = "demo2-global-iisan";
const DEMO_PERPEFT: &str = "demo2-perpeft-iisan";

/// The demo set: `(run name, TrainConfig fields)`, the recommended recipe with the schedules of
/// the results table's ml-100k rows. The PerPEFT run starts from the demo's global run at its
/// best validation epoch (queued after it; the server sets `global_from`).
pub fn demo_runs() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "demo2-id-only",
            json!({ "method": "id-only", "epochs": 100, "patience": 10 }),
        ),
        (
            "demo2-frozen-minilm",
            json!({ "method": "frozen", "backbone": "minilm", "epochs": 100, "patience": 10 }),
        ),
        (
            DEMO_GLOBAL,
            json!({ "method": "global-peft", "backbone": "minilm", "peft": { "kind": "iisan" },
                    "epochs": 100, "patience": 10 }),
        ),
        (
            DEMO_PERPEFT,
            json!({ "method": "perpeft", "backbone": "minilm", "peft": { "kind": "iisan" },
                    "groups": 8, "epochs": 30, "patience": 5,
                    "freeze_shared": true, "group_select": true }),
        ),
    ]
}

/// Turns training events into job events.
struct JobObserver<'a> {
    jobs: &'a Jobs,
    id: u64,
    cancel: Arc<AtomicBool>,
    stage: Stage,
    last_epoch: usize,
    steps: usize,
    done: usize,
    started: Instant,
    sent: Option<Instant>,
    epoch: usize,
    loss_sum: f64,
    epoch_steps: usize,
}

impl<'a> JobObserver<'a> {
    fn new(jobs: &'a Jobs, id: u64, cancel: Arc<AtomicBool>) -> Self {
        Self {
            jobs,
            id,
            cancel,
            stage: Stage::Evaluated,
            last_epoch: 0,
            steps: 0,
            done: 0,
            started: Instant::now(),
            sent: None,
            epoch: 0,
            loss_sum: 0.0,
            epoch_steps: 0,
        }
    }

    fn progress(&self) -> Progress {
        let elapsed = self.started.elapsed().as_secs_f64();
        Progress {
            stage: self.stage.to_string(),
            epoch: self.epoch,
            last_epoch: self.last_epoch,
            step: self.done,
            steps: self.steps,
            loss: self.loss_sum / self.epoch_steps.max(1) as f64,
            eta_seconds: (self.done > 0)
                .then(|| elapsed / self.done as f64 * self.steps.saturating_sub(self.done) as f64),
        }
    }
}

impl Observer for JobObserver<'_> {
    fn on(&mut self, event: &Event<'_>) -> ControlFlow<()> {
        match event {
            Event::StageStarted {
                stage, last, steps, ..
            } => {
                (self.stage, self.last_epoch, self.steps) = (*stage, *last, *steps);
                (self.done, self.epoch) = (0, 0);
                self.started = Instant::now();
            }
            Event::Step { epoch, loss, .. } => {
                if *epoch != self.epoch {
                    (self.epoch, self.loss_sum, self.epoch_steps) = (*epoch, 0.0, 0);
                }
                self.loss_sum += loss;
                self.epoch_steps += 1;
                self.done += 1;
                if self.sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                    let p = self.progress();
                    self.jobs.lock().progress.insert(self.id, p.clone());
                    self.jobs.send(self.id, JobEvent::Progress(p));
                    self.sent = Some(Instant::now());
                }
            }
            Event::Epoch(e) => self.jobs.send(self.id, JobEvent::Epoch(point(e))),
            Event::Grouped(_) => {}
        }
        if self.cancel.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

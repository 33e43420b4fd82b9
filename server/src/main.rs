//! The `perpeft` command: `train`, `eval`, `serve`, `runs`, `data stats`, `bench encode`.
//! Flags are parsed here and turned into library calls; nothing else happens here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::sync::Arc;

use perpeft::api::auth::{TOKEN_ENV, TokenSource, load_token};
use perpeft::api::{AppState, router, serve};
use perpeft::catalog::{Catalog, DataSource};
use perpeft::config::{
    BackboneChoice, Loss, Method, Modality, PeftKind, Preset, TrainConfig, Windows,
};
use perpeft::data::{self, Dataset, Format};
use perpeft::device::DeviceChoice;
use perpeft::eval::evaluate_run;
use perpeft::jobs::{JobSettings, Jobs};
use perpeft::rec::sasrec::Mode;
use perpeft::store::{Registry, RunDir, RunRow};
use perpeft::train::Start;
use serde::Serialize;
use shared::api::Metrics;

#[derive(Parser)]
#[command(
    name = "perpeft",
    version,
    about = "PerPEFT Studio: personalised multimodal recommendation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a recommender (id-only, frozen, global-peft or perpeft) into a run directory,
    /// keeping its best validation epoch.
    Train(TrainArgs),
    /// Re-evaluate a saved run on its dataset (checksum-verified) and print its metrics.
    Eval(EvalArgs),
    /// Serve the runs of a registry (API and the built front end), and train jobs.
    Serve(ServeArgs),
    /// List the runs of a registry as a table.
    Runs(RunsArgs),
    /// Write a group's LoRA or (IA)3 adapter in the Hugging Face PEFT layout.
    Export(ExportArgs),
    /// Dataset utilities.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Speed benchmarks; each prints a Markdown table.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Items/s of the backbone encoders, forward only and forward+backward through an adapter.
    Encode(BenchArgs),
}

#[derive(Args, Clone)]
struct BenchArgs {
    /// Devices to run on (repeatable); default: flex, plus wgpu when a real GPU is present.
    #[arg(long, value_enum)]
    device: Vec<DeviceChoice>,
    /// Items per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Title tokens per item.
    #[arg(long, default_value_t = 32)]
    tokens: usize,
    /// Timed repetitions (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Only the cases whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Dropout on LoRA's input in the training step (as the PyTorch reference's).
    #[arg(long, default_value_t = 0.1)]
    lora_dropout: f64,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Print users, items, interactions, average length and density.
    Stats(DataArgs),
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Data directory: recbole reads `DIR/NAME/NAME.inter|.item|.user`, amazon reads
    /// `DIR/NAME_final.txt` (+ pickles, `NAME_images/`), plain reads
    /// `DIR/NAME/interactions.{csv,jsonl}` and `items.{csv,jsonl}`.
    #[arg(long, default_value = ".cache/data")]
    data_dir: PathBuf,
    /// Dataset name.
    #[arg(long, default_value = "ml-100k")]
    dataset: String,
    /// File layout: recbole, amazon or plain.
    #[arg(long, default_value = "recbole")]
    format: Format,
}

#[derive(Args, Clone)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Backend: a real GPU if present (auto), wgpu, or the flex CPU backend.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
    /// TOML file with any `TrainConfig` fields (method, backbone, epochs, lr, seed, ...);
    /// flags given on the command line override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: ConfigFlags,
    /// Where the configuration starts, before --config and the flags: the validated defaults
    /// (recommended) or the PerPEFT reference recipe exactly (reference).
    #[arg(long, value_enum, default_value = "recommended")]
    preset: Preset,
    /// Run directory; its parent holds the run registry (`registry.sqlite`).
    #[arg(long, default_value = "runs/default")]
    out: PathBuf,
    /// Continue the run in --out from its last completed epoch, with its recorded configuration
    /// (flags given must agree with it; --epochs may grow).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Replace an existing run of the same name (its directory and registry rows).
    #[arg(long)]
    overwrite: bool,
}

/// The training flags: overrides of `TrainConfig` fields, serialised under the field's path
/// (`TrainConfig::with_overrides`); a flag not given leaves the field as the defaults or the
/// `--config` file set it.
#[derive(Args, Clone, Default, Serialize)]
struct ConfigFlags {
    /// How item embeddings are made [default: id-only].
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// Backbone of multimodal methods [default: minilm].
    #[arg(long, value_enum)]
    backbone: Option<BackboneChoice>,
    /// CLIP directory in the Hugging Face layout (for --backbone clip).
    #[arg(long)]
    clip_dir: Option<PathBuf>,
    /// Epochs at most (of the per-group stage for perpeft) [recommended: 200; reference: 30].
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of initialisation, sampling, dropout and grouping [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// AdamW learning rate of SASRec and the projector [recommended: 2e-3; reference: 1e-3].
    #[arg(long)]
    lr: Option<f64>,
    /// AdamW weight decay of SASRec and the projector [default: 1e-4].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// PEFT method of global-peft and perpeft [default: lora].
    #[arg(long = "peft", value_enum)]
    #[serde(rename = "peft.kind")]
    peft_kind: Option<PeftKind>,
    /// LoRA rank [default: 4].
    #[arg(long = "rank")]
    #[serde(rename = "peft.rank")]
    peft_rank: Option<usize>,
    /// Number of user groups (perpeft) [default: 8].
    #[arg(long)]
    groups: Option<usize>,
    /// Epochs of perpeft's global stage [default: 10]; --epochs counts the per-group stage.
    #[arg(long)]
    global_epochs: Option<usize>,
    /// perpeft: take the global stage from this finished global-peft run instead of training
    /// it: its last epoch (--global-epochs must equal its epochs), or its best with
    /// --global-from-best.
    #[arg(long)]
    global_from: Option<PathBuf>,
    /// perpeft with --global-from: start from that run's best validation epoch (a global run
    /// trained with early stopping) instead of its last.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    global_from_best: bool,
    /// Ablation: random user groups instead of k-means.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    random_groups: bool,
    /// Ablation: uniform negatives over all items in the per-group stage.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    uniform_negatives: bool,
    /// Ablation: global-peft with one LoRA adapter of rank groups × rank.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    large_global: bool,
    /// Ablation: which item-feature halves to use (both, text, image).
    #[arg(long, value_enum)]
    modality: Option<Modality>,
    /// Users' windows per batch [recommended: 128; reference: 16].
    #[arg(long)]
    batch_size: Option<usize>,
    /// SASRec's window length [recommended: 50; reference: 10].
    #[arg(long)]
    max_len: Option<usize>,
    /// SASRec's dropout [0.3].
    #[arg(long)]
    dropout: Option<f64>,
    /// SASRec padding treatment: reference (the PerPEFT code) or standard (masked)
    /// [recommended: standard].
    #[arg(long)]
    mode: Option<Mode>,
    /// Targets per user and epoch: the last window (reference) or all windows [recommended:
    /// all].
    #[arg(long, value_enum)]
    windows: Option<Windows>,
    /// Loss: bce (reference), bpr or ce (softmax) [recommended: ce].
    #[arg(long, value_enum)]
    loss: Option<Loss>,
    /// Sampled negatives: per target position (bce, bpr), or per batch shared by its positions
    /// (ce; 0 = full softmax over every item) [recommended: 0; reference: 1].
    #[arg(long)]
    negatives: Option<usize>,
    /// Early stopping: epochs without a better validation NDCG@20 (0: never) [recommended:
    /// 10; reference: 0].
    #[arg(long)]
    patience: Option<usize>,
    /// perpeft: keep the shared SASRec fixed in the per-group stage.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    freeze_shared: bool,
    /// perpeft (IISAN, --freeze-shared): each group keeps the adapter and projector of its best
    /// epoch on its own users' validation, or the global stage's when no epoch beats it.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    group_select: bool,
}

impl TrainArgs {
    /// The configuration: the preset, then the TOML file, then the flags; with `--resume`, the
    /// run's recorded configuration, then the flags.
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let base = if self.resume {
            RunDir::new(&self.out).read_record()?.train
        } else {
            self.preset.config()
        };
        let base = match &self.config {
            Some(path) => base.with_toml_file(path)?,
            None => base,
        };
        Ok(base.with_overrides(&self.flags)?)
    }
}

#[derive(Args)]
struct RunsArgs {
    /// Runs root (holds `registry.sqlite`).
    #[arg(long, default_value = "runs")]
    root: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    /// Run directory (holds run.json and model.safetensors).
    run: PathBuf,
    /// Data directory (see `train --help`).
    #[arg(long, default_value = ".cache/data")]
    data_dir: PathBuf,
    /// File layout: recbole, amazon or plain.
    #[arg(long, default_value = "recbole")]
    format: Format,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    device: DeviceChoice,
}

#[derive(Args)]
struct ServeArgs {
    /// Runs root: serve every finished run of its registry, and train jobs into it.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Serve only this run directory (its parent is the runs root).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Data directory (see `train --help`).
    #[arg(long, default_value = ".cache/data")]
    data_dir: PathBuf,
    /// File layout of the datasets: recbole, amazon or plain.
    #[arg(long, default_value = "recbole")]
    format: Format,
    /// Queue the demo runs on this dataset that are not finished yet, as jobs: id-only, frozen
    /// MiniLM, global IISAN and PerPEFT-IISAN (K = 8).
    #[arg(long)]
    demo: Option<String>,
    /// Directory of the built front end.
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Backend runs are loaded and trained on.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
    /// File of the bearer token mutating requests need [default: RUNS/api-token]; created with
    /// a random token when missing; PERPEFT_TOKEN overrides it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Where jobs find the MiniLM and EfficientNet weights.
    #[arg(long, default_value = ".cache/weights")]
    weights_dir: PathBuf,
    /// Where jobs cache frozen features and IISAN states.
    #[arg(long, default_value = ".cache")]
    cache_dir: PathBuf,
    /// CLIP directory for jobs with `backbone = "clip"`.
    #[arg(long)]
    clip_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ExportArgs {
    /// Run directory of a global-peft or perpeft run with LoRA or (IA)3.
    run: PathBuf,
    /// The group whose adapter to export (0 for a global-peft run).
    #[arg(long, default_value_t = 0)]
    group: usize,
    /// Directory to write adapter_config.json and adapter_model.safetensors into.
    #[arg(long)]
    out: PathBuf,
    /// Data directory (see `train --help`).
    #[arg(long, default_value = ".cache/data")]
    data_dir: PathBuf,
    /// File layout: recbole, amazon or plain.
    #[arg(long, default_value = "recbole")]
    format: Format,
}

fn load_dataset(args: &DataArgs) -> anyhow::Result<Dataset> {
    let dir = match args.format {
        Format::Amazon => args.data_dir.clone(),
        Format::Recbole | Format::Plain => args.data_dir.join(&args.dataset),
    };
    data::load(args.format, &dir, &args.dataset).with_context(|| {
        format!(
            "loading dataset {} (MovieLens: `python3 scripts/fetch_data.py {}`)",
            args.dataset, args.dataset
        )
    })
}

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let dataset = load_dataset(&args.data)?;
    let resolved = args.device.resolve()?;
    let cfg = args.config()?;
    let model_cfg = cfg.sasrec(dataset.n_items());
    let start = if args.resume {
        Start::Resume
    } else if args.overwrite {
        Start::Overwrite
    } else {
        Start::New
    };
    let clock = std::time::Instant::now();
    let record = perpeft::train::train(&dataset, &model_cfg, &cfg, &resolved, &args.out, start)?;
    let t = record.test;
    println!(
        "trained {} SASRec on {} ({}) in {:.1}s ({:.2}s/epoch); best epoch {} of {}; test HR@10 {:.4} NDCG@10 {:.4} HR@20 {:.4} NDCG@20 {:.4} HR@30 {:.4} NDCG@30 {:.4} ({} users); saved to {}",
        record.method,
        record.dataset,
        record.device,
        clock.elapsed().as_secs_f64(),
        record.seconds_per_epoch(),
        record.best_epoch,
        record.epochs.len(),
        t.hr10,
        t.ndcg10,
        t.hr20,
        t.ndcg20,
        t.hr30,
        t.ndcg30,
        t.users,
        args.out.display()
    );
    if let Some(mib) = record.peak_rss_mib {
        println!("peak resident memory {mib:.0} MiB");
    }
    if let (Some((pop, _)), Some(beats), Some(best)) =
        (&record.popularity, record.beats_popularity(), record.best())
    {
        let best = &best.valid;
        if beats {
            println!(
                "beats the popularity baseline on validation: NDCG@20 {:.4} vs {:.4}",
                best.ndcg20, pop.ndcg20
            );
        } else {
            println!(
                "WARNING: this model does NOT beat the popularity baseline on validation \
                 (NDCG@20 {:.4} vs popularity {:.4}): recommend by popularity instead, or train \
                 longer or differently",
                best.ndcg20, pop.ndcg20
            );
        }
    }
    Ok(())
}

/// Run directory `run` and the dataset its record names, from `data_dir` in `format`.
fn open_run(run: &Path, data_dir: &Path, format: Format) -> anyhow::Result<(RunDir, Dataset)> {
    let dir = RunDir::new(run);
    let record = dir.read_record()?;
    let dataset = load_dataset(&DataArgs {
        data_dir: data_dir.to_path_buf(),
        dataset: record.dataset.clone(),
        format,
    })?;
    Ok((dir, dataset))
}

fn eval_cmd(args: &EvalArgs) -> anyhow::Result<()> {
    let resolved = args.device.resolve()?;
    let (dir, dataset) = open_run(&args.run, &args.data_dir, args.format)?;
    let e = evaluate_run(&dir, &dataset, &resolved.device)?;
    let record = &e.record;
    println!(
        "run        {} ({} on {}, seed {}, best epoch {})",
        args.run.display(),
        record.method,
        record.dataset,
        record.train.seed,
        record.best_epoch
    );
    println!(
        "{:<10} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8} {:>6}",
        "", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "HR@30", "NDCG@30", "users"
    );
    for (name, m) in [
        ("valid", e.valid),
        ("test", e.test),
        ("recorded", record.test),
    ] {
        println!(
            "{name:<10} {:>7.4} {:>8.4} {:>7.4} {:>8.4} {:>7.4} {:>8.4} {:>6}",
            m.hr10, m.ndcg10, m.hr20, m.ndcg20, m.hr30, m.ndcg30, m.users
        );
    }
    if e.per_group.len() > 1 {
        println!("per group (each user scored with their group's item table):");
        for (g, (v, t)) in e.per_group.iter().enumerate() {
            println!(
                "group {g:<4} valid NDCG@20 {:.4}  test HR@10 {:.4} NDCG@10 {:.4} HR@20 {:.4} NDCG@20 {:.4}  ({} users)",
                v.ndcg20, t.hr10, t.ndcg10, t.hr20, t.ndcg20, t.users
            );
        }
    }
    println!(
        "full ranking on {}: {:.0} users/s",
        resolved.name, e.users_per_s
    );
    Ok(())
}

async fn serve_cmd(args: ServeArgs) -> anyhow::Result<()> {
    if !args.dist.join("index.html").exists() {
        anyhow::bail!(
            "{} has no index.html: build the front end first (scripts/build-frontend.sh)",
            args.dist.display()
        );
    }
    let resolved = args.device.resolve()?;
    let data = DataSource {
        dir: args.data_dir.clone(),
        format: args.format,
    };
    let catalog = Arc::new(match &args.model {
        Some(dir) => {
            let dir = RunDir::new(dir);
            if !dir.has_model() {
                anyhow::bail!(
                    "no model in {} (train one with `perpeft train --out {}`)",
                    dir.path().display(),
                    dir.path().display()
                );
            }
            Catalog::single(&dir, data, resolved.device.clone())
        }
        None => Catalog::new(&args.runs, data, resolved.device.clone()),
    });
    let settings = JobSettings {
        device: resolved.clone(),
        weights_dir: args.weights_dir.clone(),
        cache_dir: args.cache_dir.clone(),
        clip_dir: args.clip_dir.clone(),
    };
    let jobs = Jobs::start(catalog.clone(), settings)?;
    let token_file = args
        .token_file
        .clone()
        .unwrap_or_else(|| catalog.root().join("api-token"));
    let (token, source) = load_token(&token_file, std::env::var(TOKEN_ENV).ok())?;
    match source {
        TokenSource::Env => println!("bearer token for jobs: from {TOKEN_ENV}"),
        TokenSource::File(f) => println!("bearer token for jobs: in {}", f.display()),
        TokenSource::Created(f) => println!("bearer token for jobs: created in {}", f.display()),
    }
    if let Some(dataset) = &args.demo {
        let queued = jobs.submit_demo(dataset)?;
        println!(
            "demo runs on {dataset}: {} queued ({})",
            queued.len(),
            queued
                .iter()
                .map(|j| j.run.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let listener = tokio::net::TcpListener::bind((args.host, args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let finished = catalog
        .runs()?
        .iter()
        .filter(|r| r.status == shared::api::RunStatus::Finished)
        .count();
    println!(
        "serving the runs of {} ({finished} finished), loaded and trained on {}",
        catalog.root().display(),
        resolved.name
    );
    println!("PerPEFT Studio is serving at http://{addr}/");
    let state = AppState::new(catalog, jobs, token, resolved.name);
    serve(listener, router(state, &args.dist)).await?;
    Ok(())
}

fn export_cmd(args: &ExportArgs) -> anyhow::Result<()> {
    let (dir, dataset) = open_run(&args.run, &args.data_dir, args.format)?;
    let device = burn::tensor::Device::flex();
    let adapter = perpeft::export::hf_adapter(&dir, &dataset, args.group, &device)?;
    perpeft::export::write(&adapter, &args.out)?;
    println!(
        "wrote group {}'s adapter of {} to {} (adapter_config.json, adapter_model.safetensors)",
        args.group,
        args.run.display(),
        args.out.display()
    );
    Ok(())
}

/// The registry's runs as a Markdown table.
fn runs_table(rows: &[RunRow]) -> String {
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

/// `perpeft bench encode`'s rows as a Markdown table.
fn bench_table(rows: &[perpeft::bench::Row]) -> String {
    let mut s = String::from(
        "| device | encoder + adapter | batch | trainable params | forward items/s | fwd+bwd+step items/s |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} |\n",
            r.device, r.case, r.batch, r.trainable, r.infer_items_s, r.train_items_s
        ));
    }
    s
}

/// Keeps freed memory in the process. glibc serves allocations above its mmap threshold (128 KiB
/// at first) with fresh pages from the OS and returns them on free; a training step allocates and
/// frees hundreds of activation tensors of a few MiB, so each is page-faulted and zeroed anew,
/// which cost 20–30% of a MiniLM step on the CPU backend (docs/PERFORMANCE.md). With the
/// threshold at its maximum (32 MiB) and trimming only above 2 GiB free, they are reused.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
    };
    if !ok {
        eprintln!("warning: glibc refused the allocator settings; training may be slower");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    if let Some(n) = std::env::var_os("PERPEFT_KILL_IN_WRITE") {
        eprintln!(
            "WARNING: PERPEFT_KILL_IN_WRITE={} is set: this process kills itself in that write (crash tests only)",
            n.to_string_lossy()
        );
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wgpu_core=warn,wgpu_hal=warn,naga=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => eval_cmd(&args),
        Command::Export(args) => export_cmd(&args),
        Command::Bench {
            command: BenchCommand::Encode(args),
        } => {
            let devices = if args.device.is_empty() {
                let mut d = vec![DeviceChoice::Flex];
                if DeviceChoice::Auto.resolve()?.name == "wgpu" {
                    d.push(DeviceChoice::Auto);
                }
                d
            } else {
                args.device.clone()
            };
            let rows = perpeft::bench::encode(
                &devices,
                args.batch,
                args.tokens,
                args.reps,
                args.only.as_deref(),
                args.lora_dropout,
            )?;
            print!("{}", bench_table(&rows));
            Ok(())
        }
        Command::Data {
            command: DataCommand::Stats(args),
        } => {
            let d = load_dataset(&args)?;
            let s = d.stats();
            println!("dataset       {}", args.dataset);
            println!("users         {}", s.users);
            println!("items         {}", s.items);
            println!("interactions  {}", s.interactions);
            println!("avg length    {:.4}", s.avg_len);
            println!("density       {:.6}", s.density);
            println!(
                "with image    {}",
                d.items.iter().filter(|i| i.image.is_some()).count()
            );
            println!("missing image {}", d.report.missing_images);
            println!("no title      {}", d.report.missing_titles);
            println!("checksum      {}", d.checksum);
            Ok(())
        }
        Command::Runs(args) => {
            let registry = Registry::open(&args.root)?;
            print!("{}", runs_table(&registry.list()?));
            Ok(())
        }
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve_cmd(args)),
    }
}

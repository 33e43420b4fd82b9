//! The `perpeft` command: `train`, `serve`, `data stats`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use perpeft::api::{AppState, router, serve};
use perpeft::data::Split;
use perpeft::data::{self, Dataset, Format};
use perpeft::device::DeviceChoice;
use perpeft::engine::Engine;
use perpeft::eval::{Phase, evaluate_grouped};
use perpeft::peft::PeftKind;
use perpeft::rec::SasRecConfig;
use perpeft::rec::sasrec::Mode;
use perpeft::store;
use perpeft::train::{BackboneChoice, Method, Modality, Start, TrainConfig};

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
    /// Train an ID-only SASRec and save the best-validation model.
    Train(TrainArgs),
    /// Re-evaluate a saved run on its dataset (checksum-verified) and print its metrics.
    Eval(EvalArgs),
    /// Serve the API and the built front end.
    Serve(ServeArgs),
    /// List the runs of a registry as a table.
    Runs(RunsArgs),
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
    /// How item embeddings are made [default: id-only].
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// Backbone of multimodal methods [default: minilm].
    #[arg(long, value_enum)]
    backbone: Option<BackboneChoice>,
    /// CLIP directory in the Hugging Face layout (for --backbone clip).
    #[arg(long)]
    clip_dir: Option<PathBuf>,
    /// Epochs [default: 30].
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of initialisation, sampling and dropout [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// AdamW learning rate of SASRec and the projector [default: 1e-3].
    #[arg(long)]
    lr: Option<f64>,
    /// AdamW weight decay of SASRec and the projector [default: 1e-4].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// PEFT method of global-peft and perpeft [default: lora].
    #[arg(long, value_enum)]
    peft: Option<PeftKind>,
    /// LoRA rank [default: 4].
    #[arg(long)]
    rank: Option<usize>,
    /// Number of user groups (perpeft) [default: 8].
    #[arg(long)]
    groups: Option<usize>,
    /// Epochs of perpeft's global stage [default: 10]; --epochs counts the per-group stage.
    #[arg(long)]
    global_epochs: Option<usize>,
    /// perpeft: take the global stage from this finished global-peft run (its last epoch;
    /// --global-epochs must equal its epochs) instead of training it.
    #[arg(long)]
    global_from: Option<PathBuf>,
    /// Ablation: random user groups instead of k-means.
    #[arg(long)]
    random_groups: bool,
    /// Ablation: uniform negatives over all items in the per-group stage.
    #[arg(long)]
    uniform_negatives: bool,
    /// Ablation: global-peft with one LoRA adapter of rank groups × rank.
    #[arg(long)]
    large_global: bool,
    /// Ablation: which item-feature halves to use (both, text, image).
    #[arg(long, value_enum)]
    modality: Option<Modality>,
    /// SASRec padding treatment: reference (the PerPEFT code) or standard (masked).
    #[arg(long, default_value = "reference")]
    mode: Mode,
    /// Run directory; its parent holds the run registry (`registry.sqlite`).
    #[arg(long, default_value = "runs/default")]
    out: PathBuf,
    /// Continue the run in --out from its last completed epoch (same flags; --epochs may grow).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Replace an existing run of the same name (its directory and registry rows).
    #[arg(long)]
    overwrite: bool,
}

impl TrainArgs {
    /// The configuration: defaults, then the TOML file, then the flags.
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let mut cfg = match &self.config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        if let Some(v) = self.method {
            cfg.method = v;
        }
        if let Some(v) = self.backbone {
            cfg.backbone = v;
        }
        if let Some(v) = &self.clip_dir {
            cfg.clip_dir = Some(v.clone());
        }
        if let Some(v) = self.epochs {
            cfg.epochs = v;
        }
        if let Some(v) = self.seed {
            cfg.seed = v;
        }
        if let Some(v) = self.lr {
            cfg.lr = v;
        }
        if let Some(v) = self.weight_decay {
            cfg.weight_decay = v;
        }
        if let Some(v) = self.peft {
            cfg.peft.kind = v;
        }
        if let Some(v) = self.rank {
            cfg.peft.rank = v;
        }
        if let Some(v) = self.groups {
            cfg.groups = v;
        }
        if let Some(v) = self.global_epochs {
            cfg.global_epochs = v;
        }
        if let Some(v) = &self.global_from {
            cfg.global_from = Some(v.clone());
        }
        cfg.random_groups |= self.random_groups;
        cfg.uniform_negatives |= self.uniform_negatives;
        cfg.large_global |= self.large_global;
        if let Some(v) = self.modality {
            cfg.modality = v;
        }
        Ok(cfg)
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
    #[command(flatten)]
    data: DataArgs,
    /// Run directory of the model to serve.
    #[arg(long, default_value = "runs/default")]
    model: PathBuf,
    /// Serve instead the finished run on --dataset with the best validation NDCG@20 in the
    /// registry of this runs root.
    #[arg(long)]
    best_of: Option<PathBuf>,
    /// Directory of the built front end.
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Train the default model first when the run directory has none.
    #[arg(long)]
    train_if_missing: bool,
    /// Backend used when training is needed.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
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
    let model_cfg = SasRecConfig::new(dataset.n_items()).with_mode(args.mode);
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
    Ok(())
}

fn eval_cmd(args: &EvalArgs) -> anyhow::Result<()> {
    let resolved = args.device.resolve()?;
    let (model, tables, record) = store::load(&args.run, &resolved.device)?;
    let dataset = load_dataset(&DataArgs {
        data_dir: args.data_dir.clone(),
        dataset: record.dataset.clone(),
        format: args.format,
    })?;
    if dataset.checksum != record.dataset_checksum {
        anyhow::bail!(
            "{} was trained on data with checksum {}, the data on disk has {}",
            args.run.display(),
            record.dataset_checksum,
            dataset.checksum
        );
    }
    let split = Split::leave_one_out(&dataset.sequences);
    let clock = std::time::Instant::now();
    let assignment = if tables.len() > 1 {
        store::read_groups(&args.run)?.assignment
    } else {
        vec![0; dataset.n_users()]
    };
    let (valid, valid_groups) =
        evaluate_grouped(&model, &tables, &assignment, &split, Phase::Valid);
    let (test, test_groups) = evaluate_grouped(&model, &tables, &assignment, &split, Phase::Test);
    let users_per_s = (valid.users + test.users) as f64 / clock.elapsed().as_secs_f64();
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
    for (name, m) in [("valid", valid), ("test", test), ("recorded", record.test)] {
        println!(
            "{name:<10} {:>7.4} {:>8.4} {:>7.4} {:>8.4} {:>7.4} {:>8.4} {:>6}",
            m.hr10, m.ndcg10, m.hr20, m.ndcg20, m.hr30, m.ndcg30, m.users
        );
    }
    if tables.len() > 1 {
        println!("per group (each user scored with their group's item table):");
        for (g, (v, t)) in valid_groups.iter().zip(&test_groups).enumerate() {
            println!(
                "group {g:<4} valid NDCG@20 {:.4}  test HR@10 {:.4} NDCG@10 {:.4} HR@20 {:.4} NDCG@20 {:.4}  ({} users)",
                v.ndcg20, t.hr10, t.ndcg10, t.hr20, t.ndcg20, t.users
            );
        }
    }
    println!(
        "full ranking on {}: {users_per_s:.0} users/s",
        resolved.name
    );
    Ok(())
}

fn has_model(dir: &Path) -> bool {
    dir.join(store::MODEL_FILE).exists() && dir.join(store::RECORD_FILE).exists()
}

async fn serve_cmd(mut args: ServeArgs) -> anyhow::Result<()> {
    if let Some(root) = &args.best_of {
        let registry = store::Registry::open(root)?;
        let (name, dir) = registry.best_run(&args.data.dataset)?.with_context(|| {
            format!(
                "{} has no finished run on {}",
                registry.path().display(),
                args.data.dataset
            )
        })?;
        println!(
            "serving {name}, the best run on {} by validation NDCG@20",
            args.data.dataset
        );
        args.model = dir;
    }
    if !has_model(&args.model) {
        if !args.train_if_missing {
            anyhow::bail!(
                "no model in {} (train one with `perpeft train --out {}` or pass --train-if-missing)",
                args.model.display(),
                args.model.display()
            );
        }
        let train_args = TrainArgs {
            data: args.data.clone(),
            device: args.device,
            config: None,
            method: None,
            backbone: None,
            clip_dir: None,
            epochs: None,
            seed: None,
            lr: None,
            weight_decay: None,
            peft: None,
            rank: None,
            groups: None,
            global_epochs: None,
            global_from: None,
            random_groups: false,
            uniform_negatives: false,
            large_global: false,
            modality: None,
            mode: Mode::Reference,
            out: args.model.clone(),
            resume: false,
            overwrite: true,
        };
        tokio::task::spawn_blocking(move || train(&train_args)).await??;
    }
    if !args.dist.join("index.html").exists() {
        anyhow::bail!(
            "{} has no index.html: build the front end first (scripts/build-frontend.sh)",
            args.dist.display()
        );
    }
    let dataset = load_dataset(&args.data)?;
    let device = burn::tensor::Device::flex();
    let (model, mut tables, record) = store::load(&args.model, &device)?;
    if tables.len() > 1 {
        anyhow::bail!(
            "{} is a per-group (PerPEFT) run; the web app serves single-table runs for now (use `perpeft eval` for its per-group metrics)",
            args.model.display()
        );
    }
    let engine = Engine::new(dataset, &model, tables.remove(0), record)?;
    let listener = tokio::net::TcpListener::bind((args.host, args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    println!("PerPEFT Studio is serving at http://{addr}/");
    serve(listener, router(AppState::new(engine), &args.dist)).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
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
            )?;
            print!("{}", perpeft::bench::table(&rows));
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
            let registry = store::Registry::open(&args.root)?;
            print!("{}", store::runs_table(&registry.list()?));
            Ok(())
        }
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve_cmd(args)),
    }
}

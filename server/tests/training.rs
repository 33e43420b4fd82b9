//! Training runs end to end: a run killed mid-way (an ID-only run between epochs, a PerPEFT run
//! in its global stage, right after grouping or inside a write) resumes to exactly the result of an
//! uninterrupted one; the frozen baseline caches its features and trains on them; the
//! batch-local item table is the full table restricted to the batch; configuration files and
//! the registry behave.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burn::prelude::*;
use perpeft::config::{BackboneChoice, Method, TrainConfig};
use perpeft::data::sampler::Sampler;
use perpeft::device::DeviceChoice;
use perpeft::rec::loss::bce_loss;
use perpeft::rec::{Projector, Recommender, SasRecConfig};
use perpeft::store::{Registry, RunDir};
use perpeft::train::{LocalBatch, Start, batch_tensors, train};

fn data_dir() -> PathBuf {
    std::env::var_os("PERPEFT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/data"))
}

fn perpeft(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_perpeft"));
    cmd.args(args).env("RUST_LOG", "warn");
    if args[0] == "train" {
        cmd.arg("--data-dir").arg(data_dir());
    }
    cmd
}

fn completed_epochs(root: &Path, name: &str) -> usize {
    let Ok(registry) = Registry::open(root) else {
        return 0;
    };
    match registry.run_id(name) {
        Ok(Some(id)) => registry.epochs(id).map(|e| e.len()).unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let root = common::scratch("resume");
    let epochs = "6";
    let common = ["--device", "flex", "--epochs", epochs, "--seed", "5"];
    let straight = root.join("straight");
    let status = perpeft(&["train", "--out", straight.to_str().unwrap()])
        .args(common)
        .status()
        .unwrap();
    assert!(status.success());

    // start the same run, kill it (SIGKILL) once two epochs are recorded
    let killed = root.join("killed");
    let mut child = perpeft(&["train", "--out", killed.to_str().unwrap()])
        .args(common)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed_epochs(&root, "killed") < 2 {
        assert!(Instant::now() < deadline, "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = completed_epochs(&root, "killed");
    assert!((2..6).contains(&done), "killed after {done} epochs");
    // the same name without --resume is refused, naming the way out
    let out = perpeft(&["train", "--out", killed.to_str().unwrap()])
        .args(common)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));

    let status = perpeft(&["train", "--resume", "--out", killed.to_str().unwrap()])
        .args(common)
        .status()
        .unwrap();
    assert!(status.success());

    let (straight, killed) = (RunDir::new(&straight), RunDir::new(&killed));
    let a = straight.read_record().unwrap();
    let b = killed.read_record().unwrap();
    assert_eq!(b.epochs.len(), 6);
    // the process's peak memory is kept (a burn process on ml-100k takes tens of MiB at least;
    // getrusage's peak is read on Linux only)
    for r in [&a, &b].into_iter().filter(|_| cfg!(target_os = "linux")) {
        let mib = r.peak_rss_mib.expect("peak memory recorded");
        assert!((20.0..100_000.0).contains(&mib), "{mib} MiB");
    }
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(
            (x.loss, x.valid, x.test),
            (y.loss, y.valid, y.test),
            "epoch {}",
            x.epoch
        );
    }
    assert_eq!((a.best_epoch, a.test), (b.best_epoch, b.test));
    for file in [RunDir::model_file, RunDir::tables_file] {
        let (x, y) = (file(&straight), file(&killed));
        assert_eq!(
            common::safetensors_tensors(&x),
            common::safetensors_tensors(&y),
            "{} differs",
            x.display()
        );
    }
    // the registry lists both as finished
    let out = perpeft(&["runs", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.matches("| finished | 6/6 |").count(), 2, "{table}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A frozen run over the small CLIP fixture (text only: the synthetic items have no images).
#[test]
fn frozen_features_are_cached_and_a_frozen_run_resumes_exactly() {
    let _rng = common::rng_lock();
    let root = common::scratch("frozen");
    let dataset = common::synthetic_dataset(120, 60, 3);
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let cfg = TrainConfig {
        method: Method::Frozen,
        backbone: BackboneChoice::Clip,
        clip_dir: Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backbones/clip-small"),
        ),
        cache_dir: root.join("cache"),
        epochs: 3,
        ..TrainConfig::default()
    };
    let model_cfg = SasRecConfig::new(60);
    let straight = common::new_run(&dataset, &model_cfg, &cfg, &root.join("a"));
    let cached = std::fs::read_dir(root.join("cache/features"))
        .unwrap()
        .count();
    assert_eq!(
        cached, 1,
        "one feature table, keyed by backbone and dataset"
    );
    let registry = Registry::open(&root).unwrap();
    let id = registry.run_id("a").unwrap().unwrap();
    let kinds: Vec<String> = registry
        .artifacts(id)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for kind in [
        "features",
        "model",
        "item_table",
        "recommender",
        "checkpoint",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} not recorded: {kinds:?}"
        );
    }

    common::assert_resume_matches(&dataset, &model_cfg, &cfg, &root.join("b"), &straight);
    // the registry's best run on the dataset (what `serve --best-of` serves): a and b tie,
    // the older wins
    let (best, dir) = registry.best_run("synthetic").unwrap().unwrap();
    assert_eq!((best.as_str(), dir), ("a", root.join("a")));
    assert!(registry.best_run("ml-100k").unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(root.join("cache/features"))
            .unwrap()
            .count(),
        1
    );
    // a changed configuration cannot be resumed into
    let other = TrainConfig {
        lr: 0.5,
        ..cfg.clone()
    };
    let err = train(
        &dataset,
        &model_cfg,
        &other,
        &resolved,
        &root.join("b"),
        Start::Resume,
    )
    .unwrap_err();
    assert!(err.to_string().contains("different configuration"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_batch_local_table_gives_the_full_table_loss() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    device.seed(4);
    let split = common::synthetic_split(40, 50, 8);
    let sampler = Sampler::new(&split.train, 50, 10, 16, 1);
    let batch = &sampler.epoch(1)[0];
    let local = LocalBatch::new(batch);
    assert_eq!(local.items[0], 0);
    assert!(local.items.windows(2).all(|w| w[0] < w[1]));
    let features = Tensor::<2>::random(
        [51, 12],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let model = Recommender::new(
        SasRecConfig::new(50).with_dropout(0.0).init(&device),
        Some(Projector::new(12, 32, &device)),
    );
    let (seq, pos, neg) = batch_tensors(batch, &device);
    let full = bce_loss(
        &model.sasrec,
        model.table(Some(features.clone())),
        seq,
        pos,
        neg,
    );
    let t = local.tensors(&device);
    let rows = features.select(0, t.items.clone());
    let part = bce_loss(
        &model.sasrec,
        model.table_rows(Some(rows), t.items),
        t.seq,
        t.pos,
        t.neg.unwrap(),
    );
    let (a, b): (f32, f32) = (full.into_scalar(), part.into_scalar());
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
}

#[test]
fn configuration_files_are_read_strictly() {
    let dir = common::scratch("config");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "method = \"frozen\"\nepochs = 7\nlr = 0.0005\n").unwrap();
    let cfg = TrainConfig::from_toml_file(&good).unwrap();
    assert_eq!((cfg.method, cfg.epochs, cfg.lr), (Method::Frozen, 7, 5e-4));
    assert_eq!(cfg.batch_size, 16, "unspecified fields keep their defaults");
    // over the recommended preset: the file's fields win, the preset keeps the rest
    let over = TrainConfig::recommended().with_toml_file(&good).unwrap();
    assert_eq!(
        (over.method, over.epochs, over.lr),
        (Method::Frozen, 7, 5e-4)
    );
    let rec = TrainConfig::recommended();
    assert_eq!(
        (over.batch_size, over.windows, over.loss, over.max_len),
        (rec.batch_size, rec.windows, rec.loss, rec.max_len)
    );
    assert_ne!(
        rec.batch_size, 16,
        "the presets differ where this test looks"
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "method = \"frozen\"\nepoch = 7\n").unwrap();
    let err = TrainConfig::from_toml_file(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.toml") && err.contains("epoch"), "{err}");
    let err = TrainConfig::recommended()
        .with_toml_file(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.toml") && err.contains("epoch"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The plain-format synthetic data, a PerPEFT-IISAN configuration over the small CLIP, and the
/// `perpeft train` command line for run `name` under `root/runs/`.
struct KillableRun {
    root: PathBuf,
}

impl KillableRun {
    fn new(root: PathBuf) -> Self {
        // enough users that the global stage and an epoch last long enough to be killed in
        let dataset = common::synthetic_dataset(1000, 200, 31);
        common::write_plain(&dataset, &root.join("data"));
        let config = format!(
            "method = \"perpeft\"\nbackbone = \"clip\"\nclip_dir = {:?}\ncache_dir = {:?}\n\
             groups = 3\nglobal_epochs = 6\nepochs = 2\nseed = 9\n[peft]\nkind = \"iisan\"\n",
            common::clip_dir(),
            root.join("cache")
        );
        std::fs::write(root.join("perpeft.toml"), config).unwrap();
        Self { root }
    }

    fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    fn train(&self, name: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_perpeft"));
        cmd.args([
            "train",
            "--format",
            "plain",
            "--dataset",
            "synthetic",
            "--device",
            "flex",
        ])
        .arg("--data-dir")
        .arg(self.root.join("data"))
        .arg("--config")
        .arg(self.root.join("perpeft.toml"))
        .arg("--out")
        .arg(self.runs().join(name))
        .env("RUST_LOG", "warn");
        cmd
    }
}

/// A PerPEFT run killed with SIGKILL in its global stage, after grouping but before its first
/// per-group epoch is recorded, or half-way through writing a global-stage checkpoint, resumes
/// with `--resume` to the run an uninterrupted one gives: the same groups, global model,
/// adapters, best-epoch files and per-epoch figures, and no temporary file left behind.
#[test]
fn a_perpeft_run_killed_in_any_stage_resumes_to_the_same_run() {
    let run = KillableRun::new(common::scratch("perpeft-kill"));
    std::fs::create_dir_all(run.runs()).unwrap();
    assert!(run.train("straight").status().unwrap().success());
    let want = RunDir::new(run.runs().join("straight"));
    let registered = |name: &str| {
        Registry::open(&run.runs())
            .ok()
            .and_then(|r| r.run_id(name).ok().flatten())
            .is_some()
    };
    for stage in ["global", "grouped", "in-write"] {
        let dir = RunDir::new(run.runs().join(stage));
        if stage == "in-write" {
            // the process stops itself half-way through its 9th atomic write (a global-stage
            // checkpoint), as a kill inside the write would
            let out = run
                .train(stage)
                .env("PERPEFT_KILL_IN_WRITE", "9")
                .output()
                .unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(out.status.signal(), Some(9), "{stage}: {:?}", out.status);
            let err = String::from_utf8_lossy(&out.stderr);
            let killed_in = err
                .lines()
                .find_map(|l| l.strip_prefix("PERPEFT_KILL_IN_WRITE: killed in write 9: "))
                .unwrap_or_else(|| panic!("{stage}: {err}"));
            // the 9th write is global epoch 2's checkpoint (run.json, then 4 files an epoch:
            // model, optimisers, marker), the IISAN states being cached by `straight` already
            let name = Path::new(killed_in).file_name().unwrap().to_string_lossy();
            assert!(
                Path::new(killed_in).starts_with(dir.checkpoint_dir())
                    && name.starts_with("global-2."),
                "{stage}: killed writing {killed_in}"
            );
            assert_eq!(
                temporaries(dir.path()).len(),
                1,
                "{stage}: a half-written file"
            );
            // what the resume goes on from: global epoch 1 (epoch 2's checkpoint is unmarked)
            assert_eq!(
                dir.last_global_checkpoint().unwrap().map(|(e, _)| e),
                Some(1),
                "{stage}"
            );
        } else {
            kill_in(&run, stage, &dir, registered);
        }
        assert_eq!(completed_epochs(&run.runs(), stage), 0, "{stage}");
        assert_eq!(dir.groups_file().exists(), stage == "grouped", "{stage}");

        let status = run.train(stage).arg("--resume").status().unwrap();
        assert!(status.success(), "{stage}: resume failed");
        assert_eq!(temporaries(dir.path()), Vec::<PathBuf>::new(), "{stage}");
        let (a, b) = (want.read_record().unwrap(), dir.read_record().unwrap());
        assert_eq!(
            common::epoch_metrics(&a.epochs),
            common::epoch_metrics(&b.epochs),
            "{stage}"
        );
        assert_eq!((a.best_epoch, a.test), (b.best_epoch, b.test));
        assert_eq!((a.groups, a.best_groups), (b.groups, b.best_groups));
        assert_eq!(dir.read_groups().unwrap(), want.read_groups().unwrap());
        for (x, y) in [
            (dir.global().model_file(), want.global().model_file()),
            (dir.global().tables_file(), want.global().tables_file()),
            (dir.model_file(), want.model_file()),
            (dir.tables_file(), want.tables_file()),
        ] {
            assert_eq!(
                common::safetensors_tensors(&x),
                common::safetensors_tensors(&y),
                "{stage}: {}",
                x.display()
            );
        }
        let adapters = common::pack_tensors(&dir.adapters_file());
        assert!(!adapters.is_empty());
        assert_eq!(
            adapters,
            common::pack_tensors(&want.adapters_file()),
            "{stage}"
        );
    }
    std::fs::remove_dir_all(&run.root).unwrap();
}

/// Starts run `stage` and SIGKILLs it: in its global stage ("global") or once it has grouped
/// its users ("grouped").
fn kill_in(run: &KillableRun, stage: &str, dir: &RunDir, registered: impl Fn(&str) -> bool) {
    let mut child = run.train(stage).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut since_registered = None;
    loop {
        assert!(Instant::now() < deadline, "{stage}: no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{stage}: finished before it could be killed"
        );
        let due = match stage {
            // registered, then well inside the global stage (no groups yet)
            "global" => {
                if since_registered.is_none() && registered(stage) {
                    since_registered = Some(Instant::now());
                }
                since_registered.is_some_and(|t| t.elapsed() > Duration::from_millis(300))
            }
            _ => dir.groups_file().exists(),
        };
        if due {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The temporary files of atomic writes under `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains(".tmp-") {
                out.push(path);
            }
        }
    }
    out
}

//! Training runs end to end: a run killed mid-way resumes to exactly the result of an
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
        t.neg,
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
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "method = \"frozen\"\nepoch = 7\n").unwrap();
    let err = TrainConfig::from_toml_file(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.toml") && err.contains("epoch"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

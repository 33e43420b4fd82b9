//! Synthetic data for the server's integration tests (seeded, no files needed).

use perpeft::data::{Dataset, ItemMeta, Split};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `users` random sequences over `1..=n_items`, lengths 1..=25, seeded.
#[allow(dead_code)] // not every test binary that includes `common` uses it
pub fn synthetic_split(users: usize, n_items: u32, seed: u64) -> Split {
    let mut rng = StdRng::seed_from_u64(seed);
    let seqs: Vec<Vec<u32>> = (0..users)
        .map(|_| {
            let n = rng.random_range(1..=25);
            (0..n).map(|_| rng.random_range(1..=n_items)).collect()
        })
        .collect();
    Split::leave_one_out(&seqs)
}

/// An in-memory dataset named `name`: items `1..=n_items` titled by their id, one user per
/// sequence (`users[i]` owns `sequences[i]`).
#[allow(dead_code)] // not every test binary that includes `common` uses it
pub fn dataset(name: &str, users: Vec<String>, sequences: Vec<Vec<u32>>, n_items: u32) -> Dataset {
    let items = (1..=n_items)
        .map(|i| ItemMeta {
            raw_id: i.to_string(),
            title: format!("item {i}"),
            text: format!("item {i}"),
            categories: vec![format!("c{}", i % 4)],
            image: None,
        })
        .collect();
    Dataset::new(
        name,
        users,
        items,
        sequences,
        "0".repeat(64),
        Default::default(),
    )
}

/// A dataset of `users` random sequences (train + valid + test of [`synthetic_split`]) over
/// `n_items` items, named `synthetic`.
#[allow(dead_code)]
pub fn synthetic_dataset(users: usize, n_items: u32, seed: u64) -> Dataset {
    let split = synthetic_split(users, n_items, seed);
    let sequences: Vec<Vec<u32>> = (0..users)
        .map(|u| {
            let mut s = split.train[u].clone();
            s.extend(split.valid[u]);
            s.extend(split.test[u]);
            s
        })
        .collect();
    let ids = (0..users).map(|u| format!("u{u}")).collect();
    dataset("synthetic", ids, sequences, n_items)
}

/// Serialises the tests of a test binary that seed or draw from burn's random number
/// generator: it is one per process, so a test that builds a module (initialisation draws,
/// even before weights are loaded over it) or trains on another thread would interleave its
/// draws with a training run's and break the exact-equality tests (resume, reuse, re-evaluation).
/// Every such test holds this lock for its whole body.
#[allow(dead_code)]
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Epoch records without their wall-clock timings.
#[allow(dead_code)]
pub fn epoch_metrics(
    epochs: &[perpeft::config::EpochRecord],
) -> Vec<(usize, f64, shared::api::Metrics, shared::api::Metrics)> {
    epochs
        .iter()
        .map(|e| (e.epoch, e.loss, e.valid, e.test))
        .collect()
}

/// Trains `cfg` for one epoch less into `dir`, resumes it to `cfg.epochs`, and checks it ends
/// exactly where `straight` (the same configuration, uninterrupted) ended.
#[allow(dead_code)]
pub fn assert_resume_matches(
    dataset: &Dataset,
    model_cfg: &perpeft::rec::SasRecConfig,
    cfg: &perpeft::config::TrainConfig,
    dir: &std::path::Path,
    straight: &perpeft::config::RunRecord,
) {
    use perpeft::config::TrainConfig;
    use perpeft::train::{Start, train};
    let resolved = perpeft::device::DeviceChoice::Flex.resolve().unwrap();
    let shorter = TrainConfig {
        epochs: cfg.epochs - 1,
        ..cfg.clone()
    };
    new_run(dataset, model_cfg, &shorter, dir);
    let resumed = train(dataset, model_cfg, cfg, &resolved, dir, Start::Resume).unwrap();
    assert_eq!(
        epoch_metrics(&resumed.epochs),
        epoch_metrics(&straight.epochs)
    );
}

/// A fresh scratch directory for one test process (removed first if a previous run left it).
#[allow(dead_code)]
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("perpeft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Trains a new run into `dir` on flex (panics on error).
#[allow(dead_code)]
pub fn new_run(
    dataset: &Dataset,
    model_cfg: &perpeft::rec::SasRecConfig,
    cfg: &perpeft::config::TrainConfig,
    dir: &std::path::Path,
) -> perpeft::config::RunRecord {
    let resolved = perpeft::device::DeviceChoice::Flex.resolve().unwrap();
    perpeft::train::train(
        dataset,
        model_cfg,
        cfg,
        &resolved,
        dir,
        perpeft::train::Start::New,
    )
    .unwrap()
}

/// Every tensor of a safetensors file by name: its shape and raw bytes (the header's order
/// may differ between equal files).
#[allow(dead_code)]
pub fn safetensors_tensors(
    path: &std::path::Path,
) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(name, t)| (name.to_string(), (t.shape().to_vec(), t.data().to_vec())))
        .collect()
}

/// The small random CLIP fixture (the same structure as ViT-B/32, tiny widths).
#[allow(dead_code)]
pub fn clip_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backbones/clip-small")
}

/// A short PerPEFT configuration over the small CLIP: 3 groups, 1 global epoch, 2 per-group
/// epochs, caches under `root`.
#[allow(dead_code)]
pub fn perpeft_config(
    kind: perpeft::config::PeftKind,
    root: &std::path::Path,
) -> perpeft::config::TrainConfig {
    use perpeft::config::{BackboneChoice, Method, PeftConfig, TrainConfig};
    TrainConfig {
        method: Method::Perpeft,
        backbone: BackboneChoice::Clip,
        clip_dir: Some(clip_dir()),
        cache_dir: root.join("cache"),
        peft: PeftConfig {
            kind,
            ..PeftConfig::default()
        },
        groups: 3,
        global_epochs: 1,
        epochs: 2,
        ..TrainConfig::default()
    }
}

/// Watches a training run: keeps the per-group stage's batches with their group, and stops the
/// run at the first event `stop` accepts.
#[allow(dead_code)]
pub struct Watch {
    stop: fn(&perpeft::train::Event<'_>) -> bool,
    pub per_group: Vec<(usize, perpeft::data::sampler::Batch)>,
    /// The first epoch of each stage that started.
    pub stages: Vec<(perpeft::train::Stage, usize)>,
    /// The epochs of the global stage's steps, one entry per step.
    pub global_steps: Vec<usize>,
}

#[allow(dead_code)]
impl Watch {
    /// Stops at the first event `stop` accepts.
    pub fn stopping_at(stop: fn(&perpeft::train::Event<'_>) -> bool) -> Self {
        Self {
            stop,
            per_group: Vec::new(),
            stages: Vec::new(),
            global_steps: Vec::new(),
        }
    }

    /// Never stops.
    pub fn all() -> Self {
        Self::stopping_at(|_| false)
    }
}

impl perpeft::train::Observer for Watch {
    fn on(&mut self, event: &perpeft::train::Event<'_>) -> std::ops::ControlFlow<()> {
        use perpeft::train::{Event, Stage};
        match event {
            Event::StageStarted { stage, first, .. } => self.stages.push((*stage, *first)),
            Event::Step {
                stage: Stage::Global,
                epoch,
                ..
            } => self.global_steps.push(*epoch),
            _ => {}
        }
        if let Event::Step {
            stage: Stage::Evaluated,
            group,
            batch,
            ..
        } = event
        {
            self.per_group.push((*group, (*batch).clone()));
        }
        if (self.stop)(event) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }
}

/// Every tensor of a burnpack file (`.bpk`) by name, without parameter ids (fresh per process).
#[allow(dead_code)]
pub fn pack_tensors(path: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let reader = burn::store::burn_pack::Reader::from_file(path).unwrap();
    reader
        .tensor_names()
        .into_iter()
        .map(|n| (n.to_string(), reader.tensor_data(n).unwrap()))
        .collect()
}

/// `dataset` written in the plain format as `dir/NAME/{items,interactions}.csv` (item `i` is
/// `i{i}`, each user's interactions get timestamps 0, 1, …), so the CLI can load it.
#[allow(dead_code)]
pub fn write_plain(dataset: &Dataset, dir: &std::path::Path) {
    let at = dir.join(&dataset.name);
    std::fs::create_dir_all(&at).unwrap();
    let mut items = String::from("id,title\n");
    for i in 1..=dataset.n_items() as u32 {
        items.push_str(&format!("i{i},{}\n", dataset.item(i).unwrap().title));
    }
    let mut inter = String::from("user,item,timestamp\n");
    for (u, seq) in dataset.sequences.iter().enumerate() {
        for (t, i) in seq.iter().enumerate() {
            inter.push_str(&format!("{},i{i},{t}\n", dataset.user_ids[u]));
        }
    }
    std::fs::write(at.join("items.csv"), items).unwrap();
    std::fs::write(at.join("interactions.csv"), inter).unwrap();
}

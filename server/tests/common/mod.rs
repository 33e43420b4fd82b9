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

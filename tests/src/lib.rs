//! Test harness for the end-to-end tests in `tests/`: trains, once per test process, four
//! small runs on the real ml-100k data into a fresh runs root (an ID-only SASRec, and a frozen,
//! a global-PEFT (LoRA) and a PerPEFT-LoRA run over the small CLIP fixture), and serves that root (the same `Catalog`,
//! `Jobs` and router as `perpeft serve --runs`) on an ephemeral port of 127.0.0.1.
//!
//! Needs the fetched data (`scripts/fetch_data.py` → `.cache/data`, or `PERPEFT_DATA_DIR`);
//! missing data is a test failure with instructions, never a skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use perpeft::api::{AppState, router, serve};
use perpeft::catalog::{Catalog, DataSource};
use perpeft::config::{BackboneChoice, Method, PeftConfig, PeftKind, SasRecConfig, TrainConfig};
use perpeft::data::{Dataset, Format};
use perpeft::device::DeviceChoice;
use perpeft::jobs::{JobSettings, Jobs};
use perpeft::train::{Start, train};

/// Epochs of the ID-only test model: enough to be clearly better than chance, quick on a CPU.
pub const TEST_EPOCHS: usize = 3;
/// The bearer token of the test server.
pub const TOKEN: &str = "e2e-test-token";
/// Names of the runs the harness trains, in training order.
pub const ID_ONLY: &str = "id-only";
pub const FROZEN: &str = "frozen-clip";
pub const GLOBAL: &str = "global-lora";
pub const PERPEFT: &str = "perpeft-lora";
/// Groups of the PerPEFT run.
pub const GROUPS: usize = 3;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn dir_from_env(var: &str, default: &str, hint: &str) -> PathBuf {
    let dir = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default));
    assert!(
        dir.exists(),
        "{} does not exist: {hint} (or set {var})",
        dir.display()
    );
    dir
}

/// Directory holding the fetched datasets.
pub fn data_dir() -> PathBuf {
    dir_from_env(
        "PERPEFT_DATA_DIR",
        ".cache/data",
        "run `python3 scripts/fetch_data.py`",
    )
}

/// Directory of the built front end.
pub fn dist_dir() -> PathBuf {
    dir_from_env("PERPEFT_DIST", "dist", "run `scripts/build-frontend.sh`")
}

/// A stand-in front end for a test process (a temporary `perpeft-TAG-dist-PID/` whose
/// `index.html` is `html`), written once per process: its first call decides it.
pub fn stand_in_dist(tag: &str, html: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("perpeft-{tag}-dist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), html).unwrap();
        dir
    })
    .clone()
}

/// The small random CLIP fixture of the server's tests.
pub fn clip_dir() -> PathBuf {
    repo_root().join("server/tests/fixtures/backbones/clip-small")
}

/// ml-100k, loaded from [`data_dir`].
pub fn ml100k() -> Dataset {
    perpeft::data::load(Format::Recbole, &data_dir().join("ml-100k"), "ml-100k")
        .expect("ml-100k loads")
}

/// A running test server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The runs root it serves.
    pub root: PathBuf,
}

impl TestServer {
    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// The test runs' configurations: `(name, config)`.
pub fn test_runs(cache: &Path) -> Vec<(&'static str, TrainConfig)> {
    let clip = |method| TrainConfig {
        method,
        backbone: BackboneChoice::Clip,
        clip_dir: Some(clip_dir()),
        cache_dir: cache.to_path_buf(),
        ..TrainConfig::default()
    };
    vec![
        (
            ID_ONLY,
            TrainConfig {
                epochs: TEST_EPOCHS,
                ..TrainConfig::default()
            },
        ),
        (
            FROZEN,
            TrainConfig {
                epochs: 2,
                ..clip(Method::Frozen)
            },
        ),
        (
            GLOBAL,
            TrainConfig {
                epochs: 1,
                ..clip(Method::GlobalPeft)
            },
        ),
        (
            PERPEFT,
            TrainConfig {
                peft: PeftConfig {
                    kind: PeftKind::Lora,
                    ..PeftConfig::default()
                },
                groups: GROUPS,
                global_epochs: 1,
                epochs: 1,
                ..clip(Method::Perpeft)
            },
        ),
    ]
}

/// Trains (once per process) the test runs and serves their root, with `dist` as the front
/// end and [`TOKEN`] as the bearer token.
pub fn server(dist: PathBuf) -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dataset = ml100k();
        let scratch = std::env::temp_dir().join(format!("perpeft-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let root = scratch.join("runs");
        let resolved = DeviceChoice::Flex.resolve().unwrap();
        let model = SasRecConfig::new(dataset.n_items());
        for (name, cfg) in test_runs(&scratch.join("cache")) {
            train(
                &dataset,
                &model,
                &cfg,
                &resolved,
                &root.join(name),
                Start::New,
            )
            .unwrap_or_else(|e| panic!("training the test run {name}: {e}"));
        }
        serve_root(root, &scratch.join("cache"), dist)
    })
}

/// Serves the runs root `root` (datasets from [`data_dir`], RecBole format; the same `Catalog`,
/// `Jobs` and router as `perpeft serve --runs`) on an ephemeral port of 127.0.0.1, with `dist`
/// as the front end and [`TOKEN`] as the bearer token; `cache` holds the jobs' feature caches.
pub fn serve_root(root: PathBuf, cache: &Path, dist: PathBuf) -> TestServer {
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let data = DataSource {
        dir: data_dir(),
        format: Format::Recbole,
    };
    let catalog = Arc::new(Catalog::new(&root, data, resolved.device.clone()));
    let jobs = Jobs::start(
        catalog.clone(),
        JobSettings {
            device: resolved.clone(),
            weights_dir: repo_root().join(".cache/weights"),
            cache_dir: cache.to_path_buf(),
            clip_dir: Some(clip_dir()),
        },
    )
    .expect("starting the job worker");
    let state = AppState::new(catalog, jobs, TOKEN.into(), resolved.name);
    let app = router(state, &dist);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, app).await.unwrap();
        });
    });
    TestServer {
        addr: rx.recv().unwrap(),
        root,
    }
}

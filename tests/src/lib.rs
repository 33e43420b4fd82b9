//! Test harness for the end-to-end tests in `tests/`: trains a small model on the real
//! ml-100k data once per test process and serves it on an ephemeral port of 127.0.0.1.
//!
//! Needs the fetched data (`scripts/fetch_data.py` → `.cache/data`, or `PERPEFT_DATA_DIR`);
//! missing data is a test failure with instructions, never a skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use perpeft::api::{AppState, router, serve};
use perpeft::config::{RunRecord, SasRecConfig, TrainConfig};
use perpeft::data::{Dataset, Format};
use perpeft::device::DeviceChoice;
use perpeft::engine::Engine;
use perpeft::store::RunDir;
use perpeft::train::{Start, train};

/// Epochs of the test model: enough to be clearly better than chance, quick on a CPU.
pub const TEST_EPOCHS: usize = 3;

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

/// ml-100k, loaded from [`data_dir`].
pub fn ml100k() -> Dataset {
    perpeft::data::load(Format::Recbole, &data_dir().join("ml-100k"), "ml-100k")
        .expect("ml-100k loads")
}

/// A running test server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The run it serves.
    pub record: RunRecord,
}

impl TestServer {
    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Trains (once per process) and serves the test model, with `dist` as the front end.
pub fn server(dist: PathBuf) -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dataset = ml100k();
        let run_dir = std::env::temp_dir()
            .join(format!("perpeft-e2e-{}", std::process::id()))
            .join("run");
        let resolved = DeviceChoice::Flex.resolve().unwrap();
        let cfg = TrainConfig {
            epochs: TEST_EPOCHS,
            ..TrainConfig::default()
        };
        train(
            &dataset,
            &SasRecConfig::new(dataset.n_items()),
            &cfg,
            &resolved,
            &run_dir,
            Start::Overwrite,
        )
        .expect("training the test model");
        let engine = Engine::open(&RunDir::new(&run_dir), dataset, &resolved.device)
            .expect("loading the test model");
        let record = engine.record.clone();
        let app = router(AppState::new(engine), &dist);
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
            record,
        }
    })
}

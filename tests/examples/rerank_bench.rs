//! Benchmark: how long the browser takes to rerank a user's recommendations over ml-1m's
//! catalogue, 3,883 items, 3,706 of them rated (SASRec's state over the history, every item
//! scored with the group's table, the top 20), in headless Chromium, beside the same code
//! natively on this machine.
//!
//! Run it with `scripts/bench-rerank.sh`. It trains (once, cached in `.cache/bench/rerank`) a
//! one-epoch ID-only SASRec on ml-1m (a group's scorer bundle of any method has the same
//! shapes: the item table and SASRec's weights), serves it, opens users' pages, and presses
//! "Not interested" on the top item again and again: each press reranks the whole catalogue in
//! WASM. It prints a table: the WASM rerank (as the page measures it with
//! `performance.now()`, whose resolution Chromium limits to 0.1 ms here), the time from the
//! click to the next frame (the list redrawn), and the native time of the same ranking.

#[path = "../tests/browser/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::OnceLock;
use std::time::Instant;

use e2e::{TestServer, data_dir, dist_dir, repo_root, serve_root};
use perpeft::config::{SasRecConfig, TrainConfig};
use perpeft::data::{Format, load};
use perpeft::device::DeviceChoice;
use perpeft::train::{Start, train};
use serde_json::json;
use shared::api::{RunStatus, RunSummary, UserDetail};
use shared::bundle::ScorerBundle;
use shared::{ItemTable, top_k};

const RUN: &str = "ml-1m-id-only";
/// Presses per user.
const PRESSES: usize = 60;
/// Users whose pages are used: short, middling and long histories.
const USERS: [&str; 3] = ["1m_1", "1m_10", "1m_4169"];

fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

fn row(what: &str, xs: &[f64]) {
    println!(
        "| {what:<50} | {:>7.3} | {:>7.3} | {:>7.3} | {:>5} |",
        percentile(xs, 0.5),
        percentile(xs, 0.95),
        percentile(xs, 1.0),
        xs.len()
    );
}

fn bench_server() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| {
        let dir = repo_root().join(".cache/bench/rerank");
        let root = dir.join("runs");
        let finished = perpeft::store::Registry::open(&root)
            .and_then(|r| r.list())
            .map(|rows| rows.iter().any(|r| r.name == RUN && r.status == "finished"))
            .unwrap_or(false);
        if !finished {
            let t = Instant::now();
            let dataset = load(Format::Recbole, &data_dir().join("ml-1m"), "ml-1m")
                .expect("ml-1m loads (scripts/fetch_data.py ml-1m)");
            let resolved = DeviceChoice::Flex.resolve().unwrap();
            let cfg = TrainConfig {
                epochs: 1,
                ..TrainConfig::default()
            };
            let _ = std::fs::remove_dir_all(root.join(RUN));
            train(
                &dataset,
                &SasRecConfig::new(dataset.n_items()),
                &cfg,
                &resolved,
                &root.join(RUN),
                Start::New,
            )
            .expect("training the benchmark's ml-1m run");
            eprintln!("trained {RUN} in {:.1} s", t.elapsed().as_secs_f64());
        }
        serve_root(root, &dir.join("cache"), dist_dir())
    })
}

#[tokio::main]
async fn main() {
    let server = bench_server();
    let p = harness::Page::open_on(server).await;
    let runs: Vec<RunSummary> = p.api("/api/runs").await;
    assert!(
        runs.iter()
            .any(|r| r.name == RUN && r.status == RunStatus::Finished)
    );
    let bundle: ScorerBundle = p
        .api(&format!("/api/runs/{RUN}/groups/0/scorer?encoding=f32"))
        .await;
    let table = bundle.table().unwrap();
    let items = bundle.rows - 1;

    let (mut wasm, mut frame, mut native) = (Vec::new(), Vec::new(), Vec::new());
    let mut lengths = Vec::new();
    for user in USERS {
        p.goto(&format!("/runs/{RUN}/users/{user}")).await;
        p.item_ids("#browser-recs", 20).await;
        let detail: UserDetail = p.api(&format!("/api/runs/{RUN}/users/{user}")).await;
        let history: Vec<u32> = detail.history.iter().map(|i| i.item.id).collect();
        lengths.push(history.len());
        let mut exclude = history.clone();
        for press in 1..=PRESSES {
            let out =
                p.c.execute_async(
                    r#"
                    const done = arguments[arguments.length - 1];
                    const top = document.querySelector('#browser-recs > li');
                    const item = +top.dataset.itemId;
                    const t0 = performance.now();
                    top.querySelector('button.dismiss').click();
                    requestAnimationFrame(() => setTimeout(() => done([
                        performance.now() - t0,
                        +document.querySelector('#rerank-time').dataset.ms,
                        document.querySelector('#browser-note').textContent,
                        item,
                    ]), 0));
                    "#,
                    vec![],
                )
                .await
                .unwrap();
            let note = out[2].as_str().unwrap();
            assert!(
                note.contains(&format!("{press} not interested")),
                "the page did not rerank: {note}"
            );
            frame.push(out[0].as_f64().unwrap());
            wasm.push(out[1].as_f64().unwrap());
            // the same ranking natively: state, every item scored, top 20
            exclude.push(out[3].as_u64().unwrap() as u32);
            let t = Instant::now();
            let tab = ItemTable::new(bundle.scorer.hidden, &table).unwrap();
            let state = bundle.scorer.user_state(&tab, &history);
            let top = top_k(&state, &tab, &exclude, 20);
            native.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(top);
        }
    }
    p.close().await;

    println!(
        "\nBrowser reranking: {items} items (ml-1m), SASRec hidden {}, max_len {}; users {USERS:?} \
         (histories {lengths:?}), {PRESSES} presses of \"Not interested\" each",
        bundle.scorer.hidden, bundle.scorer.max_len
    );
    println!("Command: scripts/bench-rerank.sh\n");
    println!(
        "| {:<50} | {:>7} | {:>7} | {:>7} | {:>5} |",
        "measure (ms)", "p50", "p95", "max", "n"
    );
    println!("|{:-<52}|{:->9}|{:->9}|{:->9}|{:->7}|", "", "", "", "", "");
    row("browser: rerank in WASM (state + scores + top 20)", &wasm);
    row("browser: click to next frame (list redrawn)", &frame);
    row("native, same code (this CPU, one thread)", &native);
    println!(
        "\nWASM / native at p50: {:.1}x (Chromium's timer resolution is 0.1 ms)",
        percentile(&wasm, 0.5) / percentile(&native, 0.5).max(1e-9)
    );
    println!(
        "{}",
        json!({"wasm_p95_ms": percentile(&wasm, 0.95), "frame_p95_ms": percentile(&frame, 0.95), "native_p95_ms": percentile(&native, 0.95)})
    );
}

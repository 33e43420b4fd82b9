//! `perpeft serve --model` serves a PerPEFT run end to end: a small run trained by the CLI on
//! plain-format files (the small CLIP fixture, IISAN, 3 groups), then served on an ephemeral port
//! and asked over HTTP. A known user is ranked with their own group's item table; a history the
//! model has not seen is placed in a group by the global model; each group's table is served.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use perpeft::data::Split;
use perpeft::store::RunDir;
use perpeft::store::tables::read_tables;
use shared::api::{Assignment, Health, Recommendations, RunDetail};
use shared::bundle::ScorerBundle;
use shared::{ItemTable, top_k};

fn perpeft(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_perpeft"));
    cmd.args(args).env("RUST_LOG", "warn");
    cmd
}

/// `perpeft serve`, killed on drop.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(run: &Path, data: &Path, dist: &Path) -> Server {
    let mut child = perpeft(&["serve", "--format", "plain", "--device", "flex"])
        .args(["--port", "0", "--model"])
        .arg(run)
        .arg("--data-dir")
        .arg(data)
        .arg("--dist")
        .arg(dist)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("PerPEFT Studio is serving at ") {
            return Server(child, url.trim_end_matches('/').to_string());
        }
    }
    panic!("perpeft serve ended without serving: {:?}", child.wait());
}

async fn get<T: serde::de::DeserializeOwned>(url: String) -> (u16, T) {
    let resp = reqwest::get(&url).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let parsed = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, parsed)
}

#[tokio::test]
async fn serve_accepts_a_perpeft_run_and_ranks_each_user_with_their_groups_table() {
    let root = common::scratch("serve-perpeft");
    let data = root.join("data");
    let dataset = common::synthetic_dataset(90, 40, 21);
    common::write_plain(&dataset, &data);
    let clip: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backbones/clip-small");
    let config = root.join("perpeft.toml");
    std::fs::write(
        &config,
        format!(
            "method = \"perpeft\"\nbackbone = \"clip\"\nclip_dir = {:?}\ncache_dir = {:?}\n\
             groups = 3\nglobal_epochs = 1\nepochs = 1\n[peft]\nkind = \"iisan\"\n",
            clip,
            root.join("cache")
        ),
    )
    .unwrap();
    let run_dir = root.join("runs/p");
    let status = perpeft(&[
        "train",
        "--format",
        "plain",
        "--dataset",
        "synthetic",
        "--device",
        "flex",
    ])
    .arg("--data-dir")
    .arg(&data)
    .arg("--config")
    .arg(&config)
    .arg("--out")
    .arg(&run_dir)
    .status()
    .unwrap();
    assert!(status.success());
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<html></html>").unwrap();
    let server = start_server(&run_dir, &data, &dist);
    let url = |path: &str| format!("{}{path}", server.1);

    let (status, health): (u16, Health) = get(url("/api/health")).await;
    assert_eq!(
        (status, health.runs),
        (200, 1),
        "--model serves that run alone"
    );
    let (status, detail): (u16, RunDetail) = get(url("/api/runs/p")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (detail.summary.method.as_str(), detail.groups.len()),
        ("perpeft-iisan", 3)
    );

    // what the run saved, read independently of the server
    let run = RunDir::new(&run_dir);
    let groups = run.read_groups().unwrap();
    let tables = read_tables(&run.tables_file()).unwrap();
    assert_eq!(tables.len(), 3);
    let scorer = run
        .load_model(&burn::tensor::Device::flex())
        .unwrap()
        .sasrec
        .to_scorer();
    let split = Split::leave_one_out(&dataset.sequences);
    // what the browser assigns new histories with: the global model and the centroids
    let (status, grouping): (u16, shared::groups::Grouping) =
        get(url("/api/runs/p/grouping")).await;
    assert_eq!((status, grouping.k()), (200, 3));
    let mut groups_seen = std::collections::BTreeSet::new();
    for u in (0..dataset.n_users()).step_by(7) {
        let g = groups.assignment[u];
        let table = ItemTable::new(scorer.hidden, &tables[g].0).unwrap();
        // as evaluation sees the user: the test item held out, and a candidate
        let (input, held_out) = match split.test[u] {
            Some(t) => (perpeft::train::stages::grouping_history(&split, u), Some(t)),
            None => (dataset.sequences[u].clone(), None),
        };
        let mut exclude = input.clone();
        exclude.sort_unstable();
        exclude.dedup();
        exclude.retain(|&i| Some(i) != held_out);
        let want = top_k(&scorer.user_state(&table, &input), &table, &exclude, 10);
        let id = &dataset.user_ids[u];
        let (status, got): (u16, Recommendations) =
            get(url(&format!("/api/runs/p/users/{id}/recommendations?k=10"))).await;
        assert_eq!(status, 200);
        assert_eq!(got.group, g, "user {id}'s own group");
        let got: Vec<(u32, u32)> = got
            .items
            .iter()
            .map(|r| (r.item.id, r.score.to_bits()))
            .collect();
        let want: Vec<(u32, u32)> = want.iter().map(|s| (s.item, s.score.to_bits())).collect();
        assert_eq!(got, want, "user {id} in group {g}");
        groups_seen.insert(g);

        // the user's train + validation history, as a new user, lands in the same group, on
        // the server and with the served grouping in plain Rust (as in the browser)
        let history = perpeft::train::stages::grouping_history(&split, u);
        assert_eq!(
            grouping.assign(&history),
            g,
            "history of user {id}, client side"
        );
        let body = serde_json::json!({ "history": history, "k": 5 });
        let resp = reqwest::Client::new()
            .post(url("/api/runs/p/assign"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let fresh: Assignment = resp.json().await.unwrap();
        assert_eq!(fresh.assigned, g, "history of user {id}");
    }
    assert_eq!(groups_seen.len(), 3, "the users checked cover every group");

    // each group's table is served as saved (in half precision); a group the run lacks is a
    // 404 with a reason
    for (g, (values, _)) in tables.iter().enumerate() {
        let (status, bundle): (u16, ScorerBundle) =
            get(url(&format!("/api/runs/p/groups/{g}/scorer"))).await;
        assert_eq!((status, bundle.group), (200, g));
        let served = bundle.table().unwrap();
        assert_eq!(served.len(), values.len());
        for (a, b) in served.iter().zip(values) {
            assert!(
                (a - b).abs() <= b.abs() * 1e-3 + 1e-6,
                "group {g}: {a} vs {b}"
            );
        }
    }
    let (status, err): (u16, serde_json::Value) = get(url("/api/runs/p/groups/3/scorer")).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("group 3"), "{err}");
    drop(server);
    std::fs::remove_dir_all(&root).unwrap();
}

//! The HTTP API over real HTTP, against a server on an ephemeral port serving three runs trained
//! on ml-100k by the test harness (ID-only, frozen CLIP, PerPEFT-LoRA with 3 groups): every
//! endpoint, every error case, the OpenAPI document against the router, and the served
//! per-group rankings against burn's own.

use std::collections::BTreeSet;

use e2e::{FROZEN, GLOBAL, GROUPS, ID_ONLY, PERPEFT, TEST_EPOCHS, ml100k, server};
use serde_json::{Value, json};
use shared::api::{
    Assignment, Comparison, DatasetInfo, GroupsBody, Health, Item, MapBody, Recommendations,
    RunDetail, RunStatus, RunSummary, UserDetail, UsersPage,
};
use shared::bundle::ScorerBundle;
use shared::groups::Grouping;
use shared::{ItemTable, top_k};

/// A stand-in front end.
fn static_dist() -> std::path::PathBuf {
    e2e::stand_in_dist("api", "<html><body>perpeft-test-index</body></html>")
}

fn url(path: &str) -> String {
    server(static_dist()).url(path)
}

/// Status and body of a request; every API answer must be JSON.
async fn send(req: reqwest::RequestBuilder, what: &str) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    assert!(
        ctype.starts_with("application/json"),
        "{what}: content-type {ctype:?}, body {body}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

async fn get(path: &str) -> (u16, Value) {
    send(reqwest::Client::new().get(url(path)), path).await
}

/// Equal metrics, up to the last bit a JSON number keeps through serde_json's default parser.
fn close(a: shared::api::Metrics, b: shared::api::Metrics) {
    assert_eq!(a.users, b.users);
    for (x, y) in [
        (a.hr10, b.hr10),
        (a.ndcg10, b.ndcg10),
        (a.hr20, b.hr20),
        (a.ndcg20, b.ndcg20),
        (a.hr30, b.hr30),
        (a.ndcg30, b.ndcg30),
    ] {
        assert!((x - y).abs() <= 1e-15 * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

async fn ok<T: for<'de> serde::Deserialize<'de>>(path: &str) -> T {
    let (status, body) = get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_value(body).unwrap()
}

fn message(what: &str, body: &Value) -> String {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no error text in {body}"))
        .to_string()
}

async fn error(path: &str, want: u16) -> String {
    let (status, body) = get(path).await;
    assert_eq!(status, want, "{path}: {body}");
    message(path, &body)
}

async fn post(path: &str, body: &str) -> (u16, Value) {
    let req = reqwest::Client::new()
        .post(url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    send(req, path).await
}

#[tokio::test]
async fn health_counts_the_finished_runs() {
    let h: Health = ok("/api/health").await;
    assert_eq!((h.status.as_str(), h.device.as_str()), ("ok", "flex"));
    assert!(h.runs >= 4, "{h:?}");
    assert!(h.version.starts_with("0.1.0+"));
}

#[tokio::test]
async fn the_datasets_a_job_can_use_are_listed() {
    let ds: Vec<DatasetInfo> = ok("/api/datasets").await;
    // exactly the data directory's folders that hold a RecBole dataset of their name
    let mut want: Vec<String> = std::fs::read_dir(e2e::data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| e2e::data_dir().join(n).join(format!("{n}.inter")).is_file())
        .collect();
    want.sort();
    assert!(want.iter().any(|n| n == "ml-100k"), "{want:?}");
    assert_eq!(ds.iter().map(|d| d.name.clone()).collect::<Vec<_>>(), want);
    assert!(ds.iter().all(|d| d.format == "recbole"));
}

#[tokio::test]
async fn runs_are_listed_and_described() {
    let runs: Vec<RunSummary> = ok("/api/runs").await;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(&names[..4], [ID_ONLY, FROZEN, GLOBAL, PERPEFT]);
    let methods: Vec<&str> = runs[..4].iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["id-only", "frozen", "global-peft-lora", "perpeft-lora"]
    );
    assert!(runs[..4].iter().all(|r| r.status == RunStatus::Finished));
    let adapters: Vec<Option<&str>> = runs[..4].iter().map(|r| r.adapter.as_deref()).collect();
    assert_eq!(adapters, [None, None, Some("lora"), Some("lora")]);
    let groups: Vec<usize> = runs[..4].iter().map(|r| r.groups).collect();
    assert_eq!(groups, [1, 1, 1, GROUPS]);
    for r in &runs[..4] {
        // validation at the best epoch; the summed seconds of the curve and the earlier stages
        let d: RunDetail = ok(&format!("/api/runs/{}", r.name)).await;
        let best = d
            .curve
            .iter()
            .find(|p| Some(p.epoch) == r.best_epoch)
            .unwrap();
        assert_eq!(r.valid, Some(best.valid), "{}", r.name);
        let total: f64 = d
            .curve
            .iter()
            .map(|p| p.train_seconds + p.eval_seconds)
            .sum::<f64>()
            + d.stages.iter().map(|s| s.seconds).sum::<f64>();
        assert_eq!(d.stages.is_empty(), r.name != PERPEFT, "{}", r.name);
        assert!(
            (r.total_seconds.unwrap() - total).abs() <= 1e-9 * total,
            "{}: {:?} vs {total}",
            r.name,
            r.total_seconds
        );
        assert_eq!(r.created_at.len(), "2026-01-01 00:00:00".len());
    }
    let id_only = &runs[0];
    assert_eq!(
        (id_only.method.as_str(), id_only.status, id_only.epochs_done),
        ("id-only", RunStatus::Finished, TEST_EPOCHS)
    );
    // every ml-100k user has at least 20 ratings, so all 943 are evaluated; chance is ~0.006
    let test = id_only.test.unwrap();
    assert_eq!(test.users, 943);
    assert!(
        test.hr10 > 0.03,
        "HR@10 {} is not better than chance",
        test.hr10
    );

    let d: RunDetail = ok(&format!("/api/runs/{PERPEFT}")).await;
    assert_eq!(d.summary.method, "perpeft-lora");
    assert_eq!(d.curve.len(), 1);
    assert_eq!(d.config["groups"], json!(GROUPS));
    assert_eq!(d.model["hidden"], json!(32));
    assert_eq!(d.groups.len(), GROUPS);
    assert_eq!(d.group_sizes.iter().sum::<usize>(), 943);
    assert_eq!(
        d.stages
            .iter()
            .map(|s| s.stage.as_str())
            .collect::<Vec<_>>(),
        ["global", "grouping"]
    );
    assert!(d.adapter_params.unwrap() > 0);
    assert_eq!(d.dataset_checksum, ml100k().checksum);
    let single: RunDetail = ok(&format!("/api/runs/{ID_ONLY}")).await;
    assert_eq!(single.groups.len(), 1);
    assert_eq!(single.groups[0].test, test);
}

#[tokio::test]
async fn unknown_things_are_404_and_bad_parameters_400() {
    assert!(
        error("/api/runs/no-such-run", 404)
            .await
            .contains("no-such-run")
    );
    assert!(
        error("/api/runs/no-such-run/groups", 404)
            .await
            .contains("no run")
    );
    assert!(
        error(&format!("/api/runs/{ID_ONLY}/users/nobody"), 404)
            .await
            .contains("nobody")
    );
    assert!(
        error("/api/nothing-here", 404)
            .await
            .contains("no such API endpoint")
    );
    // a run name is looked up in the registry, never used as a path
    assert_eq!(get("/api/runs/..%2F..%2Fetc/groups").await.0, 404);
    let users = format!("/api/runs/{ID_ONLY}/users");
    assert!(
        error(&format!("{users}?limit=0"), 400)
            .await
            .contains("limit")
    );
    assert!(
        error(&format!("{users}?limit=100000"), 400)
            .await
            .contains("limit")
    );
    assert!(!error(&format!("{users}?offset=-1"), 400).await.is_empty());
    let recs = format!("/api/runs/{ID_ONLY}/users/196/recommendations");
    assert!(
        error(&format!("{recs}?k=0"), 400)
            .await
            .contains("k must be")
    );
    assert!(
        error(&format!("{recs}?k=201"), 400)
            .await
            .contains("k must be")
    );
    assert!(!error(&format!("{recs}?k=ten"), 400).await.is_empty());
    assert!(
        error(&format!("{recs}?group=1"), 400)
            .await
            .contains("group 1 does not exist")
    );
    assert!(
        error(&format!("/api/runs/{ID_ONLY}/grouping"), 404)
            .await
            .contains("no grouping")
    );
    assert!(
        error(&format!("/api/runs/{PERPEFT}/groups/9/scorer"), 404)
            .await
            .contains("group 9")
    );
    // a known endpoint with a method it does not take
    let (status, body) = send(
        reqwest::Client::new().delete(url("/api/runs")),
        "DELETE /api/runs",
    )
    .await;
    assert_eq!(status, 405, "{body}");
    assert!(message("405", &body).contains("method"));
    assert!(!error("/api/jobs/x", 400).await.is_empty());
    assert!(error("/api/jobs/999999", 404).await.contains("999999"));
}

#[tokio::test]
async fn users_are_paged_and_filtered_by_group() {
    let d = ml100k();
    let p: UsersPage = ok(&format!("/api/runs/{ID_ONLY}/users?offset=5&limit=10")).await;
    assert_eq!((p.total, p.users.len()), (943, 10));
    assert_eq!(p.users[0].id, d.user_ids[5]);
    assert_eq!(p.users[0].interactions, d.sequences[5].len());
    let last: UsersPage = ok(&format!("/api/runs/{ID_ONLY}/users?offset=940&limit=10")).await;
    assert_eq!(last.users.len(), 3);
    let mut total = 0;
    for g in 0..GROUPS {
        let page: UsersPage = ok(&format!("/api/runs/{PERPEFT}/users?group={g}&limit=500")).await;
        assert!(page.users.iter().all(|u| u.group == g));
        total += page.total;
    }
    assert_eq!(total, 943, "every user is in exactly one group");
}

#[tokio::test]
async fn a_users_history_holds_out_their_last_interaction() {
    let text = std::fs::read_to_string(e2e::data_dir().join("ml-100k/ml-100k.inter")).unwrap();
    let mut rows: Vec<(u64, String)> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0] == "196")
        .map(|f| (f[3].parse().unwrap(), f[1].to_string()))
        .collect();
    rows.sort_by_key(|r| r.0); // stable
    let d: UserDetail = ok(&format!("/api/runs/{ID_ONLY}/users/196")).await;
    let mut served: Vec<(u64, String)> = d
        .history
        .iter()
        .map(|i| (i.time.unwrap() as u64, i.item.raw_id.clone()))
        .collect();
    let held = d.held_out.unwrap();
    served.push((held.time.unwrap() as u64, held.item.raw_id));
    // each item with its own timestamp, in the file's stable time order
    assert_eq!(served, rows);
    assert!(
        d.history
            .iter()
            .all(|i| !i.item.title.is_empty() && !i.item.categories.is_empty())
    );
}

/// The served per-group ranking equals burn's: the state from SASRec in burn over the user's
/// input with the group's table, scores against that table, the held-out item ranked as
/// `eval::ranks` ranks it, for the user's own group and for another group.
#[tokio::test]
async fn served_rankings_equal_burns_evaluation_ranking() {
    use burn::prelude::*;
    use perpeft::eval::{Phase, ranks, window};
    let s = server(static_dist());
    let dataset = ml100k();
    let split = perpeft::data::Split::leave_one_out(&dataset.sequences);
    let run = perpeft::store::RunDir::new(s.root.join(PERPEFT));
    let model = run.load_model(&Device::flex()).unwrap();
    let groups = run.read_groups().unwrap();
    let users = split.evaluated_users();
    for g in 0..GROUPS {
        let eval_ranks = ranks(&model.sasrec, &model.tables[g], &split, Phase::Test);
        for (i, &u) in users.iter().enumerate().step_by(97) {
            let id = &dataset.user_ids[u];
            let r: Recommendations = ok(&format!(
                "/api/runs/{PERPEFT}/users/{id}/recommendations?k=25&group={g}"
            ))
            .await;
            assert_eq!((r.group, r.own_group), (g, groups.assignment[u] == g));
            let held = r.held_out.as_ref().unwrap();
            assert_eq!(held.item.id, split.test[u].unwrap());
            assert_eq!(held.rank, eval_ranks[i] + 1, "user {id}, group {g}");
            // burn's top 25 over the same candidates
            let mut input = split.train[u].clone();
            input.push(split.valid[u].unwrap());
            let seq: Vec<i64> = window(&input, 10).into_iter().map(i64::from).collect();
            let seq = Tensor::<2, Int>::from_data(TensorData::new(seq, [1, 10]), &Device::flex());
            let state = model.sasrec.user_states(seq, model.tables[g].clone());
            let scores: Vec<f32> = state
                .matmul(model.tables[g].clone().transpose())
                .into_data()
                .iter::<f32>()
                .collect();
            let target = split.test[u].unwrap();
            let mut order: Vec<u32> = (1..scores.len() as u32)
                .filter(|&i| i == target || !input.contains(&i))
                .collect();
            order.sort_by(|&a, &b| {
                scores[b as usize]
                    .total_cmp(&scores[a as usize])
                    .then(a.cmp(&b))
            });
            let served: Vec<u32> = r.items.iter().map(|x| x.item.id).collect();
            assert_eq!(served, order[..25], "user {id}, group {g}");
        }
    }
}

#[tokio::test]
async fn groups_describe_each_group_against_the_global_model() {
    let b: GroupsBody = ok(&format!("/api/runs/{PERPEFT}/groups")).await;
    assert_eq!(b.groups.len(), GROUPS);
    assert_eq!(b.groups.iter().map(|g| g.size).sum::<usize>(), 943);
    let detail: RunDetail = ok(&format!("/api/runs/{PERPEFT}")).await;
    // independently: the groups, the models and the data from disk
    use perpeft::eval::{Phase, evaluate_grouped};
    let dataset = ml100k();
    let split = perpeft::data::Split::leave_one_out(&dataset.sequences);
    let run = perpeft::store::RunDir::new(server(static_dist()).root.join(PERPEFT));
    let groups = run.read_groups().unwrap();
    let device = burn::tensor::Device::flex();
    let (own_model, global_model) = (
        run.load_model(&device).unwrap(),
        run.load_global(&device).unwrap(),
    );
    let per_group = |m: &perpeft::store::LoadedModel, tables: &[burn::tensor::Tensor<2>]| {
        let v = evaluate_grouped(&m.sasrec, tables, &groups.assignment, &split, Phase::Valid).1;
        let t = evaluate_grouped(&m.sasrec, tables, &groups.assignment, &split, Phase::Test).1;
        v.into_iter().zip(t).collect::<Vec<_>>()
    };
    let own = per_group(&own_model, &own_model.tables);
    let global = per_group(&global_model, &vec![global_model.tables[0].clone(); GROUPS]);
    // training items per item, overall and per group
    let mut all = vec![0usize; 1683];
    let mut of_group = vec![vec![0usize; 1683]; GROUPS];
    for (u, &g) in groups.assignment.iter().enumerate() {
        for &i in &split.train[u] {
            all[i as usize] += 1;
            of_group[g][i as usize] += 1;
        }
    }
    let total = all.iter().sum::<usize>() as f64;
    let mut shifts = 0;
    for (g, card) in b.groups.iter().enumerate() {
        assert_eq!(card.group, g);
        assert_eq!(card.size, groups.members()[g].len());
        assert_eq!(card.centroid, groups.centroids[g * 32..(g + 1) * 32]);
        close(card.own.valid, own[g].0);
        close(card.own.test, own[g].1);
        assert_eq!(
            card.own, detail.groups[g],
            "the record agrees with the files"
        );
        let g_metrics = card.global.unwrap();
        close(g_metrics.valid, global[g].0);
        close(g_metrics.test, global[g].1);
        let gain = card.gain_ndcg20.unwrap();
        assert!((gain - (card.own.test.ndcg20 - g_metrics.test.ndcg20)).abs() < 1e-12);
        assert!(!card.items.is_empty() && !card.categories.is_empty());
        let group_total = of_group[g].iter().sum::<usize>() as f64;
        for d in &card.items {
            let i = d.item.as_ref().unwrap().id as usize;
            assert_eq!(d.count, of_group[g][i]);
            let lift = (of_group[g][i] as f64 / group_total) / (all[i] as f64 / total);
            assert!(
                (d.lift - lift).abs() < 1e-9,
                "item {i}: {} vs {lift}",
                d.lift
            );
            assert!(d.count >= 5);
        }
        assert!(card.items.windows(2).all(|w| w[0].lift >= w[1].lift));
        // nothing with 5 or more interactions has a higher lift than the last one kept
        let last = card.items.last().unwrap().lift;
        let kept: BTreeSet<u32> = card
            .items
            .iter()
            .map(|d| d.item.as_ref().unwrap().id)
            .collect();
        for i in 1..1683 {
            if of_group[g][i] >= 5 && !kept.contains(&(i as u32)) {
                let lift = (of_group[g][i] as f64 / group_total) / (all[i] as f64 / total);
                assert!(lift <= last + 1e-12, "item {i} has lift {lift} > {last}");
            }
        }
        for d in &card.categories {
            assert!(d.count >= 5 && d.lift > 0.0 && d.category.is_some());
        }
        for s in &card.promoted {
            assert!(s.group_rank < s.global_rank && s.group_rank <= 50);
        }
        for s in &card.demoted {
            assert!(s.group_rank > s.global_rank && s.global_rank <= 50);
        }
        shifts += card.promoted.len() + card.demoted.len();
    }
    assert!(shifts > 0, "the group adapters move some items");
    let single: GroupsBody = ok(&format!("/api/runs/{ID_ONLY}/groups")).await;
    assert_eq!(single.groups.len(), 1);
    assert!(single.groups[0].global.is_none() && single.groups[0].promoted.is_empty());
    assert_eq!(single.groups[0].size, 943);
}

#[tokio::test]
async fn the_map_places_every_user_with_their_group() {
    let m: MapBody = ok(&format!("/api/runs/{PERPEFT}/map")).await;
    assert_eq!((m.method.as_str(), m.points.len()), ("pca", 943));
    assert!(m.explained.iter().all(|e| *e > 0.0 && *e <= 1.0));
    assert!(m.explained[0] >= m.explained[1]);
    let page: UsersPage = ok(&format!("/api/runs/{PERPEFT}/users?limit=500")).await;
    for u in &page.users {
        let p = m.points.iter().find(|p| p.user == u.id).unwrap();
        assert_eq!(p.group, u.group);
        assert!(p.x.is_finite() && p.y.is_finite());
    }
    // user 196's top genres, counted by hand from their training interactions
    let dataset = ml100k();
    let u = dataset.user_index("196").unwrap();
    let seq = &dataset.sequences[u];
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for &i in &seq[..seq.len() - 2] {
        for c in &dataset.item(i).unwrap().categories {
            *counts.entry(c).or_default() += 1;
        }
    }
    let mut by_count: Vec<(&str, usize)> = counts.into_iter().collect();
    by_count.sort_by_key(|c| std::cmp::Reverse(c.1)); // stable: ties stay by name
    let want: Vec<String> = by_count.iter().take(3).map(|c| c.0.to_string()).collect();
    let p = m.points.iter().find(|p| p.user == "196").unwrap();
    assert_eq!(p.top, want);
    let distinct: BTreeSet<(u32, u32)> = m
        .points
        .iter()
        .map(|p| (p.x.to_bits(), p.y.to_bits()))
        .collect();
    assert!(distinct.len() > 900, "users are spread out");

    let t: MapBody = ok(&format!("/api/runs/{PERPEFT}/map?method=tsne")).await;
    assert_eq!((t.method.as_str(), t.points.len()), ("tsne", 943));
    assert!(t.explained.is_empty());
    for (p, q) in t.points.iter().zip(&m.points) {
        assert_eq!((&p.user, p.group), (&q.user, q.group));
        assert!(p.x.is_finite() && p.y.is_finite());
    }
    // t-SNE keeps neighbourhoods: a user's nearest neighbour on the map is more often in the
    // same group than a random user is
    let same_group_nn = t
        .points
        .iter()
        .filter(|p| {
            let nn = t
                .points
                .iter()
                .filter(|q| q.user != p.user)
                .min_by(|a, b| {
                    let d = |q: &&shared::api::MapPoint| (q.x - p.x).powi(2) + (q.y - p.y).powi(2);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            nn.group == p.group
        })
        .count() as f64
        / 943.0;
    let sizes: Vec<f64> = (0..GROUPS)
        .map(|g| m.points.iter().filter(|p| p.group == g).count() as f64 / 943.0)
        .collect();
    let chance: f64 = sizes.iter().map(|s| s * s).sum();
    assert!(
        same_group_nn > chance + 0.1,
        "{same_group_nn} vs chance {chance}"
    );
    assert!(
        error(&format!("/api/runs/{PERPEFT}/map?method=umap"), 400)
            .await
            .contains("pca or tsne")
    );
}

#[tokio::test]
async fn the_catalogue_has_every_item_with_its_genres() {
    let items: Vec<Item> = ok(&format!("/api/runs/{ID_ONLY}/items")).await;
    assert_eq!(items.len(), 1682);
    assert!(items.iter().enumerate().all(|(i, x)| x.id == i as u32 + 1));
    assert!(items.iter().all(|x| !x.categories.is_empty()));
}

#[tokio::test]
async fn a_new_history_is_placed_in_a_group_and_ranked() {
    let dataset = ml100k();
    let split = perpeft::data::Split::leave_one_out(&dataset.sequences);
    let groups = perpeft::store::RunDir::new(server(static_dist()).root.join(PERPEFT))
        .read_groups()
        .unwrap();
    let grouping: Grouping = ok(&format!("/api/runs/{PERPEFT}/grouping")).await;
    for u in (0..dataset.n_users()).step_by(53) {
        // what grouping clustered: the user's training items and validation item
        let history = perpeft::train::stages::grouping_history(&split, u);
        let body = json!({ "history": history, "k": 10 }).to_string();
        let (status, a) = post(&format!("/api/runs/{PERPEFT}/assign"), &body).await;
        assert_eq!(status, 200, "{a}");
        let a: Assignment = serde_json::from_value(a).unwrap();
        assert_eq!(a.assigned, groups.assignment[u], "user {u}");
        assert_eq!(
            grouping.assign(&history),
            a.assigned,
            "the browser's code agrees"
        );
        assert_eq!(a.distances.len(), GROUPS);
        let nearest = (0..GROUPS)
            .min_by(|&x, &y| a.distances[x].total_cmp(&a.distances[y]))
            .unwrap();
        assert_eq!(nearest, a.assigned);
        let r = &a.recommendations;
        assert_eq!(
            (r.group, r.items.len(), r.held_out.is_none()),
            (a.assigned, 10, true)
        );
        assert!(r.items.iter().all(|x| !history.contains(&x.item.id)));
    }
    // another group's table, asked for, is used
    let body = json!({ "history": [1, 2, 3], "k": 5, "group": 2 }).to_string();
    let (_, a) = post(&format!("/api/runs/{PERPEFT}/assign"), &body).await;
    let a: Assignment = serde_json::from_value(a).unwrap();
    assert_eq!(a.recommendations.group, 2);
    // a single-table run assigns everyone to group 0, with no distances
    let (_, a) = post(
        &format!("/api/runs/{ID_ONLY}/assign"),
        "{\"history\": [1, 2]}",
    )
    .await;
    let a: Assignment = serde_json::from_value(a).unwrap();
    assert_eq!(
        (a.assigned, a.distances.len(), a.recommendations.items.len()),
        (0, 0, 20)
    );
}

#[tokio::test]
async fn bad_bodies_get_the_status_that_names_the_problem() {
    let path = format!("/api/runs/{PERPEFT}/assign");
    for (body, status, want) in [
        ("{\"history\": [0]}", 422, "unknown item id 0"),
        ("{\"history\": [1683]}", 422, "unknown item id 1683"),
        (
            "{\"history\": [1], \"group\": 3}",
            422,
            "group 3 does not exist",
        ),
        ("{\"history\": [1], \"k\": 0}", 400, "k must be"),
        ("{\"history\": \"x\"}", 422, ""),
        ("not json", 400, ""),
    ] {
        let (s, v) = post(&path, body).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(message(body, &v).contains(want), "{body}: {v}");
    }
    let long = json!({ "history": vec![1; 2001] }).to_string();
    let (s, v) = post(&path, &long).await;
    assert_eq!(s, 413, "{v}");
    let huge = json!({ "history": vec![1; 40_000] }).to_string();
    assert!(huge.len() > perpeft::api::MAX_BODY);
    assert_eq!(post(&path, &huge).await.0, 413);
    let req = reqwest::Client::new()
        .post(url(&path))
        .body("{\"history\": [1]}");
    assert_eq!(send(req, "no content type").await.0, 415);
}

/// The bundle the browser reranks with: cached by ETag, and its half-precision table ranks as
/// the server's `f32` one does (the same top-20 for nearly every user).
#[tokio::test]
async fn scorer_bundles_are_cached_and_rank_like_the_server() {
    let client = reqwest::Client::new();
    let path = url(&format!("/api/runs/{PERPEFT}/groups/1/scorer"));
    let resp = client.get(&path).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let bundle: ScorerBundle = resp.json().await.unwrap();
    let again = client
        .get(&path)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    let other = client
        .get(&path)
        .header("if-none-match", "\"x\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    assert_eq!(
        (bundle.group, bundle.groups, bundle.rows),
        (1, GROUPS, 1683)
    );
    assert_eq!(bundle.centroids.len(), GROUPS * 32);
    let table = bundle.table().unwrap();
    let t = ItemTable::new(32, &table).unwrap();
    let page: UsersPage = ok(&format!("/api/runs/{PERPEFT}/users?group=1&limit=500")).await;
    let (mut same, mut checked) = (0, 0);
    for u in page.users.iter().step_by(5) {
        let served: Recommendations = ok(&format!(
            "/api/runs/{PERPEFT}/users/{}/recommendations?k=20",
            u.id
        ))
        .await;
        let detail: UserDetail = ok(&format!("/api/runs/{PERPEFT}/users/{}", u.id)).await;
        let history: Vec<u32> = detail.history.iter().map(|i| i.item.id).collect();
        let mut exclude = history.clone();
        if let Some(h) = &detail.held_out {
            exclude.retain(|&i| i != h.item.id);
        }
        let state = bundle.scorer.user_state(&t, &history);
        let local: BTreeSet<u32> = top_k(&state, &t, &exclude, 20)
            .iter()
            .map(|s| s.item)
            .collect();
        let server: BTreeSet<u32> = served.items.iter().map(|r| r.item.id).collect();
        same += local.intersection(&server).count();
        checked += 20;
    }
    let agreement = same as f64 / checked as f64;
    println!(
        "f16 bundle vs f32 server: top-20 agreement {agreement:.4} over {} users",
        checked / 20
    );
    assert!(agreement > 0.97, "{agreement}");
}

#[tokio::test]
async fn a_groups_adapter_downloads_in_the_hugging_face_peft_layout() {
    use std::io::Read;
    let resp = reqwest::get(url(&format!("/api/runs/{PERPEFT}/groups/2/adapter")))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut read = |name: &str| {
        let mut v = Vec::new();
        zip.by_name(name).unwrap().read_to_end(&mut v).unwrap();
        v
    };
    let config: Value = serde_json::from_slice(&read("adapter_config.json")).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(
        (config["r"].as_u64(), config["lora_alpha"].as_f64()),
        (Some(4), Some(8.0))
    );
    assert_eq!(config["target_modules"], json!(["q_proj", "v_proj"]));
    assert_eq!(config["bias"], "none");
    let weights = read("adapter_model.safetensors");
    let st = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let names: BTreeSet<String> = st.names().into_iter().map(String::from).collect();
    // the small CLIP has 2 text layers of width 32; ml-100k has no images
    let mut want = BTreeSet::new();
    for l in 0..2 {
        for m in ["q_proj", "v_proj"] {
            let p = format!("base_model.model.text_model.encoder.layers.{l}.self_attn.{m}");
            want.insert(format!("{p}.lora_A.weight"));
            want.insert(format!("{p}.lora_B.weight"));
        }
    }
    assert_eq!(names, want);
    for n in &names {
        let shape = st.tensor(n).unwrap().shape().to_vec();
        let expected = if n.ends_with("lora_A.weight") {
            [4, 32]
        } else {
            [32, 4]
        };
        assert_eq!(shape, expected, "{n}");
    }
    let (s, v) = get(&format!("/api/runs/{ID_ONLY}/groups/0/adapter")).await;
    assert_eq!(s, 422, "{v}");
    assert!(message("id-only adapter", &v).contains("no adapter"));
    let (s, v) = get(&format!("/api/runs/{PERPEFT}/groups/7/adapter")).await;
    assert_eq!(s, 404, "{v}");
    assert!(message("group 7", &v).contains("group 7 does not exist"));
    // a global-PEFT run's one adapter is group 0
    let resp = reqwest::get(url(&format!("/api/runs/{GLOBAL}/groups/0/adapter")))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut config = Vec::new();
    zip.by_name("adapter_config.json")
        .unwrap()
        .read_to_end(&mut config)
        .unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["peft_type"], "LORA");
}

#[tokio::test]
async fn one_user_compared_across_runs() {
    let c: Comparison = ok(&format!(
        "/api/compare?user=196&runs={PERPEFT},{FROZEN},{ID_ONLY}&k=15"
    ))
    .await;
    assert_eq!(c.lists.len(), 3);
    assert_eq!(
        c.lists.iter().map(|l| l.run.as_str()).collect::<Vec<_>>(),
        [PERPEFT, FROZEN, ID_ONLY]
    );
    for l in &c.lists {
        let alone: Recommendations = ok(&format!(
            "/api/runs/{}/users/196/recommendations?k=15",
            l.run
        ))
        .await;
        assert_eq!(l, &alone, "a compared list is the run's own answer");
    }
    assert_eq!(c.overlaps.len(), 3);
    let (a, b) = (&c.lists[0], &c.lists[2]);
    let shared = a
        .items
        .iter()
        .filter(|x| b.items.iter().any(|y| y.item.id == x.item.id))
        .count();
    let o = c
        .overlaps
        .iter()
        .find(|o| o.a == PERPEFT && o.b == ID_ONLY)
        .unwrap();
    assert_eq!(o.shared, shared);
    assert!(
        error(&format!("/api/compare?user=196&runs={ID_ONLY}"), 400)
            .await
            .contains("2 to 8")
    );
    assert!(
        error(&format!("/api/compare?user=196&runs={ID_ONLY},nope"), 404)
            .await
            .contains("nope")
    );
    assert!(
        error(
            &format!("/api/compare?user=nobody&runs={ID_ONLY},{FROZEN}"),
            404
        )
        .await
        .contains("nobody")
    );
    assert!(!error("/api/compare?runs=a,b", 400).await.is_empty());
}

/// The OpenAPI document lists exactly the routes the router serves, and every documented
/// route answers (with anything but the router's own "no such API endpoint").
#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let doc: Value = ok("/api/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let routes: BTreeSet<String> = [
        "GET /api/health",
        "GET /api/datasets",
        "GET /api/openapi.json",
        "GET /api/runs",
        "GET /api/runs/{run}",
        "GET /api/runs/{run}/groups",
        "GET /api/runs/{run}/map",
        "GET /api/runs/{run}/items",
        "GET /api/runs/{run}/users",
        "GET /api/runs/{run}/users/{id}",
        "GET /api/runs/{run}/users/{id}/recommendations",
        "POST /api/runs/{run}/assign",
        "GET /api/runs/{run}/grouping",
        "GET /api/runs/{run}/groups/{g}/scorer",
        "GET /api/runs/{run}/groups/{g}/adapter",
        "GET /api/compare",
        "POST /api/jobs",
        "GET /api/jobs",
        "GET /api/jobs/{id}",
        "DELETE /api/jobs/{id}",
        "GET /api/jobs/{id}/events",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, routes);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // a path parameter is in its path, required; every other parameter is in the query
    // (schemathesis found query parameters documented as required path ones)
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                let want = if in_path { "path" } else { "query" };
                assert_eq!(p["in"], want, "{method} {path}: {name}");
                if in_path {
                    assert_eq!(p["required"], true, "{method} {path}: {name}");
                }
            }
        }
    }
    assert!(doc["components"]["schemas"]["JobEvent"].is_object());
    for route in &routes {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{run}", PERPEFT)
            .replace("{id}", "196")
            .replace("{g}", "0");
        let req = reqwest::Client::new().request(method.parse().unwrap(), url(&path));
        let resp = req.send().await.unwrap();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            !body.contains("no such API endpoint"),
            "{route} is not routed"
        );
    }
}

#[tokio::test]
async fn the_front_end_is_served_at_the_root() {
    for path in ["/", "/some/client/route"] {
        let resp = reqwest::get(url(path)).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("perpeft-test-index"));
    }
}

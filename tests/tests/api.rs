//! The HTTP API over real HTTP, against a server on an ephemeral port serving a model trained on
//! ml-100k by the test harness.

use e2e::{TEST_EPOCHS, ml100k, server};
use serde_json::Value;
use shared::api::{Health, ItemTableBody, Recommendations, UserDetail, UserState, UsersPage};
use shared::codec::decode_f32;
use shared::{ItemTable, top_k};

/// A stand-in front end, written once per process: rewriting it while another test's request
/// streams it would truncate that response.
fn static_dist() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("perpeft-api-dist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let html = "<html><body>perpeft-test-index</body></html>";
        std::fs::write(dir.join("index.html"), html).unwrap();
        dir
    })
    .clone()
}

async fn get(path: &str) -> (u16, Value) {
    let s = server(static_dist());
    let resp = reqwest::get(s.url(path)).await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    assert!(
        ctype.starts_with("application/json"),
        "{path}: content-type {ctype:?}, body {body}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

async fn ok<T: for<'de> serde::Deserialize<'de>>(path: &str) -> T {
    let (status, body) = get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_value(body).unwrap()
}

async fn error(path: &str, want: u16) -> String {
    let (status, body) = get(path).await;
    assert_eq!(status, want, "{path}: {body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: no error text in {body}"))
        .to_string()
}

#[tokio::test]
async fn health_reports_a_model_better_than_chance() {
    let h: Health = ok("/api/health").await;
    assert_eq!(h.status, "ok");
    assert_eq!(h.dataset, "ml-100k");
    assert_eq!(h.model.method, "id-only");
    assert_eq!(h.model.groups, 1, "a single-table run is one group");
    assert!(h.model.epochs >= 1 && h.model.epochs <= TEST_EPOCHS);
    // every ml-100k user has at least 20 ratings, so all 943 are evaluated
    assert_eq!(h.model.test.users, 943);
    // chance is about 10 / 1,650 = 0.006
    assert!(
        h.model.test.hr10 > 0.03,
        "HR@10 {} is not better than chance",
        h.model.test.hr10
    );
    assert!(h.model.test.ndcg10 > 0.0 && h.model.test.ndcg10 <= h.model.test.hr10);
}

#[tokio::test]
async fn users_are_paged() {
    let d = ml100k();
    let p: UsersPage = ok("/api/users?offset=5&limit=10").await;
    assert_eq!(p.total, 943);
    assert_eq!(p.users.len(), 10);
    assert_eq!(p.users[0].id, d.user_ids[5]);
    assert_eq!(p.users[0].interactions, d.sequences[5].len());
    let last: UsersPage = ok("/api/users?offset=940&limit=10").await;
    assert_eq!(last.users.len(), 3);
    let default: UsersPage = ok("/api/users").await;
    assert_eq!(
        (default.offset, default.limit, default.users.len()),
        (0, 50, 50)
    );
}

#[tokio::test]
async fn bad_queries_are_400_with_json() {
    assert!(error("/api/users?limit=0", 400).await.contains("limit"));
    assert!(
        error("/api/users?limit=100000", 400)
            .await
            .contains("limit")
    );
    assert!(!error("/api/users?offset=-1", 400).await.is_empty());
    assert!(!error("/api/users?limit=many", 400).await.is_empty());
    assert!(
        error("/api/users/196/recommendations?k=0", 400)
            .await
            .contains("k must be")
    );
    assert!(
        !error("/api/users/196/recommendations?k=ten", 400)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_things_are_404_with_json() {
    assert!(
        error("/api/users/no-such-user", 404)
            .await
            .contains("no-such-user")
    );
    assert!(
        error("/api/users/0/recommendations", 404)
            .await
            .contains("unknown user")
    );
    assert!(
        error("/api/users/99999/state", 404)
            .await
            .contains("unknown user")
    );
    assert!(error("/api/grouping", 404).await.contains("no grouping"));
    assert!(
        error("/api/nothing-here", 404)
            .await
            .contains("no such API endpoint")
    );
}

#[tokio::test]
async fn history_is_the_users_ratings_in_time_order() {
    // user 196's ratings, read straight from the file
    let text = std::fs::read_to_string(e2e::data_dir().join("ml-100k/ml-100k.inter")).unwrap();
    let mut rows: Vec<(u64, String)> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0] == "196")
        .map(|f| (f[3].parse().unwrap(), f[1].to_string()))
        .collect();
    rows.sort_by_key(|r| r.0); // stable
    let d: UserDetail = ok("/api/users/196").await;
    assert_eq!(d.id, "196");
    let raw: Vec<String> = d.history.iter().map(|i| i.raw_id.clone()).collect();
    assert_eq!(raw, rows.into_iter().map(|r| r.1).collect::<Vec<_>>());
    assert!(d.history.iter().all(|i| !i.title.is_empty()));
}

#[tokio::test]
async fn recommendations_are_unseen_ranked_and_match_the_shared_scorer() {
    let detail: UserDetail = ok("/api/users/196").await;
    let recs: Recommendations = ok("/api/users/196/recommendations?k=20").await;
    assert_eq!(recs.items.len(), 20);
    let seen: Vec<u32> = detail.history.iter().map(|i| i.id).collect();
    assert!(
        recs.items.iter().all(|r| !seen.contains(&r.item.id)),
        "a seen item was recommended"
    );
    assert!(recs.items.windows(2).all(|w| w[0].score >= w[1].score));

    // What the browser does: rank with the state and the table, using the shared scorer.
    let state: UserState = ok("/api/users/196/state").await;
    assert_eq!((state.group, recs.group), (0, 0));
    let table: ItemTableBody = ok("/api/items/table").await;
    assert_eq!(table, ok::<ItemTableBody>("/api/items/table?group=0").await);
    assert!(
        error("/api/items/table?group=1", 400)
            .await
            .contains("group 1 does not exist")
    );
    assert_eq!(table.rows, 1683);
    assert_eq!(table.items.len(), 1682);
    let data = decode_f32(&table.data_b64).unwrap();
    let t = ItemTable::new(table.dim, &data).unwrap();
    let vector = decode_f32(&state.vector_b64).unwrap();
    let mut exclude = state.exclude.clone();
    exclude.sort_unstable();
    assert_eq!(exclude, perpeft::data::sorted_distinct(&seen));
    let local = top_k(&vector, &t, &state.exclude, 20);
    let server_ids: Vec<u32> = recs.items.iter().map(|r| r.item.id).collect();
    let local_ids: Vec<u32> = local.iter().map(|s| s.item).collect();
    assert_eq!(server_ids, local_ids);
    for (r, l) in recs.items.iter().zip(&local) {
        assert_eq!(r.score.to_bits(), l.score.to_bits());
    }
}

#[tokio::test]
async fn the_front_end_is_served_at_the_root() {
    let s = server(static_dist());
    for path in ["/", "/some/client/route"] {
        let resp = reqwest::get(s.url(path)).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.unwrap().contains("perpeft-test-index"));
    }
}

async fn post(path: &str, body: &str) -> (u16, Value) {
    let s = server(static_dist());
    let resp = reqwest::Client::new()
        .post(s.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn a_new_history_is_ranked_like_a_known_user() {
    let detail: UserDetail = ok("/api/users/196").await;
    let history: Vec<u32> = detail.history.iter().map(|i| i.id).collect();
    let known: Recommendations = ok("/api/users/196/recommendations?k=15").await;
    let body = serde_json::json!({ "history": history, "k": 15 }).to_string();
    let (status, fresh) = post("/api/recommendations", &body).await;
    assert_eq!(status, 200, "{fresh}");
    let fresh: Recommendations = serde_json::from_value(fresh).unwrap();
    assert_eq!(fresh.items, known.items);
    // a different history gives a different ranking
    let (_, other) = post("/api/recommendations", "{\"history\": [1, 2, 3]}").await;
    let other: Recommendations = serde_json::from_value(other).unwrap();
    assert_eq!(other.items.len(), 20);
    assert!(other.items.iter().all(|r| ![1, 2, 3].contains(&r.item.id)));
    assert_ne!(other.items[..15], known.items[..]);
}

#[tokio::test]
async fn bad_histories_are_400_with_json() {
    for (body, want) in [
        ("{\"history\": [0]}", "unknown item id 0"),
        ("{\"history\": [1683]}", "unknown item id 1683"),
        ("{\"history\": [1], \"k\": 0}", "k must be"),
        ("{\"history\": [1], \"group\": 1}", "group 1 does not exist"),
        ("{\"history\": \"x\"}", ""),
        ("not json", ""),
    ] {
        let (status, v) = post("/api/recommendations", body).await;
        assert_eq!(status, 400, "{body}: {v}");
        let text = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}: no error text in {v}"));
        assert!(text.contains(want), "{body}: {text}");
    }
}

#[tokio::test]
async fn the_scorer_bundle_recomputes_the_servers_user_state_exactly() {
    let model: shared::sasrec::SasRec = ok("/api/scorer").await;
    let table: ItemTableBody = ok("/api/items/table").await;
    let data = decode_f32(&table.data_b64).unwrap();
    let t = ItemTable::new(table.dim, &data).unwrap();
    let detail: UserDetail = ok("/api/users/196").await;
    let history: Vec<u32> = detail.history.iter().map(|i| i.id).collect();
    let state: UserState = ok("/api/users/196/state").await;
    let ours: Vec<u32> = model
        .user_state(&t, &history)
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let theirs: Vec<u32> = decode_f32(&state.vector_b64)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(ours, theirs);
}

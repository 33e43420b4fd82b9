//! A new user built by clicks: catalogue search, each click places the history in a group and
//! reranks in the browser (checked against the server's answer for the same history), with no
//! request to the server but the chosen group's scorer (once); the history is in the URL, so a
//! reload restores it.

use e2e::PERPEFT;
use serde_json::{Value, json};
use shared::api::Assignment;

use crate::harness::Page;

/// The server's group and top 20 for `history`.
async fn server_says(p: &Page, history: &[u32]) -> (usize, Vec<u32>) {
    let a: Assignment = p
        .api_post(
            &format!("/api/runs/{PERPEFT}/assign"),
            &json!({ "history": history, "k": 20 }),
        )
        .await;
    (
        a.assigned,
        a.recommendations.items.iter().map(|r| r.item.id).collect(),
    )
}

/// Searches `query` and clicks the first result; returns its item id.
async fn add(p: &Page, query: &str, expect_title: &str) -> u32 {
    p.type_into("#search", query).await;
    let text = p.wait_text("#search-results li button", expect_title).await;
    assert!(text.contains(expect_title), "{text}");
    let id: u32 = p
        .attr("#search-results li button", "data-item-id")
        .await
        .unwrap()
        .parse()
        .unwrap();
    p.click("#search-results li button").await;
    id
}

/// The page's group and list, once the list shows `history`'s ranking.
async fn page_says(p: &Page, history: &[u32], want: &[u32]) -> (usize, Vec<u32>) {
    p.item_ids("#new-history", history.len()).await;
    let ids = p
        .until("the recommendations for the new history", async || {
            let ids = p.item_ids("#new-recs", 20).await;
            (ids == want).then_some(ids)
        })
        .await;
    let g: usize = p
        .attr("#assigned", "data-group")
        .await
        .unwrap()
        .parse()
        .unwrap();
    (g, ids)
}

/// Requests the page made to the server's API, by path, so far.
async fn api_requests(p: &Page) -> Vec<String> {
    let v = p
        .js(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(n => n.startsWith('/api/'));",
            vec![],
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_new_users_history_is_grouped_and_ranked_in_the_browser() {
    let p = Page::open().await;
    p.goto(&format!("/runs/{PERPEFT}/new-user")).await;
    p.wait_text("#assigned", "Add an item").await;

    let mut history = Vec::new();
    for (query, title) in [
        ("star wars", "Star Wars (1977)"),
        ("toy story", "Toy Story (1995)"),
        ("fargo", "Fargo (1996)"),
    ] {
        history.push(add(&p, query, title).await);
        let (group, list) = server_says(&p, &history).await;
        let shown = page_says(&p, &history, &list).await;
        assert_eq!(shown, (group, list), "after adding {title}");
        p.wait_path(&format!(
            "/runs/{PERPEFT}/new-user?h={}",
            history
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ))
        .await;
    }
    let ms: f64 = p
        .attr("#new-rerank-time", "data-ms")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms.is_finite() && ms >= 0.0);
    // nothing but the grouping, the catalogue and scorers went to the server: the group and
    // the lists were computed here
    let requests = api_requests(&p).await;
    assert!(
        requests
            .iter()
            .all(|r| r.ends_with("/grouping") || r.ends_with("/items") || r.contains("/scorer")),
        "{requests:?}"
    );
    let scorers: std::collections::BTreeSet<&String> =
        requests.iter().filter(|r| r.contains("/scorer")).collect();
    assert_eq!(
        scorers.len(),
        requests.iter().filter(|r| r.contains("/scorer")).count(),
        "a group's scorer is fetched once: {requests:?}"
    );
    p.screenshot("new-user").await;

    // a reload of the URL restores the history, its group and its list
    let url = p.path().await;
    p.goto(&url).await;
    let (group, list) = server_says(&p, &history).await;
    assert_eq!(page_says(&p, &history, &list).await, (group, list));

    // removing an item re-places and reranks
    p.click("#new-history li:first-child button.remove").await;
    history.remove(0);
    let (group, list) = server_says(&p, &history).await;
    assert_eq!(page_says(&p, &history, &list).await, (group, list));
    assert_eq!(
        p.js(
            "return document.querySelectorAll('#distances tbody tr').length;",
            vec![]
        )
        .await,
        Value::from(e2e::GROUPS)
    );

    // a link with entries that are not items: they are named and left out, the rest is kept
    p.goto(&format!("/runs/{PERPEFT}/new-user?h=50,abc,999999,181"))
        .await;
    p.wait_text("#history-ignored", "abc, 999999").await;
    p.wait_path(&format!("/runs/{PERPEFT}/new-user?h=50,181"))
        .await;
    let (group, list) = server_says(&p, &[50, 181]).await;
    assert_eq!(page_says(&p, &[50, 181], &list).await, (group, list));
    p.close().await;
}

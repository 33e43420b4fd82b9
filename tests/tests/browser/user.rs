//! One user: history newest first with dates, lists side by side across runs as the API
//! compares them (held-out rank in each, shared items marked), "as group" in the URL, and the
//! browser's own ranking: identical to the server's, reranked in WASM on "not interested" and
//! "watched it", each rerank equal to the server's answer for the same history.

use std::collections::HashMap;

use e2e::{FROZEN, GLOBAL, ID_ONLY, PERPEFT};
use serde_json::json;
use shared::api::{Assignment, Comparison, Recommendations, UserDetail};

use crate::harness::Page;

#[tokio::test]
async fn a_user_is_compared_across_runs_and_groups_and_reranked_in_the_browser() {
    let p = Page::open().await;
    p.goto(&format!("/runs/{PERPEFT}/users/196")).await;
    let detail: UserDetail = p.api(&format!("/api/runs/{PERPEFT}/users/196")).await;

    // history: newest first, with dates
    let n = detail.history.len();
    let shown = p.item_ids("#history", n).await;
    let newest_first: Vec<u32> = detail.history.iter().rev().map(|i| i.item.id).collect();
    assert_eq!(shown, newest_first);
    let first_date = p.text("#history > li time").await;
    assert_eq!(first_date.len(), "1997-12-04".len(), "{first_date}");
    assert!(first_date.starts_with("199"), "{first_date}");
    p.wait_text("#held-out", &detail.held_out.as_ref().unwrap().item.title)
        .await;

    // the lists: this run (own group), then global PEFT, frozen, ID-only, as compared by the API
    let runs = [PERPEFT, GLOBAL, FROZEN, ID_ONLY].join(",");
    let cmp: Comparison = p
        .api(&format!("/api/compare?user=196&runs={runs}&k=20"))
        .await;
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for l in &cmp.lists {
        for r in &l.items {
            *counts.entry(r.item.id).or_default() += 1;
        }
    }
    for (i, l) in cmp.lists.iter().enumerate() {
        let list = if i == 0 {
            "#list-own".to_string()
        } else {
            format!("#list-{}", l.run)
        };
        let ids = p.item_ids(&list, 20).await;
        assert_eq!(
            ids,
            l.items.iter().map(|r| r.item.id).collect::<Vec<_>>(),
            "{list}"
        );
        let held = l.held_out.as_ref().unwrap();
        let rank = p
            .attr(
                &format!("section.list:has(> {list}) > .held-rank"),
                "data-rank",
            )
            .await
            .unwrap();
        assert_eq!(rank, held.rank.to_string(), "{list}");
        // shared items are marked, the others not
        for li in p.all(&format!("{list} > li")).await {
            let id: u32 = li
                .attr("data-item-id")
                .await
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            let class = li.attr("class").await.unwrap().unwrap_or_default();
            assert_eq!(
                class.contains("shared"),
                counts[&id] > 1,
                "{list} item {id}: {class}"
            );
        }
    }
    p.screenshot("user").await;

    // as another group: in the URL, the API's list for that group
    let own = detail.group;
    let other = (own + 1) % e2e::GROUPS;
    p.select("#as-group", &other.to_string()).await;
    p.wait_path(&format!("/runs/{PERPEFT}/users/196?as={other}"))
        .await;
    let as_other: Recommendations = p
        .api(&format!(
            "/api/runs/{PERPEFT}/users/196/recommendations?k=20&group={other}"
        ))
        .await;
    assert!(!as_other.own_group);
    let ids = p.item_ids("#list-as", 20).await;
    assert_eq!(
        ids,
        as_other.items.iter().map(|r| r.item.id).collect::<Vec<_>>()
    );
    p.wait_text(
        "section.list:has(> #list-as) > h3",
        &format!("As group {other}"),
    )
    .await;
    p.check_accessible().await;
    // the browser ranks with that group's table, as the server does
    p.wait_text("#browser-note", &format!("group {other}'s table"))
        .await;
    assert_eq!(
        p.item_ids("#browser-recs", 20).await,
        ids,
        "the WASM scorer ranks as the server does for another group"
    );
    // back to their own group
    p.select("#as-group", "").await;
    p.wait_path(&format!("/runs/{PERPEFT}/users/196")).await;
    p.wait_text("#browser-note", &format!("group {own}'s table"))
        .await;

    // the browser ranks exactly as the server does for the user's own group
    let server: Recommendations = p
        .api(&format!(
            "/api/runs/{PERPEFT}/users/196/recommendations?k=21"
        ))
        .await;
    let server_ids: Vec<u32> = server.items.iter().map(|r| r.item.id).collect();
    let browser = p.item_ids("#browser-recs", 20).await;
    assert_eq!(
        browser,
        server_ids[..20],
        "the WASM scorer ranks as the server does"
    );
    let ms: f64 = p
        .attr("#rerank-time", "data-ms")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms.is_finite() && ms >= 0.0, "{ms}");

    // not interested in the top item: reranked here, the 21st comes in
    p.click("#browser-recs > li button.dismiss").await;
    let reranked = p.item_ids_changed("#browser-recs", 20, &browser).await;
    assert_eq!(reranked, server_ids[1..21]);

    // watched the new top item: the state is recomputed in WASM; the server agrees for the
    // same history and group
    let added = server_ids[1];
    p.click("#browser-recs > li button.add").await;
    let after = p.item_ids_changed("#browser-recs", 20, &reranked).await;
    let mut history: Vec<u32> = detail.history.iter().map(|i| i.item.id).collect();
    history.push(added);
    let fresh: Assignment = p
        .api_post(
            &format!("/api/runs/{PERPEFT}/assign"),
            &json!({ "history": history, "k": 25, "group": own }),
        )
        .await;
    let expected: Vec<u32> = fresh
        .recommendations
        .items
        .iter()
        .map(|r| r.item.id)
        .filter(|&i| i != server_ids[0])
        .take(20)
        .collect();
    assert_eq!(
        after, expected,
        "the browser's recomputed ranking differs from the server's"
    );
    p.wait_text("#browser-note", "1 not interested · 1 watched")
        .await;

    // a bad group in the URL: said in words, and the other lists stay
    p.goto(&format!("/runs/{PERPEFT}/users/196?as=abc")).await;
    p.wait_text("#as-error", "\"abc\" is not a group number")
        .await;
    p.item_ids("#list-own", 20).await;
    p.goto(&format!("/runs/{PERPEFT}/users/196?as=99")).await;
    p.wait_text("#as-error", "group 99 does not exist").await;
    p.item_ids("#list-own", 20).await;
    p.close().await;
}

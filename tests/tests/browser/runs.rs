//! The Runs page: the table, its sort (in the URL), the best run per method, and picking runs
//! to compare, with one user's lists across them.

use std::collections::BTreeSet;

use e2e::{GLOBAL, PERPEFT};
use shared::api::{Comparison, RunSummary};
use shared::runs::best_runs;

use crate::harness::Page;

async fn column(p: &Page, metric: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for td in p
        .all(&format!("#runs tbody td[data-metric='{metric}']"))
        .await
    {
        let text = td.text().await.unwrap();
        // every run of this server is finished, so every cell holds a number
        out.push(
            text.parse()
                .unwrap_or_else(|_| panic!("{metric} cell {text:?}")),
        );
    }
    out
}

#[tokio::test]
async fn the_runs_table_sorts_marks_the_best_and_compares_runs() {
    let p = Page::open().await;
    p.goto("/").await;
    let api: Vec<RunSummary> = p.api("/api/runs").await;
    p.until("every run in the table", async || {
        (p.all("#runs tbody tr").await.len() >= api.len()).then_some(())
    })
    .await;
    for r in &api {
        let row = p.find(&format!("#runs tr[data-run='{}']", r.name)).await;
        let text = row.text().await.unwrap();
        assert!(text.contains(&r.method), "{text}");
        if let Some(t) = r.test {
            assert!(text.contains(&format!("{:.3}", t.ndcg20)), "{text}");
        }
    }
    // the stars are the best by validation of each method and dataset (the rule is
    // shared::runs, unit-tested there), and only they
    let mut starred = BTreeSet::new();
    for row in p.all("#runs tbody tr.best").await {
        starred.insert(row.attr("data-run").await.unwrap().unwrap());
    }
    assert_eq!(starred, best_runs(&api));

    // sorting by test NDCG@20: ascending, then descending, in the URL
    p.click("button.sort[data-sort='ndcg20']").await;
    p.wait_path("/?sort=ndcg20&dir=asc").await;
    let up = column(&p, "ndcg20").await;
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "{up:?}");
    p.click("button.sort[data-sort='ndcg20']").await;
    p.wait_path("/?sort=ndcg20&dir=desc").await;
    let down = p
        .until("the descending order", async || {
            let d = column(&p, "ndcg20").await;
            (d.windows(2).all(|w| w[0] >= w[1]) && d.len() == up.len()).then_some(d)
        })
        .await;
    assert_ne!(up, down);
    assert_eq!(
        p.attr("th[aria-sort='descending'] button", "data-sort")
            .await
            .as_deref(),
        Some("ndcg20")
    );
    p.screenshot("runs").await;

    // pick two runs and compare them
    assert_eq!(
        p.attr("#compare-runs", "disabled").await.as_deref(),
        Some("true")
    );
    p.click(&format!("tr[data-run='{PERPEFT}'] input.pick"))
        .await;
    p.click(&format!("tr[data-run='{GLOBAL}'] input.pick"))
        .await;
    p.wait_text("#compare-runs", "Compare 2").await;
    p.click("#compare-runs").await;
    // the picked set is ordered by name
    p.wait_path(&format!("/compare?runs={GLOBAL},{PERPEFT}"))
        .await;
    let rows = p
        .until("both runs in the comparison", async || {
            let rows = p.all("#compare-table tr[data-run]").await;
            (rows.len() == 2).then_some(rows)
        })
        .await;
    assert_eq!(
        rows[0].attr("data-run").await.unwrap().as_deref(),
        Some(GLOBAL)
    );
    p.find("#compare-bars canvas").await;
    p.find("#compare-curves canvas").await;

    // one user across the two runs, as the API compares them
    p.type_into("#compare-user", "196").await;
    p.click("form.inline button[type='submit']").await;
    p.wait_path(&format!("/compare?runs={GLOBAL},{PERPEFT}&user=196"))
        .await;
    let want: Comparison = p
        .api(&format!(
            "/api/compare?user=196&runs={GLOBAL},{PERPEFT}&k=20"
        ))
        .await;
    for l in &want.lists {
        let ids = p.item_ids(&format!("#list-{}", l.run), 20).await;
        assert_eq!(ids, l.items.iter().map(|r| r.item.id).collect::<Vec<_>>());
    }
    p.wait_text("#overlaps", &format!("{} items", want.overlaps[0].shared))
        .await;
    p.screenshot("compare").await;
    p.close().await;
}

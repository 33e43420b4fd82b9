//! The run overview: group cards as the API describes the groups, the map (hover a point for
//! the user and their genres, click it to open the user), the projection switch in the URL,
//! the per-group bar chart and the learning curves; and the group page.

use std::time::Duration;

use e2e::{GROUPS, PERPEFT};
use serde_json::json;
use shared::api::{GroupsBody, MapBody, MapPoint, UsersPage};

use crate::harness::Page;

/// The user whose point is farthest from every other (axes scaled to the same span), so a
/// click on it cannot hit a neighbour.
fn isolated(points: &[MapPoint]) -> &MapPoint {
    let span = |f: fn(&MapPoint) -> f32| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        (hi - lo).max(1e-6)
    };
    let (sx, sy) = (span(|p| p.x), span(|p| p.y));
    let gap = |a: &MapPoint| {
        points
            .iter()
            .filter(|b| b.user != a.user)
            .map(|b| ((a.x - b.x) / sx).powi(2) + ((a.y - b.y) / sy).powi(2))
            .fold(f32::MAX, f32::min)
    };
    points
        .iter()
        .max_by(|a, b| gap(a).total_cmp(&gap(b)))
        .unwrap()
}

#[tokio::test]
async fn the_run_overview_shows_groups_on_a_map_and_a_click_opens_the_user() {
    let p = Page::open().await;
    p.goto(&format!("/runs/{PERPEFT}")).await;
    let groups: GroupsBody = p.api(&format!("/api/runs/{PERPEFT}/groups")).await;
    let cards = p
        .until("a card per group", async || {
            let c = p.all("#group-cards .card").await;
            (c.len() == GROUPS).then_some(c)
        })
        .await;
    for (card, g) in cards.iter().zip(&groups.groups) {
        let text = card.text().await.unwrap();
        assert!(text.contains(&format!("{} users", g.size)), "{text}");
        let top = g.categories[0].category.as_ref().unwrap();
        assert!(text.contains(top), "{text} lacks {top}");
        assert!(
            text.contains(&format!("{:.3}", g.own.test.ndcg20)),
            "{text}"
        );
        assert!(
            text.contains(&format!("{:.3}", g.global.unwrap().test.ndcg20)),
            "{text}"
        );
    }
    p.find("#group-bars canvas").await;
    p.find("#curves-chart canvas").await;
    // every user of the run is a point (the API's map, and the sum of the group sizes)
    let map: MapBody = p.api(&format!("/api/runs/{PERPEFT}/map")).await;
    let users: usize = groups.groups.iter().map(|g| g.size).sum();
    assert_eq!(map.points.len(), users);
    assert_eq!(
        p.attr("#map-note", "data-points").await,
        Some(users.to_string())
    );
    p.find("#group-map canvas").await;
    // let the points' entry animation end
    tokio::time::sleep(Duration::from_millis(1500)).await;
    p.screenshot("run-overview").await;

    // hover the most isolated user's point: the tooltip names them and their top genres
    let target = isolated(&map.points).clone();
    let at = p
        .js(
            r#"
            const el = document.getElementById('group-map');
            el.scrollIntoView({block: 'center'});
            const chart = echarts.getInstanceByDom(el);
            const [x, y] = chart.convertToPixel({seriesIndex: arguments[0]}, [arguments[1], arguments[2]]);
            const r = el.getBoundingClientRect();
            return [r.left + x, r.top + y];
            "#,
            vec![json!(target.group), json!(target.x), json!(target.y)],
        )
        .await;
    let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    let want = format!("User {} · {}", target.user, target.top.join(", "));
    p.until("the tooltip of the hovered point", async || {
        p.hover(x - 30.0, y - 30.0).await;
        p.hover(x, y).await;
        let t = p.find("#group-map").await.text().await.ok()?;
        t.contains(&want).then_some(())
    })
    .await;
    p.click_here().await;
    p.wait_path(&format!("/runs/{PERPEFT}/users/{}", target.user))
        .await;
    p.wait_text("#selected-user", &format!("User {}", target.user))
        .await;
    p.wait_text("#user-group", &format!("group {}", target.group))
        .await;

    // the t-SNE projection, by the select and in the URL
    p.goto(&format!("/runs/{PERPEFT}")).await;
    p.select("#projection", "tsne").await;
    p.wait_path(&format!("/runs/{PERPEFT}?map=tsne")).await;
    p.wait_text("#map-note", "t-SNE").await;
    p.close().await;
}

#[tokio::test]
async fn the_group_page_lists_members_shifts_and_switches_groups() {
    let p = Page::open().await;
    p.goto(&format!("/runs/{PERPEFT}/groups/1")).await;
    let groups: GroupsBody = p.api(&format!("/api/runs/{PERPEFT}/groups")).await;
    let g = &groups.groups[1];
    p.wait_text("h1", "Group 1").await;
    let rows = p
        .until(
            "the quality of the adapter and the global model",
            async || {
                let r = p.all("#group-quality tbody tr").await;
                (r.len() == 2).then_some(r)
            },
        )
        .await;
    assert!(
        rows[0]
            .text()
            .await
            .unwrap()
            .contains(&format!("{:.3}", g.own.test.ndcg20))
    );
    assert!(
        rows[1]
            .text()
            .await
            .unwrap()
            .contains(&format!("{:.3}", g.global.unwrap().test.ndcg20))
    );
    let promoted: Vec<u32> = {
        p.find("#promoted tr[data-item-id]").await;
        let mut ids = Vec::new();
        for tr in p.all("#promoted tr[data-item-id]").await {
            ids.push(
                tr.attr("data-item-id")
                    .await
                    .unwrap()
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
        }
        ids
    };
    assert_eq!(
        promoted,
        g.promoted.iter().map(|s| s.item.id).collect::<Vec<_>>()
    );
    assert_eq!(
        p.all("#genre-lifts tbody tr").await.len(),
        g.categories.len()
    );
    // distinctive items with their counts, and what the adapter ranks lower, with both ranks
    let cells = async |css: &str| -> Vec<Vec<String>> {
        let rows = p
            .js(
                "return [...document.querySelectorAll(arguments[0])]
                    .map(tr => [...tr.cells].map(c => c.textContent.trim()));",
                vec![css.into()],
            )
            .await;
        serde_json::from_value(rows).unwrap()
    };
    let items = cells("#item-lifts tbody tr").await;
    assert!(!g.items.is_empty());
    assert_eq!(items.len(), g.items.len());
    for (row, d) in items.iter().zip(&g.items) {
        assert_eq!(
            (row[0].as_str(), row[1].as_str()),
            (
                d.item.as_ref().unwrap().title.as_str(),
                d.count.to_string().as_str()
            )
        );
    }
    let demoted = cells("#demoted tbody tr").await;
    assert!(!g.demoted.is_empty());
    assert_eq!(demoted.len(), g.demoted.len());
    for (row, s) in demoted.iter().zip(&g.demoted) {
        assert_eq!(
            row[..],
            [
                s.item.title.clone(),
                s.group_rank.to_string(),
                s.global_rank.to_string()
            ]
        );
    }
    // members: the group's users, first page
    let members: UsersPage = p
        .api(&format!("/api/runs/{PERPEFT}/users?group=1&limit=50"))
        .await;
    let shown = p
        .until("the members", async || {
            let m = p.all("#members li").await;
            (m.len() == members.users.len()).then_some(m)
        })
        .await;
    assert!(
        shown[0]
            .text()
            .await
            .unwrap()
            .contains(&format!("User {}", members.users[0].id))
    );
    p.screenshot("group").await;
    // another group by the select; its URL
    p.select("#group-select", "2").await;
    p.wait_path(&format!("/runs/{PERPEFT}/groups/2")).await;
    p.wait_text("h1", "Group 2").await;
    p.wait_text(
        "#group-select + .note",
        &format!("{} users", groups.groups[2].size),
    )
    .await;
    // a member opens their user page
    let first: UsersPage = p
        .api(&format!("/api/runs/{PERPEFT}/users?group=2&limit=1"))
        .await;
    p.wait_text("#members li", &format!("User {}", first.users[0].id))
        .await;
    p.click("#members li a").await;
    p.wait_path(&format!("/runs/{PERPEFT}/users/{}", first.users[0].id))
        .await;
    p.wait_text("#user-group", "group 2").await;
    p.close().await;
}

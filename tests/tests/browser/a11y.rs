//! Every page by its URL (a deep link, as a reload or a shared link opens it): its heading, a
//! basic accessibility check (labels, landmarks, chart names), and the site by keyboard alone
//! (skip link, main navigation, sorting, picking runs, a rerank, the training form).

use e2e::PERPEFT;
use fantoccini::key::Key;

use crate::harness::Page;

#[tokio::test]
async fn every_page_opens_by_its_url_and_names_its_controls() {
    let p = Page::open().await;
    let pages = [
        ("/", "Runs", "#runs tbody tr"),
        (
            &format!("/runs/{PERPEFT}") as &str,
            "Run perpeft-lora",
            "#group-map canvas",
        ),
        (
            &format!("/runs/{PERPEFT}/groups/0"),
            "Group 0",
            "#members li",
        ),
        (
            &format!("/runs/{PERPEFT}/users/196"),
            "User 196",
            "#browser-recs li",
        ),
        (
            &format!("/runs/{PERPEFT}/new-user?h=50"),
            "A new user",
            "#new-recs li",
        ),
        ("/training", "Training", "#jobs"),
        (
            &format!("/compare?runs={PERPEFT},id-only&user=196"),
            "Compare runs",
            "#compare-lists li",
        ),
        // unknown things: an error in words, not a blank page
        ("/runs/no-such-run", "Run no-such-run", "[role='alert']"),
        ("/no/such/page", "Not found", "main a[href='/']"),
    ];
    for (i, (url, h1, ready)) in pages.into_iter().enumerate() {
        p.goto(url).await;
        p.wait_text("h1", h1).await;
        p.find(ready).await;
        p.check_accessible().await;
        p.screenshot(&format!("deep-link-{i}")).await;
    }
    p.wait_text("main", "No page has this address").await;
    p.goto("/runs/no-such-run").await;
    p.wait_text("[role='alert']", "404").await;
    p.close().await;
}

/// Presses Tab until the focused element matches `css` (at most `max` times); fails with the
/// elements it passed.
async fn tab_to(p: &Page, css: &str, max: usize) {
    let mut passed = Vec::new();
    for _ in 0..max {
        p.press(Key::Tab).await;
        let now = p
            .js(
                "const a = document.activeElement; \
                 return [a.matches(arguments[0]), a.tagName + '#' + a.id + '.' + a.className];",
                vec![css.into()],
            )
            .await;
        if now[0].as_bool() == Some(true) {
            return;
        }
        passed.push(now[1].as_str().unwrap_or_default().to_string());
    }
    p.fail(&format!("{css} not reached in {max} Tabs: {passed:?}"))
        .await;
}

#[tokio::test]
async fn the_site_works_by_keyboard() {
    let p = Page::open().await;
    p.goto("/").await;
    p.find("#runs tbody tr").await;
    // the skip link moves the focus to the content
    p.press(Key::Tab).await;
    p.press(Key::Enter).await;
    p.until("the focus on the content", async || {
        let id = p.js("return document.activeElement.id;", vec![]).await;
        (id.as_str() == Some("content")).then_some(())
    })
    .await;
    // a column sorts with Enter, a run is picked with Space
    tab_to(&p, "button.sort[data-sort='ndcg20']", 40).await;
    p.press(Key::Enter).await;
    p.wait_path("/?sort=ndcg20&dir=asc").await;
    tab_to(&p, "input.pick", 60).await;
    p.press(Key::Space).await;
    p.until("a run picked by Space", async || {
        let n = p
            .js(
                "return document.querySelectorAll('input.pick:checked').length;",
                vec![],
            )
            .await;
        (n.as_u64() == Some(1)).then_some(())
    })
    .await;
    // the browser's ranking: "Not interested" by keyboard reranks
    p.goto(&format!("/runs/{PERPEFT}/users/196")).await;
    let before = p.item_ids("#browser-recs", 20).await;
    tab_to(&p, "#browser-recs button.dismiss", 400).await;
    p.press(Key::Enter).await;
    let after = p.item_ids_changed("#browser-recs", 20, &before).await;
    assert_eq!(after[..19], before[1..20], "the first item was dismissed");

    p.goto("/").await;
    p.find("#runs tbody tr").await;
    // the first Tab reaches the skip link; then the banner's links, in order
    let mut order = Vec::new();
    for _ in 0..4 {
        p.press(Key::Tab).await;
        let t = p
            .js("return document.activeElement.textContent.trim();", vec![])
            .await;
        order.push(t.as_str().unwrap().to_string());
    }
    assert_eq!(
        order,
        ["Skip to content", "PerPEFT Studio", "Runs", "Training"]
    );
    p.screenshot("keyboard").await;
    // Enter follows the focused link
    p.press(Key::Enter).await;
    p.wait_path("/training").await;
    p.wait_text("h1", "Training").await;
    // the form's fields are reachable by Tab
    let mut reached = Vec::new();
    for _ in 0..40 {
        p.press(Key::Tab).await;
        let id = p.js("return document.activeElement.id;", vec![]).await;
        reached.push(id.as_str().unwrap().to_string());
        if reached.last().unwrap() == "job-submit" {
            break;
        }
    }
    for field in [
        "job-token",
        "job-run",
        "job-dataset",
        "job-method",
        "job-epochs",
        "job-seed",
        "job-submit",
    ] {
        assert!(
            reached.iter().any(|r| r == field),
            "{field} not reached by Tab: {reached:?}"
        );
    }
    p.close().await;
}

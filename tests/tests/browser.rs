//! The page in a real headless Chromium (through chromedriver): the first finished run is
//! chosen, pick a user, see the history and the server's recommendations, check the browser's
//! own WASM ranking equals the server's, dismiss an item to rerank locally, and add one to the
//! history (the state is recomputed in WASM) and check the result against the server's answer
//! for that history.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{ID_ONLY, dist_dir, server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use shared::api::{Assignment, Recommendations, UserDetail};

/// chromedriver on a free port in its own process group; on drop the whole group (chromedriver
/// and the Chromium it started) is killed, so a failing test leaves no browser behind.
struct Driver {
    child: Child,
    port: u16,
    _profile: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} ({e}): install chromium-driver"));
    let profile =
        std::env::temp_dir().join(format!("perpeft-chromium-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&profile).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        port,
        _profile: TempDir(profile),
    }
}

async fn connect(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", driver._profile.0.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("connecting to chromedriver")
}

/// `data-item-id`s of the `li` children of `list`, once it has exactly `n` of them.
async fn item_ids(c: &Client, list: &str, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ids = Vec::new();
        for li in c
            .find_all(Locator::Css(&format!("{list} > li")))
            .await
            .unwrap()
        {
            if let Some(id) = li.attr("data-item-id").await.unwrap() {
                ids.push(id.parse().unwrap());
            }
        }
        if ids.len() == n {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{list} has {} items, expected {n}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The browser's list once it no longer shows `gone` (after a local rerank).
async fn reranked_without(c: &Client, gone: u32, action: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ids = item_ids(c, "#browser-recs", 20).await;
        if !ids.contains(&gone) {
            return ids;
        }
        assert!(Instant::now() < deadline, "{action} did not rerank");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn pick_a_user_and_see_recommendations_ranked_identically_in_the_browser() {
    let s = server(dist_dir());
    let driver = start_driver();
    let c = connect(&driver).await;
    c.goto(&s.url("/")).await.unwrap();

    let user = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("button.user[data-user-id='196']"))
        .await
        .expect("the user list shows user 196");
    user.click().await.unwrap();

    let history = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#history > li"))
        .await
        .expect("the history appears");
    assert!(!history.text().await.unwrap().is_empty());

    let api: Recommendations = reqwest::get(s.url(&format!(
        "/api/runs/{ID_ONLY}/users/196/recommendations?k=21"
    )))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let api_ids: Vec<u32> = api.items.iter().map(|r| r.item.id).collect();

    let server_list = item_ids(&c, "#server-recs", 20).await;
    let browser_list = item_ids(&c, "#browser-recs", 20).await;
    assert_eq!(
        server_list,
        api_ids[..20],
        "the page shows the server's ranking"
    );
    assert_eq!(
        browser_list, server_list,
        "the WASM scorer ranks exactly as the server does"
    );
    let first_title = text(&c, "#server-recs > li").await;
    assert!(
        first_title.starts_with(&api.items[0].item.title),
        "{first_title:?}"
    );

    // Dismiss the top item: the browser reranks locally and pulls in the 21st.
    click(&c, "#browser-recs > li button.dismiss").await;
    let reranked = reranked_without(&c, api_ids[0], "dismissing").await;
    assert_eq!(reranked, api_ids[1..21]);

    // Add the new top item to the history: the browser recomputes the SASRec state in WASM and
    // reranks; the server, asked about the same new history, ranks the same way.
    let added = api_ids[1];
    click(&c, "#browser-recs > li button.add").await;
    let detail: UserDetail = reqwest::get(s.url(&format!("/api/runs/{ID_ONLY}/users/196")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut history: Vec<u32> = detail.history.iter().map(|i| i.id).collect();
    history.push(added);
    let fresh: Assignment = reqwest::Client::new()
        .post(s.url(&format!("/api/runs/{ID_ONLY}/assign")))
        .json(&json!({ "history": history, "k": 25, "group": 0 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected: Vec<u32> = fresh
        .recommendations
        .items
        .iter()
        .map(|r| r.item.id)
        .filter(|&i| i != api_ids[0])
        .take(20)
        .collect();
    let reranked = reranked_without(&c, added, "adding to the history").await;
    assert_eq!(
        reranked, expected,
        "the browser's recomputed ranking differs from the server's"
    );
    let note = text(&c, "#browser-note").await;
    assert!(
        note.contains("1 dismissed") && note.contains("1 added"),
        "{note}"
    );
    c.close().await.unwrap();
}

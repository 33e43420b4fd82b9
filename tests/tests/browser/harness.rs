//! The browser side of the end-to-end tests: a headless Chromium through chromedriver (one per
//! test, in its own process group, killed with its browser when the test ends, even by a
//! panic), waits on the page, the server's own answers to compare the page with, a basic
//! accessibility check, and full-page screenshots into one artifacts folder.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{TestServer, dist_dir, repo_root, server};
use fantoccini::actions::{InputSource, KeyAction, KeyActions, MouseActions, PointerAction};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How long a wait for the page lasts before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Where the screenshots go: `PERPEFT_ARTIFACTS`, or `artifacts/browser` in the repository.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("PERPEFT_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("artifacts/browser"))
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// chromedriver on a free port in its own process group; on drop the whole group (chromedriver
/// and the Chromium it started) is killed, so a failing test leaves no browser behind.
struct Driver {
    child: Child,
    port: u16,
    profile: TempDir,
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
        profile: TempDir(profile),
    }
}

/// One test's browser on the test server.
pub struct Page {
    pub c: Client,
    pub server: &'static TestServer,
    _driver: Driver,
}

impl Page {
    /// A fresh headless Chromium (1400 × 1000) on the test server (trained once per process).
    pub async fn open() -> Self {
        Self::open_on(server(dist_dir())).await
    }

    /// A fresh headless Chromium (1400 × 1000) on `server`.
    pub async fn open_on(server: &'static TestServer) -> Self {
        let driver = start_driver();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", driver.profile.0.display()),
                ]
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("connecting to chromedriver");
        Self {
            c,
            server,
            _driver: driver,
        }
    }

    /// Opens `path` of the test server by its URL (a deep link or a reload).
    pub async fn goto(&self, path: &str) {
        self.c.goto(&self.server.url(path)).await.unwrap();
    }

    /// The path and query of the page's URL.
    pub async fn path(&self) -> String {
        let u = self.c.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Waits until the URL's path and query are `want`.
    pub async fn wait_path(&self, want: &str) {
        self.until(&format!("the URL to be {want}"), async || {
            (self.path().await == want).then_some(())
        })
        .await;
    }

    /// Polls `check` until it gives `Some`, failing with `what` after [`PATIENCE`].
    pub async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(x) = check().await {
                return x;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("waited {PATIENCE:?} for {what}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the page as it is (named after the failing test), then fails
    /// with `message`.
    pub async fn fail(&self, message: &str) -> ! {
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "-");
        let shot = self.screenshot(&format!("FAILED-{test}")).await;
        panic!("{message} (the page as it was: {})", shot.display());
    }

    /// The first element matching `css`, once there is one.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no {css} on the page ({e})")).await,
        }
    }

    /// Every element matching `css` (now).
    pub async fn all(&self, css: &str) -> Vec<fantoccini::elements::Element> {
        self.c.find_all(Locator::Css(css)).await.unwrap()
    }

    /// Text of the first element matching `css`, once there is one.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Waits until the first `css` has text containing `part`; returns the text.
    pub async fn wait_text(&self, css: &str, part: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            if let Ok(e) = self.c.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if t.contains(part) {
                    return t;
                }
                last = Some(t);
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "waited {PATIENCE:?} for {css} to say {part:?}; it says {last:?}"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Types `text` into the first `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Chooses `value` in the `<select>` `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css} has no option {value} ({e})"));
    }

    /// Attribute `name` of the first `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.unwrap()
    }

    /// `data-item-id`s of the `li` children of `list` now (`None` while one lacks its id).
    async fn list_ids(&self, list: &str) -> Option<Vec<u32>> {
        let mut ids = Vec::new();
        for li in self.all(&format!("{list} > li")).await {
            let id = li.attr("data-item-id").await.ok()??;
            ids.push(
                id.parse()
                    .unwrap_or_else(|_| panic!("{list}: item id {id:?}")),
            );
        }
        Some(ids)
    }

    /// `data-item-id`s of the `li` children of `list`, once it has exactly `n` of them.
    pub async fn item_ids(&self, list: &str, n: usize) -> Vec<u32> {
        self.until(&format!("{list} to have {n} items"), async || {
            self.list_ids(list).await.filter(|ids| ids.len() == n)
        })
        .await
    }

    /// `list`'s item ids once they differ from `old` (after a rerank).
    pub async fn item_ids_changed(&self, list: &str, n: usize, old: &[u32]) -> Vec<u32> {
        self.until(&format!("{list} to change"), async || {
            self.list_ids(list)
                .await
                .filter(|ids| ids.len() == n && ids != old)
        })
        .await
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c.execute(script, args).await.unwrap()
    }

    /// Presses `key` once, wherever the focus is.
    pub async fn press(&self, key: Key) {
        let k: char = key.into();
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: k })
            .then(KeyAction::Up { value: k });
        self.c.perform_actions(keys).await.unwrap();
    }

    /// Moves the mouse to (x, y) of the viewport and rests there.
    pub async fn hover(&self, x: f64, y: f64) {
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveTo {
                duration: Some(Duration::from_millis(100)),
                x,
                y,
            })
            .pause(Duration::from_millis(300));
        self.c.perform_actions(mouse).await.unwrap();
    }

    /// Clicks at the mouse's position.
    pub async fn click_here(&self) {
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::Down {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: fantoccini::actions::MOUSE_BUTTON_LEFT,
            });
        self.c.perform_actions(mouse).await.unwrap();
    }

    /// Saves a screenshot of the whole page (not only the window) as `NAME.png` in
    /// [`artifacts_dir`], and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let h = self
            .js(
                "return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )
            .await
            .as_f64()
            .unwrap_or(1000.0) as u32;
        self.c
            .set_window_size(1400, h.clamp(600, 12_000) + 140)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let png = self.c.screenshot().await.unwrap();
        self.c.set_window_size(1400, 1000).await.unwrap();
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        // written whole or not at all
        let path = dir.join(format!("{name}.png"));
        let partial = dir.join(format!(".{name}.png.part"));
        std::fs::write(&partial, png).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    }

    /// Checks the labels a screen-reader user needs on the current page (keyboard use is
    /// tested in `a11y.rs`): the language,
    /// one `h1`, a `main` landmark, a labelled main navigation, an accessible name on every
    /// control and chart, no id used twice (a label would name the wrong control). Fails with
    /// the offenders.
    pub async fn check_accessible(&self) {
        let problems = self
            .js(
                r#"
                const out = [];
                if (!document.documentElement.lang) out.push('no lang on <html>');
                const h1 = document.querySelectorAll('h1').length;
                if (h1 !== 1) out.push(h1 + ' h1 elements');
                if (!document.querySelector('main')) out.push('no <main>');
                if (!document.querySelector('nav[aria-label="Main"]')) out.push('no labelled main nav');
                const named = (el) => {
                  if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return true;
                  if (el.id && document.querySelector('label[for="' + el.id + '"]')) return true;
                  if (el.closest('label')) return true;
                  if ((el.tagName === 'BUTTON' || el.tagName === 'A') && el.textContent.trim()) return true;
                  return false;
                };
                for (const el of document.querySelectorAll('input, select, textarea, button, a[href]')) {
                  if (el.type === 'hidden') continue;
                  if (!named(el)) out.push('unnamed ' + el.outerHTML.slice(0, 120));
                }
                for (const el of document.querySelectorAll('.chart')) {
                  if (el.getAttribute('role') !== 'img' || !el.getAttribute('aria-label')) out.push('chart without a name: ' + el.id);
                }
                const ids = new Set();
                for (const el of document.querySelectorAll('[id]')) {
                  if (ids.has(el.id)) out.push('duplicate id ' + el.id);
                  ids.add(el.id);
                }
                for (const img of document.querySelectorAll('img')) {
                  if (!img.hasAttribute('alt')) out.push('img without alt');
                }
                return out;
                "#,
                vec![],
            )
            .await;
        assert_eq!(
            problems,
            json!([]),
            "accessibility problems on {}",
            self.path().await
        );
    }

    /// The test server's JSON answer to `GET path`.
    pub async fn api<T: DeserializeOwned>(&self, path: &str) -> T {
        let resp = reqwest::get(self.server.url(path)).await.unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// The test server's JSON answer to `POST path` with `body`.
    pub async fn api_post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> T {
        let resp = reqwest::Client::new()
            .post(self.server.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Ends the session.
    pub async fn close(self) {
        self.c.close().await.unwrap();
    }
}

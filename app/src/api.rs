//! Every call the app makes to the server, in one place, with one error type. What the
//! browser ranks with (a group's scorer bundle, a run's grouping and catalogue) is fetched once
//! per page load and kept, decoded, for every later use.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::rc::Rc;
use std::thread::LocalKey;

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::api::{
    Comparison, DatasetInfo, GroupsBody, Item, Job, JobRequest, MapBody, Recommendations,
    RunDetail, RunSummary, UserDetail, UsersPage,
};
use shared::bundle::ScorerBundle;
use shared::groups::Grouping;
use shared::{ItemTable, Scored, top_k};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The request did not reach the server, or its answer did not arrive.
    Network(String),
    /// The server answered with an error status and its `{"error": ...}` message.
    Status { status: u16, message: String },
    /// The answer was not what the app expected.
    Decode(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(e) => write!(f, "the server could not be reached: {e}"),
            Self::Status { status, message } => write!(f, "{status}: {message}"),
            Self::Decode(e) => write!(f, "unexpected answer from the server: {e}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

async fn read<T: DeserializeOwned>(resp: Response) -> ApiResult<T> {
    if !resp.ok() {
        let status = resp.status();
        let message = match resp.json::<shared::api::ApiError>().await {
            Ok(e) => e.error,
            Err(_) => resp.status_text(),
        };
        return Err(ApiError::Status { status, message });
    }
    resp.json::<T>()
        .await
        .map_err(|e| ApiError::Decode(e.to_string()))
}

async fn send<T: DeserializeOwned>(req: RequestBuilder) -> ApiResult<T> {
    let resp = req
        .send()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?;
    read(resp).await
}

async fn get<T: DeserializeOwned>(url: &str) -> ApiResult<T> {
    send(Request::get(url)).await
}

/// A name or id as one URL path segment or query value (ids are free text in the plain
/// data format).
pub fn seg(id: &str) -> String {
    String::from(js_sys::encode_uri_component(id))
}

/// `GET /api/runs`.
pub async fn runs() -> ApiResult<Vec<RunSummary>> {
    get("/api/runs").await
}

/// `GET /api/runs/{run}`.
pub async fn run(run: &str) -> ApiResult<RunDetail> {
    get(&format!("/api/runs/{}", seg(run))).await
}

/// `GET /api/runs/{run}/groups`.
pub async fn groups(run: &str) -> ApiResult<GroupsBody> {
    get(&format!("/api/runs/{}/groups", seg(run))).await
}

/// `GET /api/runs/{run}/map?method=`.
pub async fn map(run: &str, method: &str) -> ApiResult<MapBody> {
    get(&format!(
        "/api/runs/{}/map?method={}",
        seg(run),
        seg(method)
    ))
    .await
}

/// `GET /api/runs/{run}/users?group=&offset=&limit=`.
pub async fn users(
    run: &str,
    group: Option<usize>,
    offset: usize,
    limit: usize,
) -> ApiResult<UsersPage> {
    let group = group.map(|g| format!("&group={g}")).unwrap_or_default();
    get(&format!(
        "/api/runs/{}/users?offset={offset}&limit={limit}{group}",
        seg(run)
    ))
    .await
}

/// `GET /api/runs/{run}/users/{id}`.
pub async fn user(run: &str, id: &str) -> ApiResult<UserDetail> {
    get(&format!("/api/runs/{}/users/{}", seg(run), seg(id))).await
}

/// `GET /api/runs/{run}/users/{id}/recommendations?k=&group=`.
pub async fn recommendations(
    run: &str,
    id: &str,
    k: usize,
    group: Option<usize>,
) -> ApiResult<Recommendations> {
    let group = group.map(|g| format!("&group={g}")).unwrap_or_default();
    get(&format!(
        "/api/runs/{}/users/{}/recommendations?k={k}{group}",
        seg(run),
        seg(id)
    ))
    .await
}

/// `GET /api/compare?user=&runs=&k=`.
pub async fn compare(user: &str, runs: &[String], k: usize) -> ApiResult<Comparison> {
    let runs: Vec<String> = runs.iter().map(|r| seg(r)).collect();
    get(&format!(
        "/api/compare?user={}&runs={}&k={k}",
        seg(user),
        runs.join(",")
    ))
    .await
}

/// `GET /api/datasets`.
pub async fn datasets() -> ApiResult<Vec<DatasetInfo>> {
    get("/api/datasets").await
}

/// `GET /api/jobs`.
pub async fn jobs() -> ApiResult<Vec<Job>> {
    get("/api/jobs").await
}

/// `GET /api/jobs/{id}`.
pub async fn job(id: u64) -> ApiResult<Job> {
    get(&format!("/api/jobs/{id}")).await
}

fn bearer(req: RequestBuilder, token: &str) -> RequestBuilder {
    req.header("Authorization", &format!("Bearer {}", token.trim()))
}

fn with_json<B: Serialize>(req: RequestBuilder, body: &B) -> ApiResult<Request> {
    req.json(body).map_err(|e| ApiError::Decode(e.to_string()))
}

/// `POST /api/jobs` with the bearer token.
pub async fn submit_job(req: &JobRequest, token: &str) -> ApiResult<Job> {
    let request = with_json(bearer(Request::post("/api/jobs"), token), req)?;
    let resp = request
        .send()
        .await
        .map_err(|e| ApiError::Network(e.to_string()))?;
    read(resp).await
}

/// `DELETE /api/jobs/{id}` with the bearer token.
pub async fn cancel_job(id: u64, token: &str) -> ApiResult<Job> {
    send(bearer(Request::delete(&format!("/api/jobs/{id}")), token)).await
}

/// A group's scorer, decoded once: SASRec's inference weights and the group's item table.
pub struct Scorer {
    pub bundle: ScorerBundle,
    /// The table as `f32`, row-major `[rows, hidden]`.
    pub table: Vec<f32>,
}

impl Scorer {
    /// The top `k` items for `history` (oldest first) with this group's table, leaving out
    /// `exclude`: SASRec's state in WASM, then every item of the catalogue scored.
    pub fn rank(&self, history: &[u32], exclude: &[u32], k: usize) -> Vec<Scored> {
        let t = ItemTable::new(self.bundle.scorer.hidden, &self.table)
            .expect("checked when the bundle was decoded");
        let state = self.bundle.scorer.user_state(&t, history);
        top_k(&state, &t, exclude, k)
    }

    /// Items the table ranks (the padding row apart).
    pub fn items(&self) -> usize {
        self.bundle.rows.saturating_sub(1)
    }
}

thread_local! {
    static SCORERS: RefCell<HashMap<(String, usize), Rc<Scorer>>> = RefCell::default();
    static GROUPINGS: RefCell<HashMap<String, Rc<Option<Grouping>>>> = RefCell::default();
    static CATALOGUES: RefCell<HashMap<String, Rc<Vec<Item>>>> = RefCell::default();
}

/// `cache`'s value for `key`, else `fetch`'s, kept for the next call (errors are not kept).
async fn cached<K: Eq + Hash, V: Clone>(
    cache: &'static LocalKey<RefCell<HashMap<K, V>>>,
    key: K,
    fetch: impl Future<Output = ApiResult<V>>,
) -> ApiResult<V> {
    if let Some(v) = cache.with_borrow(|m| m.get(&key).cloned()) {
        return Ok(v);
    }
    let v = fetch.await?;
    cache.with_borrow_mut(|m| m.insert(key, v.clone()));
    Ok(v)
}

/// Group `g`'s scorer of `run` (`GET .../groups/{g}/scorer?encoding=f32`, bit-exact, so the
/// browser ranks exactly as the server does), fetched once.
pub async fn scorer(run: &str, g: usize) -> ApiResult<Rc<Scorer>> {
    cached(&SCORERS, (run.to_string(), g), async {
        let bundle: ScorerBundle = get(&format!(
            "/api/runs/{}/groups/{g}/scorer?encoding=f32",
            seg(run)
        ))
        .await?;
        let table = bundle.table().map_err(ApiError::Decode)?;
        Ok(Rc::new(Scorer { bundle, table }))
    })
    .await
}

/// Run `run`'s grouping (`GET /api/runs/{run}/grouping`): `None` for a run with one table.
pub async fn grouping(run: &str) -> ApiResult<Rc<Option<Grouping>>> {
    cached(&GROUPINGS, run.to_string(), async {
        match get::<Grouping>(&format!("/api/runs/{}/grouping", seg(run))).await {
            Ok(g) => Ok(Rc::new(Some(g))),
            Err(e) if e.status() == Some(404) => Ok(Rc::new(None)),
            Err(e) => Err(e),
        }
    })
    .await
}

/// Run `run`'s catalogue (`GET /api/runs/{run}/items`), by internal id − 1, fetched once.
pub async fn catalogue(run: &str) -> ApiResult<Rc<Vec<Item>>> {
    cached(&CATALOGUES, run.to_string(), async {
        Ok(Rc::new(
            get(&format!("/api/runs/{}/items", seg(run))).await?,
        ))
    })
    .await
}

/// Milliseconds since the page loaded (`performance.now()`).
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

//! Handlers of the runs: listing and detail, groups, the user map, users, recommendations (a
//! user's own group or any other), new histories, scorer bundles (with ETags), adapters in the
//! Hugging Face PEFT layout, and comparisons of one user across runs.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::api::{
    self, Assignment, Comparison, Distinctive, EpochPoint, GroupCard, GroupsBody, HeldOutRank,
    MapBody, MapPoint, Overlap, Recommendation, Recommendations, RunDetail, RunSummary, Shift,
    StageTime, UserDetail, UserSummary, UsersPage,
};
use shared::bundle::ScorerBundle;
use shared::groups::Grouping;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiResult, Error};
use crate::engine::{Engine, Ranking};

/// Largest page of users.
pub const MAX_PAGE: usize = 500;
/// Largest `k`.
pub const MAX_K: usize = 200;
/// Longest history of a new user.
pub const MAX_HISTORY: usize = 2000;
/// Most runs in one comparison.
pub const MAX_COMPARE: usize = 8;

/// Run `name` opened (off the async runtime: the first request opens it).
async fn engine(s: &AppState, name: &str) -> Result<Arc<Engine>, Error> {
    let catalog = s.catalog.clone();
    let name = name.to_string();
    Ok(tokio::task::spawn_blocking(move || catalog.engine(&name)).await??)
}

fn item(e: &Engine, id: u32) -> api::Item {
    let meta = e.dataset.item(id).expect("item ids come from the dataset");
    api::Item {
        id,
        raw_id: meta.raw_id.clone(),
        title: meta.title.clone(),
        categories: meta.categories.clone(),
    }
}

fn find_user(e: &Engine, id: &str) -> Result<usize, Error> {
    e.dataset
        .user_index(id)
        .ok_or_else(|| Error::NotFound(format!("no user {id:?} in {}", e.record.dataset)))
}

fn check_k(k: Option<usize>) -> Result<usize, Error> {
    let k = k.unwrap_or(20);
    if k == 0 || k > MAX_K {
        return Err(Error::BadRequest(format!(
            "k must be between 1 and {MAX_K}"
        )));
    }
    Ok(k)
}

/// A group named in the path: a resource of the run, or 404.
fn group_in_path(e: &Engine, g: usize) -> Result<usize, Error> {
    if g < e.n_groups() {
        Ok(g)
    } else {
        Err(Error::NotFound(format!(
            "group {g} does not exist: the run has {} group(s), 0..{}",
            e.n_groups(),
            e.n_groups()
        )))
    }
}

fn check_group(e: &Engine, g: Option<usize>) -> Result<Option<usize>, Error> {
    match g {
        Some(g) if g >= e.n_groups() => Err(Error::BadRequest(format!(
            "group {g} does not exist: the run has {} group(s), 0..{}",
            e.n_groups(),
            e.n_groups()
        ))),
        g => Ok(g),
    }
}

fn ranked(e: &Engine, user: String, own: Option<usize>, r: Ranking) -> Recommendations {
    Recommendations {
        run: e.name.clone(),
        user,
        group: r.group,
        own_group: own.is_none_or(|g| g == r.group),
        items: r
            .items
            .iter()
            .map(|s| Recommendation {
                item: item(e, s.item),
                score: s.score,
            })
            .collect(),
        held_out: r.held_out.map(|(t, rank, in_list)| HeldOutRank {
            item: item(e, t),
            rank,
            in_list,
        }),
    }
}

/// Every run of the registry (finished or not), oldest first.
#[utoipa::path(get, path = "/runs", tag = "runs",
    responses((status = 200, body = Vec<RunSummary>)))]
pub async fn list_runs(State(s): State<AppState>) -> ApiResult<Vec<RunSummary>> {
    let catalog = s.catalog.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || catalog.runs()).await??,
    ))
}

/// A run's configuration, curves, best epoch, test metrics overall and per group, timings.
#[utoipa::path(get, path = "/runs/{run}", tag = "runs",
    params(("run" = String, Path, description = "Run name")),
    responses((status = 200, body = RunDetail), (status = 404, body = api::ApiError), (status = 400, description = "A malformed path or query", body = api::ApiError)))]
pub async fn run_detail(
    State(s): State<AppState>,
    run: Result<Path<String>, PathRejection>,
) -> ApiResult<RunDetail> {
    let Path(run) = run?;
    let catalog = s.catalog.clone();
    let (summary, r) = tokio::task::spawn_blocking(move || catalog.record(&run)).await??;
    let groups = if r.best_groups.is_empty() {
        let best = crate::config::select::best_epoch(&r.epochs);
        best.map(|e| {
            vec![api::Split {
                valid: e.valid,
                test: e.test,
            }]
        })
        .unwrap_or_default()
    } else {
        r.best_groups
            .iter()
            .map(|&(valid, test)| api::Split { valid, test })
            .collect()
    };
    Ok(Json(RunDetail {
        summary,
        config: serde_json::to_value(&r.train).unwrap_or_default(),
        model: serde_json::to_value(&r.model).unwrap_or_default(),
        dataset_checksum: r.dataset_checksum.clone(),
        curve: r
            .epochs
            .iter()
            .map(crate::jobs::point)
            .collect::<Vec<EpochPoint>>(),
        groups,
        group_sizes: r.groups.clone().unwrap_or_default(),
        stages: r
            .stages
            .iter()
            .map(|(stage, seconds)| StageTime {
                stage: stage.clone(),
                seconds: *seconds,
            })
            .collect(),
        adapter_params: r.adapter_params,
    }))
}

/// Every group: size, centroid, metrics under its own table and under the global model,
/// distinctive items and categories, the items its adapter moves most.
#[utoipa::path(get, path = "/runs/{run}/groups", tag = "runs",
    params(("run" = String, Path, description = "Run name")),
    responses((status = 200, body = GroupsBody), (status = 404, body = api::ApiError),
        (status = 409, description = "The run is not finished", body = api::ApiError), (status = 400, description = "A malformed path or query", body = api::ApiError)))]
pub async fn groups(
    State(s): State<AppState>,
    run: Result<Path<String>, PathRejection>,
) -> ApiResult<GroupsBody> {
    let Path(run) = run?;
    let e = engine(&s, &run).await?;
    let split = |(valid, test)| api::Split { valid, test };
    let groups = e
        .insights()
        .cards
        .iter()
        .map(|c| GroupCard {
            group: c.group,
            size: c.size,
            centroid: c.centroid.clone(),
            own: split(c.own),
            global: c.global.map(split),
            gain_ndcg20: c.global.map(|g| c.own.1.ndcg20 - g.1.ndcg20),
            items: c
                .items
                .iter()
                .map(|l| Distinctive {
                    item: Some(item(&e, l.key)),
                    category: None,
                    count: l.count,
                    group_share: l.group_share,
                    catalogue_share: l.catalogue_share,
                    lift: l.lift,
                })
                .collect(),
            categories: c
                .categories
                .iter()
                .map(|l| Distinctive {
                    item: None,
                    category: Some(l.key.clone()),
                    count: l.count,
                    group_share: l.group_share,
                    catalogue_share: l.catalogue_share,
                    lift: l.lift,
                })
                .collect(),
            promoted: shifts(&e, &c.promoted),
            demoted: shifts(&e, &c.demoted),
        })
        .collect();
    Ok(Json(GroupsBody { run, groups }))
}

fn shifts(e: &Engine, s: &[(u32, usize, usize)]) -> Vec<Shift> {
    s.iter()
        .map(|&(i, group_rank, global_rank)| Shift {
            item: item(e, i),
            group_rank,
            global_rank,
        })
        .collect()
}

/// Which projection of the users.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MapQuery {
    /// `pca` (default) or `tsne` (computed on the first request, then kept).
    method: Option<String>,
}

/// Every user's 2-D position (a projection of the grouping representation) and group.
#[utoipa::path(get, path = "/runs/{run}/map", tag = "runs",
    params(("run" = String, Path, description = "Run name"), MapQuery),
    responses((status = 200, body = MapBody), (status = 400, body = api::ApiError),
        (status = 404, body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn map(
    State(s): State<AppState>,
    run: Result<Path<String>, PathRejection>,
    q: Result<Query<MapQuery>, QueryRejection>,
) -> ApiResult<MapBody> {
    let (Path(run), Query(q)) = (run?, q?);
    let method = q.method.unwrap_or_else(|| "pca".into());
    if method != "pca" && method != "tsne" {
        return Err(Error::BadRequest(format!(
            "method must be pca or tsne, not {method:?}"
        )));
    }
    let e = engine(&s, &run).await?;
    let m = if method == "tsne" {
        let e = e.clone();
        tokio::task::spawn_blocking(move || e.tsne().cloned()).await??
    } else {
        e.insights().map.clone()
    };
    let points = m
        .points
        .iter()
        .enumerate()
        .map(|(u, p)| MapPoint {
            user: e.dataset.user_ids[u].clone(),
            group: e.group_of(u),
            x: p[0],
            y: p[1],
            top: top_categories(&e, u),
        })
        .collect();
    Ok(Json(MapBody {
        run,
        method,
        explained: m.explained.clone(),
        points,
    }))
}

/// User `u`'s three most frequent categories in their training interactions (ties by name).
fn top_categories(e: &Engine, u: usize) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for &i in &e.split().train[u] {
        for c in &e.dataset.item(i).expect("dataset items").categories {
            *counts.entry(c.as_str()).or_default() += 1;
        }
    }
    let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.into_iter()
        .take(3)
        .map(|(c, _)| c.to_string())
        .collect()
}

/// The run's catalogue: every item with its display data, by internal id.
#[utoipa::path(get, path = "/runs/{run}/items", tag = "runs",
    params(("run" = String, Path, description = "Run name")),
    responses((status = 200, body = Vec<api::Item>), (status = 404, body = api::ApiError), (status = 400, description = "A malformed path or query", body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn items(
    State(s): State<AppState>,
    run: Result<Path<String>, PathRejection>,
) -> ApiResult<Vec<api::Item>> {
    let Path(run) = run?;
    let e = engine(&s, &run).await?;
    Ok(Json(
        (1..=e.dataset.n_items() as u32)
            .map(|i| item(&e, i))
            .collect(),
    ))
}

/// Paging and group filter of a user listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Only this group's users.
    group: Option<usize>,
    /// First user (default 0).
    offset: Option<usize>,
    /// Users per page (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Users of the run's dataset, a page at a time, optionally of one group.
#[utoipa::path(get, path = "/runs/{run}/users", tag = "runs",
    params(("run" = String, Path, description = "Run name"), UsersQuery),
    responses((status = 200, body = UsersPage), (status = 400, body = api::ApiError),
        (status = 404, body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn users(
    State(s): State<AppState>,
    run: Result<Path<String>, PathRejection>,
    q: Result<Query<UsersQuery>, QueryRejection>,
) -> ApiResult<UsersPage> {
    let (Path(run), Query(q)) = (run?, q?);
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let e = engine(&s, &run).await?;
    let group = check_group(&e, q.group)?;
    let matching: Vec<usize> = (0..e.dataset.n_users())
        .filter(|&u| group.is_none_or(|g| e.group_of(u) == g))
        .collect();
    let users = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|&u| UserSummary {
            id: e.dataset.user_ids[u].clone(),
            interactions: e.dataset.sequences[u].len(),
            group: e.group_of(u),
        })
        .collect();
    Ok(Json(UsersPage {
        users,
        total: matching.len(),
        offset,
        limit,
    }))
}

/// A user's interactions (the held-out test item apart) and group.
#[utoipa::path(get, path = "/runs/{run}/users/{id}", tag = "runs",
    params(("run" = String, Path, description = "Run name"), ("id" = String, Path, description = "The dataset's user id")),
    responses((status = 200, body = UserDetail), (status = 404, body = api::ApiError), (status = 400, description = "A malformed path or query", body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn user(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<UserDetail> {
    let Path((run, id)) = path?;
    let e = engine(&s, &run).await?;
    let u = find_user(&e, &id)?;
    // the input is the sequence's prefix and the held-out item its last: times by position
    let input = e.input(u);
    let at = |pos: usize, i: u32| api::Interaction {
        item: item(&e, i),
        time: e.dataset.time(u, pos),
    };
    Ok(Json(UserDetail {
        group: e.group_of(u),
        held_out: e.held_out(u).map(|i| at(input.len(), i)),
        history: input.iter().enumerate().map(|(p, &i)| at(p, i)).collect(),
        id,
    }))
}

/// `k` and the group to rank with.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecsQuery {
    /// How many items (1 to 200, default 20).
    #[param(minimum = 1, maximum = 200)]
    k: Option<usize>,
    /// Rank as this group instead of the user's own.
    group: Option<usize>,
}

/// A user's top-k with their own group's table (or another group's), and where their held-out
/// test item ranks.
#[utoipa::path(get, path = "/runs/{run}/users/{id}/recommendations", tag = "runs",
    params(("run" = String, Path, description = "Run name"), ("id" = String, Path, description = "The dataset's user id"), RecsQuery),
    responses((status = 200, body = Recommendations), (status = 400, body = api::ApiError),
        (status = 404, body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn recommendations(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<RecsQuery>, QueryRejection>,
) -> ApiResult<Recommendations> {
    let (Path((run, id)), Query(q)) = (path?, q?);
    let k = check_k(q.k)?;
    let e = engine(&s, &run).await?;
    let group = check_group(&e, q.group)?;
    let u = find_user(&e, &id)?;
    let r = e.recommend(u, k, group)?;
    Ok(Json(ranked(&e, id, Some(e.group_of(u)), r)))
}

/// A history the model has not seen: its group (nearest centroid of its global-model state)
/// and recommendations.
#[utoipa::path(post, path = "/runs/{run}/assign", tag = "runs",
    params(("run" = String, Path, description = "Run name")),
    request_body = api::AssignRequest,
    responses((status = 200, body = Assignment), (status = 400, body = api::ApiError),
        (status = 413, body = api::ApiError), (status = 422, body = api::ApiError), (status = 404, description = "No such run", body = api::ApiError), (status = 408, description = "The body did not arrive in time", body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError), (status = 415, description = "The body is not JSON", body = api::ApiError)))]
pub async fn assign(
    State(s): State<AppState>,
    run: Result<Path<String>, PathRejection>,
    body: Result<Json<api::AssignRequest>, JsonRejection>,
) -> ApiResult<Assignment> {
    let (Path(run), Json(req)) = (run?, body?);
    let k = check_k(req.k)?;
    if req.history.len() > MAX_HISTORY {
        return Err(Error::TooLarge(format!(
            "a history of {} items; at most {MAX_HISTORY}",
            req.history.len()
        )));
    }
    let e = engine(&s, &run).await?;
    let (assigned, distances, r) = e.recommend_for_history(&req.history, k, req.group)?;
    Ok(Json(Assignment {
        assigned,
        distances,
        recommendations: ranked(&e, String::new(), Some(assigned), r),
    }))
}

/// What places a history in a group, for the browser: the global model and the centroids.
#[utoipa::path(get, path = "/runs/{run}/grouping", tag = "runs",
    params(("run" = String, Path, description = "Run name")),
    responses((status = 200, body = Grouping),
        (status = 404, description = "Unknown run, or a single-table run", body = api::ApiError), (status = 400, description = "A malformed path or query", body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn grouping(
    State(s): State<AppState>,
    run: Result<Path<String>, PathRejection>,
) -> ApiResult<Grouping> {
    let Path(run) = run?;
    let e = engine(&s, &run).await?;
    e.grouping().cloned().map(Json).ok_or_else(|| {
        Error::NotFound(format!(
            "{run} has one item table for everybody: no grouping"
        ))
    })
}

/// How to encode a bundle's table.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BundleQuery {
    /// `f16` (default, half the bytes) or `f32` (bit-exact).
    encoding: Option<shared::bundle::Encoding>,
}

/// The bundle the browser ranks a group's users with, with an ETag.
#[utoipa::path(get, path = "/runs/{run}/groups/{g}/scorer", tag = "runs",
    params(("run" = String, Path, description = "Run name"), ("g" = usize, Path, description = "Group"), BundleQuery),
    responses((status = 200, body = ScorerBundle),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match"),
        (status = 400, body = api::ApiError),
        (status = 404, description = "No such run or group", body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn scorer_bundle(
    State(s): State<AppState>,
    path: Result<Path<(String, usize)>, PathRejection>,
    q: Result<Query<BundleQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let (Path((run, g)), Query(q)) = (path?, q?);
    let e = engine(&s, &run).await?;
    group_in_path(&e, g)?;
    let encoding = q.encoding.unwrap_or_default();
    let key = (run.clone(), g, encoding);
    let encoded = match s.bundles.get(&key, &e) {
        Some(encoded) => encoded,
        None => {
            let bundle = e.scorer_bundle(g, encoding)?;
            let encoded = Arc::new(EncodedBundle::new(&bundle)?);
            s.bundles.put(key, &e, encoded.clone());
            encoded
        }
    };
    let etag = &encoded.etag;
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(encoded.body.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(etag).expect("hex is a valid header"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// A scorer bundle as sent: its JSON and its ETag (a digest of the JSON).
pub struct EncodedBundle {
    body: axum::body::Bytes,
    etag: String,
}

impl EncodedBundle {
    fn new(bundle: &ScorerBundle) -> Result<Self, Error> {
        let body = serde_json::to_vec(bundle).map_err(|err| {
            tracing::error!(error = %err, "encoding a scorer bundle");
            Error::Internal
        })?;
        let digest = Sha256::digest(&body);
        let etag = format!(
            "\"{}\"",
            digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok(Self {
            body: body.into(),
            etag,
        })
    }
}

/// Values derived from an opened run, each kept with the run it came from: one is served only
/// while that run is the one the catalog serves (a run trained again since gets new ones).
pub struct PerRun<K, V>(std::sync::Mutex<HashMap<K, FromRun<V>>>);

/// A value and the opened run it came from.
type FromRun<V> = (Weak<Engine>, Arc<V>);

impl<K, V> Default for PerRun<K, V> {
    fn default() -> Self {
        Self(std::sync::Mutex::default())
    }
}

impl<K: std::hash::Hash + Eq, V> PerRun<K, V> {
    fn get(&self, key: &K, e: &Arc<Engine>) -> Option<Arc<V>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(from, _)| from.upgrade().is_some_and(|f| Arc::ptr_eq(&f, e)))
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, e: &Arc<Engine>, value: Arc<V>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, (Arc::downgrade(e), value));
    }
}

/// Scorer bundles already encoded, per run, group and encoding: a bundle is encoded and
/// digested once, not on every request.
pub type Bundles = PerRun<(String, usize, shared::bundle::Encoding), EncodedBundle>;

/// Adapter downloads already built, per run and group; one is built at a time (it loads the
/// backbone).
#[derive(Default)]
pub struct Adapters {
    built: PerRun<(String, usize), Vec<u8>>,
    building: tokio::sync::Mutex<()>,
}

/// Group `g`'s LoRA or (IA)3 adapter in the Hugging Face PEFT layout, as a zip of
/// `adapter_config.json` and `adapter_model.safetensors`.
#[utoipa::path(get, path = "/runs/{run}/groups/{g}/adapter", tag = "runs",
    params(("run" = String, Path, description = "Run name"), ("g" = usize, Path, description = "Group")),
    responses((status = 200, description = "A zip of adapter_config.json and adapter_model.safetensors", content_type = "application/zip"),
        (status = 404, description = "No such run or group", body = api::ApiError),
        (status = 422, description = "The run has no PEFT-layout adapter (id-only, frozen, IISAN)", body = api::ApiError), (status = 400, description = "A malformed path or query", body = api::ApiError), (status = 409, description = "The run is not finished", body = api::ApiError)))]
pub async fn adapter(
    State(s): State<AppState>,
    path: Result<Path<(String, usize)>, PathRejection>,
) -> Result<Response, Error> {
    let Path((run, g)) = path?;
    let e = engine(&s, &run).await?;
    group_in_path(&e, g)?;
    let key = (run.clone(), g);
    let zip = match s.adapters.built.get(&key, &e) {
        Some(zip) => zip,
        None => {
            let _one_at_a_time = s.adapters.building.lock().await;
            match s.adapters.built.get(&key, &e) {
                Some(zip) => zip,
                None => {
                    let (catalog, name, engine) = (s.catalog.clone(), run.clone(), e.clone());
                    let zip = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Error> {
                        let dir = catalog.run_dir(&name)?;
                        let adapter =
                            crate::export::hf_adapter(&dir, &engine.dataset, g, catalog.device())?;
                        Ok(crate::export::zip(&adapter)?)
                    })
                    .await??;
                    let zip = Arc::new(zip);
                    s.adapters.built.put(key, &e, zip.clone());
                    zip
                }
            }
        }
    };
    let mut r = Response::new(Body::from(zip.as_ref().clone()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    let file = format!("attachment; filename=\"{run}-group-{g}-adapter.zip\"");
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&file).map_err(|_| Error::Internal)?,
    );
    Ok(r)
}

/// Whom to compare and where.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The dataset's user id.
    user: String,
    /// Run names, comma-separated (2 to 8, on the same dataset).
    runs: String,
    /// Items per list (1 to 200, default 20).
    #[param(minimum = 1, maximum = 200)]
    k: Option<usize>,
}

/// One user's lists side by side across runs, each with the user's own group, with the
/// held-out item's rank in each and the overlap of every pair.
#[utoipa::path(get, path = "/compare", tag = "runs",
    params(CompareQuery),
    responses((status = 200, body = Comparison), (status = 400, body = api::ApiError),
        (status = 404, body = api::ApiError), (status = 409, description = "A run is not finished", body = api::ApiError), (status = 422, description = "The runs are trained on different datasets", body = api::ApiError)))]
pub async fn compare(
    State(s): State<AppState>,
    q: Result<Query<CompareQuery>, QueryRejection>,
) -> ApiResult<Comparison> {
    let Query(q) = q?;
    let k = check_k(q.k)?;
    let names: Vec<&str> = q
        .runs
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    if names.len() < 2 || names.len() > MAX_COMPARE {
        return Err(Error::BadRequest(format!(
            "runs must name 2 to {MAX_COMPARE} runs, comma-separated"
        )));
    }
    let mut lists = Vec::new();
    let mut dataset: Option<String> = None;
    for name in &names {
        let e = engine(&s, name).await?;
        let first = dataset.get_or_insert_with(|| e.record.dataset.clone());
        if *first != e.record.dataset {
            return Err(Error::Unprocessable(format!(
                "{name} is trained on {}, the other runs on {first}: compare runs of one dataset",
                e.record.dataset
            )));
        }
        let u = find_user(&e, &q.user)?;
        let r = e.recommend(u, k, None)?;
        lists.push(ranked(&e, q.user.clone(), Some(e.group_of(u)), r));
    }
    let mut overlaps = Vec::new();
    for (i, a) in lists.iter().enumerate() {
        for b in &lists[i + 1..] {
            let shared = a
                .items
                .iter()
                .filter(|x| b.items.iter().any(|y| y.item.id == x.item.id))
                .count();
            overlaps.push(Overlap {
                a: a.run.clone(),
                b: b.run.clone(),
                shared,
            });
        }
    }
    Ok(Json(Comparison {
        user: q.user,
        k,
        lists,
        overlaps,
    }))
}

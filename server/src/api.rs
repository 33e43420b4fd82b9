//! `api` owns HTTP: the axum router over an [`Engine`], JSON errors, and the static front end.
//! Handlers are thin: validate, call the engine, convert to `shared::api` bodies.

use std::path::Path;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shared::api::HistoryRequest;
use shared::api::{
    self, ApiError, Health, ModelInfo, Recommendation, Recommendations, UserDetail, UserState,
    UserSummary, UsersPage,
};
use shared::codec::encode_f32;
use tower_http::services::{ServeDir, ServeFile};

use crate::engine::Engine;

/// Largest page of users.
pub const MAX_PAGE: usize = 500;
/// Largest `k` for recommendations.
pub const MAX_K: usize = 200;

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<Engine>,
    /// Each group's item-table body (static, so encoded once).
    table_bodies: Arc<Vec<api::ItemTableBody>>,
}

impl AppState {
    /// Wraps an engine; precomputes the item-table bodies.
    pub fn new(engine: Engine) -> Self {
        let table_bodies = (0..engine.n_groups())
            .map(|g| {
                let table = engine.table(g);
                api::ItemTableBody {
                    group: g,
                    dim: table.dim(),
                    rows: table.len(),
                    data_b64: encode_f32(table.data()),
                    items: (1..table.len() as u32).map(|i| item(&engine, i)).collect(),
                }
            })
            .collect();
        Self {
            table_bodies: Arc::new(table_bodies),
            engine: Arc::new(engine),
        }
    }
}

/// Every failure a handler can answer with.
#[derive(Debug)]
pub enum Error {
    /// 400 with a reason.
    BadRequest(String),
    /// 404 with a reason.
    NotFound(String),
    /// A body axum refused before the handler ran for a reason with its own status (413 too
    /// large, 415 not JSON).
    Rejected(StatusCode, String),
    /// 500: the server failed, not the request (logged; the body says only that).
    Internal,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            Error::BadRequest(e) => (StatusCode::BAD_REQUEST, e),
            Error::NotFound(e) => (StatusCode::NOT_FOUND, e),
            Error::Rejected(status, e) => (status, e),
            Error::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (logged on the server)".into(),
            ),
        };
        (status, Json(ApiError { error })).into_response()
    }
}

impl From<crate::error::Error> for Error {
    fn from(e: crate::error::Error) -> Self {
        use crate::error::Error as E;
        match e {
            E::NotFound(_) => Error::NotFound(e.to_string()),
            E::Invalid(_) => Error::BadRequest(e.to_string()),
            other => {
                tracing::error!(error = %other, "serving a request failed");
                Error::Internal
            }
        }
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            s @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => {
                Error::Rejected(s, r.body_text())
            }
            // malformed JSON and JSON of the wrong shape alike
            _ => Error::BadRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::BadRequest(r.body_text())
    }
}

type ApiResult<T> = Result<Json<T>, Error>;

/// The whole application: `/api/...` plus the built front end from `dist` (with `index.html`
/// as the fallback for client-side routes).
pub fn router(state: AppState, dist: &Path) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/users", get(users))
        .route("/users/{id}", get(user))
        .route("/users/{id}/recommendations", get(recommendations))
        .route("/users/{id}/state", get(user_state))
        .route("/items/table", get(item_table))
        .route("/scorer", get(scorer))
        .route("/grouping", get(grouping))
        .route("/recommendations", post(recommend_history))
        .fallback(|| async { Error::NotFound("no such API endpoint".into()) })
        .with_state(state);
    let index = dist.join("index.html");
    Router::new()
        .nest("/api", api)
        .fallback_service(ServeDir::new(dist).fallback(ServeFile::new(index)))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

fn item(engine: &Engine, id: u32) -> api::Item {
    let meta = engine
        .dataset
        .item(id)
        .expect("item ids come from the dataset");
    api::Item {
        id,
        raw_id: meta.raw_id.clone(),
        title: meta.title.clone(),
    }
}

fn find_user(engine: &Engine, id: &str) -> Result<usize, Error> {
    engine
        .dataset
        .user_index(id)
        .ok_or_else(|| Error::NotFound(format!("unknown user {id:?}")))
}

async fn health(State(s): State<AppState>) -> Json<Health> {
    let r = &s.engine.record;
    Json(Health {
        status: "ok".into(),
        dataset: r.dataset.clone(),
        model: ModelInfo {
            method: r.method.clone(),
            trained_on: r.device.clone(),
            epochs: r.best_epoch,
            groups: s.engine.n_groups(),
            test: r.test,
        },
    })
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn users(
    State(s): State<AppState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<UsersPage> {
    let Query(q) = q?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let d = &s.engine.dataset;
    let users = (offset..d.n_users().min(offset.saturating_add(limit)))
        .map(|u| UserSummary {
            id: d.user_ids[u].clone(),
            interactions: d.sequences[u].len(),
        })
        .collect();
    Ok(Json(UsersPage {
        users,
        total: d.n_users(),
        offset,
        limit,
    }))
}

async fn user(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> ApiResult<UserDetail> {
    let u = find_user(&s.engine, &id)?;
    let history = s.engine.dataset.sequences[u]
        .iter()
        .map(|&i| item(&s.engine, i))
        .collect();
    Ok(Json(UserDetail { id, history }))
}

#[derive(Debug, Deserialize)]
struct KQuery {
    k: Option<usize>,
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

fn to_body(
    engine: &Engine,
    user: String,
    group: usize,
    ranked: Vec<shared::Scored>,
) -> Recommendations {
    let items = ranked
        .into_iter()
        .map(|r| Recommendation {
            item: item(engine, r.item),
            score: r.score,
        })
        .collect();
    Recommendations { user, group, items }
}

async fn recommend_history(
    State(s): State<AppState>,
    body: Result<Json<HistoryRequest>, JsonRejection>,
) -> ApiResult<Recommendations> {
    let Json(req) = body?;
    let k = check_k(req.k)?;
    let (group, ranked) = s.engine.recommend_for_history(&req.history, k, req.group)?;
    Ok(Json(to_body(&s.engine, String::new(), group, ranked)))
}

async fn scorer(State(s): State<AppState>) -> Json<shared::sasrec::SasRec> {
    Json(s.engine.scorer().clone())
}

async fn grouping(State(s): State<AppState>) -> ApiResult<shared::groups::Grouping> {
    s.engine.grouping().cloned().map(Json).ok_or_else(|| {
        Error::NotFound("this run has one item table for everybody: no grouping".into())
    })
}

async fn recommendations(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    q: Result<Query<KQuery>, QueryRejection>,
) -> ApiResult<Recommendations> {
    let Query(q) = q?;
    let k = check_k(q.k)?;
    let u = find_user(&s.engine, &id)?;
    let group = s.engine.group_of(u);
    Ok(Json(to_body(
        &s.engine,
        id,
        group,
        s.engine.recommend(u, k),
    )))
}

async fn user_state(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<UserState> {
    let u = find_user(&s.engine, &id)?;
    Ok(Json(UserState {
        user: id,
        group: s.engine.group_of(u),
        vector_b64: encode_f32(s.engine.state(u)),
        exclude: s.engine.seen(u).to_vec(),
    }))
}

#[derive(Debug, Deserialize)]
struct GroupQuery {
    group: Option<usize>,
}

async fn item_table(
    State(s): State<AppState>,
    q: Result<Query<GroupQuery>, QueryRejection>,
) -> ApiResult<api::ItemTableBody> {
    let Query(q) = q?;
    let g = s.engine.check_group(q.group.unwrap_or(0))?;
    Ok(Json(s.table_bodies[g].clone()))
}

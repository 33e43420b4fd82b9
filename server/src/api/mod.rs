//! `api` owns HTTP: the axum router over the [`Catalog`] of runs and the [`Jobs`], one JSON error
//! type ([`error`]), the bearer token of mutating requests ([`auth`]), the OpenAPI 3.1 document
//! generated from the handlers (`GET /api/openapi.json`), request logging with latency, body
//! and parameter limits, and the static front end. Handlers are thin: validate, call the engine
//! or the jobs, convert to `shared::api` bodies.
//!
//! - [`runs`]: runs, groups, the user map, users, recommendations, new histories, scorer
//!   bundles, adapters, comparisons.
//! - [`jobs`]: training jobs and their Server-Sent Events.

pub mod auth;
pub mod error;
pub mod jobs;
pub mod runs;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use shared::api::Health;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalog::Catalog;
use crate::jobs::Jobs;
use error::Error;

/// Largest request body, in bytes (a history of thousands of items fits).
pub const MAX_BODY: usize = 64 * 1024;

/// How long a client may take to send a request's headers before its connection is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's whole body before it is answered 408.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub jobs: Arc<Jobs>,
    /// The bearer token of mutating requests.
    pub token: Arc<String>,
    /// The device runs are opened and trained on, for `/api/health`.
    pub device: &'static str,
    /// Adapter downloads already built.
    adapters: Arc<runs::Adapters>,
    /// Scorer bundles already encoded.
    bundles: Arc<runs::Bundles>,
}

impl AppState {
    /// The state of a server over `catalog` and `jobs`, with bearer token `token`.
    pub fn new(
        catalog: Arc<Catalog>,
        jobs: Arc<Jobs>,
        token: String,
        device: &'static str,
    ) -> Self {
        Self {
            catalog,
            jobs,
            token: Arc::new(token),
            device,
            adapters: Arc::default(),
            bundles: Arc::default(),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PerPEFT Studio",
        description = "Personalised multimodal recommendation: runs, user groups, recommendations and training jobs. Errors are `{\"error\": \"...\"}` with a 4xx status for bad input, 500 only for a fault of the server."
    ),
    modifiers(&BearerAuth),
    // the data of each Server-Sent Event of `/jobs/{id}/events`
    components(schemas(shared::api::JobEvent)),
    tags(
        (name = "runs", description = "Trained runs, their groups and recommendations"),
        (name = "jobs", description = "Training jobs (mutations need the bearer token)"),
        (name = "server", description = "The server itself")
    )
)]
struct ApiDoc;

/// Adds the bearer-token scheme mutating endpoints refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API routes (relative to `/api`), each with its OpenAPI path from its handler.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .routes(routes!(datasets))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::run_detail))
        .routes(routes!(runs::groups))
        .routes(routes!(runs::map))
        .routes(routes!(runs::items))
        .routes(routes!(runs::users))
        .routes(routes!(runs::user))
        .routes(routes!(runs::recommendations))
        .routes(routes!(runs::assign))
        .routes(routes!(runs::grouping))
        .routes(routes!(runs::scorer_bundle))
        .routes(routes!(runs::adapter))
        .routes(routes!(runs::compare))
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(jobs::get, jobs::cancel))
        .routes(routes!(jobs::events))
}

/// The OpenAPI 3.1 document of the API, generated from the routes the router serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api", routes())
        .split_for_parts()
        .1
}

/// The whole application: `/api/...` plus the built front end from `dist` (with `index.html`
/// as the fallback for client-side routes). Requests are logged with their latency.
pub fn router(state: AppState, dist: &Path) -> Router {
    let (api, _) = routes().split_for_parts();
    let api = api
        .fallback(|| async { Error::NotFound("no such API endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            Error::MethodNotAllowed("this endpoint does not take that method".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(RequestBodyDeadlineLayer::new(BODY_TIMEOUT))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .with_state(state);
    let index = dist.join("index.html");
    Router::new()
        .nest("/api", api)
        .fallback_service(ServeDir::new(dist).fallback(ServeFile::new(index)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Millis),
                ),
        )
}

/// Answers 413 at once to a request whose declared `Content-Length` is over [`MAX_BODY`], instead
/// of waiting for a body that will be refused anyway.
async fn refuse_declared_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY as u64 => Error::TooLarge(format!(
            "a body of {n} bytes; at most {MAX_BODY} are accepted"
        ))
        .into_response(),
        _ => next.run(req).await,
    }
}

/// Serves `router` on `listener` until the process ends: HTTP/1.1 (keep-alive), with
/// Nagle's algorithm off, and a client that does not finish its headers within
/// [`HEADER_TIMEOUT`] disconnected (a body not finished within [`BODY_TIMEOUT`] is answered
/// 408 by the router), so slow clients hold no more than a socket for a few seconds.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    // HTTP/1 only: its header timeout is what lets a slow client go (hyper has none for an
    // HTTP/2 stream's headers), and nothing here needs HTTP/2 without TLS
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let builder = Arc::new(builder);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // out of file descriptors, or a connection reset before it was accepted: go on
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            if let Err(e) = builder.serve_connection_with_upgrades(io, service).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Whether the server answers, and what it serves.
#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, body = Health)))]
async fn health(State(s): State<AppState>) -> Result<Json<Health>, Error> {
    let catalog = s.catalog.clone();
    let runs = tokio::task::spawn_blocking(move || catalog.runs()).await??;
    Ok(Json(Health {
        status: "ok".into(),
        version: crate::config::code_version(),
        device: s.device.into(),
        runs: runs
            .iter()
            .filter(|r| r.status == shared::api::RunStatus::Finished)
            .count(),
    }))
}

/// The datasets the server can train on (the names a job's `dataset` takes).
#[utoipa::path(get, path = "/datasets", tag = "server",
    responses((status = 200, body = Vec<shared::api::DatasetInfo>)))]
async fn datasets(State(s): State<AppState>) -> Result<Json<Vec<shared::api::DatasetInfo>>, Error> {
    let catalog = s.catalog.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || catalog.datasets()).await??,
    ))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

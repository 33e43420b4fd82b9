//! Handlers of training jobs: submit (token), list, get, cancel (token), and the job's events
//! as Server-Sent Events (its status when the stream opens, then progress, epochs and status
//! changes, until it ends).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use shared::api::{self, Job, JobEvent, JobRequest};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::auth::Authorized;
use super::error::{ApiResult, Error};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Result<T, Error> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Queues a training job on the server's device (needs the bearer token).
#[utoipa::path(post, path = "/jobs", tag = "jobs",
    request_body = JobRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Job), (status = 401, body = api::ApiError),
        (status = 404, description = "Resuming a run that does not exist", body = api::ApiError),
        (status = 409, description = "The run exists, or has a job already", body = api::ApiError),
        (status = 413, body = api::ApiError),
        (status = 422, description = "A configuration or dataset that cannot train", body = api::ApiError), (status = 400, description = "The body is not valid JSON", body = api::ApiError), (status = 408, description = "The body did not arrive in time", body = api::ApiError), (status = 415, description = "The body is not JSON", body = api::ApiError)))]
pub async fn submit(
    _: Authorized,
    State(s): State<AppState>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Job>), Error> {
    let Json(req) = body?;
    let jobs = s.jobs.clone();
    let job = blocking(move || jobs.submit(&req)).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// Every job, oldest first, with its status, progress and epochs.
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    responses((status = 200, body = Vec<Job>)))]
pub async fn list(State(s): State<AppState>) -> ApiResult<Vec<Job>> {
    let jobs = s.jobs.clone();
    Ok(Json(blocking(move || jobs.list()).await?))
}

/// One job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 400, body = api::ApiError),
        (status = 404, body = api::ApiError)))]
pub async fn get(
    State(s): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Job> {
    let Path(id) = id?;
    let jobs = s.jobs.clone();
    Ok(Json(blocking(move || jobs.get(id)).await?))
}

/// Cancels a queued or running job (needs the bearer token); a cancelled run is resumable.
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    security(("bearer" = [])),
    responses((status = 200, body = Job), (status = 401, body = api::ApiError),
        (status = 404, body = api::ApiError),
        (status = 409, description = "The job has ended", body = api::ApiError), (status = 400, description = "A malformed job id", body = api::ApiError)))]
pub async fn cancel(
    _: Authorized,
    State(s): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<Job> {
    let Path(id) = id?;
    let jobs = s.jobs.clone();
    Ok(Json(blocking(move || jobs.cancel(id)).await?))
}

fn sse(event: &JobEvent) -> Event {
    Event::default()
        .event(event.name())
        .json_data(event)
        .unwrap_or_else(|_| Event::default().comment("unencodable event"))
}

/// One Server-Sent Event as it travels: its name (`event:`, the `JobEvent`'s kind) and its
/// `data:`, a `JobEvent` as JSON.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// `status`, `progress` or `epoch`.
    event: String,
    /// The `JobEvent`, as JSON.
    data: String,
}

/// The job's events as Server-Sent Events: `status` first, then `progress` (a few a second),
/// `epoch` and `status` as they happen; the stream ends with the job.
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses((status = 200, description = "text/event-stream: one event per JobEvent, named by its kind, with the JobEvent as JSON in its data", content_type = "text/event-stream", body = SseEvent),
        (status = 404, body = api::ApiError), (status = 400, description = "A malformed job id", body = api::ApiError)))]
pub async fn events(
    State(s): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let Path(id) = id?;
    // subscribe before reading the status, so nothing between the two is lost
    let mut rx = s.jobs.subscribe();
    let jobs = s.jobs.clone();
    let job = {
        let jobs = jobs.clone();
        blocking(move || jobs.get(id)).await?
    };
    let first = JobEvent::Status {
        status: job.status,
        error: job.error.clone(),
    };
    let stream = async_stream(move |mut emit| async move {
        let opened = emit.send(sse(&first)).await;
        let progressed = match job.progress {
            Some(p) => emit.send(sse(&JobEvent::Progress(p))).await,
            None => true,
        };
        if !job.status.is_live() || !opened || !progressed {
            return;
        }
        loop {
            match rx.recv().await {
                Ok((j, e)) if j == id => {
                    let last = matches!(&e, JobEvent::Status { status, .. } if !status.is_live());
                    if !emit.send(sse(&e)).await || last {
                        return;
                    }
                }
                Ok(_) => {}
                // events were dropped: the status may have been among them, so read it
                Err(RecvError::Lagged(_)) => {
                    let jobs = jobs.clone();
                    let now = tokio::task::spawn_blocking(move || jobs.get(id)).await;
                    if let Ok(Ok(j)) = now
                        && !j.status.is_live()
                    {
                        let last = JobEvent::Status {
                            status: j.status,
                            error: j.error,
                        };
                        emit.send(sse(&last)).await;
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A stream fed by an async producer through a channel (no macro crate needed).
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(Emitter) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(Emitter(tx)));
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// Sends events into an [`async_stream`].
struct Emitter(tokio::sync::mpsc::Sender<Event>);

impl Emitter {
    /// Whether the client still listens.
    async fn send(&mut self, e: Event) -> bool {
        self.0.send(e).await.is_ok()
    }
}

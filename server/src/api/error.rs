//! The API's one error type: every failure a handler can answer with, its HTTP status, and the
//! JSON body `{"error": "..."}`. Bad input is a 4xx that says what to change; a failure of the
//! server itself is a 500 whose cause is logged, not sent.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::api::ApiError;

/// Every failure a handler can answer with.
#[derive(Debug)]
pub enum Error {
    /// 400: a malformed request (query, path, body syntax) or an out-of-range parameter.
    BadRequest(String),
    /// 401: a mutating request without the right bearer token.
    Unauthorized(String),
    /// 404: no such run, user, group, job or endpoint.
    NotFound(String),
    /// 405: the endpoint exists, not with this method.
    MethodNotAllowed(String),
    /// 408: the body did not arrive in time ([`super::BODY_TIMEOUT`]).
    Timeout(String),
    /// 409: the request conflicts with what exists (a run name taken, a run not finished).
    Conflict(String),
    /// 413: the body is larger than the server accepts.
    TooLarge(String),
    /// 415: the body is not JSON.
    UnsupportedMedia(String),
    /// 422: a well-formed body whose content cannot be used (unknown item ids, a group the run
    /// lacks, a training configuration that cannot train).
    Unprocessable(String),
    /// 500: the server failed (logged; the body says only that).
    Internal,
}

impl Error {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = match self {
            Self::BadRequest(e)
            | Self::Unauthorized(e)
            | Self::NotFound(e)
            | Self::MethodNotAllowed(e)
            | Self::Timeout(e)
            | Self::Conflict(e)
            | Self::TooLarge(e)
            | Self::UnsupportedMedia(e)
            | Self::Unprocessable(e) => e,
            Self::Internal => "internal error (logged on the server)".into(),
        };
        let mut response = (status, Json(ApiError { error })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<crate::error::Error> for Error {
    fn from(e: crate::error::Error) -> Self {
        use crate::error::Error as E;
        match e {
            E::NotFound(_) => Self::NotFound(e.to_string()),
            E::Conflict(_) => Self::Conflict(e.to_string()),
            E::Invalid(_) => Self::Unprocessable(e.to_string()),
            // a dataset a request named that cannot be read
            E::Data(_) => Self::Unprocessable(e.to_string()),
            other => {
                tracing::error!(error = %other, "a request failed on the server's side");
                Self::Internal
            }
        }
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        // the body deadline's error, somewhere under "failed to buffer the body"
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&r);
        while let Some(e) = cause {
            if e.is::<tower_http::timeout::TimeoutError>() {
                return Self::Timeout(format!(
                    "the request body did not arrive within {} s",
                    super::BODY_TIMEOUT.as_secs()
                ));
            }
            cause = e.source();
        }
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge(r.body_text()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMedia(r.body_text()),
            // JSON of the wrong shape
            StatusCode::UNPROCESSABLE_ENTITY => Self::Unprocessable(r.body_text()),
            _ => Self::BadRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Self::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(r: PathRejection) -> Self {
        Self::BadRequest(r.body_text())
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "a blocking task of a request failed");
        Self::Internal
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<Json<T>, Error>;

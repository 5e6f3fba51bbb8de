//! The API's one error type and its mapping to `application/problem+json` (RFC 9457). This is the
//! only place where errors become HTTP statuses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_catalog::validation::Problem;
use herald_store::StoreError;
use serde::Serialize;

/// Base of the stable problem `type` URIs.
const PROBLEM_BASE: &str = "https://herald.dev/problems/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required: send it as `Authorization: Bearer <key>`")]
    Unauthorized,
    /// A request to a source's ingest URL that failed the vendor's authentication. `challenge`
    /// is the `WWW-Authenticate` value (RFC 9110 §11.6.1: a 401 carries one).
    #[error("{detail}")]
    IngestUnauthorized {
        detail: String,
        challenge: &'static str,
    },
    #[error("this key may not do that: {0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The body was read but is not acceptable; every problem with its JSON path.
    #[error("{detail}")]
    Validation {
        detail: String,
        problems: Vec<Problem>,
    },
    /// The body is not JSON; line and column are 1-based.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The client did not send the whole body in time; the connection is closed after the answer.
    #[error("the request body did not arrive within {} ms", .waited.as_millis())]
    RequestTimeout { waited: std::time::Duration },
    #[error("expected `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("{0}")]
    BadRequest(String),
    /// The body could not be read to its end (a malformed chunked encoding, a connection cut
    /// short); the connection cannot carry another request.
    #[error("the request body could not be read: {0}")]
    UnreadableBody(String),
    #[error("the service is unavailable, try again shortly")]
    Unavailable(String),
    /// Anything unexpected: logged with its detail, answered without it.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 422 with one problem.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        let problem = Problem::new(path, message);
        ApiError::Validation {
            detail: problem.to_string(),
            problems: vec![problem],
        }
    }

    /// A 422 listing `problems`.
    pub fn invalid_all(problems: Vec<Problem>) -> Self {
        let detail = match problems.as_slice() {
            [only] => only.to_string(),
            many => format!("{} problems; see `errors`", many.len()),
        };
        ApiError::Validation { detail, problems }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status_and_kind().0
    }

    fn status_and_kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthorized | ApiError::IngestUnauthorized { .. } => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The request is not valid",
            ),
            ApiError::MalformedJson { .. } => {
                (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON")
            }
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            ApiError::RequestTimeout { .. } => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::BadRequest(_) | ApiError::UnreadableBody(_) => {
                (StatusCode::BAD_REQUEST, "bad-request", "Bad request")
            }
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            StoreError::Backend(detail) => ApiError::Internal(detail),
        }
    }
}

#[derive(Debug, Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ProblemItem<'a>>,
}

#[derive(Debug, Serialize)]
struct ProblemItem<'a> {
    path: &'a str,
    message: &'a str,
}

impl ApiError {
    fn problem_body(&self) -> ProblemBody<'_> {
        let (status, kind, title) = self.status_and_kind();
        let problems: &[Problem] = match self {
            ApiError::Validation { problems, .. } => problems,
            _ => &[],
        };
        ProblemBody {
            kind: format!("{PROBLEM_BASE}{kind}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            errors: problems
                .iter()
                .map(|problem| ProblemItem {
                    path: &problem.path,
                    message: &problem.message,
                })
                .collect(),
        }
    }

    /// The status and the `application/problem+json` document, for a caller that writes the
    /// answer itself (the server's connection layer, before any request reached the router).
    pub fn problem_document(&self) -> (StatusCode, Vec<u8>) {
        let (status, _, _) = self.status_and_kind();
        // A struct of strings and numbers always serializes; the fallback is never used.
        let document = serde_json::to_vec(&self.problem_body()).unwrap_or_default();
        (status, document)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.status_and_kind();
        // Server-side failures are logged once, here, with their detail; the client learns
        // nothing about the inside.
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed"),
            ApiError::Unavailable(detail) => {
                tracing::warn!(%detail, "request refused: unavailable")
            }
            _ => {}
        }
        let mut response = (status, Json(self.problem_body())).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // The rest of the body was not read (too large, too slow to come, or unreadable): the
        // connection cannot carry another request, so say it will close (RFC 9112 §9.6).
        if matches!(
            self,
            ApiError::PayloadTooLarge { .. }
                | ApiError::RequestTimeout { .. }
                | ApiError::UnreadableBody(_)
        ) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match &self {
                ApiError::IngestUnauthorized { challenge, .. } => challenge,
                _ => "Bearer",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

//! Request bodies: read with a size limit and a time limit, required to be JSON, parsed strictly
//! (a repeated member name is refused) with the error's line and column, and deserialized into
//! `*In` types with the JSON path of any mismatch. Query strings too, so that every malformed
//! request is answered in problem+json rather than with axum's plain-text rejections.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::BytesMut;
use futures_util::StreamExt;
use herald_catalog::json::{JsonError, parse_strict};
use herald_catalog::validation::escape_pointer_token;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a client may take to send a whole request body, counted from the moment a handler
/// starts reading it. The server puts it in each request's extensions; without it (a router
/// driven directly, as in unit tests) [`DEFAULT_BODY_READ_TIMEOUT`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub Duration);

pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a whole body: a declared `Content-Length` over `limit` is refused before anything is
/// read, bytes beyond `limit` are never buffered, and a body that has not fully arrived within
/// `timeout` is a 408. Any other failure to read it (a malformed chunked encoding, a connection
/// cut short) is a 400: only a body really over the limit is a 413.
async fn read_body(
    body: Body,
    declared_length: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> ApiResult<Bytes> {
    if declared_length.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut received = BytesMut::new();
    let mut chunks = body.into_data_stream();
    loop {
        let next = tokio::time::timeout_at(deadline, chunks.next())
            .await
            .map_err(|_| ApiError::RequestTimeout { waited: timeout })?;
        match next {
            None => return Ok(received.freeze()),
            Some(Ok(chunk)) => {
                if received.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                received.extend_from_slice(&chunk);
            }
            Some(Err(error)) => {
                return Err(ApiError::UnreadableBody(error_chain(&error)));
            }
        }
    }
}

/// An error and its sources, as one line: hyper puts the reason (a bad chunk size) in a source.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The raw bytes of a JSON request body, within the size limit.
#[derive(Debug)]
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> ApiResult<Self> {
        if !declares_json(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        read_request_body(request, state).await.map(JsonBytes)
    }
}

/// Whether the request says its body is JSON (`application/json` or any `+json` type).
fn declares_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let essence = value.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        })
        .unwrap_or(false)
}

/// The request's body, within the server's size and time limits.
async fn read_request_body(request: Request, state: &AppState) -> ApiResult<Bytes> {
    // hyper has already refused a `Content-Length` that is not a number.
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let timeout = request
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |timeout| timeout.0);
    let limit = state.settings.max_body_bytes;
    read_body(request.into_body(), declared_length, limit, timeout).await
}

/// Parses bytes as strict JSON: a syntax error (too deep, invalid UTF-8, a number out of range
/// included) is a 400 with its line and column; a member name repeated in one object is a 422 at
/// that member's path, since consumers disagree on which of the two values counts.
pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    parse_strict(bytes).map_err(|error| match error {
        JsonError::Syntax {
            line,
            column,
            message,
        } => ApiError::MalformedJson {
            line,
            column,
            message,
        },
        JsonError::DuplicateMember { .. } => {
            ApiError::invalid(error.path().to_owned(), error.to_string())
        }
    })
}

/// A JSON body deserialized into `T`; a mismatch is a 422 naming the member at fault.
#[derive(Debug)]
pub struct JsonIn<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonIn<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> ApiResult<Self> {
        let JsonBytes(bytes) = JsonBytes::from_request(request, state).await?;
        let value = parse_json(&bytes)?;
        from_value(value).map(JsonIn)
    }
}

/// Like [`JsonIn`], for requests whose members are all optional: an empty body means defaults.
#[derive(Debug)]
pub struct OptionalJsonIn<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonIn<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> ApiResult<Self> {
        // Whether there is a body is told by reading it: clients send `Content-Type` without a
        // body, an empty chunked body, or no `Content-Length` at all.
        let is_json = declares_json(&request);
        let bytes = read_request_body(request, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonIn(T::default()));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        from_value(parse_json(&bytes)?).map(OptionalJsonIn)
    }
}

/// Deserializes; a mismatch is a problem at the JSON pointer of the member at fault, however
/// deep (a number that does not fit `/timeout_ms`, a header value that is not a string
/// `/headers/X-Team`), and a missing member at the pointer it should have had.
pub fn from_value<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let mut path = json_pointer(error.path());
        let message = error.into_inner().to_string();
        // serde reports a missing member at the object that lacks it, naming it as "`field`".
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            path.push('/');
            path.push_str(&escape_pointer_token(field));
        }
        ApiError::invalid(path, message)
    })
}

/// The JSON pointer (RFC 6901) of a deserialization path; `""` is the document itself.
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    let mut pointer = String::new();
    for segment in path.iter() {
        let token = match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => escape_pointer_token(key),
            Segment::Enum { variant } => escape_pointer_token(variant),
            // A step serde could not name (a non-string key): the pointer stops at its parent.
            Segment::Unknown => break,
        };
        pointer.push('/');
        pointer.push_str(&token);
    }
    pointer
}

/// A query string deserialized into `T`; a malformed one (`after_seq=abc`, a number out of range,
/// a repeated parameter) is a 400 problem naming the parameter.
#[derive(Debug)]
pub struct QueryIn<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryIn<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| QueryIn(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::BadRequest(format!("invalid query string: {reason}"))
            })
    }
}

//! Request bodies: read with a size limit, required to be JSON, parsed strictly (a repeated member
//! name is refused) with the error's line and column, and deserialized into `*In` types with the
//! JSON path of any mismatch. Query strings too, so that every malformed request is answered in
//! problem+json rather than with axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use herald_catalog::json::{JsonError, parse_strict};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The raw bytes of a JSON request body, within the size limit.
#[derive(Debug)]
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> ApiResult<Self> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                let essence = value.split(';').next().unwrap_or_default().trim();
                essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.settings.max_body_bytes;
        let body = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit })?;
        Ok(JsonBytes(body))
    }
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
        // An empty body means defaults, whatever `Content-Type` says (clients send one anyway).
        let content_length = request.headers().get(header::CONTENT_LENGTH);
        let has_body = match content_length {
            Some(length) => length.as_bytes() != b"0",
            None => request.headers().contains_key(header::CONTENT_TYPE),
        };
        if !has_body {
            return Ok(OptionalJsonIn(T::default()));
        }
        let JsonIn(value) = JsonIn::<T>::from_request(request, state).await?;
        Ok(OptionalJsonIn(value))
    }
}

/// Deserializes, turning serde's message into a problem at the member's path where it names one.
pub fn from_value<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_json::from_value(value).map_err(|error| {
        let message = error.to_string();
        // serde names the offending field as "`field`"; point at it when it does.
        let path = message
            .split('`')
            .nth(1)
            .filter(|_| {
                message.starts_with("unknown field") || message.starts_with("missing field")
            })
            .map(|field| format!("/{field}"))
            .unwrap_or_default();
        ApiError::invalid(path, message)
    })
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

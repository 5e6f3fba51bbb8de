//! Request bodies: read with a size limit, required to be JSON, parsed with the error's line and
//! column, and deserialized into `*In` types with the JSON path of any mismatch.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
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

/// Parses bytes as JSON, reporting the line and column of a syntax error.
pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes).map_err(|error| ApiError::MalformedJson {
        line: error.line(),
        column: error.column(),
        message: error
            .to_string()
            .rsplit_once(" at line ")
            .map(|(message, _)| message.to_owned())
            .unwrap_or_else(|| error.to_string()),
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
        let has_body = request.headers().contains_key(header::CONTENT_TYPE)
            || request
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() != b"0");
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

//! The receiver's side of the API: who calls (the bearer token the tenant issued it), which of
//! its streams a request names, and the members of a JSON body, read the same way by every
//! stream-management route.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use herald_core::secret::hash_api_key;
use herald_ssf::stream::StreamConfig;
use herald_store::ssf::{SsfReceiverRecord, SsfStreamRecord};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::body::JsonIn;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The receiver a stream-management request comes from: its bearer token, issued by the tenant
/// in the path. A token of another tenant is refused like no token at all.
pub(super) struct ReceiverCaller {
    pub(super) tenant_id: String,
    pub(super) receiver: SsfReceiverRecord,
}

pub(super) async fn receiver_caller(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
) -> ApiResult<ReceiverCaller> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && token.len() <= 256)
        .ok_or(ApiError::Unauthorized)?;
    let receiver = state
        .store
        .find_ssf_receiver_by_token(&hash_api_key(token))
        .await?
        .filter(|receiver| receiver.tenant_id == tenant_id)
        .ok_or(ApiError::Unauthorized)?;
    Ok(ReceiverCaller {
        tenant_id: tenant_id.to_owned(),
        receiver,
    })
}

/// A stream's settings (`herald_ssf::stream::StreamConfig`, the stored document).
pub(super) fn parse_config(record: &SsfStreamRecord) -> ApiResult<StreamConfig> {
    StreamConfig::parse(&record.config)
        .map_err(|error| ApiError::Internal(format!("stream {}: {error}", record.id)))
}

pub(super) fn config_text(config: &StreamConfig) -> ApiResult<String> {
    config
        .to_text()
        .map_err(|error| ApiError::Internal(error.to_string()))
}

pub(super) fn bad_request(path: &str, message: &str) -> ApiError {
    ApiError::BadRequest(format!("{path}: {message}"))
}

pub(super) fn string_member(body: &Map<String, Value>, name: &str) -> ApiResult<Option<String>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= 2_000 => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(bad_request(&format!("/{name}"), "is too long")),
        Some(_) => Err(bad_request(&format!("/{name}"), "must be a string")),
    }
}

pub(super) fn object_body(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(object) => Ok(object),
        _ => Err(bad_request("", "the body must be a JSON object")),
    }
}

pub(super) async fn receiver_streams(
    state: &AppState,
    caller: &ReceiverCaller,
) -> ApiResult<Vec<SsfStreamRecord>> {
    let streams = state.store.list_ssf_streams(&caller.tenant_id).await?;
    Ok(streams
        .into_iter()
        .filter(|stream| stream.receiver_id == caller.receiver.id)
        .collect())
}

/// The caller's stream `stream_id`; a stream of another receiver is not found.
pub(super) async fn receiver_stream(
    state: &AppState,
    caller: &ReceiverCaller,
    stream_id: Option<&str>,
) -> ApiResult<SsfStreamRecord> {
    let stream_id = stream_id.ok_or_else(|| bad_request("/stream_id", "is required"))?;
    receiver_streams(state, caller)
        .await?
        .into_iter()
        .find(|stream| stream.id == stream_id)
        .ok_or_else(|| ApiError::NotFound(format!("stream {stream_id:?}")))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    stream_id: Option<String>,
}

/// A receiver's request with a JSON object body (creating or changing a stream, its status,
/// subjects, a verification). Read in the order its parts arrive: the path, then the body, and
/// only then the bearer token, so a malformed body is refused before the store is asked.
pub(super) struct ReceiverRequest {
    pub(super) caller: ReceiverCaller,
    /// The issuer of a new stream is named from them (`metadata::issuer`).
    pub(super) headers: HeaderMap,
    pub(super) body: Map<String, Value>,
}

impl FromRequest<AppState> for ReceiverRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Path(tenant_id) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let JsonIn(body) = JsonIn::<Value>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = receiver_caller(state, &tenant_id, &headers)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = object_body(body).map_err(IntoResponse::into_response)?;
        Ok(ReceiverRequest {
            caller,
            headers,
            body,
        })
    }
}

impl ReceiverRequest {
    /// The caller's stream named by the body's `stream_id`.
    pub(super) async fn named_stream(&self, state: &AppState) -> ApiResult<SsfStreamRecord> {
        let stream_id = string_member(&self.body, "stream_id")?;
        receiver_stream(state, &self.caller, stream_id.as_deref()).await
    }
}

/// A receiver's request that names its stream in the query (`?stream_id=`): reading or deleting
/// a stream, reading its status.
pub(super) struct ReceiverQuery {
    pub(super) caller: ReceiverCaller,
    pub(super) stream_id: Option<String>,
}

impl FromRequestParts<AppState> for ReceiverQuery {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(tenant_id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(query) = Query::<StreamQuery>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = receiver_caller(state, &tenant_id, &parts.headers)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(ReceiverQuery {
            caller,
            stream_id: query.stream_id,
        })
    }
}

impl ReceiverQuery {
    /// The caller's stream named by `?stream_id=`.
    pub(super) async fn named_stream(&self, state: &AppState) -> ApiResult<SsfStreamRecord> {
        receiver_stream(state, &self.caller, self.stream_id.as_deref()).await
    }
}

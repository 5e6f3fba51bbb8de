//! `/v1/tenants/{tenant}/ssf/streams`: the tenant's read-only view of the SSF streams its
//! receivers made (for `herald ssf streams list|show`), with a tenant API key.
//!
//! Receivers manage their streams themselves under `/ssf/{tenant}/streams` with their own bearer
//! tokens; the tenant only looks. What is shown is picked member by member from the stored
//! configuration, so a secret a receiver gave (the push `Authorization` value) is never shown.

use axum::Json;
use axum::extract::{Path, State};
use herald_store::ssf::SsfStreamRecord;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list))
        .routes(routes!(get_one))
}

/// The configuration members shown to the tenant; anything else stays in the store.
const SHOWN_CONFIG_MEMBERS: [&str; 7] = [
    "delivery_method",
    "events_requested",
    "description",
    "aud",
    "all_subjects",
    "min_verification_interval",
    "push_endpoint_url",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantStreamOut {
    pub stream_id: String,
    pub receiver_id: String,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    pub status_reason: Option<String>,
    /// The stream's settings as the receiver chose them (delivery method, events requested, ...).
    #[schema(value_type = Object)]
    pub config: Value,
    /// How many subjects the stream holds (shown by `show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_subjects: Option<usize>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantStreamListOut {
    pub data: Vec<TenantStreamOut>,
}

fn stream_out(record: &SsfStreamRecord, n_subjects: Option<usize>) -> TenantStreamOut {
    let stored: Value = serde_json::from_str(&record.config).unwrap_or(Value::Null);
    let config = SHOWN_CONFIG_MEMBERS
        .iter()
        .filter_map(|name| {
            stored
                .get(*name)
                .map(|value| ((*name).to_owned(), value.clone()))
        })
        .collect();
    TenantStreamOut {
        stream_id: record.id.clone(),
        receiver_id: record.receiver_id.clone(),
        status: record.status.clone(),
        status_reason: record.status_reason.clone(),
        config: Value::Object(config),
        n_subjects,
        created_at: format_time(record.created_at),
        updated_at: format_time(record.updated_at),
    }
}

/// The tenant's SSF streams, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/ssf/streams", tag = "shared-signals",
    responses((status = 200, body = TenantStreamListOut)))]
pub async fn list(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<TenantStreamListOut>> {
    let streams = state.store.list_ssf_streams(&scope.tenant_id).await?;
    Ok(Json(TenantStreamListOut {
        data: streams
            .iter()
            .map(|record| stream_out(record, None))
            .collect(),
    }))
}

/// One SSF stream of the tenant; another tenant's stream is absent (404).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/ssf/streams/{stream_id}", tag = "shared-signals",
    responses((status = 200, body = TenantStreamOut), (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<TenantStreamOut>> {
    let stream_id = path_ids.1;
    let streams = state.store.list_ssf_streams(&scope.tenant_id).await?;
    let record = streams
        .iter()
        .find(|record| record.id == stream_id)
        .ok_or_else(|| ApiError::NotFound(format!("stream {stream_id:?}")))?;
    let n_subjects = state.store.list_ssf_subjects(&record.id).await?.len();
    Ok(Json(stream_out(record, Some(n_subjects))))
}

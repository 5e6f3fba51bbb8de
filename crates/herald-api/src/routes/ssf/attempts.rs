//! The tenant's view of RFC 8935 push delivery: the push attempts of one of its streams.

use axum::Json;
use axum::extract::{Path, State};
use herald_store::ssf::SsfPushAttemptRecord;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::TenantScope;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SsfPushAttemptOut {
    pub id: String,
    /// The SET pushed.
    pub jti: String,
    pub attempted_at: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The transport error, or the receiver's RFC 8935 `err` code.
    pub error: Option<String>,
    /// `accepted`, `rejected` (a 400: dropped), `retry` or `exhausted` (dropped).
    pub outcome: String,
    /// When a `retry` is pushed again.
    pub next_attempt_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SsfPushAttemptListOut {
    pub data: Vec<SsfPushAttemptOut>,
}

fn push_attempt_out(record: &SsfPushAttemptRecord) -> SsfPushAttemptOut {
    SsfPushAttemptOut {
        id: record.id.clone(),
        jti: record.jti.clone(),
        attempted_at: format_time(record.attempted_at),
        status_code: record.status_code,
        latency_ms: record.latency_ms,
        error: record.error.clone(),
        outcome: record.outcome.as_str().to_owned(),
        next_attempt_at: record.outcome.next_attempt_at().map(format_time),
    }
}

/// The push attempts of one of the tenant's SSF streams, newest first (at most 100).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/ssf/streams/{stream_id}/attempts", tag = "shared-signals",
    responses((status = 200, body = SsfPushAttemptListOut), (status = 404, description = "no such stream in this tenant")))]
pub async fn list_push_attempts(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<SsfPushAttemptListOut>> {
    let stream_id = path_ids.1;
    let streams = state.store.list_ssf_streams(&scope.tenant_id).await?;
    if !streams.iter().any(|stream| stream.id == stream_id) {
        return Err(ApiError::NotFound(format!("stream {stream_id:?}")));
    }
    let attempts = state
        .store
        .list_ssf_push_attempts(&scope.tenant_id, &stream_id, 100)
        .await?;
    Ok(Json(SsfPushAttemptListOut {
        data: attempts.iter().map(push_attempt_out).collect(),
    }))
}

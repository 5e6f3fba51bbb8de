//! Deliveries and their attempts: what was sent where, how it went, and retrying by hand.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_core::delivery::DeliveryState;
use herald_core::ids::DeliveryId;
use herald_store::models::{AttemptRecord, DeliveryFilter, DeliveryRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::QueryIn;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_for_endpoint))
        .routes(routes!(get_one))
        .routes(routes!(list_attempts))
        .routes(routes!(retry))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_seq: i64,
    pub event_type: String,
    /// pending, in_flight, delivered, scheduled, exhausted or cancelled.
    pub state: String,
    pub n_attempts: u32,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPageOut {
    pub data: Vec<DeliveryOut>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next_after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    pub attempt_number: u32,
    pub started_at: String,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The start of the response body.
    pub response: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptListOut {
    pub data: Vec<AttemptOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    pub state: Option<String>,
    pub after: Option<String>,
    pub limit: Option<usize>,
}

pub fn delivery_out(record: DeliveryRecord) -> DeliveryOut {
    DeliveryOut {
        id: record.id.into_string(),
        endpoint_id: record.endpoint_id.into_string(),
        event_id: record.event_id,
        event_seq: record.event_seq,
        event_type: record.event_type,
        state: record.state.as_str().to_owned(),
        n_attempts: record.n_attempts,
        next_attempt_at: record.next_attempt_at.map(format_time),
        last_status: record.last_status,
        last_error: record.last_error,
        created_at: format_time(record.created_at),
        updated_at: format_time(record.updated_at),
    }
}

/// The `after` cursor of a page of deliveries: a delivery id, or a 422 naming `/after`. (A well
/// formed id that is not the tenant's starts from the beginning.)
pub fn parse_cursor(after: Option<&str>) -> ApiResult<Option<DeliveryId>> {
    after
        .map(DeliveryId::parse)
        .transpose()
        .map_err(|error| ApiError::invalid("/after", error.to_string()))
}

fn attempt_out(record: AttemptRecord) -> AttemptOut {
    AttemptOut {
        attempt_number: record.attempt_number,
        started_at: format_time(record.started_at),
        status: record.status,
        latency_ms: record.latency_ms,
        response: record.response_excerpt,
        error: record.error,
    }
}

/// An endpoint's deliveries, oldest first, optionally in one state.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/endpoints/{endpoint_id}/deliveries", tag = "deliveries",
    params(DeliveryQuery), responses((status = 200, body = DeliveryPageOut)))]
pub async fn list_for_endpoint(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    QueryIn(query): QueryIn<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPageOut>> {
    let endpoint_id = path_ids.1;
    let Some(endpoint) = state
        .store
        .get_endpoint(&scope.tenant_id, &endpoint_id)
        .await?
    else {
        return Err(ApiError::NotFound(format!("endpoint {endpoint_id:?}")));
    };
    let delivery_state = query
        .state
        .as_deref()
        .map(str::parse::<DeliveryState>)
        .transpose()
        .map_err(|error| ApiError::invalid("/state", error.to_string()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("/limit", "limit is between 1 and 1000"));
    }
    let filter = DeliveryFilter {
        endpoint_id: Some(endpoint.id),
        state: delivery_state,
        after_id: parse_cursor(query.after.as_deref())?,
        limit,
    };
    let records = state
        .store
        .list_deliveries(&scope.tenant_id, &filter)
        .await?;
    let next_after = (records.len() == limit)
        .then(|| records.last().map(|record| record.id.to_string()))
        .flatten();
    Ok(Json(DeliveryPageOut {
        data: records.into_iter().map(delivery_out).collect(),
        next_after,
    }))
}

async fn find(state: &AppState, tenant_id: &str, delivery_id: &str) -> ApiResult<DeliveryRecord> {
    state
        .store
        .get_delivery(tenant_id, delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery {delivery_id:?}")))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/deliveries/{delivery_id}", tag = "deliveries",
    responses((status = 200, body = DeliveryOut)))]
pub async fn get_one(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<DeliveryOut>> {
    let delivery_id = path_ids.1;
    Ok(Json(delivery_out(
        find(&state, &scope.tenant_id, &delivery_id).await?,
    )))
}

/// Every attempt of a delivery: when, status, latency, the start of the response, the error.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/deliveries/{delivery_id}/attempts", tag = "deliveries",
    responses((status = 200, body = AttemptListOut)))]
pub async fn list_attempts(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<AttemptListOut>> {
    let delivery_id = path_ids.1;
    find(&state, &scope.tenant_id, &delivery_id).await?;
    let attempts = state
        .store
        .list_attempts(&scope.tenant_id, &delivery_id)
        .await?;
    Ok(Json(AttemptListOut {
        data: attempts.into_iter().map(attempt_out).collect(),
    }))
}

/// Attempt a delivery again now (unless it is in flight).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/deliveries/{delivery_id}/retry", tag = "deliveries",
    responses((status = 202, body = DeliveryOut)))]
pub async fn retry(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    let delivery_id = path_ids.1;
    let record = state
        .store
        .retry_delivery(&scope.tenant_id, &delivery_id, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery {delivery_id:?}")))?;
    state.delivery_wakeup.notify_one();
    Ok((StatusCode::ACCEPTED, Json(delivery_out(record))))
}

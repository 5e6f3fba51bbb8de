//! The tenant's SSF receivers: each is issued the bearer token it manages its streams with.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::ids::prefixed_id;
use herald_core::secret::hash_api_key;
use herald_core::source_auth::generate_source_secret;
use herald_store::ssf::SsfReceiverRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::TenantScope;
use crate::body::OptionalJsonIn;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiverIn {
    pub name: Option<String>,
    /// Whether the receiver may ask for events about every subject of the tenant.
    #[serde(default)]
    pub may_receive_all_subjects: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiverOut {
    pub id: String,
    pub name: Option<String>,
    pub may_receive_all_subjects: bool,
    pub created_at: String,
    /// The receiver's bearer token for the stream management API: shown once, at creation.
    pub token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiverListOut {
    pub data: Vec<ReceiverOut>,
}

fn receiver_out(record: &SsfReceiverRecord, token: Option<String>) -> ReceiverOut {
    ReceiverOut {
        id: record.id.clone(),
        name: record.name.clone(),
        may_receive_all_subjects: record.may_receive_all_subjects,
        created_at: format_time(record.created_at),
        token,
    }
}

/// Issue an SSF receiver (a stream client) its bearer token.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/ssf/receivers", tag = "shared-signals",
    request_body(content = Option<ReceiverIn>), responses((status = 201, body = ReceiverOut)))]
pub async fn create_receiver(
    State(state): State<AppState>,
    scope: TenantScope,
    OptionalJsonIn(input): OptionalJsonIn<ReceiverIn>,
) -> ApiResult<(StatusCode, Json<ReceiverOut>)> {
    if input.name.as_ref().is_some_and(|name| name.len() > 200) {
        return Err(ApiError::invalid("/name", "at most 200 bytes"));
    }
    let token = format!("hssf_{}", generate_source_secret());
    let record = SsfReceiverRecord {
        id: prefixed_id("rcv"),
        tenant_id: scope.tenant_id.clone(),
        name: input.name,
        token_hash: hash_api_key(&token),
        may_receive_all_subjects: input.may_receive_all_subjects,
        created_at: state.clock.now(),
    };
    state.store.create_ssf_receiver(record.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(receiver_out(&record, Some(token))),
    ))
}

/// The tenant's SSF receivers (without their tokens).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/ssf/receivers", tag = "shared-signals",
    responses((status = 200, body = ReceiverListOut)))]
pub async fn list_receivers(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<ReceiverListOut>> {
    let receivers = state.store.list_ssf_receivers(&scope.tenant_id).await?;
    Ok(Json(ReceiverListOut {
        data: receivers
            .iter()
            .map(|record| receiver_out(record, None))
            .collect(),
    }))
}

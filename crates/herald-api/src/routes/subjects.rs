//! `/v1/tenants/{tenant}/subjects/{subject}`: erase a person's data (GDPR).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(erase))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedOut {
    pub n_erased: u64,
}

/// Remove the payloads of every event of this subject and cancel their waiting deliveries.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/subjects/{subject}", tag = "subjects",
    responses((status = 200, body = ErasedOut)))]
pub async fn erase(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<ErasedOut>> {
    let subject = path_ids.1;
    let n_erased = state
        .store
        .erase_subject(&scope.tenant_id, &subject)
        .await?;
    tracing::info!(tenant = %scope.tenant_id, n_erased, "subject erased");
    Ok(Json(ErasedOut { n_erased }))
}

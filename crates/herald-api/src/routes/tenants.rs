//! `/v1/tenants`: admin-only tenant management (their keys are in `api_keys.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_store::models::Tenant;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, TenantScope};
use crate::body::JsonIn;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create, list))
        .routes(routes!(get_one))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// 1-64 characters: a-z, 0-9, '-' and '_'; used in URLs.
    pub id: String,
    pub name: String,
    /// Written into Asgardeo `iss` when a producer gives none.
    pub issuer: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantListOut {
    pub data: Vec<TenantOut>,
}

impl From<Tenant> for TenantOut {
    fn from(tenant: Tenant) -> Self {
        TenantOut {
            issuer: tenant.issuer_or_default(),
            id: tenant.id,
            name: tenant.name,
            created_at: format_time(tenant.created_at),
        }
    }
}

fn check_tenant_id(id: &str) -> ApiResult<()> {
    let well_formed = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if well_formed {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "/id",
            "a tenant id has 1-64 characters: a-z, 0-9, '-' and '_'",
        ))
    }
}

/// Create a tenant (admin key).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = TenantIn,
    responses((status = 201, body = TenantOut), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonIn(input): JsonIn<TenantIn>,
) -> ApiResult<(StatusCode, Json<TenantOut>)> {
    check_tenant_id(&input.id)?;
    if input.name.trim().is_empty() || input.name.len() > 200 {
        return Err(ApiError::invalid("/name", "a name has 1-200 characters"));
    }
    let tenant = state
        .store
        .create_tenant(Tenant {
            id: input.id,
            name: input.name,
            issuer: input.issuer,
            created_at: state.clock.now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(TenantOut::from(tenant))))
}

/// List tenants (admin key).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", responses((status = 200, body = TenantListOut)))]
pub async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<TenantListOut>> {
    let tenants = state.store.list_tenants().await?;
    Ok(Json(TenantListOut {
        data: tenants.into_iter().map(TenantOut::from).collect(),
    }))
}

/// One tenant (admin key, or that tenant's key).
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", responses((status = 200, body = TenantOut)))]
pub async fn get_one(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<TenantOut>> {
    let tenant = state
        .store
        .get_tenant(&scope.tenant_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {:?}", scope.tenant_id)))?;
    Ok(Json(TenantOut::from(tenant)))
}

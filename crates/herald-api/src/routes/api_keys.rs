//! `/v1/tenants/{tenant}/api-keys` and `/v1/admin-keys`: keys are created (the key shown once),
//! listed (never the key: its prefix, name, creation and last use) and revoked. All admin-only.
//!
//! A revoked key is refused on the very next request, on every node: keys are looked up in the
//! store on every request (see `auth.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_core::api_key::{ApiKeyKind, generate_api_key};
use herald_core::ids::ApiKeyId;
use herald_store::models::{ApiKeyRecord, KeyOwner, KeyRevocation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, TenantScope};
use crate::body::OptionalJsonIn;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_tenant_key, list_tenant_keys))
        .routes(routes!(revoke_tenant_key))
        .routes(routes!(create_admin_key, list_admin_keys))
        .routes(routes!(revoke_admin_key))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// What the key is for (1-200 characters), shown in lists.
    pub name: Option<String>,
}

/// A key as lists show it: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: String,
    /// The tenant the key reaches; null for an admin key.
    pub tenant: Option<String>,
    /// The key's first characters, to recognise it; empty for keys made before Herald kept them.
    pub prefix: String,
    pub name: Option<String>,
    /// True for the admin key `herald serve` generated at first start.
    pub generated_at_start: bool,
    pub created_at: String,
    /// When the key was last used, to the minute; null if never.
    pub last_used_at: Option<String>,
}

/// A key just made: the listing fields and the key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKeyOut {
    #[serde(flatten)]
    pub summary: ApiKeyOut,
    /// The key itself, shown this once: Herald keeps only its hash.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyListOut {
    pub data: Vec<ApiKeyOut>,
}

impl From<ApiKeyRecord> for ApiKeyOut {
    fn from(record: ApiKeyRecord) -> Self {
        ApiKeyOut {
            id: record.id.into_string(),
            tenant: record.tenant_id,
            prefix: record.prefix,
            name: record.name,
            generated_at_start: record.generated_at_start,
            created_at: format_time(record.created_at),
            last_used_at: record.last_used_at.map(format_time),
        }
    }
}

/// Makes a key for `owner`, stores its hash, and returns it once.
async fn create(
    state: &AppState,
    owner: KeyOwner<'_>,
    input: ApiKeyIn,
) -> ApiResult<(StatusCode, Json<NewApiKeyOut>)> {
    if let Some(name) = &input.name
        && (name.trim().is_empty() || name.chars().count() > 200)
    {
        return Err(ApiError::invalid("/name", "a name has 1-200 characters"));
    }
    let kind = match owner {
        KeyOwner::Admin => ApiKeyKind::Admin,
        KeyOwner::Tenant(_) => ApiKeyKind::Tenant,
    };
    let key = generate_api_key(kind);
    let record = ApiKeyRecord::for_new_key(
        ApiKeyId::new(),
        &key,
        owner,
        input.name,
        false,
        state.clock.now(),
    );
    state.store.create_api_key(record.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKeyOut {
            summary: ApiKeyOut::from(record),
            key,
        }),
    ))
}

async fn list(state: &AppState, owner: KeyOwner<'_>) -> ApiResult<Json<ApiKeyListOut>> {
    let keys = state.store.list_api_keys(owner).await?;
    Ok(Json(ApiKeyListOut {
        data: keys.into_iter().map(ApiKeyOut::from).collect(),
    }))
}

async fn revoke(state: &AppState, owner: KeyOwner<'_>, key_id: &str) -> ApiResult<StatusCode> {
    // Without a configured admin key, the stored ones are the only way in: the last one stays.
    let keep_an_admin_key = state.admin_key_hash.is_empty();
    match state
        .store
        .revoke_api_key(owner, key_id, keep_an_admin_key)
        .await?
    {
        KeyRevocation::Revoked => Ok(StatusCode::NO_CONTENT),
        KeyRevocation::NotFound => Err(ApiError::NotFound(format!("API key {key_id:?}"))),
        KeyRevocation::LastAdminKey => Err(ApiError::Conflict(
            "this is the last admin key: create another one (POST /v1/admin-keys) or set \
             HERALD_ADMIN_KEY before revoking it"
                .to_owned(),
        )),
    }
}

/// Create a tenant API key (admin key). The key is in the answer once and never again.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys",
    request_body(content = ApiKeyIn, description = "optional"),
    responses((status = 201, body = NewApiKeyOut)))]
pub async fn create_tenant_key(
    State(state): State<AppState>,
    _admin: Admin,
    scope: TenantScope,
    OptionalJsonIn(input): OptionalJsonIn<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<NewApiKeyOut>)> {
    create(&state, KeyOwner::Tenant(&scope.tenant_id), input).await
}

/// List a tenant's API keys, without the keys (admin key).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys",
    responses((status = 200, body = ApiKeyListOut)))]
pub async fn list_tenant_keys(
    State(state): State<AppState>,
    _admin: Admin,
    scope: TenantScope,
) -> ApiResult<Json<ApiKeyListOut>> {
    list(&state, KeyOwner::Tenant(&scope.tenant_id)).await
}

/// Revoke a tenant API key (admin key): it is refused from the next request on.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/api-keys/{key_id}", tag = "api-keys",
    responses((status = 204), (status = 404)))]
pub async fn revoke_tenant_key(
    State(state): State<AppState>,
    _admin: Admin,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    revoke(&state, KeyOwner::Tenant(&scope.tenant_id), &path_ids.1).await
}

/// Create another admin key (admin key). The key is in the answer once and never again.
#[utoipa::path(post, path = "/v1/admin-keys", tag = "api-keys",
    request_body(content = ApiKeyIn, description = "optional"),
    responses((status = 201, body = NewApiKeyOut)))]
pub async fn create_admin_key(
    State(state): State<AppState>,
    _admin: Admin,
    OptionalJsonIn(input): OptionalJsonIn<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<NewApiKeyOut>)> {
    create(&state, KeyOwner::Admin, input).await
}

/// List the stored admin keys, without the keys (admin key). `HERALD_ADMIN_KEY` is not stored
/// and not listed.
#[utoipa::path(get, path = "/v1/admin-keys", tag = "api-keys",
    responses((status = 200, body = ApiKeyListOut)))]
pub async fn list_admin_keys(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<ApiKeyListOut>> {
    list(&state, KeyOwner::Admin).await
}

/// Revoke a stored admin key (admin key). Without `HERALD_ADMIN_KEY`, the last one is kept: 409.
#[utoipa::path(delete, path = "/v1/admin-keys/{key_id}", tag = "api-keys",
    responses((status = 204), (status = 404), (status = 409)))]
pub async fn revoke_admin_key(
    State(state): State<AppState>,
    _admin: Admin,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    revoke(&state, KeyOwner::Admin, &key_id).await
}

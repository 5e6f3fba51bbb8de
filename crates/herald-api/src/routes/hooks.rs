//! `/v1/tenants/{tenant}/hooks`: blocking hooks, called in order before an operation happens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_catalog::catalog::TypeLookup;
use herald_core::ids::HookId;
use herald_store::models::{FailurePolicy, HookRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::JsonIn;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::routes::outbound::{check_url, parse_secret};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

const DEFAULT_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookIn {
    /// A blocking type of the catalog, e.g. `user.pre_create`.
    pub event_type: String,
    pub url: String,
    /// Hooks run in ascending position; by default after the type's last hook.
    pub position: Option<i32>,
    /// Per-hook timeout (default 5000, at most the chain's deadline).
    pub timeout_ms: Option<u64>,
    /// `fail_closed` (default) or `fail_open`.
    pub failure_policy: Option<String>,
    /// `whsec_...` or a plain secret; generated when absent.
    pub secret: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookPatchIn {
    pub url: Option<String>,
    pub position: Option<i32>,
    pub timeout_ms: Option<u64>,
    pub failure_policy: Option<String>,
    pub secret: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HookOut {
    pub id: String,
    pub event_type: String,
    pub url: String,
    pub position: i32,
    pub timeout_ms: u64,
    pub failure_policy: String,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The signing secret: in the answer to create only (and to an update that sets one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HookListOut {
    pub data: Vec<HookOut>,
}

fn hook_out(record: HookRecord, with_secret: bool) -> HookOut {
    HookOut {
        id: record.id.into_string(),
        event_type: record.event_type,
        url: record.url,
        position: record.position,
        timeout_ms: record.timeout_ms,
        failure_policy: record.failure_policy.as_str().to_owned(),
        enabled: record.enabled,
        created_at: format_time(record.created_at),
        updated_at: format_time(record.updated_at),
        secret: with_secret.then(|| record.secret.expose_text().to_owned()),
    }
}

fn check_timeout(state: &AppState, timeout_ms: u64) -> ApiResult<()> {
    let most = u64::try_from(state.settings.hook_chain_deadline.as_millis()).unwrap_or(u64::MAX);
    if timeout_ms == 0 || timeout_ms > most {
        return Err(ApiError::invalid(
            "/timeout_ms",
            format!("between 1 and the chain's deadline, {most} ms"),
        ));
    }
    Ok(())
}

fn parse_policy(policy: &str) -> ApiResult<FailurePolicy> {
    policy
        .parse()
        .map_err(|message: String| ApiError::invalid("/failure_policy", message))
}

async fn find(state: &AppState, tenant_id: &str, hook_id: &str) -> ApiResult<HookRecord> {
    state
        .store
        .get_hook(tenant_id, hook_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("hook {hook_id:?}")))
}

/// Add a blocking hook for one of the catalog's blocking event types.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/hooks", tag = "hooks", request_body = HookIn,
    responses((status = 201, body = HookOut), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    scope: TenantScope,
    JsonIn(input): JsonIn<HookIn>,
) -> ApiResult<(StatusCode, Json<HookOut>)> {
    let lookup = state.custom_types.lookup_for(&scope.tenant_id);
    match lookup.lookup(&input.event_type) {
        Some(definition) if definition.is_blocking() => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "/event_type",
                format!("{:?} is not a blocking event type", input.event_type),
            ));
        }
        None => {
            return Err(ApiError::invalid(
                "/event_type",
                format!("unknown event type {:?}", input.event_type),
            ));
        }
    }
    let url = check_url(&state, &input.url)?;
    let timeout_ms = input.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    check_timeout(&state, timeout_ms)?;
    let failure_policy = input
        .failure_policy
        .as_deref()
        .map(parse_policy)
        .transpose()?
        .unwrap_or_default();
    let secret = parse_secret(input.secret)?;
    let position = match input.position {
        Some(position) => position,
        None => {
            let existing = state.store.list_hooks(&scope.tenant_id).await?;
            existing
                .iter()
                .filter(|hook| hook.event_type == input.event_type)
                .map(|hook| hook.position)
                .max()
                .map_or(10, |last| last.saturating_add(10))
        }
    };
    let now = state.clock.now();
    let record = HookRecord {
        id: HookId::new(),
        tenant_id: scope.tenant_id.clone(),
        event_type: input.event_type,
        url,
        position,
        timeout_ms,
        failure_policy,
        secret,
        enabled: input.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    let created = state.store.create_hook(record).await?;
    state.hooks.invalidate(&scope.tenant_id);
    Ok((StatusCode::CREATED, Json(hook_out(created, true))))
}

/// The tenant's hooks, by event type and position.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/hooks", tag = "hooks", responses((status = 200, body = HookListOut)))]
pub async fn list(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<HookListOut>> {
    let hooks = state.store.list_hooks(&scope.tenant_id).await?;
    Ok(Json(HookListOut {
        data: hooks
            .into_iter()
            .map(|hook| hook_out(hook, false))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/hooks/{hook_id}", tag = "hooks", responses((status = 200, body = HookOut)))]
pub async fn get_one(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<HookOut>> {
    let hook_id = path_ids.1;
    Ok(Json(hook_out(
        find(&state, &scope.tenant_id, &hook_id).await?,
        false,
    )))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/hooks/{hook_id}", tag = "hooks", request_body = HookPatchIn,
    responses((status = 200, body = HookOut)))]
pub async fn update(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    JsonIn(patch): JsonIn<HookPatchIn>,
) -> ApiResult<Json<HookOut>> {
    let hook_id = path_ids.1;
    let mut record = find(&state, &scope.tenant_id, &hook_id).await?;
    if let Some(url) = patch.url {
        record.url = check_url(&state, &url)?;
    }
    if let Some(position) = patch.position {
        record.position = position;
    }
    if let Some(timeout_ms) = patch.timeout_ms {
        check_timeout(&state, timeout_ms)?;
        record.timeout_ms = timeout_ms;
    }
    if let Some(policy) = patch.failure_policy {
        record.failure_policy = parse_policy(&policy)?;
    }
    let new_secret = patch.secret.is_some();
    if new_secret {
        record.secret = parse_secret(patch.secret)?;
    }
    if let Some(enabled) = patch.enabled {
        record.enabled = enabled;
    }
    record.updated_at = state.clock.now();
    let updated = state.store.update_hook(record).await?;
    state.hooks.invalidate(&scope.tenant_id);
    Ok(Json(hook_out(updated, new_secret)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/hooks/{hook_id}", tag = "hooks", responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let hook_id = path_ids.1;
    let removed = state.store.delete_hook(&scope.tenant_id, &hook_id).await?;
    state.hooks.invalidate(&scope.tenant_id);
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("hook {hook_id:?}")))
    }
}

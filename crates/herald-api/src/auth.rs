//! Who is calling: API keys as `Authorization: Bearer ...`, resolved into an extractor.
//!
//! Keys are stored as SHA-256 hashes. The configured admin key is compared in constant time;
//! stored keys are found by the hash of what was presented, so the secret itself is never
//! compared byte by byte.

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::request::Parts;
use herald_core::secret::{constant_time_eq, hash_api_key};
use std::collections::HashMap;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        // A handler may take several extractors that need the caller (`Admin` and
        // `TenantScope`): the key is looked up once per request.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = authenticate(parts, &AppState::from_ref(state)).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// The caller the request's key belongs to.
async fn authenticate(parts: &Parts, state: &AppState) -> ApiResult<Caller> {
    let presented = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    authenticate_key(presented, state).await
}

/// The caller a presented key belongs to: the one check behind a bearer key and the console's
/// session cookie, so revocation and tenant scoping are the same for both.
pub(crate) async fn authenticate_key(presented: &str, state: &AppState) -> ApiResult<Caller> {
    if presented.is_empty() || presented.len() > 256 {
        return Err(ApiError::Unauthorized);
    }
    let presented_hash = hash_api_key(presented);
    if constant_time_eq(presented_hash.as_bytes(), state.admin_key_hash.as_bytes()) {
        return Ok(Caller::Admin);
    }
    // The store is asked every time (SQLite answers from a cache it keeps coherent), so a
    // revoked key is refused on the next request, on every node.
    let record = state
        .store
        .authenticate_api_key(&presented_hash, state.clock.now())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(match record.tenant_id {
        Some(tenant_id) => {
            state.known_tenants.remember(&tenant_id);
            Caller::Tenant(tenant_id)
        }
        None => Caller::Admin,
    })
}

/// The token of `Authorization: Bearer <token>`. RFC 9110 §11.1: the authentication scheme is a
/// case-insensitive token, so `bearer` and `BEARER` are `Bearer`; one or more spaces separate it
/// from the credentials (§11.4, `1*SP`).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return None;
    }
    let token = token.trim_matches(' ');
    (!token.is_empty()).then_some(token)
}

/// Tenants this process has seen exist, so an admin request need not read the tenant row every
/// time. Tenants are never deleted, so an entry cannot go stale on any node.
#[derive(Debug, Default)]
pub struct KnownTenants {
    ids: std::sync::RwLock<std::collections::HashSet<String>>,
}

/// Past this many tenants the set is emptied and refilled as tenants are used.
const KNOWN_TENANTS_LIMIT: usize = 10_000;

impl KnownTenants {
    fn contains(&self, tenant_id: &str) -> bool {
        self.ids.read().is_ok_and(|ids| ids.contains(tenant_id))
    }

    fn remember(&self, tenant_id: &str) {
        if self.contains(tenant_id) {
            return;
        }
        if let Ok(mut ids) = self.ids.write() {
            if ids.len() >= KNOWN_TENANTS_LIMIT {
                ids.clear();
            }
            ids.insert(tenant_id.to_owned());
        }
    }
}

/// An admin caller; anyone else gets 403.
#[derive(Debug)]
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Admin => Ok(Admin),
            Caller::Tenant(_) => Err(ApiError::Forbidden("only an admin key manages tenants")),
        }
    }
}

/// The `{tenant}` of the path, checked against the caller: an admin reaches any existing tenant,
/// a tenant key only its own. Anything else is answered 404, so a caller cannot even learn which
/// other tenants exist.
#[derive(Debug, Clone)]
pub struct TenantScope {
    pub tenant_id: String,
}

impl<S> FromRequestParts<S> for TenantScope
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("tenant".to_owned()))?;
        let tenant_id = params
            .get("tenant")
            .cloned()
            .ok_or_else(|| ApiError::NotFound("tenant".to_owned()))?;
        let not_found = || ApiError::NotFound(format!("tenant {tenant_id:?}"));
        match caller {
            Caller::Tenant(own) if own == tenant_id => Ok(TenantScope { tenant_id }),
            Caller::Tenant(_) => Err(not_found()),
            Caller::Admin => {
                let state = AppState::from_ref(state);
                if !state.known_tenants.contains(&tenant_id) {
                    if state.store.get_tenant(&tenant_id).await?.is_none() {
                        return Err(not_found());
                    }
                    state.known_tenants.remember(&tenant_id);
                }
                Ok(TenantScope { tenant_id })
            }
        }
    }
}

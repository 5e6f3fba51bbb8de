//! Who is calling: API keys as `Authorization: Bearer ...`, resolved into an extractor.
//!
//! Keys are stored as SHA-256 hashes. The admin key is compared in constant time; tenant keys are
//! found by the hash of what was presented, so the secret itself is never compared byte by byte.

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
        let state = AppState::from_ref(state);
        let presented = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|key| !key.is_empty() && key.len() <= 256)
            .ok_or(ApiError::Unauthorized)?;
        let presented_hash = hash_api_key(presented);
        if constant_time_eq(presented_hash.as_bytes(), state.admin_key_hash.as_bytes()) {
            return Ok(Caller::Admin);
        }
        if let Some(caller) = state.known_keys.get(&presented_hash) {
            return Ok(caller);
        }
        let caller = match state.store.find_api_key(&presented_hash).await? {
            Some(record) => match record.tenant_id {
                Some(tenant_id) => Caller::Tenant(tenant_id),
                None => Caller::Admin,
            },
            None => return Err(ApiError::Unauthorized),
        };
        state.known_keys.remember(presented_hash, caller.clone());
        Ok(caller)
    }
}

/// Keys already seen, by hash, so a hot path (a blocking evaluation) needs no database read to
/// authenticate. Only keys that exist are kept, so guessing cannot fill it; keys are never
/// revoked today, so a remembered key cannot go stale (a revocation must `forget` it).
#[derive(Debug, Default)]
pub struct KnownKeys {
    by_hash: std::sync::RwLock<HashMap<String, Caller>>,
}

/// Past this many keys the memory is cleared and refilled from the store as keys are used.
const KNOWN_KEYS_LIMIT: usize = 10_000;

impl KnownKeys {
    fn get(&self, key_hash: &str) -> Option<Caller> {
        self.by_hash.read().ok()?.get(key_hash).cloned()
    }

    /// Whether a tenant key of `tenant_id` was seen, which proves the tenant exists (tenants
    /// are never deleted).
    fn tenant_exists(&self, tenant_id: &str) -> bool {
        self.by_hash.read().is_ok_and(|by_hash| {
            by_hash
                .values()
                .any(|caller| matches!(caller, Caller::Tenant(id) if id == tenant_id))
        })
    }

    fn remember(&self, key_hash: String, caller: Caller) {
        if let Ok(mut by_hash) = self.by_hash.write() {
            if by_hash.len() >= KNOWN_KEYS_LIMIT {
                by_hash.clear();
            }
            by_hash.insert(key_hash, caller);
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
                if !state.known_keys.tenant_exists(&tenant_id)
                    && state.store.get_tenant(&tenant_id).await?.is_none()
                {
                    return Err(not_found());
                }
                Ok(TenantScope { tenant_id })
            }
        }
    }
}

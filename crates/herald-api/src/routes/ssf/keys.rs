//! The tenant's signing keys: ES256/RS256 keys sign its SETs, Ed25519 keys its endpoints'
//! Standard Webhooks `v1a` signatures; each kind rotates on its own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_core::ids::prefixed_id;
use herald_ssf::jws::{JwsAlgorithm, TenantSigningKey};
use herald_store::ssf::SsfSigningKeyRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::TenantScope;
use crate::body::OptionalJsonIn;
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyIn {
    /// The JWS algorithm: `ES256` (the default) or `RS256` for SETs; `EdDSA` (Ed25519) for
    /// endpoints' Standard Webhooks `v1a` signatures. Each kind rotates on its own.
    pub alg: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyOut {
    pub kid: String,
    pub alg: String,
    pub created_at: String,
    /// Set when a newer key replaced it; it stays in the JWKS for the rotation overlap.
    pub retired_at: Option<String>,
    /// The public key as a JWK (the private key is never shown).
    #[schema(value_type = Object)]
    pub public_jwk: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyListOut {
    pub data: Vec<SigningKeyOut>,
}

pub(super) fn load_key(record: &SsfSigningKeyRecord) -> ApiResult<TenantSigningKey> {
    let algorithm = JwsAlgorithm::parse(&record.algorithm).ok_or_else(|| {
        ApiError::Internal(format!(
            "signing key {} has unknown alg {}",
            record.kid, record.algorithm
        ))
    })?;
    TenantSigningKey::from_private_key_text(record.kid.clone(), algorithm, &record.private_key)
        .map_err(|error| ApiError::Internal(format!("signing key {}: {error}", record.kid)))
}

fn key_out(record: &SsfSigningKeyRecord) -> ApiResult<SigningKeyOut> {
    Ok(SigningKeyOut {
        kid: record.kid.clone(),
        alg: record.algorithm.clone(),
        created_at: format_time(record.created_at),
        retired_at: record.retired_at.map(format_time),
        public_jwk: load_key(record)?.public_jwk(),
    })
}

/// Makes a new key the tenant's signing key; older keys are retired but stay published for the
/// rotation overlap, so SETs signed just before still verify.
async fn new_signing_key(
    state: &AppState,
    tenant_id: &str,
    algorithm: JwsAlgorithm,
) -> ApiResult<SsfSigningKeyRecord> {
    // An RSA key takes a while to find: off the async workers.
    let kid = prefixed_id("sigkey");
    let key = tokio::task::spawn_blocking(move || TenantSigningKey::generate(kid, algorithm))
        .await
        .map_err(|error| ApiError::Internal(format!("key generation: {error}")))?
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let private_key = key
        .private_key_text()
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let now = state.clock.now();
    let record = SsfSigningKeyRecord {
        kid: key.kid.clone(),
        tenant_id: tenant_id.to_owned(),
        algorithm: algorithm.name().to_owned(),
        private_key,
        created_at: now,
        retired_at: None,
    };
    state.store.create_ssf_signing_key(record.clone()).await?;
    // Only keys of the same kind are replaced: a new Ed25519 webhook key leaves the SET key
    // signing, and the other way round.
    for older in state.store.list_ssf_signing_keys(tenant_id).await? {
        let same_kind = JwsAlgorithm::parse(&older.algorithm).is_some_and(|older_algorithm| {
            older_algorithm.signs_webhooks() == algorithm.signs_webhooks()
        });
        if older.kid != record.kid && older.retired_at.is_none() && same_kind {
            state
                .store
                .retire_ssf_signing_key(tenant_id, &older.kid, now)
                .await?;
        }
    }
    Ok(record)
}

/// The key that signs SETs now: the newest SET key (not an Ed25519 webhook key) not retired,
/// made on first use.
pub(super) async fn current_signing_key(
    state: &AppState,
    tenant_id: &str,
) -> ApiResult<TenantSigningKey> {
    let keys = state.store.list_ssf_signing_keys(tenant_id).await?;
    let signs_sets = |key: &&SsfSigningKeyRecord| {
        JwsAlgorithm::parse(&key.algorithm).is_some_and(|algorithm| !algorithm.signs_webhooks())
    };
    match keys
        .iter()
        .filter(signs_sets)
        .find(|key| key.retired_at.is_none())
    {
        Some(record) => load_key(record),
        None => load_key(&new_signing_key(state, tenant_id, JwsAlgorithm::Es256).await?),
    }
}

/// Create a signing key for the tenant's SETs; it signs from now on, and the previous keys stay
/// in the JWKS for the rotation overlap.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/ssf/keys", tag = "shared-signals",
    request_body(content = Option<SigningKeyIn>), responses((status = 201, body = SigningKeyOut)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    scope: TenantScope,
    OptionalJsonIn(input): OptionalJsonIn<SigningKeyIn>,
) -> ApiResult<(StatusCode, Json<SigningKeyOut>)> {
    let name = input.alg.unwrap_or_else(|| "ES256".to_owned());
    let algorithm = JwsAlgorithm::parse(&name)
        .ok_or_else(|| ApiError::invalid("/alg", "must be ES256, RS256 or EdDSA"))?;
    let record = new_signing_key(&state, &scope.tenant_id, algorithm).await?;
    Ok((StatusCode::CREATED, Json(key_out(&record)?)))
}

/// Retire a key now: it stops signing, and stays in the JWKS (and, for an Ed25519 key, keeps
/// signing `v1a` beside its successor) for the rotation overlap. Retiring a retired key changes
/// nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/ssf/keys/{kid}/retire", tag = "shared-signals",
    responses((status = 200, body = SigningKeyOut), (status = 404)))]
pub async fn retire_key(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<SigningKeyOut>> {
    let kid = path_ids.1;
    let now = state.clock.now();
    state
        .store
        .retire_ssf_signing_key(&scope.tenant_id, &kid, now)
        .await?;
    let keys = state.store.list_ssf_signing_keys(&scope.tenant_id).await?;
    let record = keys
        .iter()
        .find(|key| key.kid == kid)
        .ok_or_else(|| ApiError::NotFound(format!("signing key {kid:?}")))?;
    Ok(Json(key_out(record)?))
}

/// The tenant's signing keys, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/ssf/keys", tag = "shared-signals",
    responses((status = 200, body = SigningKeyListOut)))]
pub async fn list_keys(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<SigningKeyListOut>> {
    let keys = state.store.list_ssf_signing_keys(&scope.tenant_id).await?;
    Ok(Json(SigningKeyListOut {
        data: keys.iter().map(key_out).collect::<ApiResult<_>>()?,
    }))
}

//! `/v1/tenants/{tenant}/endpoints`: subscribers, their secrets, and replays to them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_core::ids::EndpointId;
use herald_core::retry::RetrySchedule;
use herald_core::signing::SignatureScheme;
use herald_delivery::v1a_keys::{has_current_ed25519_key, live_ed25519_keys};
use herald_store::models::{EndpointFilter, EndpointRecord, ReplaySelector};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::{JsonIn, OptionalJsonIn};
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::routes::outbound::{check_url, parse_secret};
use crate::state::AppState;

mod checks;
mod wire;

use checks::{
    DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT_MS, check_headers, check_limits, parse_filters,
    parse_format, parse_ordering, parse_schedule, parse_signature_scheme,
};
pub use wire::{
    EndpointIn, EndpointListOut, EndpointOut, EndpointPatchIn, ReplayIn, ReplayOut, RotateIn,
    RotateOut,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(rotate_secret))
        .routes(routes!(replay))
}

fn endpoint_out(record: EndpointRecord, with_secret: bool, keys: &TenantPublicKeys) -> EndpointOut {
    EndpointOut {
        signature_public_keys: record
            .signature_scheme
            .signs_v1a()
            .then(|| keys.whpk.clone()),
        signature_scheme: record.signature_scheme.as_str().to_owned(),
        id: record.id.into_string(),
        url: record.url,
        description: record.description,
        filters: EndpointFilter::texts(&record.filters),
        format: record.format.as_str().to_owned(),
        ordering: record.ordering.as_str().to_owned(),
        retry_schedule_s: record.retry_schedule.to_seconds(),
        timeout_ms: record.timeout_ms,
        max_concurrency: record.max_concurrency,
        rate_limit_per_s: record.rate_limit_per_s,
        headers: record.headers,
        enabled: record.enabled,
        paused: record.paused,
        disabled_reason: record
            .disabled_reason
            .map(|reason| reason.as_str().to_owned()),
        failing_since: record.failing_since.map(format_time),
        created_at: format_time(record.created_at),
        updated_at: format_time(record.updated_at),
        secret: with_secret.then(|| record.secret.expose_text().to_owned()),
    }
}

/// The tenant's `v1a` public keys, read once per request.
struct TenantPublicKeys {
    whpk: Vec<String>,
    has_current_key: bool,
}

impl TenantPublicKeys {
    async fn load(state: &AppState, tenant_id: &str) -> ApiResult<Self> {
        let records = state.store.list_ssf_signing_keys(tenant_id).await?;
        let live = live_ed25519_keys(&records, state.clock.now(), state.settings.secret_overlap);
        Ok(Self {
            whpk: live.iter().map(|key| key.public_key().to_whpk()).collect(),
            has_current_key: has_current_ed25519_key(&records),
        })
    }

    /// A `v1a` scheme needs a key to sign with: refused with a 422 naming the fix, rather than
    /// an endpoint whose every delivery would fail.
    fn check(&self, tenant_id: &str, scheme: SignatureScheme) -> ApiResult<()> {
        if scheme.signs_v1a() && !self.has_current_key {
            return Err(ApiError::invalid(
                "/signature_scheme",
                format!(
                    "tenant {tenant_id:?} has no Ed25519 signing key yet: create one with \
                     POST /v1/tenants/{tenant_id}/ssf/keys {{\"alg\": \"EdDSA\"}} \
                     (herald ssf keys create --alg EdDSA)"
                ),
            ));
        }
        Ok(())
    }
}

async fn find(state: &AppState, tenant_id: &str, endpoint_id: &str) -> ApiResult<EndpointRecord> {
    state
        .store
        .get_endpoint(tenant_id, endpoint_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("endpoint {endpoint_id:?}")))
}

/// Create an endpoint. The answer carries its signing secret.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/endpoints", tag = "endpoints", request_body = EndpointIn,
    responses((status = 201, body = EndpointOut), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    scope: TenantScope,
    JsonIn(input): JsonIn<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let url = check_url(&state, &input.url)?;
    let filters = parse_filters(&input.filters)?;
    let format = parse_format(input.format.as_deref().unwrap_or("native"))?;
    let ordering = parse_ordering(input.ordering.as_deref().unwrap_or("none"))?;
    let retry_schedule = match &input.retry_schedule_s {
        Some(delays_s) => parse_schedule(delays_s)?,
        None => RetrySchedule::default(),
    };
    let timeout_ms = input.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let max_concurrency = input.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
    check_limits(timeout_ms, max_concurrency, input.rate_limit_per_s)?;
    let headers = input.headers.unwrap_or_default();
    check_headers(&headers)?;
    let secret = parse_secret(input.secret)?;
    let signature_scheme =
        parse_signature_scheme(input.signature_scheme.as_deref().unwrap_or("v1"))?;
    let public_keys = TenantPublicKeys::load(&state, &scope.tenant_id).await?;
    public_keys.check(&scope.tenant_id, signature_scheme)?;
    let now = state.clock.now();
    let record = EndpointRecord {
        id: EndpointId::new(),
        tenant_id: scope.tenant_id,
        url,
        description: input.description.unwrap_or_default(),
        filters,
        format,
        secret,
        previous_secret: None,
        previous_secret_expires_at: None,
        ordering,
        retry_schedule,
        timeout_ms,
        max_concurrency,
        rate_limit_per_s: input.rate_limit_per_s,
        headers,
        enabled: input.enabled.unwrap_or(true),
        paused: input.paused.unwrap_or(false),
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
        signature_scheme,
    };
    let created = state.store.create_endpoint(record).await?;
    Ok((
        StatusCode::CREATED,
        Json(endpoint_out(created, true, &public_keys)),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/endpoints", tag = "endpoints", responses((status = 200, body = EndpointListOut)))]
pub async fn list(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<EndpointListOut>> {
    let endpoints = state.store.list_endpoints(&scope.tenant_id).await?;
    let public_keys = TenantPublicKeys::load(&state, &scope.tenant_id).await?;
    Ok(Json(EndpointListOut {
        data: endpoints
            .into_iter()
            .map(|record| endpoint_out(record, false, &public_keys))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/endpoints/{endpoint_id}", tag = "endpoints", responses((status = 200, body = EndpointOut)))]
pub async fn get_one(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let endpoint_id = path_ids.1;
    let record = find(&state, &scope.tenant_id, &endpoint_id).await?;
    let public_keys = TenantPublicKeys::load(&state, &scope.tenant_id).await?;
    Ok(Json(endpoint_out(record, false, &public_keys)))
}

/// Change some settings. Enabling a disabled endpoint, or resuming a paused one
/// (`"paused": false`), sends its waiting deliveries.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/endpoints/{endpoint_id}", tag = "endpoints", request_body = EndpointPatchIn,
    responses((status = 200, body = EndpointOut)))]
pub async fn update(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    JsonIn(patch): JsonIn<EndpointPatchIn>,
) -> ApiResult<Json<EndpointOut>> {
    let endpoint_id = path_ids.1;
    let mut record = find(&state, &scope.tenant_id, &endpoint_id).await?;
    if let Some(url) = patch.url {
        record.url = check_url(&state, &url)?;
    }
    if let Some(filters) = patch.filters {
        record.filters = parse_filters(&filters)?;
    }
    if let Some(format) = patch.format {
        record.format = parse_format(&format)?;
    }
    if let Some(ordering) = patch.ordering {
        record.ordering = parse_ordering(&ordering)?;
    }
    if let Some(schedule) = patch.retry_schedule_s {
        record.retry_schedule = parse_schedule(&schedule)?;
    }
    record.timeout_ms = patch.timeout_ms.unwrap_or(record.timeout_ms);
    record.max_concurrency = patch.max_concurrency.unwrap_or(record.max_concurrency);
    if let Some(rate) = patch.rate_limit_per_s {
        record.rate_limit_per_s = rate;
    }
    check_limits(
        record.timeout_ms,
        record.max_concurrency,
        record.rate_limit_per_s,
    )?;
    if let Some(headers) = patch.headers {
        check_headers(&headers)?;
        record.headers = headers;
    }
    if let Some(description) = patch.description {
        record.description = description;
    }
    if let Some(enabled) = patch.enabled {
        if enabled && !record.enabled {
            record.disabled_reason = None;
            record.failing_since = None;
        }
        record.enabled = enabled;
    }
    if let Some(paused) = patch.paused {
        record.paused = paused;
    }
    let public_keys = TenantPublicKeys::load(&state, &scope.tenant_id).await?;
    if let Some(scheme) = patch.signature_scheme {
        record.signature_scheme = parse_signature_scheme(&scheme)?;
        public_keys.check(&scope.tenant_id, record.signature_scheme)?;
    }
    record.updated_at = state.clock.now();
    let updated = state.store.update_endpoint(record).await?;
    // Any change may have made waiting work due (re-enabled, resumed, looser limits), so the local
    // dispatcher looks again; other nodes hear of it from the store (PostgreSQL's NOTIFY).
    state.delivery_wakeup.notify_one();
    Ok(Json(endpoint_out(updated, false, &public_keys)))
}

/// Delete an endpoint with its deliveries; the events stay in the log.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/endpoints/{endpoint_id}", tag = "endpoints", responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let endpoint_id = path_ids.1;
    if state
        .store
        .delete_endpoint(&scope.tenant_id, &endpoint_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("endpoint {endpoint_id:?}")))
    }
}

/// Rotate the signing secret: the old one keeps signing alongside the new one for 24 hours.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/endpoints/{endpoint_id}/secret/rotate", tag = "endpoints",
    request_body = RotateIn, responses((status = 200, body = RotateOut)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    OptionalJsonIn(input): OptionalJsonIn<RotateIn>,
) -> ApiResult<Json<RotateOut>> {
    let endpoint_id = path_ids.1;
    let mut record = find(&state, &scope.tenant_id, &endpoint_id).await?;
    let now = state.clock.now();
    let new_secret = parse_secret(input.secret)?;
    let expires_at = now + state.settings.secret_overlap;
    record.previous_secret = Some(std::mem::replace(&mut record.secret, new_secret.clone()));
    record.previous_secret_expires_at = Some(expires_at);
    record.updated_at = now;
    state.store.update_endpoint(record).await?;
    Ok(Json(RotateOut {
        secret: new_secret.expose_text().to_owned(),
        previous_secret_expires_at: format_time(expires_at),
    }))
}

/// Deliver events to this endpoint again: one event, every exhausted delivery, or everything
/// since a `seq` or a time.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/endpoints/{endpoint_id}/replay", tag = "endpoints",
    request_body = ReplayIn, responses((status = 202, body = ReplayOut)))]
pub async fn replay(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    JsonIn(input): JsonIn<ReplayIn>,
) -> ApiResult<(StatusCode, Json<ReplayOut>)> {
    let endpoint_id = path_ids.1;
    let mut selectors = Vec::new();
    if let Some(event_id) = input.event_id {
        selectors.push(ReplaySelector::Event(event_id));
    }
    if input.failed == Some(true) {
        selectors.push(ReplaySelector::Failed);
    }
    if let Some(seq) = input.since_seq {
        selectors.push(ReplaySelector::SinceSeq(seq));
    }
    if let Some(since) = input.since {
        let time = OffsetDateTime::parse(&since, &Rfc3339).map_err(|error| {
            ApiError::invalid("/since", format!("expected an RFC 3339 date-time: {error}"))
        })?;
        selectors.push(ReplaySelector::SinceTime(time));
    }
    let [selector] = <[ReplaySelector; 1]>::try_from(selectors).map_err(|_| {
        ApiError::invalid(
            "",
            "give exactly one of event_id, failed: true, since_seq or since",
        )
    })?;
    let n_replayed = state
        .store
        .replay(&scope.tenant_id, &endpoint_id, &selector, state.clock.now())
        .await?;
    if n_replayed > 0 {
        state.delivery_wakeup.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(ReplayOut { n_replayed })))
}

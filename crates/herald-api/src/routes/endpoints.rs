//! `/v1/tenants/{tenant}/endpoints`: subscribers, their secrets, and replays to them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_catalog::envelope::RenderFormat;
use herald_core::ids::prefixed_id;
use herald_core::retry::RetrySchedule;
use herald_core::signing::SignatureScheme;
use herald_delivery::v1a_keys::{has_current_ed25519_key, live_ed25519_keys};
use herald_store::models::{EndpointFilter, EndpointRecord, Ordering, ReplaySelector};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::{JsonIn, OptionalJsonIn};
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::routes::outbound::{check_url, parse_secret};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(rotate_secret))
        .routes(routes!(replay))
}

const DEFAULT_TIMEOUT_MS: u64 = 15_000;
const DEFAULT_MAX_CONCURRENCY: u32 = 16;

/// Headers Herald sets itself; an endpoint's custom headers may not replace them.
const RESERVED_HEADERS: [&str; 9] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-authgear-body-signature",
    "x-hub-signature",
    "content-type",
    "content-length",
    "host",
    "user-agent",
];

/// Headers about the connection and the message's framing rather than its content: the
/// hop-by-hop fields of RFC 9110 §7.6.1 (`Connection` and the fields it governs: `Keep-Alive`,
/// `TE`, `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`, plus `Trailer`), `Expect`, and every
/// `Proxy-*` field. Set by a tenant, they could change how Herald's own HTTP client frames or
/// keeps a request (a second `Transfer-Encoding` is the classic start of request smuggling), so
/// they are refused rather than sent.
const CONNECTION_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "proxy-connection",
];

/// Why a custom header name may not be used, if it may not.
fn refused_header_reason(name: &str) -> Option<&'static str> {
    let lowercase = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lowercase.as_str()) {
        Some("Herald sets this header itself")
    } else if CONNECTION_HEADERS.contains(&lowercase.as_str()) || lowercase.starts_with("proxy-") {
        Some("a hop-by-hop or framing header: it describes the connection, not the webhook")
    } else {
        None
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    pub url: String,
    /// Exact types, `*`-suffix wildcards (`user.*`), taxonomy names, or `*`.
    pub filters: Vec<String>,
    /// `whsec_<base64>` or a vendor's plain secret; generated when absent.
    pub secret: Option<String>,
    /// `native` (default) or `canonical`.
    pub format: Option<String>,
    /// `none` (default), `subject` or `strict`.
    pub ordering: Option<String>,
    pub retry_schedule_s: Option<Vec<u64>>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub rate_limit_per_s: Option<u32>,
    pub headers: Option<BTreeMap<String, String>>,
    /// `false` creates no deliveries at all; default `true`.
    pub enabled: Option<bool>,
    /// `true` queues deliveries without attempting them until the endpoint is resumed (a
    /// maintenance window on the receiver's side); default `false`.
    pub paused: Option<bool>,
    pub description: Option<String>,
    /// Standard Webhooks signatures in `webhook-signature`: `v1` (HMAC with the secret, the
    /// default), `v1a` (Ed25519 with the tenant's key; consumers verify with its `whpk_` public
    /// key) or `v1a+v1` (both, while consumers move over).
    pub signature_scheme: Option<String>,
}

/// A partial update: members left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchIn {
    pub url: Option<String>,
    pub filters: Option<Vec<String>>,
    pub format: Option<String>,
    pub ordering: Option<String>,
    pub retry_schedule_s: Option<Vec<u64>>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "deserialize_some")]
    pub rate_limit_per_s: Option<Option<u32>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    /// `false` resumes a paused endpoint: its queued deliveries go out.
    pub paused: Option<bool>,
    pub description: Option<String>,
    /// `v1`, `v1a` or `v1a+v1`.
    pub signature_scheme: Option<String>,
}

/// Distinguishes an explicit `null` (Some(None)) from a missing member (None).
fn deserialize_some<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    pub id: String,
    pub url: String,
    pub description: String,
    pub filters: Vec<String>,
    pub format: String,
    pub ordering: String,
    pub retry_schedule_s: Vec<u64>,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub rate_limit_per_s: Option<u32>,
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    /// Deliveries are queued but not attempted while `true`.
    pub paused: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The signing secret: in the answers to create and rotate only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `v1`, `v1a` or `v1a+v1`.
    pub signature_scheme: String,
    /// For `v1a` and `v1a+v1`: the `whpk_` public keys whose signatures deliveries carry now,
    /// newest first; consumers trust these. During a key rotation both old and new are listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_public_keys: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointListOut {
    pub data: Vec<EndpointOut>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// The new secret; generated when absent.
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotateOut {
    pub secret: String,
    /// Until then the previous secret signs too.
    pub previous_secret_expires_at: String,
}

/// Exactly one of the members says what to replay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    pub event_id: Option<String>,
    /// Every exhausted delivery of the endpoint.
    pub failed: Option<bool>,
    pub since_seq: Option<i64>,
    /// RFC 3339: every matching event received since then.
    pub since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    pub n_replayed: u64,
}

fn endpoint_out(record: EndpointRecord, with_secret: bool, keys: &TenantPublicKeys) -> EndpointOut {
    EndpointOut {
        signature_public_keys: record
            .signature_scheme
            .signs_v1a()
            .then(|| keys.whpk.clone()),
        signature_scheme: record.signature_scheme.as_str().to_owned(),
        id: record.id,
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

fn parse_signature_scheme(name: &str) -> ApiResult<SignatureScheme> {
    SignatureScheme::parse(name).ok_or_else(|| {
        ApiError::invalid(
            "/signature_scheme",
            "expected \"v1\", \"v1a\" or \"v1a+v1\"",
        )
    })
}

fn parse_filters(filters: &[String]) -> ApiResult<Vec<EndpointFilter>> {
    if filters.is_empty() {
        return Err(ApiError::invalid(
            "/filters",
            "at least one filter, e.g. \"*\" for every event",
        ));
    }
    if filters.len() > 100 {
        return Err(ApiError::invalid("/filters", "at most 100 filters"));
    }
    EndpointFilter::parse_all(filters)
        .map_err(|(index, error)| ApiError::invalid(format!("/filters/{index}"), error.to_string()))
}

fn parse_format(format: &str) -> ApiResult<RenderFormat> {
    RenderFormat::parse(format)
        .ok_or_else(|| ApiError::invalid("/format", "expected \"native\" or \"canonical\""))
}

fn parse_ordering(ordering: &str) -> ApiResult<Ordering> {
    ordering
        .parse()
        .map_err(|message: String| ApiError::invalid("/ordering", message))
}

fn parse_schedule(delays_s: &[u64]) -> ApiResult<RetrySchedule> {
    RetrySchedule::from_seconds(delays_s)
        .map_err(|error| ApiError::invalid("/retry_schedule_s", error.to_string()))
}

fn check_limits(
    timeout_ms: u64,
    max_concurrency: u32,
    rate_limit_per_s: Option<u32>,
) -> ApiResult<()> {
    if !(100..=60_000).contains(&timeout_ms) {
        return Err(ApiError::invalid(
            "/timeout_ms",
            "between 100 and 60000 milliseconds",
        ));
    }
    if !(1..=1_000).contains(&max_concurrency) {
        return Err(ApiError::invalid("/max_concurrency", "between 1 and 1000"));
    }
    if rate_limit_per_s.is_some_and(|rate| !(1..=100_000).contains(&rate)) {
        return Err(ApiError::invalid(
            "/rate_limit_per_s",
            "between 1 and 100000 per second",
        ));
    }
    Ok(())
}

fn check_headers(headers: &BTreeMap<String, String>) -> ApiResult<()> {
    if headers.len() > 20 {
        return Err(ApiError::invalid("/headers", "at most 20 custom headers"));
    }
    for (name, value) in headers {
        let path = format!(
            "/headers/{}",
            herald_catalog::validation::escape_pointer_token(name)
        );
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(path, "not a valid HTTP header name"));
        }
        if let Some(reason) = refused_header_reason(name) {
            return Err(ApiError::invalid(path, reason));
        }
        if http::HeaderValue::from_str(value).is_err() || value.len() > 4096 {
            return Err(ApiError::invalid(
                path,
                "not a valid HTTP header value (visible ASCII, at most 4096)",
            ));
        }
    }
    Ok(())
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
        id: prefixed_id("ep"),
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

//! OpenID Shared Signals (issue 14): Herald as an SSF transmitter of CAEP and RISC events.
//!
//! Three audiences, three kinds of route:
//! - the tenant (its API key) manages signing keys and receivers (`/v1/tenants/{tenant}/ssf/...`);
//! - anyone reads the transmitter metadata (`/.well-known/ssf-configuration/ssf/{tenant}`, SSF 1.0
//!   §7.2.1) and the JWKS (`/ssf/{tenant}/jwks.json`);
//! - a receiver, with the bearer token the tenant issued it, manages its streams and polls them
//!   (`/ssf/{tenant}/streams...`, SSF 1.0 §8), as the metadata document describes.
//!
//! Published events reach streams through the SSF worker (`herald_delivery::ssf`), which follows
//! each stream's cursor on the tenant's event log, signs its SETs and queues them in the same
//! transaction that moves the cursor; a publish only wakes it. A poll stream's receiver reads the
//! queue (RFC 8936); a push stream's queue is pushed by the worker (RFC 8935), whose attempts the
//! tenant lists here.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_core::ids::prefixed_id;
use herald_core::secret::hash_api_key;
use herald_core::source_auth::generate_source_secret;
use herald_ssf::events::SsfEventType;
use herald_ssf::jws::{JwsAlgorithm, TenantSigningKey, jwk_set};
use herald_ssf::set::SecurityEventToken;
use herald_ssf::stream::{POLL_METHOD, PUSH_METHOD, StreamConfig, requestable_events};
use herald_ssf::subject::SubjectIdentifier;
use herald_store::ssf::{
    SsfPushAttemptRecord, SsfQueuedSet, SsfReceiverRecord, SsfSigningKeyRecord, SsfStreamRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::TenantScope;
use crate::body::{JsonIn, OptionalJsonIn};
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

/// The longest a long poll waits for a SET before answering with none.
const LONGEST_POLL_WAIT: Duration = Duration::from_secs(20);
/// The most SETs one poll answer carries.
const MAX_EVENTS_PER_POLL: usize = 1_000;
/// The most subjects or audiences a request may carry.
const MAX_ITEMS: usize = 100;

/// Long polls of this process now waiting for a SET, so a test can publish once one is waiting.
static LONG_POLLS_WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many long polls of this process are waiting for a SET right now.
pub fn long_polls_waiting() -> usize {
    LONG_POLLS_WAITING.load(std::sync::atomic::Ordering::SeqCst)
}

/// Counts a long poll as waiting for as long as it lives (a cancelled request included).
struct WaitingLongPoll;

impl WaitingLongPoll {
    fn start() -> Self {
        LONG_POLLS_WAITING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        WaitingLongPoll
    }
}

impl Drop for WaitingLongPoll {
    fn drop(&mut self) {
        LONG_POLLS_WAITING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/ssf/keys",
            get(list_keys).post(rotate_key),
        )
        .route(
            "/v1/tenants/{tenant}/ssf/keys/{kid}/retire",
            post(retire_key),
        )
        .route(
            "/v1/tenants/{tenant}/ssf/receivers",
            get(list_receivers).post(create_receiver),
        )
        .route(
            "/.well-known/ssf-configuration/ssf/{tenant}",
            get(configuration),
        )
        .route("/ssf/{tenant}/jwks.json", get(jwks))
        .route(
            "/ssf/{tenant}/streams",
            get(read_streams)
                .post(create_stream)
                .patch(update_stream)
                .put(replace_stream)
                .delete(delete_stream),
        )
        .route(
            "/ssf/{tenant}/streams/status",
            get(read_status).post(update_status),
        )
        .route("/ssf/{tenant}/streams/subjects/add", post(add_subject))
        .route(
            "/ssf/{tenant}/streams/subjects/remove",
            post(remove_subject),
        )
        .route("/ssf/{tenant}/streams/verify", post(verify))
        .route("/ssf/{tenant}/streams/poll/{stream_id}", post(poll))
        .route(
            "/v1/tenants/{tenant}/ssf/streams/{stream_id}/attempts",
            get(list_push_attempts),
        )
}

// ---- the tenant's API: signing keys and receivers ---------------------------------------------

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

fn load_key(record: &SsfSigningKeyRecord) -> ApiResult<TenantSigningKey> {
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
async fn current_signing_key(state: &AppState, tenant_id: &str) -> ApiResult<TenantSigningKey> {
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

// ---- public: transmitter metadata and JWKS ----------------------------------------------------

/// Where receivers reach Herald: the transmitter's issuer and its endpoints are built from it.
/// `--public-url` when configured. Without it, the request's Host header, but only when it names
/// a loopback address: that is development on one machine, where nobody else can choose the
/// name; anywhere else a Host header chosen by the caller would become the issuer of SETs.
fn base_url(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(public_url) = &state.settings.public_url {
        return Ok(public_url.clone());
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    if !is_loopback_host(host) {
        return Err(ApiError::BadRequest(
            "this Herald has no public URL (--public-url or HERALD_PUBLIC_URL), so it cannot name \
             its Shared Signals issuer: the Host header is trusted for that only on loopback"
                .to_owned(),
        ));
    }
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    Ok(format!("{scheme}://{host}"))
}

/// Whether a Host header value (`name[:port]`) names this machine: `localhost` or a loopback IP.
fn is_loopback_host(host: &str) -> bool {
    let Ok(authority) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let name = authority.host();
    let name = name
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn issuer(state: &AppState, headers: &HeaderMap, tenant_id: &str) -> ApiResult<String> {
    Ok(format!("{}/ssf/{tenant_id}", base_url(state, headers)?))
}

async fn require_tenant(state: &AppState, tenant_id: &str) -> ApiResult<()> {
    match state.store.get_tenant(tenant_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("tenant {tenant_id:?}"))),
    }
}

/// SSF 1.0 §7.1: transmitter configuration metadata, at the issuer's well-known URL (§7.2.1:
/// `/.well-known/ssf-configuration` inserted between the host and the issuer's path).
async fn configuration(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, &tenant_id).await?;
    let issuer = issuer(&state, &headers, &tenant_id)?;
    Ok(Json(json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "delivery_methods_supported": [PUSH_METHOD, POLL_METHOD],
        "configuration_endpoint": format!("{issuer}/streams"),
        "status_endpoint": format!("{issuer}/streams/status"),
        "add_subject_endpoint": format!("{issuer}/streams/subjects/add"),
        "remove_subject_endpoint": format!("{issuer}/streams/subjects/remove"),
        "verification_endpoint": format!("{issuer}/streams/verify"),
        "critical_subject_members": [],
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
        // Receivers name the subjects they want; "all subjects" is granted per receiver.
        "default_subjects": "NONE",
    })))
}

/// The tenant's public signing keys: the current one and those retired within the overlap.
async fn jwks(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, &tenant_id).await?;
    let now = state.clock.now();
    let overlap = state.settings.secret_overlap;
    let keys = state
        .store
        .list_ssf_signing_keys(&tenant_id)
        .await?
        .iter()
        .filter(|record| {
            record
                .retired_at
                .is_none_or(|retired_at| retired_at + overlap > now)
        })
        .map(load_key)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(jwk_set(&keys)))
}

// ---- the receiver's API: streams --------------------------------------------------------------

/// The receiver a stream-management request comes from: its bearer token, issued by the tenant
/// in the path. A token of another tenant is refused like no token at all.
struct ReceiverCaller {
    tenant_id: String,
    receiver: SsfReceiverRecord,
}

async fn receiver_caller(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
) -> ApiResult<ReceiverCaller> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && token.len() <= 256)
        .ok_or(ApiError::Unauthorized)?;
    let receiver = state
        .store
        .find_ssf_receiver_by_token(&hash_api_key(token))
        .await?
        .filter(|receiver| receiver.tenant_id == tenant_id)
        .ok_or(ApiError::Unauthorized)?;
    Ok(ReceiverCaller {
        tenant_id: tenant_id.to_owned(),
        receiver,
    })
}

/// A stream's settings (`herald_ssf::stream::StreamConfig`, the stored document).
fn parse_config(record: &SsfStreamRecord) -> ApiResult<StreamConfig> {
    StreamConfig::parse(&record.config)
        .map_err(|error| ApiError::Internal(format!("stream {}: {error}", record.id)))
}

fn config_text(config: &StreamConfig) -> ApiResult<String> {
    config
        .to_text()
        .map_err(|error| ApiError::Internal(error.to_string()))
}

fn delivery_url(config: &StreamConfig, stream_id: &str) -> String {
    match &config.push_endpoint_url {
        Some(url) if config.delivery_method == PUSH_METHOD => url.clone(),
        _ => format!("{}/streams/poll/{stream_id}", config.iss),
    }
}

/// SSF 1.0 §8.1.1: the stream configuration as the receiver sees it.
fn stream_out(record: &SsfStreamRecord, config: &StreamConfig) -> Value {
    let mut out = json!({
        "stream_id": record.id,
        "iss": config.iss,
        "aud": if config.aud.len() == 1 { Value::from(config.aud[0].clone()) } else { Value::from(config.aud.clone()) },
        "delivery": {"method": config.delivery_method, "endpoint_url": delivery_url(config, &record.id)},
        "events_supported": requestable_events(),
        "events_requested": config.events_requested,
        "events_delivered": config.events_delivered(),
    });
    if let Some(object) = out.as_object_mut() {
        if let Some(interval) = config.min_verification_interval {
            object.insert("min_verification_interval".to_owned(), interval.into());
        }
        if let Some(description) = &config.description {
            object.insert("description".to_owned(), description.clone().into());
        }
    }
    out
}

fn bad_request(path: &str, message: &str) -> ApiError {
    ApiError::BadRequest(format!("{path}: {message}"))
}

fn string_member(body: &Map<String, Value>, name: &str) -> ApiResult<Option<String>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= 2_000 => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(bad_request(&format!("/{name}"), "is too long")),
        Some(_) => Err(bad_request(&format!("/{name}"), "must be a string")),
    }
}

fn object_body(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(object) => Ok(object),
        _ => Err(bad_request("", "the body must be a JSON object")),
    }
}

/// Applies the receiver-supplied members of a stream configuration (SSF 1.0 §8.1.1.1/§8.1.1.3);
/// transmitter-supplied members (`stream_id`, `iss`, `aud`, `events_supported`, `events_delivered`)
/// are ignored when sent back, as the spec lets a receiver echo a whole configuration.
fn apply_receiver_members(
    state: &AppState,
    config: &mut StreamConfig,
    body: &Map<String, Value>,
    receiver: &SsfReceiverRecord,
    replace: bool,
) -> ApiResult<()> {
    if replace || body.contains_key("events_requested") {
        config.events_requested = match body.get("events_requested") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_ITEMS => items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        bad_request(
                            &format!("/events_requested/{index}"),
                            "must be an event type URI",
                        )
                    })
                })
                .collect::<ApiResult<_>>()?,
            Some(_) => {
                return Err(bad_request(
                    "/events_requested",
                    "must be an array of at most 100 event type URIs",
                ));
            }
        };
    }
    if let Some(delivery) = body.get("delivery") {
        let method = delivery
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("/delivery/method", "is required"))?;
        match method {
            POLL_METHOD => {
                config.delivery_method = POLL_METHOD.to_owned();
                config.push_endpoint_url = None;
                config.push_authorization_header = None;
            }
            PUSH_METHOD => {
                let url = delivery
                    .get("endpoint_url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad_request(
                            "/delivery/endpoint_url",
                            "a push stream needs the receiver's URL",
                        )
                    })?;
                // The receiver chooses where Herald connects: the same SSRF rules as endpoints.
                state.network_policy.check_url(url).map_err(|refused| {
                    bad_request("/delivery/endpoint_url", &refused.to_string())
                })?;
                let authorization = match delivery.get("authorization_header") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(value))
                        if value.len() <= 4_096 && http::HeaderValue::from_str(value).is_ok() =>
                    {
                        Some(value.clone())
                    }
                    Some(_) => {
                        return Err(bad_request(
                            "/delivery/authorization_header",
                            "must be a header value",
                        ));
                    }
                };
                config.delivery_method = PUSH_METHOD.to_owned();
                config.push_endpoint_url = Some(url.to_owned());
                config.push_authorization_header = authorization;
            }
            _ => {
                return Err(bad_request(
                    "/delivery/method",
                    "unsupported delivery method",
                ));
            }
        }
    } else if replace {
        config.delivery_method = POLL_METHOD.to_owned();
        config.push_endpoint_url = None;
        config.push_authorization_header = None;
    }
    if replace || body.contains_key("description") {
        config.description = string_member(body, "description")?;
    }
    if replace || body.contains_key("min_verification_interval") {
        config.min_verification_interval = match body.get("min_verification_interval") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().ok_or_else(|| {
                bad_request(
                    "/min_verification_interval",
                    "must be a whole number of seconds",
                )
            })?),
        };
    }
    // Herald's extension member: ask for every subject of the tenant, when the tenant allows it.
    if replace || body.contains_key("all_subjects") {
        let all_subjects = match body.get("all_subjects") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err(bad_request("/all_subjects", "must be a boolean")),
        };
        if all_subjects && !receiver.may_receive_all_subjects {
            return Err(ApiError::Forbidden(
                "this receiver may not receive events about every subject",
            ));
        }
        config.all_subjects = all_subjects;
    }
    Ok(())
}

async fn receiver_streams(
    state: &AppState,
    caller: &ReceiverCaller,
) -> ApiResult<Vec<SsfStreamRecord>> {
    let streams = state.store.list_ssf_streams(&caller.tenant_id).await?;
    Ok(streams
        .into_iter()
        .filter(|stream| stream.receiver_id == caller.receiver.id)
        .collect())
}

/// The caller's stream `stream_id`; a stream of another receiver is not found.
async fn receiver_stream(
    state: &AppState,
    caller: &ReceiverCaller,
    stream_id: Option<&str>,
) -> ApiResult<SsfStreamRecord> {
    let stream_id = stream_id.ok_or_else(|| bad_request("/stream_id", "is required"))?;
    receiver_streams(state, caller)
        .await?
        .into_iter()
        .find(|stream| stream.id == stream_id)
        .ok_or_else(|| ApiError::NotFound(format!("stream {stream_id:?}")))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    stream_id: Option<String>,
}

/// SSF 1.0 §8.1.1.1: create a stream; 201 with its configuration.
async fn create_stream(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    JsonIn(body): JsonIn<Value>,
) -> ApiResult<Response> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let body = object_body(body)?;
    let now = state.clock.now();
    let stream_id = prefixed_id("str");
    let issuer = issuer(&state, &headers, &tenant_id)?;
    let mut config = StreamConfig {
        v: 1,
        iss: issuer.clone(),
        // SSF 1.0 §8.1.1: aud is transmitter-supplied; each stream is its own audience here, so a
        // SET of one stream cannot be replayed to another.
        aud: vec![format!("{issuer}/streams/{stream_id}")],
        delivery_method: POLL_METHOD.to_owned(),
        events_requested: Vec::new(),
        description: None,
        min_verification_interval: None,
        all_subjects: false,
        last_verification_at: None,
        push_endpoint_url: None,
        push_authorization_header: None,
    };
    apply_receiver_members(&state, &mut config, &body, &caller.receiver, true)?;
    // A stream is useless without a key to sign its SETs; make the tenant's first one now.
    current_signing_key(&state, &tenant_id).await?;
    let record = SsfStreamRecord {
        id: stream_id,
        tenant_id: tenant_id.clone(),
        receiver_id: caller.receiver.id.clone(),
        config: config_text(&config)?,
        status: "enabled".to_owned(),
        status_reason: None,
        created_at: now,
        updated_at: now,
    };
    state.store.create_ssf_stream(record.clone()).await?;
    Ok((StatusCode::CREATED, Json(stream_out(&record, &config))).into_response())
}

/// SSF 1.0 §8.1.1.2: read one stream (`?stream_id=`) or every stream of the receiver.
async fn read_streams(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    if query.stream_id.is_some() {
        let record = receiver_stream(&state, &caller, query.stream_id.as_deref()).await?;
        return Ok(Json(stream_out(&record, &parse_config(&record)?)));
    }
    let streams = receiver_streams(&state, &caller).await?;
    let out = streams
        .iter()
        .map(|record| Ok(stream_out(record, &parse_config(record)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Value::from(out)))
}

async fn change_stream(
    state: AppState,
    tenant_id: String,
    headers: HeaderMap,
    body: Value,
    replace: bool,
) -> ApiResult<Json<Value>> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let body = object_body(body)?;
    let stream_id = string_member(&body, "stream_id")?;
    let mut record = receiver_stream(&state, &caller, stream_id.as_deref()).await?;
    let mut config = parse_config(&record)?;
    let was_push = config.is_push();
    apply_receiver_members(&state, &mut config, &body, &caller.receiver, replace)?;
    record.config = config_text(&config)?;
    record.updated_at = state.clock.now();
    state.store.update_ssf_stream(record.clone()).await?;
    if config.is_push() && !was_push {
        // SETs a poll stream kept now wait for a push (a push stream's are pushed anyway: the
        // worker parks them again if it finds the stream polled).
        state
            .store
            .schedule_ssf_queue(&record.id, Some(record.updated_at))
            .await?;
        state.ssf.wake_worker();
    }
    Ok(Json(stream_out(&record, &config)))
}

/// SSF 1.0 §8.1.1.3: update the members sent; 200 with the new configuration.
async fn update_stream(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    JsonIn(body): JsonIn<Value>,
) -> ApiResult<Json<Value>> {
    change_stream(state, tenant_id, headers, body, false).await
}

/// SSF 1.0 §8.1.1.4: replace the receiver-supplied members; 200 with the new configuration.
async fn replace_stream(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    JsonIn(body): JsonIn<Value>,
) -> ApiResult<Json<Value>> {
    change_stream(state, tenant_id, headers, body, true).await
}

/// SSF 1.0 §8.1.1.5: delete a stream with its subjects and undelivered SETs; 204.
async fn delete_stream(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let record = receiver_stream(&state, &caller, query.stream_id.as_deref()).await?;
    state
        .store
        .delete_ssf_stream(&tenant_id, &record.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn status_out(record: &SsfStreamRecord) -> Value {
    let mut out = json!({"stream_id": record.id, "status": record.status});
    if let (Some(reason), Some(object)) = (&record.status_reason, out.as_object_mut()) {
        object.insert("reason".to_owned(), reason.clone().into());
    }
    out
}

/// SSF 1.0 §8.1.2.1: a stream's status.
async fn read_status(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let record = receiver_stream(&state, &caller, query.stream_id.as_deref()).await?;
    Ok(Json(status_out(&record)))
}

/// SSF 1.0 §8.1.2.2: set a stream's status. `paused` keeps the SETs it gets meanwhile and hands
/// them over once enabled again; `disabled` drops what is queued and takes nothing new.
async fn update_status(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    JsonIn(body): JsonIn<Value>,
) -> ApiResult<Json<Value>> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let body = object_body(body)?;
    let stream_id = string_member(&body, "stream_id")?;
    let mut record = receiver_stream(&state, &caller, stream_id.as_deref()).await?;
    let status =
        string_member(&body, "status")?.ok_or_else(|| bad_request("/status", "is required"))?;
    if !["enabled", "paused", "disabled"].contains(&status.as_str()) {
        return Err(bad_request(
            "/status",
            "must be enabled, paused or disabled",
        ));
    }
    record.status = status;
    record.status_reason = string_member(&body, "reason")?;
    record.updated_at = state.clock.now();
    state.store.update_ssf_stream(record.clone()).await?;
    if record.status == "disabled" {
        state.store.clear_ssf_queue(&record.id).await?;
    }
    if record.status == "enabled" {
        // Kept SETs are handed over now: to long polls, and to the worker for a push stream.
        state.ssf.announce_sets_queued();
        state.ssf.wake_worker();
    }
    Ok(Json(status_out(&record)))
}

fn subject_of(body: &Map<String, Value>) -> ApiResult<SubjectIdentifier> {
    let subject = body
        .get("subject")
        .ok_or_else(|| bad_request("/subject", "is required"))?;
    SubjectIdentifier::parse(subject, "/subject")
        .map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// SSF 1.0 §8.1.3.2: add a subject; 200.
async fn add_subject(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    JsonIn(body): JsonIn<Value>,
) -> ApiResult<StatusCode> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let body = object_body(body)?;
    let record = receiver_stream(
        &state,
        &caller,
        string_member(&body, "stream_id")?.as_deref(),
    )
    .await?;
    let subject = subject_of(&body)?;
    if state.store.list_ssf_subjects(&record.id).await?.len() >= 10_000 {
        return Err(ApiError::BadRequest(
            "a stream holds at most 10000 subjects".to_owned(),
        ));
    }
    state
        .store
        .add_ssf_subject(&record.id, &subject.canonical_key())
        .await?;
    Ok(StatusCode::OK)
}

/// SSF 1.0 §8.1.3.3: remove a subject; 204, or 404 when the stream did not hold it.
async fn remove_subject(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    JsonIn(body): JsonIn<Value>,
) -> ApiResult<StatusCode> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let body = object_body(body)?;
    let record = receiver_stream(
        &state,
        &caller,
        string_member(&body, "stream_id")?.as_deref(),
    )
    .await?;
    let subject = subject_of(&body)?;
    if state
        .store
        .remove_ssf_subject(&record.id, &subject.canonical_key())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("subject".to_owned()))
    }
}

/// Signs one SET for `record` and returns it queued-ready.
fn signed_set(
    key: &TenantSigningKey,
    record: &SsfStreamRecord,
    token: SecurityEventToken,
    now: OffsetDateTime,
) -> SsfQueuedSet {
    SsfQueuedSet {
        stream_id: record.id.clone(),
        jti: token.jti.clone(),
        token: key.sign_set(&token.claims()),
        created_at: now,
    }
}

/// SSF 1.0 §8.1.4.2: ask for a verification event; 204. It goes out on the stream like any SET,
/// with the receiver's `state`, at most once per `min_verification_interval` (429 sooner).
async fn verify(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    JsonIn(body): JsonIn<Value>,
) -> ApiResult<Response> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let body = object_body(body)?;
    let mut record = receiver_stream(
        &state,
        &caller,
        string_member(&body, "stream_id")?.as_deref(),
    )
    .await?;
    let mut config = parse_config(&record)?;
    let now = state.clock.now();
    if let (Some(interval), Some(last)) = (
        config.min_verification_interval,
        config.last_verification_at,
    ) {
        let wait = last
            .saturating_add(i64::try_from(interval).unwrap_or(i64::MAX))
            .saturating_sub(now.unix_timestamp());
        if wait > 0 {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"detail": "verification was requested too recently"})),
            )
                .into_response();
            if let Ok(value) = http::HeaderValue::from_str(&wait.to_string()) {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, value);
            }
            return Ok(response);
        }
    }
    let mut members = Map::new();
    if let Some(receiver_state) = string_member(&body, "state")? {
        members.insert("state".to_owned(), receiver_state.into());
    }
    let token = SecurityEventToken {
        issuer: config.iss.clone(),
        audience: config.aud.clone(),
        issued_at: now.unix_timestamp(),
        jti: prefixed_id("set"),
        transaction_id: None,
        // SSF 1.0 §8.1.4.1: the verification event's subject is the stream itself.
        subject: Some(SubjectIdentifier::Opaque {
            id: record.id.clone(),
        }),
        event_type: SsfEventType::SsfVerification,
        event_members: members,
    };
    let key = current_signing_key(&state, &tenant_id).await?;
    if record.status != "disabled" {
        state
            .store
            .enqueue_ssf_sets(vec![signed_set(&key, &record, token, now)])
            .await?;
        state.ssf.announce_sets_queued();
    }
    config.last_verification_at = Some(now.unix_timestamp());
    record.config = config_text(&config)?;
    state.store.update_ssf_stream(record).await?;
    state.ssf.wake_worker();
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- poll delivery (RFC 8936) -----------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollIn {
    #[serde(rename = "maxEvents")]
    max_events: Option<usize>,
    #[serde(rename = "returnImmediately", default)]
    return_immediately: bool,
    #[serde(default)]
    ack: Vec<String>,
    #[serde(rename = "setErrs", default)]
    set_errs: HashMap<String, Value>,
}

/// RFC 8936 §2: acknowledge and report errors for SETs received, then get the next ones. Queued
/// SETs stay until acknowledged (or reported in `setErrs`): a poll that is lost is answered again.
async fn poll(
    State(state): State<AppState>,
    Path((tenant_id, stream_id)): Path<(String, String)>,
    headers: HeaderMap,
    OptionalJsonIn(input): OptionalJsonIn<PollIn>,
) -> ApiResult<Json<Value>> {
    let caller = receiver_caller(&state, &tenant_id, &headers).await?;
    let record = receiver_stream(&state, &caller, Some(&stream_id)).await?;
    // A push stream's SETs are Herald's to push: polling them would take them out of order.
    if parse_config(&record)?.delivery_method != POLL_METHOD {
        return Err(ApiError::BadRequest(
            "this stream delivers by push (RFC 8935), not poll".to_owned(),
        ));
    }
    // RFC 8936 §2.4: a SET reported in setErrs is acknowledged as received, with an error.
    let mut done = input.ack;
    for (jti, error) in input.set_errs {
        tracing::warn!(stream_id = %record.id, %jti, error = %error, "an SSF receiver reported a SET error");
        done.push(jti);
    }
    if !done.is_empty() {
        state.store.ack_ssf_sets(&record.id, done).await?;
    }
    // RFC 8936 §2.1: maxEvents 0 asks for no SETs (an acknowledgement only).
    let max_events = input
        .max_events
        .unwrap_or(MAX_EVENTS_PER_POLL)
        .min(MAX_EVENTS_PER_POLL);
    if max_events == 0 {
        return Ok(Json(json!({"sets": {}})));
    }
    let deadline = tokio::time::Instant::now() + LONGEST_POLL_WAIT;
    loop {
        // Registered before reading, so a SET queued between the read and the wait still wakes it.
        let queued = state.ssf.sets_queued();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let current = receiver_stream(&state, &caller, Some(&stream_id)).await?;
        let sets = if current.status == "enabled" {
            state
                .store
                .peek_ssf_sets(&record.id, max_events + 1)
                .await?
        } else {
            Vec::new()
        };
        if !sets.is_empty() || input.return_immediately {
            let more_available = sets.len() > max_events;
            let sets: Map<String, Value> = sets
                .into_iter()
                .take(max_events)
                .map(|set| (set.jti, Value::from(set.token)))
                .collect();
            return Ok(Json(json!({"sets": sets, "moreAvailable": more_available})));
        }
        // RFC 8936 §2.1: long polling; the wait is bounded and answered with no SETs at its end.
        let waiting = WaitingLongPoll::start();
        let woken = tokio::time::timeout_at(deadline, queued).await;
        drop(waiting);
        if woken.is_err() {
            return Ok(Json(json!({"sets": {}, "moreAvailable": false})));
        }
    }
}

// ---- push attempts (the tenant's view of RFC 8935 delivery) -----------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct SsfPushAttemptOut {
    pub id: String,
    /// The SET pushed.
    pub jti: String,
    pub attempted_at: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The transport error, or the receiver's RFC 8935 `err` code.
    pub error: Option<String>,
    /// `accepted`, `rejected` (a 400: dropped), `retry` or `exhausted` (dropped).
    pub outcome: String,
    /// When a `retry` is pushed again.
    pub next_attempt_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SsfPushAttemptListOut {
    pub data: Vec<SsfPushAttemptOut>,
}

fn push_attempt_out(record: &SsfPushAttemptRecord) -> SsfPushAttemptOut {
    SsfPushAttemptOut {
        id: record.id.clone(),
        jti: record.jti.clone(),
        attempted_at: format_time(record.attempted_at),
        status_code: record.status_code,
        latency_ms: record.latency_ms,
        error: record.error.clone(),
        outcome: record.outcome.as_str().to_owned(),
        next_attempt_at: record.outcome.next_attempt_at().map(format_time),
    }
}

/// The push attempts of one of the tenant's SSF streams, newest first (at most 100).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/ssf/streams/{stream_id}/attempts", tag = "shared-signals",
    responses((status = 200, body = SsfPushAttemptListOut), (status = 404, description = "no such stream in this tenant")))]
pub async fn list_push_attempts(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<SsfPushAttemptListOut>> {
    let stream_id = path_ids.1;
    let streams = state.store.list_ssf_streams(&scope.tenant_id).await?;
    if !streams.iter().any(|stream| stream.id == stream_id) {
        return Err(ApiError::NotFound(format!("stream {stream_id:?}")));
    }
    let attempts = state
        .store
        .list_ssf_push_attempts(&scope.tenant_id, &stream_id, 100)
        .await?;
    Ok(Json(SsfPushAttemptListOut {
        data: attempts.iter().map(push_attempt_out).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_hosts_may_name_the_issuer() {
        fn check(host: &str, expected: bool) {
            assert_eq!(is_loopback_host(host), expected, "{host}");
        }
        check("localhost", true);
        check("LOCALHOST:8470", true);
        check("127.0.0.1:40123", true);
        check("127.8.9.10", true);
        check("[::1]:8470", true);
        check("herald.example.com", false);
        check("localhost.evil.example", false);
        check("10.0.0.1:8470", false);
        check("[::2]", false);
        check("", false);
        check("a b", false);
    }
}

//! `/v1/tenants/{tenant}/sources`: a tenant's inbound connections, one per vendor. Each has an
//! ingest URL (`/v1/ingest/{id}`, see `routes::ingest`) that the operator pastes into the
//! vendor's console, with the vendor's own way of authenticating.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_core::ids::prefixed_id;
use herald_core::secret::SigningSecret;
use herald_core::source_auth::generate_source_secret;
use herald_store::models::{SourceErrorEntry, SourceKind, SourceRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::{JsonIn, OptionalJsonIn};
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(rotate_secret))
}

/// The longest name of a header, a username or a topic kept (they are echoed in answers).
const MAX_SETTING_LEN: usize = 512;
/// The most WebSub topics one Asgardeo source accepts.
const MAX_TOPICS: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    /// `authgear`, `asgardeo` or `onewelcome`.
    pub kind: String,
    pub name: Option<String>,
    /// Authgear, Asgardeo: the HMAC secret configured in the vendor; OneWelcome: the header
    /// value or basic-auth password. Used as its UTF-8 bytes; generated when absent.
    pub secret: Option<String>,
    /// OneWelcome: the header the exporter sends `secret` in (e.g. `x-exporter-token`).
    pub header_name: Option<String>,
    /// OneWelcome: the basic-auth username (instead of `header_name`).
    pub username: Option<String>,
    /// Asgardeo: the WebSub topics whose subscription Herald confirms.
    pub accepted_topics: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatchIn {
    pub name: Option<String>,
    /// Sets the secret (not shown back; use `secret/rotate` to have one generated).
    pub secret: Option<String>,
    pub header_name: Option<String>,
    pub username: Option<String>,
    pub accepted_topics: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSourceSecretIn {
    /// The new secret (as configured in the vendor); generated when absent.
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceErrorOut {
    pub at: String,
    /// The status Herald answered with.
    pub status: u16,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceOut {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    /// Where the vendor sends its events: paste this (after Herald's address) into its console.
    pub ingest_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub accepted_topics: Vec<String>,
    /// Asgardeo: when the hub's confirmed subscription lapses.
    pub lease_expires_at: Option<String>,
    pub n_accepted: u64,
    pub n_duplicates: u64,
    pub n_refused: u64,
    pub last_success_at: Option<String>,
    pub last_error_at: Option<String>,
    /// Newest first.
    pub last_errors: Vec<SourceErrorOut>,
    pub created_at: String,
    pub updated_at: String,
    /// In the answers to create and rotate only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceListOut {
    pub data: Vec<SourceOut>,
}

fn error_out(entry: SourceErrorEntry) -> SourceErrorOut {
    SourceErrorOut {
        at: format_time(entry.at),
        status: entry.status,
        detail: entry.detail,
    }
}

fn source_out(record: SourceRecord, with_secret: bool) -> SourceOut {
    SourceOut {
        ingest_path: format!("/v1/ingest/{}", record.id),
        id: record.id,
        kind: record.kind.as_str().to_owned(),
        name: record.name,
        header_name: record.header_name,
        username: record.username,
        accepted_topics: record.accepted_topics,
        lease_expires_at: record.lease_expires_at.map(format_time),
        n_accepted: record.n_accepted,
        n_duplicates: record.n_duplicates,
        n_refused: record.n_refused,
        last_success_at: record.last_success_at.map(format_time),
        last_error_at: record.last_error_at.map(format_time),
        last_errors: record.last_errors.into_iter().map(error_out).collect(),
        created_at: format_time(record.created_at),
        updated_at: format_time(record.updated_at),
        secret: with_secret.then_some(record.secret),
    }
}

/// The secret as given (used as its bytes), or a new one.
fn source_secret(secret: Option<String>) -> ApiResult<String> {
    match secret {
        None => Ok(generate_source_secret()),
        Some(text) => SigningSecret::parse_plain(&text)
            .map(|_| text)
            .map_err(|error| ApiError::invalid("/secret", error.to_string())),
    }
}

fn check_setting(path: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() || value.len() > MAX_SETTING_LEN {
        return Err(ApiError::invalid(
            path,
            format!("between 1 and {MAX_SETTING_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Checks that the record's settings fit its kind: a OneWelcome source needs exactly one of a
/// header name or a username, an Asgardeo source at least one topic, and nothing else is set
/// where it means nothing.
fn check_settings(record: &SourceRecord) -> ApiResult<()> {
    if let Some(header_name) = &record.header_name {
        check_setting("/header_name", header_name)?;
        if http::HeaderName::from_bytes(header_name.as_bytes()).is_err() {
            return Err(ApiError::invalid(
                "/header_name",
                "not a valid HTTP header name",
            ));
        }
    }
    if let Some(username) = &record.username {
        check_setting("/username", username)?;
        if username.contains(':') {
            return Err(ApiError::invalid(
                "/username",
                "a basic-auth username cannot contain `:` (RFC 7617 §2)",
            ));
        }
    }
    if record.accepted_topics.len() > MAX_TOPICS {
        return Err(ApiError::invalid(
            "/accepted_topics",
            format!("at most {MAX_TOPICS} topics"),
        ));
    }
    for (topic_idx, topic) in record.accepted_topics.iter().enumerate() {
        check_setting(&format!("/accepted_topics/{topic_idx}"), topic)?;
    }
    let only_for = |path: &str, kind: &str| {
        ApiError::invalid(path, format!("only a {kind} source has this setting"))
    };
    match record.kind {
        SourceKind::Onewelcome => match (&record.header_name, &record.username) {
            // The exporter must be able to send it: a header value is visible ASCII.
            (Some(_), None) if http::HeaderValue::from_str(&record.secret).is_err() => {
                return Err(ApiError::invalid(
                    "/secret",
                    "a header value is visible ASCII characters and spaces",
                ));
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err(ApiError::invalid(
                    "/header_name",
                    "a OneWelcome source takes either `header_name` (a header value) or \
                     `username` (basic credentials), not both or neither",
                ));
            }
            _ => {}
        },
        SourceKind::Authgear | SourceKind::Asgardeo => {
            if record.header_name.is_some() {
                return Err(only_for("/header_name", "onewelcome"));
            }
            if record.username.is_some() {
                return Err(only_for("/username", "onewelcome"));
            }
        }
    }
    match record.kind {
        SourceKind::Asgardeo if record.accepted_topics.is_empty() => Err(ApiError::invalid(
            "/accepted_topics",
            "an Asgardeo source needs the WebSub topics it accepts",
        )),
        SourceKind::Authgear | SourceKind::Onewelcome if !record.accepted_topics.is_empty() => {
            Err(only_for("/accepted_topics", "asgardeo"))
        }
        _ => Ok(()),
    }
}

async fn find(state: &AppState, tenant_id: &str, source_id: &str) -> ApiResult<SourceRecord> {
    state
        .store
        .get_source(tenant_id, source_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("source {source_id:?}")))
}

/// Create a source. The answer carries its ingest path and its secret (shown this once).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/sources", tag = "sources", request_body = SourceIn,
    responses((status = 201, body = SourceOut), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    scope: TenantScope,
    JsonIn(input): JsonIn<SourceIn>,
) -> ApiResult<(StatusCode, Json<SourceOut>)> {
    let kind: SourceKind = input
        .kind
        .parse()
        .map_err(|message: String| ApiError::invalid("/kind", message))?;
    if let Some(name) = &input.name {
        check_setting("/name", name)?;
    }
    let now = state.clock.now();
    let record = SourceRecord {
        id: prefixed_id("src"),
        tenant_id: scope.tenant_id,
        kind,
        name: input.name,
        secret: source_secret(input.secret)?,
        header_name: input.header_name,
        username: input.username,
        accepted_topics: input.accepted_topics.unwrap_or_default(),
        lease_expires_at: None,
        n_accepted: 0,
        n_duplicates: 0,
        n_refused: 0,
        last_success_at: None,
        last_error_at: None,
        last_errors: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    check_settings(&record)?;
    let created = state.store.create_source(record).await?;
    Ok((StatusCode::CREATED, Json(source_out(created, true))))
}

/// The tenant's sources, with their counters and latest errors.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/sources", tag = "sources",
    responses((status = 200, body = SourceListOut)))]
pub async fn list(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<SourceListOut>> {
    let sources = state.store.list_sources(&scope.tenant_id).await?;
    Ok(Json(SourceListOut {
        data: sources
            .into_iter()
            .map(|source| source_out(source, false))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/sources/{source_id}", tag = "sources",
    responses((status = 200, body = SourceOut), (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<SourceOut>> {
    let source_id = path_ids.1;
    Ok(Json(source_out(
        find(&state, &scope.tenant_id, &source_id).await?,
        false,
    )))
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/sources/{source_id}", tag = "sources",
    request_body = SourcePatchIn, responses((status = 200, body = SourceOut), (status = 404), (status = 422)))]
pub async fn update(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    JsonIn(patch): JsonIn<SourcePatchIn>,
) -> ApiResult<Json<SourceOut>> {
    let source_id = path_ids.1;
    let mut record = find(&state, &scope.tenant_id, &source_id).await?;
    if let Some(name) = patch.name {
        check_setting("/name", &name)?;
        record.name = Some(name);
    }
    if patch.secret.is_some() {
        record.secret = source_secret(patch.secret)?;
    }
    // Switching a OneWelcome source between header and basic credentials drops the other.
    if let Some(header_name) = patch.header_name {
        record.header_name = Some(header_name);
        record.username = None;
    }
    if let Some(username) = patch.username {
        record.username = Some(username);
        record.header_name = None;
    }
    if let Some(topics) = patch.accepted_topics {
        record.accepted_topics = topics;
    }
    check_settings(&record)?;
    record.updated_at = state.clock.now();
    let updated = state.store.update_source(record).await?;
    Ok(Json(source_out(updated, false)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/sources/{source_id}", tag = "sources",
    responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let source_id = path_ids.1;
    if state
        .store
        .delete_source(&scope.tenant_id, &source_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("source {source_id:?}")))
    }
}

/// Replace the secret (generated, or the one just configured in the vendor). The old one stops
/// working at once: a vendor signs with one secret at a time.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/sources/{source_id}/secret/rotate", tag = "sources",
    request_body = RotateSourceSecretIn, responses((status = 200, body = SourceOut), (status = 404)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    OptionalJsonIn(input): OptionalJsonIn<RotateSourceSecretIn>,
) -> ApiResult<Json<SourceOut>> {
    let source_id = path_ids.1;
    let mut record = find(&state, &scope.tenant_id, &source_id).await?;
    record.secret = source_secret(input.secret)?;
    check_settings(&record)?;
    record.updated_at = state.clock.now();
    let updated = state.store.update_source(record).await?;
    Ok(Json(source_out(updated, true)))
}

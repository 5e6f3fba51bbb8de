//! SSF 1.0 §8.1.4: verification events, asked for by a receiver and sent on its stream like any
//! SET.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_core::ids::prefixed_id;
use herald_ssf::events::SsfEventType;
use herald_ssf::jws::TenantSigningKey;
use herald_ssf::set::SecurityEventToken;
use herald_ssf::subject::SubjectIdentifier;
use herald_store::ssf::{SsfQueuedSet, SsfStreamRecord};
use serde_json::{Map, json};
use time::OffsetDateTime;

use super::caller::{ReceiverRequest, config_text, parse_config, string_member};
use super::keys::current_signing_key;
use crate::error::ApiResult;
use crate::state::AppState;

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
pub(super) async fn verify(
    State(state): State<AppState>,
    request: ReceiverRequest,
) -> ApiResult<Response> {
    let mut record = request.named_stream(&state).await?;
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
    if let Some(receiver_state) = string_member(&request.body, "state")? {
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
    let key = current_signing_key(&state, &request.caller.tenant_id).await?;
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

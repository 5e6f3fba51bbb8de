//! SSF 1.0 §8.1.1: a receiver's streams, created, read, changed and deleted by the receiver with
//! the bearer token the tenant issued it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_core::ids::prefixed_id;
use herald_ssf::stream::{POLL_METHOD, PUSH_METHOD, StreamConfig, requestable_events};
use herald_store::ssf::{SsfReceiverRecord, SsfStreamRecord};
use serde_json::{Map, Value, json};

use super::caller::{
    ReceiverQuery, ReceiverRequest, bad_request, config_text, parse_config, receiver_streams,
    string_member,
};
use super::keys::current_signing_key;
use super::metadata::issuer;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The most subjects or audiences a request may carry.
const MAX_ITEMS: usize = 100;

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

/// SSF 1.0 §8.1.1.1: create a stream; 201 with its configuration.
pub(super) async fn create_stream(
    State(state): State<AppState>,
    request: ReceiverRequest,
) -> ApiResult<Response> {
    let ReceiverRequest {
        caller,
        headers,
        body,
    } = request;
    let tenant_id = caller.tenant_id.clone();
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
        tenant_id,
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
pub(super) async fn read_streams(
    State(state): State<AppState>,
    request: ReceiverQuery,
) -> ApiResult<Json<Value>> {
    if request.stream_id.is_some() {
        let record = request.named_stream(&state).await?;
        return Ok(Json(stream_out(&record, &parse_config(&record)?)));
    }
    let streams = receiver_streams(&state, &request.caller).await?;
    let out = streams
        .iter()
        .map(|record| Ok(stream_out(record, &parse_config(record)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Value::from(out)))
}

async fn change_stream(
    state: AppState,
    request: ReceiverRequest,
    replace: bool,
) -> ApiResult<Json<Value>> {
    let mut record = request.named_stream(&state).await?;
    let mut config = parse_config(&record)?;
    let was_push = config.is_push();
    apply_receiver_members(
        &state,
        &mut config,
        &request.body,
        &request.caller.receiver,
        replace,
    )?;
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
pub(super) async fn update_stream(
    State(state): State<AppState>,
    request: ReceiverRequest,
) -> ApiResult<Json<Value>> {
    change_stream(state, request, false).await
}

/// SSF 1.0 §8.1.1.4: replace the receiver-supplied members; 200 with the new configuration.
pub(super) async fn replace_stream(
    State(state): State<AppState>,
    request: ReceiverRequest,
) -> ApiResult<Json<Value>> {
    change_stream(state, request, true).await
}

/// SSF 1.0 §8.1.1.5: delete a stream with its subjects and undelivered SETs; 204.
pub(super) async fn delete_stream(
    State(state): State<AppState>,
    request: ReceiverQuery,
) -> ApiResult<StatusCode> {
    let record = request.named_stream(&state).await?;
    state
        .store
        .delete_ssf_stream(&request.caller.tenant_id, &record.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

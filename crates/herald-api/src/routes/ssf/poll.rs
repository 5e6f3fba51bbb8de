//! RFC 8936: poll delivery. A poll stream's receiver acknowledges the SETs it got and reads the
//! next ones, waiting a bounded while (long polling) when there are none.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use herald_ssf::stream::POLL_METHOD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::caller::{parse_config, receiver_caller, receiver_stream};
use crate::body::OptionalJsonIn;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The longest a long poll waits for a SET before answering with none.
const LONGEST_POLL_WAIT: Duration = Duration::from_secs(20);
/// The most SETs one poll answer carries.
const MAX_EVENTS_PER_POLL: usize = 1_000;

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PollIn {
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
pub(super) async fn poll(
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

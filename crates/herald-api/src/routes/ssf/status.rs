//! SSF 1.0 §8.1.2: a stream's status, read and set by its receiver.

use axum::Json;
use axum::extract::State;
use herald_store::ssf::SsfStreamRecord;
use serde_json::{Value, json};

use super::caller::{ReceiverQuery, ReceiverRequest, bad_request, string_member};
use crate::error::ApiResult;
use crate::state::AppState;

fn status_out(record: &SsfStreamRecord) -> Value {
    let mut out = json!({"stream_id": record.id, "status": record.status});
    if let (Some(reason), Some(object)) = (&record.status_reason, out.as_object_mut()) {
        object.insert("reason".to_owned(), reason.clone().into());
    }
    out
}

/// SSF 1.0 §8.1.2.1: a stream's status.
pub(super) async fn read_status(
    State(state): State<AppState>,
    request: ReceiverQuery,
) -> ApiResult<Json<Value>> {
    let record = request.named_stream(&state).await?;
    Ok(Json(status_out(&record)))
}

/// SSF 1.0 §8.1.2.2: set a stream's status. `paused` keeps the SETs it gets meanwhile and hands
/// them over once enabled again; `disabled` drops what is queued and takes nothing new.
pub(super) async fn update_status(
    State(state): State<AppState>,
    request: ReceiverRequest,
) -> ApiResult<Json<Value>> {
    let mut record = request.named_stream(&state).await?;
    let status = string_member(&request.body, "status")?
        .ok_or_else(|| bad_request("/status", "is required"))?;
    if !["enabled", "paused", "disabled"].contains(&status.as_str()) {
        return Err(bad_request(
            "/status",
            "must be enabled, paused or disabled",
        ));
    }
    record.status = status;
    record.status_reason = string_member(&request.body, "reason")?;
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

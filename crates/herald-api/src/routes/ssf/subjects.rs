//! SSF 1.0 §8.1.3: the subjects a receiver adds to and removes from its stream.

use axum::extract::State;
use axum::http::StatusCode;
use herald_ssf::subject::SubjectIdentifier;
use serde_json::{Map, Value};

use super::caller::{ReceiverRequest, bad_request};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The most subjects one stream holds.
const MAX_SUBJECTS_PER_STREAM: usize = 10_000;

fn subject_of(body: &Map<String, Value>) -> ApiResult<SubjectIdentifier> {
    let subject = body
        .get("subject")
        .ok_or_else(|| bad_request("/subject", "is required"))?;
    SubjectIdentifier::parse(subject, "/subject")
        .map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// SSF 1.0 §8.1.3.2: add a subject; 200.
pub(super) async fn add_subject(
    State(state): State<AppState>,
    request: ReceiverRequest,
) -> ApiResult<StatusCode> {
    let record = request.named_stream(&state).await?;
    let subject = subject_of(&request.body)?;
    if state.store.list_ssf_subjects(&record.id).await?.len() >= MAX_SUBJECTS_PER_STREAM {
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
pub(super) async fn remove_subject(
    State(state): State<AppState>,
    request: ReceiverRequest,
) -> ApiResult<StatusCode> {
    let record = request.named_stream(&state).await?;
    let subject = subject_of(&request.body)?;
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

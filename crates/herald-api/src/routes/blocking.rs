//! `/v1/tenants/{tenant}/blocking-events`: ask whether an operation may happen. Herald runs the
//! tenant's hooks for the event's type and answers allow or deny, with the mutated payload; every
//! decision is recorded and can be listed.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use herald_catalog::catalog::TypeLookup;
use herald_catalog::definition::EventTypeDef;
use herald_catalog::envelope::{ParsedEvent, declared_type_pointer, parse_envelope};
use herald_core::ids::{HookDecisionId, new_event_id};
use herald_delivery::hooks::{ChainDecision, Reason, TraceEntry, run_chain};
use herald_store::models::DecisionRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::{JsonBytes, QueryIn, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::routes::events::format_time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(evaluate, list))
}

/// How long past the chain's deadline the caller may wait for its answer at most.
const ANSWER_MARGIN: Duration = Duration::from_millis(250);

#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonOut {
    pub title: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TraceOut {
    pub hook_id: String,
    /// allowed, mutated, denied, failed or failed_open.
    pub outcome: String,
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionOut {
    pub is_allowed: bool,
    /// The payload with the hooks' mutations applied (unchanged when refused).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub reasons: Vec<ReasonOut>,
    pub trace: Vec<TraceOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedDecisionOut {
    pub id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    pub is_allowed: bool,
    #[schema(value_type = Object)]
    pub reasons: Value,
    #[schema(value_type = Object)]
    pub trace: Value,
    pub latency_ms: f64,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionPageOut {
    pub data: Vec<RecordedDecisionOut>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next_after: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DecisionQuery {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

fn reason_out(reason: &Reason) -> ReasonOut {
    ReasonOut {
        title: reason.title.clone(),
        reason: reason.reason.clone(),
    }
}

fn trace_out(entry: &TraceEntry) -> TraceOut {
    TraceOut {
        hook_id: entry.hook_id.to_string(),
        outcome: entry.outcome.as_str().to_owned(),
        status: entry.status,
        latency_ms: entry.latency.as_secs_f64() * 1000.0,
        error: entry.outcome.error().map(str::to_owned),
    }
}

/// Evaluate a blocking event: run the tenant's hooks for its type and answer allow or deny.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/blocking-events", tag = "blocking",
    request_body(content = Object, description = "An Authgear envelope of a blocking type, or {type, payload, context?, id?}"),
    responses((status = 200, body = DecisionOut), (status = 422, description = "not a blocking type, or an invalid payload")))]
pub async fn evaluate(
    State(state): State<AppState>,
    scope: TenantScope,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Json<DecisionOut>> {
    let started = Instant::now();
    let document = parse_json(&body)?;
    // Where the envelope that was sent names its type (a OneWelcome envelope at
    // `/metadata/type`, an Asgardeo one under `/events`, the flat forms at `/type`), whatever
    // the taxonomy of the type itself.
    let type_path = declared_type_pointer(&document).unwrap_or_else(|| "/type".to_owned());
    let lookup = state.custom_types.lookup_for(&scope.tenant_id);
    let parsed = parse_envelope(&lookup, document)
        .map_err(|error| ApiError::invalid_all(error.problems()))?;
    let Some(definition) = lookup
        .lookup(&parsed.event_type)
        .filter(|definition| definition.is_blocking())
    else {
        return Err(ApiError::invalid(
            type_path,
            format!(
                "{:?} is not a blocking event type: publish it to /events instead",
                parsed.event_type
            ),
        ));
    };
    let decision = decide(
        &state,
        &scope.tenant_id,
        parsed,
        definition,
        state.settings.hook_chain_deadline,
        started,
    )
    .await?;
    Ok(Json(DecisionOut {
        is_allowed: decision.is_allowed,
        payload: decision.payload,
        reasons: decision.reasons.iter().map(reason_out).collect(),
        trace: decision.trace.iter().map(trace_out).collect(),
    }))
}

/// Runs the tenant's hook chain for a parsed blocking event within `deadline` and records the
/// decision (off the answer's path). `POST /blocking-events` and Authgear sources both decide
/// through here, so a decision is made and audited the same way whoever asked.
pub(crate) async fn decide(
    state: &AppState,
    tenant_id: &str,
    parsed: ParsedEvent,
    definition: &EventTypeDef,
    deadline: Duration,
    started: Instant,
) -> ApiResult<ChainDecision> {
    let hooks = state
        .hooks
        .chain_for(state.store.as_ref(), tenant_id, &parsed.event_type)
        .await?;
    let now = state.clock.now();
    let producer_id = parsed.id.clone();
    let event = parsed.into_event(new_event_id(), now, 0);
    let decision = if hooks.is_empty() {
        ChainDecision {
            is_allowed: true,
            payload: event.payload.clone(),
            reasons: Vec::new(),
            trace: Vec::new(),
        }
    } else {
        let chain = run_chain(
            &state.hook_client,
            now,
            &event,
            tenant_id,
            definition,
            &hooks,
            deadline,
        );
        // The runner already bounds each hook by what is left of the deadline; this is the
        // promise to the caller, kept even if something unforeseen blocks.
        match tokio::time::timeout(deadline + ANSWER_MARGIN, chain).await {
            Ok(decision) => decision,
            Err(_) => ChainDecision {
                is_allowed: false,
                payload: event.payload.clone(),
                reasons: vec![Reason {
                    title: Some("Deadline exceeded".to_owned()),
                    reason: Some("the hooks did not answer in time".to_owned()),
                }],
                trace: Vec::new(),
            },
        }
    };
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    metrics::counter!("herald_blocking_decisions_total", "allowed" => if decision.is_allowed { "true" } else { "false" }).increment(1);
    metrics::histogram!("herald_blocking_decision_seconds").record(started.elapsed().as_secs_f64());
    let trace: Vec<TraceOut> = decision.trace.iter().map(trace_out).collect();
    let record = DecisionRecord {
        id: HookDecisionId::new(),
        tenant_id: tenant_id.to_owned(),
        event_type: event.event_type,
        event_id: producer_id,
        is_allowed: decision.is_allowed,
        reasons: json!(
            decision
                .reasons
                .iter()
                .map(|reason| json!({"title": reason.title, "reason": reason.reason}))
                .collect::<Vec<_>>()
        ),
        trace: serde_json::to_value(&trace).unwrap_or(Value::Null),
        latency_us,
        created_at: now,
    };
    // Recorded off the answer's path: the caller is waiting on an operation, and the audit row's
    // durability (a write and an fsync) should not add to its latency.
    state.decisions.record(record);
    Ok(decision)
}

/// The tenant's recorded decisions, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/blocking-events", tag = "blocking", params(DecisionQuery),
    responses((status = 200, body = DecisionPageOut)))]
pub async fn list(
    State(state): State<AppState>,
    scope: TenantScope,
    QueryIn(query): QueryIn<DecisionQuery>,
) -> ApiResult<Json<DecisionPageOut>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("/limit", "limit is between 1 and 1000"));
    }
    state.decisions.flush().await;
    let records = state
        .store
        .list_decisions(&scope.tenant_id, query.after.as_deref(), limit)
        .await?;
    let next_after = (records.len() == limit)
        .then(|| records.last().map(|record| record.id.to_string()))
        .flatten();
    Ok(Json(DecisionPageOut {
        data: records
            .into_iter()
            .map(|record| RecordedDecisionOut {
                id: record.id.into_string(),
                event_type: record.event_type,
                event_id: record.event_id,
                is_allowed: record.is_allowed,
                reasons: record.reasons,
                trace: record.trace,
                latency_ms: record.latency_us as f64 / 1000.0,
                created_at: format_time(record.created_at),
            })
            .collect(),
        next_after,
    }))
}

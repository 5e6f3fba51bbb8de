//! `/v1/tenants/{tenant}/events`: publish one event or a batch, read the log by cursor.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_catalog::catalog::TypeLookup;
use herald_catalog::envelope::{
    EnvelopeError, ParsedEvent, declared_type, declared_type_pointer, parse_envelope,
};
use herald_catalog::taxonomy::Taxonomy;
use herald_catalog::validation::Problem;
use herald_core::ids::new_event_id;
use herald_store::models::{EventFilter, NewEvent, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::{JsonBytes, QueryIn, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(publish, list))
        .routes(routes!(publish_batch))
        .routes(routes!(get_one))
}

/// The answer to a publish: the event's id and its place in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedOut {
    pub id: String,
    pub seq: i64,
    /// The id was already in the log: this is the original, nothing was delivered again.
    pub duplicate: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    pub data: Vec<PublishedOut>,
}

/// An event as stored in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    pub seq: i64,
    pub tenant: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub taxonomy: String,
    pub subject: Option<String>,
    pub occurred_at: String,
    pub received_at: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    /// Envelope fields the producer set, kept to render the event back as it came.
    #[schema(value_type = Object)]
    pub producer: Map<String, Value>,
    /// The subject's data was erased on request.
    pub erased: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageOut {
    pub data: Vec<EventOut>,
    /// Pass as `after_seq` for the next page; equal to the request's when nothing was found.
    pub next_after_seq: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Events with a larger `seq` than this (a cursor); 0 from the start.
    #[serde(default)]
    pub after_seq: i64,
    /// At most this many (1-1000, default 100).
    pub limit: Option<usize>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub subject: Option<String>,
}

pub fn format_time(time: OffsetDateTime) -> String {
    time.format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

impl From<StoredEvent> for EventOut {
    fn from(stored: StoredEvent) -> Self {
        let event = stored.event;
        EventOut {
            id: event.id,
            seq: event.seq,
            tenant: stored.tenant_id,
            event_type: event.event_type,
            taxonomy: event.taxonomy.as_str().to_owned(),
            subject: event.subject,
            occurred_at: format_time(event.occurred_at),
            received_at: format_time(stored.received_at),
            payload: event.payload,
            context: event.context,
            producer: event.producer,
            erased: stored.erased,
        }
    }
}

/// The namespace of Herald's own operational events (`herald.endpoint.disabled`, ...).
const OPERATIONAL_TYPE_PREFIX: &str = "herald.";

/// A problem when the document declares one of Herald's own operational event types (or any
/// name in their namespace): only Herald emits those, through the store, so that a subscriber
/// to `herald.*` can trust that an endpoint really was disabled. The problem points at the type
/// where this envelope keeps it.
fn operational_type_problem(lookup: &impl TypeLookup, document: &Value) -> Option<Problem> {
    let event_type = declared_type(document)?;
    let is_operational = event_type.starts_with(OPERATIONAL_TYPE_PREFIX)
        || lookup
            .lookup(event_type)
            .is_some_and(|definition| definition.taxonomy() == Taxonomy::Herald);
    if !is_operational {
        return None;
    }
    let type_path = declared_type_pointer(document)?;
    Some(Problem::new(
        type_path,
        format!(
            "{event_type:?} is one of Herald's own operational events: only Herald emits them, \
             producers cannot publish them"
        ),
    ))
}

/// Parses one envelope against the tenant's types; problem paths are prefixed with `prefix`.
fn parse_one(
    lookup: &impl TypeLookup,
    document: Value,
    prefix: &str,
) -> Result<ParsedEvent, Vec<Problem>> {
    if let Some(problem) = operational_type_problem(lookup, &document) {
        return Err(vec![problem.under(prefix)]);
    }
    parse_envelope(lookup, document).map_err(|error: EnvelopeError| {
        error
            .problems()
            .into_iter()
            .map(|problem| problem.under(prefix))
            .collect()
    })
}

fn new_event(parsed: ParsedEvent, now: OffsetDateTime) -> NewEvent {
    NewEvent {
        id: parsed.id.unwrap_or_else(new_event_id),
        taxonomy: parsed.taxonomy,
        event_type: parsed.event_type,
        subject: parsed.subject,
        occurred_at: parsed.occurred_at.unwrap_or(now),
        payload: parsed.payload,
        context: parsed.context,
        producer: parsed.producer,
    }
}

/// Parses, validates and publishes `documents` (each with the path prefix its problems are
/// reported under) as one atomic publish: every problem of every document is reported and
/// nothing is stored when any is invalid. With `taxonomy`, each must be in that taxonomy's
/// envelope (a source takes only its vendor's events). The one publish path of the API:
/// `POST /events`, `/events:batch` and the sources' ingest URLs all come through here.
pub(crate) async fn publish_documents(
    state: &AppState,
    tenant_id: &str,
    documents: Vec<(Value, String)>,
    taxonomy: Option<Taxonomy>,
) -> ApiResult<Vec<PublishedOut>> {
    // One unknown type is enough to look for types other nodes registered.
    let unknown = {
        let known = state.custom_types.lookup_for(tenant_id);
        documents
            .iter()
            .filter_map(|(document, _)| declared_type(document))
            .find(|name| known.lookup(name).is_none())
            .map(str::to_owned)
    };
    let lookup = state
        .custom_types
        .lookup_knowing(state.store.as_ref(), tenant_id, unknown.as_deref())
        .await?;
    let now = state.clock.now();
    let mut events = Vec::with_capacity(documents.len());
    let mut problems = Vec::new();
    for (document, prefix) in documents {
        match parse_one(&lookup, document, &prefix) {
            Ok(parsed) if taxonomy.is_some_and(|expected| parsed.taxonomy != expected) => {
                let expected = taxonomy.map(Taxonomy::as_str).unwrap_or_default();
                problems.push(Problem::new(
                    prefix,
                    format!(
                        "this source takes {expected} events, not a {} envelope",
                        parsed.taxonomy.as_str()
                    ),
                ));
            }
            Ok(parsed) => events.push(new_event(parsed, now)),
            Err(found) => problems.extend(found),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_all(problems));
    }
    store_events(state, tenant_id, events).await
}

async fn store_events(
    state: &AppState,
    tenant_id: &str,
    events: Vec<NewEvent>,
) -> ApiResult<Vec<PublishedOut>> {
    let now = state.clock.now();
    let started = std::time::Instant::now();
    let published = state.store.publish(tenant_id, events, now).await?;
    metrics::histogram!("herald_publish_seconds").record(started.elapsed().as_secs_f64());
    let n_new = published
        .iter()
        .filter(|outcome| !outcome.duplicate)
        .count();
    let n_deliveries: usize = published.iter().map(|outcome| outcome.n_deliveries).sum();
    metrics::counter!("herald_events_published_total").increment(n_new as u64);
    metrics::counter!("herald_events_duplicate_total").increment((published.len() - n_new) as u64);
    if n_deliveries > 0 {
        state.delivery_wakeup.notify_one();
    }
    if n_new > 0 {
        // Shared Signals: the SSF worker turns the new events into SETs from the log.
        state.ssf.wake_worker();
    }
    Ok(published
        .into_iter()
        .map(|outcome| PublishedOut {
            id: outcome.id,
            seq: outcome.seq,
            duplicate: outcome.duplicate,
        })
        .collect())
}

/// Publish one event, in a vendor's native envelope or Herald's canonical form.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/events", tag = "events",
    request_body(content = Object, description = "An Asgardeo, OneWelcome or Authgear envelope, or {type, payload, context?, subject?, id?, occurred_at?}"),
    responses((status = 202, body = PublishedOut), (status = 422, description = "invalid event, with every problem and its path")))]
pub async fn publish(
    State(state): State<AppState>,
    scope: TenantScope,
    JsonBytes(body): JsonBytes,
) -> ApiResult<(StatusCode, Json<PublishedOut>)> {
    let document = parse_json(&body)?;
    let mut published = publish_documents(
        &state,
        &scope.tenant_id,
        vec![(document, String::new())],
        None,
    )
    .await?;
    let outcome = published
        .pop()
        .ok_or_else(|| ApiError::Internal("publish answered nothing".to_owned()))?;
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

/// Publish up to the batch limit of events atomically: all are stored, or none when any is invalid.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/events:batch", tag = "events",
    request_body(content = Object, description = "{\"events\": [envelope, ...]} or a JSON array of envelopes"),
    responses((status = 202, body = BatchOut), (status = 422, description = "some events are invalid: nothing was stored")))]
pub async fn publish_batch(
    State(state): State<AppState>,
    scope: TenantScope,
    JsonBytes(body): JsonBytes,
) -> ApiResult<(StatusCode, Json<BatchOut>)> {
    let (documents, prefix) = match parse_json(&body)? {
        Value::Array(items) => (items, ""),
        Value::Object(mut object) => match object.remove("events") {
            Some(Value::Array(items)) => (items, "/events"),
            _ => {
                return Err(ApiError::invalid(
                    "/events",
                    "expected {\"events\": [...]} or a JSON array of events",
                ));
            }
        },
        _ => {
            return Err(ApiError::invalid(
                "",
                "expected {\"events\": [...]} or a JSON array of events",
            ));
        }
    };
    if documents.is_empty() {
        return Err(ApiError::invalid(prefix, "the batch is empty"));
    }
    if documents.len() > state.settings.max_batch {
        return Err(ApiError::invalid(
            prefix,
            format!(
                "a batch holds at most {} events, this one has {}",
                state.settings.max_batch,
                documents.len()
            ),
        ));
    }
    let documents = documents
        .into_iter()
        .enumerate()
        .map(|(index, document)| (document, format!("{prefix}/{index}")))
        .collect();
    let data = publish_documents(&state, &scope.tenant_id, documents, None).await?;
    Ok((StatusCode::ACCEPTED, Json(BatchOut { data })))
}

/// Read the log: events after a `seq` cursor, optionally of one type or subject.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/events", tag = "events", params(ListQuery),
    responses((status = 200, body = EventPageOut)))]
pub async fn list(
    State(state): State<AppState>,
    scope: TenantScope,
    QueryIn(query): QueryIn<ListQuery>,
) -> ApiResult<Json<EventPageOut>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("/limit", "limit is between 1 and 1000"));
    }
    let filter = EventFilter {
        after_seq: query.after_seq,
        limit,
        event_type: query.event_type,
        subject: query.subject,
    };
    let events = state.store.list_events(&scope.tenant_id, &filter).await?;
    let next_after_seq = events
        .last()
        .map_or(query.after_seq, |stored| stored.event.seq);
    Ok(Json(EventPageOut {
        data: events.into_iter().map(EventOut::from).collect(),
        next_after_seq,
    }))
}

/// One event by id.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/events/{event_id}", tag = "events",
    responses((status = 200, body = EventOut), (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<Json<EventOut>> {
    let event_id = path_ids.1;
    let stored = state
        .store
        .get_event(&scope.tenant_id, &event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("event {event_id:?}")))?;
    Ok(Json(EventOut::from(stored)))
}

//! `/v1/ingest/{source_id}`: where vendors push events, each its own way. No Herald key: the
//! request is authenticated by the source's vendor mechanism over the raw body bytes, before
//! anything is parsed (`herald_core::source_auth`). What passes goes through the same parse,
//! validation and atomic publish as `POST /events` (`events::publish_documents`), and an
//! Authgear blocking event through the same hook chain as `POST /blocking-events`
//! (`blocking::decide`). Every request's outcome is counted on the source, so its operator sees
//! a misconfigured vendor at once.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_catalog::catalog::TypeLookup;
use herald_catalog::envelope::{declared_type, parse_envelope};
use herald_catalog::taxonomy::Taxonomy;
use herald_core::secret::SigningSecret;
use herald_core::source_auth::{
    AUTHGEAR_SIGNATURE_HEADER, ExporterBody, ExporterCredentials, HUB_SIGNATURE_HEADER,
    IngestAuthError, WSO2_SIGNATURE_HEADER, WebSubMode, authgear_allow_answer,
    authgear_deny_answer, parse_intent_verification, split_exporter_body, verify_authgear,
    verify_exporter, verify_hub,
};
use herald_store::models::{SourceErrorEntry, SourceKind, SourceOutcome, SourceRecord};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::body::{QueryIn, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::routes::blocking::decide;
use crate::routes::events::{BatchOut, PublishedOut, publish_documents};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(ingest, verify_intent))
}

/// The most a source's blocking call may spend in the hook chain. Authgear gives a blocking
/// hook 5 s; the chain's answer may come up to `blocking::ANSWER_MARGIN` after its deadline,
/// and the answer still has to travel back, so 4 s leaves room.
pub const SOURCE_CHAIN_DEADLINE: Duration = Duration::from_secs(4);

/// The longest error detail kept on a source.
const MAX_ERROR_DETAIL: usize = 1_000;

/// The answer to an accepted request and what it adds to the source's counters.
struct Accepted {
    response: Response,
    n_accepted: u64,
    n_duplicates: u64,
}

/// Receive events from a source's vendor, authenticated the vendor's way.
#[utoipa::path(post, path = "/v1/ingest/{source_id}", tag = "sources", security(()),
    request_body(content = Object, description = "The vendor's own body: an Authgear envelope (x-authgear-body-signature), an Asgardeo SET (X-Hub-Signature or x-wso2-event-signature), or OneWelcome events (one, a JSON array or JSON lines; the configured header or basic credentials)"),
    responses((status = 200, body = BatchOut, description = "accepted (for an Authgear blocking event, Authgear's answer: {\"is_allowed\", \"mutations\"?} or {\"is_allowed\": false, \"title\", \"reason\"})"),
        (status = 401, description = "the vendor's authentication failed: nothing stored"),
        (status = 404), (status = 413), (status = 422, description = "an invalid event, with every problem and its path: nothing stored")))]
pub async fn ingest(
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let source = match state.store.get_source_by_id(&source_id).await {
        Ok(Some(source)) => source,
        Ok(None) => return ApiError::NotFound(format!("source {source_id:?}")).into_response(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    let result = receive(&state, &source, request, started).await;
    let now = state.clock.now();
    let outcome = match &result {
        Ok(accepted) => SourceOutcome {
            at: now,
            n_accepted: accepted.n_accepted,
            n_duplicates: accepted.n_duplicates,
            n_refused: 0,
            error: None,
        },
        Err(error) => SourceOutcome {
            at: now,
            n_accepted: 0,
            n_duplicates: 0,
            n_refused: 1,
            error: Some(SourceErrorEntry {
                at: now,
                status: error.status().as_u16(),
                detail: error_detail(error),
            }),
        },
    };
    let counted = if result.is_ok() {
        "accepted"
    } else {
        "refused"
    };
    metrics::counter!("herald_source_requests_total", "kind" => source.kind.as_str(), "outcome" => counted)
        .increment(1);
    // The counters are for the operator: failing to count must not change the vendor's answer.
    if let Err(error) = state.store.record_source_outcome(&source.id, outcome).await {
        tracing::warn!(source_id = %source.id, %error, "a source's outcome was not counted");
    }
    match result {
        Ok(accepted) => accepted.response,
        Err(error) => error.into_response(),
    }
}

/// What the operator sees in the source's last errors: the problem and, for an invalid event,
/// each path, so a misconfigured vendor can be found without the request at hand.
fn error_detail(error: &ApiError) -> String {
    let mut detail = match error {
        ApiError::Validation { problems, .. } => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    if detail.len() > MAX_ERROR_DETAIL {
        let mut cut = MAX_ERROR_DETAIL;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push('…');
    }
    detail
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Checks the vendor's authentication over the raw bytes. Nothing has been parsed yet.
fn authenticate(source: &SourceRecord, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    let secret = SigningSecret::parse_plain(&source.secret)
        .map_err(|error| ApiError::Internal(format!("source {}: {error}", source.id)))?;
    let (checked, challenge): (Result<(), IngestAuthError>, &'static str) = match source.kind {
        SourceKind::Authgear => (
            verify_authgear(
                &secret,
                header_text(headers, AUTHGEAR_SIGNATURE_HEADER),
                body,
            ),
            "Signature header=\"x-authgear-body-signature\"",
        ),
        SourceKind::Asgardeo => (
            verify_hub(
                &secret,
                header_text(headers, HUB_SIGNATURE_HEADER),
                header_text(headers, WSO2_SIGNATURE_HEADER),
                body,
            ),
            "Signature header=\"x-hub-signature\"",
        ),
        SourceKind::Onewelcome => match (&source.header_name, &source.username) {
            (Some(name), _) => (
                verify_exporter(
                    ExporterCredentials::Header {
                        name,
                        value: &source.secret,
                    },
                    header_text(headers, name),
                ),
                "Token",
            ),
            (None, Some(username)) => (
                verify_exporter(
                    ExporterCredentials::Basic {
                        username,
                        password: &source.secret,
                    },
                    header_text(headers, header::AUTHORIZATION.as_str()),
                ),
                "Basic realm=\"herald\", charset=\"UTF-8\"",
            ),
            (None, None) => {
                return Err(ApiError::Internal(format!(
                    "source {} has no credentials",
                    source.id
                )));
            }
        },
    };
    checked.map_err(|error| ApiError::IngestUnauthorized {
        detail: error.to_string(),
        challenge,
    })
}

async fn receive(
    state: &AppState,
    source: &SourceRecord,
    request: Request,
    started: Instant,
) -> ApiResult<Accepted> {
    let (parts, body) = request.into_parts();
    let limit = state.settings.max_body_bytes;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    authenticate(source, &parts.headers, &body)?;
    match source.kind {
        SourceKind::Authgear => receive_authgear(state, source, &body, started).await,
        SourceKind::Asgardeo => {
            let document = parse_json(&body)?;
            publish(state, source, vec![(document, String::new())]).await
        }
        SourceKind::Onewelcome => {
            let documents = exporter_documents(state, &body)?;
            publish(state, source, documents).await
        }
    }
}

fn taxonomy_of(kind: SourceKind) -> Taxonomy {
    match kind {
        SourceKind::Authgear => Taxonomy::Authgear,
        SourceKind::Asgardeo => Taxonomy::Asgardeo,
        SourceKind::Onewelcome => Taxonomy::Onewelcome,
    }
}

async fn publish(
    state: &AppState,
    source: &SourceRecord,
    documents: Vec<(Value, String)>,
) -> ApiResult<Accepted> {
    let data: Vec<PublishedOut> = publish_documents(
        state,
        &source.tenant_id,
        documents,
        Some(taxonomy_of(source.kind)),
    )
    .await?;
    let n_duplicates = data.iter().filter(|published| published.duplicate).count() as u64;
    let n_accepted = data.len() as u64 - n_duplicates;
    Ok(Accepted {
        response: (StatusCode::OK, Json(BatchOut { data })).into_response(),
        n_accepted,
        n_duplicates,
    })
}

/// An Authgear request is a webhook (appended to the log) or, for a blocking type, a blocking
/// hook call: the tenant's chain decides, and the answer is in Authgear's own format.
async fn receive_authgear(
    state: &AppState,
    source: &SourceRecord,
    body: &Bytes,
    started: Instant,
) -> ApiResult<Accepted> {
    let document = parse_json(body)?;
    let lookup = state.custom_types.lookup_for(&source.tenant_id);
    let is_blocking = declared_type(&document)
        .and_then(|name| lookup.lookup(name))
        .is_some_and(|definition| definition.is_blocking());
    if !is_blocking {
        return publish(state, source, vec![(document, String::new())]).await;
    }
    let parsed = parse_envelope(&lookup, document)
        .map_err(|error| ApiError::invalid_all(error.problems()))?;
    if parsed.taxonomy != Taxonomy::Authgear {
        return Err(ApiError::invalid(
            "",
            format!(
                "this source takes authgear events, not a {} envelope",
                parsed.taxonomy.as_str()
            ),
        ));
    }
    let Some(definition) = lookup.lookup(&parsed.event_type) else {
        return Err(ApiError::Internal(format!(
            "type {:?} vanished from the catalog",
            parsed.event_type
        )));
    };
    let event_type = parsed.event_type.clone();
    let original = parsed.payload.clone();
    let deadline = state
        .settings
        .hook_chain_deadline
        .min(SOURCE_CHAIN_DEADLINE);
    let decision = decide(
        state,
        &source.tenant_id,
        parsed,
        definition,
        deadline,
        started,
    )
    .await?;
    let answer = if decision.is_allowed {
        authgear_allow_answer(&event_type, &original, &decision.payload)
    } else {
        let first = decision.reasons.first();
        authgear_deny_answer(
            first.and_then(|reason| reason.title.as_deref()),
            first.and_then(|reason| reason.reason.as_deref()),
        )
    };
    Ok(Accepted {
        response: (StatusCode::OK, Json(answer)).into_response(),
        n_accepted: 1,
        n_duplicates: 0,
    })
}

/// The events of a OneWelcome exporter body with the path prefix of each one's problems: none
/// for a single event, `/{index}` in an array, `/{line number}` in JSON lines (a syntax error
/// there names its line in the whole body, too).
fn exporter_documents(state: &AppState, body: &[u8]) -> ApiResult<Vec<(Value, String)>> {
    let documents = match split_exporter_body(body) {
        ExporterBody::Single(bytes) => vec![(parse_json(bytes)?, String::new())],
        ExporterBody::Array(bytes) => match parse_json(bytes)? {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(index, item)| (item, format!("/{index}")))
                .collect(),
            _ => return Err(ApiError::invalid("", "expected a JSON array of events")),
        },
        ExporterBody::Lines(lines) => {
            let mut documents = Vec::with_capacity(lines.len());
            for (line_number, line) in lines {
                let document = parse_json(line).map_err(|error| match error {
                    ApiError::MalformedJson {
                        column, message, ..
                    } => ApiError::MalformedJson {
                        line: line_number,
                        column,
                        message,
                    },
                    other => other,
                })?;
                documents.push((document, format!("/{line_number}")));
            }
            documents
        }
    };
    if documents.is_empty() {
        return Err(ApiError::invalid("", "the body holds no events"));
    }
    if documents.len() > state.settings.max_batch {
        return Err(ApiError::invalid(
            "",
            format!(
                "a request holds at most {} events, this one has {}",
                state.settings.max_batch,
                documents.len()
            ),
        ));
    }
    Ok(documents)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct IntentQuery {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.topic")]
    #[param(rename = "hub.topic")]
    pub topic: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
    #[serde(rename = "hub.lease_seconds")]
    #[param(rename = "hub.lease_seconds")]
    pub lease_seconds: Option<String>,
}

/// The longest lease recorded (a hub may ask for more; the record is what the operator sees).
const MAX_LEASE_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A WebSub hub's intent verification (Asgardeo): the challenge is echoed for a topic the
/// source accepts, and the lease recorded.
#[utoipa::path(get, path = "/v1/ingest/{source_id}", tag = "sources", security(()), params(IntentQuery),
    responses((status = 200, content_type = "text/plain", description = "hub.challenge, echoed"),
        (status = 400), (status = 404, description = "not an Asgardeo source, or a topic it does not accept")))]
pub async fn verify_intent(
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    QueryIn(query): QueryIn<IntentQuery>,
) -> ApiResult<Response> {
    let source = state
        .store
        .get_source_by_id(&source_id)
        .await?
        .filter(|source| source.kind == SourceKind::Asgardeo)
        .ok_or_else(|| ApiError::NotFound(format!("source {source_id:?}")))?;
    let intent = parse_intent_verification(
        query.mode.as_deref(),
        query.topic.as_deref(),
        query.challenge.as_deref(),
        query.lease_seconds.as_deref(),
    )
    .map_err(|error| ApiError::BadRequest(format!("not a WebSub intent verification: {error}")))?;
    // W3C WebSub §5.3: a subscriber that does not agree with the action MUST answer 404.
    if !source.accepted_topics.contains(&intent.topic) {
        return Err(ApiError::NotFound(format!("topic {:?}", intent.topic)));
    }
    match (intent.mode, intent.lease_seconds) {
        (WebSubMode::Subscribe, Some(lease_seconds)) => {
            let lease = time::Duration::seconds(
                i64::try_from(lease_seconds.min(MAX_LEASE_SECONDS)).unwrap_or(i64::MAX),
            );
            state
                .store
                .record_source_lease(&source.id, Some(state.clock.now() + lease))
                .await?;
        }
        // A subscription without a lease keeps whatever was recorded.
        (WebSubMode::Subscribe, None) => {}
        (WebSubMode::Unsubscribe, _) => {
            state.store.record_source_lease(&source.id, None).await?;
        }
    }
    // W3C WebSub §5.3: confirm with a 2xx whose body is exactly `hub.challenge`. It is echoed
    // as plain text that must not be sniffed into anything a browser would run.
    let mut response = (StatusCode::OK, intent.challenge).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

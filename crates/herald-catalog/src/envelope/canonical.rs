//! Herald's canonical form, the same for every taxonomy: `{type, payload, context?, subject?, id?,
//! occurred_at?}` on input; on output also `seq`, `tenant` and `taxonomy`.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Event, RawEnvelope, RenderOptions, json_kind, take_event_id, take_string};
use crate::validation::Problem;

/// Members Herald writes into its own rendering; accepted (and ignored) on input so a rendered
/// canonical event can be published again.
pub(crate) const HERALD_OUTPUT_MEMBERS: [&str; 3] = ["seq", "tenant", "taxonomy"];

pub(super) fn split(mut document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>) {
    let mut problems = Vec::new();
    let id = take_event_id(&mut document, "id", "", &mut problems);
    let event_type = take_string(&mut document, "type", "", &mut problems);
    let subject = take_string(&mut document, "subject", "", &mut problems);
    let occurred_at = take_occurred_at(&mut document, &mut problems);
    let payload = document.remove("payload");
    if payload.is_none() {
        problems.push(Problem::new("", "\"payload\" is a required property"));
    }
    let context = match document.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => context,
        Some(other) => {
            problems.push(Problem::new(
                "/context",
                format!("expected an object, found {}", json_kind(&other)),
            ));
            Map::new()
        }
    };
    let producer = take_producer(&mut document, &mut problems);
    for key in document.keys() {
        if !HERALD_OUTPUT_MEMBERS.contains(&key.as_str()) {
            problems.push(Problem::new(
                format!("/{}", crate::validation::escape_pointer_token(key)),
                "unknown member: the canonical form has type, payload, context, subject, id and \
                 occurred_at",
            ));
        }
    }
    let (Some(event_type), Some(payload)) = (event_type, payload) else {
        return (None, problems);
    };
    let raw = RawEnvelope {
        id,
        event_type,
        type_path: "/type".to_owned(),
        payload_path: "/payload".to_owned(),
        payload,
        context,
        validate_context: false,
        subject,
        fallback_subject: None,
        occurred_at,
        producer,
    };
    (Some(raw), problems)
}

/// Takes the `producer` member of a canonical rendering, which holds another envelope's fields.
pub(crate) fn take_producer(
    document: &mut Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Map<String, Value> {
    match document.remove("producer") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(producer)) => producer,
        Some(other) => {
            problems.push(Problem::new(
                "/producer",
                format!("expected an object, found {}", json_kind(&other)),
            ));
            Map::new()
        }
    }
}

/// Takes the canonical `occurred_at` (RFC 3339) out of `document`.
pub(crate) fn take_occurred_at(
    document: &mut Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Option<OffsetDateTime> {
    match document.remove("occurred_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => match OffsetDateTime::parse(&text, &Rfc3339) {
            Ok(time) => Some(time),
            Err(error) => {
                problems.push(Problem::new(
                    "/occurred_at",
                    format!("expected an RFC 3339 date-time: {error}"),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(Problem::new(
                "/occurred_at",
                format!(
                    "expected an RFC 3339 date-time, found {}",
                    json_kind(&other)
                ),
            ));
            None
        }
    }
}

pub(super) fn render(event: &Event, options: &RenderOptions<'_>) -> Value {
    let occurred_at = event
        .occurred_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| event.occurred_at.unix_timestamp().to_string());
    let mut envelope = Map::new();
    envelope.insert("id".to_owned(), Value::String(event.id.clone()));
    envelope.insert("seq".to_owned(), json!(event.seq));
    envelope.insert("tenant".to_owned(), json!(options.tenant_id));
    envelope.insert("type".to_owned(), Value::String(event.event_type.clone()));
    envelope.insert("taxonomy".to_owned(), json!(event.taxonomy.as_str()));
    if let Some(subject) = &event.subject {
        envelope.insert("subject".to_owned(), json!(subject));
    }
    envelope.insert("occurred_at".to_owned(), json!(occurred_at));
    envelope.insert("payload".to_owned(), event.payload.clone());
    envelope.insert("context".to_owned(), Value::Object(event.context.clone()));
    if !event.producer.is_empty() {
        envelope.insert("producer".to_owned(), Value::Object(event.producer.clone()));
    }
    Value::Object(envelope)
}

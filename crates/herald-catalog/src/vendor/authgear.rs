//! Authgear: the flat envelope `{id, seq, type, payload, context}`, told apart from Herald's
//! canonical form by its type; `context.timestamp` is when the event was generated (Unix
//! seconds), which retries must not change. Consumers check `x-authgear-body-signature`.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{EnvelopeMark, NativeSignatureKind, Vendor};
use crate::envelope::canonical::{HERALD_OUTPUT_MEMBERS, take_occurred_at, take_producer};
use crate::envelope::{Event, RawEnvelope, RenderOptions, json_kind, take_event_id, take_string};
use crate::taxonomy::Taxonomy;
use crate::validation::Problem;

#[derive(Debug)]
pub(super) struct Authgear;

impl Vendor for Authgear {
    fn taxonomy(&self) -> Taxonomy {
        Taxonomy::Authgear
    }

    fn catalog_file(&self) -> (&'static str, &'static str) {
        ("authgear.json", include_str!("../../catalog/authgear.json"))
    }

    fn envelope_mark(&self) -> EnvelopeMark {
        EnvelopeMark::FlatWithOwnType
    }

    fn split(&self, document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>) {
        split(document)
    }

    fn render(&self, event: &Event, options: &RenderOptions<'_>) -> Value {
        render(event, options)
    }

    fn native_signature(&self) -> NativeSignatureKind {
        NativeSignatureKind::AuthgearBodyHex
    }
}

fn split(mut document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>) {
    let mut problems = Vec::new();
    let id = take_event_id(&mut document, "id", "", &mut problems);
    let event_type = take_string(&mut document, "type", "", &mut problems);
    // A producer's seq is replaced by Herald's log position, so it is dropped here.
    document.remove("seq");
    let subject = take_string(&mut document, "subject", "", &mut problems);
    let explicit_occurred_at = take_occurred_at(&mut document, &mut problems);
    // The same event may arrive in Herald's canonical form: its own members are not the producer's.
    let mut producer = take_producer(&mut document, &mut problems);
    for member in HERALD_OUTPUT_MEMBERS {
        document.remove(member);
    }
    let payload = document.remove("payload");
    if payload.is_none() {
        problems.push(Problem::new("", "\"payload\" is a required property"));
    }
    // Without a context, or with an empty one (Herald's canonical form for an Authgear type), Herald fills the required
    // members at render time; a context the producer did send is checked against the schema.
    let (context, validate_context) = match document.remove("context") {
        None | Some(Value::Null) => (Map::new(), false),
        Some(Value::Object(context)) => {
            let sent_something = !context.is_empty();
            (context, sent_something)
        }
        Some(other) => {
            problems.push(Problem::new(
                "/context",
                format!("expected an object, found {}", json_kind(&other)),
            ));
            (Map::new(), false)
        }
    };
    let occurred_at = explicit_occurred_at.or_else(|| {
        context
            .get("timestamp")
            .and_then(Value::as_i64)
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
    });
    let fallback_subject = context
        .get("user_id")
        .and_then(Value::as_str)
        .filter(|user_id| !user_id.is_empty())
        .map(str::to_owned);
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
        validate_context,
        subject,
        fallback_subject,
        occurred_at,
        producer: {
            producer.extend(document);
            producer
        },
    };
    (Some(raw), problems)
}

fn render(event: &Event, _options: &RenderOptions<'_>) -> Value {
    let mut context = event.context.clone();
    context
        .entry("timestamp")
        .or_insert_with(|| json!(event.occurred_at.unix_timestamp()));
    context
        .entry("triggered_by")
        .or_insert_with(|| json!("system"));
    let mut envelope = Map::new();
    envelope.insert("id".to_owned(), Value::String(event.id.clone()));
    envelope.insert("seq".to_owned(), json!(event.seq));
    envelope.insert("type".to_owned(), Value::String(event.event_type.clone()));
    envelope.insert("payload".to_owned(), event.payload.clone());
    envelope.insert("context".to_owned(), Value::Object(context));
    for (key, value) in &event.producer {
        envelope.insert(key.clone(), value.clone());
    }
    Value::Object(envelope)
}

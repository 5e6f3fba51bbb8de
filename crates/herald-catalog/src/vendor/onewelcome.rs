//! OneWelcome (Thales): the envelope `{metadata: {eventId, type, occurredTime, category,
//! aggregateId, producerId, producerInstanceId, metadataVersion, payloadVersion}, payload}`. Its
//! event exporter authenticates with credentials, not a body signature, so deliveries carry no
//! native signature header.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{EnvelopeMark, NativeSignatureKind, Vendor};
use crate::envelope::{Event, RawEnvelope, RenderOptions, json_kind, take_event_id, take_string};
use crate::taxonomy::Taxonomy;
use crate::validation::Problem;

/// Where the envelope keeps the type name.
const TYPE_POINTER: &str = "/metadata/type";

#[derive(Debug)]
pub(super) struct Onewelcome;

impl Vendor for Onewelcome {
    fn taxonomy(&self) -> Taxonomy {
        Taxonomy::Onewelcome
    }

    fn catalog_file(&self) -> (&'static str, &'static str) {
        (
            "onewelcome.json",
            include_str!("../../catalog/onewelcome.json"),
        )
    }

    fn envelope_mark(&self) -> EnvelopeMark {
        EnvelopeMark::Member {
            member: "metadata",
            described: "a OneWelcome envelope (with \"metadata\" and \"payload\")",
        }
    }

    fn declared_type<'document>(
        &self,
        document: &'document Map<String, Value>,
    ) -> Option<&'document str> {
        document.get("metadata")?.get("type")?.as_str()
    }

    fn type_pointer(&self, _event_type: &str) -> String {
        TYPE_POINTER.to_owned()
    }

    fn split(&self, document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>) {
        split(document)
    }

    fn render(&self, event: &Event, options: &RenderOptions<'_>) -> Value {
        render(event, options)
    }

    fn native_signature(&self) -> NativeSignatureKind {
        NativeSignatureKind::None
    }
}

fn split(mut document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut metadata = match document.remove("metadata") {
        Some(Value::Object(metadata)) => metadata,
        other => {
            let found = other.as_ref().map_or("nothing", json_kind);
            problems.push(Problem::new(
                "/metadata",
                format!("expected an object, found {found}"),
            ));
            return (None, problems);
        }
    };
    let id = take_event_id(&mut metadata, "eventId", "/metadata", &mut problems);
    let event_type = take_string(&mut metadata, "type", "/metadata", &mut problems);
    if event_type.is_none()
        && !problems
            .iter()
            .any(|problem| problem.path == "/metadata/type")
    {
        problems.push(Problem::new("/metadata", "\"type\" is a required property"));
    }
    let occurred_at = match metadata.get("occurredTime") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => match OffsetDateTime::parse(text, &Rfc3339) {
            Ok(time) => Some(time),
            Err(error) => {
                problems.push(Problem::new(
                    "/metadata/occurredTime",
                    format!("expected an RFC 3339 date-time: {error}"),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(Problem::new(
                "/metadata/occurredTime",
                format!("expected an RFC 3339 date-time, found {}", json_kind(other)),
            ));
            None
        }
    };
    let payload = match document.remove("payload") {
        Some(payload) => payload,
        None => {
            problems.push(Problem::new("", "\"payload\" is a required property"));
            return (None, problems);
        }
    };
    let Some(event_type) = event_type else {
        return (None, problems);
    };
    // The rest of the metadata (category, aggregateId, producer ids, versions, occurredTime as
    // written) is the producer's and is rendered back verbatim.
    let mut producer = document;
    producer.insert("metadata".to_owned(), Value::Object(metadata));
    let raw = RawEnvelope {
        id,
        event_type,
        type_path: TYPE_POINTER.to_owned(),
        payload_path: "/payload".to_owned(),
        payload,
        context: Map::new(),
        validate_context: false,
        subject: None,
        fallback_subject: None,
        occurred_at,
        producer,
    };
    (Some(raw), problems)
}

fn render(event: &Event, options: &RenderOptions<'_>) -> Value {
    let empty = Map::new();
    let given = match event.producer.get("metadata") {
        Some(Value::Object(metadata)) => metadata,
        _ => &empty,
    };
    let or_default = |key: &str, default: String| -> Value {
        given.get(key).cloned().unwrap_or(Value::String(default))
    };
    let occurred_time = event
        .occurred_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| event.occurred_at.unix_timestamp().to_string());
    let mut metadata = Map::new();
    metadata.insert("eventId".to_owned(), Value::String(event.id.clone()));
    metadata.insert("type".to_owned(), Value::String(event.event_type.clone()));
    metadata.insert(
        "occurredTime".to_owned(),
        or_default("occurredTime", occurred_time),
    );
    metadata.insert(
        "category".to_owned(),
        or_default("category", "public".to_owned()),
    );
    metadata.insert(
        "aggregateId".to_owned(),
        or_default(
            "aggregateId",
            event.subject.clone().unwrap_or_else(|| event.id.clone()),
        ),
    );
    metadata.insert(
        "producerId".to_owned(),
        or_default("producerId", "herald".to_owned()),
    );
    metadata.insert(
        "producerInstanceId".to_owned(),
        or_default("producerInstanceId", options.tenant_id.to_owned()),
    );
    metadata.insert(
        "metadataVersion".to_owned(),
        or_default("metadataVersion", "1.0".to_owned()),
    );
    metadata.insert(
        "payloadVersion".to_owned(),
        or_default("payloadVersion", "1.0".to_owned()),
    );
    for (key, value) in given {
        if !metadata.contains_key(key) {
            metadata.insert(key.clone(), value.clone());
        }
    }
    let mut envelope = Map::new();
    envelope.insert("metadata".to_owned(), Value::Object(metadata));
    envelope.insert("payload".to_owned(), event.payload.clone());
    for (key, value) in &event.producer {
        if key != "metadata" {
            envelope.insert(key.clone(), value.clone());
        }
    }
    Value::Object(envelope)
}

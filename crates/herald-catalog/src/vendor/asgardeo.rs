//! Asgardeo (WSO2): a SET-like envelope `{iss, jti, iat (unix ms), rci, events: {<type URI>:
//! payload}}`, whose consumers check `X-Hub-Signature` (Asgardeo publishes through a WebSub hub).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{EnvelopeMark, NativeSignatureKind, Vendor};
use crate::envelope::{Event, RawEnvelope, RenderOptions, json_kind, take_event_id};
use crate::taxonomy::Taxonomy;
use crate::validation::{Problem, escape_pointer_token};

#[derive(Debug)]
pub(super) struct Asgardeo;

impl Vendor for Asgardeo {
    fn taxonomy(&self) -> Taxonomy {
        Taxonomy::Asgardeo
    }

    fn catalog_file(&self) -> (&'static str, &'static str) {
        ("asgardeo.json", include_str!("../../catalog/asgardeo.json"))
    }

    fn envelope_mark(&self) -> EnvelopeMark {
        EnvelopeMark::Member {
            member: "events",
            described: "an Asgardeo envelope (with \"events\")",
        }
    }

    fn declared_type<'document>(
        &self,
        document: &'document Map<String, Value>,
    ) -> Option<&'document str> {
        document
            .get("events")?
            .as_object()?
            .keys()
            .next()
            .map(String::as_str)
    }

    fn type_pointer(&self, event_type: &str) -> String {
        format!("/events/{}", escape_pointer_token(event_type))
    }

    fn split(&self, document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>) {
        split(document)
    }

    fn render(&self, event: &Event, options: &RenderOptions<'_>) -> Value {
        render(event, options)
    }

    fn native_signature(&self) -> NativeSignatureKind {
        NativeSignatureKind::HubSignatureSha256
    }
}

fn split(mut document: Map<String, Value>) -> (Option<RawEnvelope>, Vec<Problem>) {
    let mut problems = Vec::new();
    let id = take_event_id(&mut document, "jti", "", &mut problems);
    let occurred_at = match document.get("iat") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => match number.as_i64().and_then(from_unix_ms) {
            Some(time) => Some(time),
            None => {
                problems.push(Problem::new(
                    "/iat",
                    "expected a Unix time in milliseconds (a whole number within the years 0-9999)",
                ));
                None
            }
        },
        Some(other) => {
            problems.push(Problem::new(
                "/iat",
                format!(
                    "expected a Unix time in milliseconds, found {}",
                    json_kind(other)
                ),
            ));
            None
        }
    };
    for key in ["iss", "rci"] {
        if let Some(value) = document.get(key)
            && !value.is_string()
        {
            problems.push(Problem::new(
                format!("/{key}"),
                format!("expected a string, found {}", json_kind(value)),
            ));
        }
    }
    let events = document.remove("events");
    let (event_type, payload) = match events {
        Some(Value::Object(events)) if events.len() == 1 => {
            let Some((event_type, payload)) = events.into_iter().next() else {
                return (None, problems);
            };
            (event_type, payload)
        }
        Some(Value::Object(events)) => {
            problems.push(Problem::new(
                "/events",
                format!(
                    "expected exactly one event under \"events\", found {}",
                    events.len()
                ),
            ));
            return (None, problems);
        }
        other => {
            let found = other.as_ref().map_or("nothing", json_kind);
            problems.push(Problem::new(
                "/events",
                format!("expected an object holding one event, found {found}"),
            ));
            return (None, problems);
        }
    };
    let type_path = Asgardeo.type_pointer(&event_type);
    let raw = RawEnvelope {
        id,
        payload_path: type_path.clone(),
        type_path,
        event_type,
        payload,
        context: Map::new(),
        validate_context: false,
        subject: None,
        fallback_subject: None,
        occurred_at,
        // What is left (iss, iat, rci and any member a later Asgardeo version adds) is the
        // producer's, rendered back as it came.
        producer: document,
    };
    (Some(raw), problems)
}

fn render(event: &Event, options: &RenderOptions<'_>) -> Value {
    let mut envelope = Map::new();
    let producer = &event.producer;
    envelope.insert(
        "iss".to_owned(),
        producer
            .get("iss")
            .cloned()
            .unwrap_or_else(|| Value::String(options.issuer.to_owned())),
    );
    envelope.insert("jti".to_owned(), Value::String(event.id.clone()));
    envelope.insert(
        "iat".to_owned(),
        producer
            .get("iat")
            .cloned()
            .unwrap_or_else(|| json!(unix_ms(event.occurred_at))),
    );
    for (key, value) in producer {
        if key != "iss" && key != "iat" {
            envelope.insert(key.clone(), value.clone());
        }
    }
    let mut events = Map::new();
    events.insert(event.event_type.clone(), event.payload.clone());
    envelope.insert("events".to_owned(), Value::Object(events));
    Value::Object(envelope)
}

fn from_unix_ms(milliseconds: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(milliseconds) * 1_000_000).ok()
}

fn unix_ms(time: OffsetDateTime) -> i64 {
    // Years 0-9999 in milliseconds fit an i64 many times over.
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

//! Native envelopes: detect which vendor wrapped a JSON body, parse it into one taxonomy-neutral
//! shape, and render stored events back into each vendor's wire format. What is particular to a
//! vendor is in its module under [`crate::vendor`]; this module goes through the registry, and
//! keeps Herald's own canonical form (`canonical`) for everything no vendor claims.
//!
//! Parsing keeps every field the producer set (`producer`), so rendering a parsed envelope gives the
//! same JSON back; fields the producer left out are filled deterministically at render time, so the
//! body of a delivery is identical on every attempt.

pub(crate) mod canonical;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::catalog::TypeLookup;
use crate::definition::EventTypeDef;
use crate::json::{JsonError, parse_strict};
use crate::taxonomy::Taxonomy;
use crate::validation::{Problem, escape_pointer_token};
use crate::vendor::{self, EnvelopeMark, VENDORS, Vendor};

/// An event as a producer submitted it, parsed and validated, before Herald gives it a `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    pub taxonomy: Taxonomy,
    /// The producer's own id (Asgardeo `jti`, OneWelcome `metadata.eventId`, Authgear `id`).
    pub id: Option<String>,
    pub event_type: String,
    /// The user the event concerns, from the payload (or the envelope where the vendor puts it there).
    pub subject: Option<String>,
    /// When it happened, as the producer says.
    pub occurred_at: Option<OffsetDateTime>,
    pub payload: Value,
    pub context: Map<String, Value>,
    /// Envelope members the producer set that are rendered back as they were.
    pub producer: Map<String, Value>,
}

/// A stored event: everything needed to render it in any format.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub seq: i64,
    pub taxonomy: Taxonomy,
    pub event_type: String,
    pub subject: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub payload: Value,
    pub context: Map<String, Value>,
    pub producer: Map<String, Value>,
}

impl ParsedEvent {
    /// The stored form: the producer's id (or `generated_id`), its time (or `now`), and Herald's `seq`.
    pub fn into_event(self, generated_id: String, now: OffsetDateTime, seq: i64) -> Event {
        Event {
            id: self.id.unwrap_or(generated_id),
            seq,
            taxonomy: self.taxonomy,
            event_type: self.event_type,
            subject: self.subject,
            occurred_at: self.occurred_at.unwrap_or(now),
            payload: self.payload,
            context: self.context,
            producer: self.producer,
        }
    }
}

/// Why a body is not an acceptable event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON at all; `line` and `column` are 1-based, as editors count.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed JSON with problems, each with its JSON pointer in the submitted document.
    #[error("{}", describe_problems(.0))]
    Invalid(Vec<Problem>),
}

fn describe_problems(problems: &[Problem]) -> String {
    let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!("invalid event: {}", listed.join("; "))
}

impl EnvelopeError {
    /// The problems, as a list (a malformed body is one problem at the root).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            EnvelopeError::Malformed {
                line,
                column,
                message,
            } => vec![Problem::new(
                "",
                format!("malformed JSON at line {line}, column {column}: {message}"),
            )],
            EnvelopeError::Invalid(problems) => problems.clone(),
        }
    }

    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        EnvelopeError::Invalid(vec![Problem::new(path, message)])
    }
}

/// Parses raw bytes: first as strict JSON (reporting line and column; a repeated member name is a
/// problem at its path), then as an envelope.
pub fn parse_envelope_bytes(
    lookup: &impl TypeLookup,
    body: &[u8],
) -> Result<ParsedEvent, EnvelopeError> {
    let document = parse_strict(body).map_err(|error| match error {
        JsonError::Syntax {
            line,
            column,
            message,
        } => EnvelopeError::Malformed {
            line,
            column,
            message,
        },
        JsonError::DuplicateMember { .. } => {
            EnvelopeError::one(error.path().to_owned(), error.to_string())
        }
    })?;
    parse_envelope(lookup, document)
}

/// Which envelope a document is, by its members: a vendor's marked by a member of its own, or flat
/// (`{type, payload, ...}`: a flat vendor's when the type is one of its types, otherwise
/// Herald's canonical form).
#[derive(Clone, Copy)]
enum Shape {
    Marked(&'static dyn Vendor),
    Flat,
}

impl Shape {
    /// The first vendor in the registry whose member `document` has, else flat if it has `type`.
    fn of(document: &Map<String, Value>) -> Option<Shape> {
        let marked = VENDORS.iter().copied().find(|vendor| {
            matches!(vendor.envelope_mark(), EnvelopeMark::Member { member, .. }
                if document.contains_key(member))
        });
        match marked {
            Some(vendor) => Some(Shape::Marked(vendor)),
            None => document.contains_key("type").then_some(Shape::Flat),
        }
    }

    fn declared_type(self, document: &Map<String, Value>) -> Option<&str> {
        match self {
            Shape::Marked(vendor) => vendor.declared_type(document),
            Shape::Flat => document.get("type")?.as_str(),
        }
    }
}

/// The event type a document says it carries, found the way [`parse_envelope`] finds it, without
/// validating anything: lets a caller make sure the type is known before parsing.
pub fn declared_type(document: &Value) -> Option<&str> {
    let object = document.as_object()?;
    Shape::of(object)?.declared_type(object)
}

/// The JSON pointer of [`declared_type`] in the document, for a problem about the type.
pub fn declared_type_pointer(document: &Value) -> Option<String> {
    let object = document.as_object()?;
    let shape = Shape::of(object)?;
    let event_type = shape.declared_type(object)?;
    Some(match shape {
        Shape::Marked(vendor) => vendor.type_pointer(event_type),
        Shape::Flat => "/type".to_owned(),
    })
}

/// Parses an already-decoded JSON document as an envelope and validates it against the catalog.
/// Every problem found is returned at once.
pub fn parse_envelope(
    lookup: &impl TypeLookup,
    document: Value,
) -> Result<ParsedEvent, EnvelopeError> {
    let Value::Object(document) = document else {
        return Err(EnvelopeError::one(
            "",
            format!("expected a JSON object, found {}", json_kind(&document)),
        ));
    };
    let shape = Shape::of(&document).ok_or_else(not_an_envelope)?;
    // The vendor whose envelope this is; `None` for the canonical form, which any type may use.
    let vendor = match shape {
        Shape::Marked(vendor) => Some(vendor),
        Shape::Flat => shape
            .declared_type(&document)
            .and_then(|name| lookup.lookup(name))
            .and_then(|definition| vendor::of(definition.taxonomy()))
            .filter(|vendor| vendor.envelope_mark() == EnvelopeMark::FlatWithOwnType),
    };
    let (raw, mut problems) = match vendor {
        Some(vendor) => vendor.split(document),
        None => canonical::split(document),
    };
    let Some(raw) = raw else {
        return Err(EnvelopeError::Invalid(problems));
    };
    let Some(definition) = lookup.lookup(&raw.event_type) else {
        problems.push(Problem::new(
            raw.type_path.clone(),
            format!(
                "unknown event type {:?}: see `herald catalog list` for the known types",
                raw.event_type
            ),
        ));
        return Err(EnvelopeError::Invalid(problems));
    };
    // A flat vendor's envelope was chosen by its type, so only a marked one can carry a stranger.
    if let Some(vendor) = vendor
        && definition.taxonomy() != vendor.taxonomy()
    {
        problems.push(Problem::new(
            raw.type_path.clone(),
            format!(
                "{:?} is a {} type and cannot travel in a {} envelope",
                raw.event_type,
                definition.taxonomy(),
                vendor.taxonomy()
            ),
        ));
    }
    if let Err(payload_problems) = definition.validate_payload(&raw.payload) {
        problems.extend(
            payload_problems
                .into_iter()
                .map(|problem| problem.under(&raw.payload_path)),
        );
    }
    if raw.validate_context
        && let Some(context_validator) = lookup.context_validator(definition.taxonomy())
    {
        let context = Value::Object(raw.context.clone());
        problems.extend(context_validator.iter_errors(&context).map(|error| {
            Problem::new(error.instance_path().as_str(), error.to_string()).under("/context")
        }));
    }
    if !problems.is_empty() {
        return Err(EnvelopeError::Invalid(problems));
    }
    let subject = raw
        .subject
        .or_else(|| definition.subject_of(&raw.payload))
        .or(raw.fallback_subject);
    Ok(ParsedEvent {
        taxonomy: definition.taxonomy(),
        id: raw.id,
        event_type: raw.event_type,
        subject,
        occurred_at: raw.occurred_at,
        payload: raw.payload,
        context: raw.context,
        producer: raw.producer,
    })
}

/// The problem of a document that has no envelope's shape, naming the envelopes it could have.
fn not_an_envelope() -> EnvelopeError {
    let mut expected: Vec<&str> = VENDORS
        .iter()
        .filter_map(|vendor| match vendor.envelope_mark() {
            EnvelopeMark::Member { described, .. } => Some(described),
            EnvelopeMark::FlatWithOwnType => None,
        })
        .collect();
    expected.push("or an object with \"type\" and \"payload\"");
    EnvelopeError::one(
        "",
        format!("not an event envelope: expected {}", expected.join(", ")),
    )
}

/// What a vendor's (or the canonical form's) splitter pulls out of an envelope before the catalog
/// is consulted. Only this crate builds one.
#[derive(Debug)]
pub struct RawEnvelope {
    pub(crate) id: Option<String>,
    pub(crate) event_type: String,
    /// Pointer of the type name in the document, for "unknown type" problems.
    pub(crate) type_path: String,
    /// Pointer of the payload in the document, prefixed to the payload's problems.
    pub(crate) payload_path: String,
    pub(crate) payload: Value,
    pub(crate) context: Map<String, Value>,
    pub(crate) validate_context: bool,
    /// An explicit subject (canonical form) wins over the payload's.
    pub(crate) subject: Option<String>,
    /// Used when the payload has none (Authgear's `context.user_id`).
    pub(crate) fallback_subject: Option<String>,
    pub(crate) occurred_at: Option<OffsetDateTime>,
    pub(crate) producer: Map<String, Value>,
}

/// How a stored event is rendered for a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RenderFormat {
    /// The envelope of the event's own taxonomy's vendor (canonical for custom and Herald types).
    #[default]
    Native,
    /// Herald's own envelope, the same for every taxonomy.
    Canonical,
}

impl RenderFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RenderFormat::Native => "native",
            RenderFormat::Canonical => "canonical",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "native" => Some(RenderFormat::Native),
            "canonical" => Some(RenderFormat::Canonical),
            _ => None,
        }
    }
}

/// What rendering needs to know of the tenant, to fill fields the producer left out.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions<'a> {
    pub tenant_id: &'a str,
    /// The issuer written into Asgardeo `iss` when the producer gave none.
    pub issuer: &'a str,
}

/// Renders `event` as the JSON document a subscriber receives. Deterministic: the same event and
/// options give the same bytes.
pub fn render(event: &Event, format: RenderFormat, options: &RenderOptions<'_>) -> Value {
    match (format, vendor::of(event.taxonomy)) {
        (RenderFormat::Native, Some(vendor)) => vendor.render(event, options),
        (RenderFormat::Native, None) | (RenderFormat::Canonical, _) => {
            canonical::render(event, options)
        }
    }
}

/// The tenant an example envelope is rendered for: the issuer is Herald's default one for a
/// tenant named `example` (a tenant's own issuer replaces it in real deliveries).
pub const EXAMPLE_RENDER_OPTIONS: RenderOptions<'static> = RenderOptions {
    tenant_id: "example",
    issuer: "urn:herald:tenant:example",
};

/// The event id, `seq` and time (Unix seconds) an example envelope shows: fixed, so showing a
/// type gives the same text every time.
const EXAMPLE_EVENT_ID: &str = "0190f2a1-c3d8-7e5f-9a0b-1c2d3e4f5a6b";
const EXAMPLE_SEQ: i64 = 1;
const EXAMPLE_UNIX_SECONDS: i64 = 1_751_705_149;

/// The example payload of `definition` in its taxonomy's native envelope, as Herald delivers an
/// event published with only that payload: the members the producer would have left out (ids,
/// time, Authgear's context `timestamp` and `triggered_by`) filled the way rendering fills them.
/// `None` for a type without an example.
pub fn example_envelope(definition: &EventTypeDef) -> Option<Value> {
    let payload = definition.example()?.clone();
    let event = Event {
        id: EXAMPLE_EVENT_ID.to_owned(),
        seq: EXAMPLE_SEQ,
        taxonomy: definition.taxonomy(),
        event_type: definition.name().to_owned(),
        subject: definition.subject_of(&payload),
        occurred_at: OffsetDateTime::from_unix_timestamp(EXAMPLE_UNIX_SECONDS)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        payload,
        context: Map::new(),
        producer: Map::new(),
    };
    Some(render(
        &event,
        RenderFormat::Native,
        &EXAMPLE_RENDER_OPTIONS,
    ))
}

/// [`render`], serialized.
pub fn render_bytes(event: &Event, format: RenderFormat, options: &RenderOptions<'_>) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its keys are strings and it holds no foreign types.
    serde_json::to_vec(&render(event, format, options)).unwrap_or_default()
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Takes an optional string member out of `object`, recording a problem if it is not a string.
pub(crate) fn take_string(
    object: &mut Map<String, Value>,
    key: &str,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match object.remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}/{}", escape_pointer_token(key)),
                format!("expected a non-empty string, found {}", json_kind(&other)),
            ));
            None
        }
    }
}

/// Takes the producer's event id out of `object`. The id travels as the `webhook-id` header of
/// every delivery, so it must be visible ASCII without spaces: any other id could never be sent,
/// and is refused here rather than accepted and then retried until exhausted.
pub(crate) fn take_event_id(
    object: &mut Map<String, Value>,
    key: &str,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let id = take_string(object, key, path, problems)?;
    if id.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Some(id);
    }
    problems.push(Problem::new(
        format!("{path}/{}", escape_pointer_token(key)),
        "an event id is visible ASCII without spaces: it is sent in the `webhook-id` header",
    ));
    None
}

#[cfg(test)]
mod tests;

//! One event type: its native name, where it belongs, its payload schema (compiled once) and where
//! its subject lives.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::schema_definitions::keep_used_definitions;
use crate::taxonomy::Taxonomy;
use crate::validation::Problem;

/// A catalog entry. Built from a catalog data file or from a `custom` registration; past
/// construction the schema is known to compile.
pub struct EventTypeDef {
    name: String,
    taxonomy: Taxonomy,
    module: String,
    description: String,
    blocking: bool,
    subject_pointer: Option<String>,
    /// The payload schema as written, with the file's shared definitions attached as `$defs`.
    schema: Value,
    example: Option<Value>,
    validator: jsonschema::Validator,
}

impl fmt::Debug for EventTypeDef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EventTypeDef")
            .field("name", &self.name)
            .field("taxonomy", &self.taxonomy)
            .field("module", &self.module)
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

/// Why an event type could not be defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("event type {name:?}: the schema does not compile: {detail}")]
    SchemaDoesNotCompile { name: String, detail: String },
    #[error("event type {name:?}: the subject pointer {pointer:?} must be empty or start with '/'")]
    BadSubjectPointer { name: String, pointer: String },
    #[error("event type {name:?}: {detail}")]
    Invalid { name: String, detail: String },
}

/// The fields an event type is made of, before its schema is compiled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeSpec {
    #[serde(rename = "type")]
    pub name: String,
    pub module: String,
    pub description: String,
    #[serde(default)]
    pub blocking: bool,
    #[serde(default)]
    pub subject: Option<String>,
    pub schema: Value,
    #[serde(default)]
    pub example: Option<Value>,
}

impl EventTypeDef {
    /// Compiles `spec` into a definition of `taxonomy`; `shared_definitions` become the schema's `$defs`.
    pub fn compile(
        taxonomy: Taxonomy,
        spec: EventTypeSpec,
        shared_definitions: &Map<String, Value>,
    ) -> Result<Self, DefinitionError> {
        let EventTypeSpec {
            name,
            module,
            description,
            blocking,
            subject,
            mut schema,
            example,
        } = spec;
        if name.trim().is_empty() {
            return Err(DefinitionError::Invalid {
                name,
                detail: "the type name is empty".to_owned(),
            });
        }
        if description.trim().is_empty() {
            return Err(DefinitionError::Invalid {
                name,
                detail: "the description is empty".to_owned(),
            });
        }
        if let Some(pointer) = &subject
            && !pointer.is_empty()
            && !pointer.starts_with('/')
        {
            return Err(DefinitionError::BadSubjectPointer {
                name,
                pointer: pointer.clone(),
            });
        }
        let Value::Object(schema_object) = &mut schema else {
            return Err(DefinitionError::SchemaDoesNotCompile {
                name,
                detail: "a schema must be a JSON object".to_owned(),
            });
        };
        if !shared_definitions.is_empty() {
            schema_object.insert(
                "$defs".to_owned(),
                Value::Object(shared_definitions.clone()),
            );
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|error| DefinitionError::SchemaDoesNotCompile {
                name: name.clone(),
                detail: error.to_string(),
            })?;
        Ok(EventTypeDef {
            name,
            taxonomy,
            module,
            description,
            blocking,
            subject_pointer: subject.filter(|pointer| !pointer.is_empty()),
            schema,
            example,
            validator,
        })
    }

    /// The native name, exactly as the vendor writes it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn taxonomy(&self) -> Taxonomy {
        self.taxonomy
    }

    /// The vendor's module or channel (`login`, `Identity`, `user`, ...).
    pub fn module(&self) -> &str {
        &self.module
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether blocking hooks run for this type before the operation happens.
    pub fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// JSON pointer into the payload to the id of the user the event concerns.
    pub fn subject_pointer(&self) -> Option<&str> {
        self.subject_pointer.as_deref()
    }

    /// The payload schema, with its shared definitions under `$defs`.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The payload schema with only the shared definitions it reaches through `$ref`, for showing
    /// the type; validation uses the full [`schema`](Self::schema).
    pub fn schema_with_used_definitions(&self) -> Value {
        keep_used_definitions(&self.schema)
    }

    /// A valid payload, for documentation.
    pub fn example(&self) -> Option<&Value> {
        self.example.as_ref()
    }

    /// Every problem of `payload` against the schema, with pointers relative to the payload.
    pub fn validate_payload(&self, payload: &Value) -> Result<(), Vec<Problem>> {
        if self.validator.is_valid(payload) {
            return Ok(());
        }
        let problems: Vec<Problem> = self
            .validator
            .iter_errors(payload)
            .map(|error| Problem::new(error.instance_path().as_str(), error.to_string()))
            .collect();
        if problems.is_empty() {
            // The fast check and the full walk disagree only on a validator bug; refusing is the
            // safe answer and the message says so.
            return Err(vec![Problem::new(
                "",
                "the payload does not match its schema",
            )]);
        }
        Err(problems)
    }

    /// The subject found in `payload` at the subject pointer, if it is a string or a number there.
    pub fn subject_of(&self, payload: &Value) -> Option<String> {
        let pointer = self.subject_pointer.as_deref()?;
        match payload.pointer(pointer)? {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

//! The catalog: the built-in event types, loaded from the data files embedded at build time, and
//! custom types registered at run time.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::definition::{DefinitionError, EventTypeDef, EventTypeSpec};
use crate::taxonomy::Taxonomy;
use crate::vendor::VENDORS;

/// The data file of Herald's own operational events, the one that belongs to no vendor.
const HERALD_FILE: (&str, &str) = ("herald.json", include_str!("../catalog/herald.json"));

/// The catalog data files: each vendor's, in registry order, then Herald's own. Adding an event
/// type means editing one of these.
pub fn builtin_files() -> Vec<(&'static str, &'static str)> {
    VENDORS
        .iter()
        .map(|vendor| vendor.catalog_file())
        .chain([HERALD_FILE])
        .collect()
}

/// The version of the data-file shape this code reads.
const FORMAT_VERSION: u32 = 1;

/// Why the catalog could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}: not a valid catalog file: {detail}")]
    BadFile { file: String, detail: String },
    #[error("{file}: format_version {found} is not supported (expected {FORMAT_VERSION})")]
    UnsupportedVersion { file: String, found: u32 },
    #[error("{file}: {source}")]
    BadDefinition {
        file: String,
        source: DefinitionError,
    },
    #[error("event type {0:?} is defined twice")]
    Duplicate(String),
    #[error("{file}: the context schema does not compile: {detail}")]
    BadContextSchema { file: String, detail: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    taxonomy: String,
    format_version: u32,
    #[serde(default)]
    #[allow(dead_code)] // Read by people, kept so files document their origin.
    source: Option<String>,
    #[serde(default)]
    definitions: Map<String, Value>,
    #[serde(default)]
    context_schema: Option<Value>,
    event_types: Vec<EventTypeSpec>,
}

/// A set of event types, looked up by native name.
#[derive(Debug, Default)]
pub struct Catalog {
    types: Vec<Arc<EventTypeDef>>,
    by_name: HashMap<String, usize>,
    context_validators: HashMap<Taxonomy, Arc<jsonschema::Validator>>,
    /// The context schemas as written, for showing them.
    context_schemas: HashMap<Taxonomy, Value>,
}

impl Catalog {
    /// The built-in catalog, loaded once. The data files are part of the binary and checked by the
    /// crate's tests, so failing to load them is a build defect, not a run-time condition.
    pub fn builtin() -> &'static Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Catalog::from_files(&builtin_files())
                .unwrap_or_else(|error| panic!("the embedded catalog is broken: {error}"))
        })
    }

    /// Builds a catalog from `(file name, JSON text)` pairs.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::default();
        for (file_name, text) in files {
            catalog.load_file(file_name, text)?;
        }
        Ok(catalog)
    }

    fn load_file(&mut self, file_name: &str, text: &str) -> Result<(), CatalogError> {
        let bad_file = |detail: String| CatalogError::BadFile {
            file: file_name.to_owned(),
            detail,
        };
        let file: CatalogFile =
            serde_json::from_str(text).map_err(|error| bad_file(error.to_string()))?;
        if file.format_version != FORMAT_VERSION {
            return Err(CatalogError::UnsupportedVersion {
                file: file_name.to_owned(),
                found: file.format_version,
            });
        }
        let taxonomy: Taxonomy = file
            .taxonomy
            .parse()
            .map_err(|error: crate::taxonomy::UnknownTaxonomy| bad_file(error.to_string()))?;
        if let Some(context_schema) = &file.context_schema {
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(context_schema)
                .map_err(|error| CatalogError::BadContextSchema {
                    file: file_name.to_owned(),
                    detail: error.to_string(),
                })?;
            self.context_validators
                .insert(taxonomy, Arc::new(validator));
            self.context_schemas
                .insert(taxonomy, context_schema.clone());
        }
        for spec in file.event_types {
            let definition =
                EventTypeDef::compile(taxonomy, spec, &file.definitions).map_err(|source| {
                    CatalogError::BadDefinition {
                        file: file_name.to_owned(),
                        source,
                    }
                })?;
            self.insert(definition)?;
        }
        Ok(())
    }

    /// Adds one definition; a name already present is refused.
    pub fn insert(&mut self, definition: EventTypeDef) -> Result<(), CatalogError> {
        if self.by_name.contains_key(definition.name()) {
            return Err(CatalogError::Duplicate(definition.name().to_owned()));
        }
        self.by_name
            .insert(definition.name().to_owned(), self.types.len());
        self.types.push(Arc::new(definition));
        Ok(())
    }

    /// The type with this native name.
    pub fn get(&self, name: &str) -> Option<&Arc<EventTypeDef>> {
        self.by_name.get(name).map(|index| &self.types[*index])
    }

    /// Every type, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<EventTypeDef>> {
        self.types.iter()
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The schema of a taxonomy's envelope context as written, where the taxonomy has one (Authgear).
    pub fn context_schema(&self, taxonomy: Taxonomy) -> Option<&Value> {
        self.context_schemas.get(&taxonomy)
    }

    /// The schema of a taxonomy's envelope context, where the taxonomy has one (Authgear).
    pub fn context_validator(&self, taxonomy: Taxonomy) -> Option<&jsonschema::Validator> {
        self.context_validators.get(&taxonomy).map(Arc::as_ref)
    }
}

/// Where event types are looked up when parsing envelopes: the built-in catalog, possibly with a
/// tenant's custom types on top.
pub trait TypeLookup {
    fn lookup(&self, name: &str) -> Option<&EventTypeDef>;
    fn context_validator(&self, taxonomy: Taxonomy) -> Option<&jsonschema::Validator>;
}

impl TypeLookup for Catalog {
    fn lookup(&self, name: &str) -> Option<&EventTypeDef> {
        self.get(name).map(Arc::as_ref)
    }

    fn context_validator(&self, taxonomy: Taxonomy) -> Option<&jsonschema::Validator> {
        Catalog::context_validator(self, taxonomy)
    }
}

/// The fields of a custom type a tenant registers at run time.
#[derive(Debug, Clone)]
pub struct CustomTypeSpec {
    pub name: String,
    pub description: String,
    pub module: Option<String>,
    pub subject_pointer: Option<String>,
    pub schema: Value,
    pub example: Option<Value>,
}

/// Compiles a custom type. Its name must not shadow a built-in one, and must be a dotted lowercase
/// name so it can never be mistaken for a vendor's type.
pub fn compile_custom_type(spec: CustomTypeSpec) -> Result<EventTypeDef, DefinitionError> {
    let name_is_well_formed = !spec.name.is_empty()
        && spec.name.len() <= 200
        && spec.name.chars().all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || matches!(character, '.' | '_' | '-')
        });
    if !name_is_well_formed {
        return Err(DefinitionError::Invalid {
            name: spec.name,
            detail: "a custom type name uses only a-z, 0-9, '.', '_' and '-' (at most 200)"
                .to_owned(),
        });
    }
    if Catalog::builtin().get(&spec.name).is_some() {
        return Err(DefinitionError::Invalid {
            name: spec.name,
            detail: "a built-in type already has this name".to_owned(),
        });
    }
    let event_type = EventTypeSpec {
        name: spec.name,
        module: spec.module.unwrap_or_else(|| "custom".to_owned()),
        description: spec.description,
        blocking: false,
        subject: spec.subject_pointer,
        schema: spec.schema,
        example: spec.example,
    };
    let definition = EventTypeDef::compile(Taxonomy::Custom, event_type, &Map::new())?;
    if let Some(example) = definition.example()
        && let Err(problems) = definition.validate_payload(example)
    {
        return Err(DefinitionError::Invalid {
            name: definition.name().to_owned(),
            detail: format!("the example does not match the schema: {}", problems[0]),
        });
    }
    Ok(definition)
}

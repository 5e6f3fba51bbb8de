//! Which shared definitions a schema uses: the members of its `$defs` (or draft-07 `definitions`)
//! that it reaches through `$ref`, directly or through other definitions.
//!
//! Every schema of a catalog file carries the file's whole set of definitions (the loader attaches
//! them as `$defs`), so a type that uses one model object would be shown with thirty. Showing a
//! type keeps only the definitions it reaches; validation keeps using the full schema.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The members of a schema that hold named definitions (2020-12 and draft-07 spellings).
const DEFINITION_CONTAINERS: [&str; 2] = ["$defs", "definitions"];

/// What a `$ref` points at, as far as this module can tell.
enum Reference {
    /// A definition in one of the root's containers (possibly a part of it: `#/$defs/A/items`).
    Definition {
        container: &'static str,
        name: String,
    },
    /// Somewhere else in the root document (`#`, `#/properties/x`), which is walked anyway.
    ElsewhereInRoot,
    /// Anything this module does not follow: another document, an anchor, a percent-encoded
    /// pointer.
    NotFollowed,
}

/// Reads a reference the way this module can follow it: a JSON pointer fragment of the root
/// document (RFC 6901 §6), its tokens unescaped (`~1` is `/`, `~0` is `~`).
fn classify(reference: &str) -> Reference {
    let Some(pointer) = reference.strip_prefix('#') else {
        return Reference::NotFollowed;
    };
    if pointer.is_empty() {
        return Reference::ElsewhereInRoot;
    }
    // Only a JSON pointer is followed: an anchor (`#name`) and a percent-encoded pointer are not.
    if !pointer.starts_with('/') || pointer.contains('%') {
        return Reference::NotFollowed;
    }
    let mut tokens = pointer[1..].split('/');
    let first = tokens.next().unwrap_or_default();
    let Some(container) = DEFINITION_CONTAINERS
        .into_iter()
        .find(|container| *container == first)
    else {
        return Reference::ElsewhereInRoot;
    };
    match tokens.next() {
        Some(name) if !name.is_empty() => Reference::Definition {
            container,
            name: name.replace("~1", "/").replace("~0", "~"),
        },
        // `#/$defs` itself: not one definition.
        _ => Reference::NotFollowed,
    }
}

/// The definitions `schema` reaches, as `(container, name)`; `None` when a reference cannot be
/// followed for sure or a nested `$id` changes what references are relative to.
fn reached_definitions(root: &Map<String, Value>) -> Option<BTreeSet<(&'static str, String)>> {
    let mut reached: BTreeSet<(&'static str, String)> = BTreeSet::new();
    let mut pending: Vec<&Value> = root
        .iter()
        .filter(|(key, _)| !DEFINITION_CONTAINERS.contains(&key.as_str()))
        .map(|(_, value)| value)
        .collect();
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    if key == "$id" && member.is_string() {
                        return None;
                    }
                    if let ("$ref" | "$dynamicRef", Value::String(reference)) =
                        (key.as_str(), member)
                    {
                        match classify(reference) {
                            Reference::Definition { container, name } => {
                                let definition = root.get(container)?.get(&name)?;
                                if reached.insert((container, name)) {
                                    pending.push(definition);
                                }
                            }
                            Reference::ElsewhereInRoot => {}
                            Reference::NotFollowed => return None,
                        }
                    }
                    pending.push(member);
                }
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    Some(reached)
}

/// `schema` with only the definitions it reaches through `$ref`; a container left empty is
/// removed. When a reference cannot be followed for sure (another document, an anchor, a
/// definition that is not there, a nested `$id`), the schema is returned whole: showing a
/// definition too many is harmless, hiding one in use is not.
pub fn keep_used_definitions(schema: &Value) -> Value {
    let Value::Object(root) = schema else {
        return schema.clone();
    };
    let Some(reached) = reached_definitions(root) else {
        return schema.clone();
    };
    let mut kept = root.clone();
    for container in DEFINITION_CONTAINERS {
        let Some(Value::Object(definitions)) = kept.get_mut(container) else {
            continue;
        };
        definitions.retain(|name, _| reached.contains(&(container, name.clone())));
        if definitions.is_empty() {
            kept.remove(container);
        }
    }
    Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `schema` keeps exactly the `$defs` named in `expected` (`None`: the schema is unchanged).
    fn check(schema: Value, expected: Option<&[&str]>) {
        let kept = keep_used_definitions(&schema);
        match expected {
            None => assert_eq!(kept, schema),
            Some(names) => {
                let found: Vec<&str> = kept
                    .get("$defs")
                    .and_then(Value::as_object)
                    .map(|definitions| definitions.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                assert_eq!(found, names, "{schema}");
                // Only the definitions change.
                let mut without_definitions = schema.clone();
                without_definitions
                    .as_object_mut()
                    .map(|root| root.remove("$defs"));
                let mut kept_without = kept.clone();
                kept_without
                    .as_object_mut()
                    .map(|root| root.remove("$defs"));
                assert_eq!(kept_without, without_definitions);
            }
        }
    }

    fn definitions() -> Value {
        json!({
            "A": {"type": "string"},
            "B": {"type": "array", "items": {"$ref": "#/$defs/C"}},
            "C": {"type": "object", "properties": {"again": {"$ref": "#/$defs/B"}}},
            "D": {"enum": ["x"]},
            "E/F": {"type": "integer"},
        })
    }

    fn with_definitions(properties: Value) -> Value {
        json!({"type": "object", "properties": properties, "$defs": definitions()})
    }

    #[test]
    fn only_reached_definitions_are_kept() {
        check(
            with_definitions(json!({"id": {"type": "string"}})),
            Some(&[]),
        );
        check(
            with_definitions(json!({"a": {"$ref": "#/$defs/A"}})),
            Some(&["A"]),
        );
        // Through other definitions, around a cycle, and under if/else and arrays.
        check(
            with_definitions(json!({"b": {"if": {"type": "null"}, "else": {"$ref": "#/$defs/B"}}})),
            Some(&["B", "C"]),
        );
        check(
            with_definitions(json!({"d": {"anyOf": [{"$ref": "#/$defs/D"}, {"type": "null"}]}})),
            Some(&["D"]),
        );
        // Escaped names, and a pointer into a definition.
        check(
            with_definitions(json!({"f": {"$ref": "#/$defs/E~1F"}})),
            Some(&["E/F"]),
        );
        check(
            with_definitions(json!({"c": {"$ref": "#/$defs/B/items"}})),
            Some(&["B", "C"]),
        );
        // A reference to the root or its own members keeps nothing extra.
        check(
            with_definitions(json!({"self": {"$ref": "#"}, "a": {"$ref": "#/properties/self"}})),
            Some(&[]),
        );
    }

    #[test]
    fn draft_07_definitions_are_pruned_too() {
        let schema = json!({
            "properties": {"a": {"$ref": "#/definitions/A"}},
            "definitions": {"A": {"type": "string"}, "B": {"type": "string"}},
        });
        assert_eq!(
            keep_used_definitions(&schema),
            json!({"properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": {"A": {"type": "string"}}})
        );
    }

    #[test]
    fn what_cannot_be_followed_keeps_the_schema_whole() {
        for properties in [
            json!({"x": {"$ref": "https://example.com/other.json#/$defs/A"}}),
            json!({"x": {"$ref": "#an-anchor"}}),
            json!({"x": {"$ref": "#/$defs/Missing"}}),
            json!({"x": {"$ref": "#/$defs/E%2FF"}}),
            json!({"x": {"$ref": "#/$defs"}}),
            json!({"x": {"$id": "https://example.com/nested", "$ref": "#/$defs/A"}}),
            json!({"x": {"$dynamicRef": "#meta"}}),
        ] {
            check(with_definitions(properties), None);
        }
        check(json!(true), None);
    }
}

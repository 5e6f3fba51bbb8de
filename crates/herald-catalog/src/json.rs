//! Strict JSON for untrusted bodies: `serde_json`'s parser, except that an object naming the
//! same member twice is refused.
//!
//! `serde_json` keeps the last of two equal names without a word. For an event hub that is a
//! trap: a producer (or an attacker between two systems) can send `{"userId": "a", "userId":
//! "b"}`, and a consumer that keeps the *first* sees another user than Herald validated. RFC 8259
//! leaves the behaviour undefined and I-JSON (RFC 7493) forbids such documents, so Herald refuses
//! them, naming the JSON pointer of the repeated member and where it stands in the text.
//!
//! Everything else is `serde_json`'s: its syntax errors with line and column, its recursion limit
//! of 128 nested arrays and objects (so a deeply nested body is an error, not a stack overflow),
//! its refusal of invalid UTF-8, lone surrogates and numbers beyond `f64`. Numbers become the
//! same `Value`s as with `serde_json::from_slice`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::validation::escape_pointer_token;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (including too deep, invalid UTF-8, a number out of range); `line` and `column`
    /// are 1-based, as editors count.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// An object names the member at `path` (a JSON pointer) a second time; `line` and `column`
    /// are just after the second occurrence of the name.
    #[error(
        "duplicate member {name:?} at line {line}, column {column}: a name may appear only once in an object"
    )]
    DuplicateMember {
        path: String,
        name: String,
        line: usize,
        column: usize,
    },
}

impl JsonError {
    /// The JSON pointer of the problem: the repeated member, or the root for a syntax error.
    pub fn path(&self) -> &str {
        match self {
            JsonError::Syntax { .. } => "",
            JsonError::DuplicateMember { path, .. } => path,
        }
    }
}

/// Parses `bytes` as one JSON document, refusing duplicate member names.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    let context = Context::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = ValueSeed { context: &context }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| match context.duplicate.into_inner() {
        Some((path, name)) => JsonError::DuplicateMember {
            path,
            name,
            line: error.line(),
            column: error.column(),
        },
        None => JsonError::Syntax {
            line: error.line(),
            column: error.column(),
            message: strip_position(&error.to_string()),
        },
    })
}

/// serde_json appends " at line L column C" to its messages; the position is reported apart.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// One step of the path from the root to the value being read.
enum Step {
    Member(String),
    Index(usize),
}

/// Shared by every level of one parse. The path is kept as a stack of steps, and rendered only
/// when a duplicate is found, so a well-formed body costs no pointer strings.
#[derive(Default)]
struct Context {
    path: RefCell<Vec<Step>>,
    duplicate: RefCell<Option<(String, String)>>,
}

impl Context {
    fn pointer_to(&self, name: &str) -> String {
        let mut pointer = String::new();
        for step in self.path.borrow().iter() {
            pointer.push('/');
            match step {
                Step::Member(member) => pointer.push_str(&escape_pointer_token(member)),
                Step::Index(index) => pointer.push_str(&index.to_string()),
            }
        }
        pointer.push('/');
        pointer.push_str(&escape_pointer_token(name));
        pointer
    }
}

#[derive(Clone, Copy)]
struct ValueSeed<'c> {
    context: &'c Context,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, so this is always a number.
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.context
                .path
                .borrow_mut()
                .push(Step::Index(items.len()));
            let item = sequence.next_element_seed(self);
            self.context.path.borrow_mut().pop();
            match item? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = members.next_key::<String>()? {
            if object.contains_key(&name) {
                let pointer = self.context.pointer_to(&name);
                let message = format!("duplicate member {name:?}");
                *self.context.duplicate.borrow_mut() = Some((pointer, name));
                return Err(de::Error::custom(message));
            }
            self.context.path.borrow_mut().push(Step::Member(name));
            let value = members.next_value_seed(self);
            let step = self.context.path.borrow_mut().pop();
            let value = value?;
            if let Some(Step::Member(name)) = step {
                object.insert(name, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(text: &str, expected: Result<Value, JsonError>) {
        assert_eq!(parse_strict(text.as_bytes()), expected, "{text}");
    }

    fn duplicate(path: &str, name: &str, line: usize, column: usize) -> Result<Value, JsonError> {
        Err(JsonError::DuplicateMember {
            path: path.to_owned(),
            name: name.to_owned(),
            line,
            column,
        })
    }

    fn syntax(line: usize, column: usize, message: &str) -> Result<Value, JsonError> {
        Err(JsonError::Syntax {
            line,
            column,
            message: message.to_owned(),
        })
    }

    #[test]
    fn well_formed_documents_parse_as_serde_json_parses_them() {
        check(
            r#"{"a": [1, -2, 3.5, 18446744073709551615, 1e300, true, null, "x\u00e9"], "b": {}}"#,
            Ok(
                json!({"a": [1, -2, 3.5, 18446744073709551615_u64, 1e300, true, null, "xé"], "b": {}}),
            ),
        );
        // The same name in different objects is fine.
        check(
            r#"{"a": {"id": 1}, "b": {"id": 2}, "c": [{"id": 3}, {"id": 4}]}"#,
            Ok(json!({"a": {"id": 1}, "b": {"id": 2}, "c": [{"id": 3}, {"id": 4}]})),
        );
        // Member order is kept.
        let parsed = parse_strict(br#"{"z": 1, "a": 2}"#).unwrap();
        let names: Vec<&String> = parsed.as_object().unwrap().keys().collect();
        assert_eq!(names, ["z", "a"]);
    }

    #[test]
    fn a_repeated_member_is_refused_with_its_pointer_and_position() {
        check(r#"{"a": 1, "a": 2}"#, duplicate("/a", "a", 1, 12));
        check(
            "{\"payload\": {\n  \"userId\": \"u1\",\n  \"userId\": \"u2\"\n}}",
            duplicate("/payload/userId", "userId", 3, 10),
        );
        check(
            r#"{"events": [{}, {"x": {"a/b~c": 1, "a/b~c": 1}}]}"#,
            duplicate("/events/1/x/a~1b~0c", "a/b~c", 1, 42),
        );
        // Escapes are decoded before names are compared.
        check(r#"{"a": 1, "\u0061": 2}"#, duplicate("/a", "a", 1, 17));
    }

    #[test]
    fn serde_json_s_raw_value_token_is_an_ordinary_member_name() {
        // serde_json's own `Value` (with the `raw_value` feature) would re-parse the string and
        // give `{"a": 1}`: a document that means something else to Herald than to anyone else.
        let text = r#"{"$serde_json::private::RawValue": "{\"a\": 1}"}"#;
        check(
            text,
            Ok(json!({"$serde_json::private::RawValue": "{\"a\": 1}"})),
        );
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            json!({"a": 1}),
            "the quirk this guards against"
        );
    }

    #[test]
    fn syntax_errors_keep_serde_json_messages_and_positions() {
        check(r#"{"a": 1,}"#, syntax(1, 9, "trailing comma"));
        check(r#"{"a": 1} x"#, syntax(1, 10, "trailing characters"));
        check("1e400", syntax(1, 5, "number out of range"));
        check(r#""\ud800""#, syntax(1, 8, "unexpected end of hex escape"));
        assert!(matches!(
            parse_strict(b"\"\xff\""),
            Err(JsonError::Syntax { .. })
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse_strict(deep.as_bytes()),
            syntax(1, 128, "recursion limit exceeded")
        );
        let deep_objects = "{\"a\":".repeat(200) + "1" + &"}".repeat(200);
        assert!(matches!(
            parse_strict(deep_objects.as_bytes()),
            Err(JsonError::Syntax { message, .. }) if message == "recursion limit exceeded"
        ));
    }

    proptest! {
        #[test]
        fn without_duplicates_the_result_is_serde_json_s(text in r#"[\[\]{}:,"a-c0-9 .e\-]{0,40}"#) {
            let ours = parse_strict(text.as_bytes());
            let theirs: Result<Value, _> = serde_json::from_slice(text.as_bytes());
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => prop_assert_eq!(ours, theirs),
                (Err(JsonError::Syntax { line, column, .. }), Err(theirs)) => {
                    prop_assert_eq!((line, column), (theirs.line(), theirs.column()));
                }
                // serde_json accepts a repeated name by keeping the last value.
                (Err(JsonError::DuplicateMember { .. }), Ok(_)) => {}
                (ours, theirs) => prop_assert!(false, "{ours:?} vs {theirs:?}"),
            }
        }
    }
}

//! The body of the `json_body` fuzz target, shared with the corpus replay test of herald-catalog:
//! Herald's strict JSON parser (the one every request body goes through) against serde_json's.
//!
//! Both must agree on every input, except that a document repeating a member name is refused by
//! the strict parser (and accepted by serde_json), and syntax errors are reported at the same line
//! and column.

use herald_catalog::json::{JsonError, parse_strict};
use serde_json::Value;

/// serde_json's `raw_value` feature (on in this workspace) makes its own `Value` treat an object
/// whose first member is named this specially: the member's string is parsed again as JSON and
/// stands for the whole object. Herald's parser sees an ordinary member, as every other consumer
/// of the document would, so the two cannot be compared on such input.
const RAW_VALUE_TOKEN: &[u8] = b"$serde_json::private::RawValue";

pub fn run(data: &[u8]) {
    let strict = parse_strict(data);
    if data
        .windows(RAW_VALUE_TOKEN.len())
        .any(|window| window == RAW_VALUE_TOKEN)
    {
        return;
    }
    let lenient: Result<Value, serde_json::Error> = serde_json::from_slice(data);
    match (strict, lenient) {
        (Ok(strict), Ok(lenient)) => assert_eq!(strict, lenient, "the parsers disagree"),
        (Err(JsonError::Syntax { line, column, .. }), Err(lenient)) => assert_eq!(
            (line, column),
            (lenient.line(), lenient.column()),
            "the error positions differ: {lenient}"
        ),
        (Err(JsonError::DuplicateMember { path, .. }), Ok(_)) => {
            assert!(
                path.starts_with('/'),
                "a duplicate's path is a pointer: {path:?}"
            );
        }
        // serde_json refuses the document for a reason found after the first repeated name.
        (Err(JsonError::DuplicateMember { .. }), Err(_)) => {}
        (strict, lenient) => panic!("strict {strict:?} but serde_json {lenient:?}"),
    }
}

//! How both backends keep values the database has no type for: times as integer milliseconds
//! since the Unix epoch (UTC), JSON as its text, prefixed ids as their text. One definition, so
//! the two stores cannot drift.

use std::str::FromStr;

use herald_core::ids::IdError;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{StoreError, StoreResult};

/// `time` as whole milliseconds since the epoch (sub-millisecond parts are dropped).
pub fn ms(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The time `milliseconds` after the epoch; the epoch itself for a value out of range.
pub fn from_ms(milliseconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(milliseconds) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The stored text of a JSON value.
pub fn json_text(value: &Value) -> String {
    value.to_string()
}

/// The id of kind `Id` stored as `text` in `column`. Herald wrote it with its prefix, so one that
/// does not parse is corrupt data: a [`StoreError::Backend`] naming the column and the value,
/// never a default.
pub fn parse_stored_id<Id: FromStr<Err = IdError>>(column: &str, text: &str) -> StoreResult<Id> {
    text.parse()
        .map_err(|error| StoreError::Backend(format!("stored column {column}: {error}")))
}

#[cfg(test)]
mod tests {
    use herald_core::ids::EndpointId;

    use super::*;

    #[test]
    fn times_keep_their_milliseconds() {
        let time =
            OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789).expect("time");
        assert_eq!(ms(time), 1_800_000_000_123);
        assert_eq!(ms(from_ms(ms(time))), ms(time));
        assert_eq!(from_ms(i64::MAX), OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn a_stored_id_of_the_wrong_kind_is_a_backend_error_naming_its_column() {
        let id: EndpointId = parse_stored_id("endpoint_id", "ep_1").expect("an endpoint id");
        assert_eq!(id.as_str(), "ep_1");
        for text in ["bogus", "dl_1", "ep_", ""] {
            match parse_stored_id::<EndpointId>("endpoint_id", text) {
                Err(StoreError::Backend(message)) => {
                    assert!(
                        message.starts_with("stored column endpoint_id: "),
                        "{message}"
                    );
                    assert!(message.contains(&format!("{text:?}")), "{message}");
                }
                other => panic!("{text:?} must be refused, got {other:?}"),
            }
        }
    }
}

//! How both backends keep values the database has no type for: times as integer milliseconds
//! since the Unix epoch (UTC), JSON as its text. One definition, so the two stores cannot drift.

use serde_json::Value;
use time::OffsetDateTime;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_their_milliseconds() {
        let time =
            OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789).expect("time");
        assert_eq!(ms(time), 1_800_000_000_123);
        assert_eq!(ms(from_ms(ms(time))), ms(time));
        assert_eq!(from_ms(i64::MAX), OffsetDateTime::UNIX_EPOCH);
    }
}

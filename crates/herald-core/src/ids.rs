//! Identifiers Herald makes: event ids and prefixed resource ids.
//!
//! Both are UUID version 7, whose leading 48 bits are the creation time in milliseconds, so ids
//! sort roughly by creation and index well. Within one process the `uuid` crate also guarantees
//! that later ids sort after earlier ones.

use uuid::Uuid;

/// The prefixes of Herald's own resource ids, so a person reading a log line can tell an endpoint
/// from a delivery at a glance.
pub mod prefix {
    /// Endpoints (subscribers): `ep_...`.
    pub const ENDPOINT: &str = "ep";
    /// Blocking hooks: `hk_...`.
    pub const HOOK: &str = "hk";
    /// Deliveries (one event for one endpoint): `dl_...`.
    pub const DELIVERY: &str = "dl";
    /// Delivery attempts: `att_...`.
    pub const ATTEMPT: &str = "att";
    /// Recorded blocking-hook decisions: `hd_...`.
    pub const HOOK_DECISION: &str = "hd";
    /// API keys (the record, not the secret key itself): `key_...`.
    pub const API_KEY: &str = "key";
}

/// A fresh event id: a UUID v7 in the hyphenated lowercase form, e.g.
/// `0190f2a4-6c1e-7a3b-9d2e-5f4a3b2c1d0e`.
///
/// That form is accepted everywhere a vendor envelope carries an id: Asgardeo's `jti`, Authgear's
/// `id` and OneWelcome's `metadata.eventId` are all documented as UUIDs.
pub fn new_event_id() -> String {
    Uuid::now_v7().hyphenated().to_string()
}

/// A fresh resource id: `prefix`, an underscore, then a UUID v7 as 32 lowercase hex digits, e.g.
/// `ep_0190f2a46c1e7a3b9d2e5f4a3b2c1d0e`. See [`prefix`] for the prefixes in use.
pub fn prefixed_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a generated id must look like.
    #[derive(Debug)]
    struct Expected {
        prefix: &'static str,
        uuid_text_len: usize,
        hyphenated: bool,
    }

    fn check(generate: fn() -> String, expected: Expected) {
        let first = generate();
        let second = generate();
        for id in [&first, &second] {
            let uuid_text = id
                .strip_prefix(expected.prefix)
                .unwrap_or_else(|| panic!("{id} lacks prefix {:?}", expected.prefix));
            assert_eq!(uuid_text.len(), expected.uuid_text_len, "{id}");
            assert_eq!(uuid_text.contains('-'), expected.hyphenated, "{id}");
            assert!(
                uuid_text
                    .chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase()),
                "{id} is not lowercase"
            );
            let uuid = Uuid::parse_str(uuid_text).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{id}");
        }
        assert!(first < second, "{first} should sort before {second}");
    }

    #[test]
    fn generated_ids_have_their_documented_shape() {
        check(
            new_event_id,
            Expected {
                prefix: "",
                uuid_text_len: 36,
                hyphenated: true,
            },
        );
        check(
            || prefixed_id(prefix::ENDPOINT),
            Expected {
                prefix: "ep_",
                uuid_text_len: 32,
                hyphenated: false,
            },
        );
        check(
            || prefixed_id(prefix::API_KEY),
            Expected {
                prefix: "key_",
                uuid_text_len: 32,
                hyphenated: false,
            },
        );
        check(
            || prefixed_id(prefix::DELIVERY),
            Expected {
                prefix: "dl_",
                uuid_text_len: 32,
                hyphenated: false,
            },
        );
    }
}

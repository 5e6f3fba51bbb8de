//! Identifiers Herald makes: event ids, prefixed resource ids, and the typed ids
//! ([`EndpointId`], [`HookId`], [`DeliveryId`], ...) that carry their prefix.
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

/// Why a text is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {kind} id: expected `{prefix}_` followed by the id")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub text: String,
}

/// Declares a prefixed id type: made fresh by `new()`, read back by `parse` (which checks the
/// prefix and that something follows it), shown as its text, and (de)serialized as a plain string.
macro_rules! prefixed_id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:expr, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix its ids start with, before the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id (see [`prefixed_id`]).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(prefixed_id(Self::PREFIX))
            }

            /// An id read from outside: it must be the prefix, an underscore and something more.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                let rest = text
                    .strip_prefix(Self::PREFIX)
                    .and_then(|rest| rest.strip_prefix('_'));
                match rest {
                    Some(rest) if !rest.is_empty() => Ok(Self(text.to_owned())),
                    _ => Err(IdError {
                        kind: $kind,
                        prefix: Self::PREFIX,
                        text: text.to_owned(),
                    }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id_type!(
    /// An endpoint's id, `ep_...`.
    EndpointId,
    prefix::ENDPOINT,
    "an endpoint"
);
prefixed_id_type!(
    /// A blocking hook's id, `hk_...`.
    HookId,
    prefix::HOOK,
    "a hook"
);
prefixed_id_type!(
    /// A delivery's id, `dl_...`.
    DeliveryId,
    prefix::DELIVERY,
    "a delivery"
);
prefixed_id_type!(
    /// A recorded blocking-hook decision's id, `hd_...`.
    HookDecisionId,
    prefix::HOOK_DECISION,
    "a hook decision"
);
prefixed_id_type!(
    /// An API key record's id, `key_...`.
    ApiKeyId,
    prefix::API_KEY,
    "an API key"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_check_their_prefix() {
        fn check(text: &str, expected: Result<&str, IdError>) {
            let parsed = EndpointId::parse(text);
            assert_eq!(
                parsed.as_ref().map(EndpointId::as_str),
                expected.as_ref().map(|id| *id),
                "{text:?}"
            );
        }
        let refused = |text: &str| IdError {
            kind: "an endpoint",
            prefix: "ep",
            text: text.to_owned(),
        };
        check(
            "ep_0190f2a46c1e7a3b9d2e5f4a3b2c1d0e",
            Ok("ep_0190f2a46c1e7a3b9d2e5f4a3b2c1d0e"),
        );
        check("ep_1", Ok("ep_1"));
        check("ep_", Err(refused("ep_")));
        check("ep", Err(refused("ep")));
        check("hk_1", Err(refused("hk_1")));
        check("epx_1", Err(refused("epx_1")));
        check("", Err(refused("")));
    }

    #[test]
    fn typed_ids_are_fresh_displayed_and_serialized_as_text() {
        let first = DeliveryId::new();
        let second = DeliveryId::new();
        assert!(first < second);
        assert!(first.as_str().starts_with("dl_"));
        assert_eq!(first.to_string(), first.as_str());
        assert_eq!(DeliveryId::parse(first.as_ref()), Ok(first.clone()));
        let json = serde_json::to_string(&first).unwrap();
        assert_eq!(json, format!("\"{first}\""));
        assert_eq!(serde_json::from_str::<DeliveryId>(&json).unwrap(), first);
        assert!(serde_json::from_str::<HookId>(&json).is_err());
        assert!(HookId::new().as_str().starts_with("hk_"));
    }

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

//! The table from Herald's catalog types to SSF events, and how each event is built from a payload.
//!
//! One row per catalog type that has a sensible CAEP or RISC counterpart; a type with no row is not
//! transmitted. The table is the documentation: `docs/SHARED_SIGNALS.md` lists the same rows and a
//! test keeps the two in step.
//!
//! The subject of every SET is `iss_sub` with the tenant's issuer and the event's subject (the user
//! id the catalog found in the payload). When the payload also carries the user's email address,
//! the event is *also known as* that `email` subject, so a receiver that added the user by email
//! gets it too.

use serde_json::{Map, Value};

use crate::events::SsfEventType;
use crate::subject::SubjectIdentifier;

/// Event members fixed by a row (CAEP 1.0 credential-change's `credential_type` and `change_type`,
/// CAEP session-revoked's `initiating_entity` when the type implies it).
type FixedMembers = &'static [(&'static str, &'static str)];

/// One row of the mapping table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingRow {
    pub taxonomy: &'static str,
    pub native_type: &'static str,
    pub event_type: SsfEventType,
    pub fixed_members: FixedMembers,
}

const ASGARDEO: &str = "https://schemas.identity.wso2.org/events/";

const fn row(
    taxonomy: &'static str,
    native_type: &'static str,
    event_type: SsfEventType,
    fixed_members: FixedMembers,
) -> MappingRow {
    MappingRow {
        taxonomy,
        native_type,
        event_type,
        fixed_members,
    }
}

const PASSWORD_UPDATED: FixedMembers =
    &[("credential_type", "password"), ("change_type", "update")];
const APP_CREATED: FixedMembers = &[("credential_type", "app"), ("change_type", "create")];
const APP_DELETED: FixedMembers = &[("credential_type", "app"), ("change_type", "delete")];
const BY_USER: FixedMembers = &[("initiating_entity", "user")];

/// The table. Asgardeo types are written without their common URI prefix (see [`native_type_of`]).
pub const MAPPING_TABLE: &[MappingRow] = &[
    // Asgardeo: its session and user events are close cousins of CAEP/RISC.
    row(
        "asgardeo",
        "session/event-type/sessionRevoked",
        SsfEventType::CaepSessionRevoked,
        &[],
    ),
    row(
        "asgardeo",
        "session/event-type/sessionEstablished",
        SsfEventType::CaepSessionEstablished,
        &[],
    ),
    row(
        "asgardeo",
        "session/event-type/sessionPresented",
        SsfEventType::CaepSessionPresented,
        &[],
    ),
    row(
        "asgardeo",
        "credential/event-type/credentialUpdated",
        SsfEventType::CaepCredentialChange,
        PASSWORD_UPDATED,
    ),
    row(
        "asgardeo",
        "user/event-type/userDisabled",
        SsfEventType::RiscAccountDisabled,
        &[],
    ),
    row(
        "asgardeo",
        "user/event-type/userEnabled",
        SsfEventType::RiscAccountEnabled,
        &[],
    ),
    // A locked account cannot be used until unlocked: to a relying party that is a disabled account.
    row(
        "asgardeo",
        "user/event-type/userAccountLocked",
        SsfEventType::RiscAccountDisabled,
        &[],
    ),
    row(
        "asgardeo",
        "user/event-type/userAccountUnlocked",
        SsfEventType::RiscAccountEnabled,
        &[],
    ),
    row(
        "asgardeo",
        "user/event-type/userDeleted",
        SsfEventType::RiscAccountPurged,
        &[],
    ),
    // Authgear.
    row(
        "authgear",
        "user.disabled",
        SsfEventType::RiscAccountDisabled,
        &[],
    ),
    row(
        "authgear",
        "user.reenabled",
        SsfEventType::RiscAccountEnabled,
        &[],
    ),
    row(
        "authgear",
        "user.deleted",
        SsfEventType::RiscAccountPurged,
        &[],
    ),
    row(
        "authgear",
        "user.anonymized",
        SsfEventType::RiscAccountPurged,
        &[],
    ),
    row(
        "authgear",
        "user.authenticated",
        SsfEventType::CaepSessionEstablished,
        &[],
    ),
    row(
        "authgear",
        "user.session.terminated",
        SsfEventType::CaepSessionRevoked,
        &[],
    ),
    row(
        "authgear",
        "user.signed_out",
        SsfEventType::CaepSessionRevoked,
        BY_USER,
    ),
    row(
        "authgear",
        "identity.email.updated",
        SsfEventType::RiscIdentifierChanged,
        &[],
    ),
    row(
        "authgear",
        "identity.phone.updated",
        SsfEventType::RiscIdentifierChanged,
        &[],
    ),
    row(
        "authgear",
        "identity.biometric.enabled",
        SsfEventType::CaepCredentialChange,
        &[
            ("credential_type", "fido2-platform"),
            ("change_type", "create"),
        ],
    ),
    row(
        "authgear",
        "identity.biometric.disabled",
        SsfEventType::CaepCredentialChange,
        &[
            ("credential_type", "fido2-platform"),
            ("change_type", "delete"),
        ],
    ),
    // OneWelcome: password and device events change the user's credentials.
    row(
        "onewelcome",
        "PasswordUpdatedEvent",
        SsfEventType::CaepCredentialChange,
        PASSWORD_UPDATED,
    ),
    row(
        "onewelcome",
        "UserDeviceRegisteredEvent",
        SsfEventType::CaepCredentialChange,
        APP_CREATED,
    ),
    row(
        "onewelcome",
        "UserDeviceDeregisteredEvent",
        SsfEventType::CaepCredentialChange,
        APP_DELETED,
    ),
    row(
        "onewelcome",
        "IdentityDeletedEvent",
        SsfEventType::RiscAccountPurged,
        &[],
    ),
];

/// Herald's row key for a catalog type: Asgardeo's long URIs lose their common prefix.
pub fn native_type_of<'a>(taxonomy: &str, event_type: &'a str) -> &'a str {
    if taxonomy == "asgardeo" {
        event_type.strip_prefix(ASGARDEO).unwrap_or(event_type)
    } else {
        event_type
    }
}

/// The row for a catalog type, if it has one.
pub fn find_row(taxonomy: &str, event_type: &str) -> Option<&'static MappingRow> {
    let native_type = native_type_of(taxonomy, event_type);
    MAPPING_TABLE
        .iter()
        .find(|row| row.taxonomy == taxonomy && row.native_type == native_type)
}

/// What the mapping needs to know about one stored Herald event.
#[derive(Debug, Clone, Copy)]
pub struct CatalogEvent<'a> {
    pub taxonomy: &'a str,
    pub event_type: &'a str,
    /// The subject the catalog found in the payload (usually the user id).
    pub subject: Option<&'a str>,
    pub payload: &'a Value,
    /// When the event happened, in unix seconds (CAEP's `event_timestamp`).
    pub occurred_at_unix: i64,
    /// The tenant's issuer, the `iss` of the `iss_sub` subject.
    pub issuer: &'a str,
}

/// An SSF event built from a catalog event.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEvent {
    pub event_type: SsfEventType,
    /// The SET's `sub_id`.
    pub subject: SubjectIdentifier,
    /// Other identifiers of the same subject, for stream subject matching only.
    pub also_known_as: Vec<SubjectIdentifier>,
    /// The members of the event object inside `events`.
    pub members: Map<String, Value>,
}

impl MappedEvent {
    /// Whether a stream holding `stream_subject` wants this event.
    pub fn is_for(&self, stream_subject: &SubjectIdentifier) -> bool {
        stream_subject.matches(&self.subject)
            || self
                .also_known_as
                .iter()
                .any(|alias| stream_subject.matches(alias))
    }
}

fn is_caep(event_type: SsfEventType) -> bool {
    event_type.uri().contains("/caep/")
}

/// The user's email address where the vendor's payload carries one.
fn email_in(payload: &Value) -> Option<String> {
    // Authgear: user.standard_attributes.email.
    if let Some(Value::String(email)) = payload.pointer("/user/standard_attributes/email") {
        return Some(email.clone());
    }
    // Asgardeo: user.claims[] with the WSO2 email claim URI.
    if let Some(Value::Array(claims)) = payload.pointer("/user/claims") {
        for claim in claims {
            if claim.get("uri").and_then(Value::as_str)
                == Some("http://wso2.org/claims/emailaddress")
                && let Some(email) = claim.get("value").and_then(Value::as_str)
            {
                return Some(email.to_owned());
            }
        }
    }
    None
}

/// Map one catalog event to its SSF event, or `None` when its type has no row or it has no subject
/// (an SSF SET is always about a subject: SSF 1.0 requires `sub_id` in every SET it defines events for).
pub fn map_catalog_event(event: &CatalogEvent<'_>) -> Option<MappedEvent> {
    let row = find_row(event.taxonomy, event.event_type)?;
    let subject_id = event.subject.filter(|subject| !subject.is_empty())?;
    let mut members = Map::new();
    if is_caep(row.event_type) {
        // CAEP 1.0 §2 (event properties): event_timestamp is the time the event happened, in
        // seconds since the epoch.
        members.insert(
            "event_timestamp".to_owned(),
            Value::from(event.occurred_at_unix),
        );
        // Asgardeo tells who started the change; CAEP's initiating_entity has the same values.
        if let Some(initiator) = event.payload.get("initiatorType").and_then(Value::as_str) {
            let entity = match initiator.to_ascii_uppercase().as_str() {
                "ADMIN" => Some("admin"),
                "USER" => Some("user"),
                "SYSTEM" => Some("system"),
                "POLICY" => Some("policy"),
                _ => None,
            };
            if let Some(entity) = entity {
                members.insert("initiating_entity".to_owned(), entity.into());
            }
        }
    }
    for (name, value) in row.fixed_members {
        members.insert((*name).to_owned(), (*value).into());
    }
    if row.event_type == SsfEventType::RiscIdentifierChanged
        && let Some(new_value) = email_in(event.payload)
            .filter(|_| event.event_type.contains("email"))
            .or_else(|| {
                event
                    .payload
                    .pointer("/identity/claims/phone_number")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| {
                event
                    .payload
                    .pointer("/identity/claims/email")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
    {
        // RISC 1.0 identifier-changed: new-value is OPTIONAL, the identifier's new value.
        members.insert("new-value".to_owned(), new_value.into());
    }
    let subject = SubjectIdentifier::IssSub {
        iss: event.issuer.to_owned(),
        sub: subject_id.to_owned(),
    };
    let also_known_as = email_in(event.payload)
        .map(|email| SubjectIdentifier::Email { email })
        .into_iter()
        .collect();
    Some(MappedEvent {
        event_type: row.event_type,
        subject,
        also_known_as,
        members,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{CatalogEvent, MAPPING_TABLE, map_catalog_event};
    use crate::events::SsfEventType;
    use crate::subject::SubjectIdentifier;

    fn check(
        taxonomy: &str,
        event_type: &str,
        payload: Value,
        expected: Option<(SsfEventType, Value)>,
    ) {
        let event = CatalogEvent {
            taxonomy,
            event_type,
            subject: Some("user-1"),
            payload: &payload,
            occurred_at_unix: 1_700_000_000,
            issuer: "https://herald.example/ssf/acme",
        };
        let mapped = map_catalog_event(&event);
        match (mapped, expected) {
            (None, None) => {}
            (Some(mapped), Some((event_type, members))) => {
                assert_eq!(mapped.event_type, event_type, "{taxonomy} {event_type:?}");
                assert_eq!(
                    Value::Object(mapped.members),
                    members,
                    "{taxonomy} {event_type:?}"
                );
                assert_eq!(
                    mapped.subject,
                    SubjectIdentifier::IssSub {
                        iss: "https://herald.example/ssf/acme".into(),
                        sub: "user-1".into()
                    }
                );
            }
            (got, want) => panic!("{taxonomy} {event_type}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn catalog_types_map_to_their_ssf_events() {
        check(
            "authgear",
            "user.disabled",
            json!({"user": {"id": "user-1"}}),
            Some((SsfEventType::RiscAccountDisabled, json!({}))),
        );
        check(
            "authgear",
            "user.reenabled",
            json!({}),
            Some((SsfEventType::RiscAccountEnabled, json!({}))),
        );
        check(
            "authgear",
            "user.signed_out",
            json!({}),
            Some((
                SsfEventType::CaepSessionRevoked,
                json!({"event_timestamp": 1_700_000_000, "initiating_entity": "user"}),
            )),
        );
        check(
            "authgear",
            "identity.email.updated",
            json!({"user": {"standard_attributes": {"email": "new@example.com"}}}),
            Some((
                SsfEventType::RiscIdentifierChanged,
                json!({"new-value": "new@example.com"}),
            )),
        );
        check(
            "asgardeo",
            "https://schemas.identity.wso2.org/events/session/event-type/sessionRevoked",
            json!({"user": {"id": "user-1"}}),
            Some((
                SsfEventType::CaepSessionRevoked,
                json!({"event_timestamp": 1_700_000_000}),
            )),
        );
        check(
            "asgardeo",
            "https://schemas.identity.wso2.org/events/credential/event-type/credentialUpdated",
            json!({"initiatorType": "ADMIN"}),
            Some((
                SsfEventType::CaepCredentialChange,
                json!({"event_timestamp": 1_700_000_000, "initiating_entity": "admin", "credential_type": "password", "change_type": "update"}),
            )),
        );
        check(
            "onewelcome",
            "PasswordUpdatedEvent",
            json!({"userId": "user-1"}),
            Some((
                SsfEventType::CaepCredentialChange,
                json!({"event_timestamp": 1_700_000_000, "credential_type": "password", "change_type": "update"}),
            )),
        );
        check(
            "onewelcome",
            "UserDeviceRegisteredEvent",
            json!({"userId": "user-1"}),
            Some((
                SsfEventType::CaepCredentialChange,
                json!({"event_timestamp": 1_700_000_000, "credential_type": "app", "change_type": "create"}),
            )),
        );
        check(
            "onewelcome",
            "UserDeviceDeregisteredEvent",
            json!({"userId": "user-1"}),
            Some((
                SsfEventType::CaepCredentialChange,
                json!({"event_timestamp": 1_700_000_000, "credential_type": "app", "change_type": "delete"}),
            )),
        );
        // Types with no sensible SSF counterpart are not transmitted.
        check("authgear", "user.created", json!({}), None);
        check(
            "asgardeo",
            "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess",
            json!({}),
            None,
        );
        check(
            "onewelcome",
            "AuthorizationGroupCreatedEvent",
            json!({}),
            None,
        );
        check("herald", "user.disabled", json!({}), None);
    }

    #[test]
    fn an_event_without_a_subject_is_not_transmitted() {
        let payload = json!({});
        let event = CatalogEvent {
            taxonomy: "authgear",
            event_type: "user.disabled",
            subject: None,
            payload: &payload,
            occurred_at_unix: 0,
            issuer: "https://i",
        };
        assert_eq!(map_catalog_event(&event), None);
    }

    #[test]
    fn the_email_in_the_payload_makes_the_event_reach_streams_that_named_the_user_by_email() {
        let payload = json!({"user": {"id": "user-1", "claims": [{"uri": "http://wso2.org/claims/emailaddress", "value": "ada@example.com"}]}});
        let event = CatalogEvent {
            taxonomy: "asgardeo",
            event_type: "https://schemas.identity.wso2.org/events/user/event-type/userDisabled",
            subject: Some("user-1"),
            payload: &payload,
            occurred_at_unix: 0,
            issuer: "https://i",
        };
        let mapped = map_catalog_event(&event).expect("mapped");
        assert!(mapped.is_for(&SubjectIdentifier::Email {
            email: "ada@EXAMPLE.com".into()
        }));
        assert!(mapped.is_for(&SubjectIdentifier::IssSub {
            iss: "https://i".into(),
            sub: "user-1".into()
        }));
        assert!(!mapped.is_for(&SubjectIdentifier::IssSub {
            iss: "https://i".into(),
            sub: "user-2".into()
        }));
    }

    #[test]
    fn the_documented_table_lists_every_row() {
        let document = include_str!("../../../docs/SHARED_SIGNALS.md");
        for row in MAPPING_TABLE {
            let line = format!(
                "| {} | `{}` | `{}` |",
                row.taxonomy,
                row.native_type,
                row.event_type.short_name()
            );
            assert!(
                document.contains(&line),
                "docs/SHARED_SIGNALS.md lacks the line {line}"
            );
        }
    }
}

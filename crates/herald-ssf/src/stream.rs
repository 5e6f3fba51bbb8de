//! A stream's stored settings, and which SET (if any) one published event becomes on it.
//!
//! The settings are kept by the store as one versioned JSON document (`{"v": 1, ...}`): the API
//! layer writes it when a receiver creates or changes a stream, and the SSF worker reads it when
//! it turns the tenant's event log into SETs. Both sides go through [`StreamConfig`], so the
//! document has one definition.

use serde::{Deserialize, Serialize};

use crate::events::SsfEventType;
use crate::mapping::{CatalogEvent, map_catalog_event};
use crate::set::SecurityEventToken;
use crate::subject::SubjectIdentifier;

/// RFC 8936's delivery method URI (poll).
pub const POLL_METHOD: &str = "urn:ietf:rfc:8936";
/// RFC 8935's (push).
pub const PUSH_METHOD: &str = "urn:ietf:rfc:8935";

/// A stream's settings as stored (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamConfig {
    pub v: u32,
    pub iss: String,
    pub aud: Vec<String>,
    pub delivery_method: String,
    pub events_requested: Vec<String>,
    pub description: Option<String>,
    pub min_verification_interval: Option<u64>,
    pub all_subjects: bool,
    /// Unix seconds of the last verification event, for `min_verification_interval`.
    pub last_verification_at: Option<i64>,
    /// Push: the receiver's URL (it passed the SSRF rules when set).
    #[serde(default)]
    pub push_endpoint_url: Option<String>,
    /// Push: the `Authorization` value the receiver asked SETs to carry (SSF 1.0 §8.1.1,
    /// `delivery.authorization_header`).
    #[serde(default)]
    pub push_authorization_header: Option<String>,
}

/// Why a stored stream document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("stream configuration: {0}")]
pub struct StreamConfigError(String);

/// The event types a receiver may ask for.
pub fn requestable_events() -> Vec<String> {
    SsfEventType::ALL
        .into_iter()
        .filter(|event_type| event_type.is_requestable())
        .map(SsfEventType::uri)
        .collect()
}

impl StreamConfig {
    pub fn parse(text: &str) -> Result<Self, StreamConfigError> {
        serde_json::from_str(text).map_err(|error| StreamConfigError(error.to_string()))
    }

    pub fn to_text(&self) -> Result<String, StreamConfigError> {
        serde_json::to_string(self).map_err(|error| StreamConfigError(error.to_string()))
    }

    pub fn is_push(&self) -> bool {
        self.delivery_method == PUSH_METHOD
    }

    /// SSF 1.0 §8.1.1: `events_delivered` is what was requested and is supported.
    pub fn events_delivered(&self) -> Vec<String> {
        let supported = requestable_events();
        self.events_requested
            .iter()
            .filter(|uri| supported.contains(uri))
            .cloned()
            .collect()
    }

    pub fn wants(&self, event_type: SsfEventType) -> bool {
        self.events_requested.contains(&event_type.uri())
    }
}

/// What the SSF worker knows of one event of the tenant's log.
#[derive(Debug, Clone, Copy)]
pub struct LoggedEvent<'a> {
    pub id: &'a str,
    pub taxonomy: &'a str,
    pub event_type: &'a str,
    pub subject: Option<&'a str>,
    pub occurred_at_unix: i64,
    pub payload: &'a serde_json::Value,
}

/// The SET `event` becomes on a stream with `config` and `subjects` (ignored when the stream asked
/// for every subject), or `None` when the stream does not want it: no SSF counterpart, a type
/// it did not request, or a subject it does not hold.
pub fn token_for_stream(
    config: &StreamConfig,
    subjects: &[SubjectIdentifier],
    event: &LoggedEvent<'_>,
    issued_at_unix: i64,
    jti: String,
) -> Option<SecurityEventToken> {
    let mapped = map_catalog_event(&CatalogEvent {
        taxonomy: event.taxonomy,
        event_type: event.event_type,
        subject: event.subject,
        payload: event.payload,
        occurred_at_unix: event.occurred_at_unix,
        issuer: &config.iss,
    })?;
    if !config.wants(mapped.event_type) {
        return None;
    }
    if !config.all_subjects && !subjects.iter().any(|subject| mapped.is_for(subject)) {
        return None;
    }
    Some(SecurityEventToken {
        issuer: config.iss.clone(),
        audience: config.aud.clone(),
        issued_at: issued_at_unix,
        jti,
        // RFC 8417 §2.2 txn: the Herald event the SET came from, the same on every stream.
        transaction_id: Some(event.id.to_owned()),
        subject: Some(mapped.subject),
        event_type: mapped.event_type,
        event_members: mapped.members,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(all_subjects: bool) -> StreamConfig {
        StreamConfig {
            v: 1,
            iss: "https://herald.example/ssf/acme".to_owned(),
            aud: vec!["https://herald.example/ssf/acme/streams/str_1".to_owned()],
            delivery_method: POLL_METHOD.to_owned(),
            events_requested: vec![SsfEventType::RiscAccountDisabled.uri()],
            description: None,
            min_verification_interval: None,
            all_subjects,
            last_verification_at: None,
            push_endpoint_url: None,
            push_authorization_header: None,
        }
    }

    /// One check per case: does `event_type` about `subject` become a SET on the stream?
    fn check(all_subjects: bool, held: &[&str], event_type: &str, subject: &str, expected: bool) {
        let payload = json!({"user": {"id": subject}});
        let event = LoggedEvent {
            id: "evt_1",
            taxonomy: "authgear",
            event_type,
            subject: Some(subject),
            occurred_at_unix: 1_700_000_000,
            payload: &payload,
        };
        let subjects: Vec<SubjectIdentifier> = held
            .iter()
            .map(|sub| SubjectIdentifier::IssSub {
                iss: "https://herald.example/ssf/acme".to_owned(),
                sub: (*sub).to_owned(),
            })
            .collect();
        let token = token_for_stream(
            &config(all_subjects),
            &subjects,
            &event,
            1_700_000_001,
            "set_1".to_owned(),
        );
        assert_eq!(token.is_some(), expected, "{event_type} about {subject}");
        if let Some(token) = token {
            assert_eq!(token.transaction_id.as_deref(), Some("evt_1"));
            assert_eq!(token.jti, "set_1");
        }
    }

    #[test]
    fn a_stream_gets_the_types_it_asked_for_about_its_subjects() {
        check(false, &["u1"], "user.disabled", "u1", true);
        check(false, &["u2"], "user.disabled", "u1", false);
        check(true, &[], "user.disabled", "u1", true);
        // Mapped, but not requested.
        check(true, &[], "user.reenabled", "u1", false);
        // No SSF counterpart at all.
        check(true, &[], "user.created", "u1", false);
    }

    #[test]
    fn the_stored_document_reads_back_the_same() {
        let original = config(true);
        let text = original.to_text().expect("serializes");
        assert_eq!(StreamConfig::parse(&text).expect("parses"), original);
    }
}

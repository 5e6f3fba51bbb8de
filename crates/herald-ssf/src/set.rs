//! Security Event Token claims (RFC 8417) as an SSF transmitter writes them: one event per SET.

use serde_json::{Map, Value};

use crate::events::SsfEventType;
use crate::subject::SubjectIdentifier;

/// The claims of one SET, before signing.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEventToken {
    /// The tenant's issuer (RFC 8417 §2.2: `iss` REQUIRED).
    pub issuer: String,
    /// The stream's audience (RFC 8417 §2.2: `aud` OPTIONAL; SSF streams always have one).
    pub audience: Vec<String>,
    /// Issue time in unix seconds (RFC 8417 §2.2: `iat` REQUIRED).
    pub issued_at: i64,
    /// Unique id of this SET (RFC 8417 §2.2: `jti` REQUIRED, unique per issuer).
    pub jti: String,
    /// The transaction the event came from, where the producer gave one (RFC 8417 §2.2 `txn`).
    pub transaction_id: Option<String>,
    /// The subject (SSF 1.0 SET profile: `sub_id`, an RFC 9493 identifier).
    pub subject: Option<SubjectIdentifier>,
    pub event_type: SsfEventType,
    pub event_members: Map<String, Value>,
}

impl SecurityEventToken {
    /// The JWT claims set.
    pub fn claims(&self) -> Value {
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), self.issuer.clone().into());
        // RFC 7519 §4.1.3: aud is a string when there is one audience, else an array.
        let audience = match self.audience.as_slice() {
            [single] => Value::from(single.clone()),
            many => Value::from(many.to_vec()),
        };
        if !self.audience.is_empty() {
            claims.insert("aud".to_owned(), audience);
        }
        claims.insert("iat".to_owned(), self.issued_at.into());
        claims.insert("jti".to_owned(), self.jti.clone().into());
        if let Some(transaction_id) = &self.transaction_id {
            claims.insert("txn".to_owned(), transaction_id.clone().into());
        }
        if let Some(subject) = &self.subject {
            claims.insert("sub_id".to_owned(), subject.to_json());
        }
        // RFC 8417 §2.2: events is a JSON object whose members are event type URIs; SSF 1.0 puts
        // exactly one event in each SET. RFC 8417 §3 forbids the `sub` claim's use as the event
        // subject here, and SSF uses `sub_id` instead, so no `sub` is written.
        let mut events = Map::new();
        events.insert(
            self.event_type.uri(),
            Value::Object(self.event_members.clone()),
        );
        claims.insert("events".to_owned(), Value::Object(events));
        Value::Object(claims)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::SecurityEventToken;
    use crate::events::SsfEventType;
    use crate::subject::SubjectIdentifier;

    #[test]
    fn claims_carry_one_event_and_the_subject_in_sub_id() {
        let token = SecurityEventToken {
            issuer: "https://h/ssf/t".into(),
            audience: vec!["https://rp".into()],
            issued_at: 10,
            jti: "set_1".into(),
            transaction_id: Some("txn-1".into()),
            subject: Some(SubjectIdentifier::Opaque { id: "u".into() }),
            event_type: SsfEventType::RiscAccountDisabled,
            event_members: Map::new(),
        };
        assert_eq!(
            token.claims(),
            json!({
                "iss": "https://h/ssf/t", "aud": "https://rp", "iat": 10, "jti": "set_1", "txn": "txn-1",
                "sub_id": {"format": "opaque", "id": "u"},
                "events": {"https://schemas.openid.net/secevent/risc/event-type/account-disabled": {}}
            })
        );
    }
}

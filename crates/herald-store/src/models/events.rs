//! Events as they are appended to, and read back from, a tenant's log.

use herald_catalog::envelope::Event;
use herald_catalog::taxonomy::Taxonomy;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// An event to append; `seq` is given by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: String,
    pub taxonomy: Taxonomy,
    pub event_type: String,
    pub subject: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub payload: Value,
    pub context: Map<String, Value>,
    pub producer: Map<String, Value>,
}

/// The answer to one published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub seq: i64,
    /// The id was already in the log: nothing was stored or delivered again.
    pub duplicate: bool,
    /// How many deliveries were created.
    pub n_deliveries: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub tenant_id: String,
    pub event: Event,
    pub received_at: OffsetDateTime,
    /// The payload was erased on request (GDPR); what is left is the envelope.
    pub erased: bool,
}

/// Which events to list: a page after a cursor, optionally of one type or subject.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub after_seq: i64,
    pub limit: usize,
    pub event_type: Option<String>,
    pub subject: Option<String>,
}

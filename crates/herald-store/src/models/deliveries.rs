//! Deliveries, their attempts, and what the worker reports after each attempt.

use herald_catalog::envelope::Event;
use herald_core::delivery::{DeliveryState, DisableReason, NextStep};
use herald_core::ids::{DeliveryId, EndpointId};
use time::OffsetDateTime;

use super::endpoints::EndpointRecord;
use super::events::NewEvent;

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub tenant_id: String,
    pub endpoint_id: EndpointId,
    pub event_id: String,
    pub event_seq: i64,
    pub event_type: String,
    pub state: DeliveryState,
    pub n_attempts: u32,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<EndpointId>,
    pub state: Option<DeliveryState>,
    /// Deliveries created after this one (a cursor), in creation order.
    pub after_id: Option<DeliveryId>,
    pub limit: usize,
}

/// A leased delivery with everything needed to attempt it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: DeliveryId,
    pub n_attempts: u32,
    pub endpoint: EndpointRecord,
    pub event: Event,
    pub tenant_issuer: String,
    /// When the first attempt was due: for publish-to-delivery latency.
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub attempt_number: u32,
    pub started_at: OffsetDateTime,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The start of the response body, truncated.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// What the worker learned from one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub tenant_id: String,
    pub endpoint_id: EndpointId,
    pub attempt: AttemptRecord,
    pub next: NextStep,
    /// Disable the endpoint (410 Gone, or failing for too long), with the reason shown to users.
    pub disable_endpoint: Option<DisableReason>,
    pub now: OffsetDateTime,
    /// Herald's own events about this attempt ([`crate::operational`]), published into the
    /// tenant's log in the attempt's own transaction, as [`crate::EventStore::publish`] would.
    pub operational_events: Vec<NewEvent>,
}

/// What to deliver again to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelector {
    /// One event, by id, whatever the endpoint's filters say.
    Event(String),
    /// Every delivery of the endpoint that is exhausted or cancelled.
    Failed,
    /// Every matching event with a larger `seq`.
    SinceSeq(i64),
    /// Every matching event received at or after this time.
    SinceTime(OffsetDateTime),
}

// --- the console's overview (issue 15) ---

/// The delivery attempts that started in one minute, and how many of them failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptMinute {
    /// The minute's start, UTC, on a whole minute.
    pub minute: OffsetDateTime,
    pub n_attempts: u64,
    /// Attempts that got no 2xx answer (another status, a timeout, a refused connection).
    pub n_failed: u64,
}

//! Herald's own operational events about a delivery attempt (`herald.delivery.exhausted`,
//! `herald.endpoint.disabled`), so a tenant can subscribe to its own delivery trouble.
//!
//! They travel inside the [`AttemptOutcome`](crate::models::AttemptOutcome) and the store
//! publishes them in the attempt's own transaction: a crash can lose both or neither, never the
//! events alone.

use herald_catalog::taxonomy::Taxonomy;
use herald_core::ids::new_event_id;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::models::{ClaimedDelivery, DisableReason, NewEvent, NextStep};

/// What one attempt ended in, as the operational events report it.
#[derive(Debug, Clone, Copy)]
pub struct AttemptReport<'a> {
    pub delivery: &'a ClaimedDelivery,
    pub next: NextStep,
    /// Why the endpoint is being disabled, if it is.
    pub disable_reason: Option<DisableReason>,
    pub last_status: Option<u16>,
    pub last_error: Option<&'a str>,
    pub n_attempts: u32,
    pub now: OffsetDateTime,
}

/// The operational events an attempt raises: `herald.endpoint.disabled` when the endpoint is
/// disabled, `herald.delivery.exhausted` when the delivery gives up. A delivery of one of
/// Herald's own events raises none, so a failing subscriber of them cannot start an endless chain.
pub fn events_after_attempt(report: &AttemptReport<'_>) -> Vec<NewEvent> {
    let delivery = report.delivery;
    if delivery.event.taxonomy == Taxonomy::Herald {
        return Vec::new();
    }
    let endpoint = &delivery.endpoint;
    let mut events = Vec::new();
    if let Some(reason) = report.disable_reason {
        events.push(operational_event(
            "herald.endpoint.disabled",
            json!({
                "endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason.as_str(),
                "last_status": report.last_status,
            }),
            report.now,
        ));
    }
    if report.next == NextStep::Exhausted {
        events.push(operational_event(
            "herald.delivery.exhausted",
            json!({
                "delivery_id": delivery.delivery_id, "endpoint_id": endpoint.id,
                "event_id": delivery.event.id, "event_type": delivery.event.event_type,
                "n_attempts": report.n_attempts, "last_status": report.last_status,
                "last_error": report.last_error,
            }),
            report.now,
        ));
    }
    events
}

fn operational_event(event_type: &str, payload: Value, now: OffsetDateTime) -> NewEvent {
    NewEvent {
        id: new_event_id(),
        taxonomy: Taxonomy::Herald,
        event_type: event_type.to_owned(),
        subject: None,
        occurred_at: now,
        payload,
        context: Map::new(),
        producer: Map::new(),
    }
}

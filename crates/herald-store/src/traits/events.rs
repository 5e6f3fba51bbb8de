//! The contract for the event log: appending, reading, retention and erasure.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::StoreResult;
use crate::models::{EventFilter, NewEvent, Published, StoredEvent};

/// Each tenant's event log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events to the tenant's log and creates one pending delivery per enabled endpoint
    /// whose filters match, all in one durable transaction. An event whose id is already in the
    /// tenant's log is not stored again: its original `seq` comes back with `duplicate: true`.
    async fn publish(
        &self,
        tenant_id: &str,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Published>>;
    async fn list_events(
        &self,
        tenant_id: &str,
        filter: &EventFilter,
    ) -> StoreResult<Vec<StoredEvent>>;
    async fn get_event(&self, tenant_id: &str, event_id: &str) -> StoreResult<Option<StoredEvent>>;
}

/// Retention and erasure of the event log.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Removes up to `batch` events received before `cutoff`, with their deliveries and attempts,
    /// and up to `batch` hook decisions made before it.
    async fn remove_expired(&self, cutoff: OffsetDateTime, batch: usize) -> StoreResult<u64>;
    /// Empties the payload, context and producer fields of every event of `subject` and cancels
    /// their waiting deliveries. Returns the number of events erased.
    async fn erase_subject(&self, tenant_id: &str, subject: &str) -> StoreResult<u64>;
}

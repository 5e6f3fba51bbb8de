//! The contract for deliveries: the queue the dispatcher works from, and what the API and the
//! console read and change.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::StoreResult;
use crate::models::{
    AttemptMinute, AttemptOutcome, AttemptRecord, ClaimedDelivery, DeliveryFilter, DeliveryRecord,
    Published, ReplaySelector,
};

/// The delivery queue as the dispatcher sees it: claiming, recording and releasing.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Leases up to `limit` due deliveries until `now + lease`, honouring each endpoint's ordering
    /// mode and concurrency limit. Expired leases (a node that died mid-attempt) are due again.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records one attempt and moves the delivery to its next state, and publishes the outcome's
    /// operational events in the same transaction (seq, deliveries and wake-ups as
    /// [`EventStore::publish`](crate::EventStore::publish) gives them), answering what
    /// publishing them did.
    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<Vec<Published>>;
    /// Gives a leased delivery back without counting an attempt (shutdown, rate limit).
    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()>;
    /// When the next delivery becomes due, if any is waiting (for sleeping until then).
    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>>;
    /// Deliveries waiting or in flight, across tenants (a gauge).
    async fn count_pending(&self) -> StoreResult<u64>;
}

/// Deliveries and their attempts as a tenant sees them: listed, retried and replayed.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    async fn get_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryRecord>>;
    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>>;
    /// Makes a finished or waiting delivery due now; `None` when it is not the tenant's, and
    /// unchanged when it is in flight.
    async fn retry_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeliveryRecord>>;
    /// Delivers events to one endpoint again; returns how many deliveries were made due.
    async fn replay(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        selector: &ReplaySelector,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;

    // --- the console ---
    /// The deliveries of one event (one per endpoint it went to), oldest first. The default walks
    /// the tenant's deliveries page by page; a backend overrides it with an indexed query.
    async fn list_event_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let mut found = Vec::new();
        let mut filter = DeliveryFilter {
            endpoint_id: None,
            state: None,
            after_id: None,
            limit: 500,
        };
        loop {
            let page = self.list_deliveries(tenant_id, &filter).await?;
            let is_last = page.len() < filter.limit;
            filter.after_id = page.last().map(|record| record.id.clone());
            found.extend(
                page.into_iter()
                    .filter(|record| record.event_id == event_id),
            );
            if is_last || filter.after_id.is_none() {
                return Ok(found);
            }
        }
    }
    // --- the console's overview (issue 15) ---
    /// The tenant's delivery attempts started at or after `since`, counted per minute (whole
    /// UTC minutes), oldest first; minutes without an attempt are left out.
    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<AttemptMinute>>;
}

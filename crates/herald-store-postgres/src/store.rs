//! The `Store` trait for [`PostgresStore`]: each method hands over to the resource file that holds its
//! queries (`tenants.rs`, `endpoints.rs`, `publish.rs`, ...), so this file is the table of where
//! each part of the contract lives.

use async_trait::async_trait;
use herald_store::models::{
    ApiKeyRecord, AttemptOutcome, AttemptRecord, ClaimedDelivery, CustomTypeRecord, DecisionRecord,
    DeliveryFilter, DeliveryRecord, EndpointRecord, EventFilter, HookRecord, KeyOwner,
    KeyRevocation, NewEvent, Published, ReplaySelector, SourceOutcome, SourceRecord, StoredEvent,
    Tenant,
};
use herald_store::ssf::{SsfQueuedSet, SsfReceiverRecord, SsfSigningKeyRecord, SsfStreamRecord};
use herald_store::{Store, StoreResult};
use time::{Duration, OffsetDateTime};

use crate::PostgresStore;

#[async_trait]
impl Store for PostgresStore {
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<Tenant> {
        self.insert_tenant(tenant).await
    }

    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>> {
        self.select_tenant(tenant_id).await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.select_tenants().await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        self.insert_api_key(key).await
    }

    async fn has_admin_key(&self) -> StoreResult<bool> {
        self.any_admin_key().await
    }

    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        self.find_and_note_api_key(key_hash, now).await
    }

    async fn list_api_keys(&self, owner: KeyOwner<'_>) -> StoreResult<Vec<ApiKeyRecord>> {
        self.select_api_keys(owner).await
    }

    async fn revoke_api_key(
        &self,
        owner: KeyOwner<'_>,
        key_id: &str,
        keep_an_admin_key: bool,
    ) -> StoreResult<KeyRevocation> {
        self.delete_api_key(owner, key_id, keep_an_admin_key).await
    }

    async fn revoke_generated_admin_keys(&self) -> StoreResult<u64> {
        self.delete_generated_admin_keys().await
    }

    async fn create_custom_type(&self, record: CustomTypeRecord) -> StoreResult<()> {
        self.insert_custom_type(record).await
    }

    async fn list_custom_types(
        &self,
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<CustomTypeRecord>> {
        self.select_custom_types(tenant_id).await
    }

    async fn create_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord> {
        self.insert_endpoint(endpoint).await
    }

    async fn get_endpoint(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> StoreResult<Option<EndpointRecord>> {
        self.select_endpoint(tenant_id, endpoint_id).await
    }

    async fn list_endpoints(&self, tenant_id: &str) -> StoreResult<Vec<EndpointRecord>> {
        self.select_endpoints(tenant_id).await
    }

    async fn update_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord> {
        self.change_endpoint(endpoint).await
    }

    async fn delete_endpoint(&self, tenant_id: &str, endpoint_id: &str) -> StoreResult<bool> {
        self.remove_endpoint(tenant_id, endpoint_id).await
    }

    async fn publish(
        &self,
        tenant_id: &str,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Published>> {
        self.append_events(tenant_id, events, now).await
    }

    async fn list_events(
        &self,
        tenant_id: &str,
        filter: &EventFilter,
    ) -> StoreResult<Vec<StoredEvent>> {
        self.select_events(tenant_id, filter).await
    }

    async fn get_event(&self, tenant_id: &str, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        self.select_event(tenant_id, event_id).await
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        self.lease_due(now, limit, lease).await
    }

    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<Vec<Published>> {
        self.attempts.submit(outcome).await
    }

    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()> {
        self.release_lease(delivery_id, next_attempt_at).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>> {
        self.earliest_due_at().await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.select_deliveries(tenant_id, filter).await
    }

    async fn get_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryRecord>> {
        self.select_delivery(tenant_id, delivery_id).await
    }

    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        self.select_attempts(tenant_id, delivery_id).await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeliveryRecord>> {
        self.make_due_again(tenant_id, delivery_id, now).await
    }

    async fn replay(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        selector: &ReplaySelector,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        self.replay_to_endpoint(tenant_id, endpoint_id, selector, now)
            .await
    }

    async fn count_pending(&self) -> StoreResult<u64> {
        self.count_unfinished().await
    }

    async fn create_hook(&self, hook: HookRecord) -> StoreResult<HookRecord> {
        self.insert_hook(hook).await
    }

    async fn list_hooks(&self, tenant_id: &str) -> StoreResult<Vec<HookRecord>> {
        self.select_hooks(tenant_id).await
    }

    async fn get_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<Option<HookRecord>> {
        self.select_hook(tenant_id, hook_id).await
    }

    async fn update_hook(&self, hook: HookRecord) -> StoreResult<HookRecord> {
        self.replace_hook(hook).await
    }

    async fn delete_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<bool> {
        self.remove_hook(tenant_id, hook_id).await
    }

    async fn record_decisions(&self, decisions: Vec<DecisionRecord>) -> StoreResult<()> {
        self.insert_decisions(decisions).await
    }

    async fn list_decisions(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DecisionRecord>> {
        self.select_decisions(tenant_id, after_id, limit).await
    }

    async fn create_source(&self, source: SourceRecord) -> StoreResult<SourceRecord> {
        self.insert_source(source).await
    }

    async fn get_source(
        &self,
        tenant_id: &str,
        source_id: &str,
    ) -> StoreResult<Option<SourceRecord>> {
        self.select_source(Some(tenant_id), source_id).await
    }

    async fn get_source_by_id(&self, source_id: &str) -> StoreResult<Option<SourceRecord>> {
        self.select_source(None, source_id).await
    }

    async fn list_sources(&self, tenant_id: &str) -> StoreResult<Vec<SourceRecord>> {
        self.select_sources(tenant_id).await
    }

    async fn update_source(&self, source: SourceRecord) -> StoreResult<SourceRecord> {
        self.change_source(source).await
    }

    async fn delete_source(&self, tenant_id: &str, source_id: &str) -> StoreResult<bool> {
        self.remove_source(tenant_id, source_id).await
    }

    async fn record_source_outcome(
        &self,
        source_id: &str,
        outcome: SourceOutcome,
    ) -> StoreResult<()> {
        self.add_source_outcome(source_id, outcome).await
    }

    async fn record_source_lease(
        &self,
        source_id: &str,
        lease_expires_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        self.set_source_lease(source_id, lease_expires_at).await
    }

    async fn remove_expired(&self, cutoff: OffsetDateTime, batch: usize) -> StoreResult<u64> {
        self.remove_expired_rows(cutoff, batch).await
    }

    async fn erase_subject(&self, tenant_id: &str, subject: &str) -> StoreResult<u64> {
        self.erase_subject_rows(tenant_id, subject).await
    }

    async fn list_event_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.select_event_deliveries(tenant_id, event_id).await
    }

    // --- the console's overview (issue 15), in attempts.rs ---
    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<herald_store::models::AttemptMinute>> {
        self.attempts_per_minute(tenant_id, since).await
    }

    // --- Shared Signals (issue 14), in ssf.rs ---
    async fn create_ssf_signing_key(&self, key: SsfSigningKeyRecord) -> StoreResult<()> {
        self.ssf_insert_key(key).await
    }

    async fn list_ssf_signing_keys(
        &self,
        tenant_id: &str,
    ) -> StoreResult<Vec<SsfSigningKeyRecord>> {
        self.ssf_select_keys(tenant_id).await
    }

    async fn retire_ssf_signing_keys(
        &self,
        tenant_id: &str,
        keep_kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<u64> {
        self.ssf_retire_keys(tenant_id, keep_kid, retired_at).await
    }

    async fn create_ssf_receiver(&self, receiver: SsfReceiverRecord) -> StoreResult<()> {
        self.ssf_insert_receiver(receiver).await
    }

    async fn list_ssf_receivers(&self, tenant_id: &str) -> StoreResult<Vec<SsfReceiverRecord>> {
        self.ssf_select_receivers(Some(tenant_id), None).await
    }

    async fn find_ssf_receiver_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<SsfReceiverRecord>> {
        Ok(self
            .ssf_select_receivers(None, Some(token_hash))
            .await?
            .into_iter()
            .next())
    }

    async fn create_ssf_stream(&self, stream: SsfStreamRecord) -> StoreResult<()> {
        self.ssf_insert_stream(stream).await
    }

    async fn list_ssf_streams(&self, tenant_id: &str) -> StoreResult<Vec<SsfStreamRecord>> {
        self.ssf_select_streams(tenant_id).await
    }

    async fn update_ssf_stream(&self, stream: SsfStreamRecord) -> StoreResult<()> {
        self.ssf_change_stream(stream).await
    }

    async fn delete_ssf_stream(&self, tenant_id: &str, stream_id: &str) -> StoreResult<bool> {
        self.ssf_remove_stream(tenant_id, stream_id).await
    }

    async fn add_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<()> {
        self.ssf_insert_subject(stream_id, subject_key).await
    }

    async fn remove_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<bool> {
        self.ssf_delete_subject(stream_id, subject_key).await
    }

    async fn list_ssf_subjects(&self, stream_id: &str) -> StoreResult<Vec<String>> {
        self.ssf_select_subjects(stream_id).await
    }

    async fn enqueue_ssf_sets(&self, sets: Vec<SsfQueuedSet>) -> StoreResult<()> {
        self.ssf_enqueue(sets).await
    }

    async fn peek_ssf_sets(&self, stream_id: &str, max: usize) -> StoreResult<Vec<SsfQueuedSet>> {
        self.ssf_peek(stream_id, max).await
    }

    async fn ack_ssf_sets(&self, stream_id: &str, jtis: Vec<String>) -> StoreResult<u64> {
        self.ssf_ack(stream_id, jtis).await
    }

    async fn clear_ssf_queue(&self, stream_id: &str) -> StoreResult<u64> {
        self.ssf_clear_queue(stream_id).await
    }
    // --- Standard Webhooks `v1a` keys (issue 14), in v1a.rs ---
    async fn retire_ssf_signing_key(
        &self,
        tenant_id: &str,
        kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.v1a_retire_key(tenant_id, kid, retired_at).await
    }

    // --- Shared Signals durable delivery (issue 14), in ssf_delivery.rs ---
    async fn list_ssf_streams_behind(
        &self,
        limit: usize,
    ) -> StoreResult<Vec<herald_store::ssf::SsfStreamBehind>> {
        self.ssf_streams_behind(limit).await
    }

    async fn advance_ssf_stream(
        &self,
        stream_id: &str,
        from_seq: i64,
        to_seq: i64,
        sets: Vec<SsfQueuedSet>,
    ) -> StoreResult<bool> {
        self.ssf_advance(stream_id, from_seq, to_seq, sets).await
    }

    async fn lease_ssf_push_heads(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> StoreResult<Vec<herald_store::ssf::SsfPushHead>> {
        self.ssf_lease_push_heads(now, lease_until, limit).await
    }

    async fn record_ssf_push_attempt(
        &self,
        attempt: herald_store::ssf::SsfPushAttemptRecord,
    ) -> StoreResult<()> {
        self.ssf_record_push_attempt(attempt).await
    }

    async fn schedule_ssf_queue(
        &self,
        stream_id: &str,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        self.ssf_schedule_queue(stream_id, next_attempt_at).await
    }

    async fn list_ssf_push_attempts(
        &self,
        tenant_id: &str,
        stream_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<herald_store::ssf::SsfPushAttemptRecord>> {
        self.ssf_select_push_attempts(tenant_id, stream_id, limit)
            .await
    }

    async fn remove_expired_ssf_push_attempts(
        &self,
        cutoff: OffsetDateTime,
        batch: usize,
    ) -> StoreResult<u64> {
        self.ssf_remove_expired_push_attempts(cutoff, batch).await
    }
}

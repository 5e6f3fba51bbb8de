//! The contract for Shared Signals (issue 14): signing keys, receivers, streams, subjects and
//! the poll queue; the SSF worker's cursors and pushes; and the Standard Webhooks `v1a` keys that
//! share the signing key table.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::StoreResult;
use crate::ssf::{
    SsfPushAttemptRecord, SsfPushHead, SsfQueuedSet, SsfReceiverRecord, SsfReceiverSelector,
    SsfSigningKeyRecord, SsfStreamBehind, SsfStreamRecord,
};

/// Shared Signals rows: signing keys, receivers, streams, subjects and the poll queue.
#[async_trait]
pub trait SsfStore: Send + Sync {
    /// Stores a new signing key; `NotFound` when the tenant does not exist.
    async fn create_ssf_signing_key(&self, key: SsfSigningKeyRecord) -> StoreResult<()>;
    /// The tenant's signing keys, newest first.
    async fn list_ssf_signing_keys(&self, tenant_id: &str)
    -> StoreResult<Vec<SsfSigningKeyRecord>>;
    /// Marks every key of the tenant other than `keep_kid` that is not retired yet as retired at
    /// `retired_at`. Returns how many were retired.
    async fn retire_ssf_signing_keys(
        &self,
        tenant_id: &str,
        keep_kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// Stores a new receiver; `NotFound` when the tenant does not exist.
    async fn create_ssf_receiver(&self, receiver: SsfReceiverRecord) -> StoreResult<()>;
    /// The receivers `selector` picks, oldest first.
    async fn select_ssf_receivers(
        &self,
        selector: SsfReceiverSelector<'_>,
    ) -> StoreResult<Vec<SsfReceiverRecord>>;
    /// The tenant's receivers, oldest first.
    async fn list_ssf_receivers(&self, tenant_id: &str) -> StoreResult<Vec<SsfReceiverRecord>> {
        self.select_ssf_receivers(SsfReceiverSelector::Tenant(tenant_id))
            .await
    }
    /// The receiver whose token hashes to `token_hash`.
    async fn find_ssf_receiver_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<SsfReceiverRecord>> {
        let found = self
            .select_ssf_receivers(SsfReceiverSelector::TokenHash(token_hash))
            .await?;
        Ok(found.into_iter().next())
    }
    /// Stores a new stream; `NotFound` when the tenant does not exist.
    async fn create_ssf_stream(&self, stream: SsfStreamRecord) -> StoreResult<()>;
    /// The tenant's streams, oldest first.
    async fn list_ssf_streams(&self, tenant_id: &str) -> StoreResult<Vec<SsfStreamRecord>>;
    /// Replaces the stream's config, status, reason and `updated_at`; `NotFound` when it is not the
    /// tenant's.
    async fn update_ssf_stream(&self, stream: SsfStreamRecord) -> StoreResult<()>;
    /// Deletes the stream with its subjects and queued SETs.
    async fn delete_ssf_stream(&self, tenant_id: &str, stream_id: &str) -> StoreResult<bool>;
    /// Adds a subject (its canonical key) to a stream; adding it twice is no error.
    async fn add_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<()>;
    async fn remove_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<bool>;
    async fn list_ssf_subjects(&self, stream_id: &str) -> StoreResult<Vec<String>>;
    /// Queues SETs for poll streams; a `(stream_id, jti)` queued already is left as it was.
    async fn enqueue_ssf_sets(&self, sets: Vec<SsfQueuedSet>) -> StoreResult<()>;
    /// Up to `max` queued SETs of the stream, oldest first. They stay queued until acknowledged.
    async fn peek_ssf_sets(&self, stream_id: &str, max: usize) -> StoreResult<Vec<SsfQueuedSet>>;
    /// Removes the acknowledged SETs; returns how many were queued.
    async fn ack_ssf_sets(&self, stream_id: &str, jtis: Vec<String>) -> StoreResult<u64>;
    /// Drops every queued SET of the stream (a disabled stream keeps nothing).
    async fn clear_ssf_queue(&self, stream_id: &str) -> StoreResult<u64>;
}

/// Shared Signals durable delivery: the SSF worker's cursors and pushes.
#[async_trait]
pub trait SsfDeliveryStore: Send + Sync {
    /// Streams that are not disabled and whose cursor is behind their tenant's log, at most `limit`.
    async fn list_ssf_streams_behind(&self, limit: usize) -> StoreResult<Vec<SsfStreamBehind>>;
    /// In one transaction: moves the stream's cursor from `from_seq` to `to_seq` and queues
    /// `sets` (due for a push at once). Changes nothing and answers `false` when the cursor is no
    /// longer at `from_seq` (another worker did it) or the stream is disabled or gone.
    async fn advance_ssf_stream(
        &self,
        stream_id: &str,
        from_seq: i64,
        to_seq: i64,
        sets: Vec<SsfQueuedSet>,
    ) -> StoreResult<bool>;
    /// Leases up to `limit` enabled streams whose queue head is due at `now` until `lease_until`
    /// (a stream leased to another worker is skipped), each with its head SET.
    async fn lease_ssf_push_heads(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> StoreResult<Vec<SsfPushHead>>;
    /// In one transaction: stores the attempt, removes the SET or schedules its next push by the
    /// outcome, and releases the stream's lease.
    async fn record_ssf_push_attempt(&self, attempt: SsfPushAttemptRecord) -> StoreResult<()>;
    /// Sets when every SET queued on the stream is next pushed (`None`: never, they wait for a
    /// poll) and releases the stream's lease.
    async fn schedule_ssf_queue(
        &self,
        stream_id: &str,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> StoreResult<()>;
    /// The stream's push attempts, newest first.
    async fn list_ssf_push_attempts(
        &self,
        tenant_id: &str,
        stream_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<SsfPushAttemptRecord>>;
    /// Removes up to `batch` push attempts made before `cutoff` (retention); returns how many.
    async fn remove_expired_ssf_push_attempts(
        &self,
        cutoff: OffsetDateTime,
        batch: usize,
    ) -> StoreResult<u64>;
}

/// Standard Webhooks `v1a` keys (issue 14): a tenant's EdDSA keys live in the SSF key store but
/// rotate apart from its SET keys, so one key is retired at a time.
#[async_trait]
pub trait V1aKeyStore: Send + Sync {
    /// Marks one key of the tenant retired at `retired_at`, if it exists and is not retired yet.
    /// Returns whether it was retired; another tenant's key is absent (`false`).
    async fn retire_ssf_signing_key(
        &self,
        tenant_id: &str,
        kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<bool>;
}

//! Herald's storage boundary: the [`Store`] trait every backend implements, the row models it
//! speaks in, and the [`conformance`] suite that runs the same behaviour tests on each backend.
//!
//! Row models are plain Rust: they do not derive `Serialize`; the API crate converts them into
//! its own wire types.

pub mod conformance;
pub mod encoding;
pub mod models;
pub mod operational;
pub mod planner;
pub mod ssf;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::ssf::{SsfQueuedSet, SsfReceiverRecord, SsfSigningKeyRecord, SsfStreamRecord};

use crate::models::{
    ApiKeyRecord, AttemptOutcome, AttemptRecord, ClaimedDelivery, CustomTypeRecord, DecisionRecord,
    DeliveryFilter, DeliveryRecord, EndpointRecord, EventFilter, HookRecord, KeyOwner,
    KeyRevocation, NewEvent, Published, ReplaySelector, SourceOutcome, SourceRecord, StoredEvent,
    Tenant,
};

/// What went wrong in storage. Backend detail is kept for the logs; callers decide by kind.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A row with this key exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// The row refers to something that is not there (a tenant, an endpoint).
    #[error("{0} not found")]
    NotFound(String),
    /// The database cannot be reached or is shutting down; the request may be retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A change, possibly made by another node, that node-local caches must notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeNotice {
    /// The tenant's blocking hooks changed.
    Hooks { tenant_id: String },
    /// Something changed that this version cannot name: forget everything cached.
    MaybeMissed,
    /// The node stopped hearing notices (its listening connection was lost): until
    /// [`ChangeNotice::ListenerUp`], nothing cached can be trusted, nor should anything be cached.
    ListenerDown,
    /// The node hears notices again; what was cached before may be stale.
    ListenerUp,
    /// SETs were queued on this Shared Signals stream: long polls of it look again.
    Ssf { stream_id: String },
}

/// What a node does with each [`ChangeNotice`].
pub type ChangeHandler = std::sync::Arc<dyn Fn(ChangeNotice) + Send + Sync>;

/// Durable state of a Herald installation. Every method that takes a `tenant_id` sees only that
/// tenant's rows: a row of another tenant is reported as absent.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    // --- tenants and keys ---
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<Tenant>;
    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()>;
    /// Whether any admin key (a key without a tenant) is stored.
    async fn has_admin_key(&self) -> StoreResult<bool>;
    /// The key whose SHA-256 hash is `key_hash`, as the database has it now (a revoked key is
    /// absent at once, on every node), noting its use at `now` when
    /// [`ApiKeyRecord::use_is_worth_recording`] says so. The record returned carries that use.
    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<ApiKeyRecord>>;
    /// The owner's keys, oldest first.
    async fn list_api_keys(&self, owner: KeyOwner<'_>) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Deletes one of the owner's keys. With `keep_an_admin_key`, the last admin key is kept
    /// (checked in the same transaction, so two revocations cannot remove the last two).
    async fn revoke_api_key(
        &self,
        owner: KeyOwner<'_>,
        key_id: &str,
        keep_an_admin_key: bool,
    ) -> StoreResult<KeyRevocation>;
    /// Deletes the admin keys made at first start; returns how many there were.
    async fn revoke_generated_admin_keys(&self) -> StoreResult<u64>;

    // --- custom event types ---
    async fn create_custom_type(&self, record: CustomTypeRecord) -> StoreResult<()>;
    async fn list_custom_types(
        &self,
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<CustomTypeRecord>>;

    // --- endpoints ---
    async fn create_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord>;
    async fn get_endpoint(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> StoreResult<Option<EndpointRecord>>;
    async fn list_endpoints(&self, tenant_id: &str) -> StoreResult<Vec<EndpointRecord>>;
    /// Replaces the endpoint's settings; `NotFound` when it is not the tenant's.
    async fn update_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord>;
    /// Removes the endpoint with its deliveries and attempts; false when there was none.
    async fn delete_endpoint(&self, tenant_id: &str, endpoint_id: &str) -> StoreResult<bool>;

    // --- the event log ---
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

    // --- deliveries ---
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
    /// [`Store::publish`] gives them), answering what publishing them did.
    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<Vec<Published>>;
    /// Gives a leased delivery back without counting an attempt (shutdown, rate limit).
    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()>;
    /// When the next delivery becomes due, if any is waiting (for sleeping until then).
    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>>;
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
    /// Deliveries waiting or in flight, across tenants (a gauge).
    async fn count_pending(&self) -> StoreResult<u64>;

    // --- blocking hooks and their decisions ---
    async fn create_hook(&self, hook: HookRecord) -> StoreResult<HookRecord>;
    /// The tenant's hooks, by event type, then position, then creation.
    async fn list_hooks(&self, tenant_id: &str) -> StoreResult<Vec<HookRecord>>;
    async fn get_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<Option<HookRecord>>;
    /// Replaces the hook's settings; `NotFound` when it is not the tenant's.
    async fn update_hook(&self, hook: HookRecord) -> StoreResult<HookRecord>;
    async fn delete_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<bool>;
    async fn record_decisions(&self, decisions: Vec<DecisionRecord>) -> StoreResult<()>;
    /// The tenant's decisions made after `after_id` (a cursor), oldest first.
    async fn list_decisions(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DecisionRecord>>;

    // --- sources (inbound connections, one per vendor) ---
    /// Stores a new source; `NotFound` when the tenant does not exist.
    async fn create_source(&self, source: SourceRecord) -> StoreResult<SourceRecord>;
    async fn get_source(
        &self,
        tenant_id: &str,
        source_id: &str,
    ) -> StoreResult<Option<SourceRecord>>;
    /// The source by id alone, for its ingest URL (which carries no tenant).
    async fn get_source_by_id(&self, source_id: &str) -> StoreResult<Option<SourceRecord>>;
    /// The tenant's sources, oldest first.
    async fn list_sources(&self, tenant_id: &str) -> StoreResult<Vec<SourceRecord>>;
    /// Replaces the source's settings (name, credentials, accepted topics, `updated_at`); its
    /// counters, errors and lease are left as they are. `NotFound` when it is not the tenant's.
    async fn update_source(&self, source: SourceRecord) -> StoreResult<SourceRecord>;
    async fn delete_source(&self, tenant_id: &str, source_id: &str) -> StoreResult<bool>;
    /// Adds one request's outcome to the source's counters and last errors, atomically (two
    /// concurrent requests both count). A source deleted meanwhile is ignored.
    async fn record_source_outcome(
        &self,
        source_id: &str,
        outcome: SourceOutcome,
    ) -> StoreResult<()>;
    /// Notes the WebSub lease the hub confirmed (`None` after an unsubscription).
    async fn record_source_lease(
        &self,
        source_id: &str,
        lease_expires_at: Option<OffsetDateTime>,
    ) -> StoreResult<()>;

    // --- retention and erasure ---
    /// Removes up to `batch` events received before `cutoff`, with their deliveries and attempts,
    /// and up to `batch` hook decisions made before it.
    async fn remove_expired(&self, cutoff: OffsetDateTime, batch: usize) -> StoreResult<u64>;
    /// Empties the payload, context and producer fields of every event of `subject` and cancels
    /// their waiting deliveries. Returns the number of events erased.
    async fn erase_subject(&self, tenant_id: &str, subject: &str) -> StoreResult<u64>;

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
    // --- Shared Signals (issue 14): signing keys, receivers, streams, subjects, poll queue ---
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
    /// The tenant's receivers, oldest first.
    async fn list_ssf_receivers(&self, tenant_id: &str) -> StoreResult<Vec<SsfReceiverRecord>>;
    /// The receiver whose token hashes to `token_hash`.
    async fn find_ssf_receiver_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<SsfReceiverRecord>>;
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

    // --- Shared Signals durable delivery (issue 14): the SSF worker's cursors and pushes ---
    /// Streams that are not disabled and whose cursor is behind their tenant's log, at most `limit`.
    async fn list_ssf_streams_behind(
        &self,
        limit: usize,
    ) -> StoreResult<Vec<crate::ssf::SsfStreamBehind>>;
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
    ) -> StoreResult<Vec<crate::ssf::SsfPushHead>>;
    /// In one transaction: stores the attempt, removes the SET or schedules its next push by the
    /// outcome, and releases the stream's lease.
    async fn record_ssf_push_attempt(
        &self,
        attempt: crate::ssf::SsfPushAttemptRecord,
    ) -> StoreResult<()>;
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
    ) -> StoreResult<Vec<crate::ssf::SsfPushAttemptRecord>>;
    /// Removes up to `batch` push attempts made before `cutoff` (retention); returns how many.
    async fn remove_expired_ssf_push_attempts(
        &self,
        cutoff: OffsetDateTime,
        batch: usize,
    ) -> StoreResult<u64>;
    // --- the console's overview (issue 15) ---
    /// The tenant's delivery attempts started at or after `since`, counted per minute (whole
    /// UTC minutes), oldest first; minutes without an attempt are left out.
    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<crate::models::AttemptMinute>>;
    // --- Standard Webhooks `v1a` keys (issue 14): a tenant's EdDSA keys live in the SSF key
    // store but rotate apart from its SET keys, so one key is retired at a time ---
    /// Marks one key of the tenant retired at `retired_at`, if it exists and is not retired yet.
    /// Returns whether it was retired; another tenant's key is absent (`false`).
    async fn retire_ssf_signing_key(
        &self,
        tenant_id: &str,
        kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<bool>;
}

// --- issue 17 (seams): opening a backend ---

/// Keeps a backend listening for other nodes' changes until it is dropped.
pub type ChangeListener = Box<dyn std::any::Any + Send + Sync>;

/// A storage backend as the binary runs it: its store, and how this node hears of the work and
/// changes other nodes sharing the database commit. Opening (which brings the schema up to date)
/// is the backend's own constructor; everything after it goes through this trait, so the binary
/// looks at the kind of database in one place only.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The store, shared.
    fn store(&self) -> std::sync::Arc<dyn Store>;

    /// Wakes `wakeup` whenever any node makes delivery work due, and hands `on_change` what
    /// node-local caches must notice, until the returned listener is dropped. `None` when no
    /// other node can share the database (SQLite: this process sees every change itself).
    async fn listen_for_changes(
        &self,
        wakeup: std::sync::Arc<tokio::sync::Notify>,
        on_change: ChangeHandler,
    ) -> StoreResult<Option<ChangeListener>>;
}

//! Herald's scale-out store: one PostgreSQL database shared by several Herald nodes, behind the
//! [`Store`] trait.
//!
//! It behaves as the SQLite backend does (the conformance suite pins both) and adds what sharing
//! needs:
//!
//! - **Seq in commit order.** A publish locks its tenant's row, which holds the counter, until it
//!   commits; see "Seq across nodes" in `docs/ARCHITECTURE.md`. The publishes waiting on one node
//!   share a transaction (`group_commit.rs`, `publish.rs`).
//! - **Claims with leases** (`FOR UPDATE SKIP LOCKED`), endpoint by endpoint under per-endpoint
//!   advisory locks, with ordering, concurrency and rate limits that hold across nodes: see
//!   `claims.rs`.
//! - **Wakeups** with `LISTEN`/`NOTIFY` instead of polling: see `wakeups.rs` and
//!   [`PostgresStore::listen_for_wakeups`].
//!
//! Every transaction runs at `READ COMMITTED`: each statement sees what committed before it
//! started, which is what lets a statement that follows a lock see the lock holder's work.
//! Connections come from a `deadpool` pool; no TLS yet.

mod attempts;
mod claims;
mod group_commit;
pub mod history;
mod hooks;
mod keys;
mod publish;
mod rows;
mod schema;
mod sources;
mod ssf;
mod ssf_delivery;
mod wakeups;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction,
};
use futures_util::future::join_all;
use herald_catalog::filter::matches_any;
use herald_core::delivery::DeliveryState;
use herald_core::ids::{prefix, prefixed_id};
use herald_store::models::{
    ApiKeyRecord, AttemptOutcome, AttemptRecord, ClaimedDelivery, CustomTypeRecord, DecisionRecord,
    DeliveryFilter, DeliveryRecord, EndpointRecord, EventFilter, HookRecord, KeyOwner,
    KeyRevocation, NewEvent, Published, ReplaySelector, SourceOutcome, SourceRecord, StoredEvent,
    Tenant,
};
use herald_store::ssf::{SsfQueuedSet, SsfReceiverRecord, SsfSigningKeyRecord, SsfStreamRecord};
use herald_store::{Store, StoreError, StoreResult};
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use crate::attempts::Attempts;
use crate::group_commit::GroupCommitter;
use crate::publish::Publishes;
use crate::rows::{
    ATTEMPT_COLUMNS, CUSTOM_TYPE_COLUMNS, DECISION_COLUMNS, DELIVERY_COLUMNS, ENDPOINT_COLUMNS,
    EVENT_COLUMNS, EndpointParams, TENANT_COLUMNS, get, json_text, map_backend, map_pool, ms,
    read_all, read_attempt, read_custom_type, read_decision, read_delivery, read_endpoint,
    read_event, read_tenant, to_i64,
};
pub use crate::wakeups::WakeupListener;

/// How long a request waits for a free pooled connection before the database counts as
/// unavailable: short, so that while PostgreSQL is down a publish is answered 503 promptly
/// instead of hanging.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long opening one connection may take when the URL does not say.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

const UNFINISHED: &str = "('pending','scheduled','in_flight')";

/// Publish committers per node. One would do for throughput (a group takes every queued
/// publish); several keep tenants from queueing behind one another's row locks.
const PUBLISH_COMMITTERS: usize = 4;

/// The PostgreSQL store. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// For the dedicated listening connection, which lives outside the pool.
    config: tokio_postgres::Config,
    /// Rotates which endpoint claims first, so endpoints take turns when room is short.
    claim_turns: Arc<AtomicUsize>,
    /// Publishes wait here for the next group commit (see `group_commit.rs`), each tenant always
    /// in the same one of these committers: a tenant whose row another session keeps locked
    /// holds up only the tenants that share its committer.
    publishes: Arc<[GroupCommitter<Publishes>]>,
    /// Attempt outcomes wait here for the next group commit.
    attempts: Arc<GroupCommitter<Attempts>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: it is not printed.
        formatter
            .debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// Parses a `postgres://` URL (or a `key=value` connection string). The URL is never repeated in
/// an error, as it may hold a password.
fn parse_config(url: &str) -> StoreResult<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
        StoreError::Backend(format!("the PostgreSQL connection URL is invalid: {error}"))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("herald");
    }
    // Every execution is planned for its own parameters. A statement prepared while its tables
    // were still empty (a new installation, a fresh test database) would otherwise keep the
    // generic plan made for an empty table, such as scanning all of a tenant's events through
    // the wrong index, until the next ANALYZE: measured at 10 ms per id lookup after 20,000
    // events, and half the delivery rate (BENCHMARKS.md). Statements are written per group and
    // per claim, so the planning is paid once per many rows.
    // Options the URL gives are kept; a plan_cache_mode among them wins.
    let options = match config.get_options() {
        Some(given) if given.contains("plan_cache_mode") => None,
        Some(given) => Some(format!("{given} -c plan_cache_mode=force_custom_plan")),
        None => Some("-c plan_cache_mode=force_custom_plan".to_owned()),
    };
    if let Some(options) = options {
        config.options(&options);
    }
    Ok(config)
}

/// Brings the database's schema up to date (for `herald migrate`); safe to run from several
/// nodes at once.
pub async fn migrate(url: &str) -> StoreResult<()> {
    migrate_with(&parse_config(url)?).await
}

async fn migrate_with(config: &tokio_postgres::Config) -> StoreResult<()> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(map_backend)?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %map_backend(error), "the migration connection ended");
        }
    });
    let migrated = schema::migrate(&mut client).await;
    // Dropping the client closes the connection, which ends the driver task.
    drop(client);
    let _ = driver.await;
    migrated
}

impl PostgresStore {
    /// Connects to the database at `url`, brings its schema up to date, and keeps a pool of at
    /// most `pool_size` connections.
    pub async fn connect(url: &str, pool_size: usize) -> StoreResult<Self> {
        let config = parse_config(url)?;
        migrate_with(&config).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A connection is reused after a cheap liveness check, not a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|error| StoreError::Backend(format!("connection pool: {error}")))?;
        Ok(PostgresStore {
            publishes: (0..PUBLISH_COMMITTERS)
                .map(|_| GroupCommitter::start(pool.clone()))
                .collect(),
            attempts: Arc::new(GroupCommitter::start(pool.clone())),
            pool,
            config,
            claim_turns: Arc::default(),
        })
    }

    /// Wakes `wakeup` whenever any node (this one included) commits a change in due delivery
    /// work: a publish that created deliveries, a retry, a replay, a release, a lease, a scheduled
    /// retry, an endpoint update. Notifications arrive until the returned listener is dropped.
    /// When this returns, the listener is already subscribed.
    pub async fn listen_for_wakeups(
        &self,
        wakeup: Arc<Notify>,
        on_change: herald_store::ChangeHandler,
    ) -> StoreResult<WakeupListener> {
        WakeupListener::start(self.config.clone(), wakeup, on_change).await
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(map_pool)
    }
}

// --- small helpers over prepared (and per-connection cached) statements ---

pub(crate) async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client.query(&statement, params).await.map_err(map_backend)
}

pub(crate) async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client
        .query_opt(&statement, params)
        .await
        .map_err(map_backend)
}

pub(crate) async fn query_one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Row> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client
        .query_one(&statement, params)
        .await
        .map_err(map_backend)
}

pub(crate) async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client
        .execute(&statement, params)
        .await
        .map_err(map_backend)
}

/// Prepares `sql` on the connection, or finds it in the connection's cache. Statements to be sent
/// together are prepared first, so that they go out in the order written.
pub(crate) async fn prepare(transaction: &Transaction<'_>, sql: &str) -> StoreResult<Statement> {
    transaction.prepare_cached(sql).await.map_err(map_backend)
}

/// Announces, at commit, that due work changed (see `wakeups.rs`).
async fn notify(transaction: &Transaction<'_>) -> StoreResult<()> {
    execute(transaction, wakeups::NOTIFY_STATEMENT, &[]).await?;
    Ok(())
}

/// Sends `statements` together (tokio-postgres pipelines them on the connection) and waits for
/// them all; the server runs them in the order given. The first failure aborts the transaction,
/// and every later statement fails with it.
pub(crate) async fn execute_pipelined(
    transaction: &Transaction<'_>,
    statements: &[(&Statement, Vec<&(dyn ToSql + Sync)>)],
) -> StoreResult<()> {
    for result in join_all(
        statements
            .iter()
            .map(|(statement, params)| transaction.execute(*statement, params)),
    )
    .await
    {
        result.map_err(map_backend)?;
    }
    Ok(())
}

/// One delivery to create: the event it carries, for one endpoint.
struct NewDelivery<'a> {
    tenant_id: &'a str,
    endpoint_id: &'a str,
    event_seq: i64,
    event_id: &'a str,
    event_type: &'a str,
    subject: Option<&'a str>,
    /// When it was made, which is also when it is first due.
    created_at: OffsetDateTime,
}

/// Creates pending deliveries, each due when it was made, in one statement. `unnest` keeps
/// array order, so the rows get ascending `rowid_` in the order given.
const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq,
         event_id, event_type, subject, state, n_attempts, next_attempt_at, created_at,
         updated_at)
     SELECT d.id, d.tenant_id, d.endpoint_id, d.event_seq, d.event_id, d.event_type, d.subject,
         'pending', 0, d.created_at, d.created_at, d.created_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
         $7::text[], $8::int8[])
         AS d(id, tenant_id, endpoint_id, event_seq, event_id, event_type, subject, created_at)";

/// The parameters of [`INSERT_DELIVERIES`], column by column, with a new id for each delivery.
struct DeliveryColumns<'a> {
    ids: Vec<String>,
    tenant_ids: Vec<&'a str>,
    endpoint_ids: Vec<&'a str>,
    event_seqs: Vec<i64>,
    event_ids: Vec<&'a str>,
    event_types: Vec<&'a str>,
    subjects: Vec<Option<&'a str>>,
    created_at: Vec<i64>,
}

impl<'a> DeliveryColumns<'a> {
    fn of(deliveries: &[NewDelivery<'a>]) -> Self {
        DeliveryColumns {
            ids: deliveries
                .iter()
                .map(|_| prefixed_id(prefix::DELIVERY))
                .collect(),
            tenant_ids: deliveries.iter().map(|d| d.tenant_id).collect(),
            endpoint_ids: deliveries.iter().map(|d| d.endpoint_id).collect(),
            event_seqs: deliveries.iter().map(|d| d.event_seq).collect(),
            event_ids: deliveries.iter().map(|d| d.event_id).collect(),
            event_types: deliveries.iter().map(|d| d.event_type).collect(),
            subjects: deliveries.iter().map(|d| d.subject).collect(),
            created_at: deliveries.iter().map(|d| ms(d.created_at)).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.tenant_ids,
            &self.endpoint_ids,
            &self.event_seqs,
            &self.event_ids,
            &self.event_types,
            &self.subjects,
            &self.created_at,
        ]
    }
}

async fn endpoint_by_id<C: GenericClient>(
    client: &C,
    tenant_id: &str,
    endpoint_id: &str,
) -> StoreResult<Option<EndpointRecord>> {
    query_opt(
        client,
        &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = $1 AND id = $2"),
        &[&tenant_id, &endpoint_id],
    )
    .await?
    .as_ref()
    .map(read_endpoint)
    .transpose()
}

async fn delivery_by_id<C: GenericClient>(
    client: &C,
    tenant_id: &str,
    delivery_id: &str,
) -> StoreResult<Option<DeliveryRecord>> {
    query_opt(
        client,
        &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2"),
        &[&tenant_id, &delivery_id],
    )
    .await?
    .as_ref()
    .map(read_delivery)
    .transpose()
}

pub(crate) async fn tenant_exists<C: GenericClient>(
    client: &C,
    tenant_id: &str,
) -> StoreResult<bool> {
    Ok(
        query_opt(client, "SELECT 1 FROM tenants WHERE id = $1", &[&tenant_id])
            .await?
            .is_some(),
    )
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<Tenant> {
        let client = self.client().await?;
        let inserted = execute(
            &client,
            "INSERT INTO tenants (id, name, issuer, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING",
            &[
                &tenant.id,
                &tenant.name,
                &tenant.issuer,
                &ms(tenant.created_at),
            ],
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("tenant {:?}", tenant.id)));
        }
        Ok(tenant)
    }

    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"),
            &[&tenant_id],
        )
        .await?
        .as_ref()
        .map(read_tenant)
        .transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let client = self.client().await?;
        // Byte order, as SQLite sorts, whatever the database's collation.
        let rows = query(
            &client,
            &format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id COLLATE \"C\""),
            &[],
        )
        .await?;
        read_all(&rows, read_tenant)
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
        let client = self.client().await?;
        let inserted = execute(
            &client,
            &format!(
                "INSERT INTO custom_types ({CUSTOM_TYPE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant_id, name) DO NOTHING"
            ),
            &[
                &record.tenant_id,
                &record.name,
                &record.description,
                &record.module,
                &record.subject_pointer,
                &json_text(&record.schema),
                &record.example.as_ref().map(json_text),
                &ms(record.created_at),
            ],
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "event type {:?}",
                record.name
            )));
        }
        Ok(())
    }

    async fn list_custom_types(
        &self,
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<CustomTypeRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {CUSTOM_TYPE_COLUMNS} FROM custom_types
                 WHERE $1::text IS NULL OR tenant_id = $1
                 ORDER BY tenant_id COLLATE \"C\", name COLLATE \"C\""
            ),
            &[&tenant_id],
        )
        .await?;
        read_all(&rows, read_custom_type)
    }

    async fn create_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord> {
        let client = self.client().await?;
        if !tenant_exists(&client, &endpoint.tenant_id).await? {
            return Err(StoreError::NotFound(format!(
                "tenant {:?}",
                endpoint.tenant_id
            )));
        }
        let params = EndpointParams::new(&endpoint)?;
        execute(
            &client,
            &format!(
                "INSERT INTO endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7,
                 $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
            ),
            &params.values(&endpoint),
        )
        .await?;
        Ok(endpoint)
    }

    async fn get_endpoint(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> StoreResult<Option<EndpointRecord>> {
        let client = self.client().await?;
        endpoint_by_id(&client, tenant_id, endpoint_id).await
    }

    async fn list_endpoints(&self, tenant_id: &str) -> StoreResult<Vec<EndpointRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = $1
                 ORDER BY created_at, id COLLATE \"C\""
            ),
            &[&tenant_id],
        )
        .await?;
        read_all(&rows, read_endpoint)
    }

    async fn update_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let params = EndpointParams::new(&endpoint)?;
        let updated = execute(
            &transaction,
            "UPDATE endpoints SET url = $3, description = $4, filters = $5, format = $6,
                 secret = $7, previous_secret = $8, previous_secret_expires_at = $9,
                 ordering = $10, retry_schedule_s = $11, timeout_ms = $12, max_concurrency = $13,
                 rate_limit_per_s = $14, headers = $15, enabled = $16, disabled_reason = $17,
                 failing_since = $18, created_at = $19, updated_at = $20, paused = $21
             WHERE id = $1 AND tenant_id = $2",
            &params.values(&endpoint),
        )
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!("endpoint {:?}", endpoint.id)));
        }
        // Re-enabling, resuming, a looser ordering or a higher limit can make waiting work due,
        // and every node must hear of it: the resumed queue drains on all of them.
        if endpoint.enabled && !endpoint.paused {
            notify(&transaction).await?;
        }
        transaction.commit().await.map_err(map_backend)?;
        Ok(endpoint)
    }

    async fn delete_endpoint(&self, tenant_id: &str, endpoint_id: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let removed = execute(
            &client,
            "DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2",
            &[&tenant_id, &endpoint_id],
        )
        .await?;
        Ok(removed > 0)
    }

    async fn publish(
        &self,
        tenant_id: &str,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Published>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        tenant_id.hash(&mut hasher);
        let committer = hasher.finish() as usize % self.publishes.len();
        self.publishes[committer]
            .submit(publish::Request {
                tenant_id: tenant_id.to_owned(),
                events,
                now,
            })
            .await
    }

    async fn list_events(
        &self,
        tenant_id: &str,
        filter: &EventFilter,
    ) -> StoreResult<Vec<StoredEvent>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE tenant_id = $1 AND seq > $2
                   AND ($3::text IS NULL OR event_type = $3)
                   AND ($4::text IS NULL OR subject = $4)
                 ORDER BY seq LIMIT $5"
            ),
            &[
                &tenant_id,
                &filter.after_seq,
                &filter.event_type,
                &filter.subject,
                &to_i64(filter.limit),
            ],
        )
        .await?;
        read_all(&rows, read_event)
    }

    async fn get_event(&self, tenant_id: &str, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"),
            &[&tenant_id, &event_id],
        )
        .await?
        .as_ref()
        .map(read_event)
        .transpose()
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let turn = self
            .claim_turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A claim that leases anything also announces it (see `claims.rs`).
        let claimed = claims::claim_due(&transaction, now, limit, lease, turn).await?;
        transaction.commit().await.map_err(map_backend)?;
        Ok(claimed)
    }

    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<()> {
        self.attempts.submit(outcome).await
    }

    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let released = execute(
            &transaction,
            "UPDATE deliveries SET
                 state = CASE WHEN n_attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                 next_attempt_at = $2, lease_until = NULL
             WHERE id = $1 AND state = 'in_flight'",
            &[&delivery_id, &ms(next_attempt_at)],
        )
        .await?;
        if released > 0 {
            notify(&transaction).await?;
        }
        transaction.commit().await.map_err(map_backend)
    }

    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>> {
        let client = self.client().await?;
        claims::next_due_at(&client).await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let client = self.client().await?;
        // An unknown cursor starts from the beginning, as in SQLite.
        let rows = query(
            &client,
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE tenant_id = $1
                   AND rowid_ > COALESCE((SELECT rowid_ FROM deliveries
                                          WHERE tenant_id = $1 AND id = $2), 0)
                   AND ($3::text IS NULL OR endpoint_id = $3)
                   AND ($4::text IS NULL OR state = $4)
                 ORDER BY rowid_ LIMIT $5"
            ),
            &[
                &tenant_id,
                &filter.after_id,
                &filter.endpoint_id,
                &filter.state.map(DeliveryState::as_str),
                &to_i64(filter.limit),
            ],
        )
        .await?;
        read_all(&rows, read_delivery)
    }

    async fn get_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let client = self.client().await?;
        delivery_by_id(&client, tenant_id, delivery_id).await
    }

    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                 WHERE d.tenant_id = $1 AND a.delivery_id = $2 ORDER BY a.attempt_number"
            ),
            &[&tenant_id, &delivery_id],
        )
        .await?;
        read_all(&rows, read_attempt)
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let changed = execute(
            &transaction,
            "UPDATE deliveries SET state = 'pending', next_attempt_at = $3, updated_at = $3
             WHERE tenant_id = $1 AND id = $2 AND state != 'in_flight'",
            &[&tenant_id, &delivery_id, &ms(now)],
        )
        .await?;
        if changed > 0 {
            notify(&transaction).await?;
        }
        let delivery = delivery_by_id(&transaction, tenant_id, delivery_id).await?;
        transaction.commit().await.map_err(map_backend)?;
        Ok(delivery)
    }

    async fn replay(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        selector: &ReplaySelector,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let Some(endpoint) = endpoint_by_id(&transaction, tenant_id, endpoint_id).await? else {
            return Err(StoreError::NotFound(format!("endpoint {endpoint_id:?}")));
        };
        let (after_seq, received_since, only_id) = match selector {
            ReplaySelector::Failed => {
                let changed = execute(
                    &transaction,
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = $3, updated_at = $3
                     WHERE tenant_id = $1 AND endpoint_id = $2 AND state = 'exhausted'",
                    &[&tenant_id, &endpoint_id, &ms(now)],
                )
                .await?;
                if changed > 0 {
                    notify(&transaction).await?;
                }
                transaction.commit().await.map_err(map_backend)?;
                return Ok(changed);
            }
            ReplaySelector::Event(event_id) => (0, i64::MIN, Some(event_id.as_str())),
            ReplaySelector::SinceSeq(seq) => (*seq, i64::MIN, None),
            ReplaySelector::SinceTime(time) => (0, ms(*time), None),
        };
        let selected = query(
            &transaction,
            "SELECT seq, id, taxonomy, event_type, subject FROM events
             WHERE tenant_id = $1 AND seq > $2 AND received_at >= $3 AND NOT erased
               AND ($4::text IS NULL OR id = $4)
             ORDER BY seq",
            &[&tenant_id, &after_seq, &received_since, &only_id],
        )
        .await?;
        if let Some(event_id) = only_id
            && selected.is_empty()
        {
            return Err(StoreError::NotFound(format!("event {event_id:?}")));
        }
        let mut deliveries = Vec::new();
        for row in &selected {
            let taxonomy: &str = get(row, 2)?;
            let event_type: &str = get(row, 3)?;
            let wanted = only_id.is_some()
                || matches_any(
                    &endpoint.filters,
                    event_type,
                    rows::parse_taxonomy(taxonomy)?,
                );
            if wanted {
                deliveries.push(NewDelivery {
                    tenant_id,
                    endpoint_id,
                    event_seq: get(row, 0)?,
                    event_id: get(row, 1)?,
                    event_type,
                    subject: get(row, 4)?,
                    created_at: now,
                });
            }
        }
        if !deliveries.is_empty() {
            let columns = DeliveryColumns::of(&deliveries);
            execute(&transaction, INSERT_DELIVERIES, &columns.params()).await?;
            notify(&transaction).await?;
        }
        transaction.commit().await.map_err(map_backend)?;
        Ok(u64::try_from(deliveries.len()).unwrap_or(u64::MAX))
    }

    async fn count_pending(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            &format!("SELECT COUNT(*) FROM deliveries WHERE state IN {UNFINISHED}"),
            &[],
        )
        .await?;
        let count: i64 = get(&row, 0)?;
        Ok(u64::try_from(count).unwrap_or(0))
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
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        for decision in &decisions {
            execute(
                &transaction,
                &format!(
                    "INSERT INTO decisions ({DECISION_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &decision.id,
                    &decision.tenant_id,
                    &decision.event_type,
                    &decision.event_id,
                    &decision.is_allowed,
                    &json_text(&decision.reasons),
                    &json_text(&decision.trace),
                    &to_i64(decision.latency_us),
                    &ms(decision.created_at),
                ],
            )
            .await?;
        }
        transaction.commit().await.map_err(map_backend)
    }

    async fn list_decisions(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DecisionRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {DECISION_COLUMNS} FROM decisions
                 WHERE tenant_id = $1
                   AND rowid_ > COALESCE((SELECT rowid_ FROM decisions
                                          WHERE tenant_id = $1 AND id = $2), 0)
                 ORDER BY rowid_ LIMIT $3"
            ),
            &[&tenant_id, &after_id, &to_i64(limit)],
        )
        .await?;
        read_all(&rows, read_decision)
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
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let decisions_removed = execute(
            &transaction,
            "DELETE FROM decisions WHERE rowid_ IN (
                 SELECT rowid_ FROM decisions WHERE created_at < $1 LIMIT $2)",
            &[&ms(cutoff), &to_i64(batch)],
        )
        .await?;
        // Deliveries and their attempts go with their events (ON DELETE CASCADE).
        let events_removed = execute(
            &transaction,
            "DELETE FROM events WHERE (tenant_id, seq) IN (
                 SELECT tenant_id, seq FROM events WHERE received_at < $1 LIMIT $2)",
            &[&ms(cutoff), &to_i64(batch)],
        )
        .await?;
        transaction.commit().await.map_err(map_backend)?;
        Ok(events_removed + decisions_removed)
    }

    async fn erase_subject(&self, tenant_id: &str, subject: &str) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let erased = execute(
            &transaction,
            "UPDATE events SET payload = '{}', context = '{}', producer = '{}', erased = TRUE
             WHERE tenant_id = $1 AND subject = $2",
            &[&tenant_id, &subject],
        )
        .await?;
        execute(
            &transaction,
            "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL
             WHERE tenant_id = $1 AND subject = $2 AND state IN ('pending','scheduled')",
            &[&tenant_id, &subject],
        )
        .await?;
        transaction.commit().await.map_err(map_backend)?;
        Ok(erased)
    }

    async fn list_event_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let client = self.client().await?;
        // Through the event's seq, so `deliveries_by_event (tenant_id, event_seq)` answers.
        let rows = query(
            &client,
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE tenant_id = $1
                   AND event_seq = (SELECT seq FROM events WHERE tenant_id = $1 AND id = $2)
                   AND event_id = $2
                 ORDER BY rowid_"
            ),
            &[&tenant_id, &event_id],
        )
        .await?;
        read_all(&rows, read_delivery)
    }

    // --- the console's overview (issue 15) ---
    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<herald_store::models::AttemptMinute>> {
        let client = self.client().await?;
        // Times are kept in milliseconds: a minute is `started_at / 60000`. A missing status (no
        // answer) is a failure like any status outside 2xx.
        let rows = query(
            &client,
            "SELECT a.started_at / 60000 AS minute, COUNT(*)::BIGINT,
                 SUM(CASE WHEN a.status BETWEEN 200 AND 299 THEN 0 ELSE 1 END)::BIGINT
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.tenant_id = $1 AND a.started_at >= $2
             GROUP BY minute ORDER BY minute",
            &[&tenant_id, &ms(since)],
        )
        .await?;
        read_all(&rows, |row| {
            Ok(herald_store::models::AttemptMinute {
                minute: crate::rows::from_ms(get::<i64>(row, 0)? * 60_000),
                n_attempts: u64::try_from(get::<i64>(row, 1)?).unwrap_or(0),
                n_failed: u64::try_from(get::<i64>(row, 2)?).unwrap_or(0),
            })
        })
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

#[cfg(test)]
mod tests {
    use super::parse_config;

    fn options(url: &str) -> Option<String> {
        parse_config(url)
            .expect("a valid URL")
            .get_options()
            .map(str::to_owned)
    }

    #[test]
    fn connections_plan_each_execution_unless_the_url_says_otherwise() {
        assert_eq!(
            options("postgres://herald@db/herald").as_deref(),
            Some("-c plan_cache_mode=force_custom_plan")
        );
        assert_eq!(
            options("postgres://herald@db/herald?options=-c%20statement_timeout%3D5s").as_deref(),
            Some("-c statement_timeout=5s -c plan_cache_mode=force_custom_plan")
        );
        assert_eq!(
            options("postgres://herald@db/herald?options=-c%20plan_cache_mode%3Dauto").as_deref(),
            Some("-c plan_cache_mode=auto")
        );
    }
}

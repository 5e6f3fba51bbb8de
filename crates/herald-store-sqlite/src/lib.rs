//! Herald's embedded store: one SQLite file in WAL mode, behind the [`Store`] trait.
//!
//! One connection writes and one reads. SQLite allows a single writer at a time anyway, and
//! serialising writes in-process means `seq` is handed out in commit order without retries on
//! `SQLITE_BUSY`. Every write commits with `synchronous = FULL`, so an answered publish survives a
//! power cut. Blocking SQLite calls run on tokio's blocking pool, never on the async workers.

mod claims;
pub mod history;
mod keys;
mod rows;
mod schema;
mod sources;
mod ssf;
mod ssf_delivery;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald_catalog::filter::matches_any;
use herald_core::delivery::DeliveryState;
use herald_store::models::{
    ApiKeyRecord, AttemptOutcome, AttemptRecord, ClaimedDelivery, CustomTypeRecord, DecisionRecord,
    DeliveryFilter, DeliveryRecord, EndpointRecord, EventFilter, HookRecord, KeyOwner,
    KeyRevocation, NewEvent, NextStep, Published, ReplaySelector, SourceOutcome, SourceRecord,
    StoredEvent, Tenant,
};
use herald_store::ssf::{SsfQueuedSet, SsfReceiverRecord, SsfSigningKeyRecord, SsfStreamRecord};
use herald_store::{Store, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::{Duration, OffsetDateTime};

use crate::rows::{
    DECISION_COLUMNS, DELIVERY_COLUMNS, ENDPOINT_COLUMNS, EVENT_COLUMNS, HOOK_COLUMNS, json_text,
    map_backend, ms, read_decision, read_delivery, read_endpoint, read_event, read_hook,
};
use crate::writer::{Durability, Writer};

/// The SQLite store. Cloning shares the connections.
#[derive(Clone)]
pub struct SqliteStore {
    /// The writer thread; it also holds the exclusive lock on `<file>.lock` (see
    /// [`SqliteStore::open`]) until its connection is closed.
    writer: Writer,
    reader: Arc<Mutex<Connection>>,
    /// Rotates which endpoint claims first, so endpoints take turns when room is short.
    claim_turns: Arc<std::sync::atomic::AtomicUsize>,
    /// Each tenant's enabled endpoints and their filters, as publish needs them.
    routes: Routes,
    /// API keys found since start (`keys.rs`).
    keys: Arc<keys::KnownKeys>,
}

/// Where a tenant's events go: its enabled endpoints (paused ones included) and their filters.
/// Read once and kept, since every publish needs it and it rarely changes. Only the writer
/// thread reads or changes it, inside write transactions, and every change to an endpoint clears
/// it in the same transaction, so publish never sees a stale list.
#[derive(Clone, Default)]
struct Routes(Arc<Mutex<HashMap<String, Arc<Vec<Route>>>>>);

struct Route {
    endpoint_id: String,
    filters: Vec<String>,
}

impl Routes {
    fn of(&self, connection: &Connection, tenant_id: &str) -> StoreResult<Arc<Vec<Route>>> {
        if let Ok(cache) = self.0.lock()
            && let Some(routes) = cache.get(tenant_id)
        {
            return Ok(Arc::clone(routes));
        }
        let routes: Vec<Route> = load_endpoints(connection, tenant_id)?
            .into_iter()
            .filter(|endpoint| endpoint.enabled)
            .map(|endpoint| Route {
                endpoint_id: endpoint.id,
                filters: endpoint.filters,
            })
            .collect();
        let routes = Arc::new(routes);
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(tenant_id.to_owned(), Arc::clone(&routes));
        }
        Ok(routes)
    }

    fn forget(&self) {
        if let Ok(mut cache) = self.0.lock() {
            cache.clear();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SqliteStore")
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    ///
    /// One process at a time owns a file: the store holds an exclusive lock on `<file>.lock`
    /// (released by the kernel when the process ends, however it ends), and a second process is
    /// refused. That is what makes crash recovery immediate: any delivery still `in_flight` when
    /// the file is opened was leased by a process that is gone, so it is handed back at once
    /// instead of waiting for its lease to run out (the lease exists for PostgreSQL, where other
    /// nodes may still be working).
    pub fn open(path: &Path) -> StoreResult<Self> {
        let process_lock = lock_for_this_process(path)?;
        let writer = Connection::open(path).map_err(map_backend)?;
        schema::configure(&writer)?;
        schema::migrate(&writer)?;
        release_leases_of_dead_processes(&writer)?;
        let reader = Connection::open(path).map_err(map_backend)?;
        schema::configure(&reader)?;
        for connection in [&writer, &reader] {
            connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        }
        Ok(SqliteStore {
            writer: Writer::start(writer, wal_path(path), process_lock)?,
            reader: Arc::new(Mutex::new(reader)),
            claim_turns: Arc::default(),
            routes: Routes::default(),
            keys: Arc::default(),
        })
    }

    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(Durability::OnDisk, work).await
    }

    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.reader);
        run_blocking(move || {
            let connection = connection
                .lock()
                .map_err(|_| StoreError::Unavailable("the reader connection is poisoned".into()))?;
            work(&connection)
        })
        .await
    }
}

/// SQLite's write-ahead log of the database at `path`.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::path::PathBuf::from(wal)
}

/// Takes the exclusive lock on `<path>.lock`, or says which file another process holds.
fn lock_for_this_process(path: &Path) -> StoreResult<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|error| {
            StoreError::Backend(format!("cannot open {}: {error}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another Herald process (it holds {})",
            path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(StoreError::Backend(format!(
            "cannot lock {}: {error}",
            lock_path.display()
        ))),
    }
}

/// Hands back every delivery left `in_flight` by a process that died (SIGKILL, power cut): it is
/// due again at once, with its attempt count unchanged, since its attempt was never recorded.
fn release_leases_of_dead_processes(connection: &Connection) -> StoreResult<()> {
    let n_released = connection
        .execute(
            "UPDATE deliveries SET state = CASE WHEN n_attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                 lease_until = NULL
             WHERE state = 'in_flight'",
            [],
        )
        .map_err(map_backend)?;
    if n_released > 0 {
        tracing::info!(
            n_released,
            "deliveries left in flight by a stopped process are due again"
        );
    }
    Ok(())
}

async fn run_blocking<T, F>(work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Backend(format!("a storage task failed: {error}")))?
}

/// Prepared statements kept per connection: more than the hot paths use together, so none of
/// them is evicted and prepared again.
const STATEMENT_CACHE: usize = 64;

const UNFINISHED: &str = "('pending','scheduled','in_flight')";

fn insert_delivery(
    transaction: &Transaction<'_>,
    tenant_id: &str,
    endpoint_id: &str,
    event: (i64, &str, &str, Option<&str>),
    now: OffsetDateTime,
) -> StoreResult<()> {
    let (seq, event_id, event_type, subject) = event;
    let mut statement = transaction
        .prepare_cached(
            "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq, event_id, event_type,
                 subject, state, n_attempts, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?8, ?8)",
        )
        .map_err(map_backend)?;
    statement
        .execute(params![
            herald_core::ids::prefixed_id("dl"),
            tenant_id,
            endpoint_id,
            seq,
            event_id,
            event_type,
            subject,
            ms(now),
        ])
        .map_err(map_backend)?;
    Ok(())
}

/// `NotFound` unless the tenant exists: rows of a tenant are only made for a real one.
pub(crate) fn require_tenant(connection: &Connection, tenant_id: &str) -> StoreResult<()> {
    let exists: Option<i64> = connection
        .query_row(
            "SELECT 1 FROM tenants WHERE id = ?1",
            params![tenant_id],
            |row| row.get(0),
        )
        .optional()
        .map_err(map_backend)?;
    match exists {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("tenant {tenant_id:?}"))),
    }
}

fn load_endpoints(connection: &Connection, tenant_id: &str) -> StoreResult<Vec<EndpointRecord>> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = ?1 ORDER BY created_at, id"
        ))
        .map_err(map_backend)?;
    let rows = statement
        .query_map(params![tenant_id], read_endpoint)
        .map_err(map_backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
}

fn endpoint_by_id(
    connection: &Connection,
    tenant_id: &str,
    endpoint_id: &str,
) -> StoreResult<Option<EndpointRecord>> {
    connection
        .query_row(
            &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = ?1 AND id = ?2"),
            params![tenant_id, endpoint_id],
            read_endpoint,
        )
        .optional()
        .map_err(map_backend)
}

fn delivery_by_id(
    connection: &Connection,
    tenant_id: &str,
    delivery_id: &str,
) -> StoreResult<Option<DeliveryRecord>> {
    connection
        .query_row(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = ?1 AND id = ?2"),
            params![tenant_id, delivery_id],
            read_delivery,
        )
        .optional()
        .map_err(map_backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<Tenant> {
        self.write(move |transaction| {
            let inserted = transaction
                .execute(
                    "INSERT INTO tenants (id, name, issuer, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO NOTHING",
                    params![tenant.id, tenant.name, tenant.issuer, ms(tenant.created_at)],
                )
                .map_err(map_backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("tenant {:?}", tenant.id)));
            }
            Ok(tenant)
        })
        .await
    }

    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT id, name, issuer, created_at FROM tenants WHERE id = ?1",
                    params![tenant_id],
                    rows::read_tenant,
                )
                .optional()
                .map_err(map_backend)
        })
        .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(|connection| {
            let mut statement = connection
                .prepare("SELECT id, name, issuer, created_at FROM tenants ORDER BY id")
                .map_err(map_backend)?;
            let rows = statement
                .query_map([], rows::read_tenant)
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
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
        self.write(move |transaction| {
            let inserted = transaction
                .execute(
                    "INSERT INTO custom_types (tenant_id, name, description, module, subject_pointer,
                         schema, example, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (tenant_id, name) DO NOTHING",
                    params![
                        record.tenant_id,
                        record.name,
                        record.description,
                        record.module,
                        record.subject_pointer,
                        json_text(&record.schema),
                        record.example.as_ref().map(json_text),
                        ms(record.created_at),
                    ],
                )
                .map_err(map_backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("event type {:?}", record.name)));
            }
            Ok(())
        })
        .await
    }

    async fn list_custom_types(
        &self,
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<CustomTypeRecord>> {
        let tenant_id = tenant_id.map(str::to_owned);
        self.read(move |connection| {
            let mut statement = connection
                .prepare(
                    "SELECT tenant_id, name, description, module, subject_pointer, schema, example,
                         created_at FROM custom_types
                     WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, name",
                )
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id], rows::read_custom_type)
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn create_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord> {
        let routes = self.routes.clone();
        self.write(move |transaction| {
            routes.forget();
            require_tenant(transaction, &endpoint.tenant_id)?;
            rows::write_endpoint(transaction, &endpoint, true)?;
            Ok(endpoint)
        })
        .await
    }

    async fn get_endpoint(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> StoreResult<Option<EndpointRecord>> {
        let (tenant_id, endpoint_id) = (tenant_id.to_owned(), endpoint_id.to_owned());
        self.read(move |connection| endpoint_by_id(connection, &tenant_id, &endpoint_id))
            .await
    }

    async fn list_endpoints(&self, tenant_id: &str) -> StoreResult<Vec<EndpointRecord>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |connection| load_endpoints(connection, &tenant_id))
            .await
    }

    async fn update_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord> {
        let routes = self.routes.clone();
        self.write(move |transaction| {
            routes.forget();
            if endpoint_by_id(transaction, &endpoint.tenant_id, &endpoint.id)?.is_none() {
                return Err(StoreError::NotFound(format!("endpoint {:?}", endpoint.id)));
            }
            rows::write_endpoint(transaction, &endpoint, false)?;
            Ok(endpoint)
        })
        .await
    }

    async fn delete_endpoint(&self, tenant_id: &str, endpoint_id: &str) -> StoreResult<bool> {
        let (tenant_id, endpoint_id) = (tenant_id.to_owned(), endpoint_id.to_owned());
        let routes = self.routes.clone();
        self.write(move |transaction| {
            routes.forget();
            let removed = transaction
                .execute(
                    "DELETE FROM endpoints WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant_id, endpoint_id],
                )
                .map_err(map_backend)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn publish(
        &self,
        tenant_id: &str,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Published>> {
        let tenant_id = tenant_id.to_owned();
        let routes = self.routes.clone();
        self.write(move |transaction| {
            let next_seq: Option<i64> = transaction
                .prepare_cached("SELECT next_seq FROM tenants WHERE id = ?1")
                .and_then(|mut statement| {
                    statement
                        .query_row(params![tenant_id], |row| row.get(0))
                        .optional()
                })
                .map_err(map_backend)?;
            let Some(mut next_seq) = next_seq else {
                return Err(StoreError::NotFound(format!("tenant {tenant_id:?}")));
            };
            // Paused endpoints included: their deliveries queue up until they are resumed.
            let routes = routes.of(transaction, &tenant_id)?;
            let mut published = Vec::with_capacity(events.len());
            for event in events {
                let existing: Option<i64> = transaction
                    .prepare_cached("SELECT seq FROM events WHERE tenant_id = ?1 AND id = ?2")
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![tenant_id, event.id], |row| row.get(0))
                            .optional()
                    })
                    .map_err(map_backend)?;
                if let Some(seq) = existing {
                    published.push(Published {
                        id: event.id,
                        seq,
                        duplicate: true,
                        n_deliveries: 0,
                    });
                    continue;
                }
                let seq = next_seq;
                next_seq += 1;
                transaction
                    .prepare_cached(
                        "INSERT INTO events (tenant_id, seq, id, taxonomy, event_type, subject,
                             occurred_at, received_at, payload, context, producer)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .and_then(|mut statement| {
                        statement.execute(params![
                            tenant_id,
                            seq,
                            event.id,
                            event.taxonomy.as_str(),
                            event.event_type,
                            event.subject,
                            ms(event.occurred_at),
                            ms(now),
                            json_text(&event.payload),
                            json_text(&serde_json::Value::Object(event.context.clone())),
                            json_text(&serde_json::Value::Object(event.producer.clone())),
                        ])
                    })
                    .map_err(map_backend)?;
                let mut n_deliveries = 0;
                for route in routes.iter() {
                    if matches_any(&route.filters, &event.event_type, event.taxonomy) {
                        insert_delivery(
                            transaction,
                            &tenant_id,
                            &route.endpoint_id,
                            (seq, &event.id, &event.event_type, event.subject.as_deref()),
                            now,
                        )?;
                        n_deliveries += 1;
                    }
                }
                published.push(Published {
                    id: event.id,
                    seq,
                    duplicate: false,
                    n_deliveries,
                });
            }
            transaction
                .prepare_cached("UPDATE tenants SET next_seq = ?1 WHERE id = ?2")
                .and_then(|mut statement| statement.execute(params![next_seq, tenant_id]))
                .map_err(map_backend)?;
            Ok(published)
        })
        .await
    }

    async fn list_events(
        &self,
        tenant_id: &str,
        filter: &EventFilter,
    ) -> StoreResult<Vec<StoredEvent>> {
        let tenant_id = tenant_id.to_owned();
        let filter = filter.clone();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE tenant_id = ?1 AND seq > ?2
                       AND (?3 IS NULL OR event_type = ?3) AND (?4 IS NULL OR subject = ?4)
                     ORDER BY seq LIMIT ?5"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(
                    params![
                        tenant_id,
                        filter.after_seq,
                        filter.event_type,
                        filter.subject,
                        i64::try_from(filter.limit).unwrap_or(i64::MAX),
                    ],
                    read_event,
                )
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn get_event(&self, tenant_id: &str, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let (tenant_id, event_id) = (tenant_id.to_owned(), event_id.to_owned());
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND id = ?2"),
                    params![tenant_id, event_id],
                    read_event,
                )
                .optional()
                .map_err(map_backend)
        })
        .await
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let turn = self
            .claim_turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.writer
            .write(Durability::OnceWhatItReadIsDurable, move |transaction| {
                claims::claim_due(transaction, now, limit, lease, turn)
            })
            .await
    }

    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<()> {
        let routes = self.routes.clone();
        // Lost in a crash, a record only means the delivery is attempted again (it is left in
        // flight, and released at the next open): at least once still holds, and the attempt's
        // slot frees without waiting for the disk.
        self.writer.write(Durability::Committed, move |transaction| {
            if outcome.disable_endpoint.is_some() {
                routes.forget();
            }
            let attempt = &outcome.attempt;
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO attempts (delivery_id, attempt_number, started_at, status,
                         latency_ms, response_excerpt, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        attempt.delivery_id,
                        attempt.attempt_number,
                        ms(attempt.started_at),
                        attempt.status,
                        i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
                        attempt.response_excerpt,
                        attempt.error,
                    ])
                })
                .map_err(map_backend)?;
            let (state, next_attempt_at) = match outcome.next {
                NextStep::Delivered => (DeliveryState::Delivered, None),
                NextStep::RetryAt(at) => (DeliveryState::Scheduled, Some(ms(at))),
                NextStep::Exhausted => (DeliveryState::Exhausted, None),
            };
            transaction
                .prepare_cached(
                    "UPDATE deliveries SET state = ?2, n_attempts = ?3, next_attempt_at = ?4,
                         lease_until = NULL, last_status = ?5, last_error = ?6, updated_at = ?7
                     WHERE id = ?1",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        attempt.delivery_id,
                        state.as_str(),
                        attempt.attempt_number,
                        next_attempt_at,
                        attempt.status,
                        attempt.error,
                        ms(outcome.now),
                    ])
                })
                .map_err(map_backend)?;
            let succeeded = outcome.next == NextStep::Delivered;
            transaction
                .prepare_cached(
                    "UPDATE endpoints SET
                         failing_since = CASE WHEN ?3 THEN NULL ELSE COALESCE(failing_since, ?4) END,
                         enabled = CASE WHEN ?5 IS NULL THEN enabled ELSE 0 END,
                         disabled_reason = COALESCE(?5, disabled_reason)
                     WHERE tenant_id = ?1 AND id = ?2
                       -- A success of a healthy endpoint changes nothing: leave its row alone.
                       AND NOT (?3 AND failing_since IS NULL AND ?5 IS NULL)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        outcome.tenant_id,
                        outcome.endpoint_id,
                        succeeded,
                        ms(attempt.started_at),
                        outcome.disable_endpoint,
                    ])
                })
                .map_err(map_backend)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()> {
        let delivery_id = delivery_id.to_owned();
        self.write(move |transaction| {
            transaction
                .execute(
                    "UPDATE deliveries SET state = CASE WHEN n_attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                         next_attempt_at = ?2, lease_until = NULL
                     WHERE id = ?1 AND state = 'in_flight'",
                    params![delivery_id, ms(next_attempt_at)],
                )
                .map_err(map_backend)?;
            Ok(())
        })
        .await
    }

    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>> {
        self.read(claims::next_due_at).await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let tenant_id = tenant_id.to_owned();
        let filter = filter.clone();
        self.read(move |connection| {
            let after_rowid: i64 = match &filter.after_id {
                None => 0,
                Some(after_id) => connection
                    .query_row(
                        "SELECT rowid_ FROM deliveries WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant_id, after_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(map_backend)?
                    .unwrap_or(0),
            };
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE tenant_id = ?1 AND rowid_ > ?2
                       AND (?3 IS NULL OR endpoint_id = ?3) AND (?4 IS NULL OR state = ?4)
                     ORDER BY rowid_ LIMIT ?5"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(
                    params![
                        tenant_id,
                        after_rowid,
                        filter.endpoint_id,
                        filter.state.map(DeliveryState::as_str),
                        i64::try_from(filter.limit).unwrap_or(i64::MAX),
                    ],
                    read_delivery,
                )
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn get_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        self.read(move |connection| delivery_by_id(connection, &tenant_id, &delivery_id))
            .await
    }

    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT a.delivery_id, a.attempt_number, a.started_at, a.status, a.latency_ms,
                         a.response_excerpt, a.error
                     FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                     WHERE d.tenant_id = ?1 AND a.delivery_id = ?2 ORDER BY a.attempt_number",
                )
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id, delivery_id], rows::read_attempt)
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        self.write(move |transaction| {
            transaction
                .execute(
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = ?3, updated_at = ?3
                     WHERE tenant_id = ?1 AND id = ?2 AND state != 'in_flight'",
                    params![tenant_id, delivery_id, ms(now)],
                )
                .map_err(map_backend)?;
            delivery_by_id(transaction, &tenant_id, &delivery_id)
        })
        .await
    }

    async fn replay(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        selector: &ReplaySelector,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let (tenant_id, endpoint_id) = (tenant_id.to_owned(), endpoint_id.to_owned());
        let selector = selector.clone();
        self.write(move |transaction| {
            let Some(endpoint) = endpoint_by_id(transaction, &tenant_id, &endpoint_id)? else {
                return Err(StoreError::NotFound(format!("endpoint {endpoint_id:?}")));
            };
            let (after_seq, received_since, only_id) = match &selector {
                ReplaySelector::Failed => {
                    let changed = transaction
                        .execute(
                            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?3, updated_at = ?3
                             WHERE tenant_id = ?1 AND endpoint_id = ?2 AND state = 'exhausted'",
                            params![tenant_id, endpoint_id, ms(now)],
                        )
                        .map_err(map_backend)?;
                    return Ok(changed as u64);
                }
                ReplaySelector::Event(event_id) => (0, i64::MIN, Some(event_id.clone())),
                ReplaySelector::SinceSeq(seq) => (*seq, i64::MIN, None),
                ReplaySelector::SinceTime(time) => (0, ms(*time), None),
            };
            let mut statement = transaction
                .prepare(
                    "SELECT seq, id, taxonomy, event_type, subject FROM events
                     WHERE tenant_id = ?1 AND seq > ?2 AND received_at >= ?3 AND erased = 0
                       AND (?4 IS NULL OR id = ?4)
                     ORDER BY seq",
                )
                .map_err(map_backend)?;
            let selected: Vec<(i64, String, String, String, Option<String>)> = statement
                .query_map(
                    params![tenant_id, after_seq, received_since, only_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
                )
                .map_err(map_backend)?
                .collect::<Result<_, _>>()
                .map_err(map_backend)?;
            if let Some(event_id) = &only_id
                && selected.is_empty()
            {
                return Err(StoreError::NotFound(format!("event {event_id:?}")));
            }
            let mut n_replayed = 0u64;
            for (seq, event_id, taxonomy, event_type, subject) in selected {
                let taxonomy = rows::parse_taxonomy(&taxonomy)?;
                let wanted = only_id.is_some() || matches_any(&endpoint.filters, &event_type, taxonomy);
                if wanted {
                    insert_delivery(
                        transaction,
                        &tenant_id,
                        &endpoint_id,
                        (seq, &event_id, &event_type, subject.as_deref()),
                        now,
                    )?;
                    n_replayed += 1;
                }
            }
            Ok(n_replayed)
        })
        .await
    }

    async fn count_pending(&self) -> StoreResult<u64> {
        self.read(|connection| {
            let count: i64 = connection
                .query_row(
                    &format!("SELECT COUNT(*) FROM deliveries WHERE state IN {UNFINISHED}"),
                    [],
                    |row| row.get(0),
                )
                .map_err(map_backend)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn create_hook(&self, hook: HookRecord) -> StoreResult<HookRecord> {
        self.write(move |transaction| {
            require_tenant(transaction, &hook.tenant_id)?;
            rows::write_hook(transaction, &hook, true)?;
            Ok(hook)
        })
        .await
    }

    async fn list_hooks(&self, tenant_id: &str) -> StoreResult<Vec<HookRecord>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {HOOK_COLUMNS} FROM hooks WHERE tenant_id = ?1
                     ORDER BY event_type, position, created_at, id"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id], read_hook)
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn get_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<Option<HookRecord>> {
        let (tenant_id, hook_id) = (tenant_id.to_owned(), hook_id.to_owned());
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {HOOK_COLUMNS} FROM hooks WHERE tenant_id = ?1 AND id = ?2"),
                    params![tenant_id, hook_id],
                    read_hook,
                )
                .optional()
                .map_err(map_backend)
        })
        .await
    }

    async fn update_hook(&self, hook: HookRecord) -> StoreResult<HookRecord> {
        self.write(move |transaction| {
            let exists: Option<i64> = transaction
                .query_row(
                    "SELECT 1 FROM hooks WHERE tenant_id = ?1 AND id = ?2",
                    params![hook.tenant_id, hook.id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(map_backend)?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("hook {:?}", hook.id)));
            }
            rows::write_hook(transaction, &hook, false)?;
            Ok(hook)
        })
        .await
    }

    async fn delete_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<bool> {
        let (tenant_id, hook_id) = (tenant_id.to_owned(), hook_id.to_owned());
        self.write(move |transaction| {
            let removed = transaction
                .execute(
                    "DELETE FROM hooks WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant_id, hook_id],
                )
                .map_err(map_backend)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn record_decisions(&self, decisions: Vec<DecisionRecord>) -> StoreResult<()> {
        self.write(move |transaction| {
            let mut statement = transaction
                .prepare_cached(&format!(
                    "INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))
                .map_err(map_backend)?;
            for decision in &decisions {
                statement
                    .execute(params![
                        decision.id,
                        decision.tenant_id,
                        decision.event_type,
                        decision.event_id,
                        decision.is_allowed,
                        json_text(&decision.reasons),
                        json_text(&decision.trace),
                        i64::try_from(decision.latency_us).unwrap_or(i64::MAX),
                        ms(decision.created_at),
                    ])
                    .map_err(map_backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_decisions(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DecisionRecord>> {
        let (tenant_id, after_id) = (tenant_id.to_owned(), after_id.map(str::to_owned));
        self.read(move |connection| {
            let after_rowid: i64 = match &after_id {
                None => 0,
                Some(after_id) => connection
                    .query_row(
                        "SELECT rowid_ FROM decisions WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant_id, after_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(map_backend)?
                    .unwrap_or(0),
            };
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE tenant_id = ?1 AND rowid_ > ?2
                     ORDER BY rowid_ LIMIT ?3"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(
                    params![
                        tenant_id,
                        after_rowid,
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    read_decision,
                )
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
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
        self.write(move |transaction| {
            let decisions_removed = transaction
                .execute(
                    "DELETE FROM decisions WHERE rowid_ IN (
                         SELECT rowid_ FROM decisions WHERE created_at < ?1 LIMIT ?2)",
                    params![ms(cutoff), i64::try_from(batch).unwrap_or(i64::MAX)],
                )
                .map_err(map_backend)?;
            let removed = transaction
                .execute(
                    "DELETE FROM events WHERE rowid IN (
                         SELECT rowid FROM events WHERE received_at < ?1 LIMIT ?2)",
                    params![ms(cutoff), i64::try_from(batch).unwrap_or(i64::MAX)],
                )
                .map_err(map_backend)?;
            Ok((removed + decisions_removed) as u64)
        })
        .await
    }

    async fn erase_subject(&self, tenant_id: &str, subject: &str) -> StoreResult<u64> {
        let (tenant_id, subject) = (tenant_id.to_owned(), subject.to_owned());
        self.write(move |transaction| {
            let erased = transaction
                .execute(
                    "UPDATE events SET payload = '{}', context = '{}', producer = '{}', erased = 1
                     WHERE tenant_id = ?1 AND subject = ?2",
                    params![tenant_id, subject],
                )
                .map_err(map_backend)?;
            transaction
                .execute(
                    "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL
                     WHERE tenant_id = ?1 AND subject = ?2 AND state IN ('pending','scheduled')",
                    params![tenant_id, subject],
                )
                .map_err(map_backend)?;
            Ok(erased as u64)
        })
        .await
    }

    async fn list_event_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let (tenant_id, event_id) = (tenant_id.to_owned(), event_id.to_owned());
        self.read(move |connection| {
            // Through the event's seq, so the `deliveries_by_event (tenant_id, event_seq)` index
            // answers rather than a scan of the tenant's deliveries.
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE tenant_id = ?1
                       AND event_seq = (SELECT seq FROM events WHERE tenant_id = ?1 AND id = ?2)
                       AND event_id = ?2
                     ORDER BY rowid_"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id, event_id], read_delivery)
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    // --- the console's overview (issue 15) ---
    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<herald_store::models::AttemptMinute>> {
        let tenant_id = tenant_id.to_owned();
        let since_ms = ms(since);
        self.read(move |connection| {
            // Times are kept in milliseconds: a minute is `started_at / 60000`. A missing status
            // (no answer) is a failure like any status outside 2xx.
            let mut statement = connection
                .prepare_cached(
                    "SELECT a.started_at / 60000 AS minute, COUNT(*),
                         SUM(CASE WHEN a.status BETWEEN 200 AND 299 THEN 0 ELSE 1 END)
                     FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                     WHERE d.tenant_id = ?1 AND a.started_at >= ?2
                     GROUP BY minute ORDER BY minute",
                )
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id, since_ms], |row| {
                    Ok(herald_store::models::AttemptMinute {
                        minute: crate::rows::from_ms(row.get::<_, i64>(0)? * 60_000),
                        n_attempts: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                        n_failed: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                    })
                })
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
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

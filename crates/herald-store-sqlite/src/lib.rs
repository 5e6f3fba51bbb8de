//! Herald's embedded store: one SQLite file in WAL mode, behind the
//! [`Store`](herald_store::Store) trait.
//!
//! One connection writes and one reads. SQLite allows a single writer at a time anyway, and
//! serialising writes in-process means `seq` is handed out in commit order without retries on
//! `SQLITE_BUSY`. A write whose answer promises durability is answered only once it is on disk
//! (see `writer.rs`), so an answered publish survives a power cut. Blocking SQLite calls run on tokio's blocking pool,
//! never on the async workers. `open.rs` takes the file's one-process lock.
//!
//! The code is laid out by resource, the same way in both backends: each resource file implements
//! its part of the `Store` contract with its queries, so there is no table of methods. `tenants.rs`
//! (`TenantStore`, `CustomTypeStore`), `keys.rs` (`ApiKeyStore`), `endpoints.rs`
//! (`EndpointStore`), `events.rs` (`EventStore` with `publish.rs`, `RetentionStore`),
//! `deliveries.rs` (`DeliveryQueue` with `claims.rs` and `attempts.rs`, `DeliveryStore`),
//! `hooks.rs` (`HookStore`), `decisions.rs` (`DecisionStore`), `sources.rs` (`SourceStore`),
//! `ssf.rs` (`SsfStore`), `ssf_delivery.rs` (`SsfDeliveryStore`) and `v1a.rs` (`V1aKeyStore`).
//! The rules that are not SQL (claim planning, replay bounds, routing) are
//! `herald_store::planner`'s.

mod attempts;
mod claims;
mod decisions;
mod deliveries;
mod endpoints;
mod events;
pub mod history;
mod hooks;
mod keys;
mod leases;
mod open;
mod publish;
mod rows;
mod schema;
mod sources;
mod ssf;
mod ssf_delivery;
mod tenants;
mod v1a;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use herald_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::publish::Routes;
use crate::rows::map_backend;
use crate::writer::{Durability, Writer};

/// The SQLite store. Cloning shares the connections.
#[derive(Clone)]
pub struct SqliteStore {
    /// The writer thread; it also holds the exclusive lock on `<file>.lock` (see
    /// [`SqliteStore::open`]) until its connection is closed.
    writer: Writer,
    reader: Arc<Mutex<Connection>>,
    /// The connection claims read through: their own, so a claim never waits behind the API's
    /// reads, and one claim at a time (each judges by the leases of the claims before it).
    claimer: Arc<tokio::sync::Mutex<Connection>>,
    /// The deliveries this process is attempting (`leases.rs`).
    leases: Arc<leases::Leases>,
    /// Rotates which endpoint claims first, so endpoints take turns when room is short.
    claim_turns: Arc<std::sync::atomic::AtomicUsize>,
    /// Each tenant's enabled endpoints and their filters, as publish needs them.
    routes: Routes,
    /// API keys found since start (`keys.rs`).
    keys: Arc<keys::KnownKeys>,
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
    /// refused. That is what lets leases live in memory (`leases.rs`): no other process can be
    /// attempting this file's deliveries, so a crash loses only the leases, and every delivery
    /// whose attempt was not recorded is due again at once. (A file written by an older Herald
    /// may still have rows `in_flight`; they are handed back when it is opened.)
    pub fn open(path: &Path) -> StoreResult<Self> {
        let process_lock = open::lock_for_this_process(path)?;
        let writer = Connection::open(path).map_err(map_backend)?;
        schema::configure(&writer)?;
        schema::migrate(&writer)?;
        open::release_leases_of_dead_processes(&writer)?;
        let reader = Connection::open(path).map_err(map_backend)?;
        let claimer = Connection::open(path).map_err(map_backend)?;
        for connection in [&reader, &claimer] {
            schema::configure(connection)?;
        }
        for connection in [&writer, &reader, &claimer] {
            connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        }
        Ok(SqliteStore {
            writer: Writer::start(writer, open::wal_path(path), process_lock)?,
            reader: Arc::new(Mutex::new(reader)),
            claimer: Arc::new(tokio::sync::Mutex::new(claimer)),
            leases: Arc::default(),
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

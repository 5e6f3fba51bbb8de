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
//!
//! The code is laid out by resource, the same way in both backends: each resource file implements
//! its part of the `Store` contract with its queries, so there is no table of methods. `tenants.rs`
//! (`TenantStore`, `CustomTypeStore`), `keys.rs` (`ApiKeyStore`), `endpoints.rs`
//! (`EndpointStore`), `events.rs` (`EventStore` with `publish.rs`, `RetentionStore`),
//! `deliveries.rs` (`DeliveryQueue` with `claims.rs` and `attempts.rs`, `DeliveryStore`),
//! `hooks.rs` (`HookStore`), `decisions.rs` (`DecisionStore`), `sources.rs` (`SourceStore`),
//! `ssf.rs` (`SsfStore`), `ssf_delivery.rs` (`SsfDeliveryStore`) and `v1a.rs` (`V1aKeyStore`).
//! `connect.rs` opens the pool; `statements.rs` has the statement helpers. The rules that are not
//! SQL (claim planning, replay bounds, routing) are `herald_store::planner`'s.

mod attempts;
mod claims;
mod connect;
mod decisions;
mod deliveries;
mod endpoints;
mod events;
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
mod statements;
mod tenants;
mod v1a;
mod wakeups;

#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object, Pool};
use herald_store::{Backend, ChangeHandler, ChangeListener, Store, StoreResult};
use tokio::sync::Notify;

use crate::attempts::Attempts;
pub use crate::connect::migrate;
use crate::group_commit::GroupCommitter;
use crate::publish::Publishes;
use crate::rows::map_pool;
pub(crate) use crate::statements::{execute, notify, prepare, query, query_one, query_opt};
pub use crate::wakeups::WakeupListener;

const UNFINISHED: &str = "('pending','scheduled','in_flight')";

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

impl PostgresStore {
    /// Wakes `wakeup` whenever any node (this one included) commits a change in due delivery
    /// work: a publish that created deliveries, a retry, a replay, a release, a lease, a scheduled
    /// retry, an endpoint update. Notifications arrive until the returned listener is dropped.
    /// When this returns, the listener is already subscribed.
    pub async fn listen_for_wakeups(
        &self,
        wakeup: Arc<Notify>,
        on_change: ChangeHandler,
    ) -> StoreResult<WakeupListener> {
        WakeupListener::start(self.config.clone(), wakeup, on_change).await
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(map_pool)
    }
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

/// Other nodes' work and changes arrive by `LISTEN` (see `wakeups.rs`).
#[async_trait]
impl Backend for PostgresStore {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.clone())
    }

    async fn listen_for_changes(
        &self,
        wakeup: Arc<Notify>,
        on_change: ChangeHandler,
    ) -> StoreResult<Option<ChangeListener>> {
        let listener = self.listen_for_wakeups(wakeup, on_change).await?;
        Ok(Some(Box::new(listener)))
    }
}

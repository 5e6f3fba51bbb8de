//! Herald's storage boundary: the [`Store`] trait every backend implements (made of one trait per
//! resource, [`TenantStore`] to [`V1aKeyStore`], whose methods [`prelude`] brings into scope), the
//! row models it speaks in, and the [`conformance`] suite that runs the same behaviour tests on
//! each backend.
//!
//! Row models are plain Rust: they do not derive `Serialize`; the API crate converts them into
//! its own wire types.

pub mod conformance;
pub mod encoding;
pub mod models;
pub mod operational;
pub mod planner;
pub mod prelude;
pub mod spoiled_ids;
pub mod ssf;
mod traits;

use async_trait::async_trait;

pub use crate::traits::{
    ApiKeyStore, CustomTypeStore, DecisionStore, DeliveryQueue, DeliveryStore, EndpointStore,
    EventStore, HookStore, RetentionStore, SourceStore, SsfDeliveryStore, SsfStore, Store,
    TenantStore, V1aKeyStore,
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
    /// other node can share the database (SQLite: this process sees every change itself, and
    /// only wakes `wakeup` as its own writes commit).
    async fn listen_for_changes(
        &self,
        wakeup: std::sync::Arc<tokio::sync::Notify>,
        on_change: ChangeHandler,
    ) -> StoreResult<Option<ChangeListener>>;
}

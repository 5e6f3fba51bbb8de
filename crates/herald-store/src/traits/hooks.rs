//! The contract for blocking hooks and the decisions they made.

use async_trait::async_trait;

use crate::StoreResult;
use crate::models::{DecisionRecord, HookRecord};

/// Blocking hooks: each tenant's chain.
#[async_trait]
pub trait HookStore: Send + Sync {
    async fn create_hook(&self, hook: HookRecord) -> StoreResult<HookRecord>;
    /// The tenant's hooks, by event type, then position, then creation.
    async fn list_hooks(&self, tenant_id: &str) -> StoreResult<Vec<HookRecord>>;
    async fn get_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<Option<HookRecord>>;
    /// Replaces the hook's settings; `NotFound` when it is not the tenant's.
    async fn update_hook(&self, hook: HookRecord) -> StoreResult<HookRecord>;
    async fn delete_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<bool>;
}

/// Blocking decisions: the audit trail of evaluated blocking events.
#[async_trait]
pub trait DecisionStore: Send + Sync {
    async fn record_decisions(&self, decisions: Vec<DecisionRecord>) -> StoreResult<()>;
    /// The tenant's decisions made after `after_id` (a cursor), oldest first.
    async fn list_decisions(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DecisionRecord>>;
}

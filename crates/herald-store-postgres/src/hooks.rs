//! Blocking hooks: each tenant's chain, and the notice other nodes get when it changes.
//!
//! Every node keeps the chains it has read in memory (the API's hooks cache), so every change to
//! a hook announces itself with `NOTIFY herald_changes, 'hooks:<tenant>'` in the statement that
//! makes it: the notice goes out exactly when the change commits, and every node's listener (see
//! `wakeups.rs`) drops that tenant's chains. Without it, other nodes would keep calling a deleted
//! hook and skip a new fail-closed one until they restarted.

use async_trait::async_trait;
use herald_store::HookStore;
use herald_store::models::HookRecord;
use herald_store::{StoreError, StoreResult};

use crate::rows::{HOOK_COLUMNS, ms, read_all, read_hook, to_i64};
use crate::{PostgresStore, execute, query, query_opt, tenant_exists};

#[async_trait]
impl HookStore for PostgresStore {
    async fn create_hook(&self, hook: HookRecord) -> StoreResult<HookRecord> {
        let client = self.client().await?;
        if !tenant_exists(&client, &hook.tenant_id).await? {
            return Err(StoreError::NotFound(format!("tenant {:?}", hook.tenant_id)));
        }
        execute(
            &client,
            &format!(
                "WITH changed AS (
                     INSERT INTO hooks ({HOOK_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     RETURNING tenant_id
                 )
                 SELECT {NOTIFY_CHANGED} FROM changed"
            ),
            &[
                &hook.id.as_str(),
                &hook.tenant_id,
                &hook.event_type,
                &hook.url,
                &hook.position,
                &to_i64(hook.timeout_ms),
                &hook.failure_policy.as_str(),
                &hook.secret.expose_text(),
                &hook.enabled,
                &ms(hook.created_at),
                &ms(hook.updated_at),
            ],
        )
        .await?;
        Ok(hook)
    }

    async fn list_hooks(&self, tenant_id: &str) -> StoreResult<Vec<HookRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {HOOK_COLUMNS} FROM hooks WHERE tenant_id = $1
                 ORDER BY event_type COLLATE \"C\", position, created_at, id COLLATE \"C\""
            ),
            &[&tenant_id],
        )
        .await?;
        read_all(&rows, read_hook)
    }

    async fn get_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<Option<HookRecord>> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {HOOK_COLUMNS} FROM hooks WHERE tenant_id = $1 AND id = $2"),
            &[&tenant_id, &hook_id],
        )
        .await?
        .as_ref()
        .map(read_hook)
        .transpose()
    }

    async fn update_hook(&self, hook: HookRecord) -> StoreResult<HookRecord> {
        let client = self.client().await?;
        let updated = execute(
            &client,
            &format!(
                "WITH changed AS (
                     UPDATE hooks SET event_type = $3, url = $4, position = $5, timeout_ms = $6,
                         failure_policy = $7, secret = $8, enabled = $9, created_at = $10,
                         updated_at = $11
                     WHERE id = $1 AND tenant_id = $2
                     RETURNING tenant_id
                 )
                 SELECT {NOTIFY_CHANGED} FROM changed"
            ),
            &[
                &hook.id.as_str(),
                &hook.tenant_id,
                &hook.event_type,
                &hook.url,
                &hook.position,
                &to_i64(hook.timeout_ms),
                &hook.failure_policy.as_str(),
                &hook.secret.expose_text(),
                &hook.enabled,
                &ms(hook.created_at),
                &ms(hook.updated_at),
            ],
        )
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!("hook {:?}", hook.id.as_str())));
        }
        Ok(hook)
    }

    async fn delete_hook(&self, tenant_id: &str, hook_id: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let removed = execute(
            &client,
            &format!(
                "WITH changed AS (
                     DELETE FROM hooks WHERE tenant_id = $1 AND id = $2 RETURNING tenant_id
                 )
                 SELECT {NOTIFY_CHANGED} FROM changed"
            ),
            &[&tenant_id, &hook_id],
        )
        .await?;
        Ok(removed > 0)
    }
}

/// Announces, at commit, that the changed rows' tenants' hooks changed (one notice per tenant:
/// PostgreSQL folds identical notices of one transaction into one).
const NOTIFY_CHANGED: &str = "pg_notify('herald_changes', 'hooks:' || changed.tenant_id)";

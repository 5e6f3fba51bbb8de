//! Blocking hooks: each tenant's chain, by event type and position.

use async_trait::async_trait;
use herald_store::HookStore;
use herald_store::models::HookRecord;
use herald_store::{StoreError, StoreResult};
use rusqlite::{OptionalExtension, params};

use crate::rows::{HOOK_COLUMNS, map_backend, read_hook};
use crate::{SqliteStore, require_tenant, rows};

#[async_trait]
impl HookStore for SqliteStore {
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
                    params![hook.tenant_id, hook.id.as_str()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(map_backend)?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("hook {:?}", hook.id.as_str())));
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
}

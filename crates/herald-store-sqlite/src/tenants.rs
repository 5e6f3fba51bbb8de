//! Tenants and their custom event types.

use async_trait::async_trait;
use herald_store::models::{CustomTypeRecord, Tenant};
use herald_store::{CustomTypeStore, TenantStore};
use herald_store::{StoreError, StoreResult};
use rusqlite::{OptionalExtension, params};

use crate::rows::{json_text, map_backend, ms};
use crate::{SqliteStore, rows};

#[async_trait]
impl TenantStore for SqliteStore {
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
}

#[async_trait]
impl CustomTypeStore for SqliteStore {
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
}

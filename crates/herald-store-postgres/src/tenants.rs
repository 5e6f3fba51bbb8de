//! Tenants and their custom event types.

use async_trait::async_trait;
use herald_store::models::{CustomTypeRecord, Tenant};
use herald_store::{CustomTypeStore, TenantStore};
use herald_store::{StoreError, StoreResult};

use crate::rows::{
    CUSTOM_TYPE_COLUMNS, TENANT_COLUMNS, json_text, ms, read_all, read_custom_type, read_tenant,
};
use crate::{PostgresStore, execute, query, query_opt};

#[async_trait]
impl TenantStore for PostgresStore {
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
}

#[async_trait]
impl CustomTypeStore for PostgresStore {
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
}

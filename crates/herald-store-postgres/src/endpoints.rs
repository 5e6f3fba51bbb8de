//! Endpoints: the tenants' subscribers and their settings.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use herald_store::EndpointStore;
use herald_store::models::EndpointRecord;
use herald_store::{StoreError, StoreResult};

use crate::rows::{ENDPOINT_COLUMNS, EndpointParams, map_backend, read_all, read_endpoint};
use crate::{PostgresStore, execute, notify, query, query_opt, tenant_exists};

#[async_trait]
impl EndpointStore for PostgresStore {
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
                 $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
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
                 failing_since = $18, created_at = $19, updated_at = $20, paused = $21,
                 signature_scheme = $22
             WHERE id = $1 AND tenant_id = $2",
            &params.values(&endpoint),
        )
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!(
                "endpoint {:?}",
                endpoint.id.as_str()
            )));
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
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        // The endpoint goes first: its row lock waits for every publish that holds it `FOR KEY
        // SHARE`, so the next statement, with a snapshot taken after that wait, sees every
        // delivery those publishes made for it (the hot tables have no foreign keys to cascade).
        let removed = execute(
            &transaction,
            "DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2",
            &[&tenant_id, &endpoint_id],
        )
        .await?;
        if removed > 0 {
            execute(
                &transaction,
                "WITH gone AS (DELETE FROM deliveries WHERE endpoint_id = $1 RETURNING id)
                 DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone)",
                &[&endpoint_id],
            )
            .await?;
        }
        transaction.commit().await.map_err(map_backend)?;
        Ok(removed > 0)
    }
}

pub(crate) async fn endpoint_by_id<C: GenericClient>(
    client: &C,
    tenant_id: &str,
    endpoint_id: &str,
) -> StoreResult<Option<EndpointRecord>> {
    read_endpoint_row(client, tenant_id, endpoint_id, "").await
}

/// The endpoint, held `FOR KEY SHARE` until the transaction ends: it cannot be deleted
/// meanwhile, so deliveries made for it in that transaction are never left without it (the hot
/// tables have no foreign keys, migration 0011).
pub(crate) async fn endpoint_by_id_held<C: GenericClient>(
    client: &C,
    tenant_id: &str,
    endpoint_id: &str,
) -> StoreResult<Option<EndpointRecord>> {
    read_endpoint_row(client, tenant_id, endpoint_id, " FOR KEY SHARE").await
}

async fn read_endpoint_row<C: GenericClient>(
    client: &C,
    tenant_id: &str,
    endpoint_id: &str,
    locking: &str,
) -> StoreResult<Option<EndpointRecord>> {
    query_opt(
        client,
        &format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = $1 AND id = $2{locking}"
        ),
        &[&tenant_id, &endpoint_id],
    )
    .await?
    .as_ref()
    .map(read_endpoint)
    .transpose()
}

//! Endpoints: the tenants' subscribers and their settings.

use async_trait::async_trait;
use herald_store::EndpointStore;
use herald_store::models::EndpointRecord;
use herald_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};

use crate::rows::{ENDPOINT_COLUMNS, map_backend, read_endpoint};
use crate::{SqliteStore, require_tenant, rows};

#[async_trait]
impl EndpointStore for SqliteStore {
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
            if endpoint_by_id(transaction, &endpoint.tenant_id, endpoint.id.as_str())?.is_none() {
                return Err(StoreError::NotFound(format!(
                    "endpoint {:?}",
                    endpoint.id.as_str()
                )));
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
}

pub(crate) fn load_endpoints(
    connection: &Connection,
    tenant_id: &str,
) -> StoreResult<Vec<EndpointRecord>> {
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

pub(crate) fn endpoint_by_id(
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

//! The contract for endpoints, the tenants' subscribers.

use async_trait::async_trait;

use crate::StoreResult;
use crate::models::EndpointRecord;

/// Endpoints and their settings.
#[async_trait]
pub trait EndpointStore: Send + Sync {
    async fn create_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord>;
    async fn get_endpoint(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
    ) -> StoreResult<Option<EndpointRecord>>;
    async fn list_endpoints(&self, tenant_id: &str) -> StoreResult<Vec<EndpointRecord>>;
    /// Replaces the endpoint's settings; `NotFound` when it is not the tenant's.
    async fn update_endpoint(&self, endpoint: EndpointRecord) -> StoreResult<EndpointRecord>;
    /// Removes the endpoint with its deliveries and attempts; false when there was none.
    async fn delete_endpoint(&self, tenant_id: &str, endpoint_id: &str) -> StoreResult<bool>;
}

//! The contract for sources: inbound connections, one per vendor.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::StoreResult;
use crate::models::{SourceOutcome, SourceRecord};

/// Sources with their settings, counters, latest errors and WebSub lease.
#[async_trait]
pub trait SourceStore: Send + Sync {
    /// Stores a new source; `NotFound` when the tenant does not exist.
    async fn create_source(&self, source: SourceRecord) -> StoreResult<SourceRecord>;
    /// The tenant's source; another tenant's is absent. Source ids are unique across tenants, so
    /// this is the lookup by id, kept only when the tenant matches.
    async fn get_source(
        &self,
        tenant_id: &str,
        source_id: &str,
    ) -> StoreResult<Option<SourceRecord>> {
        Ok(self
            .get_source_by_id(source_id)
            .await?
            .filter(|source| source.tenant_id == tenant_id))
    }
    /// The source by id alone, for its ingest URL (which carries no tenant).
    async fn get_source_by_id(&self, source_id: &str) -> StoreResult<Option<SourceRecord>>;
    /// The tenant's sources, oldest first.
    async fn list_sources(&self, tenant_id: &str) -> StoreResult<Vec<SourceRecord>>;
    /// Replaces the source's settings (name, credentials, accepted topics, `updated_at`); its
    /// counters, errors and lease are left as they are. `NotFound` when it is not the tenant's.
    async fn update_source(&self, source: SourceRecord) -> StoreResult<SourceRecord>;
    async fn delete_source(&self, tenant_id: &str, source_id: &str) -> StoreResult<bool>;
    /// Adds one request's outcome to the source's counters and last errors, atomically (two
    /// concurrent requests both count). A source deleted meanwhile is ignored.
    async fn record_source_outcome(
        &self,
        source_id: &str,
        outcome: SourceOutcome,
    ) -> StoreResult<()>;
    /// Notes the WebSub lease the hub confirmed (`None` after an unsubscription).
    async fn record_source_lease(
        &self,
        source_id: &str,
        lease_expires_at: Option<OffsetDateTime>,
    ) -> StoreResult<()>;
}

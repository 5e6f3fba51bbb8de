//! The contract for tenants, their custom event types and the API keys that act for them.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::StoreResult;
use crate::models::{ApiKeyRecord, CustomTypeRecord, KeyOwner, KeyRevocation, Tenant};

/// Tenants: the unit every other record belongs to.
#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn create_tenant(&self, tenant: Tenant) -> StoreResult<Tenant>;
    async fn get_tenant(&self, tenant_id: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
}

/// API keys, stored as hashes: admin keys (no tenant) and tenant keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()>;
    /// Whether any admin key (a key without a tenant) is stored.
    async fn has_admin_key(&self) -> StoreResult<bool>;
    /// The key whose SHA-256 hash is `key_hash`, as the database has it now (a revoked key is
    /// absent at once, on every node), noting its use at `now` when
    /// [`ApiKeyRecord::use_is_worth_recording`] says so. The record returned carries that use.
    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<ApiKeyRecord>>;
    /// The owner's keys, oldest first.
    async fn list_api_keys(&self, owner: KeyOwner<'_>) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Deletes one of the owner's keys. With `keep_an_admin_key`, the last admin key is kept
    /// (checked in the same transaction, so two revocations cannot remove the last two).
    async fn revoke_api_key(
        &self,
        owner: KeyOwner<'_>,
        key_id: &str,
        keep_an_admin_key: bool,
    ) -> StoreResult<KeyRevocation>;
    /// Deletes the admin keys made at first start; returns how many there were.
    async fn revoke_generated_admin_keys(&self) -> StoreResult<u64>;
}

/// Custom event types: a tenant's own additions to the catalog.
#[async_trait]
pub trait CustomTypeStore: Send + Sync {
    async fn create_custom_type(&self, record: CustomTypeRecord) -> StoreResult<()>;
    async fn list_custom_types(
        &self,
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<CustomTypeRecord>>;
}

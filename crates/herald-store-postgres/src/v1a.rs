//! Standard Webhooks `v1a` (issue 14): retiring one signing key at a time, so a tenant's Ed25519
//! webhook key and its SET key rotate independently in the shared `ssf_signing_keys` table.

use async_trait::async_trait;
use herald_store::StoreResult;
use herald_store::V1aKeyStore;
use time::OffsetDateTime;

use crate::rows::ms;
use crate::{PostgresStore, execute};

#[async_trait]
impl V1aKeyStore for PostgresStore {
    async fn retire_ssf_signing_key(
        &self,
        tenant_id: &str,
        kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let client = self.client().await?;
        let n_retired = execute(
            &client,
            "UPDATE ssf_signing_keys SET retired_at = $3
             WHERE tenant_id = $1 AND kid = $2 AND retired_at IS NULL",
            &[&tenant_id, &kid, &ms(retired_at)],
        )
        .await?;
        Ok(n_retired == 1)
    }
}

//! Standard Webhooks `v1a` (issue 14): retiring one signing key at a time, so a tenant's Ed25519
//! webhook key and its SET key rotate independently in the shared `ssf_signing_keys` table.

use herald_store::StoreResult;
use time::OffsetDateTime;

use crate::rows::ms;
use crate::{PostgresStore, execute};

impl PostgresStore {
    pub(crate) async fn v1a_retire_key(
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

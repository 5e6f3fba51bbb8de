//! Standard Webhooks `v1a` (issue 14): retiring one signing key at a time, so a tenant's Ed25519
//! webhook key and its SET key rotate independently in the shared `ssf_signing_keys` table.

use async_trait::async_trait;
use herald_store::StoreResult;
use herald_store::V1aKeyStore;
use rusqlite::params;
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{map_backend, ms};
use crate::writer::Durability;

#[async_trait]
impl V1aKeyStore for SqliteStore {
    async fn retire_ssf_signing_key(
        &self,
        tenant_id: &str,
        kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let (tenant_id, kid) = (tenant_id.to_owned(), kid.to_owned());
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_retired = transaction
                    .execute(
                        "UPDATE ssf_signing_keys SET retired_at = ?3
                         WHERE tenant_id = ?1 AND kid = ?2 AND retired_at IS NULL",
                        params![tenant_id, kid, ms(retired_at)],
                    )
                    .map_err(map_backend)?;
                Ok(n_retired == 1)
            })
            .await
    }
}

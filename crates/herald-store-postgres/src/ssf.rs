//! Shared Signals rows: signing keys, receivers, streams, stream subjects and the poll queue.

use async_trait::async_trait;
use herald_store::SsfStore;
use herald_store::ssf::{
    SsfQueuedSet, SsfReceiverRecord, SsfReceiverSelector, SsfSigningKeyRecord, SsfStreamRecord,
};
use herald_store::{StoreError, StoreResult};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::rows::{from_ms, get, map_backend, ms, to_i64};
use crate::{PostgresStore, execute, query, tenant_exists};

const KEY_COLUMNS: &str = "kid, tenant_id, algorithm, private_key, created_at, retired_at";
const RECEIVER_COLUMNS: &str =
    "id, tenant_id, name, token_hash, may_receive_all_subjects, created_at";
const STREAM_COLUMNS: &str =
    "id, tenant_id, receiver_id, config, status, status_reason, created_at, updated_at";

fn read_key(row: &Row) -> StoreResult<SsfSigningKeyRecord> {
    Ok(SsfSigningKeyRecord {
        kid: get(row, 0)?,
        tenant_id: get(row, 1)?,
        algorithm: get(row, 2)?,
        private_key: get(row, 3)?,
        created_at: from_ms(get(row, 4)?),
        retired_at: get::<Option<i64>>(row, 5)?.map(from_ms),
    })
}

fn read_receiver(row: &Row) -> StoreResult<SsfReceiverRecord> {
    Ok(SsfReceiverRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        name: get(row, 2)?,
        token_hash: get(row, 3)?,
        may_receive_all_subjects: get::<i64>(row, 4)? != 0,
        created_at: from_ms(get(row, 5)?),
    })
}

fn read_stream(row: &Row) -> StoreResult<SsfStreamRecord> {
    Ok(SsfStreamRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        receiver_id: get(row, 2)?,
        config: get(row, 3)?,
        status: get(row, 4)?,
        status_reason: get(row, 5)?,
        created_at: from_ms(get(row, 6)?),
        updated_at: from_ms(get(row, 7)?),
    })
}

impl PostgresStore {
    async fn ssf_require_tenant(&self, tenant_id: &str) -> StoreResult<()> {
        let client = self.client().await?;
        if tenant_exists(&client, tenant_id).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("tenant {tenant_id:?}")))
        }
    }

    /// One query for both lookups: a tenant's receivers, or the receiver of a token.
    async fn ssf_select_receivers(
        &self,
        tenant_id: Option<&str>,
        token_hash: Option<&str>,
    ) -> StoreResult<Vec<SsfReceiverRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {RECEIVER_COLUMNS} FROM ssf_receivers
                 WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR token_hash = $2)
                 ORDER BY created_at, id"
            ),
            &[&tenant_id, &token_hash],
        )
        .await?;
        rows.iter().map(read_receiver).collect()
    }
}

#[async_trait]
impl SsfStore for PostgresStore {
    async fn create_ssf_signing_key(&self, key: SsfSigningKeyRecord) -> StoreResult<()> {
        self.ssf_require_tenant(&key.tenant_id).await?;
        let client = self.client().await?;
        execute(
            &client,
            &format!(
                "INSERT INTO ssf_signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            &[
                &key.kid,
                &key.tenant_id,
                &key.algorithm,
                &key.private_key,
                &ms(key.created_at),
                &key.retired_at.map(ms),
            ],
        )
        .await
        .map_err(|error| match error {
            StoreError::Conflict(_) => StoreError::Conflict(format!("signing key {:?}", key.kid)),
            other => other,
        })?;
        Ok(())
    }

    async fn list_ssf_signing_keys(
        &self,
        tenant_id: &str,
    ) -> StoreResult<Vec<SsfSigningKeyRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!("SELECT {KEY_COLUMNS} FROM ssf_signing_keys WHERE tenant_id = $1 ORDER BY created_at DESC, kid DESC"),
            &[&tenant_id],
        )
        .await?;
        rows.iter().map(read_key).collect()
    }

    async fn retire_ssf_signing_keys(
        &self,
        tenant_id: &str,
        keep_kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "UPDATE ssf_signing_keys SET retired_at = $3 WHERE tenant_id = $1 AND kid <> $2 AND retired_at IS NULL",
            &[&tenant_id, &keep_kid, &ms(retired_at)],
        )
        .await
    }

    async fn create_ssf_receiver(&self, receiver: SsfReceiverRecord) -> StoreResult<()> {
        self.ssf_require_tenant(&receiver.tenant_id).await?;
        let client = self.client().await?;
        execute(
            &client,
            &format!(
                "INSERT INTO ssf_receivers ({RECEIVER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            &[
                &receiver.id,
                &receiver.tenant_id,
                &receiver.name,
                &receiver.token_hash,
                &i64::from(receiver.may_receive_all_subjects),
                &ms(receiver.created_at),
            ],
        )
        .await
        .map_err(|error| match error {
            StoreError::Conflict(_) => StoreError::Conflict(format!("receiver {:?}", receiver.id)),
            other => other,
        })?;
        Ok(())
    }

    async fn select_ssf_receivers(
        &self,
        selector: SsfReceiverSelector<'_>,
    ) -> StoreResult<Vec<SsfReceiverRecord>> {
        let (tenant_id, token_hash) = match selector {
            SsfReceiverSelector::Tenant(tenant_id) => (Some(tenant_id), None),
            SsfReceiverSelector::TokenHash(token_hash) => (None, Some(token_hash)),
        };
        self.ssf_select_receivers(tenant_id, token_hash).await
    }

    async fn create_ssf_stream(&self, stream: SsfStreamRecord) -> StoreResult<()> {
        self.ssf_require_tenant(&stream.tenant_id).await?;
        let client = self.client().await?;
        execute(
            &client,
            &format!(
                // A new stream starts at the log's current end: it gets events published from
                // now on, not the tenant's history.
                "INSERT INTO ssf_streams ({STREAM_COLUMNS}, cursor_seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT next_seq - 1 FROM tenants WHERE id = $2))"
            ),
            &[
                &stream.id,
                &stream.tenant_id,
                &stream.receiver_id,
                &stream.config,
                &stream.status,
                &stream.status_reason,
                &ms(stream.created_at),
                &ms(stream.updated_at),
            ],
        )
        .await
        .map_err(|error| match error {
            StoreError::Conflict(_) => StoreError::Conflict(format!("stream {:?}", stream.id)),
            other => other,
        })?;
        Ok(())
    }

    async fn list_ssf_streams(&self, tenant_id: &str) -> StoreResult<Vec<SsfStreamRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!("SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE tenant_id = $1 ORDER BY created_at, id"),
            &[&tenant_id],
        )
        .await?;
        rows.iter().map(read_stream).collect()
    }

    async fn update_ssf_stream(&self, stream: SsfStreamRecord) -> StoreResult<()> {
        let client = self.client().await?;
        let n_changed = execute(
            &client,
            // Disabled drops events: a stream being disabled, or enabled again after, moves its
            // cursor to the log's end, skipping what came meanwhile.
            "UPDATE ssf_streams SET config = $3, status = $4, status_reason = $5, updated_at = $6,
                 cursor_seq = CASE WHEN status = 'disabled' OR $4 = 'disabled'
                     THEN (SELECT next_seq - 1 FROM tenants WHERE id = $2) ELSE cursor_seq END
             WHERE id = $1 AND tenant_id = $2",
            &[
                &stream.id,
                &stream.tenant_id,
                &stream.config,
                &stream.status,
                &stream.status_reason,
                &ms(stream.updated_at),
            ],
        )
        .await?;
        if n_changed == 0 {
            return Err(StoreError::NotFound(format!("stream {:?}", stream.id)));
        }
        Ok(())
    }

    async fn delete_ssf_stream(&self, tenant_id: &str, stream_id: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        // Subjects and queued SETs go with the stream (ON DELETE CASCADE).
        let n_deleted = execute(
            &client,
            "DELETE FROM ssf_streams WHERE tenant_id = $1 AND id = $2",
            &[&tenant_id, &stream_id],
        )
        .await?;
        Ok(n_deleted > 0)
    }

    async fn add_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<()> {
        let client = self.client().await?;
        // Inserting through a SELECT of the stream makes a subject of a stream deleted meanwhile
        // vanish instead of failing on the foreign key.
        execute(
            &client,
            "INSERT INTO ssf_stream_subjects (stream_id, subject_key)
             SELECT id, $2 FROM ssf_streams WHERE id = $1
             ON CONFLICT DO NOTHING",
            &[&stream_id, &subject_key],
        )
        .await?;
        Ok(())
    }

    async fn remove_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let n_deleted = execute(
            &client,
            "DELETE FROM ssf_stream_subjects WHERE stream_id = $1 AND subject_key = $2",
            &[&stream_id, &subject_key],
        )
        .await?;
        Ok(n_deleted > 0)
    }

    async fn list_ssf_subjects(&self, stream_id: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT subject_key FROM ssf_stream_subjects WHERE stream_id = $1 ORDER BY subject_key",
            &[&stream_id],
        )
        .await?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    async fn enqueue_ssf_sets(&self, sets: Vec<SsfQueuedSet>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let mut streams_queued = std::collections::BTreeSet::new();
        for set in &sets {
            let n_queued = execute(
                &transaction,
                "INSERT INTO ssf_poll_queue (stream_id, jti, token, created_at, next_attempt_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
                &[&set.stream_id, &set.jti, &set.token, &ms(set.created_at)],
            )
            .await?;
            if n_queued > 0 {
                streams_queued.insert(set.stream_id.as_str());
            }
        }
        for stream_id in streams_queued {
            crate::ssf_delivery::notify_sets_queued(&transaction, stream_id).await?;
        }
        transaction.commit().await.map_err(map_backend)
    }

    async fn peek_ssf_sets(&self, stream_id: &str, max: usize) -> StoreResult<Vec<SsfQueuedSet>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT stream_id, jti, token, created_at FROM ssf_poll_queue WHERE stream_id = $1
             ORDER BY position LIMIT $2",
            &[&stream_id, &to_i64(max)],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SsfQueuedSet {
                    stream_id: get(row, 0)?,
                    jti: get(row, 1)?,
                    token: get(row, 2)?,
                    created_at: from_ms(get(row, 3)?),
                })
            })
            .collect()
    }

    async fn ack_ssf_sets(&self, stream_id: &str, jtis: Vec<String>) -> StoreResult<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM ssf_poll_queue WHERE stream_id = $1 AND jti = ANY($2)",
            &[&stream_id, &jtis],
        )
        .await
    }

    async fn clear_ssf_queue(&self, stream_id: &str) -> StoreResult<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM ssf_poll_queue WHERE stream_id = $1",
            &[&stream_id],
        )
        .await
    }
}

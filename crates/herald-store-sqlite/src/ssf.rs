//! Shared Signals rows: signing keys, receivers, streams, stream subjects and the poll queue.

use async_trait::async_trait;
use herald_store::SsfStore;
use herald_store::ssf::{
    SsfQueuedSet, SsfReceiverRecord, SsfReceiverSelector, SsfSigningKeyRecord, SsfStreamRecord,
};
use herald_store::{StoreError, StoreResult};
use rusqlite::{Row, params};
use time::OffsetDateTime;

use crate::rows::{from_ms, map_backend, ms};
use crate::writer::Durability;
use crate::{SqliteStore, require_tenant};

const KEY_COLUMNS: &str = "kid, tenant_id, algorithm, private_key, created_at, retired_at";
const RECEIVER_COLUMNS: &str =
    "id, tenant_id, name, token_hash, may_receive_all_subjects, created_at";
const STREAM_COLUMNS: &str =
    "id, tenant_id, receiver_id, config, status, status_reason, created_at, updated_at";

fn read_key(row: &Row<'_>) -> rusqlite::Result<SsfSigningKeyRecord> {
    Ok(SsfSigningKeyRecord {
        kid: row.get(0)?,
        tenant_id: row.get(1)?,
        algorithm: row.get(2)?,
        private_key: row.get(3)?,
        created_at: from_ms(row.get(4)?),
        retired_at: row.get::<_, Option<i64>>(5)?.map(from_ms),
    })
}

fn read_receiver(row: &Row<'_>) -> rusqlite::Result<SsfReceiverRecord> {
    Ok(SsfReceiverRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        name: row.get(2)?,
        token_hash: row.get(3)?,
        may_receive_all_subjects: row.get::<_, i64>(4)? != 0,
        created_at: from_ms(row.get(5)?),
    })
}

fn read_stream(row: &Row<'_>) -> rusqlite::Result<SsfStreamRecord> {
    Ok(SsfStreamRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        receiver_id: row.get(2)?,
        config: row.get(3)?,
        status: row.get(4)?,
        status_reason: row.get(5)?,
        created_at: from_ms(row.get(6)?),
        updated_at: from_ms(row.get(7)?),
    })
}

fn conflict_or_backend(error: rusqlite::Error, what: String) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(what),
        _ => map_backend(error),
    }
}

#[async_trait]
impl SsfStore for SqliteStore {
    async fn create_ssf_signing_key(&self, key: SsfSigningKeyRecord) -> StoreResult<()> {
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                require_tenant(transaction, &key.tenant_id)?;
                transaction
                    .execute(
                        &format!("INSERT INTO ssf_signing_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                        params![key.kid, key.tenant_id, key.algorithm, key.private_key, ms(key.created_at), key.retired_at.map(ms)],
                    )
                    .map_err(|error| conflict_or_backend(error, format!("signing key {:?}", key.kid)))?;
                Ok(())
            })
            .await
    }

    async fn list_ssf_signing_keys(
        &self,
        tenant_id: &str,
    ) -> StoreResult<Vec<SsfSigningKeyRecord>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM ssf_signing_keys WHERE tenant_id = ?1 ORDER BY created_at DESC, kid DESC"
                ))
                .map_err(map_backend)?;
            statement
                .query_map(params![tenant_id], read_key)
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_backend)
        })
        .await
    }

    async fn retire_ssf_signing_keys(
        &self,
        tenant_id: &str,
        keep_kid: &str,
        retired_at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let (tenant_id, keep_kid) = (tenant_id.to_owned(), keep_kid.to_owned());
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_retired = transaction
                    .execute(
                        "UPDATE ssf_signing_keys SET retired_at = ?3
                         WHERE tenant_id = ?1 AND kid <> ?2 AND retired_at IS NULL",
                        params![tenant_id, keep_kid, ms(retired_at)],
                    )
                    .map_err(map_backend)?;
                Ok(n_retired as u64)
            })
            .await
    }

    async fn create_ssf_receiver(&self, receiver: SsfReceiverRecord) -> StoreResult<()> {
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                require_tenant(transaction, &receiver.tenant_id)?;
                transaction
                    .execute(
                        &format!("INSERT INTO ssf_receivers ({RECEIVER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                        params![
                            receiver.id,
                            receiver.tenant_id,
                            receiver.name,
                            receiver.token_hash,
                            i64::from(receiver.may_receive_all_subjects),
                            ms(receiver.created_at)
                        ],
                    )
                    .map_err(|error| conflict_or_backend(error, format!("receiver {:?}", receiver.id)))?;
                Ok(())
            })
            .await
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
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                require_tenant(transaction, &stream.tenant_id)?;
                transaction
                    .execute(
                        // A new stream starts at the log's current end: it gets events
                        // published from now on, not the tenant's history.
                        &format!("INSERT INTO ssf_streams ({STREAM_COLUMNS}, cursor_seq)
                                  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT next_seq - 1 FROM tenants WHERE id = ?2))"),
                        params![
                            stream.id,
                            stream.tenant_id,
                            stream.receiver_id,
                            stream.config,
                            stream.status,
                            stream.status_reason,
                            ms(stream.created_at),
                            ms(stream.updated_at)
                        ],
                    )
                    .map_err(|error| conflict_or_backend(error, format!("stream {:?}", stream.id)))?;
                Ok(())
            })
            .await
    }

    async fn list_ssf_streams(&self, tenant_id: &str) -> StoreResult<Vec<SsfStreamRecord>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!("SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE tenant_id = ?1 ORDER BY created_at, id"))
                .map_err(map_backend)?;
            statement
                .query_map(params![tenant_id], read_stream)
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_backend)
        })
        .await
    }

    async fn update_ssf_stream(&self, stream: SsfStreamRecord) -> StoreResult<()> {
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_changed = transaction
                    .execute(
                        // Disabled drops events: a stream being disabled, or enabled again
                        // after, moves its cursor to the log's end, skipping what came meanwhile.
                        "UPDATE ssf_streams SET config = ?3, status = ?4, status_reason = ?5, updated_at = ?6,
                             cursor_seq = CASE WHEN status = 'disabled' OR ?4 = 'disabled'
                                 THEN (SELECT next_seq - 1 FROM tenants WHERE id = ?2) ELSE cursor_seq END
                         WHERE id = ?1 AND tenant_id = ?2",
                        params![stream.id, stream.tenant_id, stream.config, stream.status, stream.status_reason, ms(stream.updated_at)],
                    )
                    .map_err(map_backend)?;
                if n_changed == 0 {
                    return Err(StoreError::NotFound(format!("stream {:?}", stream.id)));
                }
                Ok(())
            })
            .await
    }

    async fn delete_ssf_stream(&self, tenant_id: &str, stream_id: &str) -> StoreResult<bool> {
        let (tenant_id, stream_id) = (tenant_id.to_owned(), stream_id.to_owned());
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                // Subjects and queued SETs go with the stream (ON DELETE CASCADE).
                let n_deleted = transaction
                    .execute(
                        "DELETE FROM ssf_streams WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant_id, stream_id],
                    )
                    .map_err(map_backend)?;
                Ok(n_deleted > 0)
            })
            .await
    }

    async fn add_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<()> {
        let (stream_id, subject_key) = (stream_id.to_owned(), subject_key.to_owned());
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                transaction
                    .execute(
                        "INSERT INTO ssf_stream_subjects (stream_id, subject_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                        params![stream_id, subject_key],
                    )
                    .map_err(|error| match error.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::NotFound(format!("stream {stream_id:?}")),
                        _ => map_backend(error),
                    })?;
                Ok(())
            })
            .await
    }

    async fn remove_ssf_subject(&self, stream_id: &str, subject_key: &str) -> StoreResult<bool> {
        let (stream_id, subject_key) = (stream_id.to_owned(), subject_key.to_owned());
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_deleted = transaction
                    .execute(
                        "DELETE FROM ssf_stream_subjects WHERE stream_id = ?1 AND subject_key = ?2",
                        params![stream_id, subject_key],
                    )
                    .map_err(map_backend)?;
                Ok(n_deleted > 0)
            })
            .await
    }

    async fn list_ssf_subjects(&self, stream_id: &str) -> StoreResult<Vec<String>> {
        let stream_id = stream_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT subject_key FROM ssf_stream_subjects WHERE stream_id = ?1 ORDER BY subject_key")
                .map_err(map_backend)?;
            statement
                .query_map(params![stream_id], |row| row.get(0))
                .map_err(map_backend)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(map_backend)
        })
        .await
    }

    async fn enqueue_ssf_sets(&self, sets: Vec<SsfQueuedSet>) -> StoreResult<()> {
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                for set in &sets {
                    transaction
                        .execute(
                            "INSERT INTO ssf_poll_queue (stream_id, jti, token, created_at, next_attempt_at)
                             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
                            params![set.stream_id, set.jti, set.token, ms(set.created_at)],
                        )
                        .map_err(map_backend)?;
                }
                Ok(())
            })
            .await
    }

    async fn peek_ssf_sets(&self, stream_id: &str, max: usize) -> StoreResult<Vec<SsfQueuedSet>> {
        let stream_id = stream_id.to_owned();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT stream_id, jti, token, created_at FROM ssf_poll_queue WHERE stream_id = ?1
                     ORDER BY created_at, rowid LIMIT ?2",
                )
                .map_err(map_backend)?;
            statement
                .query_map(params![stream_id, max], |row| {
                    Ok(SsfQueuedSet { stream_id: row.get(0)?, jti: row.get(1)?, token: row.get(2)?, created_at: from_ms(row.get(3)?) })
                })
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_backend)
        })
        .await
    }

    async fn ack_ssf_sets(&self, stream_id: &str, jtis: Vec<String>) -> StoreResult<u64> {
        let stream_id = stream_id.to_owned();
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let mut n_acknowledged = 0;
                for jti in &jtis {
                    n_acknowledged += transaction
                        .execute(
                            "DELETE FROM ssf_poll_queue WHERE stream_id = ?1 AND jti = ?2",
                            params![stream_id, jti],
                        )
                        .map_err(map_backend)? as u64;
                }
                Ok(n_acknowledged)
            })
            .await
    }

    async fn clear_ssf_queue(&self, stream_id: &str) -> StoreResult<u64> {
        let stream_id = stream_id.to_owned();
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_deleted = transaction
                    .execute(
                        "DELETE FROM ssf_poll_queue WHERE stream_id = ?1",
                        params![stream_id],
                    )
                    .map_err(map_backend)?;
                Ok(n_deleted as u64)
            })
            .await
    }
}

impl SqliteStore {
    /// One query for both lookups: a tenant's receivers, or the receiver of a token.
    async fn ssf_select_receivers(
        &self,
        tenant_id: Option<&str>,
        token_hash: Option<&str>,
    ) -> StoreResult<Vec<SsfReceiverRecord>> {
        let (tenant_id, token_hash) = (tenant_id.map(str::to_owned), token_hash.map(str::to_owned));
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {RECEIVER_COLUMNS} FROM ssf_receivers
                     WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR token_hash = ?2)
                     ORDER BY created_at, id"
                ))
                .map_err(map_backend)?;
            statement
                .query_map(params![tenant_id, token_hash], read_receiver)
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_backend)
        })
        .await
    }
}

//! API keys: stored as hashes, listed, revoked, and found by hash through a cache.
//!
//! Every authenticated request looks its key up, so keys found once are kept in memory. The
//! cache is coherent because one process owns the file (see `SqliteStore::open`): every change
//! to a key goes through this store, and every revocation empties the cache after its commit. A
//! read that raced with a revocation is not cached (the generation check), so a revoked key is
//! refused on the very next request.

use async_trait::async_trait;
use herald_store::ApiKeyStore;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_store::StoreResult;
use herald_store::models::{ApiKeyRecord, KeyOwner, KeyRevocation, LAST_USED_PRECISION};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{from_ms, id_column, map_backend, ms};
use crate::writer::Durability;

const KEY_COLUMNS: &str =
    "id, tenant_id, key_hash, prefix, name, generated_at_start, created_at, last_used_at";

fn read_key(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: id_column(row, 0)?,
        tenant_id: row.get(1)?,
        key_hash: row.get(2)?,
        prefix: row.get(3)?,
        name: row.get(4)?,
        generated_at_start: row.get(5)?,
        created_at: from_ms(row.get(6)?),
        last_used_at: row.get::<_, Option<i64>>(7)?.map(from_ms),
    })
}

fn key_by_hash(connection: &Connection, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    connection
        .query_row(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"),
            params![key_hash],
            read_key,
        )
        .optional()
        .map_err(map_backend)
}

/// Keys found since start, by hash. Only keys that exist are kept, so guessing cannot fill it.
#[derive(Debug, Default)]
pub(crate) struct KnownKeys {
    by_hash: RwLock<HashMap<String, ApiKeyRecord>>,
    /// Bumped by every revocation, so a read that raced with one is not cached.
    generation: AtomicU64,
}

/// Past this many keys the cache is emptied and refilled as keys are used.
const KNOWN_KEYS_LIMIT: usize = 10_000;

impl KnownKeys {
    fn get(&self, key_hash: &str) -> Option<ApiKeyRecord> {
        self.by_hash.read().ok()?.get(key_hash).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps `record` unless a revocation happened since `generation` was read.
    fn remember(&self, generation: u64, record: ApiKeyRecord) {
        if let Ok(mut by_hash) = self.by_hash.write()
            && self.generation() == generation
        {
            if by_hash.len() >= KNOWN_KEYS_LIMIT {
                by_hash.clear();
            }
            by_hash.insert(record.key_hash.clone(), record);
        }
    }

    fn forget_all(&self) {
        if let Ok(mut by_hash) = self.by_hash.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            by_hash.clear();
        }
    }
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        self.write(move |transaction| {
            transaction
                .execute(
                    &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                    params![
                        key.id.as_str(),
                        key.tenant_id,
                        key.key_hash,
                        key.prefix,
                        key.name,
                        key.generated_at_start,
                        ms(key.created_at),
                        key.last_used_at.map(ms),
                    ],
                )
                .map_err(map_backend)?;
            Ok(())
        })
        .await
    }

    async fn has_admin_key(&self) -> StoreResult<bool> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM api_keys WHERE tenant_id IS NULL)",
                    [],
                    |row| row.get(0),
                )
                .map_err(map_backend)
        })
        .await
    }

    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<ApiKeyRecord>> {
        let generation = self.keys.generation();
        let record = match self.keys.get(key_hash) {
            Some(record) => record,
            None => {
                let key_hash = key_hash.to_owned();
                let found = self
                    .read(move |connection| key_by_hash(connection, &key_hash))
                    .await?;
                let Some(record) = found else {
                    return Ok(None);
                };
                self.keys.remember(generation, record.clone());
                record
            }
        };
        if !record.use_is_worth_recording(now) {
            return Ok(Some(record));
        }
        // Losing this note in a crash loses nothing that matters, so it does not wait for the
        // disk. The key may have been revoked meanwhile: then it is absent here too.
        let key_hash = key_hash.to_owned();
        let generation = self.keys.generation();
        let noted = self
            .writer
            .write(Durability::Committed, move |transaction| {
                let earliest_previous = ms(now - LAST_USED_PRECISION);
                transaction
                    .execute(
                        "UPDATE api_keys SET last_used_at = ?2
                         WHERE key_hash = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)",
                        params![key_hash, ms(now), earliest_previous],
                    )
                    .map_err(map_backend)?;
                key_by_hash(transaction, &key_hash)
            })
            .await?;
        if let Some(record) = &noted {
            self.keys.remember(generation, record.clone());
        }
        Ok(noted)
    }

    async fn list_api_keys(&self, owner: KeyOwner<'_>) -> StoreResult<Vec<ApiKeyRecord>> {
        let tenant_id = owner.tenant_id();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id IS ?1
                     ORDER BY created_at, id"
                ))
                .map_err(map_backend)?;
            let keys = statement
                .query_map(params![tenant_id], read_key)
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_backend)?;
            Ok(keys)
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        owner: KeyOwner<'_>,
        key_id: &str,
        keep_an_admin_key: bool,
    ) -> StoreResult<KeyRevocation> {
        let tenant_id = owner.tenant_id();
        let key_id = key_id.to_owned();
        let revocation = self
            .write(move |transaction| {
                let exists: bool = transaction
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?1 AND tenant_id IS ?2)",
                        params![key_id, tenant_id],
                        |row| row.get(0),
                    )
                    .map_err(map_backend)?;
                if !exists {
                    return Ok(KeyRevocation::NotFound);
                }
                if keep_an_admin_key && tenant_id.is_none() {
                    let n_admin_keys: i64 = transaction
                        .query_row(
                            "SELECT count(*) FROM api_keys WHERE tenant_id IS NULL",
                            [],
                            |row| row.get(0),
                        )
                        .map_err(map_backend)?;
                    if n_admin_keys <= 1 {
                        return Ok(KeyRevocation::LastAdminKey);
                    }
                }
                transaction
                    .execute("DELETE FROM api_keys WHERE id = ?1", params![key_id])
                    .map_err(map_backend)?;
                Ok(KeyRevocation::Revoked)
            })
            .await;
        // Whatever the answer: a revocation that committed but whose sync failed must not leave
        // its key in the cache (a retry would find nothing to revoke).
        self.keys.forget_all();
        revocation
    }

    async fn revoke_generated_admin_keys(&self) -> StoreResult<u64> {
        let n_deleted = self
            .write(|transaction| {
                transaction
                    .execute(
                        "DELETE FROM api_keys WHERE tenant_id IS NULL AND generated_at_start",
                        [],
                    )
                    .map_err(map_backend)
            })
            .await;
        self.keys.forget_all();
        Ok(u64::try_from(n_deleted?).unwrap_or(u64::MAX))
    }
}

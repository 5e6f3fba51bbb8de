//! Sources: tenants' inbound connections, their settings, counters and latest errors.
//!
//! Counting an outcome reads the row and writes it back inside one write transaction; the store
//! has a single writer, so two requests of one source cannot lose each other's counts.

use async_trait::async_trait;
use herald_store::SourceStore;
use herald_store::models::{SOURCE_ERRORS_KEPT, SourceErrorEntry, SourceOutcome, SourceRecord};
use herald_store::{StoreError, StoreResult};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;
use time::OffsetDateTime;

use crate::rows::{from_ms, map_backend, ms};
use crate::writer::Durability;
use crate::{SqliteStore, require_tenant};

const SOURCE_COLUMNS: &str = "id, tenant_id, kind, name, secret, header_name, username, \
    accepted_topics, lease_expires_at, n_accepted, n_duplicates, n_refused, last_success_at, \
    last_error_at, last_errors, created_at, updated_at";

fn conversion_error(column: usize, detail: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, detail.into())
}

fn count(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(column)?).unwrap_or(0))
}

fn read_source(row: &Row<'_>) -> rusqlite::Result<SourceRecord> {
    let kind: String = row.get(2)?;
    let topics: String = row.get(7)?;
    let errors: String = row.get(14)?;
    let errors: Value =
        serde_json::from_str(&errors).map_err(|error| conversion_error(14, error.to_string()))?;
    Ok(SourceRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        kind: kind.parse().map_err(|error| conversion_error(2, error))?,
        name: row.get(3)?,
        secret: row.get(4)?,
        header_name: row.get(5)?,
        username: row.get(6)?,
        accepted_topics: serde_json::from_str(&topics)
            .map_err(|error| conversion_error(7, error.to_string()))?,
        lease_expires_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
        n_accepted: count(row, 9)?,
        n_duplicates: count(row, 10)?,
        n_refused: count(row, 11)?,
        last_success_at: row.get::<_, Option<i64>>(12)?.map(from_ms),
        last_error_at: row.get::<_, Option<i64>>(13)?.map(from_ms),
        last_errors: SourceErrorEntry::list_from_json(&errors),
        created_at: from_ms(row.get(15)?),
        updated_at: from_ms(row.get(16)?),
    })
}

fn topics_text(topics: &[String]) -> String {
    Value::from(topics.to_vec()).to_string()
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl SourceStore for SqliteStore {
    async fn create_source(&self, source: SourceRecord) -> StoreResult<SourceRecord> {
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                require_tenant(transaction, &source.tenant_id)?;
                transaction
                    .execute(
                        &format!(
                            "INSERT INTO sources ({SOURCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5,
                             ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                        ),
                        params![
                            source.id,
                            source.tenant_id,
                            source.kind.as_str(),
                            source.name,
                            source.secret,
                            source.header_name,
                            source.username,
                            topics_text(&source.accepted_topics),
                            source.lease_expires_at.map(ms),
                            to_i64(source.n_accepted),
                            to_i64(source.n_duplicates),
                            to_i64(source.n_refused),
                            source.last_success_at.map(ms),
                            source.last_error_at.map(ms),
                            SourceErrorEntry::list_to_json(&source.last_errors).to_string(),
                            ms(source.created_at),
                            ms(source.updated_at),
                        ],
                    )
                    .map_err(|error| match error.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::ConstraintViolation) => {
                            StoreError::Conflict(format!("source {:?}", source.id))
                        }
                        _ => map_backend(error),
                    })?;
                Ok(source)
            })
            .await
    }

    async fn get_source_by_id(&self, source_id: &str) -> StoreResult<Option<SourceRecord>> {
        let source_id = source_id.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {SOURCE_COLUMNS} FROM sources
                         WHERE id = ?1"
                    ),
                    params![source_id],
                    read_source,
                )
                .optional()
                .map_err(map_backend)
        })
        .await
    }

    async fn list_sources(&self, tenant_id: &str) -> StoreResult<Vec<SourceRecord>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {SOURCE_COLUMNS} FROM sources WHERE tenant_id = ?1
                     ORDER BY created_at, id"
                ))
                .map_err(map_backend)?;
            let sources = statement
                .query_map(params![tenant_id], read_source)
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_backend)?;
            Ok(sources)
        })
        .await
    }

    async fn update_source(&self, source: SourceRecord) -> StoreResult<SourceRecord> {
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_changed = transaction
                    .execute(
                        "UPDATE sources SET name = ?3, secret = ?4, header_name = ?5,
                             username = ?6, accepted_topics = ?7, updated_at = ?8
                         WHERE id = ?1 AND tenant_id = ?2",
                        params![
                            source.id,
                            source.tenant_id,
                            source.name,
                            source.secret,
                            source.header_name,
                            source.username,
                            topics_text(&source.accepted_topics),
                            ms(source.updated_at),
                        ],
                    )
                    .map_err(map_backend)?;
                if n_changed == 0 {
                    return Err(StoreError::NotFound(format!("source {:?}", source.id)));
                }
                transaction
                    .query_row(
                        &format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?1"),
                        params![source.id],
                        read_source,
                    )
                    .map_err(map_backend)
            })
            .await
    }

    async fn delete_source(&self, tenant_id: &str, source_id: &str) -> StoreResult<bool> {
        let (tenant_id, source_id) = (tenant_id.to_owned(), source_id.to_owned());
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_deleted = transaction
                    .execute(
                        "DELETE FROM sources WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant_id, source_id],
                    )
                    .map_err(map_backend)?;
                Ok(n_deleted > 0)
            })
            .await
    }

    /// Counters are a view for the operator, not a promise to a caller, so they do not wait for
    /// the disk (like an API key's last use): a crash may forget the last few.
    async fn record_source_outcome(
        &self,
        source_id: &str,
        outcome: SourceOutcome,
    ) -> StoreResult<()> {
        let source_id = source_id.to_owned();
        self.writer
            .write(Durability::Committed, move |transaction| {
                let errors: Option<String> = transaction
                    .query_row(
                        "SELECT last_errors FROM sources WHERE id = ?1",
                        params![source_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(map_backend)?;
                let Some(errors) = errors else {
                    return Ok(());
                };
                let mut last_errors = serde_json::from_str::<Value>(&errors)
                    .map(|value| SourceErrorEntry::list_from_json(&value))
                    .unwrap_or_default();
                let error_at = outcome.error.as_ref().map(|error| ms(error.at));
                if let Some(error) = outcome.error {
                    last_errors.insert(0, error);
                    last_errors.truncate(SOURCE_ERRORS_KEPT);
                }
                let succeeded = outcome.n_accepted + outcome.n_duplicates > 0;
                transaction
                    .execute(
                        "UPDATE sources SET n_accepted = n_accepted + ?2,
                             n_duplicates = n_duplicates + ?3, n_refused = n_refused + ?4,
                             last_success_at = COALESCE(?5, last_success_at),
                             last_error_at = COALESCE(?6, last_error_at), last_errors = ?7
                         WHERE id = ?1",
                        params![
                            source_id,
                            to_i64(outcome.n_accepted),
                            to_i64(outcome.n_duplicates),
                            to_i64(outcome.n_refused),
                            succeeded.then(|| ms(outcome.at)),
                            error_at,
                            SourceErrorEntry::list_to_json(&last_errors).to_string(),
                        ],
                    )
                    .map_err(map_backend)?;
                Ok(())
            })
            .await
    }

    async fn record_source_lease(
        &self,
        source_id: &str,
        lease_expires_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let source_id = source_id.to_owned();
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                transaction
                    .execute(
                        "UPDATE sources SET lease_expires_at = ?2 WHERE id = ?1",
                        params![source_id, lease_expires_at.map(ms)],
                    )
                    .map_err(map_backend)?;
                Ok(())
            })
            .await
    }
}

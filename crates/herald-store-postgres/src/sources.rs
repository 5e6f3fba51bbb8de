//! Sources: tenants' inbound connections, their settings, counters and latest errors.
//!
//! Several nodes may count outcomes of one source at once, so an outcome is added in one
//! `UPDATE` that computes the new counters and error list from the row it locks: concurrent
//! requests queue on the row and none is lost.

use async_trait::async_trait;
use herald_store::SourceStore;
use herald_store::models::{SOURCE_ERRORS_KEPT, SourceErrorEntry, SourceOutcome, SourceRecord};
use herald_store::{StoreError, StoreResult};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::rows::{from_ms, get, ms, to_i64};
use crate::{PostgresStore, execute, query, query_opt, tenant_exists};

const SOURCE_COLUMNS: &str = "id, tenant_id, kind, name, secret, header_name, username, \
    accepted_topics, lease_expires_at, n_accepted, n_duplicates, n_refused, last_success_at, \
    last_error_at, last_errors, created_at, updated_at";

fn backend(column: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("sources.{column}: {detail}"))
}

fn count(row: &Row, column: usize) -> StoreResult<u64> {
    Ok(u64::try_from(get::<i64>(row, column)?).unwrap_or(0))
}

fn read_source(row: &Row) -> StoreResult<SourceRecord> {
    let kind: String = get(row, 2)?;
    let topics: String = get(row, 7)?;
    let errors: String = get(row, 14)?;
    let errors: Value =
        serde_json::from_str(&errors).map_err(|error| backend("last_errors", error))?;
    Ok(SourceRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        kind: kind.parse().map_err(|error| backend("kind", error))?,
        name: get(row, 3)?,
        secret: get(row, 4)?,
        header_name: get(row, 5)?,
        username: get(row, 6)?,
        accepted_topics: serde_json::from_str(&topics)
            .map_err(|error| backend("accepted_topics", error))?,
        lease_expires_at: get::<Option<i64>>(row, 8)?.map(from_ms),
        n_accepted: count(row, 9)?,
        n_duplicates: count(row, 10)?,
        n_refused: count(row, 11)?,
        last_success_at: get::<Option<i64>>(row, 12)?.map(from_ms),
        last_error_at: get::<Option<i64>>(row, 13)?.map(from_ms),
        last_errors: SourceErrorEntry::list_from_json(&errors),
        created_at: from_ms(get(row, 15)?),
        updated_at: from_ms(get(row, 16)?),
    })
}

fn topics_text(topics: &[String]) -> String {
    Value::from(topics.to_vec()).to_string()
}

/// Adds an outcome: `$6` is the new error as a one-element JSON array (or NULL), put in front of
/// the stored list, which is then cut to `$7` entries, all in the one statement.
const ADD_OUTCOME: &str = "
    UPDATE sources SET
        n_accepted = n_accepted + $2,
        n_duplicates = n_duplicates + $3,
        n_refused = n_refused + $4,
        last_success_at = COALESCE($5, last_success_at),
        last_error_at = COALESCE($8, last_error_at),
        last_errors = CASE WHEN $6::text IS NULL THEN last_errors ELSE (
            SELECT COALESCE(jsonb_agg(entry ORDER BY position), '[]'::jsonb)::text
            FROM jsonb_array_elements($6::jsonb || last_errors::jsonb)
                 WITH ORDINALITY AS listed(entry, position)
            WHERE position <= $7
        ) END
    WHERE id = $1";

#[async_trait]
impl SourceStore for PostgresStore {
    async fn create_source(&self, source: SourceRecord) -> StoreResult<SourceRecord> {
        let client = self.client().await?;
        if !tenant_exists(&client, &source.tenant_id).await? {
            return Err(StoreError::NotFound(format!(
                "tenant {:?}",
                source.tenant_id
            )));
        }
        let inserted = execute(
            &client,
            &format!(
                "INSERT INTO sources ({SOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 $9, $10, $11, $12, $13, $14, $15, $16, $17)"
            ),
            &[
                &source.id,
                &source.tenant_id,
                &source.kind.as_str(),
                &source.name,
                &source.secret,
                &source.header_name,
                &source.username,
                &topics_text(&source.accepted_topics),
                &source.lease_expires_at.map(ms),
                &to_i64(source.n_accepted),
                &to_i64(source.n_duplicates),
                &to_i64(source.n_refused),
                &source.last_success_at.map(ms),
                &source.last_error_at.map(ms),
                &SourceErrorEntry::list_to_json(&source.last_errors).to_string(),
                &ms(source.created_at),
                &ms(source.updated_at),
            ],
        )
        .await;
        match inserted {
            Ok(_) => Ok(source),
            Err(StoreError::Conflict(_)) => {
                Err(StoreError::Conflict(format!("source {:?}", source.id)))
            }
            Err(error) => Err(error),
        }
    }

    async fn get_source_by_id(&self, source_id: &str) -> StoreResult<Option<SourceRecord>> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "SELECT {SOURCE_COLUMNS} FROM sources
                 WHERE id = $1"
            ),
            &[&source_id],
        )
        .await?
        .as_ref()
        .map(read_source)
        .transpose()
    }

    async fn list_sources(&self, tenant_id: &str) -> StoreResult<Vec<SourceRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {SOURCE_COLUMNS} FROM sources WHERE tenant_id = $1
                 ORDER BY created_at, id"
            ),
            &[&tenant_id],
        )
        .await?;
        rows.iter().map(read_source).collect()
    }

    async fn update_source(&self, source: SourceRecord) -> StoreResult<SourceRecord> {
        let client = self.client().await?;
        let updated = query_opt(
            &client,
            &format!(
                "UPDATE sources SET name = $3, secret = $4, header_name = $5, username = $6,
                     accepted_topics = $7, updated_at = $8
                 WHERE id = $1 AND tenant_id = $2
                 RETURNING {SOURCE_COLUMNS}"
            ),
            &[
                &source.id,
                &source.tenant_id,
                &source.name,
                &source.secret,
                &source.header_name,
                &source.username,
                &topics_text(&source.accepted_topics),
                &ms(source.updated_at),
            ],
        )
        .await?;
        match updated {
            Some(row) => read_source(&row),
            None => Err(StoreError::NotFound(format!("source {:?}", source.id))),
        }
    }

    async fn delete_source(&self, tenant_id: &str, source_id: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let n_deleted = execute(
            &client,
            "DELETE FROM sources WHERE tenant_id = $1 AND id = $2",
            &[&tenant_id, &source_id],
        )
        .await?;
        Ok(n_deleted > 0)
    }

    async fn record_source_outcome(
        &self,
        source_id: &str,
        outcome: SourceOutcome,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        let succeeded = outcome.n_accepted + outcome.n_duplicates > 0;
        let new_error = outcome
            .error
            .as_ref()
            .map(|error| SourceErrorEntry::list_to_json(std::slice::from_ref(error)).to_string());
        let error_at = outcome.error.as_ref().map(|error| ms(error.at));
        execute(
            &client,
            ADD_OUTCOME,
            &[
                &source_id,
                &to_i64(outcome.n_accepted),
                &to_i64(outcome.n_duplicates),
                &to_i64(outcome.n_refused),
                &succeeded.then(|| ms(outcome.at)),
                &new_error,
                &to_i64(SOURCE_ERRORS_KEPT),
                &error_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn record_source_lease(
        &self,
        source_id: &str,
        lease_expires_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        execute(
            &client,
            "UPDATE sources SET lease_expires_at = $2 WHERE id = $1",
            &[&source_id, &lease_expires_at.map(ms)],
        )
        .await?;
        Ok(())
    }
}

//! The event log: appending (see `publish.rs`), reading, retention and erasure.

use async_trait::async_trait;
use herald_store::{EventStore, RetentionStore};
use std::hash::{Hash, Hasher};

use deadpool_postgres::GenericClient;
use herald_store::StoreResult;
use herald_store::models::{EventFilter, NewEvent, Published, StoredEvent};
use time::OffsetDateTime;

use crate::rows::{EVENT_COLUMNS, map_backend, ms, read_all, read_event, to_i64};
use crate::{PostgresStore, execute, publish, query, query_one, query_opt};

#[async_trait]
impl EventStore for PostgresStore {
    async fn publish(
        &self,
        tenant_id: &str,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Published>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        tenant_id.hash(&mut hasher);
        let committer = hasher.finish() as usize % self.publishes.len();
        self.publishes[committer]
            .submit(publish::Request {
                tenant_id: tenant_id.to_owned(),
                events,
                now,
            })
            .await
    }

    async fn list_events(
        &self,
        tenant_id: &str,
        filter: &EventFilter,
    ) -> StoreResult<Vec<StoredEvent>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE tenant_id = $1 AND seq > $2
                   AND ($3::text IS NULL OR event_type = $3)
                   AND ($4::text IS NULL OR subject = $4)
                 ORDER BY seq LIMIT $5"
            ),
            &[
                &tenant_id,
                &filter.after_seq,
                &filter.event_type,
                &filter.subject,
                &to_i64(filter.limit),
            ],
        )
        .await?;
        read_all(&rows, read_event)
    }

    async fn get_event(&self, tenant_id: &str, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"),
            &[&tenant_id, &event_id],
        )
        .await?
        .as_ref()
        .map(read_event)
        .transpose()
    }
}

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn remove_expired(&self, cutoff: OffsetDateTime, batch: usize) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let decisions_removed = execute(
            &transaction,
            "DELETE FROM decisions WHERE rowid_ IN (
                 SELECT rowid_ FROM decisions WHERE created_at < $1 LIMIT $2)",
            &[&ms(cutoff), &to_i64(batch)],
        )
        .await?;
        // Deliveries and their attempts go with their events, in the same statement: the hot
        // tables have no foreign keys to cascade (migration 0011).
        let events_removed = query_one(
            &transaction,
            "WITH gone_events AS (
                 DELETE FROM events WHERE (tenant_id, seq) IN (
                     SELECT tenant_id, seq FROM events WHERE received_at < $1 LIMIT $2)
                 RETURNING tenant_id, seq),
             gone_deliveries AS (
                 DELETE FROM deliveries d USING gone_events e
                 WHERE d.tenant_id = e.tenant_id AND d.event_seq = e.seq
                 RETURNING d.id),
             gone_attempts AS (
                 DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone_deliveries))
             SELECT count(*) FROM gone_events",
            &[&ms(cutoff), &to_i64(batch)],
        )
        .await?
        .try_get::<_, i64>(0)
        .map_err(map_backend)?;
        let events_removed = u64::try_from(events_removed).unwrap_or(0);
        transaction.commit().await.map_err(map_backend)?;
        Ok(events_removed + decisions_removed)
    }

    async fn erase_subject(&self, tenant_id: &str, subject: &str) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let erased = execute(
            &transaction,
            "UPDATE events SET payload = '{}', context = '{}', producer = '{}', erased = TRUE
             WHERE tenant_id = $1 AND subject = $2",
            &[&tenant_id, &subject],
        )
        .await?;
        execute(
            &transaction,
            "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL
             WHERE tenant_id = $1 AND subject = $2 AND state IN ('pending','scheduled')",
            &[&tenant_id, &subject],
        )
        .await?;
        transaction.commit().await.map_err(map_backend)?;
        Ok(erased)
    }
}

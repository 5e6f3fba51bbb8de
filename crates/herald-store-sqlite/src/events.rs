//! The event log: appending (see `publish.rs`), reading, retention and erasure.

use async_trait::async_trait;
use herald_store::StoreResult;
use herald_store::models::{EventFilter, NewEvent, Published, StoredEvent};
use herald_store::{EventStore, RetentionStore};
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::rows::{EVENT_COLUMNS, map_backend, ms, read_event};
use crate::{SqliteStore, publish};

#[async_trait]
impl EventStore for SqliteStore {
    async fn publish(
        &self,
        tenant_id: &str,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Published>> {
        let tenant_id = tenant_id.to_owned();
        let routes = self.routes.clone();
        self.write(move |transaction| {
            publish::publish_in(transaction, &routes, &tenant_id, events, now)
        })
        .await
    }

    async fn list_events(
        &self,
        tenant_id: &str,
        filter: &EventFilter,
    ) -> StoreResult<Vec<StoredEvent>> {
        let tenant_id = tenant_id.to_owned();
        let filter = filter.clone();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE tenant_id = ?1 AND seq > ?2
                       AND (?3 IS NULL OR event_type = ?3) AND (?4 IS NULL OR subject = ?4)
                     ORDER BY seq LIMIT ?5"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(
                    params![
                        tenant_id,
                        filter.after_seq,
                        filter.event_type,
                        filter.subject,
                        i64::try_from(filter.limit).unwrap_or(i64::MAX),
                    ],
                    read_event,
                )
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn get_event(&self, tenant_id: &str, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let (tenant_id, event_id) = (tenant_id.to_owned(), event_id.to_owned());
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND id = ?2"),
                    params![tenant_id, event_id],
                    read_event,
                )
                .optional()
                .map_err(map_backend)
        })
        .await
    }
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn remove_expired(&self, cutoff: OffsetDateTime, batch: usize) -> StoreResult<u64> {
        self.write(move |transaction| {
            let decisions_removed = transaction
                .execute(
                    "DELETE FROM decisions WHERE rowid_ IN (
                         SELECT rowid_ FROM decisions WHERE created_at < ?1 LIMIT ?2)",
                    params![ms(cutoff), i64::try_from(batch).unwrap_or(i64::MAX)],
                )
                .map_err(map_backend)?;
            let removed = transaction
                .execute(
                    "DELETE FROM events WHERE rowid IN (
                         SELECT rowid FROM events WHERE received_at < ?1 LIMIT ?2)",
                    params![ms(cutoff), i64::try_from(batch).unwrap_or(i64::MAX)],
                )
                .map_err(map_backend)?;
            Ok((removed + decisions_removed) as u64)
        })
        .await
    }

    async fn erase_subject(&self, tenant_id: &str, subject: &str) -> StoreResult<u64> {
        let (tenant_id, subject) = (tenant_id.to_owned(), subject.to_owned());
        self.write(move |transaction| {
            let erased = transaction
                .execute(
                    "UPDATE events SET payload = '{}', context = '{}', producer = '{}', erased = 1
                     WHERE tenant_id = ?1 AND subject = ?2",
                    params![tenant_id, subject],
                )
                .map_err(map_backend)?;
            transaction
                .execute(
                    "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL
                     WHERE tenant_id = ?1 AND subject = ?2 AND state IN ('pending','scheduled')",
                    params![tenant_id, subject],
                )
                .map_err(map_backend)?;
            Ok(erased as u64)
        })
        .await
    }
}

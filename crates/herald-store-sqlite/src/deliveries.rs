//! Deliveries: claiming (see `claims.rs`), releasing, listing, retrying and replaying them.

use async_trait::async_trait;
use herald_core::delivery::DeliveryState;
use herald_core::ids::EndpointId;
use herald_store::models::{
    AttemptMinute, AttemptOutcome, AttemptRecord, ClaimedDelivery, DeliveryFilter, DeliveryRecord,
    Published, ReplaySelector,
};
use herald_store::planner::{self, ReplayPlan};
use herald_store::{DeliveryQueue, DeliveryStore};
use herald_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use time::{Duration, OffsetDateTime};

use crate::endpoints::endpoint_by_id;
use crate::publish::insert_delivery;
use crate::rows::{DELIVERY_COLUMNS, map_backend, ms, read_delivery};
use crate::writer::Durability;
use crate::{SqliteStore, claims, rows};

#[async_trait]
impl DeliveryQueue for SqliteStore {
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let turn = self
            .claim_turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.writer
            .write(Durability::OnceWhatItReadIsDurable, move |transaction| {
                claims::claim_due(transaction, now, limit, lease, turn)
            })
            .await
    }

    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()> {
        let delivery_id = delivery_id.to_owned();
        self.write(move |transaction| {
            transaction
                .execute(
                    "UPDATE deliveries SET state = CASE WHEN n_attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                         next_attempt_at = ?2, lease_until = NULL
                     WHERE id = ?1 AND state = 'in_flight'",
                    params![delivery_id, ms(next_attempt_at)],
                )
                .map_err(map_backend)?;
            Ok(())
        })
        .await
    }

    /// `attempts.rs` writes the attempt and its operational events in one transaction.
    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<Vec<Published>> {
        self.record_attempt_outcome(outcome).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>> {
        self.read(claims::next_due_at).await
    }

    async fn count_pending(&self) -> StoreResult<u64> {
        self.read(|connection| {
            let count: i64 = connection
                .query_row(
                    &format!("SELECT COUNT(*) FROM deliveries WHERE {UNFINISHED}"),
                    [],
                    |row| row.get(0),
                )
                .map_err(map_backend)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let tenant_id = tenant_id.to_owned();
        let filter = filter.clone();
        self.read(move |connection| {
            let after_rowid: i64 = match &filter.after_id {
                None => 0,
                Some(after_id) => connection
                    .query_row(
                        "SELECT rowid_ FROM deliveries WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant_id, after_id.as_str()],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(map_backend)?
                    .unwrap_or(0),
            };
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE tenant_id = ?1 AND rowid_ > ?2
                       AND (?3 IS NULL OR endpoint_id = ?3) AND (?4 IS NULL OR state = ?4)
                     ORDER BY rowid_ LIMIT ?5"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(
                    params![
                        tenant_id,
                        after_rowid,
                        filter.endpoint_id.as_ref().map(EndpointId::as_str),
                        filter.state.map(DeliveryState::as_str),
                        i64::try_from(filter.limit).unwrap_or(i64::MAX),
                    ],
                    read_delivery,
                )
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn get_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        self.read(move |connection| delivery_by_id(connection, &tenant_id, &delivery_id))
            .await
    }

    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT a.delivery_id, a.attempt_number, a.started_at, a.status, a.latency_ms,
                         a.response_excerpt, a.error
                     FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                     WHERE d.tenant_id = ?1 AND a.delivery_id = ?2 ORDER BY a.attempt_number",
                )
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id, delivery_id], rows::read_attempt)
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        self.write(move |transaction| {
            transaction
                .execute(
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = ?3, updated_at = ?3
                     WHERE tenant_id = ?1 AND id = ?2 AND state != 'in_flight'",
                    params![tenant_id, delivery_id, ms(now)],
                )
                .map_err(map_backend)?;
            delivery_by_id(transaction, &tenant_id, &delivery_id)
        })
        .await
    }

    async fn replay(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        selector: &ReplaySelector,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let (tenant_id, endpoint_id) = (tenant_id.to_owned(), endpoint_id.to_owned());
        let selector = selector.clone();
        self.write(move |transaction| {
            let Some(endpoint) = endpoint_by_id(transaction, &tenant_id, &endpoint_id)? else {
                return Err(StoreError::NotFound(format!("endpoint {endpoint_id:?}")));
            };
            let (after_seq, received_since, only_id) = match ReplayPlan::of(&selector) {
                ReplayPlan::FailedAgain => {
                    let changed = transaction
                        .execute(
                            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?3, updated_at = ?3
                             WHERE tenant_id = ?1 AND endpoint_id = ?2 AND state = 'exhausted'",
                            params![tenant_id, endpoint_id, ms(now)],
                        )
                        .map_err(map_backend)?;
                    return Ok(changed as u64);
                }
                ReplayPlan::FromLog {
                    after_seq,
                    received_since,
                    only_event,
                } => (
                    after_seq,
                    received_since.map_or(i64::MIN, ms),
                    only_event.map(str::to_owned),
                ),
            };
            let mut statement = transaction
                .prepare(
                    "SELECT seq, id, taxonomy, event_type, subject FROM events
                     WHERE tenant_id = ?1 AND seq > ?2 AND received_at >= ?3 AND erased = 0
                       AND (?4 IS NULL OR id = ?4)
                     ORDER BY seq",
                )
                .map_err(map_backend)?;
            let selected: Vec<(i64, String, String, String, Option<String>)> = statement
                .query_map(
                    params![tenant_id, after_seq, received_since, only_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
                )
                .map_err(map_backend)?
                .collect::<Result<_, _>>()
                .map_err(map_backend)?;
            if let Some(event_id) = &only_id
                && selected.is_empty()
            {
                return Err(StoreError::NotFound(format!("event {event_id:?}")));
            }
            let mut n_replayed = 0u64;
            for (seq, event_id, taxonomy, event_type, subject) in selected {
                let taxonomy = rows::parse_taxonomy(&taxonomy)?;
                let wanted = planner::replay_wants(only_id.as_deref(), &endpoint.filters, &event_type, taxonomy);
                if wanted {
                    insert_delivery(
                        transaction,
                        &tenant_id,
                        &endpoint_id,
                        (seq, &event_id, &event_type, subject.as_deref()),
                        now,
                    )?;
                    n_replayed += 1;
                }
            }
            Ok(n_replayed)
        })
        .await
    }

    async fn list_event_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let (tenant_id, event_id) = (tenant_id.to_owned(), event_id.to_owned());
        self.read(move |connection| {
            // Through the event's seq, so the `deliveries_by_event (tenant_id, event_seq)` index
            // answers rather than a scan of the tenant's deliveries.
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE tenant_id = ?1
                       AND event_seq = (SELECT seq FROM events WHERE tenant_id = ?1 AND id = ?2)
                       AND event_id = ?2
                     ORDER BY rowid_"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id, event_id], read_delivery)
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }

    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<AttemptMinute>> {
        self.attempts_per_minute(tenant_id, since).await
    }
}

/// The condition of an unfinished delivery, as the partial index `deliveries_unfinished_by_subject`
/// writes it (migration 0014): a query uses that index only when its condition implies the
/// index's, which SQLite judges by the expression. Comparisons, not an IN list: see the migration.
pub(crate) const UNFINISHED: &str =
    "(state = 'pending' OR state = 'scheduled' OR state = 'in_flight')";

pub(crate) fn delivery_by_id(
    connection: &Connection,
    tenant_id: &str,
    delivery_id: &str,
) -> StoreResult<Option<DeliveryRecord>> {
    connection
        .query_row(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = ?1 AND id = ?2"),
            params![tenant_id, delivery_id],
            read_delivery,
        )
        .optional()
        .map_err(map_backend)
}

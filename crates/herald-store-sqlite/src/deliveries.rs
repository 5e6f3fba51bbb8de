//! Deliveries: claiming (see `claims.rs`), releasing, listing, retrying and replaying them.

use std::sync::Arc;

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
use crate::{SqliteStore, claims, rows, run_blocking};

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
        let asked = std::time::Instant::now();
        // Held until the claim's own writes are done: the next claim reads its bucket.
        let claimer = Arc::clone(&self.claimer).lock_owned().await;
        let leases = Arc::clone(&self.leases);
        let writer = self.writer.clone();
        let (mut claim, mark, claimer) = run_blocking(move || {
            // Copied before the first read (see `leases.rs`).
            let held = leases.copy();
            let read = claimer
                .unchecked_transaction()
                .map_err(map_backend)
                .and_then(|snapshot| {
                    let claim = claims::claim_due(&snapshot, &held, now, limit, lease, turn)?;
                    snapshot.finish().map_err(map_backend)?;
                    Ok(claim)
                })?;
            leases.grant(read.leases.iter().cloned());
            // Taken after the reads: it covers every durable write they may have seen.
            Ok((read, writer.durable_mark(), claimer))
        })
        .await?;
        metrics::histogram!("herald_sqlite_claim_read_seconds")
            .record(asked.elapsed().as_secs_f64());
        let writes = std::mem::take(&mut claim.writes);
        let finished = async {
            if !writes.is_empty() {
                // Lost in a crash, these only let a rate-limited endpoint's next claim take more.
                self.writer
                    .write(Durability::Committed, move |transaction| {
                        writes.write(transaction)
                    })
                    .await?;
            }
            drop(claimer);
            // The events handed out must be on disk before they are sent.
            self.writer.wait_on_disk(mark).await
        };
        if let Err(error) = finished.await {
            // Nothing is handed out, so nothing stays leased: the deliveries are due at once.
            for (delivery_id, _) in &claim.leases {
                self.leases.end(delivery_id.as_str());
            }
            return Err(error);
        }
        Ok(claim.claimed)
    }

    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()> {
        if !self.leases.holds(delivery_id) {
            // Not this process's attempt: nothing to hand back.
            return Ok(());
        }
        let delivery_id = delivery_id.to_owned();
        let leased = delivery_id.clone();
        self.write(move |transaction| {
            transaction
                .execute(
                    "UPDATE deliveries SET next_attempt_at = ?2
                     WHERE id = ?1 AND (state = 'pending' OR state = 'scheduled')",
                    params![delivery_id, ms(next_attempt_at)],
                )
                .map_err(map_backend)?;
            Ok(())
        })
        .await?;
        self.leases.end(&leased);
        Ok(())
    }

    /// `attempts.rs` writes the attempt and its operational events in one transaction.
    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<Vec<Published>> {
        self.record_attempt_outcome(outcome).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>> {
        let held = self.leases.copy();
        self.read(move |connection| claims::next_due_at(connection, &held))
            .await
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
        let leases = Arc::clone(&self.leases);
        self.read(move |connection| {
            let mut after_rowid: i64 = match &filter.after_id {
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
            // A leased delivery is shown `in_flight` but stored waiting, so the stored states
            // asked for are the shown one's, and each row is judged again once shown.
            let stored_states = match filter.state {
                Some(DeliveryState::InFlight) => [Some("pending"), Some("scheduled")],
                shown => [shown.map(DeliveryState::as_str), None],
            };
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT rowid_, {DELIVERY_COLUMNS} FROM deliveries
                     WHERE tenant_id = ?1 AND rowid_ > ?2
                       AND (?3 IS NULL OR endpoint_id = ?3)
                       AND (?4 IS NULL OR state = ?4 OR state = ?6)
                     ORDER BY rowid_ LIMIT ?5"
                ))
                .map_err(map_backend)?;
            if filter.limit == 0 {
                return Ok(Vec::new());
            }
            let page = i64::try_from(filter.limit).unwrap_or(i64::MAX);
            let mut shown = Vec::with_capacity(filter.limit);
            loop {
                let read: Vec<(i64, DeliveryRecord)> = statement
                    .query_map(
                        params![
                            tenant_id,
                            after_rowid,
                            filter.endpoint_id.as_ref().map(EndpointId::as_str),
                            stored_states[0],
                            page,
                            stored_states[1],
                        ],
                        |row| Ok((row.get(0)?, rows::read_delivery_at(row, 1)?)),
                    )
                    .map_err(map_backend)?
                    .collect::<Result<_, _>>()
                    .map_err(map_backend)?;
                let exhausted = read.len() < filter.limit;
                for (rowid, mut delivery) in read {
                    after_rowid = rowid;
                    delivery.state = leases.shown_state(delivery.id.as_str(), delivery.state);
                    if filter.state.is_none_or(|state| state == delivery.state) {
                        shown.push(delivery);
                        if shown.len() == filter.limit {
                            return Ok(shown);
                        }
                    }
                }
                if exhausted {
                    return Ok(shown);
                }
            }
        })
        .await
    }

    async fn get_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        let found = self
            .read(move |connection| delivery_by_id(connection, &tenant_id, &delivery_id))
            .await?;
        Ok(found.map(|delivery| self.shown(delivery)))
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
        // A delivery whose attempt runs is left alone, as on PostgreSQL (its row says
        // `in_flight` there; here only the lease does).
        let running = self.leases.holds(delivery_id);
        let (tenant_id, delivery_id) = (tenant_id.to_owned(), delivery_id.to_owned());
        let delivery = self
            .write(move |transaction| {
                if !running {
                    transaction
                        .execute(
                            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?3, updated_at = ?3
                             WHERE tenant_id = ?1 AND id = ?2 AND state != 'in_flight'",
                            params![tenant_id, delivery_id, ms(now)],
                        )
                        .map_err(map_backend)?;
                }
                delivery_by_id(transaction, &tenant_id, &delivery_id)
            })
            .await?;
        Ok(delivery.map(|delivery| self.shown(delivery)))
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
        .map(|deliveries| {
            deliveries
                .into_iter()
                .map(|delivery| self.shown(delivery))
                .collect()
        })
    }

    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<AttemptMinute>> {
        self.attempts_per_minute(tenant_id, since).await
    }
}

impl SqliteStore {
    /// A delivery as readers see it: `in_flight` while this process attempts it.
    fn shown(&self, mut delivery: DeliveryRecord) -> DeliveryRecord {
        delivery.state = self
            .leases
            .shown_state(delivery.id.as_str(), delivery.state);
        delivery
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

//! Recording a delivery attempt, with the operational events it raises, in one transaction of
//! the writer (see `writer.rs`).

use herald_core::delivery::{DeliveryState, DisableReason};
use herald_store::StoreResult;
use herald_store::models::{AttemptOutcome, NextStep, Published};
use rusqlite::{Transaction, params};

use crate::SqliteStore;
use crate::publish::{self, Routes};
use crate::rows::{map_backend, ms};
use crate::writer::Durability;

/// Stores the attempt, moves its delivery on, updates its endpoint's failure state, and publishes
/// the outcome's operational events: all or nothing, as one job of the writer.
pub(crate) fn record_in(
    transaction: &Transaction<'_>,
    routes: &Routes,
    outcome: AttemptOutcome,
) -> StoreResult<Vec<Published>> {
    if outcome.disable_endpoint.is_some() {
        routes.forget();
    }
    let attempt = &outcome.attempt;
    transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO attempts (delivery_id, attempt_number, started_at, status,
                 latency_ms, response_excerpt, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                attempt.delivery_id.as_str(),
                attempt.attempt_number,
                ms(attempt.started_at),
                attempt.status,
                i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
                attempt.response_excerpt,
                attempt.error,
            ])
        })
        .map_err(map_backend)?;
    let (state, next_attempt_at) = match outcome.next {
        NextStep::Delivered => (DeliveryState::Delivered, None),
        NextStep::RetryAt(at) => (DeliveryState::Scheduled, Some(ms(at))),
        NextStep::Exhausted => (DeliveryState::Exhausted, None),
    };
    transaction
        .prepare_cached(
            "UPDATE deliveries SET state = ?2, n_attempts = ?3, next_attempt_at = ?4,
                 last_status = ?5, last_error = ?6, updated_at = ?7
             WHERE id = ?1",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                attempt.delivery_id.as_str(),
                state.as_str(),
                attempt.attempt_number,
                next_attempt_at,
                attempt.status,
                attempt.error,
                ms(outcome.now),
            ])
        })
        .map_err(map_backend)?;
    let succeeded = outcome.next == NextStep::Delivered;
    transaction
        .prepare_cached(
            "UPDATE endpoints SET
                 failing_since = CASE WHEN ?3 THEN NULL ELSE COALESCE(failing_since, ?4) END,
                 enabled = CASE WHEN ?5 IS NULL THEN enabled ELSE 0 END,
                 disabled_reason = COALESCE(?5, disabled_reason)
             WHERE tenant_id = ?1 AND id = ?2
               -- A success of a healthy endpoint changes nothing: leave its row alone.
               AND NOT (?3 AND failing_since IS NULL AND ?5 IS NULL)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                outcome.tenant_id,
                outcome.endpoint_id.as_str(),
                succeeded,
                ms(attempt.started_at),
                outcome.disable_endpoint.map(DisableReason::as_str),
            ])
        })
        .map_err(map_backend)?;
    if outcome.operational_events.is_empty() {
        return Ok(Vec::new());
    }
    // After the endpoint's update, so an endpoint disabled by this attempt is not routed to.
    publish::publish_in(
        transaction,
        routes,
        &outcome.tenant_id,
        outcome.operational_events,
        outcome.now,
    )
}

impl SqliteStore {
    pub(crate) async fn record_attempt_outcome(
        &self,
        outcome: AttemptOutcome,
    ) -> StoreResult<Vec<Published>> {
        let routes = self.routes.clone();
        let delivery_id = outcome.attempt.delivery_id.clone();
        // Lost in a crash, a record only means the delivery is attempted again (its row still
        // waits, and the lease died with the process), and its operational events, lost with
        // it, are raised again by that attempt: at least once still holds, and the attempt's
        // slot frees without waiting for the disk.
        let published = self
            .writer
            .write(Durability::Committed, move |transaction| {
                record_in(transaction, &routes, outcome)
            })
            .await?;
        // Only now that the delivery's new state is visible (see `leases.rs`). A record that
        // failed keeps its lease until it runs out, and the delivery is attempted again then.
        self.leases.end(delivery_id.as_str());
        Ok(published)
    }
}

impl SqliteStore {
    /// The tenant's delivery attempts since `since`, counted per minute (the console's charts).
    pub(crate) async fn attempts_per_minute(
        &self,
        tenant_id: &str,
        since: time::OffsetDateTime,
    ) -> StoreResult<Vec<herald_store::models::AttemptMinute>> {
        let tenant_id = tenant_id.to_owned();
        let since_ms = ms(since);
        self.read(move |connection| {
            // Times are kept in milliseconds: a minute is `started_at / 60000`. A missing status
            // (no answer) is a failure like any status outside 2xx.
            let mut statement = connection
                .prepare_cached(
                    "SELECT a.started_at / 60000 AS minute, COUNT(*),
                         SUM(CASE WHEN a.status BETWEEN 200 AND 299 THEN 0 ELSE 1 END)
                     FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                     WHERE d.tenant_id = ?1 AND a.started_at >= ?2
                     GROUP BY minute ORDER BY minute",
                )
                .map_err(map_backend)?;
            let rows = statement
                .query_map(params![tenant_id, since_ms], |row| {
                    Ok(herald_store::models::AttemptMinute {
                        minute: crate::rows::from_ms(row.get::<_, i64>(0)? * 60_000),
                        n_attempts: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                        n_failed: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                    })
                })
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }
}

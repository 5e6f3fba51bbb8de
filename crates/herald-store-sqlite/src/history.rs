//! A benchmark fixture: fills a store with delivered history (events, deliveries, attempts), as
//! months of traffic would leave it, so `herald bench --history N` can show whether delivery
//! slows down as the database grows. Rows are written in bulk SQL, not through the hot path,
//! which would take as long as the traffic itself did.

use std::path::Path;

use herald_store::{StoreError, StoreResult};
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use crate::rows::map_backend;
use crate::schema;

/// Events written per transaction: large enough to be quick, small enough for a modest WAL.
const CHUNK: usize = 50_000;

/// Appends `n_deliveries` delivered deliveries to the tenant's log, one event each, spread round
/// robin over `endpoint_ids` (which must belong to the tenant), each with one successful attempt.
/// The file must not be open in a running Herald (it would hold the file's lock).
pub fn fill_delivered_history(
    path: &Path,
    tenant_id: &str,
    endpoint_ids: &[String],
    n_deliveries: usize,
    now: OffsetDateTime,
) -> StoreResult<()> {
    if endpoint_ids.is_empty() {
        return Err(StoreError::Backend(
            "history needs at least one endpoint".to_owned(),
        ));
    }
    let connection = Connection::open(path).map_err(map_backend)?;
    schema::configure(&connection)?;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let n_endpoints = endpoint_ids.len() as i64;
    let mut written = 0;
    while written < n_deliveries {
        let n = CHUNK.min(n_deliveries - written) as i64;
        let transaction = connection.unchecked_transaction().map_err(map_backend)?;
        let first_seq: i64 = transaction
            .query_row(
                "SELECT next_seq FROM tenants WHERE id = ?1",
                [tenant_id],
                |row| row.get(0),
            )
            .map_err(map_backend)?;
        transaction
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?3)
                 INSERT INTO events (tenant_id, seq, id, taxonomy, event_type, subject, occurred_at,
                     received_at, payload, context, producer)
                 SELECT ?1, ?2 + i, 'evt_history_' || (?2 + i), 'custom', 'bench.ping',
                     'user-' || (i % 1000), ?4, ?4,
                     '{\"n\":0,\"pad\":\"identity-event-benchmark-payload\"}', '{}', '{}'
                 FROM n",
                params![tenant_id, first_seq, n, now_ms],
            )
            .map_err(map_backend)?;
        for (index, endpoint_id) in endpoint_ids.iter().enumerate() {
            transaction
                .execute(
                    "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq, event_id,
                         event_type, subject, state, n_attempts, last_status, created_at, updated_at)
                     SELECT 'dl_history_' || seq, tenant_id, ?2, seq, id, event_type, subject,
                         'delivered', 1, 200, ?6, ?6
                     FROM events
                     WHERE tenant_id = ?1 AND seq >= ?3 AND seq < ?3 + ?4 AND (seq - ?3) % ?5 = ?7",
                    params![
                        tenant_id,
                        endpoint_id,
                        first_seq,
                        n,
                        n_endpoints,
                        now_ms,
                        index as i64
                    ],
                )
                .map_err(map_backend)?;
        }
        transaction
            .execute(
                "INSERT INTO attempts (delivery_id, attempt_number, started_at, status, latency_ms,
                     response_excerpt, error)
                 SELECT id, 1, ?4, 200, 1, 'ok', NULL FROM deliveries
                 WHERE tenant_id = ?1 AND event_seq >= ?2 AND event_seq < ?2 + ?3",
                params![tenant_id, first_seq, n, now_ms],
            )
            .map_err(map_backend)?;
        transaction
            .execute(
                "UPDATE tenants SET next_seq = next_seq + ?2 WHERE id = ?1",
                params![tenant_id, n],
            )
            .map_err(map_backend)?;
        transaction.commit().map_err(map_backend)?;
        written += n as usize;
    }
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(map_backend)?;
    Ok(())
}
